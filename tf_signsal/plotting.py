"""Figures of saliency maps: the paper's Fig. 1 grid and a map's evolution in training.

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


def plot_maps_grid(
    images: Any,
    maps: Mapping[str, Any],
    methods: Sequence[str] = METHODS,
    titles: Sequence[str] | None = None,
    normalized: bool = True,
    cmap: str = "hot",
    cell_size: float = 1.6,
    suptitle: str | None = None,
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

    Returns:
        A `matplotlib.figure.Figure` (not attached to pyplot).

    Example:
        >>> maps = tf_signsal.SignedSaliency(model).explain(images)
        >>> fig = plot_maps_grid(images, maps, titles=prediction_titles(preds, labels, names))
        >>> save_figure(fig, "maps.png")
    """
    methods = _checks.check_choices("methods", methods, tuple(maps))
    arrays = {m: _to_numpy(maps[m]) for m in methods}
    shape = arrays[methods[0]].shape
    for method, array in arrays.items():
        if array.ndim != 3 or array.shape != shape:
            raise ValueError(
                f"`maps` must hold (B, H, W) arrays of one shape, received {array.shape} "
                f"for {method!r} and {shape} for {methods[0]!r}"
            )
    rows = shape[0]
    if rows == 0:
        raise ValueError("`maps` holds no image (batch size 0): there is nothing to draw")
    if images is not None:
        images = _to_numpy(_checks.as_image_batch(images))
        if images.shape[:3] != shape:
            raise ValueError(
                f"`images` must have shape ({shape[0]}, {shape[1]}, {shape[2]}, ch) to match "
                f"the maps, received {images.shape}"
            )
    if titles is not None and len(titles) != rows:
        raise ValueError(f"`titles` must hold one title per image ({rows}), received {len(titles)}")

    # One axes per column, showing the column's pictures stacked with thin
    # transparent gaps: a 16 x 6 grid draws ~10x faster than 96 axes.
    gap = max(1, round(shape[1] * 0.08))
    columns = []
    if images is not None:
        columns.append(("image", _stack(_as_rgba(images), gap, fill=0.0), {}))
    colormap = matplotlib.colormaps[cmap].with_extremes(bad=(0.0, 0.0, 0.0, 0.0))
    for method in methods:
        shown = arrays[method]
        if not normalized:  # the package's own per-map min-max: a constant map shows as 0
            shown = normalize_maps(np.asarray(shown, np.float32)).numpy()
        columns.append((method, _stack(shown, gap), {"cmap": colormap, "vmin": 0.0, "vmax": 1.0}))

    left, top = (0.55 if titles is not None else 0.1), (0.6 if suptitle else 0.35)
    width, height = cell_size * len(columns) + left + 0.1, cell_size * rows + top + 0.1
    figure = Figure(figsize=(width, height))
    figure.subplots_adjust(
        left=left / width,
        right=1 - 0.1 / width,
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
    if suptitle:
        figure.suptitle(suptitle, fontsize=10, y=1 - 0.1 / height, va="top")
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
