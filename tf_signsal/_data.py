"""The one data path: how every consumer reads the images it is given.

`explain`, `evaluate` (on one device or under `tf.distribute`), the sanity checks, the
callbacks and the command line all read their data through `batches`, so they accept
the same inputs and apply the same checks:

- inputs: a float array, tensor or list of images (B, H, W, ch); a tuple `(x,)`,
  `(x, y)` or `(x, y, w)` of arrays, unpacked as `keras.utils.unpack_x_y_sample_weight`
  does; or a `tf.data.Dataset` of image batches or of such tuples, bounded by `steps`
  (Keras's `steps=`) and refused when endless.
- checks: every batch is a finite float batch of rank 4 (`_checks.as_image_batch`); the
  first batch also matches the model's declared input and, when asked, lies in
  `value_range` (and spans more than a tenth of it, else a warning); every later batch
  has the first batch's image size.

Private API, for the package's own modules:

    source = _data.batches(data, batch_size=..., steps=..., model=..., name="data",
                           what="evaluate")
    source.first            # the first Batch(images, labels, weights), checked
    source.total            # the image count when known (arrays), else None
    for images, labels, weights in source: ...   # every batch, the first included
    source.dataset()        # the same batches as a tf.data.Dataset (for tf.distribute)
    source.check(images)    # the checks of a later batch (e.g. a replica's share)
    source.stack()          # all batches as one Batch (the sanity checks, the CLI)

Labels and weights are passed on as given (sliced with the images); each consumer
checks them against its model.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf

from tf_signsal import _checks, _model


class Batch(NamedTuple):
    """One batch: checked float32 images (B, H, W, ch), and the labels and sample weights
    as given (None when absent)."""

    images: tf.Tensor
    labels: Any
    weights: Any


def unpack(element: Any, name: str = "data") -> tuple[Any, Any, Any]:
    """(x, y, w) of one element, as `keras.utils.unpack_x_y_sample_weight` reads it: a
    tuple (or list) of one, two or three parts, or anything else as x alone."""
    if isinstance(element, list):
        element = tuple(element)
    if isinstance(element, dict):
        raise TypeError(
            f"`{name}` elements must be images or (images, labels[, weights]), received a dict"
        )
    if not isinstance(element, tuple):
        return element, None, None
    if not 1 <= len(element) <= 3:
        raise ValueError(
            f"`{name}` elements must be images or (images, labels[, weights]), received a "
            f"tuple of {len(element)}"
        )
    return (*element, *(None,) * (3 - len(element)))


def _top_level(data: Any, name: str) -> tuple[Any, Any, Any]:
    # A tuple is (x[, y[, w]]), as Keras reads it; a list at the top is a list of images
    # (as `np.asarray` reads it), and anything else goes to the image checks whole.
    return unpack(data, name) if isinstance(data, tuple) else (data, None, None)


def _length(values: Any) -> int:
    return int(values.shape[0]) if hasattr(values, "shape") else len(values)


class Batches:
    """Checked batches of one data argument, read once; made by `batches`.

    Attributes:
        first: the first `Batch`, checked.
        total: the number of images when known (arrays), else None.
    """

    def __init__(self, first: Batch, rest: Iterator[Batch], total: int | None, source: Any,
                 batch_size: int | None, name: str, what: str):
        self.first = first
        self.total = total
        self._rest = rest
        self._source = source
        self._batch_size = batch_size
        self._name = name
        self._what = what

    def __iter__(self) -> Iterator[Batch]:
        """Every batch, the first included; each later one checked as it comes."""
        return itertools.chain([self.first], self._rest)

    def check(self, images: Any) -> tf.Tensor:
        """The checks of a batch after the first: a finite float32 batch of the first
        batch's image size, returned as a tensor."""
        return _later_batch(images, self.first.images, self._name, self._what)

    def dataset(self) -> tf.data.Dataset:
        """The same batches as a `tf.data.Dataset` of images or (images, labels) elements
        (bounded by `steps`), for `tf.distribute` to split; read them with `unpack` and
        `check`."""
        if isinstance(self._source, tf.data.Dataset):
            return self._source
        images, labels, _ = self._source
        elements = images if labels is None else (images, labels)
        size = self._batch_size or max(self.total or 0, 1)
        return tf.data.Dataset.from_tensor_slices(elements).batch(size)

    def stack(self) -> Batch:
        """All the batches as one: images concatenated, and labels and weights when every
        batch has them."""
        parts = list(self)
        if len(parts) == 1:
            return parts[0]

        def joined(values: list[Any]) -> Any:
            if any(v is None for v in values):
                return None
            return np.concatenate([np.asarray(v) for v in values])

        return Batch(
            tf.concat([p.images for p in parts], axis=0),
            joined([p.labels for p in parts]),
            joined([p.weights for p in parts]),
        )


def _later_batch(images: Any, first: tf.Tensor, name: str, what: str) -> tf.Tensor:
    images = _checks.as_image_batch(images, name)
    # The curves are shares of images and of pixels, and maps are stacked: one image size
    # throughout.
    shape = tuple(first.shape[1:])
    if tuple(images.shape[1:]) != shape:
        raise ValueError(
            f"`{name}` batches must share one image shape, the first had {shape}, a later "
            f"one {tuple(images.shape[1:])}: resize the images, or {what} each size apart"
        )
    return images


# A first batch spanning less than this share of value_range is in another range.
_SMALL_SPAN = 0.1


def _check_value_range(
    images: tf.Tensor, value_range: tuple[float, float], name: str, stacklevel: int
) -> None:
    # Black and white are the ends of value_range: with data in another range (e.g.
    # [0, 255] with the default (0, 1)), "white" would be nearly black.
    low, high = value_range
    lowest, highest = (float(v) for v in tf.stack(
        [tf.reduce_min(images), tf.reduce_max(images)]).numpy())  # one host sync
    slack = 1e-3 * (high - low)
    if lowest < low - slack or highest > high + slack:
        raise ValueError(
            f"`{name}` holds values in [{lowest:g}, {highest:g}], outside `value_range` "
            f"({low:g}, {high:g}), whose ends are the black and white fills: pass the "
            "model's input range, e.g. value_range=(0, 255), or scale the images"
        )
    # The other way round ([0, 1] images with value_range=(0, 255)), "black" and "white"
    # are far from every pixel. A constant batch tells nothing: no warning.
    if 0 < highest - lowest < _SMALL_SPAN * (high - low):
        warnings.warn(
            f"tf_signsal: `{name}` spans [{lowest:g}, {highest:g}], "
            f"{100 * (highest - lowest) / (high - low):.2g}% of `value_range` ({low:g}, "
            f"{high:g}), whose ends are the black and white fills: are the images in "
            "another range (e.g. [0, 1] images with value_range=(0, 255))? Pass the range "
            "the model is fed, with images in it",
            _model.ValueRangeWarning,
            stacklevel=stacklevel + 2,
        )


def batches(
    data: Any,
    *,
    batch_size: int | None = None,
    steps: int | None = None,
    model: Any = None,
    value_range: tuple[float, float] | None = None,
    name: str = "images",
    what: str = "explain",
    allow_empty: bool = False,
    stacklevel: int = 1,
) -> Batches:
    """Read `data` as checked batches; the first batch is read and checked here.

    Args:
        data: images (an array, tensor or list), a tuple `(x,)`, `(x, y)` or `(x, y, w)`
            of arrays, or a `tf.data.Dataset` of either (a dataset's batches are used
            as they come).
        batch_size: the batch size of array data; None gives one batch of all images.
        steps: read at most this many batches of a dataset (see
            `_checks.bounded_dataset`); an error for array data.
        model: when given, the first batch must match its declared input.
        value_range: when given, the first batch's values must lie in it (with a
            slack of 1e-3 of its span), and span more than a tenth of it, else a
            `ValueRangeWarning`: one host sync, once.
        name: the argument's name in messages ("images", "data").
        what: the work in messages ("explain", "evaluate").
        allow_empty: whether array data may hold no images (one empty batch); an
            empty dataset is always refused.
        stacklevel: as `warnings.warn`'s, counted from the caller: the unknown-length
            and value-range warnings point at the caller's line with 1, at its caller's
            with 2.

    Returns:
        `Batches`, to be iterated once.
    """
    data = _checks.bounded_dataset(data, steps, name, what, stacklevel=stacklevel + 2)
    if isinstance(data, tf.data.Dataset):
        source: Any = data
        total = None
        raw = (unpack(element, name) for element in data)
        first_raw = next(raw, None)
        if first_raw is None:
            raise ValueError(f"`{name}` is an empty tf.data.Dataset: there is nothing to {what}")
        first = Batch(_checks.as_image_batch(first_raw[0], name), *first_raw[1:])
    else:
        x, y, w = _top_level(data, name)
        images = _checks.as_image_batch(x, name)
        total = int(images.shape[0])
        for part, values in (("labels", y), ("weights", w)):
            if values is not None and _length(values) != total:
                raise ValueError(f"`{name}` has {total} images but {_length(values)} {part}")
        if total == 0 and not allow_empty:
            raise ValueError(f"`{name}` holds no images: there is nothing to {what}")
        source = (images, y, w)
        step = total if batch_size is None or total == 0 else batch_size
        # Slices of one checked array: one image size already, nothing to check again.
        sliced = (
            Batch(
                images[i : i + step],
                None if y is None else y[i : i + step],
                None if w is None else w[i : i + step],
            )
            for i in range(0, max(total, 1), max(step, 1))
        )
        first = next(sliced)
    if model is not None:
        _checks.check_model_input(model, first.images, name)
    if value_range is not None and first.images.shape[0] > 0:
        _check_value_range(first.images, value_range, name, stacklevel)
    if total is None:  # a dataset's later batches are checked as they come
        rest = (Batch(_later_batch(x, first.images, name, what), y, w) for x, y, w in raw)
    else:
        rest = sliced
    return Batches(first, rest, total, source, batch_size, name, what)
