"""Which pixels a map removes at each fraction, in each order (`orders.py`): the sorts
behind them, and `deletion_masks`.

For a map of N = H x W pixels and a fraction p:
  morf       (most relevant first, the paper's rule, spec section 2.2): sort the map in
             descending order, take the threshold v at 0-based index round(p * N), and
             delete every pixel with (map > v) and (map != 0). Ties with v and zero
             pixels are never deleted.
  lerf       (least relevant first): delete the round(p * N) pixels with the smallest
             values, zeros included; ties are broken by pixel index in row-major order
             (a stable ascending sort).
  insertion  start from the all-fill image and put back the pixels MoRF deletes at p:
             the filled pixels are the complement of MoRF's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from tf_signsal import _checks
from tf_signsal.evaluation.orders import (
    Order,
    Ranking,
    as_order,
    lerf_counts,
    threshold_indices,
)
from tf_signsal.evaluation.pairs import PAPER_FRACTIONS
from tf_signsal.vocabulary import ORDERS

__all__ = [
    "ORDERS", "ascending_ranks", "deletion_masks", "lerf_counts", "threshold_indices",
    "thresholds_and_counts",
]


@tf.function(reduce_retracing=True)
def ascending_ranks(maps: tf.Tensor) -> tf.Tensor:
    """Each pixel's 0-based position in its map's stable ascending sort, int32 (..., N)."""
    num_pixels = tf.shape(maps)[-1]
    order = tf.reshape(tf.argsort(maps, axis=-1, stable=True), (-1, num_pixels))
    # The inverse permutation of each row, as one permutation of all rows: O(N), where
    # a second argsort costs as much as the first.
    offsets = tf.range(tf.shape(order)[0])[:, None] * num_pixels
    inverse = tf.math.invert_permutation(tf.reshape(order + offsets, (-1,)))
    return tf.reshape(tf.reshape(inverse, tf.shape(order)) - offsets, tf.shape(maps))


@tf.function(reduce_retracing=True)
def thresholds_and_counts(maps: tf.Tensor, indices: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """For maps (..., N): thresholds (..., P) and deleted-pixel counts (..., P).

    One ascending sort per map serves every fraction: the value at descending
    index k is at ascending index N - 1 - k, and the number of pixels strictly
    above v (minus the zeros when v < 0) is read off by binary search.
    """
    num_pixels = tf.shape(maps)[-1]
    ascending = tf.sort(maps, axis=-1)
    flat = tf.reshape(ascending, (-1, num_pixels))
    thresholds = tf.gather(flat, num_pixels - 1 - indices, axis=1)
    above = num_pixels - tf.searchsorted(flat, thresholds, side="right")
    zeros = tf.searchsorted(flat, tf.zeros_like(flat[:, :1]), side="right") - tf.searchsorted(
        flat, tf.zeros_like(flat[:, :1]), side="left"
    )
    # With v < 0 the zero pixels are above v but are never deleted.
    counts = above - tf.where(thresholds < 0, zeros, tf.zeros_like(zeros))
    shape = tf.concat([tf.shape(maps)[:-1], tf.shape(indices)], axis=0)
    return tf.reshape(thresholds, shape), tf.reshape(counts, shape)


def deletion_masks(
    maps: Any, fractions: Sequence[float] = PAPER_FRACTIONS, order: str | Order = "morf"
) -> tf.Tensor:
    """The pixels replaced by the fill at each fraction, in the given order.

    Args:
        maps: saliency maps (B, H, W), e.g. from `SignedSaliency.explain`; float64 maps
            are ranked in float64, any other in float32.
        fractions: fractions p in [0, 1), strictly increasing.
        order: an `Order` or its name: "morf" (the paper's rule, spec section 2.2),
            "lerf" or "insertion" (see the module docstring).

    Returns:
        bool tensor (B, len(fractions), H, W), True where the fill goes. For "morf":
        (map > v) & (map != 0), where v is the value at 0-based index round(p * H * W)
        of the map sorted in descending order; ties with v and zero pixels are never
        deleted. For "lerf": the round(p * H * W) smallest pixels, ties by pixel index.
        For "insertion": the complement of "morf".

    Example:
        >>> maps = tf_signsal.SignedSaliency(model).explain(images, methods=["positive"])
        >>> masks = deletion_masks(maps["positive"], [0.1, 0.5])   # (B, 2, H, W)
    """
    fractions = _checks.fractions(fractions)
    order = as_order(order, "order")
    maps = tf.convert_to_tensor(maps, _checks.ranking_dtype(getattr(maps, "dtype", None)))
    if maps.shape.rank != 3:
        raise ValueError(
            f"`maps` must have rank 3 (batch, height, width), received shape {tuple(maps.shape)}"
        )
    if not bool(tf.reduce_all(tf.math.is_finite(maps))):  # NaN compares false: no order
        raise ValueError("`maps` contains NaN or Inf values; every map value must be finite")
    num_pixels = maps.shape[1] * maps.shape[2]
    flat = tf.reshape(maps, (-1, num_pixels))
    # (B, P, N) by broadcasting: each map against each fraction.
    masks = order.mask(Ranking(
        num_pixels,
        saliency=lambda: flat[:, None, :],
        threshold=lambda: thresholds_and_counts(
            flat, tf.constant(threshold_indices(fractions, num_pixels))
        )[0][:, :, None],
        rank=lambda: ascending_ranks(flat)[:, None, :],
        count=lambda: tf.constant(lerf_counts(fractions, num_pixels))[None, :, None],
    ))
    return tf.reshape(masks, (-1, len(fractions), maps.shape[1], maps.shape[2]))
