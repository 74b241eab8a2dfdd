"""What every figure of `tf_signsal.plotting` shares: array and argument checks,
titles, colormaps, the colour bar, the atomic save, and the layout of a grid of pictures
(`_frame`): sizes in inches, text measured and wrapped so that no label overlaps another
or leaves the figure."""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib
import matplotlib.colorbar
import matplotlib.colors
import numpy as np
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.textpath import text_to_path
from matplotlib.transforms import ScaledTranslation

from tf_signsal import _checks
from tf_signsal._io import write_atomic


def _to_numpy(value: Any) -> np.ndarray:
    return value.numpy() if hasattr(value, "numpy") else np.asarray(value)


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


# Font sizes (points) and distances (inches) of every grid of pictures.
LABEL_SIZE, HEADER_SIZE, TITLE_SIZE, NOTE_SIZE = 8.0, 9.0, 10.0, 7.0
_PAD = 0.1  # between the figure's edge and what it holds
_LABEL_GAP = 4.0  # points between a row label and its row
_LABEL_WIDTH = 1.4  # the widest a row label grows before it wraps: ~25 characters a line
_HEADER_LINES = 3  # a column header longer than this is shortened (in full in the caption)
_BAR_WIDTH, _BAR_GAP, _BAR_TALLEST = 0.14, 0.15, 3.0


def text_width(text: str, fontsize: float) -> float:
    """The width in inches of one line of `text` in matplotlib's default font, a little
    over what the renderer draws (its hinting rounds a few percent up)."""
    width, _, _ = text_to_path.get_text_width_height_descent(
        text, FontProperties(size=fontsize), ismath=False
    )
    return width / 72 * 1.05 + 0.02


def text_height(lines: int, fontsize: float) -> float:
    """The height in inches of `lines` lines of text (matplotlib's line spacing 1.2, and
    the last line's descent)."""
    return 0.0 if lines <= 0 else (1.2 * lines + 0.15) * fontsize / 72


def _longest_fitting(text: str, width: float, fontsize: float) -> int:
    """The length of the longest start of `text` (one character at least) that fits `width`."""
    low, high = 1, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if text_width(text[:middle], fontsize) <= width:
            low = middle
        else:
            high = middle - 1
    return low


def wrap_text(
    text: str, width: float, fontsize: float, max_lines: int | None = None
) -> tuple[str, bool]:
    """`text` broken into lines no wider than `width` inches at `fontsize`: at spaces, and
    inside a word too long for a line; its own line breaks are kept. Past `max_lines`
    lines, the last kept one ends in "…". Returns the text and whether it was shortened."""
    lines: list[str] = []
    for paragraph in str(text).split("\n"):
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if text_width(candidate, fontsize) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            line = word
            while len(line) > 1 and text_width(line, fontsize) > width:
                cut = _longest_fitting(line, width, fontsize)
                lines.append(line[:cut])
                line = line[cut:]
        lines.append(line)
    if max_lines is None or len(lines) <= max(1, max_lines):
        return "\n".join(lines), False
    kept = lines[: max(1, max_lines)]
    last = kept[-1]
    while last and text_width(last + "…", fontsize) > width:
        last = last[:-1]
    kept[-1] = last.rstrip() + "…"
    return "\n".join(kept), True


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


@dataclass
class _Frame:
    """A figure laid out in inches: a title, column headers, rows x columns square cells
    with row labels at their left, a colour bar at the right and a caption below.

    Every text is wrapped to the room it has (`wrap_text`), and the figure grows to hold
    it: nothing overlaps or leaves the figure, whatever the labels' length. A label or
    header too long even so is shortened, and given in full in the caption.
    """

    figure: Figure
    cell: float
    gaps: tuple[float, float]  # between columns, between rows (notes included)
    left: float  # from the figure's left edge to the first column
    top: float  # from the figure's top edge to the first row
    labels: list[str] | None
    headers: list[str]
    bar: tuple[float, float, float, float] | None  # x0, y0 (from the bottom), width, height
    bar_label: str
    note_width: float

    def rect(self, row: int, column: int, rows: int = 1) -> tuple[float, float, float, float]:
        """The figure-fraction box of the cell (`row`, `column`), `rows` rows tall."""
        width, height = self.figure.get_size_inches()
        x0 = self.left + column * (self.cell + self.gaps[0])
        top = self.top + row * (self.cell + self.gaps[1])
        tall = rows * self.cell + (rows - 1) * self.gaps[1]
        return x0 / width, 1 - (top + tall) / height, self.cell / width, tall / height

    def add_cell(self, row: int, column: int, rows: int = 1) -> Any:
        """A new axes, without ticks or frame, on the cell (`row`, `column`)."""
        axis = self.figure.add_axes(self.rect(row, column, rows))
        axis.set_axis_off()
        return axis

    def header(self, axis: Any, column: int) -> None:
        """Column `column`'s header above `axis`."""
        if self.headers[column]:
            axis.set_title(self.headers[column], fontsize=HEADER_SIZE, pad=4, parse_math=False)

    def label(self, axis: Any, row: int, y: float = 0.5, transform: Any = None) -> None:
        """Row `row`'s label left of `axis`, centred on `y` (in `transform`'s units, the
        axes' fraction by default)."""
        if self.labels is None:
            return
        offset = ScaledTranslation(-_LABEL_GAP / 72, 0, self.figure.dpi_scale_trans)
        axis.text(
            0.0, y, self.labels[row], transform=(transform or axis.transAxes) + offset,
            ha="right", va="center", fontsize=LABEL_SIZE, parse_math=False,
        )

    def note(self, axis: Any, text: str) -> None:
        """A small note under the cell of `axis` (the room `_frame(..., note_lines=)` made)."""
        offset = ScaledTranslation(0, -2 / 72, self.figure.dpi_scale_trans)
        axis.text(
            0.5, 0.0, wrap_text(text, self.note_width, NOTE_SIZE)[0],
            transform=axis.transAxes + offset, ha="center", va="top", fontsize=NOTE_SIZE,
            parse_math=False,
        )

    def colorbar(self, mappable: Any, ticks: Sequence[float] | None = None) -> Any:
        """The frame's one colour bar, of `mappable`, right of the cells."""
        width, height = self.figure.get_size_inches()
        x0, y0, bar_width, bar_height = self.bar
        cax = self.figure.add_axes((x0 / width, y0 / height, bar_width / width,
                                    bar_height / height))
        bar = add_colorbar(mappable, cax=cax, label=self.bar_label)
        if ticks is not None:
            bar.set_ticks(list(ticks))
        return bar


def _frame(
    rows: int,
    columns: int,
    cell: float,
    labels: Sequence[str] | None = None,
    headers: Sequence[str] | None = None,
    suptitle: str | None = None,
    bar_label: str | None = None,
    row_gap: float = 0.08,
    column_gap: float = 0.08,
    note_lines: int = 0,
) -> _Frame:
    """The figure of a grid of pictures and its layout (see `_Frame`).

    Args:
        rows, columns: cells of the grid.
        cell: a cell's side in inches.
        labels: one label per row, or None.
        headers: one header per column (empty strings for none), or None.
        suptitle: the figure's title, or None.
        bar_label: make room for a colour bar with this label; None for no bar.
        row_gap, column_gap: inches between cells.
        note_lines: lines of room under each cell for `_Frame.note`.
    """
    notes: list[str] = []  # what the caption gives in full
    line_height = 1.2 * LABEL_SIZE / 72
    wrapped_labels, label_width = None, 0.0
    if labels is not None:
        room = max(1, int((cell + row_gap) / line_height) - 1)
        wrapped = [wrap_text(text, _LABEL_WIDTH, LABEL_SIZE, room) for text in labels]
        wrapped_labels = [text for text, _ in wrapped]
        notes += [
            f"row {row + 1}: {_one_line(text)}"
            for row, (text, (_, shortened)) in enumerate(zip(labels, wrapped)) if shortened
        ]
        label_width = max(
            text_width(line, LABEL_SIZE) for text in wrapped_labels for line in text.split("\n")
        ) + _LABEL_GAP / 72
    headers = list(headers) if headers is not None else [""] * columns
    header_lines, wrapped_headers = 0, []
    for column, text in enumerate(headers):
        shown, shortened = (
            wrap_text(text, cell, HEADER_SIZE, _HEADER_LINES) if text else ("", False)
        )
        wrapped_headers.append(shown)
        header_lines = max(header_lines, len(shown.split("\n")) if shown else 0)
        if shortened:
            notes.append(f"column {column + 1}: {_one_line(text)}")
    header_height = text_height(header_lines, HEADER_SIZE) + 4 / 72 if header_lines else 0.0
    note_height = text_height(note_lines, NOTE_SIZE) + 2 / 72 if note_lines else 0.0
    grid_width = columns * cell + (columns - 1) * column_gap
    grid_height = rows * (cell + note_height) + (rows - 1) * row_gap
    bar, shown_bar_label, right = None, "", _PAD
    bar_height = min(grid_height - note_height, _BAR_TALLEST)
    if bar_label is not None:
        shown_bar_label = wrap_text(bar_label, bar_height, LABEL_SIZE, 2)[0]
        bar_lines = len(shown_bar_label.split("\n")) if bar_label else 0
        ticks = text_width("\u22120.5", 7.0) + 0.08  # the widest tick label, and its pad
        right += _BAR_GAP + _BAR_WIDTH + ticks + text_height(bar_lines, LABEL_SIZE) + 0.05
    width = _PAD + label_width + grid_width + right
    title, title_height = "", 0.0
    if suptitle:
        title = wrap_text(suptitle, width - 2 * _PAD, TITLE_SIZE)[0]
        title_height = text_height(len(title.split("\n")), TITLE_SIZE) + 0.06
    caption, caption_height = "", 0.0
    if notes:
        caption = wrap_text("In full: " + "; ".join(notes), width - 2 * _PAD, NOTE_SIZE)[0]
        caption_height = text_height(len(caption.split("\n")), NOTE_SIZE) + 0.06
    top = _PAD + title_height + header_height
    height = top + grid_height + caption_height + _PAD
    figure = Figure(figsize=(width, height))
    if bar_label is not None:
        centre = height - top - (grid_height - note_height) / 2
        bar = (_PAD + label_width + grid_width + _BAR_GAP, centre - bar_height / 2,
               _BAR_WIDTH, bar_height)
    if title:
        figure.suptitle(title, y=1 - _PAD / height, va="top", fontsize=TITLE_SIZE,
                        parse_math=False)
    if caption:
        figure.text(_PAD / width, _PAD / height, caption, ha="left", va="bottom",
                    fontsize=NOTE_SIZE, parse_math=False)
    return _Frame(
        figure, cell, (column_gap, row_gap + note_height), _PAD + label_width, top,
        wrapped_labels, wrapped_headers, bar, shown_bar_label, cell + column_gap,
    )


def save_figure(figure: Figure, path: str | os.PathLike, dpi: float = 100) -> None:
    """Save `figure` (format from the extension, e.g. .png) atomically to `path`."""
    buffer = io.BytesIO()
    extension = os.path.splitext(os.fspath(path))[1].lstrip(".") or "png"
    figure.savefig(buffer, format=extension, dpi=dpi)
    write_atomic(path, buffer.getvalue())
