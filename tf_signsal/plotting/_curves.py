"""Curves: allegiance against the deleted share, rank correlation against randomisation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from tf_signsal.vocabulary import METHODS

if TYPE_CHECKING:  # type hints only: plotting never imports the evaluation at run time
    from tf_signsal.evaluation import AllegianceResult, Pair, RandomizationResult


# The package's maps and the random control keep their colours whatever else is drawn;
# other maps take the spare ones in the order they come. "random" is the control's method
# (`tf_signsal.evaluation.RANDOM_METHOD`), named here so that plotting needs no evaluation.
_COLORS = dict(zip((*METHODS, "random"), ("C0", "C1", "C2", "C3", "C4", "C7")))
_SPARE_COLORS = ("C5", "C6", "C8", "C9")
_LINESTYLES = {"black": "-", "white": "--"}  # any other fill is dotted


def plot_curves(
    fractions: Sequence[float],
    curves: Mapping[str, Sequence[float]],
    auc: Mapping[str, float] | None = None,
    ax: Any = None,
    title: str | None = None,
) -> Any:
    """Allegiance curves from plain arrays, as in the paper's Figs. 3 and 4.

    x: pixels deleted (%), y: allegiance. A curve's colour is its map's (the
    part of its name before "/"), its line its fill's (after "/"): black solid,
    white dashed, other fills dotted. `AllegianceResult.plot` draws with this.

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
    if ax is None:
        import matplotlib.pyplot as plt  # only needed here

        _, ax = plt.subplots(figsize=(5, 4))
    colors, spare = dict(_COLORS), iter(_SPARE_COLORS)
    for name, curve in values.items():
        method, _, fill = name.partition("/")
        if method not in colors:
            colors[method] = next(spare, "k")
        label = name if auc is None else f"{name} (AUC {auc[name]:.3f})"
        ax.plot(
            x * 100, curve, linestyle=_LINESTYLES.get(fill, ":"), color=colors[method],
            marker=".", label=label,
        )
    ax.set_xlabel("pixels deleted (%)")
    ax.set_ylabel("allegiance")
    ax.set_xlim(0, 100 * float(x[-1]) if x[-1] > 0 else 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
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
