"""What is differentiated: the attribution whose channel reductions make the five maps.

Each attribution gives, for an image x and a class c, a (H, W, ch) attribution a_c that is
a scale times the mean of the class's input gradient over a set of points:

  gradient              a = g(x)                                         (the paper)
  gradient_x_input      a = g(x) * x
  integrated_gradients  a = (x - x0) * mean_{k=1..steps} g(x0 + (k - 0.5) / steps * (x - x0))
                        (the midpoint rule on the straight path from the baseline x0)
  smoothgrad            a = mean_{s=1..samples} g(x + e_s),  e_s ~ N(0, (noise * (high - low))^2)
                        per element, seeded by the image's own pixels (any batching gives
                        the same noise)

The gradient engine computes a_c for the target class and every other class with the same
points, so the five maps and the active/inactive comparison work alike for each.

(low, high) is the model's input range. An attribution given no `value_range` takes the
one of the explainer it is given to (`SignedSaliency(value_range=...)`, the evaluator's,
the callbacks', `serving.export`'s): `IntegratedGradients(baseline="white")` is 255 for an
explainer of `value_range=(0, 255)`. Each point costs one forward and one backward pass per
image (and per class compared by the active/inactive maps), so `steps` and `samples` are
bounded by `MAX_POINTS`.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import tensorflow as tf

from tf_signsal import _checks
from tf_signsal._random import hashed_normal, image_hashes
from tf_signsal.vocabulary import ATTRIBUTIONS

MAX_POINTS = 1024
"""The most points (`IntegratedGradients.steps`, `SmoothGrad.samples`) per image: each is a
forward and a backward pass of the model per image and per class compared, and all the
points of a batch go through the model at once."""

MAX_NOISE = 1.0
"""The largest SmoothGrad `noise`: a standard deviation of the whole value range."""

# The defaults, named in the messages that refuse a costly number.
_DEFAULT_POINTS = {"steps": 32, "samples": 25}
_ONE = {"steps": "step", "samples": "sample"}
# Why more points stop paying, per parameter.
_ENOUGH = {
    "steps": "the midpoint rule's error shrinks as 1/steps**2 (32 to 256 steps are usual)",
    "samples": "the average's noise shrinks as 1/sqrt(samples) (25 to 100 are usual)",
}


def _points(name: str, value: Any) -> int:
    """`steps` or `samples`: a positive integer of at most `MAX_POINTS`, refused with what it
    would cost."""
    value = _checks.positive_int(name, value)
    if value > MAX_POINTS:
        default = _DEFAULT_POINTS[name]
        raise ValueError(
            f"`{name}` must be at most {MAX_POINTS}, received {value}: every {_ONE[name]} "
            "costs a forward and a backward pass of the model per image (and per class the "
            f"active/inactive maps compare), so {name}={value} would take {value} backward "
            f"passes per image and class, {value / default:.3g} times the default {default}, "
            f"with {value} copies of each image in memory at once; {_ENOUGH[name]}"
        )
    return value


class Attribution:
    """A gradient-based attribution: `num_points` points per image, and a scale.

    Subclasses define `points` (where gradients are taken) and `scale` (what the mean
    gradient is multiplied by). Both are traceable.
    """

    name = "gradient"
    num_points = 1

    def points(self, images: tf.Tensor) -> tf.Tensor:
        """The points (S * B, H, W, ch), sample-major: row s * B + b is image b's s-th."""
        return images

    def scale(self, images: tf.Tensor) -> tf.Tensor | None:
        """What the mean gradient is multiplied by, (B, H, W, ch); None for 1."""
        return None

    def check(self, images: tf.Tensor) -> None:
        """Raise if the attribution cannot be computed for this checked batch."""

    def config(self) -> dict[str, Any]:
        """The parameters, for records and JSON."""
        return {"attribution": self.name}

    def bind(self, value_range: tuple[float, float]) -> Attribution:
        """This attribution for an explainer of `value_range` (low, high): itself, for an
        attribution without a parameter in units of the input."""
        return self

    def __repr__(self) -> str:
        arguments = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "attribution")
        return f"{type(self).__name__}({arguments})"


class Gradient(Attribution):
    """The input gradient of the class's logit (the paper)."""


class GradientXInput(Attribution):
    """The gradient times the input, a = g * x."""

    name = "gradient_x_input"

    def scale(self, images: tf.Tensor) -> tf.Tensor:
        return images


class _InValueRange(Attribution):
    """An attribution with a parameter in units of the model's input range (IG's "black" and
    "white" baselines, SmoothGrad's noise): its own `value_range`, or its explainer's."""

    _given_range: tuple[float, float] | None = None

    def _set_range(self, value_range: tuple[float, float] | None) -> None:
        self._given_range = None if value_range is None else _checks.value_range(value_range)

    @property
    def value_range(self) -> tuple[float, float]:
        """(low, high) used: the one given, or bound by the explainer; (0, 1) until then."""
        return self._given_range or (0.0, 1.0)

    def bind(self, value_range: tuple[float, float]) -> Attribution:
        """A copy that takes the explainer's `value_range` when none was given; itself when
        one was. Two different ranges given both are refused, unless the explainer's is its
        default (0, 1)."""
        value_range = _checks.value_range(value_range)
        if self._given_range is None:
            bound = copy.copy(self)
            bound._given_range = value_range
            return bound
        if self._given_range != value_range and value_range != (0.0, 1.0):
            low, high = self._given_range
            raise ValueError(
                f"`attribution` {self!r} has value_range=({low:g}, {high:g}), but the "
                f"explainer's `value_range` is ({value_range[0]:g}, {value_range[1]:g}): give "
                "one (an attribution without value_range takes the explainer's)"
            )
        return self

    def config(self) -> dict[str, Any]:
        given = None if self._given_range is None else list(self._given_range)
        return {**self._parameters(), "value_range": given}

    def _parameters(self) -> dict[str, Any]:
        raise NotImplementedError


class IntegratedGradients(_InValueRange):
    """Integrated Gradients with the midpoint rule.

    a = (x - x0) * mean over k = 1..steps of g(x0 + (k - 0.5) / steps * (x - x0)).
    For a one-channel image, the sum over pixels of a approaches logit(x) - logit(x0)
    (completeness) as `steps` grows. Any `steps` >= 1 compares the classes as the gradient
    does (one step takes the gradient at the midpoint of the path).

    Args:
        steps: the number of path points, 1 to `MAX_POINTS` (1024): each is a forward and
            a backward pass per image and class, and a batch's points go through the model
            at once (`steps` x batch images).
        baseline: x0: a number, "black" (value_range[0]), "white" (value_range[1]), or an
            image (H, W, ch) (or one value per channel).
        value_range: (low, high) of the model's input, for "black" and "white"; None (the
            default) takes the explainer's (e.g. `SignedSaliency(value_range=(0, 255))`
            makes "white" 255), and (0, 1) where the attribution is used alone.
    """

    name = "integrated_gradients"

    def __init__(
        self,
        steps: int = 32,
        baseline: Any = 0.0,
        value_range: tuple[float, float] | None = None,
    ):
        self.num_points = self.steps = _points("steps", steps)
        self._set_range(value_range)
        if isinstance(baseline, str):
            baseline = _checks.one_of("baseline", baseline, ("black", "white"))
            self._baseline = None  # an end of value_range, read when used
        elif _checks.is_real(baseline):
            if not np.isfinite(baseline):
                raise ValueError(f"`baseline` must be finite, received {baseline!r}")
            self._baseline = np.float32(baseline)
        else:
            array = np.asarray(baseline)
            if array.dtype.kind not in "iuf" or array.ndim not in (1, 3):
                raise TypeError(
                    "`baseline` must be a number, \"black\", \"white\", one value per channel "
                    f"or an image (H, W, ch), received {type(baseline).__name__}"
                    + (f" of shape {array.shape}" if hasattr(baseline, "shape") else "")
                )
            if not np.all(np.isfinite(array)):
                raise ValueError("`baseline` must be finite, it holds NaN or Inf values")
            self._baseline = array.astype(np.float32)
        self.baseline = baseline

    def _baseline_values(self) -> np.ndarray:
        """x0 as float32: a number, one per channel, or an image."""
        if self._baseline is None:
            return np.float32(self.value_range[self.baseline == "white"])
        return self._baseline

    def check(self, images: tf.Tensor) -> None:
        shape, image = np.shape(self._baseline_values()), tuple(images.shape[1:])
        if len(shape) == 3 and any(b != i and i is not None for b, i in zip(shape, image)) or (
            len(shape) == 1 and shape[0] != image[-1]
        ):
            raise ValueError(
                f"`baseline` has shape {shape}, but the images are {image}: give an image of "
                "their shape, one value per channel, or a number"
            )

    def _x0(self, images: tf.Tensor) -> tf.Tensor:
        return tf.broadcast_to(tf.constant(self._baseline_values()), tf.shape(images))

    def points(self, images: tf.Tensor) -> tf.Tensor:
        x0 = self._x0(images)
        alphas = (np.arange(self.steps, dtype=np.float32) + 0.5) / self.steps
        path = x0[None] + alphas[:, None, None, None, None] * (images - x0)[None]
        return tf.reshape(path, tf.concat([[-1], tf.shape(images)[1:]], axis=0))

    def scale(self, images: tf.Tensor) -> tf.Tensor:
        return images - self._x0(images)

    def _parameters(self) -> dict[str, Any]:
        baseline = self.baseline
        if not isinstance(baseline, (str, int, float)):
            baseline = np.asarray(baseline).tolist()
        return {"attribution": self.name, "steps": self.steps, "baseline": baseline}


class SmoothGrad(_InValueRange):
    """SmoothGrad: the mean gradient over noisy copies of the image.

    a = mean over s = 1..samples of g(x + e_s), e_s ~ N(0, (noise * (high - low))^2) per
    element. The noise is a hash of the image's own pixels and `seed`: the same image gets
    the same noise in any batch.

    Args:
        samples: the number of noisy copies, 1 to `MAX_POINTS` (1024): each is a forward and
            a backward pass per image and class, and a batch's copies go through the model
            at once (`samples` x batch images).
        noise: the noise's standard deviation as a fraction of the value range, in
            [0, `MAX_NOISE`] (beyond the whole range the copies are mostly noise).
        seed: an integer in [0, 2**32).
        value_range: (low, high) of the model's input, the noise's scale; None (the
            default) takes the explainer's, and (0, 1) where the attribution is used alone.
    """

    name = "smoothgrad"

    def __init__(
        self,
        samples: int = 25,
        noise: float = 0.15,
        seed: int = 0,
        value_range: tuple[float, float] | None = None,
    ):
        self.num_points = self.samples = _points("samples", samples)
        if not _checks.is_real(noise):
            raise TypeError(f"`noise` must be a number, received {noise!r}")
        if not (np.isfinite(noise) and noise >= 0):
            raise ValueError(f"`noise` must be a finite number >= 0, received {noise!r}")
        if noise > MAX_NOISE:
            raise ValueError(
                f"`noise` must be at most {MAX_NOISE:g} (a standard deviation of the whole "
                f"value range), received {noise!r}: the noisy copies would be mostly noise, "
                "and their mean gradient not the image's (0.1 to 0.2 are usual)"
            )
        self.noise = float(noise)
        self.seed = _checks.seed("seed", seed)
        self._set_range(value_range)

    def points(self, images: tf.Tensor) -> tf.Tensor:
        shape = tf.shape(images)
        per_image = tf.reduce_prod(shape[1:])
        sigma = self.noise * (self.value_range[1] - self.value_range[0])
        normal = hashed_normal(
            image_hashes(images), tf.constant(self.seed, tf.int64), self.samples * per_image
        )  # (B, S * H * W * ch)
        noise = tf.reshape(normal, tf.concat([shape[:1], [self.samples], shape[1:]], axis=0))
        noisy = images[:, None] + sigma * noise  # (B, S, H, W, ch)
        noisy = tf.transpose(noisy, tf.concat([[1, 0], tf.range(2, 5)], axis=0))
        return tf.reshape(noisy, tf.concat([[-1], shape[1:]], axis=0))

    def _parameters(self) -> dict[str, Any]:
        return {
            "attribution": self.name, "samples": self.samples, "noise": self.noise,
            "seed": self.seed,
        }


def as_attribution(
    attribution: str | Attribution, value_range: tuple[float, float] = (0.0, 1.0)
) -> Attribution:
    """An `Attribution` for an explainer of `value_range`: from a name of `ATTRIBUTIONS`
    (default parameters), or an `Attribution` object bound to `value_range` (a copy that
    takes it when the object was given none, see `IntegratedGradients`)."""
    if isinstance(attribution, Attribution):
        return attribution.bind(value_range)
    if not isinstance(attribution, str):
        raise TypeError(
            f"`attribution` must be one of {list(ATTRIBUTIONS)} or an Attribution object "
            f"(e.g. IntegratedGradients(steps=64)), received {type(attribution).__name__}"
        )
    name = _checks.one_of("attribution", attribution, ATTRIBUTIONS)
    if name == "integrated_gradients":
        return IntegratedGradients(value_range=value_range)
    if name == "smoothgrad":
        return SmoothGrad(value_range=value_range)
    return GradientXInput() if name == "gradient_x_input" else Gradient()
