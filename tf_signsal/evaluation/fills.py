"""Fills: what a deleted pixel becomes.

A fill is a `Fill` object; its name ("black", "white", "blur", "mean", "road") or a
number / one number per channel works wherever a fill is asked for (`as_fill`), and
the command line's texts ("blur:2.0", "road:0.02", "0.5", "0.1,0.2,0.3") are read by
`parse_fill`. A fill defines one of two methods, and the evaluator groups pairs by
which:

    values(images)          a full image of fill values per image, independent of the
                            mask: the occluded image is where(mask, values, image),
                            gathered from one per-batch table (constants, blur, mean);
    occlude(images, masks)  the occluded images themselves, for fills that depend on
                            the mask (ROAD's imputation, `road.py`).

    Constant   "black"/"white" (the ends of the evaluator's value_range), a number, or
               one number per channel: one table row, not a full image
    Blur       a Gaussian-blurred copy of each image (`blur_images`)
    Mean       each image's per-channel mean (`mean_images`)
    Road       ROAD's noisy linear imputation (`road.road_impute`)

Settings of the evaluator that a fill needs (the value range of "black"/"white", the
seed of ROAD's noise) reach it through `Fill.bind`. This module imports TensorFlow only
when a fill is computed, so the command line parses fills without it.
"""

from __future__ import annotations

import copy
import functools
import math
import re
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from tf_signsal import _checks
from tf_signsal.evaluation.pairs import fill_key_name
from tf_signsal.vocabulary import FILLS

MAX_BLUR_SIGMA = 10_000.0
"""The largest blur sigma in pixels (a kernel of 60,001 taps); a larger one would only
exhaust memory: from 3 times an image's side on, its blur is its mean to float precision."""
MAX_NOISE_STD = float(np.finfo(np.float32).max) / 8
"""The largest noise standard deviation: |noise| <= 5.3 noise_std stays a float32."""


def check_blur_sigma(name: str, value: Any) -> float:
    """`value` as a blur sigma: a number in (0, `MAX_BLUR_SIGMA`]."""
    return _checks.real(name, value, 0.0, strict=True, maximum=MAX_BLUR_SIGMA)


def check_noise_std(name: str, value: Any) -> float:
    """`value` as ROAD's noise standard deviation: a number in [0, `MAX_NOISE_STD`]."""
    return _checks.real(name, value, 0.0, maximum=MAX_NOISE_STD)


# ----------------------------------------------------------------------------- Fill


class Fill:
    """What a deleted pixel becomes: subclass it and define `values` or `occlude`.

    `values(images)` returns a full image of fill values per image, whatever the mask
    (the evaluator calls it once per batch, eagerly, and gathers the occluded images from
    it); `occlude(images, masks)` returns the occluded images and may depend on the mask
    (the evaluator traces it into its compiled forward pass: write it with TensorFlow
    ops). Define exactly one.

    Attributes:
        name: the fill's name in result keys and JSON ("positive/<name>"): starts with a
            letter, holds no "/", and is not a built-in fill's name unless it is that
            fill. A fill with parameters should name them, as `Blur(2.0)` is
            "blur(2.0)", so that two configurations never share a key.
        memory_scale: how many float32 copies of each occluded image `occlude` holds at
            once; the evaluator divides its chunk of occluded images by it (10 for ROAD's
            solver).

    Example:
        >>> class Noise(Fill):                     # mask-independent: uniform noise
        ...     name = "noise"
        ...     def values(self, images):
        ...         return tf.random.stateless_uniform(tf.shape(images), (1, 2))
        >>> AllegianceEvaluator(model, pairs=[("positive", Noise())])
    """

    name: str = ""
    memory_scale: int = 1

    def values(self, images: Any) -> Any:
        """Fill values (B, H, W, ch) for float32 images (B, H, W, ch), mask-independent."""
        raise NotImplementedError(f"{type(self).__name__} defines `occlude`, not `values`")

    def occlude(self, images: Any, masks: Any) -> Any:
        """Occluded images (S, H, W, ch) for float32 images (S, H, W, ch) and bool masks
        (S, H, W), True where a pixel is deleted (all its channels)."""
        raise NotImplementedError(f"{type(self).__name__} defines `values`, not `occlude`")

    @property
    def mask_dependent(self) -> bool:
        """Whether the fill defines `occlude` (True) or `values` (False)."""
        return type(self).occlude is not Fill.occlude

    def bind(self, value_range: tuple[float, float], seed: int) -> Fill:
        """The fill as an evaluator with this value range and seed uses it; by default the
        fill itself. "black"/"white" take the ends of `value_range`, ROAD's noise `seed`."""
        del value_range, seed  # this fill needs neither
        return self

    def get_config(self) -> dict[str, Any]:
        """The fill's parameters, JSON-ready: part of the protocol's fingerprint."""
        return {}

    @property
    def key(self) -> Any:
        """The fill in result keys: its name (constants: as files before fill objects)."""
        return self.name

    def check(self) -> Fill:
        """The fill, if it is one the evaluator can use; otherwise a TypeError or
        ValueError naming what is wrong."""
        defined = (type(self).values is not Fill.values, self.mask_dependent)
        if defined.count(True) != 1:
            raise TypeError(
                f"the fill {type(self).__name__} must define exactly one of `values(images)` "
                f"(mask-independent) and `occlude(images, masks)`, it defines "
                f"{['none', 'values', 'occlude', 'both'][defined[0] + 2 * defined[1]]}"
            )
        name = self.name
        if not isinstance(name, str) or not name[:1].isalpha() or "/" in name:
            raise ValueError(
                f"the fill {type(self).__name__} must have a `name` that starts with a letter "
                f"and holds no \"/\" (it names the pair \"method/name\"), received {name!r}"
            )
        if name in FILLS and self != as_fill(name):
            raise ValueError(
                f"the fill {self!r} is named {name!r}, the name of the built-in fill "
                f"{as_fill(name)!r}: give it a name of its own"
            )
        _checks.positive_int(f"{type(self).__name__}.memory_scale", self.memory_scale)
        return self

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.name == self.name

    def __hash__(self) -> int:
        return hash((type(self), self.name))

    def __repr__(self) -> str:
        arguments = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({arguments})"


def _named(kind: str, value: float, default: float) -> str:
    """"kind" with the default parameter, "kind(value)" with another."""
    return kind if value == default else f"{kind}({value!r})"


# ----------------------------------------------------------------------------- built-ins


class Constant(Fill):
    """One value for every deleted pixel: "black" or "white" (the low and high ends of the
    evaluator's `value_range`), a number, or one number per channel.

    Its name is the value's: "black", "0.5", "0.2,0.4,0.6" (one channel: "0.5,"); in
    result keys it is the value itself, as before fill objects: ("positive", 0.5).
    A constant is one row of the evaluator's gather table, not a full image per batch.

    Args:
        value: "black", "white", a finite number, or a sequence of finite numbers.
    """

    def __init__(self, value: str | float | Sequence[float]):
        valid = "\"black\", \"white\", a number, or one number per channel"
        if isinstance(value, str):
            if value not in ("black", "white"):
                raise ValueError(f"a Constant fill's `value` must be {valid}, received {value!r}")
            self.value: str | float | tuple[float, ...] = value
        elif _checks.is_real(value) or isinstance(value, np.floating):
            self.value = _checks.real("value", value)
        elif isinstance(value, (tuple, list, np.ndarray)) and len(value) > 0:
            numbers = np.asarray(value).tolist()
            if not all(_checks.is_real(v) for v in numbers):
                raise TypeError(f"a Constant fill's `value` must be {valid}, received {value!r}")
            self.value = tuple(_checks.real("value", v) for v in numbers)
        else:
            raise TypeError(f"a Constant fill's `value` must be {valid}, received {value!r}")
        self._value_range: tuple[float, float] | None = None

    @property
    def name(self) -> str:  # type: ignore[override]
        return fill_key_name(self.value)

    @property
    def key(self) -> Any:
        return self.value

    def check(self) -> Constant:
        return self  # checked when made; its name is its value's

    def bind(self, value_range: tuple[float, float], seed: int) -> Constant:
        bound = copy.copy(self)
        bound._value_range = _checks.value_range(value_range)
        return bound

    def resolved(self, value_range: tuple[float, float]) -> tuple[float, ...]:
        """The value(s) with `value_range`: "black" is (low,), "white" (high,)."""
        if isinstance(self.value, str):
            return (value_range[0] if self.value == "black" else value_range[1],)
        return self.value if isinstance(self.value, tuple) else (self.value,)

    def color(self, channels: int) -> tuple[float, ...]:
        """One value per channel of a bound constant."""
        if self._value_range is None:
            if isinstance(self.value, str):
                raise ValueError(
                    f"the {self.value!r} fill is an end of a value range: bind it first, "
                    "fill.bind(value_range, seed)"
                )
            values = self.resolved((0.0, 1.0))
        else:
            values = self.resolved(self._value_range)
        if len(values) == 1:
            return values * channels
        if len(values) != channels:
            raise ValueError(
                f"fill {self.value} has {len(values)} values, but the images have "
                f"{channels} channels: give one value per channel"
            )
        return values

    def values(self, images: Any) -> Any:
        import tensorflow as tf

        images = tf.convert_to_tensor(images, tf.float32)
        row = tf.constant(self.color(images.shape[-1]), tf.float32)
        return tf.broadcast_to(row, tf.shape(images))

    def get_config(self) -> dict[str, Any]:
        return {"value": list(self.value) if isinstance(self.value, tuple) else self.value}


class Blur(Fill):
    """A Gaussian-blurred copy of each image (`blur_images`).

    Args:
        sigma: the standard deviation of the kernel in pixels, in (0, `MAX_BLUR_SIGMA`].
            Named "blur" with the default 5.0, "blur(2.0)" with another.
    """

    def __init__(self, sigma: float = 5.0):
        self.sigma = check_blur_sigma("sigma", sigma)

    @property
    def name(self) -> str:  # type: ignore[override]
        return _named("blur", self.sigma, 5.0)

    def values(self, images: Any) -> Any:
        return blur_images(images, self.sigma)

    def get_config(self) -> dict[str, Any]:
        return {"sigma": self.sigma}


class Mean(Fill):
    """Each image's per-channel mean (`mean_images`), named "mean"."""

    name = "mean"

    def values(self, images: Any) -> Any:
        return mean_images(images)


class Road(Fill):
    """ROAD's noisy linear imputation (Rong et al. 2022): each deleted pixel from its
    neighbours, plus noise (`road.road_impute`, with its default tolerance and cap).

    The noise's seed is the evaluator's `seed` (see `bind`).

    Args:
        noise_std: the standard deviation of the noise, in [0, `MAX_NOISE_STD`]
            (ROAD's 0.01 for [0, 1] images). Named "road" with the default 0.01,
            "road(0.02)" with another.
    """

    memory_scale = 10  # the solver holds about ten float64 copies of each occluded image

    def __init__(self, noise_std: float = 0.01):
        self.noise_std = check_noise_std("noise_std", noise_std)
        self._seed = 0

    @property
    def name(self) -> str:  # type: ignore[override]
        return _named("road", self.noise_std, 0.01)

    def bind(self, value_range: tuple[float, float], seed: int) -> Road:
        bound = copy.copy(self)
        bound._seed = _checks.seed("seed", seed)
        return bound

    def occlude(self, images: Any, masks: Any) -> Any:
        from tf_signsal.evaluation.road import road_occlude

        return road_occlude(images, masks, self.noise_std, self._seed)

    def get_config(self) -> dict[str, Any]:
        return {"noise_std": self.noise_std}


# The fills a name reaches, each with at most one number parameter ("blur:2.0").
_NAMED: dict[str, Any] = {
    "black": lambda: Constant("black"),
    "white": lambda: Constant("white"),
    "blur": Blur,
    "mean": Mean,
    "road": Road,
}
assert tuple(_NAMED) == FILLS  # the command line's choices, without this import
_CALL = re.compile(r"^([a-z]+)(?::(.*)|\((.*)\))$")


def parse_fill(text: str) -> Fill:
    """A fill from text, as the command line gives it.

    "black", "white", "blur", "mean", "road" (the defaults); "blur:2.0" or "blur(2.0)"
    (a sigma), "road:0.02" or "road(0.02)" (a noise standard deviation); "0.5" (a
    constant); "0.1,0.2,0.3" (one constant per channel; "0.5," is a one-channel tuple).
    A fill's name reads back as the fill: `parse_fill(fill.name) == fill`.
    """
    if not isinstance(text, str):
        raise TypeError(f"a fill's text must be a string, received {text!r}")
    text = text.strip()
    forms = (
        f"one of {', '.join(FILLS)}, blur:SIGMA, road:NOISE_STD, a number, or one number "
        "per channel separated by commas (e.g. 0.1,0.2,0.3)"
    )
    if text in _NAMED:
        return _NAMED[text]()
    call = _CALL.match(text)
    if call:
        kind = call.group(1)
        argument = call.group(2) if call.group(2) is not None else call.group(3)
        if kind not in ("blur", "road"):
            raise ValueError(f"the fill {kind!r} takes no parameter, received {text!r}: {forms}")
        try:
            number = float(argument)
        except ValueError:
            raise ValueError(
                f"the parameter of fill {kind!r} must be a number, received {text!r}"
            ) from None
        return _NAMED[kind](number)
    try:
        numbers = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"unknown fill {text!r}: a fill must be {forms}") from None
    if not numbers:
        raise ValueError(f"unknown fill {text!r}: a fill must be {forms}")
    if not all(math.isfinite(v) for v in numbers):
        raise ValueError(f"invalid fill {text!r}: every value of a fill must be finite")
    return Constant(numbers if "," in text else numbers[0])


def as_fill(value: Any) -> Fill:
    """A `Fill` from a fill, a fill's text (see `parse_fill`), a number, or one number
    per channel; checked (`Fill.check`)."""
    if isinstance(value, Fill):
        return value.check()
    if isinstance(value, type) and issubclass(value, Fill):
        raise TypeError(f"pairs take Fill objects: write {value.__name__}(), not the class")
    if isinstance(value, str):
        return parse_fill(value)
    if _checks.is_real(value) or isinstance(value, (tuple, list, np.ndarray, np.floating)):
        if isinstance(value, (tuple, list, np.ndarray)) and len(value) == 0:
            raise TypeError(f"invalid fill {value!r}: one number per channel, received none")
        return Constant(value)
    raise TypeError(
        f"invalid fill {value!r}: a fill must be a Fill, one of {list(FILLS)}, a number, or "
        "one number per channel"
    )


def fill_values(
    fills: Sequence[Any], value_range: tuple[float, float], channels: int
) -> np.ndarray:
    """The pixel value of each constant fill, (len(fills), channels) float32: black is
    value_range[0], white value_range[1]; a row of zeros for fills computed from the image."""
    rows = []
    for fill in map(as_fill, fills):
        if isinstance(fill, Constant):
            rows.append(fill.bind(value_range, 0).color(channels))
        else:
            rows.append((0.0,) * channels)
    return np.array(rows, np.float32)


def deprecated_fill_options(pairs: Any, blur_sigma: Any, road_noise: Any) -> Any:
    """`pairs` with `AllegianceEvaluator`'s deprecated `blur_sigma`/`road_noise` applied
    to their "blur" and "road" fills (then named by their parameter, e.g. "blur(2.0)")."""
    replaced = {}
    if blur_sigma is not None:
        replaced["blur"] = Blur(check_blur_sigma("blur_sigma", blur_sigma))
    if road_noise is not None:
        replaced["road"] = Road(check_noise_std("road_noise", road_noise))
    if not replaced:
        return pairs
    names = " and ".join(f"`{n}`" for n, v in (("blur_sigma", blur_sigma),
                                                  ("road_noise", road_noise)) if v is not None)
    warnings.warn(
        f"{names} of AllegianceEvaluator are deprecated: give the fill itself, e.g. "
        "pairs=[(\"positive\", Blur(2.0)), (\"positive\", Road(0.02))] "
        "(tf_signsal.evaluation.Blur, Road)",
        DeprecationWarning,
        stacklevel=3,
    )
    if isinstance(pairs, str) or not isinstance(pairs, Sequence):
        return pairs  # the protocol names what is wrong
    return [
        (pair[0], replaced.get(_name_of(pair[1]), pair[1]))
        if isinstance(pair, Sequence) and len(pair) == 2 else pair
        for pair in pairs
    ]


def _name_of(fill: Any) -> str | None:
    try:
        return as_fill(fill).name
    except (TypeError, ValueError):
        return None  # the protocol names what is wrong


# ----------------------------------------------------------------------------- blur, mean


def gaussian_kernel(sigma: float) -> np.ndarray:
    """The 1-D kernel of `blur_images`: radius `ceil(3 * sigma)`, normalised weights.

    Args:
        sigma: the standard deviation in pixels, in (0, `MAX_BLUR_SIGMA`].

    Returns:
        float64 array of length `2 * r + 1`, `r = math.ceil(3 * sigma)`, with
        `w[k + r] = exp(-k**2 / (2 * sigma**2)) / sum_j exp(-j**2 / (2 * sigma**2))` for
        `k, j` in `-r..r`.
    """
    sigma = check_blur_sigma("sigma", sigma)
    radius = math.ceil(3 * sigma)
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-(offsets**2) / (2 * sigma**2))
    return weights / weights.sum()


@functools.cache
def _blur_function() -> Any:
    """The compiled separable blur, made on first use (TensorFlow only then)."""
    import tensorflow as tf

    def symmetric_indices(size: Any, radius: int) -> Any:
        """Indices of 0..size-1 padded by `radius` on each side, mirrored with the edge
        pixel repeated (`d c b a | a b c d | d c b a`), periodic with period 2 * size so
        that any radius works, even one larger than the image."""
        positions = tf.range(-radius, size + radius)
        folded = tf.math.floormod(positions, 2 * size)
        return tf.where(folded < size, folded, 2 * size - 1 - folded)

    @tf.function(reduce_retracing=True)
    def blur(images: Any, kernel: Any, radius: int) -> Any:
        channels = tf.shape(images)[3]
        shape = tf.shape(images)
        # Along the height, then along the width; each channel on its own (depthwise).
        padded = tf.gather(images, symmetric_indices(shape[1], radius), axis=1)
        column = tf.tile(tf.reshape(kernel, (-1, 1, 1, 1)), (1, 1, channels, 1))
        blurred = tf.nn.depthwise_conv2d(padded, column, (1, 1, 1, 1), "VALID")
        padded = tf.gather(blurred, symmetric_indices(shape[2], radius), axis=2)
        row = tf.tile(tf.reshape(kernel, (1, -1, 1, 1)), (1, 1, channels, 1))
        return tf.nn.depthwise_conv2d(padded, row, (1, 1, 1, 1), "VALID")

    return blur


def blur_images(images: Any, sigma: float = 5.0) -> Any:
    """A Gaussian-blurred copy of each image: the "blur" fill.

    Each channel is filtered on its own, separably (first along the height, then along
    the width), with the 1-D kernel of `gaussian_kernel(sigma)`: radius
    `r = ceil(3 * sigma)`, weights `exp(-k**2 / (2 sigma**2))` for `k = -r..r`, divided
    by their sum. At the border the image is extended symmetrically, the edge pixel
    repeated (`d c b a | a b c d`; scipy.ndimage's mode "reflect"), periodically when
    `r` exceeds the image, so the blur of a constant image is that constant. With
    `mode="reflect", radius=r`, `scipy.ndimage.gaussian_filter` computes the same.

    A deleted pixel of the "blur" fill takes the blurred image's value:
    `where(mask[..., None], blur_images(images), images)`.

    Args:
        images: float (B, H, W, ch) images.
        sigma: the standard deviation of the Gaussian in pixels, > 0.

    Returns:
        float32 tensor (B, H, W, ch).

    Example:

    >>> images = np.random.default_rng(0).random((2, 32, 32, 3), np.float32)
    >>> blurred = blur_images(images, sigma=2.0)
    >>> blurred.shape
    TensorShape([2, 32, 32, 3])
    """
    import tensorflow as tf

    images = _checks.as_image_batch(images)
    kernel = gaussian_kernel(sigma)
    radius = len(kernel) // 2
    return _blur_function()(images, tf.constant(kernel, tf.float32), radius)


def mean_images(images: Any) -> Any:
    """Each image's per-channel mean, broadcast to its shape: the "mean" fill.

    Args:
        images: float (B, H, W, ch) images.

    Returns:
        float32 tensor (B, H, W, ch): pixel (b, i, j, c) is the mean of channel c of
        image b over all its pixels.

    Example:

    >>> images = np.random.default_rng(0).random((2, 32, 32, 3), np.float32)
    >>> means = mean_images(images)
    >>> means.shape
    TensorShape([2, 32, 32, 3])
    """
    import tensorflow as tf

    images = _checks.as_image_batch(images)
    means = tf.reduce_mean(images, axis=(1, 2), keepdims=True)
    return tf.broadcast_to(means, tf.shape(images))
