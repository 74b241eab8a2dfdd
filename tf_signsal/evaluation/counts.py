"""The evaluator's bookkeeping: the occluded images still to predict, and the counts.

The counts of a batch travel as a `DeletionCounts` record; only to cross `tf.distribute`
replicas are they packed into one vector, by `pack` and `unpack`, side by side.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf

from tf_signsal.evaluation.pairs import Pair
from tf_signsal.evaluation.result import AllegianceResult


class DeletionCounts(NamedTuple):
    """Integer counts of a batch, or the sum over batches (and replicas).

    Attributes:
        images: int64 scalar, the number of images.
        agree: int64 (O, K, P), per order, pair and fraction, occluded predictions
            equal to the intact ones.
        correct: int64 (O, K, P), occluded predictions equal to the label.
        deleted: int64 (O, K, P), pixels filled, summed over images.
    """

    images: Any
    agree: Any
    correct: Any
    deleted: Any

    def __add__(self, other: DeletionCounts) -> DeletionCounts:  # type: ignore[override]
        return DeletionCounts(*(a + b for a, b in zip(self, other)))

    # A strategy reduces one tensor per replica, not a record: the counts cross the
    # replicas as one int64 vector [images, agree, correct, deleted], packed and
    # unpacked here, side by side.
    def pack(self) -> tf.Tensor:
        """The counts as one int64 vector of 1 + 3 * O * K * P entries."""
        return tf.concat([tf.reshape(tf.cast(c, tf.int64), (-1,)) for c in self], axis=0)

    @classmethod
    def unpack(cls, vector: Any, shape: tuple[int, int, int]) -> DeletionCounts:
        """Inverse of `pack`, `shape` being (O, K, P)."""
        vector = np.asarray(vector)
        size = int(np.prod(shape))
        parts = np.split(vector[1:], [size, 2 * size])
        return cls(vector[0], *(part.reshape(shape) for part in parts))

    def to_result(
        self,
        orders: Sequence[str],
        pairs: Sequence[Pair],
        fractions: Sequence[float],
        num_pixels: int,
        has_labels: bool,
    ) -> AllegianceResult:
        """The curves: each count divided by the number of images (and of pixels)."""
        n = int(self.images)

        def per_order(counts: Any, scale: float) -> dict[str, dict[Pair, np.ndarray]]:
            values = np.asarray(counts) / scale
            return {
                order: {pair: values[o, k] for k, pair in enumerate(pairs)}
                for o, order in enumerate(orders)
            }

        return AllegianceResult(
            fractions=np.asarray(fractions, np.float64),
            n_images=n,
            order_curves=per_order(self.agree, n),
            order_deleted=per_order(self.deleted, n * num_pixels),
            order_accuracy=per_order(self.correct, n) if has_labels else None,
        )


class OccludedItems(NamedTuple):
    """The occluded images still to predict, one entry each: int32 (S,) vectors."""

    order: Any  # index of the order (morf, lerf, insertion) in the evaluator's orders
    image: Any  # index of the image in the batch
    pair: Any  # index of the (method, fill) pair
    fraction: Any  # index of the fraction
