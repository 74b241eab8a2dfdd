"""The five sign-aware saliency maps of the paper (section 1 of the spec).

standard  max_k |g|            positive  max_k relu(g)      negative  max_k relu(-g)
active    max_k |g * [g > every other class's gradient]|
inactive  max_k |g * [g < every other class's gradient]|

where g is the input gradient of the explained class's logit and k runs over
channels. Each map is then min-max normalised per image over H x W.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import keras
import tensorflow as tf

from tf_signsal import _checks, _data, _model
from tf_signsal.attributions import Attribution, as_attribution
from tf_signsal.gradients import GradientStats, _GradientEngine, class_gradients
from tf_signsal.precision import check_precision, compute_model
from tf_signsal.vocabulary import METHODS

_NEEDS_RIVALS = frozenset({"active", "inactive"})

LONG_RUN_PASSES = 4096
"""`explain(verbose="auto")` shows a progress bar for an attribution of several points per
image (integrated gradients, SmoothGrad) from this many backward passes on: the points per
image x the images x the classes compared. A one-point gradient stays quiet (verbose=1 asks)."""


def reduce_to_maps(stats: GradientStats, methods: Sequence[str]) -> dict[str, tf.Tensor]:
    """Channel reductions of the gradient statistics: raw (B, H, W) maps."""
    g = stats.target_gradient
    zero = tf.zeros_like(g)
    # max_k relu(g) = relu(max_k g), max_k relu(-g) = relu(-min_k g) and max_k |g| is the
    # larger of the two, exactly (relu and negation are monotone and exact): the channel
    # reductions come first, and the elementwise work is on (B, H, W), not (B, H, W, ch).
    positive = lambda: tf.nn.relu(tf.reduce_max(g, axis=-1))  # noqa: E731
    negative = lambda: tf.nn.relu(-tf.reduce_min(g, axis=-1))  # noqa: E731
    reductions = {
        "standard": lambda: tf.maximum(positive(), negative()),
        "positive": positive,
        "negative": negative,
        # Strict inequalities: a tie with any other class keeps nothing.
        "active": lambda: tf.reduce_max(tf.abs(tf.where(g > stats.rival_max, g, zero)), -1),
        "inactive": lambda: tf.reduce_max(tf.abs(tf.where(g < stats.rival_min, g, zero)), -1),
    }
    return {method: reductions[method]() for method in methods}


def normalize_maps(maps: tf.Tensor) -> tf.Tensor:
    """Per-image min-max over H x W to [0, 1]; a constant map becomes all zeros."""
    low = tf.reduce_min(maps, axis=(1, 2), keepdims=True)
    span = tf.reduce_max(maps, axis=(1, 2), keepdims=True) - low
    safe_span = tf.where(span > 0, span, tf.ones_like(span))
    return tf.where(span > 0, (maps - low) / safe_span, tf.zeros_like(maps))


@functools.partial(tf.function, jit_compile=True, reduce_retracing=True)
def _reduced_maps(
    stats: GradientStats, methods: tuple[str, ...], normalize: bool
) -> dict[str, tf.Tensor]:
    """`reduce_to_maps`, then `normalize_maps` if asked, compiled with XLA: TensorFlow's own
    kernels reduce a last axis of 3 channels slowly, and the map of a 128-image CIFAR-10
    batch took 25 ms of CPU time there against 9 ms fused, the same numbers bit for bit
    (benchmarks/README.md)."""
    maps = reduce_to_maps(stats, methods)
    return {m: normalize_maps(x) for m, x in maps.items()} if normalize else maps


class Explanation(Mapping[str, tf.Tensor]):
    """The maps of a batch, with what was explained: a read-only mapping.

    `explanation["positive"]`, `explanation.keys()`, `dict(explanation)` and
    `{**explanation}` read the maps, method -> float32 (B, H, W), in the order asked.

    Inside a `tf.function`, return its tensors (`dict(explanation)`, `.logits`,
    `.targets`) rather than the object: `tf.nest` rebuilds mappings from their items
    alone.

    Attributes:
        logits: float32 (B, C), the logits of the intact images.
        targets: int32 (B,), the explained class of each image.
    """

    __slots__ = ("_maps", "_logits", "_targets")

    def __init__(self, maps: Mapping[str, tf.Tensor], logits: tf.Tensor, targets: tf.Tensor):
        self._maps = dict(maps)
        self._logits = logits
        self._targets = targets

    @property
    def logits(self) -> tf.Tensor:
        """float32 (B, C), the logits of the intact images."""
        return self._logits

    @property
    def targets(self) -> tf.Tensor:
        """int32 (B,), the explained class of each image."""
        return self._targets

    @property
    def maps(self) -> dict[str, tf.Tensor]:
        """The maps as a new dict (the field of the earlier named tuple)."""
        return dict(self._maps)

    def __getitem__(self, method: str) -> tf.Tensor:
        return self._maps[method]

    def __iter__(self) -> Iterator[str]:
        return iter(self._maps)

    def __len__(self) -> int:
        return len(self._maps)

    def __repr__(self) -> str:
        shape = tuple(self._logits.shape)
        return f"Explanation(methods={list(self._maps)}, logits shape={shape})"


class _ExplanationTuple(NamedTuple):
    # What the deprecated `explain_checked` and `explain_batch` return, as before:
    # callers unpack it as `maps, logits, targets`.
    maps: dict[str, tf.Tensor]
    logits: tf.Tensor
    targets: tf.Tensor


def _methods(methods: Sequence[str] | None) -> tuple[str, ...]:
    """The requested maps: all five for None."""
    return METHODS if methods is None else _checks.check_choices("methods", methods, METHODS)


def _deprecated(old: str, new: str) -> None:
    warnings.warn(
        f"SignedSaliency.{old} is deprecated and will be removed: use {new}",
        DeprecationWarning,
        stacklevel=3,
    )


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

    Three ways in:

    - `explain(images, ...)`: checked; arrays, tensors, (images, labels) tuples or
      `tf.data` datasets; returns an `Explanation` (maps, `.logits`, `.targets`).
    - `explain_step(images, ...)`: one checked-by-you float32 batch, no checks,
      traceable inside a `tf.function` (as Keras's `*_step` methods).
    - calling it, `saliency(images)`: the five maps of the predicted classes, which
      makes it an explainer for `AllegianceEvaluator(explainer=...)`.

    `logits(images)` and `num_classes(images)` give the model's side;
    `tf_signsal.class_gradients(saliency, images)` the all-class gradients.

    Args:
        model: a Keras classifier taking float images (B, H, W, ch) and
            returning logits (B, C): Sequential, Functional or subclassed.
        classes_per_chunk: how many classes' gradients are computed per
            forward pass (peak memory does not grow with the number of classes).
        jacobian: "auto", "batch_jacobian" (vectorised) or "loop" (one backward
            pass per class on a persistent tape); "auto" takes batch_jacobian on
            accelerators and the loop on CPUs, where it measured faster.
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
            noise and the "black"/"white" baselines of an attribution given no
            `value_range` of its own. When the model's first layers show another
            range (a `Rescaling(1/255)` takes [0, 255]), a `ValueRangeWarning`
            says which to pass.
        precision: "float32" (default), or "bfloat16": the model's forward and
            backward passes run in bfloat16 on a copy of it (Keras's "mixed_bfloat16"
            policy, float32 variables, the weights copied at construction), while the
            input gradients, the folds over classes and the maps stay float32. Faster
            where the hardware has bfloat16 (AVX512-BF16/AMX CPUs, GPUs); the maps
            agree with float32's up to its rounding (benchmarks/README.md, "Reduced
            precision"). `saliency.model` stays your model, untouched;
            `saliency.compute_model` is the model the passes run (the copy). A
            subclassed model, a SavedModel (`load_model` of one) or a `Lambda` layer
            cannot be copied so: a ValueError says what to pass instead.

    Example:
        >>> saliency = tf_signsal.SignedSaliency(model)
        >>> maps = saliency.explain(images)              # predicted classes
        >>> maps["positive"].shape                       # (B, H, W), in [0, 1]
        >>> maps.logits, maps.targets                    # (B, C), (B,)
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
        precision: str = "float32",
    ):
        self.model = model
        self.value_range = _checks.value_range(value_range)
        self.attribution = as_attribution(attribution, self.value_range)
        self.precision = check_precision(precision)
        # The user's model for float32; a bfloat16 copy of it for "bfloat16".
        self.compute_model = compute_model(model, self.precision)
        self._engine = _GradientEngine(
            self.compute_model, classes_per_chunk=classes_per_chunk, jacobian=jacobian,
            rivals=rivals, attribution=self.attribution,
        )
        _model.warn_value_range(model, self.value_range, stacklevel=2)

    @property
    def jacobian_mode(self) -> str:
        """How the all-class gradients are computed: "loop" or "batch_jacobian" (what
        `jacobian="auto"` chose on this machine)."""
        return self._engine.jacobian_mode

    def __call__(self, images: Any) -> Explanation:
        """The five normalised maps of the predicted classes: `explain(images)`."""
        return self._explain(images, None, None, True, None, None, 0, stacklevel=3)

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

    def explain_step(
        self,
        images: tf.Tensor,
        targets: tf.Tensor | None = None,
        methods: Sequence[str] | None = None,
        normalize: bool = True,
    ) -> Explanation:
        """The maps of one float32 batch (B, H, W, ch), B >= 1, with no input checks.

        Traceable: usable inside a `tf.function` (the evaluator's and the SavedModel's
        own steps are this). `explain` is the checked entry point, and the place to
        start: this step trusts its input (a finite float32 batch the model takes).

        Args:
            images: float32 tensor (B, H, W, ch), B >= 1.
            targets: None (the predicted classes) or an int32 (B,) tensor of class
                indices.
            methods: any of `METHODS`; None for all five.
            normalize: per-image min-max normalisation to [0, 1], as `explain`.

        Returns:
            an `Explanation`.
        """
        methods = _methods(methods)
        if not tf.executing_eagerly():  # traced into the caller's own tf.function
            return Explanation(*self._maps_step(images, targets, methods, normalize))
        # Called eagerly: the gradients, reductions and normalisation run as one compiled
        # function, so no map takes a step outside the graph (benchmarks/README.md).
        step = self._engine.compiled(
            ("maps", methods, bool(normalize)), images, [tf.TensorSpec((None,), tf.int32)],
            functools.partial(self._maps_step, methods=methods, normalize=normalize),
        )
        if targets is None:
            targets = tf.fill(tf.shape(images)[:1], -1)
        return Explanation(*step(images, tf.convert_to_tensor(targets, tf.int32)))

    def _maps_step(self, images, targets, methods, normalize):
        """explain_step's traceable body: (maps, logits, targets)."""
        stats = self._engine.statistics(
            images, targets, with_rivals=bool(_NEEDS_RIVALS.intersection(methods))
        )
        return _reduced_maps(stats, tuple(methods), bool(normalize)), stats.logits, stats.targets

    def explain(
        self,
        images: Any,
        targets: Any = None,
        methods: Sequence[str] | None = None,
        normalize: bool = True,
        batch_size: int | None = None,
        steps: int | None = None,
        verbose: int | str = "auto",
    ) -> Explanation:
        """Compute the requested maps, checking the input.

        Args:
            images: float images (B, H, W, ch) in the model's input range, as a
                numpy array, tensor or list; a tuple (images,), (images, labels) or
                (images, labels, weights), read as Keras reads one; or a
                `tf.data.Dataset` of image batches or of such tuples, whose maps are
                returned for all its images in order. Labels are not explained: pass
                them as `targets` to explain them.
            targets: None to explain each image's predicted class (the argmax
                of its logits), or one class index per image. Not accepted
                with a dataset (explain its labels by passing arrays).
            methods: any of `METHODS`; None for all five.
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
            verbose: 0 is silent, 1 (or 2) shows a Keras progress bar over the images,
                advancing batch by batch; "auto" shows it for a long attribution run
                of several points per image, from `LONG_RUN_PASSES` backward passes
                (the points per image x the images x the classes compared) on, e.g.
                integrated gradients of 128 images; the plain gradient stays quiet.
                Explain an array in batches (`batch_size`) to see it advance: a
                batch's points go through the model at once.

        Returns:
            an `Explanation`: method -> float32 tensor (B, H, W), with `.logits` (B, C)
            and `.targets` (B,).
        """
        return self._explain(images, targets, methods, normalize, batch_size, steps, verbose, 3)

    def _explain(
        self, images, targets, methods, normalize, batch_size, steps, verbose, stacklevel: int
    ) -> Explanation:
        """`explain`; `stacklevel` points the unknown-length warning at the user's call
        (as `warnings.warn`'s, counted from here)."""
        if not (isinstance(verbose, str) and verbose == "auto"):
            verbose = _checks.integer("verbose", verbose, minimum=0, maximum=2)
        methods = _methods(methods)
        normalize = _checks.boolean("normalize", normalize)
        if batch_size is not None:
            batch_size = _checks.positive_int("batch_size", batch_size)
        if isinstance(images, tf.data.Dataset) and targets is not None:
            raise ValueError(
                "`targets` must be None when `images` is a tf.data.Dataset "
                f"(the predicted classes are explained), received {type(targets).__name__}"
            )
        source = _data.batches(
            images, batch_size=batch_size, steps=steps, model=self.model, name="images",
            what="explain", allow_empty=True, stacklevel=stacklevel,
        )
        self.attribution.check(source.first.images)
        if targets is not None:
            first = source.first.images
            targets = tf.constant(
                _checks.class_indices("targets", targets, source.total, self.num_classes(first))
            )
        progress = self._progress(verbose, methods, source)
        parts, start = [], 0
        for batch in source:
            self._check_methods_for_classes(methods, self.num_classes(batch.images))
            size = batch.images.shape[0]
            if size == 0:
                parts.append(self._empty(batch.images, methods))
            else:
                chosen = None if targets is None else targets[start : start + size]
                parts.append(self.explain_step(batch.images, chosen, methods, normalize))
            start += size
            if progress is not None:
                progress.update(start)
        if len(parts) == 1:
            return parts[0]
        return Explanation(
            {m: tf.concat([p[m] for p in parts], axis=0) for m in methods},
            tf.concat([p.logits for p in parts], axis=0),
            tf.concat([p.targets for p in parts], axis=0),
        )

    def _progress(
        self, verbose: int | str, methods: Sequence[str], source: _data.Batches
    ) -> keras.utils.Progbar | None:
        """A progress bar over the images, started, or None (silent)."""
        if verbose == "auto":
            # Backward passes per image and point: the target's, or every compared class's.
            classes = 1
            if _NEEDS_RIVALS.intersection(methods):
                classes = self.num_classes(source.first.images)
                if self._engine.rivals is not None:
                    classes = min(classes, self._engine.rivals + 1)
            images = source.total or source.first.images.shape[0]
            points = self.attribution.num_points
            verbose = int(points > 1 and points * images * classes >= LONG_RUN_PASSES)
        if not verbose or not tf.executing_eagerly():
            return None
        progress = keras.utils.Progbar(source.total, verbose=verbose, unit_name="image")
        progress.update(0)
        return progress

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

    # -- deprecated --------------------------------------------------------------------

    def explain_with_logits(
        self,
        images: Any,
        targets: Any = None,
        methods: Sequence[str] | None = None,
        normalize: bool = True,
        batch_size: int | None = None,
        steps: int | None = None,
    ) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        """Deprecated: `explain`, whose `Explanation` carries `.logits`.

        Returns (maps dict, logits (B, C)) as before.
        """
        _deprecated("explain_with_logits", "explain(...), whose result has .logits")
        explanation = self._explain(
            images, targets, methods, normalize, batch_size, steps, "auto", 3
        )
        return explanation.maps, explanation.logits

    def explain_checked(
        self,
        images: Any,
        targets: Any = None,
        methods: Sequence[str] | None = None,
        normalize: bool = True,
        batch_size: int | None = None,
        steps: int | None = None,
    ) -> _ExplanationTuple:
        """Deprecated: `explain`, whose `Explanation` carries `.logits` and `.targets`.

        Returns the named tuple (maps, logits, targets) as before.
        """
        _deprecated("explain_checked", "explain(...), whose result has .logits and .targets")
        explanation = self._explain(
            images, targets, methods, normalize, batch_size, steps, "auto", 3
        )
        return _ExplanationTuple(explanation.maps, explanation.logits, explanation.targets)

    def explain_batch(
        self,
        images: tf.Tensor,
        targets: tf.Tensor | None = None,
        methods: Sequence[str] = METHODS,
        normalize: bool = True,
    ) -> _ExplanationTuple:
        """Deprecated: `explain_step`, which returns an `Explanation`.

        Returns the named tuple (maps, logits, targets) as before.
        """
        _deprecated("explain_batch", "explain_step(...), which returns an Explanation")
        explanation = self.explain_step(images, targets, methods, normalize)
        return _ExplanationTuple(explanation.maps, explanation.logits, explanation.targets)

    def class_gradients(self, images: Any, classes: Sequence[int] | None = None) -> tf.Tensor:
        """Deprecated: `tf_signsal.class_gradients(saliency, images, classes)`, which
        reuses this object's traced function the same way."""
        _deprecated("class_gradients", "tf_signsal.class_gradients(saliency, images, classes)")
        return class_gradients(self, images, classes)
