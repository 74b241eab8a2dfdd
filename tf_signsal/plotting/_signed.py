"""The signed view: positive attribution red, negative blue, in one picture."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from tf_signsal import _checks
from tf_signsal.plotting._common import (
    _as_picture,
    _check_images,
    _check_titles,
    _colormap,
    _frame,
    _to_numpy,
)
from tf_signsal.plotting._grids import overlay

SCALE_LABEL = "signed map / max |map| of its image"
"""The colour bar's label: each image's signed map is divided by its largest magnitude,
given under it ("max |map| = ...")."""


def signed_view(positive: Any, negative: Any = None) -> np.ndarray:
    """The pictures `plot_signed` draws: signed maps scaled per image to [-1, 1].

    With both maps, the signed map is `positive - negative`; with `negative`
    None, `positive` is taken as the signed map itself (e.g. a gradient summed
    over channels). Each image's signed map is then divided by its largest
    absolute value over H x W, so that 1 is the image's strongest positive
    attribution or -1 its strongest negative one, and 0 stays 0 (no rescaling
    of the two signs separately). An all-zero map stays all zero.

    With `SignedSaliency`'s raw maps (`normalize=False`), positive = max over
    channels of relu(g) and negative = max over channels of relu(-g) for the
    explained class's input gradient g: a pixel is positive where its largest
    rise of the logit exceeds its largest fall, negative the other way round.

    Args:
        positive: (B, H, W) raw positive maps (`explain(..., normalize=False)`),
            >= 0; or, with `negative` None, (B, H, W) signed maps.
        negative: (B, H, W) raw negative maps, >= 0, or None.

    Returns:
        float32 numpy array (B, H, W) in [-1, 1].

    Example:
        >>> raw = SignedSaliency(model).explain(images, methods=["positive", "negative"],
        ...                                     normalize=False)
        >>> signed_view(raw["positive"], raw["negative"])[0].max()  # 1.0 (or less: more blue)
    """
    signed = np.asarray(_to_numpy(positive), np.float32)
    if signed.ndim != 3:
        name = "positive" if negative is not None else "positive (the signed map)"
        raise ValueError(f"`{name}` must have shape (B, H, W), received shape {signed.shape}")
    if negative is not None:
        negative = np.asarray(_to_numpy(negative), np.float32)
        if negative.shape != signed.shape:
            raise ValueError(
                f"`negative` must have the shape of `positive` {signed.shape}, "
                f"received {negative.shape}"
            )
        for name, array in (("positive", signed), ("negative", negative)):
            if np.any(array < 0):
                raise ValueError(
                    f"`{name}` must be a raw map >= 0 (as `explain(..., normalize=False)` "
                    f"returns), received values down to {array.min()}; give one signed map "
                    "as `positive` with `negative=None` instead"
                )
        signed = signed - negative
    if not np.all(np.isfinite(signed)):
        raise ValueError("the maps contain NaN or Inf values; every value must be finite")
    scale = np.abs(signed).max(axis=(1, 2), keepdims=True)
    return np.divide(signed, scale, out=np.zeros_like(signed), where=scale > 0)


def plot_signed(
    images: Any,
    positive: Any,
    negative: Any = None,
    titles: Sequence[str] | None = None,
    cmap: str = "RdBu_r",
    colorbar: bool = True,
    alpha: float | None = None,
    cell_size: float = 1.6,
    suptitle: str | None = None,
) -> Figure:
    """The signed view: positive attribution red, negative blue, in one picture.

    A row per image, columns image | signed map. The signed map is exactly
    `signed_view(positive, negative)`: `positive - negative` (or the signed
    map `positive` when `negative` is None) divided per image by its largest
    absolute value, drawn with a diverging colormap symmetric around 0
    (vmin -1, vmax 1): red where the explained class's logit rises with the
    pixel, blue where it falls, white where neither, the deepest colour at each
    image's strongest attribution. The colour bar runs from -1 to 1 in units of
    that per-image maximum, which is written under each map ("max |map| = ...").
    Row titles are wrapped to fit beside their row (see `plot_maps_grid`).

    Args:
        images: (B, H, W, ch) images in [0, 1], or None to draw the maps only.
        positive: (B, H, W) raw positive maps (`SignedSaliency.explain(...,
            normalize=False)["positive"]`); or, with `negative` None, signed
            (B, H, W) maps such as a gradient summed over channels.
        negative: (B, H, W) raw negative maps (`...["negative"]`), or None.
        titles: optional one title per row, left of it (see `prediction_titles`).
        cmap: a diverging matplotlib colormap, red for positive ("RdBu_r",
            "bwr", "seismic").
        colorbar: add the colour bar, [-1, 1], at the right.
        alpha: None draws the signed map in its own column; a number in [0, 1]
            draws it over the image instead, with that opacity.
        cell_size: size in inches of one image.
        suptitle: optional title of the whole figure.

    Returns:
        A `matplotlib.figure.Figure` whose axes are the cells row by row, then
        the colour bar's. In each row's signed cell, `ax.images[-1]` is the
        signed map.

    Example:
        >>> raw = tf_signsal.SignedSaliency(model).explain(
        ...     images[:4], methods=["positive", "negative"], normalize=False)
        >>> fig = plot_signed(images[:4], raw["positive"], raw["negative"])
        >>> save_figure(fig, "signed.png")
    """
    pictures = signed_view(positive, negative)
    scales = np.abs(
        np.asarray(_to_numpy(positive), np.float32)
        - (0.0 if negative is None else np.asarray(_to_numpy(negative), np.float32))
    ).max(axis=(1, 2))
    rows = pictures.shape[0]
    if rows == 0:
        raise ValueError("the maps hold no image (batch size 0): there is nothing to draw")
    if images is not None:
        images = _check_images(images, pictures.shape)
    _check_titles(titles, rows)
    colormap = _colormap(cmap)
    colorbar = _checks.boolean("colorbar", colorbar)
    if alpha is not None:
        alpha = _checks.real("alpha", alpha, minimum=0.0, maximum=1.0)
        if images is None:
            raise ValueError("`alpha` draws the signed map over the images: give `images`")

    headers = ["signed map over the image" if alpha is not None else "signed map"]
    if images is not None and alpha is None:
        headers.insert(0, "image")
    frame = _frame(
        rows, len(headers), cell_size, labels=titles, headers=headers, suptitle=suptitle,
        bar_label=SCALE_LABEL if colorbar else None, note_lines=1,
    )
    shown = None
    for row in range(rows):
        if len(headers) == 2:
            axis = frame.add_cell(row, 0)
            gray = {"cmap": "gray", "vmin": 0.0, "vmax": 1.0} if images.shape[-1] == 1 else {}
            axis.imshow(_as_picture(images[row]), interpolation="nearest", **gray)
            frame.label(axis, row)
            if row == 0:
                frame.header(axis, 0)
        axis = frame.add_cell(row, len(headers) - 1)
        if alpha is not None:
            shown = overlay(axis, images[row], pictures[row], alpha, colormap, -1.0, 1.0)
        else:
            shown = axis.imshow(
                pictures[row], interpolation="nearest", cmap=colormap, vmin=-1.0, vmax=1.0
            )
        frame.note(axis, f"max |map| = {scales[row]:.3g}")
        if len(headers) == 1:
            frame.label(axis, row)
        if row == 0:
            frame.header(axis, len(headers) - 1)
    if colorbar:
        frame.colorbar(shown, ticks=(-1.0, -0.5, 0.0, 0.5, 1.0))
    return frame.figure
