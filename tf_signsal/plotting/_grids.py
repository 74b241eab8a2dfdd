"""Map grids: the paper's Fig. 1, maps over their images, and one map across epochs."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.image
import numpy as np
from matplotlib.figure import Figure
from matplotlib.transforms import blended_transform_factory

from tf_signsal import _checks
from tf_signsal.plotting._common import (
    _as_picture,
    _check_images,
    _check_maps,
    _check_titles,
    _colormap,
    _frame,
    _to_numpy,
    class_label,
)
from tf_signsal.vocabulary import METHODS


def _shown_maps(array: np.ndarray, normalized: bool) -> np.ndarray:
    """What a (B, H, W) map batch looks like on screen: as it is when normalised, else
    the package's own per-map min-max (a constant map shows as 0)."""
    if normalized:
        return array
    # Imported here: the package's own normalisation (so the pixels are those of
    # `explain`), whose TensorFlow only raw maps need.
    from tf_signsal.maps import normalize_maps

    return normalize_maps(np.asarray(array, np.float32)).numpy()


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
        titles: optional one title per row, written left of it and wrapped to
            ~25 characters a line (see `prediction_titles`); a title too long for
            its row is shortened with "…" and given in full in a caption below.
        normalized: True for maps in [0, 1], drawn with vmin 0 and vmax 1 so
            that colours compare across maps; False scales each map to its own
            range (for raw gradients).
        cmap: matplotlib colormap of the maps (the paper uses "hot").
        cell_size: size in inches of one image: the figure grows with the rows
            and columns, so that every picture keeps this size.
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

    frame = _frame(
        rows, len(columns), cell_size, labels=titles, headers=[c[0] for c in columns],
        suptitle=suptitle, row_gap=cell_size * gap / shape[1],
        bar_label=("normalised map" if normalized else "map, min-max per image")
        if colorbar else None,
    )
    axes = []
    for index, (_, picture, style) in enumerate(columns):
        axes.append(frame.add_cell(0, index, rows=rows))
        axes[-1].imshow(picture, interpolation="nearest", **style)
        frame.header(axes[-1], index)
    if titles is not None:
        # Each label at its row's centre, in the first column's pixels.
        rows_of = blended_transform_factory(axes[0].transAxes, axes[0].transData)
        for row in range(rows):
            frame.label(axes[0], row, row * (shape[1] + gap) + shape[1] / 2, rows_of)
    if colorbar:
        frame.colorbar(axes[-1].images[0])
    return frame.figure


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
        titles: optional one title per row, left of it (wrapped as in
            `plot_maps_grid`).
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

    rows = shape[0]
    frame = _frame(
        rows, len(methods) + 1, cell_size, labels=titles, headers=["image", *methods],
        suptitle=suptitle, bar_label="normalised map" if colorbar else None,
    )
    gray = {"cmap": "gray", "vmin": 0.0, "vmax": 1.0} if pictures.shape[-1] == 1 else {}
    last = None
    for row in range(rows):
        axis = frame.add_cell(row, 0)
        axis.imshow(_as_picture(pictures[row]), interpolation="nearest", **gray)
        frame.label(axis, row)
        if row == 0:
            frame.header(axis, 0)
        for column, method in enumerate(methods, start=1):
            axis = frame.add_cell(row, column)
            last = overlay(axis, pictures[row], shown[method][row], alpha, colormap)
            if row == 0:
                frame.header(axis, column)
    if colorbar:
        frame.colorbar(last)
    return frame.figure


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


def plot_map_evolution(
    log_dir: str | os.PathLike,
    image_index: int,
    method: str,
    cmap: str = "hot",
    cell_size: float = 1.6,
) -> Figure:
    """One image's map across the epochs logged by `SaliencyMapsCallback`.

    Reads the callback's `epoch_NNNN.npz` files in `log_dir` with
    `tf_signsal.callbacks.read_map_log` (which imports Keras): the first column
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
    # The files are the callback's format: it reads them back (and checks the arguments).
    from tf_signsal.callbacks import read_map_log

    log = read_map_log(log_dir, image_index, method)
    frames = list(zip(log.epochs, log.maps, log.predictions))
    image, class_names = log.image, log.class_names
    headers = ["image"] * (image is not None) + [
        f"epoch {epoch}\npred: {class_label(predicted, class_names)}"
        for epoch, _, predicted in frames
    ]
    frame = _frame(
        1, len(headers), cell_size, headers=headers,
        suptitle=f"{method} map of image {image_index}",
    )
    column = 0
    if image is not None:
        # A one-channel image in true gray, as in `plot_maps_grid` (not stretched to its range).
        axis = frame.add_cell(0, 0)
        axis.imshow(_as_picture(image), interpolation="nearest", cmap="gray", vmin=0.0, vmax=1.0)
        frame.header(axis, 0)
        column = 1
    for index, (_, saliency, _) in enumerate(frames, start=column):
        axis = frame.add_cell(0, index)
        axis.imshow(saliency, interpolation="nearest", cmap=cmap, vmin=0.0, vmax=1.0)
        frame.header(axis, index)
    return frame.figure
