"""Curves: allegiance against the deleted share (one axes, or a figure per order with a
panel per fill), the SRG bar chart, rank correlation against randomisation."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure

from tf_signsal.plotting._common import (
    _PAD,
    HEADER_SIZE,
    LABEL_SIZE,
    TITLE_SIZE,
    text_height,
    text_width,
    wrap_text,
)
from tf_signsal.vocabulary import METHODS

if TYPE_CHECKING:  # type hints only: plotting never imports the evaluation at run time
    from tf_signsal.evaluation import AllegianceResult, Pair, RandomizationResult


# The package's maps and the random control keep their colours whatever else is drawn;
# other maps take the spare ones in the order they come. "random" is the control's method
# (`tf_signsal.evaluation.RANDOM_METHOD`), named here so that plotting needs no evaluation.
_COLORS = dict(zip((*METHODS, "random"), ("C0", "C1", "C2", "C3", "C4", "C7")))
_SPARE_COLORS = ("C5", "C6", "C8", "C9")
_LINESTYLES = {"black": "-", "white": "--"}  # any other fill is dotted
_RANDOM = "random"
# The random control, drawn alike in every panel of `plot_order_curves`: gray, dashed, no marks.
_RANDOM_STYLE = {"color": "0.4", "linestyle": (0, (5, 3)), "marker": None, "linewidth": 1.3}

X_LABEL = "share of pixels deleted (%)"
Y_LABEL = "allegiance (share of predictions kept)"
"""The y axis: the share of images whose predicted class the occluded image keeps."""

# order -> (the figure's title, the x axis); an order of another name gets generic ones.
_ORDERS = {
    "morf": ("MoRF: most relevant pixels deleted first (lower AUC is better)",
             "share of pixels deleted, most relevant first (%)"),
    "lerf": ("LeRF: least relevant pixels deleted first (higher AUC is better)",
             "share of pixels deleted, least relevant first (%)"),
    "insertion": ("Insertion: pixels put back, most relevant first (higher AUC is better)",
                  "share of pixels put back, most relevant first (%)"),
}

# Inches of a panel of `plot_order_curves` and of the room around it.
_PANEL_WIDTH, _PANEL_HEIGHT = 3.2, 2.3
_PANEL_LEFT, _PANEL_RIGHT = 0.75, 0.25  # the y axis's ticks and label; room to the next
_PANEL_TITLE, _PANEL_BELOW = 0.32, 0.55  # the panel's title; the x axis's ticks and label
_HANDLE = 0.45  # a legend entry's line and the spaces around it


def _curve_arrays(
    fractions: Sequence[float], curves: Mapping[str, Sequence[float]],
    auc: Mapping[str, float] | None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """`fractions` and `curves` checked and as float64 arrays (see `plot_curves`)."""
    x = np.asarray(fractions, np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"`fractions` must be a non-empty (P,) sequence, received shape {x.shape}")
    if not isinstance(curves, Mapping):
        raise TypeError(
            f"`curves` must be a dict name -> (P,) curve, received {type(curves).__name__}"
        )
    values = {name: np.asarray(curve, np.float64) for name, curve in curves.items()}
    wrong = [name for name, curve in values.items() if curve.shape != x.shape]
    if wrong:
        raise ValueError(
            f"`curves` must hold one value per fraction ({x.size}), received other shapes "
            f"for {wrong}"
        )
    missing = [] if auc is None else [name for name in values if name not in auc]
    if missing:
        raise ValueError(f"`auc` must give the AUC of every curve, missing {missing}")
    return x, values


def _method_colors(methods: Sequence[str]) -> dict[str, str]:
    """Each map's colour: the package's own, then the spare ones in order, then black."""
    colors, spare = dict(_COLORS), iter(_SPARE_COLORS)
    for method in methods:
        if method not in colors:
            colors[method] = next(spare, "k")
    return colors


def plot_curves(
    fractions: Sequence[float],
    curves: Mapping[str, Sequence[float]],
    auc: Mapping[str, float] | None = None,
    ax: Any = None,
    title: str | None = None,
) -> Any:
    """Allegiance curves from plain arrays, as in the paper's Figs. 3 and 4.

    x: share of pixels deleted (%), y: allegiance. A curve's colour is its map's
    (the part of its name before "/"), its line its fill's (after "/"): black
    solid, white dashed, other fills dotted. The legend is outside the data, at
    the right. `AllegianceResult.plot` draws with this; `plot_order_curves`
    draws many curves more readably, a panel per fill.

    Args:
        fractions: (P,) deletion fractions in [0, 1].
        curves: name -> (P,) allegiance at each fraction, in legend order; names
            are "method/fill" (`tf_signsal.evaluation.pair_name`), e.g. "positive/black".
        auc: optional name -> AUC of each curve, given in the legend.
        ax: a matplotlib Axes to draw on; a new figure when None.
        title: an optional title.

    Returns:
        the matplotlib Axes.

    Example:
        >>> ax = plotting.plot_curves([0.0, 0.5], {"positive/black": [1.0, 0.4]})
        >>> plotting.save_figure(ax.figure, "curves.png")
    """
    x, values = _curve_arrays(fractions, curves, auc)
    if ax is None:
        import matplotlib.pyplot as plt  # only needed here

        _, ax = plt.subplots(figsize=(7.5, 4), layout="constrained")
    colors = _method_colors([name.partition("/")[0] for name in values])
    for name, curve in values.items():
        method, _, fill = name.partition("/")
        label = name if auc is None else f"{name} (AUC {auc[name]:.3f})"
        ax.plot(
            x * 100, curve, linestyle=_LINESTYLES.get(fill, ":"), color=colors[method],
            marker=".", label=label,
        )
    ax.set_xlabel(X_LABEL)
    ax.set_ylabel(Y_LABEL)
    ax.set_xlim(0, 100 * float(x[-1]) if x[-1] > 0 else 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    # Outside the data, at the right (a figure made here leaves it room: constrained layout).
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    if title:
        ax.set_title(title)
    return ax


def plot_allegiance(
    result: AllegianceResult,
    ax: Any = None,
    title: str | None = None,
    pairs: Sequence[Pair] | None = None,
    order: str = "morf",
) -> Any:
    """Allegiance curves of an `AllegianceResult`, as in the paper's Figs. 3 and 4:
    `result.plot(ax, title, pairs, order)`, which draws with `plot_curves`.

    Args:
        result: an `AllegianceResult`.
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
    # The result turns itself into names and arrays: plotting never imports the evaluation.
    return result.plot(ax=ax, title=title, pairs=pairs, order=order)


def _legend_layout(labels: Sequence[str], width: float) -> tuple[list[str], int, int]:
    """Legend labels wrapped to fit `width` inches, its columns and its rows."""
    shown = [wrap_text(label, width - _HANDLE, LABEL_SIZE)[0] for label in labels]
    widest = max(text_width(line, LABEL_SIZE) for label in shown for line in label.split("\n"))
    columns = max(1, min(len(shown), int(width // (widest + _HANDLE))))
    return shown, columns, math.ceil(len(shown) / columns)


def _legend_height(shown: Sequence[str], columns: int) -> float:
    """Inches of a legend of `shown` labels in `columns` columns (rows as tall as their
    tallest label)."""
    rows = [shown[i : i + columns] for i in range(0, len(shown), columns)]
    return sum(
        text_height(max(label.count("\n") + 1 for label in row), LABEL_SIZE) + 0.06
        for row in rows
    )


def plot_order_curves(
    fractions: Sequence[float],
    curves: Mapping[str, Sequence[float]],
    auc: Mapping[str, float] | None = None,
    order: str = "morf",
    title: str | None = None,
) -> Figure:
    """One order's allegiance curves, a panel per fill, each with its legend below it.

    Readable with many curves (the five maps and the random control with four fills
    make 24): a panel holds one fill's curves, each map in its colour (as in
    `plot_curves`), the random control gray and dashed in every panel. The legend
    of a panel, under its x axis, gives each curve's AUC. Axes: "share of pixels
    deleted (%)" (put back, for insertion) and allegiance, the share of images whose
    predicted class the occluded image keeps, from 0 to 1.

    Args:
        fractions: (P,) deletion fractions in [0, 1].
        curves: name -> (P,) allegiance at each fraction; names are "method/fill"
            (`tf_signsal.evaluation.pair_name`); panels come in the order their fill
            first appears, curves in the order given.
        auc: optional name -> AUC of each curve, given in the legend.
        order: the order the curves are of ("morf", "lerf", "insertion" or another
            name): it titles the figure and the x axis.
        title: optional words added to the figure's title (e.g. the data).

    Returns:
        A `matplotlib.figure.Figure`: its axes are the panels, one per fill.

    Example:
        >>> record = result.to_dict()["orders"]["lerf"]
        >>> fig = plotting.plot_order_curves(result.fractions, record["curves"],
        ...                                  record["auc"], order="lerf")
        >>> plotting.save_figure(fig, "curves_lerf.pdf")
    """
    x, values = _curve_arrays(fractions, curves, auc)
    if not values:
        raise ValueError("`curves` holds no curve: there is nothing to draw")
    if not isinstance(order, str) or not order:
        raise TypeError(f"`order` must be an order's name such as 'morf', received {order!r}")
    fills: dict[str, list[str]] = {}
    for name in values:
        fills.setdefault(name.partition("/")[2], []).append(name)
    colors = _method_colors([name.partition("/")[0] for name in values])
    heading, x_label = _ORDERS.get(order, (f"{order} (pixels in the order's ranking)", X_LABEL))

    columns = len(fills) if len(fills) <= 3 else 2 if len(fills) == 4 else 3
    grid_rows = math.ceil(len(fills) / columns)
    legends = {}
    for fill, names in fills.items():
        labels = [
            ("random (control)" if n.partition("/")[0] == _RANDOM else n.partition("/")[0])
            + ("" if auc is None else f", AUC {auc[n]:.3f}")
            for n in names
        ]
        legends[fill] = _legend_layout(labels, _PANEL_WIDTH + _PANEL_LEFT - 0.1)
    block_width = _PANEL_LEFT + _PANEL_WIDTH + _PANEL_RIGHT
    width = 2 * _PAD + columns * block_width
    heading = heading if not title else f"{title}\n{heading}"
    shown_title = wrap_text(heading, width - 2 * _PAD, TITLE_SIZE)[0]
    title_height = text_height(shown_title.count("\n") + 1, TITLE_SIZE) + 0.1
    fill_list = list(fills)
    row_legend = [
        max(_legend_height(legends[f][0], legends[f][1])
            for f in fill_list[r * columns : (r + 1) * columns])
        for r in range(grid_rows)
    ]
    block_height = _PANEL_TITLE + _PANEL_HEIGHT + _PANEL_BELOW
    height = 2 * _PAD + title_height + grid_rows * (block_height + 0.15) + sum(row_legend)
    figure = Figure(figsize=(width, height))
    figure.suptitle(shown_title, y=1 - _PAD / height, va="top", fontsize=TITLE_SIZE,
                    parse_math=False)
    top = _PAD + title_height
    for index, fill in enumerate(fill_list):
        row, column = divmod(index, columns)
        x0 = _PAD + column * block_width + _PANEL_LEFT
        axes_top = top + row * (block_height + 0.15) + sum(row_legend[:row]) + _PANEL_TITLE
        ax = figure.add_axes((x0 / width, 1 - (axes_top + _PANEL_HEIGHT) / height,
                              _PANEL_WIDTH / width, _PANEL_HEIGHT / height))
        for name in fills[fill]:
            method = name.partition("/")[0]
            style = dict(_RANDOM_STYLE) if method == _RANDOM else {
                "color": colors[method], "marker": ".", "markersize": 5, "linewidth": 1.5,
            }
            ax.plot(x * 100, values[name], **style)
        ax.set_xlim(0, 100 * float(x[-1]) if x[-1] > 0 else 1)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=LABEL_SIZE)
        ax.set_xlabel(wrap_text(x_label, _PANEL_WIDTH, LABEL_SIZE + 1)[0], fontsize=LABEL_SIZE + 1)
        ax.set_ylabel(Y_LABEL if column == 0 else "allegiance", fontsize=LABEL_SIZE + 1)
        ax.set_title(wrap_text(f"{fill} fill", _PANEL_WIDTH, HEADER_SIZE, 1)[0],
                     fontsize=HEADER_SIZE + 1, parse_math=False)
        shown, legend_columns, _ = legends[fill]
        legend_top = axes_top + _PANEL_HEIGHT + _PANEL_BELOW
        ax.legend(
            ax.get_lines(), shown, loc="upper left", ncols=legend_columns,
            bbox_to_anchor=((x0 - _PANEL_LEFT + 0.05) / width, 1 - legend_top / height),
            bbox_transform=figure.transFigure, borderaxespad=0.0, frameon=False,
            fontsize=LABEL_SIZE, handlelength=1.8, columnspacing=0.8,
        )
    return figure


def plot_srg(srg: Mapping[str, float], title: str | None = None) -> Figure:
    """The Symmetric Relevance Gain of each pair as horizontal bars: AUC(LeRF) -
    AUC(MoRF), higher is better (a map that ranks pixels well loses allegiance fast
    when the top ones go and slowly when the bottom ones go).

    Args:
        srg: name ("method/fill") -> SRG, as `AllegianceResult.to_dict()["srg"]`;
            bars from the top in this order, each in its map's colour (the random
            control gray).
        title: optional words added to the figure's title.

    Returns:
        A `matplotlib.figure.Figure` with one axes.

    Example:
        >>> fig = plotting.plot_srg(result.to_dict()["srg"], title="cifar10")
        >>> plotting.save_figure(fig, "srg.svg")
    """
    if not isinstance(srg, Mapping) or not srg:
        raise ValueError(
            "`srg` must be a non-empty dict name -> SRG (AllegianceResult.to_dict()['srg'], "
            f"which is empty unless MoRF and LeRF both ran), received {srg!r}"
        )
    names = list(srg)
    values = np.asarray([srg[n] for n in names], np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"`srg` values must be finite numbers, received {dict(srg)}")
    colors = _method_colors([n.partition("/")[0] for n in names])
    left = max(text_width(n, LABEL_SIZE) for n in names) + 0.2
    plot_width, bar_room = 4.2, 0.24
    heading = "Symmetric Relevance Gain of each pair (higher is better)"
    width = 2 * _PAD + left + plot_width + 0.3
    heading = wrap_text(heading if not title else f"{title}\n{heading}", width - 2 * _PAD,
                        TITLE_SIZE)[0]
    title_height = text_height(heading.count("\n") + 1, TITLE_SIZE) + 0.15
    plot_height = bar_room * len(names) + 0.2
    height = 2 * _PAD + title_height + plot_height + 0.5
    figure = Figure(figsize=(width, height))
    figure.suptitle(heading, y=1 - _PAD / height, va="top", fontsize=TITLE_SIZE,
                    parse_math=False)
    ax = figure.add_axes(((_PAD + left) / width, (_PAD + 0.5) / height, plot_width / width,
                          plot_height / height))
    rows = np.arange(len(names))
    ax.barh(rows, values, height=0.7,
            color=[_RANDOM_STYLE["color"] if n.partition("/")[0] == _RANDOM
                   else colors[n.partition("/")[0]] for n in names])
    ax.set_yticks(rows, names, fontsize=LABEL_SIZE)
    ax.set_ylim(len(names) - 0.4, -0.6)
    ax.axvline(0.0, color="k", linewidth=0.8)
    # Room for each bar's value at its end, inside the axes.
    low, high = min(0.0, float(values.min())), max(0.0, float(values.max()))
    span = (high - low) or 1.0
    ax.set_xlim(low - 0.2 * span * (low < 0), high + 0.2 * span)
    for row, value in zip(rows, values):
        ax.text(value + (0.01 if value >= 0 else -0.01) * span, row, f"{value:.3f}",
                va="center", ha="left" if value >= 0 else "right", fontsize=LABEL_SIZE - 1)
    ax.set_xlabel("SRG = AUC(LeRF) \u2212 AUC(MoRF), x as a fraction", fontsize=LABEL_SIZE + 1)
    ax.tick_params(axis="x", labelsize=LABEL_SIZE)
    ax.grid(axis="x", alpha=0.3)
    return figure


def allegiance_figures(result: Any, title: str | None = None) -> dict[str, Figure]:
    """The figures of a deletion benchmark: one per order (`plot_order_curves`), and the
    SRG bars (`plot_srg`) when MoRF and LeRF both ran.

    Args:
        result: an `AllegianceResult`, or its record (`to_dict()`, a results.json).
        title: optional words added to each figure's title (e.g. the data).

    Returns:
        name -> figure: "curves_<order>" for each order run (e.g. "curves_morf"), then
        "srg" when the result has an SRG: what `tf-signsal evaluate` saves.

    Example:
        >>> for name, figure in plotting.allegiance_figures(result, "cifar10").items():
        ...     plotting.save_figure(figure, f"runs/{name}.pdf")
    """
    # A record, not the result: plotting never imports the evaluation.
    record = result.to_dict() if hasattr(result, "to_dict") else result
    if not isinstance(record, Mapping) or "fractions" not in record or "curves" not in record:
        raise TypeError(
            "`result` must be an AllegianceResult or its record (to_dict(), results.json), "
            f"received {type(result).__name__}"
        )
    orders = record.get("orders") or {"morf": record}
    figures = {}
    for order, curves in orders.items():
        figures[f"curves_{order}"] = plot_order_curves(
            record["fractions"], curves["curves"], curves.get("auc"), order=order, title=title
        )
    if record.get("srg"):
        figures["srg"] = plot_srg(record["srg"], title=title)
    return figures


def plot_randomization(
    result: RandomizationResult, ax: Any = None, title: str | None = None
) -> Any:
    """Rank correlation with the intact maps at each randomisation step of a
    `RandomizationResult`, as in Adebayo et al.'s Fig. 2 (arXiv 1810.03292).

    x: "intact", then the randomised layers from the top (cascading: each step
    adds one layer; independent: one layer at a time); y: the mean Spearman rank
    correlation with the intact model's maps. One solid line per map, the signed
    attribution dashed (when the result has it), and a line at 0 (no agreement left).

    Args:
        result: a `tf_signsal.evaluation.RandomizationResult`.
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
    for method, values in result.spearman.items():  # each map in its `plot_curves` colour
        ax.plot(x, values, marker=".", color=_COLORS.get(method), label=method)
    if result.spearman_signed is not None:  # None for a user's explainer: no signed map
        ax.plot(
            x, result.spearman_signed, linestyle="--", marker=".", color="k",
            label="signed attribution",
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
