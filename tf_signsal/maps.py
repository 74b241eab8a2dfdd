"""The five sign-aware saliency maps of the paper (section 1 of the spec).

standard  max_k |g|            positive  max_k relu(g)      negative  max_k relu(-g)
active    max_k |g * [g > every other class's gradient]|
inactive  max_k |g * [g < every other class's gradient]|

where g is the input gradient of the explained class's logit and k runs over
channels. Each map is then min-max normalised per image over H x W.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import tensorflow as tf

from tf_signsal import _checks
from tf_signsal.attributions import Attribution, as_attribution
from tf_signsal.gradients import GradientEngine, GradientStats
from tf_signsal.vocabulary import METHODS

_NEEDS_RIVALS = frozenset({"active", "inactive"})


def reduce_to_maps(stats: GradientStats, methods: Sequence[str]) -> dict[str, tf.Tensor]:
    """Channel reductions of the gradient statistics: raw (B, H, W) maps."""
    g = stats.target_gradient
    zero = tf.zeros_like(g)
    elementwise = {
        "standard": lambda: tf.abs(g),
        "positive": lambda: tf.nn.relu(g),
        "negative": lambda: tf.nn.relu(-g),
        # Strict inequalities: a tie with any other class keeps nothing.
        "active": lambda: tf.abs(tf.where(g > stats.rival_max, g, zero)),
        "inactive": lambda: tf.abs(tf.where(g < stats.rival_min, g, zero)),
    }
    return {method: tf.reduce_max(elementwise[method](), axis=-1) for method in methods}


def normalize_maps(maps: tf.Tensor) -> tf.Tensor:
    """Per-image min-max over H x W to [0, 1]; a constant map becomes all zeros."""
    low = tf.reduce_min(maps, axis=(1, 2), keepdims=True)
    span = tf.reduce_max(maps, axis=(1, 2), keepdims=True) - low
    safe_span = tf.where(span > 0, span, tf.ones_like(span))
    return tf.where(span > 0, (maps - low) / safe_span, tf.zeros_like(maps))


class Explanation(NamedTuple):
    """The maps of a batch with what was explained.

    Attributes:
        maps: method -> float32 (B, H, W).
        logits: float32 (B, C), the logits of the intact images.
        targets: int32 (B,), the explained class of each image.
    """

    maps: dict[str, tf.Tensor]
    logits: tf.Tensor
    targets: tf.Tensor


class SignedSaliency:
    """Sign-aware saliency maps of a Keras classifier: the one way into its gradients.

    All requested maps come from one gradient computation per batch: the
    target class's gradient and, when active/inactive maps are asked for, the
    running max/min of every other class's gradient.

    The model is always called with `training=False` and explained on its
    logits: a Sequential/Functional model whose last layer applies a softmax
    has it stripped (with a warning). For a model that ends in another
    activation, pass the model of the scores before it, e.g.
    `keras.Model(model.inputs, model.layers[-2].output)`.

    A `SignedSaliency` is an explainer: calling it on an image batch returns
    its five normalised maps of the predicted classes, which is what
    `AllegianceEvaluator(explainer=...)` takes.

    Args:
        model: a Keras classifier taking float images (B, H, W, ch) and
            returning logits (B, C): Sequential, Functional or subclassed.
        classes_per_chunk: how many classes' gradients are computed per
            forward pass (peak memory does not grow with the number of classes).
        jacobian: "auto", "batch_jacobian" or "loop" (see `GradientEngine`).
        rivals: None (the paper): active/inactive compare the target with
            every other class. An integer k compares it with each image's k
            highest-scoring other classes only: k + 1 backward passes instead
            of C for models with very many classes. Exact when k >= C - 1;
            otherwise the active/inactive maps may keep more pixels
            (benchmarks/README.md measures the agreement).
        attribution: what the five channel reductions are taken of: "gradient"
            (the paper), "gradient_x_input", "integrated_gradients" (32 midpoint
            steps from a 0 baseline) or "smoothgrad" (25 samples, noise 0.15 of
            the value range, seed 0), or a configured object from
            `tf_signsal.attributions` (e.g. `IntegratedGradients(steps=64,
            baseline="white")`). The explained class's attribution is compared
            with every other class's, computed with the same points.
        value_range: (low, high) of the model's input: the scale of SmoothGrad's
            noise and the "black"/"white" baselines of a named attribution.

    Example:
        >>> saliency = tf_signsal.SignedSaliency(model)
        >>> maps = saliency.explain(images)              # predicted classes
        >>> maps["positive"].shape                       # (B, H, W), in [0, 1]
        >>> maps = saliency.explain(images, targets=labels, methods=["active"])
        >>> maps = saliency(images)                      # the five maps, as an explainer
        >>> ig = tf_signsal.SignedSaliency(model, attribution="integrated_gradients")
    """

    def __init__(
        self,
        model: Any,
        classes_per_chunk: int = 16,
        jacobian: str = "auto",
        rivals: int | None = None,
        attribution: str | Attribution = "gradient",
        value_range: tuple[float, float] = (0.0, 1.0),
    ):
        self.model = model
        self.value_range = _checks.value_range(value_range)
        self.attribution = as_attribution(attribution, self.value_range)
        self._engine = GradientEngine(
            model, classes_per_chunk=classes_per_chunk, jacobian=jacobian, rivals=rivals,
            attribution=self.attribution,
        )

    def __call__(self, images: Any) -> dict[str, tf.Tensor]:
        """The five normalised maps of the predicted classes: `explain(images)`."""
        return self.explain(images)

    # -- traceable building blocks (a checked float32 batch, no Python-side checks) --

    def logits(self, images: tf.Tensor) -> tf.Tensor:
        """The logits (B, C) of a float32 batch, in inference mode, softmax stripped.

        Traceable: usable inside a `tf.function` (the evaluator and the SavedModel
        export call it there).
        """
        return self._engine.logits(images)

    def num_classes(self, images: Any) -> int:
        """The number of classes of the model for images like `images` (B, H, W, ch).

        Checks once per image shape that the model is a (batch, classes)
        classifier whose output depends on its input.
        """
        return self._engine.num_classes(images)

    def explain_batch(
        self,
        images: tf.Tensor,
        targets: tf.Tensor | None = None,
        methods: Sequence[str] = METHODS,
        normalize: bool = True,
    ) -> Explanation:
        """The maps of an already checked float32 batch (B, H, W, ch), B >= 1.

        Traceable, and does no input checking: `explain` is the checked entry
        point. `targets` is None (the predicted classes) or an int32 (B,) tensor
        of class indices; `methods` must be among `METHODS`.
        """
        stats = self._engine(
            images, targets, with_rivals=bool(_NEEDS_RIVALS.intersection(methods))
        )
        maps = reduce_to_maps(stats, methods)
        if normalize:
            maps = {method: normalize_maps(m) for method, m in maps.items()}
        return Explanation(maps, stats.logits, stats.targets)

    def class_gradients(self, images: Any, classes: Sequence[int] | None = None) -> tf.Tensor:
        """Input gradients of the logits of every class (or of `classes`), as
        `tf_signsal.class_gradients`; this object keeps the traced function, so repeated
        calls are cheap."""
        return self._engine.class_gradients(images, classes)

    # -- checked entry points ----------------------------------------------------------

    def _checked(self, images: Any) -> tf.Tensor:
        images = _checks.as_image_batch(images)
        _checks.check_model_input(self.model, images)
        self.attribution.check(images)
        return images

    def explain(
        self,
        images: Any,
        targets: Any = None,
        methods: Sequence[str] = METHODS,
        normalize: bool = True,
        batch_size: int | None = None,
        steps: int | None = None,
    ) -> dict[str, tf.Tensor]:
        """Compute the requested maps.

        Args:
            images: float images (B, H, W, ch) in the model's input range, as a
                numpy array or tensor; or a `tf.data.Dataset` of image batches
                or (images, labels[, ...]) batches, whose maps are returned for
                all its images in order.
            targets: None to explain each image's predicted class (the argmax
                of its logits), or one class index per image. Not accepted
                with a dataset (explain its labels by passing arrays).
            methods: any of `METHODS`.
            normalize: per-image min-max normalisation to [0, 1]; False
                returns the raw channel-reduced gradients.
            batch_size: None explains an array in one pass; an integer explains
                it `batch_size` images at a time (less memory; the same maps up to the
                float rounding by which the model's own outputs vary with the batch
                size, about 1e-7).
                A dataset's own batches are used as they come.
            steps: explain at most this many batches of a dataset (as Keras's
                `model.predict(steps=...)`): the way to bound a dataset that repeats.
                A dataset whose length TensorFlow cannot tell (e.g. after `filter`) is
                read to its end, with a warning, unless `steps` is given.

        Returns:
            dict method -> float32 tensor (B, H, W).
        """
        return self.explain_with_logits(images, targets, methods, normalize, batch_size, steps)[0]

    def explain_with_logits(
        self,
        images: Any,
        targets: Any = None,
        methods: Sequence[str] = METHODS,
        normalize: bool = True,
        batch_size: int | None = None,
        steps: int | None = None,
    ) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        """Like `explain`, and also return the logits (B, C) of the intact images."""
        explanation = self.explain_checked(images, targets, methods, normalize, batch_size, steps)
        return explanation.maps, explanation.logits

    def explain_checked(
        self,
        images: Any,
        targets: Any = None,
        methods: Sequence[str] = METHODS,
        normalize: bool = True,
        batch_size: int | None = None,
        steps: int | None = None,
    ) -> Explanation:
        """Like `explain`, returning an `Explanation(maps, logits, targets)`: also the
        logits (B, C) of the intact images and the explained class of each image."""
        methods = _checks.check_choices("methods", methods, METHODS)
        normalize = _checks.boolean("normalize", normalize)
        if batch_size is not None:
            batch_size = _checks.positive_int("batch_size", batch_size)
        # The warning points at the user's call of `explain`, two calls up.
        images = _checks.bounded_dataset(images, steps, "images", "explain", stacklevel=5)
        if isinstance(images, tf.data.Dataset):
            if targets is not None:
                raise ValueError(
                    "`targets` must be None when `images` is a tf.data.Dataset "
                    f"(the predicted classes are explained), received {type(targets).__name__}"
                )
            batches = (
                (self._checked(e[0] if isinstance(e, (tuple, list)) else e), None) for e in images
            )
        else:
            images = self._checked(images)
            size = images.shape[0]
            if targets is not None:
                targets = tf.constant(
                    _checks.class_indices("targets", targets, size, self.num_classes(images))
                )
            step = size if batch_size is None or size == 0 else batch_size
            batches = (
                (images[i : i + step], None if targets is None else targets[i : i + step])
                for i in range(0, max(size, 1), max(step, 1))
            )
        parts = []
        for batch, batch_targets in batches:
            self._check_methods_for_classes(methods, self.num_classes(batch))
            if batch.shape[0] == 0:
                parts.append(self._empty(batch, methods))
            else:
                parts.append(self.explain_batch(batch, batch_targets, methods, normalize))
        if not parts:
            raise ValueError("`images` is an empty tf.data.Dataset: there is nothing to explain")
        if len(parts) == 1:
            return parts[0]
        sizes = sorted({tuple(p.maps[methods[0]].shape[1:]) for p in parts})
        if len(sizes) > 1:  # a model of any input size, fed batches of several sizes
            raise ValueError(
                f"`images` batches must share one image size to be stacked, received {sizes}: "
                "explain each size apart"
            )
        return Explanation(
            {m: tf.concat([p.maps[m] for p in parts], axis=0) for m in methods},
            tf.concat([p.logits for p in parts], axis=0),
            tf.concat([p.targets for p in parts], axis=0),
        )

    @staticmethod
    def _check_methods_for_classes(methods: Sequence[str], num_classes: int) -> None:
        # With one output there is no other class: active and inactive would silently
        # equal the standard map.
        compared = sorted(_NEEDS_RIVALS.intersection(methods))
        if compared:
            _checks.several_classes(
                num_classes,
                f"`methods` {compared} compare the explained class with every other class "
                "(ask for standard, positive or negative maps)",
            )

    def _empty(self, images: tf.Tensor, methods: Sequence[str]) -> Explanation:
        num_classes = self.num_classes(images)
        empty = tf.zeros((0, *images.shape[1:3]), tf.float32)
        return Explanation(
            {m: empty for m in methods},
            tf.zeros((0, num_classes), tf.float32),
            tf.zeros((0,), tf.int32),
        )
