"""The five sign-aware saliency maps of the paper (section 1 of the spec).

standard  max_k |g|            positive  max_k relu(g)      negative  max_k relu(-g)
active    max_k |g * [g > every other class's gradient]|
inactive  max_k |g * [g < every other class's gradient]|

where g is the input gradient of the explained class's logit and k runs over
channels. Each map is then min-max normalised per image over H x W.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import tensorflow as tf

from tf_signsal import _checks
from tf_signsal.gradients import GradientEngine, GradientStats

METHODS: tuple[str, ...] = ("standard", "positive", "negative", "active", "inactive")
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


class SignedSaliency:
    """Sign-aware saliency maps of a Keras classifier.

    All requested maps come from one gradient computation per batch: the
    target class's gradient and, when active/inactive maps are asked for, the
    running max/min of every other class's gradient.

    The model is always called with `training=False` and explained on its
    logits: a Sequential/Functional model whose last layer applies a softmax
    has it stripped (with a warning). For a model that ends in another
    activation, pass the model of the scores before it, e.g.
    `keras.Model(model.inputs, model.layers[-2].output)`.

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

    Example:
        >>> saliency = tf_signsal.SignedSaliency(model)
        >>> maps = saliency.explain(images)              # predicted classes
        >>> maps["positive"].shape                       # (B, H, W), in [0, 1]
        >>> maps = saliency.explain(images, targets=labels, methods=["active"])
    """

    def __init__(
        self,
        model: Any,
        classes_per_chunk: int = 16,
        jacobian: str = "auto",
        rivals: int | None = None,
    ):
        self.model = model
        self._engine = GradientEngine(
            model, classes_per_chunk=classes_per_chunk, jacobian=jacobian, rivals=rivals
        )

    def explain(
        self,
        images: Any,
        targets: Any = None,
        methods: Sequence[str] = METHODS,
        normalize: bool = True,
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

        Returns:
            dict method -> float32 tensor (B, H, W).
        """
        maps, _ = self.explain_with_logits(images, targets, methods, normalize)
        return maps

    def explain_with_logits(
        self,
        images: Any,
        targets: Any = None,
        methods: Sequence[str] = METHODS,
        normalize: bool = True,
    ) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        """Like `explain`, and also return the logits (B, C) of the intact images."""
        methods = _checks.check_choices("methods", methods, METHODS)
        if isinstance(images, tf.data.Dataset):
            if targets is not None:
                raise ValueError(
                    "`targets` must be None when `images` is a tf.data.Dataset "
                    f"(the predicted classes are explained), received {type(targets).__name__}"
                )
            return self._explain_dataset(images, methods, normalize)
        images = _checks.as_image_batch(images)
        _checks.check_model_input(self.model, images)
        if images.shape[0] == 0:
            empty = tf.zeros((0, *images.shape[1:3]), tf.float32)
            num_classes = self._engine.num_classes(tf.zeros((1, *images.shape[1:])))
            return {m: empty for m in methods}, tf.zeros((0, num_classes), tf.float32)
        if targets is not None:
            targets = _checks.class_indices("targets", targets, images.shape[0], self._engine.num_classes(images))
        stats = self._engine(
            images, targets, with_rivals=bool(_NEEDS_RIVALS.intersection(methods))
        )
        maps = reduce_to_maps(stats, methods)
        if normalize:
            maps = {method: normalize_maps(m) for method, m in maps.items()}
        return maps, stats.logits

    def _explain_dataset(
        self, dataset: tf.data.Dataset, methods: tuple[str, ...], normalize: bool
    ) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        parts: list[tuple[Mapping[str, tf.Tensor], tf.Tensor]] = []
        for element in dataset:
            batch = element[0] if isinstance(element, (tuple, list)) else element
            parts.append(self.explain_with_logits(batch, None, methods, normalize))
        if not parts:
            raise ValueError("`images` is an empty tf.data.Dataset: there is nothing to explain")
        maps = {m: tf.concat([p[0][m] for p in parts], axis=0) for m in methods}
        return maps, tf.concat([p[1] for p in parts], axis=0)
