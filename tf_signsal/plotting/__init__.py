"""Figures of saliency maps: the paper's Fig. 1 grid, maps over their images, the
signed view, colour bars, deletion curves and a map's evolution in training.

- `plot_maps_grid`: a row per image, columns image | one map per method (Fig. 1).
- `overlay` / `plot_overlays`: a map drawn half-transparent over its image.
- `signed_view` / `plot_signed`: positive attribution red, negative blue, in one
  picture, from the raw (`normalize=False`) positive and negative maps.
- `add_colorbar`: the colour bar of any of the pictures above.
- `allegiance_figures`: the figures of a deletion benchmark, as `tf-signsal evaluate`
  writes them: `plot_order_curves` per order (a panel per fill, AUC in the legends)
  and `plot_srg` (the SRG bars) when MoRF and LeRF both ran.
- `plot_curves` (allegiance curves in one axes, from names and arrays;
  `plot_allegiance` draws an `AllegianceResult` with it), `plot_randomization`,
  `plot_map_evolution`: curves and logs.

Every grid of pictures (`plot_maps_grid`, `plot_overlays`, `plot_signed`,
`plot_map_evolution`) keeps its pictures at `cell_size` inches whatever the number of
rows and columns, wraps its labels to the room they have (a label too long even so is
shortened, and given in full in a caption), and has one colour bar of a fixed size:
no text overlaps another or leaves the figure. The command line, the callbacks and
the demo's report draw their figures with these functions.

Plotting takes plain arrays and mappings (and tensors) and imports nothing from
`tf_signsal.evaluation`: `AllegianceResult.plot` is the one link between the two, and
it points this way. Importing plotting loads no TensorFlow: only checking an image
batch, normalising raw maps (`normalized=False`) and reading a callback's log do.

Everything here builds `matplotlib.figure.Figure` objects directly (no pyplot
state), so it works headless, in threads and inside Keras callbacks. Save a
figure with `save_figure`, which never leaves a half-written file.

    _common.py   checks, titles, colormaps, the colour bar, the atomic save
    _grids.py    map grids: Fig. 1, overlays, a map across epochs
    _signed.py   the signed view
    _curves.py   allegiance curves (one axes; a figure per order), SRG bars, randomisation
"""

from __future__ import annotations

import warnings
from typing import Any

from tf_signsal.plotting._common import add_colorbar, class_label, prediction_titles, save_figure
from tf_signsal.plotting._curves import (
    allegiance_figures,
    plot_allegiance,
    plot_curves,
    plot_order_curves,
    plot_randomization,
    plot_srg,
)
from tf_signsal.plotting._grids import overlay, plot_map_evolution, plot_maps_grid, plot_overlays
from tf_signsal.plotting._signed import plot_signed, signed_view

__all__ = [
    "add_colorbar",
    "allegiance_figures",
    "class_label",
    "overlay",
    "plot_allegiance",
    "plot_curves",
    "plot_map_evolution",
    "plot_maps_grid",
    "plot_order_curves",
    "plot_overlays",
    "plot_randomization",
    "plot_signed",
    "plot_srg",
    "prediction_titles",
    "save_figure",
    "signed_view",
]

# The callbacks' file format moved to the callbacks, which write it.
_MOVED = {"EPOCH_FILE": "tf_signsal.callbacks", "logged_epochs": "tf_signsal.callbacks"}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        import importlib

        warnings.warn(
            f"`tf_signsal.plotting.{name}` is deprecated: use `{_MOVED[name]}.{name}`",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module 'tf_signsal.plotting' has no attribute {name!r}")
