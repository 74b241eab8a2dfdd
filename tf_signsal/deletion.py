"""Black/white deletion and allegiance (section 2 of the spec).

For each image, saliency method and fraction p: sort the map (H x W) in
descending order, take the threshold v at 0-based index round(p * H * W), and
set every pixel with (map > v) and (map != 0) to the fill value, in all
channels. Allegiance at p is the share of images whose predicted class on the
occluded image equals the model's own prediction on the intact image.

How it is fast: one saliency pass per batch gives every map and the intact
logits; one sort per map gives the thresholds of all fractions; every occluded
image of every (pair, fraction) goes through one compiled function in chunks
sized by a memory budget, which returns counts only. Occluded images that lose
no pixel (p = 0, or a map whose non-zero pixels are used up) are the intact
image, so their prediction is the intact one and they are not run again.
"""

from __future__ import annotations

import itertools
import json
import math
import numbers
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tf_signsal import _checks
from tf_signsal._io import write_atomic
from tf_signsal.gradients import logits_function
from tf_signsal.maps import METHODS, SignedSaliency

PAPER_FRACTIONS: tuple[float, ...] = (
    0.0, 0.03, 0.05, 0.07, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9,
)
FILLS: tuple[str, ...] = ("black", "white")
PAPER_PAIRS: tuple[tuple[str, str], ...] = (
    ("standard", "black"),
    ("positive", "black"),
    ("active", "black"),
    ("standard", "white"),
    ("negative", "white"),
    ("inactive", "white"),
)
ALL_PAIRS: tuple[tuple[str, str], ...] = tuple((m, f) for f in FILLS for m in METHODS)
DELETION_METHODS: tuple[str, ...] = (*METHODS, "random")

Fill = Any  # "black" | "white" | float | tuple[float, ...]
Pair = tuple[str, Fill]

_MASK32 = 0xFFFFFFFF


# ----------------------------------------------------------------------------- masks


def _threshold_indices(fractions: Sequence[float], num_pixels: int) -> np.ndarray:
    # Python's round (half to even), as the authors' code. When p * N rounds
    # up to N (p close to 1 on a small image) the index is clipped to the last
    # one, where the authors' code would fail: v is the smallest value.
    return np.array([min(round(p * num_pixels), num_pixels - 1) for p in fractions], np.int32)


@tf.function(reduce_retracing=True)
def _thresholds_and_counts(maps: tf.Tensor, indices: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
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


def deletion_masks(maps: Any, fractions: Sequence[float] = PAPER_FRACTIONS) -> tf.Tensor:
    """The pixels deleted at each fraction, by the rule of the spec (section 2.2).

    Args:
        maps: saliency maps (B, H, W), e.g. from `SignedSaliency.explain`.
        fractions: fractions p in [0, 1), strictly increasing.

    Returns:
        bool tensor (B, len(fractions), H, W): (map > v) & (map != 0), where v
        is the value at 0-based index round(p * H * W) of the map sorted in
        descending order. Ties with v and zero pixels are never deleted.

    Example:
        >>> maps = tf_signsal.SignedSaliency(model).explain(images, methods=["positive"])
        >>> masks = deletion_masks(maps["positive"], [0.1, 0.5])   # (B, 2, H, W)
    """
    fractions = _check_fractions(fractions)
    maps = tf.convert_to_tensor(maps, tf.float32)
    if maps.shape.rank != 3:
        raise ValueError(
            f"`maps` must have rank 3 (batch, height, width), received shape {tuple(maps.shape)}"
        )
    num_pixels = maps.shape[1] * maps.shape[2]
    flat = tf.reshape(maps, (-1, num_pixels))
    thresholds, _ = _thresholds_and_counts(
        flat, tf.constant(_threshold_indices(fractions, num_pixels))
    )
    masks = (flat[:, None, :] > thresholds[:, :, None]) & (flat[:, None, :] != 0)
    return tf.reshape(masks, (-1, len(fractions), maps.shape[1], maps.shape[2]))


def _shr(a: tf.Tensor, bits: int) -> tf.Tensor:
    return a // (1 << bits)  # a >= 0 here; tensors have no shift operators


def _mul32(a: tf.Tensor, constant: int) -> tf.Tensor:
    # (a * constant) mod 2**32 for 0 <= a < 2**32 in int64, without overflow.
    high = (_shr(a, 16) * constant & 0xFFFF) * (1 << 16)
    return high + (a & 0xFFFF) * constant & _MASK32


@tf.function(reduce_retracing=True)
def random_maps(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """The "random" control: a seeded random ranking of each image's pixels.

    Values are uniform in (0, 1] (never zero, so every pixel can be deleted)
    and depend only on the image's own pixels and `seed`: a result never
    depends on how the images are batched or distributed.

    Args:
        images: float32 (B, H, W, ch).
        seed: int64 scalar.

    Returns:
        float32 (B, H, W).
    """
    shape = tf.shape(images)
    bits = tf.reshape(tf.bitcast(images, tf.int32), (shape[0], -1))
    bits = tf.cast(bits, tf.int64) & _MASK32
    position = tf.range(tf.shape(bits)[1], dtype=tf.int64)
    weights = (2 * position + 1) * 0x9E37 & 0xFFFFF  # odd 20-bit multipliers
    image_hash = tf.reduce_sum(bits * weights & _MASK32, axis=1) & _MASK32
    pixel = tf.range(tf.cast(shape[1] * shape[2], tf.int64), dtype=tf.int64)
    z = (image_hash[:, None] ^ (seed & _MASK32)) + (pixel[None, :] + 1) * 0x9E3779B9 & _MASK32
    # murmur3's 32-bit finaliser: every input bit affects every output bit.
    z = _mul32(z ^ _shr(z, 16), 0x85EBCA6B)
    z = _mul32(z ^ _shr(z, 13), 0xC2B2AE35)
    z = z ^ _shr(z, 16)
    values = tf.cast(_shr(z, 8) + 1, tf.float32) / float(1 << 24)  # exact, in (0, 1]
    return tf.reshape(values, shape[:3])


# ----------------------------------------------------------------------------- checks


def _check_fractions(fractions: Any) -> tuple[float, ...]:
    try:
        values = tuple(float(p) for p in fractions)
    except (TypeError, ValueError):
        raise ValueError(
            f"`fractions` must be a sequence of numbers in [0, 1), received {fractions!r}"
        ) from None
    if not values:
        raise ValueError("`fractions` must hold at least one fraction, received an empty sequence")
    bad = [p for p in values if not (0.0 <= p < 1.0)]
    if bad:
        raise ValueError(f"`fractions` must lie in [0, 1), received {list(values)} (bad: {bad})")
    if any(b <= a for a, b in zip(values, values[1:])):
        raise ValueError(f"`fractions` must be strictly increasing, received {list(values)}")
    return values


def _check_value_range(value_range: Any) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise ValueError(
            f"`value_range` must be a pair (low, high) of numbers, received {value_range!r}"
        ) from None
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise ValueError(
            f"`value_range` must be finite with low < high, received ({low}, {high})"
        )
    return low, high


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_fill(fill: Any) -> Fill:
    valid = f"one of {list(FILLS)}, a number, or one number per channel"
    if isinstance(fill, str):
        if fill not in FILLS:
            raise ValueError(f"unknown fill {fill!r}: a fill must be {valid}")
        return fill
    if _is_number(fill) and math.isfinite(fill):
        return float(fill)
    if isinstance(fill, (tuple, list, np.ndarray)) and len(fill) > 0:
        if all(_is_number(v) and math.isfinite(v) for v in np.asarray(fill).tolist()):
            return tuple(float(v) for v in np.asarray(fill).tolist())
    raise ValueError(f"invalid fill {fill!r}: a fill must be {valid}")


def _check_pairs(pairs: Any) -> tuple[Pair, ...]:
    if isinstance(pairs, str) or not isinstance(pairs, Sequence) or not pairs:
        raise ValueError(
            "`pairs` must be a non-empty sequence of (method, fill) pairs, e.g. PAPER_PAIRS, "
            f"received {pairs!r}"
        )
    checked = []
    for pair in pairs:
        if isinstance(pair, str) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise ValueError(f"each of `pairs` must be a (method, fill) pair, received {pair!r}")
        method, fill = pair
        if method not in DELETION_METHODS:
            raise ValueError(
                f"unknown method {method!r} in `pairs`: valid methods are {list(DELETION_METHODS)}"
            )
        checked.append((method, _check_fill(fill)))
    if len(set(checked)) != len(checked):
        raise ValueError(f"`pairs` must not repeat a pair, received {checked}")
    return tuple(checked)


def pair_name(pair: Pair) -> str:
    """The JSON name of a pair: "method/fill", e.g. "positive/black", "standard/0.5"."""
    method, fill = pair
    if isinstance(fill, tuple):
        return f"{method}/" + ",".join(repr(v) for v in fill)
    return f"{method}/{fill!r}" if isinstance(fill, float) else f"{method}/{fill}"


def parse_pair(name: str) -> Pair:
    """Inverse of `pair_name`."""
    method, _, fill = name.partition("/")
    if fill in FILLS:
        return method, fill
    values = tuple(float(v) for v in fill.split(","))
    return (method, values[0]) if "," not in fill else (method, values)


# ----------------------------------------------------------------------------- result


@dataclass(eq=False)
class AllegianceResult:
    """Allegiance curves of a deletion benchmark.

    Attributes:
        fractions: float64 (P,), the deletion fractions.
        curves: (method, fill) -> float64 (P,), allegiance at each fraction.
        auc: (method, fill) -> trapezoid area with x as a fraction (at most
            max(fractions); lower is better).
        deleted: (method, fill) -> float64 (P,), mean fraction of each image's
            pixels really deleted (short of p where ties or zeros stop it).
        accuracy: (method, fill) -> float64 (P,) accuracy against the labels
            on the occluded images, or None when the data had no labels.
        n_images: number of images evaluated.
    """

    fractions: np.ndarray
    curves: dict[Pair, np.ndarray]
    auc: dict[Pair, float]
    deleted: dict[Pair, np.ndarray]
    accuracy: dict[Pair, np.ndarray] | None
    n_images: int

    @property
    def pairs(self) -> tuple[Pair, ...]:
        return tuple(self.curves)

    def summary(self) -> str:
        """A text table: AUC and allegiance at each fraction, one row per pair."""
        names = [pair_name(p) for p in self.pairs]
        width = max(len("pair"), *(len(n) for n in names))
        header = f"{'pair':<{width}}  {'AUC':>5}  " + " ".join(
            f"{p * 100:>5.0f}%" for p in self.fractions
        )
        lines = [
            f"Allegiance over {self.n_images} images (AUC: trapezoid, x as a fraction; lower is "
            "better)",
            header,
        ]
        for name, pair in zip(names, self.pairs):
            values = " ".join(f"{a:>6.3f}" for a in self.curves[pair])
            lines.append(f"{name:<{width}}  {self.auc[pair]:>5.3f}  {values}")
        if self.accuracy is not None:
            first = next(iter(self.accuracy.values()))[0]
            lines.append(f"accuracy at {self.fractions[0] * 100:.0f}% deleted: {first:.4f}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; pairs are "method/fill" strings."""

        def named(values: dict) -> dict:
            return {pair_name(p): np.asarray(v).tolist() for p, v in values.items()}

        return {
            "fractions": self.fractions.tolist(),
            "n_images": int(self.n_images),
            "curves": named(self.curves),
            "auc": {pair_name(p): float(v) for p, v in self.auc.items()},
            "deleted": named(self.deleted),
            "accuracy": None if self.accuracy is None else named(self.accuracy),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AllegianceResult:
        """Inverse of `to_dict`."""

        def parsed(values: dict) -> dict:
            return {parse_pair(n): np.asarray(v, np.float64) for n, v in values.items()}

        return cls(
            fractions=np.asarray(data["fractions"], np.float64),
            curves=parsed(data["curves"]),
            auc={parse_pair(n): float(v) for n, v in data["auc"].items()},
            deleted=parsed(data["deleted"]),
            accuracy=None if data["accuracy"] is None else parsed(data["accuracy"]),
            n_images=int(data["n_images"]),
        )

    def save_json(self, path: str | os.PathLike) -> None:
        """Write `to_dict()` as JSON, atomically (a temporary file, then a rename)."""
        write_atomic(path, json.dumps(self.to_dict(), indent=1).encode())

    @classmethod
    def load_json(cls, path: str | os.PathLike) -> AllegianceResult:
        """Read a file written by `save_json`."""
        with open(path) as file:
            return cls.from_dict(json.load(file))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AllegianceResult) and self.to_dict() == other.to_dict()

    def plot(
        self, ax: Any = None, title: str | None = None, pairs: Sequence[Pair] | None = None
    ) -> Any:
        """Allegiance curves as in the paper's Figs. 3 and 4.

        x: pixels deleted (%), y: allegiance; the legend gives each AUC. Black
        fills are solid lines, white fills dashed, other fills dotted.

        Args:
            ax: a matplotlib Axes to draw on; a new figure when None.
            title: an optional title.
            pairs: the (method, fill) pairs to draw, in legend order; all when None
                (e.g. the black-fill pairs only, for one panel of Fig. 3).

        Returns:
            the matplotlib Axes.
        """
        import matplotlib.pyplot as plt  # only needed here

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 4))
        colors = dict(zip(DELETION_METHODS, ("C0", "C1", "C2", "C3", "C4", "C7")))
        styles = {"black": "-", "white": "--"}
        if pairs is None:
            pairs = self.pairs
        else:
            pairs = tuple(tuple(p) for p in pairs)
            unknown = [pair_name(p) for p in pairs if p not in self.curves]
            if unknown:
                raise ValueError(
                    f"`pairs` must be among the evaluated pairs "
                    f"{[pair_name(p) for p in self.pairs]}, received unknown {unknown}"
                )
        for pair in pairs:
            method, fill = pair
            ax.plot(
                self.fractions * 100,
                self.curves[pair],
                linestyle=styles.get(fill, ":") if isinstance(fill, str) else ":",
                color=colors[method],
                marker=".",
                label=f"{pair_name(pair)} (AUC {self.auc[pair]:.3f})",
            )
        ax.set_xlabel("pixels deleted (%)")
        ax.set_ylabel("allegiance")
        ax.set_xlim(0, 100 * float(self.fractions[-1]) if self.fractions[-1] > 0 else 1)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        if title:
            ax.set_title(title)
        return ax


def trapezoid_auc(fractions: Sequence[float], curve: Sequence[float]) -> float:
    """sum_j (a_j + a_{j-1}) / 2 * (p_j - p_{j-1}), x as a fraction (spec section 2.3)."""
    p = np.asarray(fractions, np.float64)
    a = np.asarray(curve, np.float64)
    return float(np.sum((a[1:] + a[:-1]) / 2 * (p[1:] - p[:-1])))


# ----------------------------------------------------------------------------- evaluator


class AllegianceEvaluator:
    """The paper's black/white deletion benchmark (allegiance curves and AUC).

    Args:
        model: a Keras classifier taking float images (B, H, W, ch) in
            `value_range` and returning logits (a softmax last layer is
            stripped for the maps; predictions are argmaxes either way).
        fractions: deletion fractions in [0, 1), strictly increasing.
        pairs: (method, fill) pairs. A method is one of `METHODS` or
            "random" (a seeded random ranking, the control). A fill is
            "black" (value_range[0]), "white" (value_range[1]), a number, or
            one number per channel.
        batch_size: images per saliency pass for array input (a dataset's
            own batches are used as they come).
        value_range: (low, high) of the model's input: black and white.
        memory_budget: bytes of occluded images built at once (the model's
            activations come on top); larger means larger forward batches.
        seed: seed of the "random" ranking.

    Example:
        >>> evaluator = tf_signsal.AllegianceEvaluator(model)
        >>> result = evaluator.evaluate(test_dataset)
        >>> print(result.summary()); result.save_json("allegiance.json")
    """

    def __init__(
        self,
        model: Any,
        fractions: Sequence[float] = PAPER_FRACTIONS,
        pairs: Sequence[Pair] = PAPER_PAIRS,
        batch_size: int = 128,
        value_range: tuple[float, float] = (0.0, 1.0),
        memory_budget: int = 32 * 2**20,
        seed: int = 0,
    ):
        self.fractions = _check_fractions(fractions)
        self.pairs = _check_pairs(pairs)
        self.value_range = _check_value_range(value_range)
        self.batch_size = _checks.positive_int("batch_size", batch_size)
        self.memory_budget = _checks.positive_int("memory_budget", memory_budget)
        self.seed = int(seed)
        self.model = model
        self._saliency = SignedSaliency(model)
        # Distinct maps needed, and for each pair the index of its map and fill.
        self._methods = tuple(dict.fromkeys(m for m, _ in self.pairs))
        self._fills = tuple(dict.fromkeys(f for _, f in self.pairs))
        self._pair_method = np.array([self._methods.index(m) for m, _ in self.pairs], np.int32)
        self._pair_fill = np.array([self._fills.index(f) for _, f in self.pairs], np.int32)
        with warnings.catch_warnings():  # SignedSaliency has already warned about a softmax
            warnings.simplefilter("ignore")
            self._logits = logits_function(model)
        self._count_functions: dict[tuple[int, ...], Any] = {}

    # -- data ------------------------------------------------------------------------

    def _fill_values(self, channels: int) -> np.ndarray:
        low, high = self.value_range
        rows = []
        for fill in self._fills:
            if isinstance(fill, tuple):
                if len(fill) != channels:
                    raise ValueError(
                        f"fill {fill} has {len(fill)} values, but the images have "
                        f"{channels} channels: give one value per channel"
                    )
                rows.append(fill)
            else:
                value = {"black": low, "white": high}.get(fill, fill)
                rows.append((value,) * channels)
        return np.array(rows, np.float32)

    @staticmethod
    def _split(element: Any) -> tuple[Any, Any]:
        if isinstance(element, (tuple, list)):
            if not 1 <= len(element) <= 3:
                raise ValueError(
                    "`data` elements must be images or (images, labels[, weights]), received "
                    f"a tuple of {len(element)}"
                )
            return element[0], (element[1] if len(element) > 1 else None)
        if isinstance(element, dict):
            raise TypeError("`data` elements must be images or (images, labels), received a dict")
        return element, None

    def _batches(self, data: Any) -> tuple[Any, Any, Iterator[tuple[Any, Any]], int | None]:
        """The first (images, labels) batch, checked, the rest, and the image count if known.

        The first batch is read and checked before anything is computed.
        """
        if isinstance(data, tf.data.Dataset):
            if int(data.cardinality()) == 0:
                raise ValueError("`data` is an empty tf.data.Dataset: there is nothing to evaluate")
            iterator = iter(data)
            first = next(iterator, None)
            if first is None:
                raise ValueError("`data` is an empty tf.data.Dataset: there is nothing to evaluate")
            rest = (self._split(element) for element in iterator)
            first_images, first_labels = self._split(first)
            total = None
        else:
            images, labels = self._split(data)
            images = _checks.as_image_batch(images, "data")
            if labels is not None and len(labels) != images.shape[0]:
                raise ValueError(f"`data` has {images.shape[0]} images but {len(labels)} labels")
            total = images.shape[0]
            if total == 0:
                raise ValueError("`data` holds no images: there is nothing to evaluate")
            step = self.batch_size
            rest = (
                (images[i : i + step], None if labels is None else labels[i : i + step])
                for i in range(step, total, step)
            )
            first_images, first_labels = images[:step], None if labels is None else labels[:step]
        first_images = _checks.as_image_batch(first_images, "data")
        _checks.check_model_input(self.model, first_images, "data")
        self._fill_values(first_images.shape[-1])
        self._saliency._engine.num_classes(first_images)  # a model that is no classifier
        self._labels(first_labels, first_images.shape[0])
        return first_images, first_labels, rest, total

    @staticmethod
    def _labels(labels: Any, size: int) -> np.ndarray | None:
        if labels is None:
            return None
        labels = np.asarray(labels)
        if labels.ndim == 2:  # one-hot / categorical
            labels = labels.argmax(axis=1)
        if labels.shape != (size,) or labels.dtype.kind not in "iuf":
            raise ValueError(
                f"labels must be one class index (or one-hot row) per image, {size} in this "
                f"batch, received shape {labels.shape} and dtype {labels.dtype}"
            )
        return labels.astype(np.int64)

    # -- compute ---------------------------------------------------------------------

    def _count_function(self, image_shape: tuple[int, ...]) -> Any:
        # One trace per image shape: batch, chunk and map counts vary freely.
        if image_shape not in self._count_functions:
            height, width, channels = image_shape
            signature = [
                tf.TensorSpec((None, height, width, channels), tf.float32),  # images
                tf.TensorSpec((None, None, height, width), tf.float32),  # maps (M, B, H, W)
                tf.TensorSpec((None, None, None), tf.float32),  # thresholds (M, B, P)
                tf.TensorSpec((None, channels), tf.float32),  # fill values
                tf.TensorSpec((None,), tf.int32),  # intact predictions
                tf.TensorSpec((None,), tf.int32),  # labels
                tf.TensorSpec((None, 4), tf.int32),  # items
            ]
            self._count_functions[image_shape] = tf.function(
                self._count_chunk, input_signature=signature
            )
        return self._count_functions[image_shape]

    def _count_chunk(self, images, maps, thresholds, fills, intact, labels, items):
        """Agreeing and correct predictions per (pair, fraction) for a chunk of items.

        items (S, 4) int32 rows: (image, pair, fraction, combo index).
        """
        image, pair, fraction, combo = (items[:, i] for i in range(4))
        method = tf.gather(tf.constant(self._pair_method), pair)
        fill = tf.gather(tf.constant(self._pair_fill), pair)
        saliency = tf.gather_nd(maps, tf.stack([method, image], axis=1))  # (S, H, W)
        v = tf.gather_nd(thresholds, tf.stack([method, image, fraction], axis=1))
        mask = (saliency > v[:, None, None]) & (saliency != 0)
        occluded = tf.where(
            mask[..., None], tf.gather(fills, fill)[:, None, None, :], tf.gather(images, image)
        )
        predicted = tf.argmax(self._logits(occluded), axis=1, output_type=tf.int32)
        num = len(self.pairs) * len(self.fractions)
        agree = tf.cast(predicted == tf.gather(intact, image), tf.int64)
        correct = tf.cast(predicted == tf.gather(labels, image), tf.int64)
        return (
            tf.math.unsorted_segment_sum(agree, combo, num),
            tf.math.unsorted_segment_sum(correct, combo, num),
        )

    def _batch_counts(self, images: Any, labels: Any) -> tf.Tensor:
        """Counts for one batch, as one int64 vector (see `_unpack`)."""
        images = _checks.as_image_batch(images, "data")
        size, height, width, channels = images.shape
        num_pairs, num_fractions = len(self.pairs), len(self.fractions)
        counts = np.zeros(1 + 2 * num_pairs * num_fractions + len(self._methods) * num_fractions)
        counts = counts.astype(np.int64)
        labels = self._labels(labels, size)
        if size == 0:  # a replica's share of a short last batch may be empty
            return tf.constant(counts)
        saliency_methods = [m for m in self._methods if m != "random"]
        if saliency_methods:
            maps, logits = self._saliency.explain_with_logits(images, methods=saliency_methods)
        else:
            maps, logits = {}, self._logits(images)
        if "random" in self._methods:
            maps["random"] = random_maps(images, tf.constant(self.seed, tf.int64))
        stacked = tf.stack([maps[m] for m in self._methods])  # (M, B, H, W)
        num_pixels = height * width
        indices = _threshold_indices(self.fractions, num_pixels)
        thresholds, deleted = _thresholds_and_counts(
            tf.reshape(stacked, (len(self._methods), size, num_pixels)), tf.constant(indices)
        )
        deleted = deleted.numpy()  # (M, B, P)
        intact = np.argmax(logits.numpy(), axis=1).astype(np.int32)

        # An image that loses no pixel is the intact image: it agrees with
        # itself, and is correct when the intact prediction is.
        pair_deleted = deleted[self._pair_method]  # (K, B, P)
        kept = pair_deleted == 0
        agree = kept.sum(axis=1).reshape(-1)  # combo index = pair * P + fraction
        correct = np.zeros_like(agree)
        if labels is not None:
            correct = (kept & (intact == labels)[None, :, None]).sum(axis=1).reshape(-1)
        pair, image, fraction = np.nonzero(~kept)
        items = np.stack([image, pair, fraction, pair * num_fractions + fraction], 1)
        items = items.astype(np.int32)
        chunk = max(1, self.memory_budget // (num_pixels * channels * 4))
        label_tensor = tf.constant(
            labels.astype(np.int32) if labels is not None else np.full(size, -1, np.int32)
        )
        fills = tf.constant(self._fill_values(channels))
        intact_tensor = tf.constant(intact)
        for start in range(0, len(items), chunk):
            chunk_agree, chunk_correct = self._count_function((height, width, channels))(
                images, stacked, thresholds, fills, intact_tensor, label_tensor,
                tf.constant(items[start : start + chunk]),
            )
            agree += chunk_agree.numpy()
            correct += chunk_correct.numpy()
        counts[0] = size
        counts[1 : 1 + agree.size] = agree
        counts[1 + agree.size : 1 + 2 * agree.size] = correct
        counts[1 + 2 * agree.size :] = deleted.sum(axis=1).reshape(-1)
        return tf.constant(counts)

    def _unpack(self, counts: np.ndarray, has_labels: bool, num_pixels: int) -> AllegianceResult:
        num_pairs, num_fractions = len(self.pairs), len(self.fractions)
        n = int(counts[0])
        size = num_pairs * num_fractions
        agree = counts[1 : 1 + size].reshape(num_pairs, num_fractions) / n
        correct = counts[1 + size : 1 + 2 * size].reshape(num_pairs, num_fractions) / n
        deleted = counts[1 + 2 * size :].reshape(len(self._methods), num_fractions)
        deleted = deleted / (n * num_pixels)
        fractions = np.asarray(self.fractions, np.float64)
        curves = {pair: agree[k] for k, pair in enumerate(self.pairs)}
        return AllegianceResult(
            fractions=fractions,
            curves=curves,
            auc={pair: trapezoid_auc(fractions, curve) for pair, curve in curves.items()},
            deleted={pair: deleted[self._pair_method[k]] for k, pair in enumerate(self.pairs)},
            accuracy={p: correct[k] for k, p in enumerate(self.pairs)} if has_labels else None,
            n_images=n,
        )

    # -- public ----------------------------------------------------------------------

    def evaluate(self, data: Any, verbose: int = 1, strategy: Any = None) -> AllegianceResult:
        """Run the deletion benchmark.

        Args:
            data: images (B, H, W, ch) as a numpy array or tensor, a tuple
                (images, labels) of arrays, or a `tf.data.Dataset` of image
                batches or (images, labels[, weights]) batches. Labels (class
                indices or one-hot rows) are optional and only give `accuracy`;
                allegiance never uses them.
            verbose: 1 shows a Keras progress bar, 0 is silent.
            strategy: an optional `tf.distribute.Strategy` (e.g. MirroredStrategy
                over GPUs, MultiWorkerMirroredStrategy over machines): the data
                is distributed, each replica counts its images and the counts
                are summed by the strategy. The result equals the
                single-device one.

        Returns:
            an `AllegianceResult`.
        """
        if strategy is not None and not hasattr(strategy, "experimental_distribute_dataset"):
            raise TypeError(
                f"`strategy` must be a tf.distribute.Strategy, received {type(strategy).__name__}"
            )
        first_images, first_labels, rest, total = self._batches(data)
        height, width, channels = first_images.shape[1:]
        has_labels = first_labels is not None
        progress = keras.utils.Progbar(total, verbose=verbose, unit_name="image")
        totals = None
        if strategy is None:
            steps: Iterator[tf.Tensor] = (
                self._batch_counts(images, labels)
                for images, labels in itertools.chain([(first_images, first_labels)], rest)
            )
        else:
            steps = self._distributed_counts(data, strategy)
        seen = 0
        for counts in steps:
            counts = np.asarray(counts)
            totals = counts if totals is None else totals + counts
            seen += int(counts[0])
            progress.update(seen)
        if totals is None or totals[0] == 0:
            raise ValueError("`data` holds no images: there is nothing to evaluate")
        return self._unpack(totals, has_labels, height * width)

    def _distributed_counts(self, data: Any, strategy: Any) -> Iterator[np.ndarray]:
        if not isinstance(data, tf.data.Dataset):
            images, labels = self._split(data)
            elements = images if labels is None else (images, labels)
            data = tf.data.Dataset.from_tensor_slices(elements).batch(self.batch_size)
        distributed = strategy.experimental_distribute_dataset(data)

        def replica_step(element):
            images, labels = self._split(element)
            return self._batch_counts(images, labels)

        for element in distributed:
            per_replica = strategy.run(replica_step, args=(element,))
            yield strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None).numpy()

