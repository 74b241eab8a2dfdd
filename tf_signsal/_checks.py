"""The one checking vocabulary of the package: every argument check lives here.

Each check names the argument, what was received and what is expected. A value of
the wrong type raises TypeError; a value of the right type but outside what is
allowed raises ValueError, the same way in every module.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import tensorflow as tf

# TensorFlow is imported inside the checks that need it: the command line checks its
# numbers with this module while parsing, and `--help` must not pay for TensorFlow.

# ----------------------------------------------------------------------------- numbers


def integer(
    name: str, value: Any, minimum: int | None = None, maximum: int | None = None
) -> int:
    """`value` as an int: TypeError unless it is an integer (not a bool), ValueError
    outside [minimum, maximum]."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"`{name}` must be an integer, received {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"`{name}` must be an integer <= {maximum}, received {value!r}")
    if minimum is not None and value < minimum:
        kind = {0: "a non-negative integer", 1: "a positive integer"}.get(
            minimum, f"an integer >= {minimum}"
        )
        raise ValueError(f"`{name}` must be {kind}, received {value!r}")
    return int(value)


def positive_int(name: str, value: Any) -> int:
    """`value` as an int >= 1 (see `integer`)."""
    return integer(name, value, minimum=1)


def non_negative_int(name: str, value: Any) -> int:
    """`value` as an int >= 0 (see `integer`)."""
    return integer(name, value, minimum=0)


def boolean(name: str, value: Any) -> bool:
    """`value` as a bool: TypeError unless it is one (numpy's included)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be True or False, received {value!r}")
    return bool(value)


def several_classes(num_classes: int, why: str) -> None:
    """Refuse a model with a single output where `why` needs other classes to compare."""
    if num_classes < 2:
        raise ValueError(
            f"`model` has a single output: {why}; give the model one output per class (e.g. "
            "two logits [-z, z] for a binary classifier)"
        )


def is_real(value: Any) -> bool:
    """Whether `value` is a real number (bools are not)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def real(
    name: str,
    value: Any,
    minimum: float | None = None,
    strict: bool = False,
    maximum: float | None = None,
) -> float:
    """A finite real number, >= `minimum` (> with `strict`) and <= `maximum`: TypeError
    for another type."""
    if not (is_real(value) or isinstance(value, np.floating)):
        raise TypeError(f"`{name}` must be a number, received {value!r}")
    value = float(value)
    too_small = minimum is not None and (value <= minimum if strict else value < minimum)
    too_large = maximum is not None and value > maximum
    if not math.isfinite(value) or too_small or too_large:
        bound = "" if minimum is None else f" {'>' if strict else '>='} {minimum:g}"
        bound += "" if maximum is None else f"{' and' if bound else ''} <= {maximum:g}"
        raise ValueError(f"`{name}` must be a finite number{bound}, received {value!r}")
    return value


def seed(name: str, value: Any) -> int:
    """`value` as a seed: an integer in [0, 2**32) (see `integer`). The package's
    randomness is 32-bit: `_random` hashes seeds in uint32, and a larger one would wrap."""
    return integer(name, value, minimum=0, maximum=2**32 - 1)


def value_range(value: Any, name: str = "value_range") -> tuple[float, float]:
    """A finite pair (low, high) with low < high."""
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise TypeError(
            f"`{name}` must be a pair (low, high) of numbers, received {value!r}"
        ) from None
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise ValueError(f"`{name}` must be finite with low < high, received ({low}, {high})")
    return low, high


def fractions(values: Any, name: str = "fractions", at_least: int = 1) -> tuple[float, ...]:
    """A strictly increasing sequence of at least `at_least` numbers in [0, 1)."""
    if isinstance(values, str) or not isinstance(values, (Sequence, np.ndarray)):
        raise TypeError(f"`{name}` must be a sequence of numbers in [0, 1), received {values!r}")
    if not all(is_real(p) or isinstance(p, np.floating) for p in values):
        raise TypeError(f"`{name}` must be a sequence of numbers in [0, 1), received {values!r}")
    checked = tuple(float(p) for p in values)
    if len(checked) < at_least:
        why = " (an area under the curve needs two points)" if at_least == 2 else ""
        raise ValueError(
            f"`{name}` must hold at least {at_least} fraction{'s' if at_least > 1 else ''}"
            f"{why}, received {list(checked)}"
        )
    bad = [p for p in checked if not (0.0 <= p < 1.0)]
    if bad:
        raise ValueError(f"`{name}` must lie in [0, 1), received {list(checked)} (bad: {bad})")
    if any(b <= a for a, b in zip(checked, checked[1:])):
        raise ValueError(f"`{name}` must be strictly increasing, received {list(checked)}")
    return checked


# ----------------------------------------------------------------------------- choices


def one_of(name: str, value: Any, valid: tuple[str, ...]) -> str:
    """`value` if it is one of the names in `valid`."""
    if not isinstance(value, str):
        raise TypeError(f"`{name}` must be one of {list(valid)}, received {value!r}")
    if value not in valid:
        raise ValueError(f"`{name}` must be one of {list(valid)}, received {value!r}")
    return value


def check_choices(name: str, values: Any, valid: tuple[str, ...]) -> tuple[str, ...]:
    """Return `values` (a name or a sequence of names) as a tuple of names from `valid`."""
    if isinstance(values, str):
        values = (values,)
    try:
        values = tuple(values)
    except TypeError:
        raise TypeError(
            f"`{name}` must be a selection of {list(valid)}, received {values!r}"
        ) from None
    unknown = [v for v in values if v not in valid]
    if unknown or not values:
        raise ValueError(
            f"`{name}` must be a non-empty selection of {list(valid)}, received {list(values)}"
        )
    return values


# ----------------------------------------------------------------------------- images


def as_image_batch(images: Any, name: str = "images") -> tf.Tensor:
    """Return `images` as a finite float32 tensor of shape (B, H, W, channels)."""
    import tensorflow as tf

    if isinstance(images, tf.data.Dataset):
        raise TypeError(f"`{name}` must be an array or tensor here, received a tf.data.Dataset")
    if images is None or isinstance(images, (str, bytes, dict)) or not (
        hasattr(images, "dtype") or isinstance(images, (list, tuple))
    ):
        raise TypeError(
            f"`{name}` must be a float array or tensor of images (batch, height, width, "
            f"channels), received {type(images).__name__}"
        )
    try:
        dtype = tf.as_dtype(images.dtype) if hasattr(images, "dtype") else None
    except TypeError:
        dtype = None
    if dtype is None:
        try:
            images = np.asarray(images)
        except ValueError:  # numpy's "inhomogeneous shape": images of different sizes
            raise ValueError(
                f"`{name}` must be images of one size (batch, height, width, channels), "
                "received a list of arrays of different shapes"
            ) from None
        try:
            dtype = tf.as_dtype(images.dtype)
        except TypeError:
            raise TypeError(
                f"`{name}` must be a float array of images, received {type(images).__name__} "
                f"of dtype {images.dtype}"
            ) from None
    if dtype.is_integer or dtype.is_bool:
        raise TypeError(
            f"`{name}` must hold floats in the model's input range (the paper's [0, 1]), "
            f"received dtype {dtype.name}; scale it first, e.g. images / 255.0"
        )
    if not dtype.is_floating:
        raise TypeError(
            f"`{name}` must be a float array of images, received {type(images).__name__} "
            f"of dtype {dtype.name}"
        )
    images = tf.convert_to_tensor(images, dtype=tf.float32)
    if images.shape.rank != 4:
        raise ValueError(
            f"`{name}` must have rank 4 (batch, height, width, channels), "
            f"received shape {tuple(images.shape)}"
        )
    if not bool(tf.reduce_all(tf.math.is_finite(images))):
        raise ValueError(f"`{name}` contains NaN or Inf pixels; every pixel must be finite")
    return images


def finite_dataset(dataset: tf.data.Dataset, name: str) -> tf.data.Dataset:
    """Refuse a dataset known to be endless (e.g. `.repeat()`), which would never finish."""
    import tensorflow as tf

    if int(dataset.cardinality()) == int(tf.data.INFINITE_CARDINALITY):
        raise ValueError(
            f"`{name}` is an endless tf.data.Dataset (infinite cardinality, e.g. from "
            f"`.repeat()`): pass a finite part, e.g. `{name}.take(number_of_batches)`"
        )
    return dataset


def bounded_dataset(data: Any, steps: Any, name: str, what: str, stacklevel: int) -> Any:
    """`data` cut to its first `steps` batches (Keras's `steps=`), the way to bound a
    dataset that repeats; without `steps`, a dataset whose length TensorFlow cannot tell
    (e.g. after `filter`) gets a warning, and an endless one is refused. `what` names the
    work in the messages ("explain", "evaluate"); `stacklevel` points the warning at the
    user's call."""
    import tensorflow as tf

    if steps is not None:
        steps = positive_int("steps", steps)
        if not isinstance(data, tf.data.Dataset):
            raise ValueError(
                f"`steps` bounds a tf.data.Dataset; `{name}` is {type(data).__name__}, "
                "which is used whole: leave steps=None"
            )
        return data.take(steps)
    if isinstance(data, tf.data.Dataset):
        finite_dataset(data, name)
        if int(data.cardinality()) == int(tf.data.UNKNOWN_CARDINALITY):
            warnings.warn(
                f"tf_signsal: TensorFlow cannot tell whether `{name}` ends (unknown "
                "cardinality, e.g. after filter()); it is read to its end. If it repeats, "
                f"pass steps=, the number of batches to {what}.",
                stacklevel=stacklevel,
            )
    return data


def bool_masks(masks: Any, images: tf.Tensor, name: str = "masks") -> tf.Tensor:
    """`masks` as a bool tensor of shape (B, H, W) matching `images` (B, H, W, ch)."""
    import tensorflow as tf

    dtype = getattr(masks, "dtype", None)
    if dtype is None:
        masks = np.asarray(masks)
        dtype = masks.dtype
    try:
        is_bool = tf.as_dtype(dtype).is_bool
    except TypeError:
        is_bool = False
    if not is_bool:
        raise TypeError(
            f"`{name}` must be a boolean array (True = delete) of shape (batch, height, "
            f"width), received dtype {getattr(dtype, 'name', dtype)}; e.g. `maps > threshold`"
        )
    masks = tf.convert_to_tensor(masks, dtype=tf.bool)
    expected = tuple(images.shape[:3])
    if tuple(masks.shape) != expected:
        raise ValueError(
            f"`{name}` must have shape (batch, height, width) = {expected} to match the "
            f"images {tuple(images.shape)}, received shape {tuple(masks.shape)}"
        )
    return masks


def ranking_dtype(dtype: Any) -> tf.DType:
    """The dtype maps of `dtype` are ranked in: float64 for float64, float32 for any
    other. Cast to float32, float64 values apart by less than its precision would tie,
    and the deletion rules keep ties together (MoRF deletes none that equals its
    threshold): order that the maps hold would be lost."""
    import tensorflow as tf

    try:
        wide = dtype is not None and tf.as_dtype(dtype) == tf.float64
    except TypeError:
        wide = False
    return tf.float64 if wide else tf.float32


def explainer_maps(
    returned: Any, names: Sequence[str] | None, images: tf.Tensor
) -> dict[str, tf.Tensor]:
    """The maps `names` (every map when None) of what an explainer returned for
    `images` (B, H, W, ch), as float32 tensors, or float64 for float64 maps (see
    `ranking_dtype`): refuse a result that is not a mapping {map name: map}, that lacks
    a map, or whose maps are not numbers of shape (B, H, W) or not finite."""
    import tensorflow as tf

    if not isinstance(returned, Mapping):
        raise TypeError(
            "`explainer` must return a mapping {map name: (B, H, W) map}, "
            f"it returned a {type(returned).__name__}"
        )
    if not returned:
        raise ValueError("`explainer` must return at least one map, it returned an empty mapping")
    names = tuple(returned) if names is None else tuple(names)
    missing = [key for key in names if key not in returned]
    if missing:
        raise ValueError(
            f"`explainer` must return the maps {missing}, it returns only "
            f"{sorted(map(str, returned))}"
        )
    maps = {}
    for key in names:
        value = tf.convert_to_tensor(returned[key])
        if not (value.dtype.is_floating or value.dtype.is_integer):
            raise TypeError(f"`explainer` map {key!r} must hold numbers, dtype {value.dtype}")
        value = tf.cast(value, ranking_dtype(value.dtype))
        if tuple(value.shape) != tuple(images.shape[:3]):
            raise ValueError(
                f"`explainer` map {key!r} must have shape (batch, height, width) = "
                f"{tuple(images.shape[:3])}, it has shape {tuple(value.shape)}"
            )
        if not bool(tf.reduce_all(tf.math.is_finite(value))):
            raise ValueError(f"`explainer` map {key!r} holds NaN or Inf values")
        maps[key] = value
    return maps


def image_shape(value: Any, name: str = "image_shape") -> tuple[int | None, int | None, int]:
    """(height, width, channels): positive integers, height and width may be None."""
    shape = tuple(value) if isinstance(value, (tuple, list)) else None
    if shape is None or len(shape) != 3:
        raise ValueError(
            f"`{name}` must be (height, width, channels), received {value!r}"
        )
    valid = all(
        (d is None and axis < 2) or (isinstance(d, int) and not isinstance(d, bool) and d > 0)
        for axis, d in enumerate(shape)
    )
    if not valid:
        raise ValueError(
            f"`{name}` must be (height, width, channels) with positive integers "
            f"(height and width may be None), received {value!r}"
        )
    return shape


_DATA_FORMATS = ("channels_first", "channels_last")


def _layers_in_order(model: Any) -> Any:
    """The layers of `model` in its order, a nested model's own layers in its place."""
    for layer in getattr(model, "layers", None) or ():
        if getattr(layer, "layers", None) is not None:
            yield from _layers_in_order(layer)
        else:
            yield layer


def _wrap_advice(shape: tuple) -> str:
    channels, height, width = (d if d is not None else n for d, n in zip(shape, "CHW"))
    return (
        f"keras.Sequential([keras.Input(({height}, {width}, {channels})), "
        "keras.layers.Permute((3, 1, 2)), model])"
    )


def _first_data_format_layer(model: Any) -> Any:
    """The first of `model`'s layers (nested models' included) that has a `data_format`
    (a convolution, a pooling, `Flatten`, ...), or None."""
    return next(
        (layer for layer in _layers_in_order(model)
         if getattr(layer, "data_format", None) in _DATA_FORMATS),
        None,
    )


def _declared_input(model: Any) -> tuple | None:
    inputs = getattr(model, "inputs", None)
    return tuple(inputs[0].shape) if inputs and len(inputs) == 1 else None


def channels_first(model: Any) -> bool:
    """Whether `model` takes its images channels first, (B, ch, H, W).

    Read from the first of its layers that has a `data_format`: "channels_first", taking
    the model's input as it comes (no `Permute` before it). Such a model is explained on
    channels-last images (B, H, W, ch), transposed for it (`model_image_shape`,
    `gradients.logits_function`): the transpose moves every gradient exactly.

    Raises:
        ValueError: the layers are channels first but the model declares no input shape:
            the layout it is called with cannot be told.
    """
    first = _first_data_format_layer(model)
    if first is None or first.data_format != "channels_first":
        return False
    declared = _declared_input(model)
    if declared is None:
        raise ValueError(
            f"`model`'s layer {first.name} takes images channels first "
            "(data_format='channels_first'), but the model declares no input shape, so "
            "the layout it is called with cannot be told: build it on a "
            "keras.Input((channels, height, width)) (it is then explained on channels-last "
            "images, transposed for it), or wrap it: "
            + _wrap_advice((None, None, None))
        )
    try:
        seen = tuple(first.input.shape)
    except (AttributeError, ValueError):  # a layer called more than once has no one input
        seen = declared
    return seen[1:] == declared[1:]


def check_layout(model: Any) -> None:
    """Refuse a model whose layers do not say its layout (no `data_format` to read, e.g. a
    SavedModel's) and whose declared input (batch, C, H, W) looks channels first: C of 1, 3
    or 4 before a larger height and width. Raises what `channels_first` raises."""
    declared = _declared_input(model)
    if _first_data_format_layer(model) is None and declared is not None and len(
        declared
    ) == 4 and _looks_channels_first(declared[1:]):
        raise ValueError(
            f"`model` takes input of shape {declared}, which looks channels first (channels "
            "before height and width), and none of its layers says (no data_format to read, "
            "e.g. a SavedModel): tf_signsal explains images (batch, height, width, "
            f"channels). If it is channels first, wrap it: {_wrap_advice(declared[1:])}"
        )
    channels_first(model)


def _looks_channels_first(shape: tuple) -> bool:
    channels, height, width = shape
    return (
        channels in (1, 3, 4) and width not in (1, 3, 4)
        and all(d is None or d > 4 for d in (height, width))
    )


def model_image_shape(model: Any) -> tuple[int | None, ...] | None:
    """The (H, W, channels) of the images a model with one image input is explained on,
    or None when it declares no input.

    A channels-first model, input (batch, ch, H, W) (see `channels_first`), is explained
    on channels-last images (H, W, ch), transposed for it. A subclassed model that has
    not been built declares no input; it is checked when called. A model with several
    inputs, or an input that is not (batch, H, W, ch), is an error.
    """
    inputs = getattr(model, "inputs", None)
    if not inputs:
        return None
    if len(inputs) != 1:
        raise ValueError(f"`model` must take a single image input, it takes {len(inputs)} inputs")
    shape = tuple(inputs[0].shape)[1:]
    if len(shape) != 3:
        raise ValueError(
            "`model` must take images of shape (batch, height, width, channels), its input "
            f"has shape {tuple(inputs[0].shape)}"
        )
    if channels_first(model):
        return (shape[1], shape[2], shape[0])
    return shape


def check_model_input(model: Any, images: tf.Tensor, name: str = "images") -> None:
    """Raise if the model declares an input shape that `images` does not match, or an
    input dtype that has no gradient."""
    import tensorflow as tf

    expected = model_image_shape(model)
    if expected is None:
        return
    dtype = tf.as_dtype(getattr(model.inputs[0], "dtype", "float32") or "float32")
    if not dtype.is_floating:
        raise ValueError(
            f"`model` takes {dtype.name} input: saliency maps need the gradient with respect "
            "to a float input; build the model with a float32 keras.Input"
        )
    received = tuple(images.shape)[1:]
    if len(expected) != len(received) or any(
        e is not None and e != r for e, r in zip(expected, received)
    ):
        layout = ""
        if channels_first(model):
            layout = (
                f" (it is channels first, {tuple(model.inputs[0].shape)}: tf_signsal explains "
                "it on channels-last images (batch, height, width, channels), transposed for "
                "it; give e.g. np.transpose(images, (0, 2, 3, 1)))"
            )
        raise ValueError(
            f"`{name}` has per-image shape {received}, but the model takes {expected}{layout}"
        )


# ----------------------------------------------------------------------------- classes


def class_indices(
    name: str, values: Any, size: int, num_classes: int | None = None, one_hot: bool = False
) -> np.ndarray:
    """Return one class index per image as an int32 vector of length `size`.

    Accepts integer indices of shape (size,) or (size, 1) (as `keras.datasets` gives
    labels). With `one_hot`, rows (size, C), C > 1, of numbers are one-hot (or
    probability) rows and give their argmax. Indices must lie in [0, num_classes) when
    `num_classes` is given, and be non-negative otherwise. Floats are refused (1.7 is
    no class): cast whole-number labels with `.astype(int)`.
    """
    array = np.asarray(values)
    if array.ndim == 0:
        array = array.reshape(1)
    if array.size == 0 and array.dtype.kind == "f":
        array = array.astype(np.int64)  # an empty list has no dtype of its own
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if one_hot and array.ndim == 2 and array.dtype.kind in "iuf" and array.shape[0] == size:
        if num_classes is not None and array.shape[1] != num_classes:
            raise ValueError(
                f"`{name}` holds one-hot rows of {array.shape[1]} classes, but the model has "
                f"{num_classes} classes"
            )
        array = array.argmax(axis=1)
    if array.dtype.kind not in "iu":
        raise TypeError(
            f"`{name}` must hold integer class indices, received dtype {array.dtype}"
            + (" (cast whole-number labels with .astype(int))" if array.dtype.kind == "f" else "")
        )
    if array.shape != (size,):
        expected = f"({size},)" + (f" or one-hot rows ({size}, classes)" if one_hot else "")
        raise ValueError(
            f"`{name}` must hold one class index per image, shape {expected}, "
            f"received shape {array.shape}"
        )
    if array.size and (array.min() < 0 or (num_classes is not None and array.max() >= num_classes)):
        bound = f"[0, {num_classes})" if num_classes is not None else "non-negative"
        raise ValueError(
            f"`{name}` must be class indices in {bound}, received values from "
            f"{array.min()} to {array.max()}"
        )
    return array.astype(np.int32)
