"""What every figure of `tf_signsal.plotting` shares: array and argument checks,
titles, colormaps, the colour bar and the atomic save."""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import matplotlib.colorbar
import matplotlib.colors
import numpy as np
from matplotlib.figure import Figure

from tf_signsal import _checks
from tf_signsal._io import write_atomic


def _to_numpy(value: Any) -> np.ndarray:
    return value.numpy() if hasattr(value, "numpy") else np.asarray(value)


def _show(axis: Any, picture: np.ndarray, title: str, fontsize: float, **kwargs: Any) -> None:
    """One picture on its own axes, without ticks or frame, under its title."""
    axis.imshow(picture, interpolation="nearest", **kwargs)
    axis.set_axis_off()
    axis.set_title(title, fontsize=fontsize)


def _as_picture(image: np.ndarray) -> np.ndarray:
    # A one-channel image is shown in gray; values are clipped to the [0, 1]
    # range that matplotlib expects of float RGB images.
    image = np.clip(image, 0.0, 1.0)
    return image[..., 0] if image.shape[-1] == 1 else image


def class_label(index: int, class_names: Sequence[str] | None = None) -> str:
    """The name of class `index`, or its number when no names are given."""
    index = int(index)
    if class_names is not None and 0 <= index < len(class_names):
        return str(class_names[index])
    return str(index)


def prediction_titles(
    predictions: Any,
    labels: Any = None,
    class_names: Sequence[str] | None = None,
    separator: str = " / ",
) -> list[str]:
    """Row titles such as "true: cat / pred: dog" (or "pred: dog" without labels).

    Args:
        predictions: (B,) predicted class indices.
        labels: optional (B,) true class indices.
        class_names: optional names indexed by class; numbers are shown without.
        separator: between the true and the predicted class ("\n" for two lines).

    Returns:
        One title per image.
    """
    predictions = _to_numpy(predictions).reshape(-1)
    if labels is None:
        return [f"pred: {class_label(p, class_names)}" for p in predictions]
    labels = _to_numpy(labels).reshape(-1)
    if labels.shape != predictions.shape:
        raise ValueError(
            f"`labels` must have one entry per prediction, shape {predictions.shape}, "
            f"received shape {labels.shape}"
        )
    return [
        f"true: {class_label(t, class_names)}{separator}pred: {class_label(p, class_names)}"
        for t, p in zip(labels, predictions)
    ]


def _check_maps(maps: Mapping[str, Any], methods: Sequence[str]) -> tuple[tuple[str, ...], dict]:
    """`methods` checked against `maps`, and the maps as numpy (B, H, W) arrays of one shape."""
    if not isinstance(maps, Mapping):
        raise TypeError(
            "`maps` must be a dict method -> (B, H, W) maps, as `SignedSaliency.explain` "
            f"returns, received {type(maps).__name__}"
        )
    methods = _checks.check_choices("methods", methods, tuple(maps))
    arrays = {m: _to_numpy(maps[m]) for m in methods}
    shape = arrays[methods[0]].shape
    for method, array in arrays.items():
        if array.ndim != 3 or array.shape != shape:
            raise ValueError(
                f"`maps` must hold (B, H, W) arrays of one shape, received {array.shape} "
                f"for {method!r} and {shape} for {methods[0]!r}"
            )
    if shape[0] == 0:
        raise ValueError("`maps` holds no image (batch size 0): there is nothing to draw")
    return methods, arrays


def _check_images(images: Any, shape: tuple[int, ...]) -> np.ndarray:
    """`images` as a numpy (B, H, W, ch) batch matching maps of shape (B, H, W)."""
    images = _to_numpy(_checks.as_image_batch(images))
    if images.shape[:3] != tuple(shape):
        raise ValueError(
            f"`images` must have shape ({shape[0]}, {shape[1]}, {shape[2]}, ch) to match "
            f"the maps, received {images.shape}"
        )
    return images


def _check_titles(titles: Sequence[str] | None, rows: int) -> None:
    if titles is not None and (isinstance(titles, str) or len(titles) != rows):
        received = repr(titles) if isinstance(titles, str) else len(titles)
        raise ValueError(f"`titles` must hold one title per image ({rows}), received {received}")


def _colormap(cmap: Any, name: str = "cmap") -> matplotlib.colors.Colormap:
    """A matplotlib colormap from its name (or the colormap itself)."""
    if isinstance(cmap, matplotlib.colors.Colormap):
        return cmap
    if not isinstance(cmap, str):
        raise TypeError(f"`{name}` must be a matplotlib colormap name, received {cmap!r}")
    try:
        return matplotlib.colormaps[cmap]
    except KeyError:
        raise ValueError(
            f"`{name}` must be a matplotlib colormap name (e.g. 'hot', 'viridis', 'RdBu_r'), "
            f"received {cmap!r}"
        ) from None


def add_colorbar(
    mappable: Any,
    ax: Any = None,
    label: str | None = None,
    cax: Any = None,
    **kwargs: Any,
) -> matplotlib.colorbar.Colorbar:
    """The colour bar of a drawn picture, beside the axes it belongs to.

    Its range is the picture's colour limits: [0, 1] for normalised maps (as
    `plot_maps_grid` and `overlay` draw them), [-1, 1] for `plot_signed`.

    Args:
        mappable: what was drawn, e.g. the `AxesImage` that `overlay` returns or
            `ax.images[-1]`.
        ax: the axes (or list of axes) to take the colour bar's room from;
            the mappable's own axes when None.
        label: optional text along the bar.
        cax: an axes to draw the bar into instead (then `ax` takes no room).
        **kwargs: passed on to `Figure.colorbar` (e.g. `shrink=0.8`).

    Returns:
        The `matplotlib.colorbar.Colorbar`; `colorbar.ax` is its axes.

    Example:
        >>> fig = Figure()
        >>> ax = fig.subplots()
        >>> shown = overlay(ax, image, maps["positive"][0])
        >>> add_colorbar(shown, label="positive map")
    """
    axes = getattr(mappable, "axes", None)
    figure = getattr(mappable, "figure", None) or getattr(axes, "figure", None)
    if figure is None or not hasattr(mappable, "get_clim"):
        raise TypeError(
            "`mappable` must be a drawn picture (e.g. the AxesImage that `overlay` returns "
            f"or `ax.images[-1]`), received {type(mappable).__name__}"
        )
    if cax is None and ax is None:
        ax = axes
    colorbar = figure.colorbar(mappable, ax=None if cax is not None else ax, cax=cax, **kwargs)
    colorbar.ax.tick_params(labelsize=7)
    if label:
        colorbar.set_label(label, fontsize=8)
    return colorbar


def save_figure(figure: Figure, path: str | os.PathLike, dpi: float = 100) -> None:
    """Save `figure` (format from the extension, e.g. .png) atomically to `path`."""
    buffer = io.BytesIO()
    extension = os.path.splitext(os.fspath(path))[1].lstrip(".") or "png"
    figure.savefig(buffer, format=extension, dpi=dpi)
    write_atomic(path, buffer.getvalue())
