"""Deletion orders: which pixels the fill takes at each fraction, and which way is better.

For a map of N = H x W pixels and a fraction p:
  MoRF       (most relevant first, the paper's rule, spec section 2.2): sort the map in
             descending order, take the threshold v at 0-based index round(p * N), and
             delete every pixel with (map > v) and (map != 0). Ties with v and zero
             pixels are never deleted.
  LeRF       (least relevant first): delete the round(p * N) pixels with the smallest
             values, zeros included; ties are broken by pixel index in row-major order
             (a stable ascending sort).
  Insertion  start from the all-fill image and put back the pixels MoRF deletes at p:
             the filled pixels are the complement of MoRF's.

An order is an `Order` object; its name ("morf", "lerf", "insertion") works wherever an
order is asked for. Each order says, in one place, which pixels it fills (`mask`), how
many (`filled`) and whether a higher area under its curve is better. Numpy only: the
masks are written with operators that numpy arrays and TensorFlow tensors share, so
`AllegianceResult` reads orders without TensorFlow.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tf_signsal.vocabulary import ORDERS


def threshold_indices(fractions: Sequence[float], num_pixels: int) -> np.ndarray:
    """The 0-based index round(p * N) of each fraction's threshold in a descending sort."""
    # Python's round (half to even), as the authors' code. When p * N rounds
    # up to N (p close to 1 on a small image) the index is clipped to the last
    # one, where the authors' code would fail: v is the smallest value.
    return np.array([min(round(p * num_pixels), num_pixels - 1) for p in fractions], np.int32)


def lerf_counts(fractions: Sequence[float], num_pixels: int) -> np.ndarray:
    """How many pixels LeRF deletes at each fraction: round(p * N), half to even."""
    return np.array([min(round(p * num_pixels), num_pixels) for p in fractions], np.int32)


class Ranking:
    """What an order may read to choose the pixels of occluded images, computed on first
    use; all broadcast against the pixels' shape.

    Attributes:
        saliency: the map's values (float32).
        threshold: MoRF's threshold v of the fraction: the map's value at 0-based
            index round(p * N) of its descending sort.
        rank: each pixel's 0-based position in its map's stable ascending sort (int32).
        count: round(p * N), the number of pixels LeRF takes (int32).
        num_pixels: N = H * W.
    """

    def __init__(
        self,
        num_pixels: int,
        saliency: Callable[[], Any],
        threshold: Callable[[], Any],
        rank: Callable[[], Any],
        count: Callable[[], Any],
    ):
        self.num_pixels = num_pixels
        self._make = {"saliency": saliency, "threshold": threshold, "rank": rank, "count": count}

    @functools.cached_property
    def saliency(self) -> Any:
        return self._make["saliency"]()

    @functools.cached_property
    def threshold(self) -> Any:
        return self._make["threshold"]()

    @functools.cached_property
    def rank(self) -> Any:
        return self._make["rank"]()

    @functools.cached_property
    def count(self) -> Any:
        return self._make["count"]()


class Order:
    """A deletion order: which pixels the fill takes at each fraction.

    Subclasses set `name` (the key of the order in results and JSON), `higher_is_better`
    (of the area under the curve) and `uses_ranks` (whether `mask` reads
    `ranking.rank`, which costs a second pass over each map), and define `mask` and
    `filled`. The evaluator traces `mask` once per image shape into its compiled
    forward pass, so no occluded image branches on its order.
    """

    name: str = ""
    higher_is_better: bool = False
    uses_ranks: bool = False

    def mask(self, ranking: Ranking) -> Any:
        """The filled pixels: a bool array or tensor, True where the fill goes."""
        raise NotImplementedError(f"{type(self).__name__} must define `mask`")

    def filled(self, morf: np.ndarray, fractions: Sequence[float], num_pixels: int) -> np.ndarray:
        """How many pixels each occluded image fills, from MoRF's counts `morf` (..., P)."""
        raise NotImplementedError(f"{type(self).__name__} must define `filled`")

    @property
    def better(self) -> str:
        """"higher" or "lower": which area under the curve is better."""
        return "higher" if self.higher_is_better else "lower"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.name == self.name

    def __hash__(self) -> int:
        return hash((type(self), self.name))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MoRF(Order):
    """Most relevant first, the paper's deletion: (map > v) & (map != 0); lower is better."""

    name = "morf"

    def mask(self, ranking: Ranking) -> Any:
        return (ranking.saliency > ranking.threshold) & (ranking.saliency != 0)

    def filled(self, morf: np.ndarray, fractions: Sequence[float], num_pixels: int) -> np.ndarray:
        return morf


class LeRF(Order):
    """Least relevant first: the round(p * N) smallest pixels, ties by pixel index;
    higher is better."""

    name = "lerf"
    higher_is_better = True
    uses_ranks = True

    def mask(self, ranking: Ranking) -> Any:
        return ranking.rank < ranking.count

    def filled(self, morf: np.ndarray, fractions: Sequence[float], num_pixels: int) -> np.ndarray:
        return np.broadcast_to(lerf_counts(fractions, num_pixels), morf.shape)


class Insertion(Order):
    """From the all-fill image, put back the pixels MoRF deletes: MoRF's complement is
    filled; higher is better (allegiance rises as pixels come back)."""

    name = "insertion"
    higher_is_better = True

    def mask(self, ranking: Ranking) -> Any:
        return ~MoRF().mask(ranking)

    def filled(self, morf: np.ndarray, fractions: Sequence[float], num_pixels: int) -> np.ndarray:
        return num_pixels - morf


BUILT_IN_ORDERS: dict[str, type[Order]] = {order.name: order for order in (MoRF, LeRF, Insertion)}
"""The built-in orders by name (the names are `tf_signsal.vocabulary.ORDERS`)."""
assert tuple(BUILT_IN_ORDERS) == ORDERS  # the command line's choices, without this import


def as_order(value: str | Order, name: str = "orders") -> Order:
    """An `Order` from an order or its name ("morf", "lerf", "insertion")."""
    if isinstance(value, Order):
        return value
    if isinstance(value, type) and issubclass(value, Order):
        raise TypeError(f"`{name}` takes Order objects: write {value.__name__}(), not the class")
    if not isinstance(value, str):
        raise TypeError(
            f"`{name}` must hold Order objects or names of {list(ORDERS)}, received {value!r}"
        )
    if value not in BUILT_IN_ORDERS:
        raise ValueError(f"unknown order {value!r} in `{name}`: valid orders are {list(ORDERS)}")
    return BUILT_IN_ORDERS[value]()


def order_better(name: str) -> str | None:
    """"higher" or "lower" for a built-in order's name, None for another order."""
    return BUILT_IN_ORDERS[name]().better if name in BUILT_IN_ORDERS else None
