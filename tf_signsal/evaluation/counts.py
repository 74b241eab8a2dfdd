"""DeletionCounts: the evaluator's additive counts, and the occluded items still to predict.

Every number of an `AllegianceResult` is a count divided by the number of images (and of
pixels), so counts of any split of a dataset into batches, machines or runs add up to
exactly the counts of the whole: `AllegianceEvaluator.batch_counts` gives them,
`DeletionCounts.sum` adds them, `AllegianceEvaluator.result` turns them into curves.

File format (`save`/`load`), version 1: a numpy `.npz` archive, read with
`allow_pickle=False`, holding
    header    a 0-d unicode array: JSON {"format": "tf_signsal.DeletionCounts",
              "version": 1, "fingerprint", "fractions", "pairs" (names "method/fill"),
              "orders" (names), "num_pixels" (or null), "labelled" (or null)}
    images    int64 0-d, the number of images
    agree     int64 (O, K, P): per order, pair and fraction, occluded predictions equal to
              the intact ones
    correct   int64 (O, K, P): occluded predictions equal to the label
    deleted   int64 (O, K, P): pixels filled, summed over images
Numpy only (TensorFlow only to cross `tf.distribute` replicas, in `pack`).
"""

from __future__ import annotations

import functools
import io
import json
import os
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import numpy as np

from tf_signsal._io import write_atomic
from tf_signsal.evaluation.pairs import pair_name, parse_pair
from tf_signsal.evaluation.result import AllegianceResult

COUNTS_FORMAT = "tf_signsal.DeletionCounts"
COUNTS_VERSION = 1
"""The version of the `.npz` layout that `DeletionCounts.save` writes."""
_ARRAYS = ("agree", "correct", "deleted")


@dataclass(frozen=True, eq=False)
class DeletionCounts:
    """Integer counts of a batch, or the sum over batches (and replicas, and machines).

    Add counts with `+` or `DeletionCounts.sum`; counts of different protocols (another
    fingerprint), image sizes or labelling raise a ValueError. `zeros(protocol)` is the
    neutral element; `0 + counts` is `counts`, so Python's `sum` works too.

    Attributes:
        images: the number of images.
        agree: int64 (O, K, P), per order, pair and fraction, occluded predictions
            equal to the intact ones.
        correct: int64 (O, K, P), occluded predictions equal to the label.
        deleted: int64 (O, K, P), pixels filled, summed over images.
        fingerprint: the `DeletionProtocol.fingerprint` of the evaluator that counted.
        fractions: the P deletion fractions.
        pairs: the K pair names ("method/fill").
        orders: the O order names.
        num_pixels: H * W of the images; None before any image (`zeros`).
        labelled: whether the data had labels (else `correct` is all zeros); None
            before any image.
    """

    images: int
    agree: np.ndarray
    correct: np.ndarray
    deleted: np.ndarray
    fingerprint: str
    fractions: tuple[float, ...]
    pairs: tuple[str, ...]
    orders: tuple[str, ...]
    num_pixels: int | None = None
    labelled: bool | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        """(O, K, P): orders, pairs, fractions."""
        return len(self.orders), len(self.pairs), len(self.fractions)

    @classmethod
    def zeros(cls, protocol: Any) -> DeletionCounts:
        """No image yet, for a `DeletionProtocol` (e.g. `evaluator.protocol`)."""
        shape = (len(protocol.orders), len(protocol.pairs), len(protocol.fractions))
        zeros = np.zeros(shape, np.int64)
        return cls(
            0, zeros, zeros, zeros, protocol.fingerprint, tuple(protocol.fractions),
            tuple(pair_name(pair) for pair in protocol.pairs),
            tuple(order.name for order in protocol.orders),
        )

    def __add__(self, other: DeletionCounts) -> DeletionCounts:
        if not isinstance(other, DeletionCounts):
            return NotImplemented
        if other.fingerprint != self.fingerprint:
            raise ValueError(
                "cannot add DeletionCounts of different protocols (fingerprints "
                f"{self.fingerprint[:12]}... and {other.fingerprint[:12]}...): the evaluators "
                "differ in fractions, pairs, fills, orders, value_range, seed or explainer"
            )
        return replace(
            self,
            images=self.images + other.images,
            agree=self.agree + other.agree,
            correct=self.correct + other.correct,
            deleted=self.deleted + other.deleted,
            num_pixels=_same("num_pixels", self.num_pixels, other.num_pixels, "image sizes"),
            labelled=_same("labelled", self.labelled, other.labelled, "data with and without "
                           "labels"),
        )

    def __radd__(self, other: Any) -> DeletionCounts:
        if isinstance(other, int) and other == 0:  # Python's sum starts from 0
            return self
        return NotImplemented

    @classmethod
    def sum(cls, counts: Iterable[DeletionCounts]) -> DeletionCounts:
        """The sum of one or more counts (of one protocol)."""
        counts = list(counts)
        if not counts:
            raise ValueError(
                "DeletionCounts.sum needs at least one DeletionCounts; start from "
                "DeletionCounts.zeros(evaluator.protocol) to allow none"
            )
        return functools.reduce(cls.__add__, counts)

    def to_result(self) -> AllegianceResult:
        """The curves: each count divided by the number of images (and of pixels)."""
        if self.images == 0 or self.num_pixels is None:
            raise ValueError("these DeletionCounts hold no images: there are no curves")
        n = int(self.images)
        keys = [parse_pair(name) for name in self.pairs]

        def per_order(counts: Any, scale: float) -> dict[str, dict[Any, np.ndarray]]:
            values = np.asarray(counts) / scale
            return {
                order: {pair: values[o, k] for k, pair in enumerate(keys)}
                for o, order in enumerate(self.orders)
            }

        return AllegianceResult(
            fractions=np.asarray(self.fractions, np.float64),
            n_images=n,
            order_curves=per_order(self.agree, n),
            order_deleted=per_order(self.deleted, n * self.num_pixels),
            order_accuracy=per_order(self.correct, n) if self.labelled else None,
        )

    # -- files ------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> None:
        """Write the counts as a versioned `.npz` (see the module docstring), atomically."""
        write_atomic(path, self.to_bytes())

    def to_bytes(self) -> bytes:
        """The bytes of the file `save` writes: counts to send between processes (an
        engine's workers), read back with `from_bytes`."""
        header = {
            "format": COUNTS_FORMAT,
            "version": COUNTS_VERSION,
            "fingerprint": self.fingerprint,
            "fractions": list(self.fractions),
            "pairs": list(self.pairs),
            "orders": list(self.orders),
            "num_pixels": self.num_pixels,
            "labelled": self.labelled,
        }
        buffer = io.BytesIO()
        np.savez(
            buffer,
            header=np.array(json.dumps(header)),
            images=np.int64(self.images),
            **{name: np.asarray(getattr(self, name), np.int64) for name in _ARRAYS},
        )
        return buffer.getvalue()

    @classmethod
    def load(cls, path: str | os.PathLike) -> DeletionCounts:
        """Read a file written by `save` (no pickle is ever loaded)."""
        return cls._read(os.fspath(path), os.fspath(path))

    @classmethod
    def from_bytes(cls, data: bytes) -> DeletionCounts:
        """Inverse of `to_bytes` (no pickle is ever loaded)."""
        if not isinstance(data, bytes):
            raise TypeError(f"`data` must be bytes (from to_bytes), received {type(data).__name__}")
        return cls._read(io.BytesIO(data), "`data`")

    @classmethod
    def _read(cls, source: Any, shown: str) -> DeletionCounts:
        """`load` of a path or file object; `shown` names it in the messages."""
        try:
            with np.load(source, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
            header = json.loads(str(arrays["header"][()]))
            if header.get("format") != COUNTS_FORMAT:
                raise ValueError(f"format {header.get('format')!r}")
        except (OSError, KeyError, ValueError, TypeError, AttributeError, zipfile.BadZipFile) as e:
            raise ValueError(
                f"{shown} is not a DeletionCounts file (as `save` writes): {e!r}"
            ) from None
        if header.get("version") != COUNTS_VERSION:
            raise ValueError(
                f"{shown} holds DeletionCounts of version {header.get('version')!r}; "
                f"this tf_signsal reads version {COUNTS_VERSION}"
            )
        counts = cls(
            int(arrays["images"]),
            *(arrays[name].astype(np.int64) for name in _ARRAYS),
            fingerprint=str(header["fingerprint"]),
            fractions=tuple(float(p) for p in header["fractions"]),
            pairs=tuple(header["pairs"]),
            orders=tuple(header["orders"]),
            num_pixels=header["num_pixels"],
            labelled=header["labelled"],
        )
        wrong = [name for name in _ARRAYS if getattr(counts, name).shape != counts.shape]
        if wrong:
            raise ValueError(
                f"{shown} is not a DeletionCounts file: {wrong} must have the shape "
                f"(orders, pairs, fractions) = {counts.shape}"
            )
        return counts

    # -- tf.distribute ----------------------------------------------------------------

    # A strategy reduces one tensor per replica, not a record: the counts cross the
    # replicas as one int64 vector [images, agree, correct, deleted], packed and
    # unpacked here, side by side.
    def pack(self) -> Any:
        """The counts as one int64 vector of 1 + 3 * O * K * P entries."""
        import tensorflow as tf

        parts = (self.images, self.agree, self.correct, self.deleted)
        return tf.concat([tf.reshape(tf.cast(c, tf.int64), (-1,)) for c in parts], axis=0)

    def unpack(self, vector: Any) -> DeletionCounts:
        """Inverse of `pack`: counts like these (protocol, image size, labels) holding
        the values of `vector`."""
        vector = np.asarray(vector)
        size = int(np.prod(self.shape))
        parts = np.split(vector[1:], [size, 2 * size])
        return replace(self, images=int(vector[0]), **{
            name: part.reshape(self.shape) for name, part in zip(_ARRAYS, parts)
        })


def _same(name: str, a: Any, b: Any, what: str) -> Any:
    """The value both counts share; None (no image yet) matches any."""
    if a is not None and b is not None and a != b:
        raise ValueError(f"cannot add DeletionCounts of {what} ({name} {a!r} and {b!r})")
    return b if a is None else a


class OccludedItems(NamedTuple):
    """The occluded images still to predict, one entry each: int32 (S,) vectors."""

    order: Any  # index of the order in the evaluator's orders
    image: Any  # index of the image in the batch
    pair: Any  # index of the (method, fill) pair
    fraction: Any  # index of the fraction
