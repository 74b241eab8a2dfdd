"""Figures of saliency maps: the paper's Fig. 1 grid, maps over their images, the
signed view, colour bars, deletion curves and a map's evolution in training.

- `plot_maps_grid`: a row per image, columns image | one map per method (Fig. 1).
- `overlay` / `plot_overlays`: a map drawn half-transparent over its image.
- `signed_view` / `plot_signed`: positive attribution red, negative blue, in one
  picture, from the raw (`normalize=False`) positive and negative maps.
- `add_colorbar`: the colour bar of any of the pictures above.
- `plot_allegiance`, `plot_randomization`, `plot_map_evolution`: curves and logs.

Everything here builds `matplotlib.figure.Figure` objects directly (no pyplot
state), so it works headless, in threads and inside Keras callbacks. Save a
figure with `save_figure`, which never leaves a half-written file.
"""

from __future__ import annotations

import glob
import io
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import matplotlib.colorbar
import matplotlib.colors
import matplotlib.image
import numpy as np
from matplotlib.figure import Figure

from tf_signsal import _checks
from tf_signsal._io import write_atomic
from tf_signsal.evaluation import DELETION_METHODS, AllegianceResult, Pair, pair_name
from tf_signsal.maps import METHODS, normalize_maps

#: The file name of one logged epoch, `epoch_0003.npz` and so on.
EPOCH_FILE = "epoch_{epoch:04d}.{ext}"
_EPOCH_PATTERN = re.compile(r"epoch_(\d+)\.npz$")


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


def _shown_maps(array: np.ndarray, normalized: bool) -> np.ndarray:
    """What a (B, H, W) map batch looks like on screen: as it is when normalised, else
    the package's own per-map min-max (a constant map shows as 0)."""
    if normalized:
        return array
    return normalize_maps(np.asarray(array, np.float32)).numpy()


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


def plot_maps_grid(
    images: Any,
    maps: Mapping[str, Any],
    methods: Sequence[str] = METHODS,
    titles: Sequence[str] | None = None,
    normalized: bool = True,
    cmap: str = "hot",
    cell_size: float = 1.6,
    suptitle: str | None = None,
    colorbar: bool = False,
) -> Figure:
    """The paper's Fig. 1: a row per image, columns image | one map per method.

    Args:
        images: (B, H, W, ch) images in [0, 1] (array or tensor), or None to
            draw the maps only.
        maps: dict method -> (B, H, W) maps, as `SignedSaliency.explain` returns.
        methods: which maps to draw, in column order; each must be in `maps`.
        titles: optional one title per row (see `prediction_titles`).
        normalized: True for maps in [0, 1], drawn with vmin 0 and vmax 1 so
            that colours compare across maps; False scales each map to its own
            range (for raw gradients).
        cmap: matplotlib colormap of the maps (the paper uses "hot").
        cell_size: size in inches of one image.
        suptitle: optional title of the whole figure.
        colorbar: add one colour bar, [0, 1], at the right of the maps (it
            holds for every map: all are drawn with the same limits).

    Returns:
        A `matplotlib.figure.Figure` (not attached to pyplot). Its first axes
        are the columns, in order (each shows its column's pictures stacked
        with transparent gaps); the colour bar's axes, when asked for, is last.

    Example:
        >>> maps = tf_signsal.SignedSaliency(model).explain(images)
        >>> fig = plot_maps_grid(images, maps, titles=prediction_titles(preds, labels, names))
        >>> save_figure(fig, "maps.png")
    """
    methods, arrays = _check_maps(maps, methods)
    shape = arrays[methods[0]].shape
    rows = shape[0]
    if images is not None:
        images = _check_images(images, shape)
    _check_titles(titles, rows)
    colorbar = _checks.boolean("colorbar", colorbar)

    # One axes per column, showing the column's pictures stacked with thin
    # transparent gaps: a 16 x 6 grid draws ~10x faster than 96 axes.
    gap = max(1, round(shape[1] * 0.08))
    columns = []
    if images is not None:
        columns.append(("image", _stack(_as_rgba(images), gap, fill=0.0), {}))
    colormap = _colormap(cmap).with_extremes(bad=(0.0, 0.0, 0.0, 0.0))
    for method in methods:
        shown = _shown_maps(arrays[method], normalized)
        columns.append((method, _stack(shown, gap), {"cmap": colormap, "vmin": 0.0, "vmax": 1.0}))

    left, top = (0.55 if titles is not None else 0.1), (0.6 if suptitle else 0.35)
    right = 0.75 if colorbar else 0.1  # room for the bar and its tick labels
    width, height = cell_size * len(columns) + left + right, cell_size * rows + top + 0.1
    figure = Figure(figsize=(width, height))
    figure.subplots_adjust(
        left=left / width,
        right=1 - right / width,
        top=1 - top / height,
        bottom=0.1 / height,
        wspace=0.06,
    )
    axes = figure.subplots(1, len(columns), squeeze=False)[0]
    for axis, (header, picture, style) in zip(axes, columns):
        _show(axis, picture, header, 9, **style)
    if titles is not None:
        for row, title in enumerate(titles):
            centre = row * (shape[1] + gap) + shape[1] / 2
            axes[0].text(
                -0.04 * shape[2], centre, title, rotation=90, ha="right", va="center", fontsize=8
            )
    if colorbar:
        # As tall as the pictures: the axes box minus the aspect's spare room.
        bar_height = min(1.0, cell_size * rows / (height - top - 0.1))
        low = 0.1 / height + (1 - bar_height) * (1 - (top + 0.1) / height) / 2
        span = bar_height * (1 - (top + 0.1) / height)
        cax = figure.add_axes((1 - (right - 0.12) / width, low, 0.12 / width, span))
        add_colorbar(axes[-1].images[0], cax=cax, label="normalised map" if normalized else
                     "map, min-max per image")
    if suptitle:
        figure.suptitle(suptitle, fontsize=10, y=1 - 0.1 / height, va="top")
    return figure


def overlay(
    ax: Any,
    image: Any,
    saliency_map: Any,
    alpha: float = 0.5,
    cmap: str = "hot",
    vmin: float = 0.0,
    vmax: float = 1.0,
) -> matplotlib.image.AxesImage:
    """Draw a map half-transparent over its image, on `ax`.

    Two pictures are drawn, in this order: `ax.images[0]` is the image
    (clipped to [0, 1]; one channel in gray, with limits 0 and 1), and
    `ax.images[1]` the map, exactly as given, coloured by `cmap` between
    `vmin` and `vmax` and blended with opacity `alpha` (a pixel's colour is
    `alpha * cmap(map) + (1 - alpha) * image`). The axes' ticks and frame are
    hidden.

    Args:
        ax: a matplotlib Axes, e.g. `Figure().subplots()`.
        image: one image (H, W, ch) in [0, 1], array or tensor.
        saliency_map: its map (H, W), e.g. `maps["positive"][i]`.
        alpha: opacity of the map in [0, 1] (0 shows the image only).
        cmap: matplotlib colormap of the map.
        vmin: the map value drawn with the colormap's first colour (values
            below take it too); 0 for normalised maps.
        vmax: the map value drawn with its last colour; 1 for normalised maps.

    Returns:
        The map's `AxesImage` (`ax.images[1]`), to give to `add_colorbar`.

    Example:
        >>> fig = Figure(figsize=(3, 3))
        >>> ax = fig.subplots()
        >>> shown = overlay(ax, images[0], maps["positive"][0], alpha=0.6)
        >>> add_colorbar(shown)
        >>> save_figure(fig, "overlay.png")
    """
    picture = _to_numpy(image)
    if picture.ndim != 3:
        raise ValueError(f"`image` must have shape (H, W, ch), received shape {picture.shape}")
    picture = _to_numpy(_checks.as_image_batch(picture[None], "image"))[0]
    values = _to_numpy(saliency_map)
    if values.shape != picture.shape[:2]:
        raise ValueError(
            f"`saliency_map` must have the image's shape {picture.shape[:2]}, "
            f"received {values.shape}"
        )
    alpha = _checks.real("alpha", alpha, minimum=0.0, maximum=1.0)
    vmin, vmax = _checks.value_range((vmin, vmax), "(vmin, vmax)")
    colormap = _colormap(cmap)
    gray = {"cmap": "gray", "vmin": 0.0, "vmax": 1.0} if picture.shape[-1] == 1 else {}
    ax.imshow(_as_picture(picture), interpolation="nearest", **gray)
    shown = ax.imshow(
        values, cmap=colormap, vmin=vmin, vmax=vmax, alpha=alpha, interpolation="nearest"
    )
    ax.set_axis_off()
    return shown


def plot_overlays(
    images: Any,
    maps: Mapping[str, Any],
    methods: Sequence[str] = METHODS,
    titles: Sequence[str] | None = None,
    alpha: float = 0.5,
    cmap: str = "hot",
    colorbar: bool = True,
    normalized: bool = True,
    cell_size: float = 1.6,
    suptitle: str | None = None,
) -> Figure:
    """A row per image, columns image | the image under each method's map.

    Each overlay cell is drawn by `overlay`: `ax.images[0]` the image,
    `ax.images[1]` the map with opacity `alpha`, limits 0 and 1.

    Args:
        images: (B, H, W, ch) images in [0, 1] (array or tensor).
        maps: dict method -> (B, H, W) maps, as `SignedSaliency.explain` returns.
        methods: which maps to draw, in column order; each must be in `maps`.
        titles: optional one title per row (see `prediction_titles`).
        alpha: opacity of the maps, in [0, 1].
        cmap: matplotlib colormap of the maps.
        colorbar: add one colour bar, [0, 1], at the right of the figure.
        normalized: True for maps in [0, 1]; False min-max scales each map to
            [0, 1] first, as `plot_maps_grid` does.
        cell_size: size in inches of one image.
        suptitle: optional title of the whole figure.

    Returns:
        A `matplotlib.figure.Figure` whose axes are the cells, row by row
        (`figure.axes[row * columns + column]`), then the colour bar's.

    Example:
        >>> maps = tf_signsal.SignedSaliency(model).explain(images[:4])
        >>> fig = plot_overlays(images[:4], maps, methods=["positive", "active"])
        >>> save_figure(fig, "overlays.png")
    """
    methods, arrays = _check_maps(maps, methods)
    shape = arrays[methods[0]].shape
    pictures = _check_images(images, shape)
    _check_titles(titles, shape[0])
    alpha = _checks.real("alpha", alpha, minimum=0.0, maximum=1.0)
    colormap = _colormap(cmap)
    colorbar = _checks.boolean("colorbar", colorbar)
    shown = {m: _shown_maps(arrays[m], normalized) for m in methods}

    rows, columns = shape[0], len(methods) + 1
    figure = Figure(
        figsize=(cell_size * columns + (0.9 if colorbar else 0.3), cell_size * rows + 0.5),
        layout="constrained",
    )
    axes = figure.subplots(rows, columns, squeeze=False)
    gray = {"cmap": "gray", "vmin": 0.0, "vmax": 1.0} if pictures.shape[-1] == 1 else {}
    last = None
    for row in range(rows):
        _show(axes[row, 0], _as_picture(pictures[row]), "image" if row == 0 else "", 9, **gray)
        if titles is not None:
            axes[row, 0].text(
                -0.06, 0.5, titles[row], rotation=90, ha="right", va="center", fontsize=8,
                transform=axes[row, 0].transAxes,
            )
        for column, method in enumerate(methods, start=1):
            last = overlay(axes[row, column], pictures[row], shown[method][row], alpha, colormap)
            if row == 0:
                axes[row, column].set_title(method, fontsize=9)
    if colorbar:
        add_colorbar(last, ax=axes, label="normalised map", shrink=min(1.0, 0.3 + 0.2 * rows))
    if suptitle:
        figure.suptitle(suptitle, fontsize=10)
    return figure


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
    that per-image maximum, which each row's title gives ("max |.| = ...").

    Args:
        images: (B, H, W, ch) images in [0, 1], or None to draw the maps only.
        positive: (B, H, W) raw positive maps (`SignedSaliency.explain(...,
            normalize=False)["positive"]`); or, with `negative` None, signed
            (B, H, W) maps such as a gradient summed over channels.
        negative: (B, H, W) raw negative maps (`...["negative"]`), or None.
        titles: optional one title per row (see `prediction_titles`).
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

    columns = 1 + (images is not None and alpha is None)
    figure = Figure(
        figsize=(cell_size * columns + (1.0 if colorbar else 0.4), cell_size * rows + 0.6),
        layout="constrained",
    )
    axes = figure.subplots(rows, columns, squeeze=False)
    shown = None
    for row in range(rows):
        scale = f"max |.| = {scales[row]:.3g}"
        title = scale if titles is None else f"{titles[row]}\n{scale}"
        if alpha is not None:
            shown = overlay(axes[row, 0], images[row], pictures[row], alpha, colormap, -1.0, 1.0)
            axes[row, 0].set_title(title, fontsize=8)
            continue
        if images is not None:
            gray = {"cmap": "gray", "vmin": 0.0, "vmax": 1.0} if images.shape[-1] == 1 else {}
            _show(axes[row, 0], _as_picture(images[row]), "image" if row == 0 else "", 9, **gray)
        axis = axes[row, -1]
        _show(axis, pictures[row], title, 8, cmap=colormap, vmin=-1.0, vmax=1.0)
        shown = axis.images[-1]
    if colorbar:
        bar = add_colorbar(
            shown, ax=axes, label="signed map / max |.| per image",
            shrink=min(1.0, 0.35 + 0.2 * rows),
        )
        bar.set_ticks([-1.0, -0.5, 0.0, 0.5, 1.0])
    if suptitle:
        figure.suptitle(suptitle, fontsize=10)
    return figure


def _stack(pictures: np.ndarray, gap: int, fill: float = np.nan) -> np.ndarray:
    """(B, H, W[, ch]) pictures stacked vertically, `gap` rows of `fill` between them."""
    count, height = pictures.shape[:2]
    tall = np.full((count * (height + gap) - gap, *pictures.shape[2:]), fill, np.float32)
    for index, picture in enumerate(pictures):
        tall[index * (height + gap) : index * (height + gap) + height] = picture
    return tall


def _as_rgba(images: np.ndarray) -> np.ndarray:
    # RGBA so that the gaps (all 0, alpha included) are transparent; one channel is gray.
    images = np.clip(images, 0.0, 1.0)
    rgb = np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images[..., :3]
    return np.concatenate([rgb, np.ones_like(rgb[..., :1])], axis=-1)


def logged_epochs(log_dir: str | os.PathLike) -> list[tuple[int, str]]:
    """The (epoch, npz path) pairs that `SaliencyMapsCallback` wrote, by epoch."""
    found = []
    for path in glob.glob(os.path.join(os.fspath(log_dir), "epoch_*.npz")):
        match = _EPOCH_PATTERN.search(os.path.basename(path))
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def plot_map_evolution(
    log_dir: str | os.PathLike,
    image_index: int,
    method: str,
    cmap: str = "hot",
    cell_size: float = 1.6,
) -> Figure:
    """One image's map across the epochs logged by `SaliencyMapsCallback`.

    Reads the callback's `epoch_NNNN.npz` files in `log_dir`: the first column
    shows the image (when the files hold it), then one column per logged epoch,
    titled with the epoch and the class predicted then.

    Args:
        log_dir: the callback's `log_dir`.
        image_index: which image of the probe batch.
        method: one of `METHODS` that the callback logged.
        cmap: colormap of the maps.
        cell_size: size in inches of one image.

    Returns:
        A `matplotlib.figure.Figure`.

    Example:
        >>> fig = plot_map_evolution("logs/maps", image_index=3, method="positive")
        >>> save_figure(fig, "evolution.png")
    """
    image_index = _checks.non_negative_int("image_index", image_index)
    epochs = logged_epochs(log_dir)
    if not epochs:
        raise ValueError(f"`log_dir` {os.fspath(log_dir)!r} holds no epoch_NNNN.npz file")
    frames, image, class_names = [], None, None
    for epoch, path in epochs:
        with np.load(path) as data:
            if method not in data.files:
                logged = [m for m in METHODS if m in data.files]
                raise ValueError(
                    f"`method` must be one of the logged maps {logged}, received {method!r}"
                )
            batch = data[method].shape[0]
            if image_index >= batch:
                raise ValueError(
                    f"`image_index` must be an integer in [0, {batch}), received {image_index!r}"
                )
            frames.append((epoch, data[method][image_index], int(data["predictions"][image_index])))
            if image is None and "images" in data.files:
                image = data["images"][image_index]
            if class_names is None and "class_names" in data.files:
                class_names = [str(n) for n in data["class_names"]]
    columns = len(frames) + (image is not None)
    figure = Figure(figsize=(cell_size * columns + 0.4, cell_size + 0.8), layout="constrained")
    axes = list(figure.subplots(1, columns, squeeze=False)[0])
    if image is not None:
        # A one-channel image in true gray, as in `plot_maps_grid` (not stretched to its range).
        _show(axes.pop(0), _as_picture(image), "image", 9, cmap="gray", vmin=0.0, vmax=1.0)
    for axis, (epoch, saliency, predicted) in zip(axes, frames):
        title = f"epoch {epoch}\npred: {class_label(predicted, class_names)}"
        _show(axis, saliency, title, 8, cmap=cmap, vmin=0.0, vmax=1.0)
    figure.suptitle(f"{method} map of image {image_index}", fontsize=10)
    return figure


def save_figure(figure: Figure, path: str | os.PathLike, dpi: float = 100) -> None:
    """Save `figure` (format from the extension, e.g. .png) atomically to `path`."""
    buffer = io.BytesIO()
    extension = os.path.splitext(os.fspath(path))[1].lstrip(".") or "png"
    figure.savefig(buffer, format=extension, dpi=dpi)
    write_atomic(path, buffer.getvalue())


def plot_allegiance(
    result: AllegianceResult,
    ax: Any = None,
    title: str | None = None,
    pairs: Sequence[Pair] | None = None,
    order: str = "morf",
) -> Any:
    """Allegiance curves of an `AllegianceResult`, as in the paper's Figs. 3 and 4.

    x: pixels deleted (%) (for insertion: pixels not yet put back), y: allegiance;
    the legend gives each AUC. Black fills are solid lines, white fills dashed,
    other fills dotted.

    Args:
        ax: a matplotlib Axes to draw on; a new figure when None.
        title: an optional title.
        pairs: the (method, fill) pairs to draw, in legend order; all when None
            (e.g. the black-fill pairs only, for one panel of Fig. 3).
        order: which order's curves: "morf" (the paper's), "lerf" or "insertion",
            among those the result holds.

    Returns:
        the matplotlib Axes.

    Example:
        >>> ax = plotting.plot_allegiance(result, pairs=[("positive", "black")])
        >>> plotting.save_figure(ax.figure, "curves.png")
    """
    import matplotlib.pyplot as plt  # only needed here

    if order not in result.order_curves:
        raise ValueError(f"`order` must be among the result's orders {list(result.orders)}, "
                         f"received {order!r}")
    curves, auc = result.order_curves[order], result.order_auc[order]
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4))
    # The package's maps keep their colours whatever else is drawn; other maps take the rest.
    colors = dict(zip(DELETION_METHODS, ("C0", "C1", "C2", "C3", "C4", "C7")))
    spare = iter(("C5", "C6", "C8", "C9"))
    for method, _ in result.pairs:
        if method not in colors:
            colors[method] = next(spare, "k")
    styles = {"black": "-", "white": "--"}
    if pairs is None:
        pairs = result.pairs
    else:
        pairs = tuple(tuple(p) for p in pairs)
        unknown = [pair_name(p) for p in pairs if p not in result.curves]
        if unknown:
            raise ValueError(
                f"`pairs` must be among the evaluated pairs "
                f"{[pair_name(p) for p in result.pairs]}, received unknown {unknown}"
            )
    for pair in pairs:
        method, fill = pair
        ax.plot(
            result.fractions * 100,
            curves[pair],
            linestyle=styles.get(fill, ":") if isinstance(fill, str) else ":",
            color=colors[method],
            marker=".",
            label=f"{pair_name(pair)} (AUC {auc[pair]:.3f})",
        )
    ax.set_xlabel("pixels deleted (%)")
    ax.set_ylabel("allegiance")
    ax.set_xlim(0, 100 * float(result.fractions[-1]) if result.fractions[-1] > 0 else 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    if title or order != "morf":
        ax.set_title(" - ".join(t for t in (title, None if order == "morf" else order) if t))
    return ax


def plot_randomization(result: Any, ax: Any = None, title: str | None = None) -> Any:
    """Rank correlation with the intact maps at each randomisation step of a
    `RandomizationResult`, as in Adebayo et al.'s Fig. 2 (arXiv 1810.03292).

    x: "intact", then the randomised layers from the top (cascading: each step
    adds one layer; independent: one layer at a time); y: the mean Spearman rank
    correlation with the intact model's maps. One solid line per map, the signed
    gradient dashed, and a line at 0 (no agreement left).

    Args:
        result: a `tf_signsal.evaluation.sanity.RandomizationResult`.
        ax: a matplotlib Axes to draw on; a new figure when None.
        title: an optional title.

    Returns:
        the matplotlib Axes.

    Example:
        >>> ax = plotting.plot_randomization(randomization_check(model, images))
        >>> plotting.save_figure(ax.figure, "randomization.png")
    """
    import matplotlib.pyplot as plt  # only needed here

    steps = tuple(result.steps)
    if ax is None:
        _, ax = plt.subplots(figsize=(max(5.0, 0.45 * len(steps) + 2.5), 4), layout="constrained")
    x = np.arange(len(steps))
    colors = dict(zip(METHODS, ("C0", "C1", "C2", "C3", "C4")))  # as plot_allegiance
    for method, values in result.spearman.items():
        ax.plot(x, values, marker=".", color=colors.get(method), label=method)
    ax.plot(
        x, result.spearman_signed, linestyle="--", marker=".", color="k", label="signed gradient"
    )
    ax.axhline(0.0, color="gray", linewidth=0.8)
    ax.set_xticks(x)
    ax.set_xticklabels(steps, rotation=60, ha="right", rotation_mode="anchor", fontsize="small")
    ax.set_xlim(-0.3, len(steps) - 0.7)
    ax.set_ylim(-1.05, 1.05)
    ax.set_xlabel(
        "layers randomised from the top (cascading)"
        if result.cascade
        else "layer randomised (one at a time)"
    )
    ax.set_ylabel("rank correlation with the intact map")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return ax
