"""Input checks shared by every stage: each error names the argument, what was
received and what is expected."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import tensorflow as tf


def as_image_batch(images: Any, name: str = "images") -> tf.Tensor:
    """Return `images` as a finite float32 tensor of shape (B, H, W, channels)."""
    if isinstance(images, tf.data.Dataset):
        raise TypeError(f"`{name}` must be an array or tensor here, received a tf.data.Dataset")
    try:
        dtype = tf.as_dtype(images.dtype) if hasattr(images, "dtype") else None
    except TypeError:
        dtype = None
    if dtype is None:
        images = np.asarray(images)
        dtype = tf.as_dtype(images.dtype)
    if dtype.is_integer or dtype.is_bool:
        raise TypeError(
            f"`{name}` must hold floats in the model's input range (the paper's [0, 1]), "
            f"received dtype {dtype.name}; scale it first, e.g. images / 255.0"
        )
    if not dtype.is_floating:
        raise TypeError(f"`{name}` must be a float array, received dtype {dtype.name}")
    images = tf.convert_to_tensor(images, dtype=tf.float32)
    if images.shape.rank != 4:
        raise ValueError(
            f"`{name}` must have rank 4 (batch, height, width, channels), "
            f"received shape {tuple(images.shape)}"
        )
    if not bool(tf.reduce_all(tf.math.is_finite(images))):
        raise ValueError(f"`{name}` contains NaN or Inf pixels; every pixel must be finite")
    return images


def check_model_input(model: Any, images: tf.Tensor, name: str = "images") -> None:
    """Raise if the model declares an input shape that `images` does not match."""
    inputs = getattr(model, "inputs", None)
    if not inputs:
        return  # a subclassed model declares nothing; it will complain itself
    if len(inputs) != 1:
        raise ValueError(f"`model` must take a single image input, it takes {len(inputs)} inputs")
    expected = tuple(inputs[0].shape)[1:]
    received = tuple(images.shape)[1:]
    if len(expected) != len(received) or any(
        e is not None and e != r for e, r in zip(expected, received)
    ):
        raise ValueError(f"`{name}` has per-image shape {received}, but the model takes {expected}")


def as_targets(targets: Any, batch_size: int, num_classes: int | None = None) -> np.ndarray:
    """Return `targets` as an int32 vector of length `batch_size`."""
    array = np.asarray(targets)
    if array.dtype.kind not in "iu":
        raise TypeError(f"`targets` must hold integer class indices, received dtype {array.dtype}")
    array = array.reshape(-1) if array.ndim == 0 else array
    if array.shape != (batch_size,):
        raise ValueError(
            f"`targets` must have one class index per image, shape ({batch_size},), "
            f"received shape {array.shape}"
        )
    if array.size and (array.min() < 0 or (num_classes is not None and array.max() >= num_classes)):
        bound = f"[0, {num_classes})" if num_classes is not None else "non-negative"
        raise ValueError(
            f"`targets` must be class indices in {bound}, received values from "
            f"{array.min()} to {array.max()}"
        )
    return array.astype(np.int32)


def check_choices(name: str, values: Any, valid: tuple[str, ...]) -> tuple[str, ...]:
    """Return `values` as a tuple, raising on any name outside `valid`."""
    if isinstance(values, str):
        values = (values,)
    values = tuple(values)
    unknown = [v for v in values if v not in valid]
    if unknown or not values:
        raise ValueError(
            f"`{name}` must be a non-empty selection of {list(valid)}, received {list(values)}"
        )
    return values


def positive_int(name: str, value: Any) -> int:
    """`value` as an int, or a ValueError naming `name` unless it is an integer >= 1."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer, received {value!r}")
    return int(value)
