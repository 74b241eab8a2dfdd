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
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from tf_signsal import _checks
from tf_signsal._random import hashed_normal, image_hashes
from tf_signsal.vocabulary import ATTRIBUTIONS


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


class IntegratedGradients(Attribution):
    """Integrated Gradients with the midpoint rule.

    a = (x - x0) * mean over k = 1..steps of g(x0 + (k - 0.5) / steps * (x - x0)).
    For a one-channel image, the sum over pixels of a approaches logit(x) - logit(x0)
    (completeness) as `steps` grows.

    Args:
        steps: the number of path points.
        baseline: x0: a number, "black" (value_range[0]), "white" (value_range[1]), or an
            image (H, W, ch) (or one value per channel).
        value_range: (low, high) of the model's input, for "black" and "white".
    """

    name = "integrated_gradients"

    def __init__(
        self,
        steps: int = 32,
        baseline: Any = 0.0,
        value_range: tuple[float, float] = (0.0, 1.0),
    ):
        self.num_points = self.steps = _checks.positive_int("steps", steps)
        self.value_range = _checks.value_range(value_range)
        if isinstance(baseline, str):
            baseline = _checks.one_of("baseline", baseline, ("black", "white"))
            self._baseline = np.float32(self.value_range[baseline == "white"])
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

    def check(self, images: tf.Tensor) -> None:
        shape, image = np.shape(self._baseline), tuple(images.shape[1:])
        if len(shape) == 3 and any(b != i and i is not None for b, i in zip(shape, image)) or (
            len(shape) == 1 and shape[0] != image[-1]
        ):
            raise ValueError(
                f"`baseline` has shape {shape}, but the images are {image}: give an image of "
                "their shape, one value per channel, or a number"
            )

    def _x0(self, images: tf.Tensor) -> tf.Tensor:
        return tf.broadcast_to(tf.constant(self._baseline), tf.shape(images))

    def points(self, images: tf.Tensor) -> tf.Tensor:
        x0 = self._x0(images)
        alphas = (np.arange(self.steps, dtype=np.float32) + 0.5) / self.steps
        path = x0[None] + alphas[:, None, None, None, None] * (images - x0)[None]
        return tf.reshape(path, tf.concat([[-1], tf.shape(images)[1:]], axis=0))

    def scale(self, images: tf.Tensor) -> tf.Tensor:
        return images - self._x0(images)

    def config(self) -> dict[str, Any]:
        baseline = self.baseline
        if not isinstance(baseline, (str, int, float)):
            baseline = np.asarray(baseline).tolist()
        return {"attribution": self.name, "steps": self.steps, "baseline": baseline}


class SmoothGrad(Attribution):
    """SmoothGrad: the mean gradient over noisy copies of the image.

    a = mean over s = 1..samples of g(x + e_s), e_s ~ N(0, (noise * (high - low))^2) per
    element. The noise is a hash of the image's own pixels and `seed`: the same image gets
    the same noise in any batch.

    Args:
        samples: the number of noisy copies.
        noise: the noise's standard deviation as a fraction of the value range.
        seed: an integer in [0, 2**32).
        value_range: (low, high) of the model's input.
    """

    name = "smoothgrad"

    def __init__(
        self,
        samples: int = 25,
        noise: float = 0.15,
        seed: int = 0,
        value_range: tuple[float, float] = (0.0, 1.0),
    ):
        self.num_points = self.samples = _checks.positive_int("samples", samples)
        if not _checks.is_real(noise):
            raise TypeError(f"`noise` must be a number, received {noise!r}")
        if not (np.isfinite(noise) and noise >= 0):
            raise ValueError(f"`noise` must be a finite number >= 0, received {noise!r}")
        self.noise = float(noise)
        self.seed = _checks.seed("seed", seed)
        self.value_range = _checks.value_range(value_range)

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

    def config(self) -> dict[str, Any]:
        return {
            "attribution": self.name, "samples": self.samples, "noise": self.noise,
            "seed": self.seed,
        }


def as_attribution(
    attribution: str | Attribution, value_range: tuple[float, float] = (0.0, 1.0)
) -> Attribution:
    """An `Attribution` from a name of `ATTRIBUTIONS` (default parameters, `value_range`)
    or an `Attribution` object, returned as it is."""
    if isinstance(attribution, Attribution):
        return attribution
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
