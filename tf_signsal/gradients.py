"""All-class input gradients: the first stage of the pipeline.

`class_gradients` returns the full Jacobian d logit_c / d input for every
class. The private `_GradientEngine` computes what the five maps need without ever
holding that Jacobian for all classes at once: the gradient of the target class and,
per (pixel, channel) element, the largest and the smallest gradient among the
other classes, accumulated over chunks of classes.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import keras
import numpy as np
import tensorflow as tf

from tf_signsal import _checks
from tf_signsal.attributions import Attribution, Gradient
from tf_signsal.vocabulary import JACOBIAN_MODES

# A softmax (or log-softmax) given as a name, a layer or any of its function objects.
_SOFTMAX_FUNCTIONS = tuple(
    dict.fromkeys(
        f
        for f in (
            keras.activations.softmax, keras.activations.log_softmax,
            keras.ops.softmax, keras.ops.log_softmax, keras.ops.nn.softmax,
            keras.ops.nn.log_softmax, tf.nn.softmax, tf.nn.log_softmax, tf.math.softmax,
            tf.math.log_softmax,
        )
    )
)


# keras.ops.softmax or log_softmax (also through keras.activations) applied to a symbolic
# tensor leaves an operation of one of these names in a Functional model's graph.
_SOFTMAX_OPERATIONS = ("Softmax", "LogSoftmax")


def _is_softmax(layer: Any) -> bool:
    activation = getattr(layer, "activation", None)
    return (
        isinstance(layer, keras.layers.Softmax)
        or any(activation is f for f in _SOFTMAX_FUNCTIONS)
        or (isinstance(layer, keras.Operation) and not isinstance(layer, keras.layers.Layer)
            and type(layer).__name__ in _SOFTMAX_OPERATIONS)
    )


def _call_without_activation(layer: Any, inputs: tf.Tensor) -> tf.Tensor:
    # Runs only while a tf.function traces, so the swap is seen by the trace
    # and the layer is left exactly as it was.
    activation = layer.activation
    layer.activation = keras.activations.linear
    try:
        return layer(inputs, training=False)
    finally:
        layer.activation = activation


def _last_softmax(model: Any) -> str | None:
    """The path of a softmax that is the last of `model.layers`, also the last of a nested
    model's at any depth, or None: for a model whose graph cannot be walked."""
    layers = getattr(model, "layers", None)
    last = layers[-1] if layers else None
    if _is_softmax(last):
        return last.name
    inner = _last_softmax(last) if isinstance(last, keras.Model) else None
    return None if inner is None else f"{last.name}/{inner}"


def _without_softmax(model: Any) -> tuple[Callable[[tf.Tensor], tf.Tensor], str] | None:
    """(the logits function, the stripped layer's path) of a Sequential or Functional model
    whose output is a softmax's, also at the end of a nested model at any depth; else None.

    The graph is walked from the output back: the operation that made it, at the node of
    that call (a shared layer has one node per call, so its `.input` would be ambiguous).
    """
    inputs, outputs = getattr(model, "inputs", None), getattr(model, "outputs", None)
    if not inputs or not outputs:  # no graph to walk (subclassed, or never built)
        name = _last_softmax(model)
        if name is not None:
            raise ValueError(
                f"the last layer of `model` ({name}) applies a softmax, but the logits before "
                "it cannot be reached: it is not in the graph of a Sequential or Functional "
                "model built on a keras.Input (a subclassed model, or a Sequential without "
                "keras.Input first). Pass a model that returns the logits: build "
                "keras.applications models with classifier_activation=None, start a "
                "Sequential with keras.Input((height, width, channels)), or return the scores "
                "before the softmax"
            )
        return None
    history = getattr(outputs[0], "_keras_history", None)
    if len(inputs) != 1 or len(outputs) != 1 or history is None:
        return None
    operation, node_index, _ = history
    node = operation._inbound_nodes[node_index]
    if len(node.input_tensors) != 1:
        return None
    if _is_softmax(operation):
        name = operation.name
    elif isinstance(operation, keras.Model):
        nested = _without_softmax(operation)
        if nested is None:
            return None
        inner, name = nested
        name = f"{operation.name}/{name}"
    else:
        return None
    # The model up to that call's input: the same layers, called as the model calls them.
    before = node.input_tensors[0]
    features = None if before is inputs[0] else keras.Model(inputs[0], before)

    def head(images: tf.Tensor) -> tf.Tensor:
        return images if features is None else features(images, training=False)

    if isinstance(operation, keras.Model):
        return (lambda images: inner(head(images))), name
    if isinstance(operation, keras.layers.Layer) and not isinstance(
        operation, (keras.layers.Softmax, keras.layers.Activation)
    ):  # a Dense/Conv layer with a softmax activation
        return (lambda images: _call_without_activation(operation, head(images))), name
    return head, name


def logits_function(model: Any) -> Callable[[tf.Tensor], tf.Tensor]:
    """Return a function images -> logits (B, C) for `model`, in inference mode.

    A Sequential or Functional model whose output is a softmax's (a `Softmax`
    layer, `Activation("softmax")`, `Dense(..., activation="softmax")`, a softmax
    function object such as `tf.nn.softmax` or `keras.ops.softmax`, or
    `keras.ops.softmax` applied in the graph; also log-softmax), also at the end of
    a nested model at any depth (e.g. a `keras.applications` model with its default
    `classifier_activation` after a `Rescaling` layer), is explained on its logits:
    the softmax is stripped and a warning says so. The model's own layers are called
    as the model calls them, so shared layers stay shared and the model is left as
    it was. A model whose last layer applies a softmax outside any graph that can be
    walked (a subclassed model, a Sequential without `keras.Input`) is refused with
    what to do (e.g. `classifier_activation=None`). For a model that ends in another
    squashing activation (sigmoid, a softmax inside a subclassed model's `call`),
    pass a model that returns the scores before it, e.g.
    `keras.Model(model.inputs, model.layers[-2].output)`; outputs that look like
    probabilities get a warning when the model is first checked.

    The function takes channels-last images (B, H, W, ch): a channels-first model
    (`_checks.channels_first`) is given them transposed to (B, ch, H, W), so its gradients
    come back channels last, exactly. A model whose layout cannot be told is refused
    (`_checks.check_layout`).
    """
    _checks.check_layout(model)  # before any warning: it may refuse the model
    first = _checks.channels_first(model)
    function, name = _without_softmax(model) or (
        lambda images: model(images, training=False), None
    )
    if name is not None:
        warnings.warn(
            f"tf_signsal: the last layer of `model` ({name}) applies a softmax; "
            "the maps are computed on the logits before it, as the paper does.",
            stacklevel=3,
        )
    if first:
        return lambda images: function(tf.transpose(images, (0, 3, 1, 2)))
    return function


_PROBE_SIDE = 64


def _warn_if_probabilities(logits: np.ndarray) -> None:
    # Logits that are non-negative and sum to one on a blank image are almost surely a
    # softmax that was not found (a subclassed model, a custom layer).
    if logits.shape[-1] > 1 and (logits >= 0).all() and np.allclose(logits.sum(-1), 1, atol=1e-5):
        warnings.warn(
            "tf_signsal: the outputs of `model` look like probabilities (non-negative, summing "
            "to 1): the maps will be of probabilities, not logits. Pass the model of the "
            "scores before its softmax.",
            stacklevel=4,
        )


def _checked_logits(logits: Any) -> tf.Tensor:
    if isinstance(logits, (list, tuple, dict)):
        raise ValueError(
            "`model` must have a single output of shape (batch, classes), "
            f"it returns a {type(logits).__name__} of {len(logits)} outputs"
        )
    if logits.shape.rank != 2 or logits.shape[-1] is None:
        raise ValueError(
            "`model` must return logits of shape (batch, classes), "
            f"it returns shape {tuple(logits.shape)}"
        )
    return tf.cast(logits, tf.float32)


def _no_gradient_error() -> ValueError:
    return ValueError(
        "`model`'s output does not depend on its input: there is no input gradient to explain"
    )


def _default_jacobian_mode() -> str:
    # On CPUs, a loop of per-class backward passes on one persistent tape was
    # measured as fast as or faster than the pfor-vectorised batch_jacobian
    # (benchmarks/README.md); on accelerators the vectorised batch_jacobian
    # fills the device far better, so it is the path there.
    return "batch_jacobian" if tf.config.list_logical_devices("GPU") else "loop"


def _batch_jacobian(tape: tf.GradientTape, chunk_logits: tf.Tensor, images: tf.Tensor) -> tf.Tensor:
    """d chunk_logits[:, j] / d images for every column j: (B, k, H, W, ch)."""
    jacobian = tape.batch_jacobian(chunk_logits, images)
    if jacobian is None:
        raise _no_gradient_error()
    return jacobian


def _column_gradient(
    tape: tf.GradientTape, chunk_logits: tf.Tensor, images: tf.Tensor, column: int
) -> tf.Tensor:
    """d chunk_logits[:, column] / d images: (B, H, W, ch), one backward pass."""
    # Images are independent in inference mode, so the gradient of a column's
    # batch sum is each image's own gradient.
    seed = tf.one_hot(tf.fill(tf.shape(chunk_logits)[:1], column), chunk_logits.shape[1])
    gradient = tape.gradient(chunk_logits, images, output_gradients=seed)
    if gradient is None:
        raise _no_gradient_error()
    return gradient


def class_gradients(model: Any, images: Any, classes: Sequence[int] | None = None) -> tf.Tensor:
    """Input gradients of the logits of every class (or of `classes`).

    Computed with `tf.GradientTape.batch_jacobian` inside a `tf.function`, traced once
    per image shape (the batch size may change freely) by the object that keeps it: given
    a Keras model, a new one on each call; given a `SignedSaliency`, its own, so that
    repeated calls are cheap.

    Args:
        model: a Keras classifier returning logits (B, C) (a softmax last layer is
            stripped, see `logits_function`), or a `SignedSaliency` of one.
        images: float array or tensor (B, H, W, channels).
        classes: class indices to differentiate; all classes when None.

    Returns:
        float32 tensor (B, len(classes), H, W, channels).

    Example:
        >>> jac = tf_signsal.class_gradients(model, images)   # (B, 10, 32, 32, 3)
        >>> saliency = tf_signsal.SignedSaliency(model)       # repeated calls: trace once
        >>> jac = tf_signsal.class_gradients(saliency, images, classes=[3])
    """
    # A SignedSaliency lends its engine (and so its traced functions); duck-typed, as
    # the maps' module sits above this one.
    engine = getattr(model, "_engine", None)
    if not isinstance(engine, _GradientEngine):
        engine = _GradientEngine(model)
    images = _checks.as_image_batch(images)
    _checks.check_model_input(engine.model, images)
    num_classes = engine.num_classes(images)
    if classes is None:
        classes = np.arange(num_classes, dtype=np.int32)
    else:
        classes = np.asarray(classes).reshape(-1)
        if classes.size == 0:
            raise ValueError("`classes` must name at least one class, received none")
        classes = _checks.class_indices("classes", classes, len(classes), num_classes)
    if images.shape[0] == 0:  # nothing to differentiate: no trace needed
        return tf.zeros((0, len(classes), *images.shape[1:]), tf.float32)
    return engine.jacobian(images, tf.constant(classes, tf.int32))


class GradientStats(NamedTuple):
    """What the five maps need from one all-class gradient pass.

    Attributes:
        logits: (B, C) logits of the intact images.
        targets: (B,) explained class of each image.
        target_gradient: (B, H, W, ch) d logit_target / d input.
        rival_max: (B, H, W, ch) largest gradient among the other classes
            (-inf with no other class), or None when not requested.
        rival_min: (B, H, W, ch) smallest one (+inf), or None.
    """

    logits: tf.Tensor
    targets: tf.Tensor
    target_gradient: tf.Tensor
    rival_max: tf.Tensor | None
    rival_min: tf.Tensor | None


class _GradientEngine:
    """Compiled gradient passes for one model: private, fed checked float32 batches
    (`SignedSaliency` and `class_gradients` check them).

    Args:
        model: the Keras classifier (see `logits_function`).
        classes_per_chunk: how many classes' gradients one forward pass
            serves; TensorFlow may run their backward passes at once, so this,
            not the number of classes, bounds the peak memory.
        jacobian: "batch_jacobian", "loop" (one backward pass per class on a
            persistent tape) or "auto" (batch_jacobian on accelerators, the
            loop on CPUs, where it measured faster).
        rivals: None compares the target with every other class (the paper's
            definition). An integer k compares it only with each image's k
            highest-scoring other classes: k + 1 backward passes instead of C,
            for models with very many classes; exact when k >= C - 1.
        attribution: what the statistics are of (`tf_signsal.attributions`): the
            gradient (default), or an attribution averaging gradients over points
            (integrated gradients, smoothgrad), whose points go through the model
            as one batch of S * B images.
    """

    def __init__(
        self,
        model: Any,
        classes_per_chunk: int = 16,
        jacobian: str = "auto",
        rivals: int | None = None,
        attribution: Attribution | None = None,
    ):
        _checks.check_choices("jacobian", jacobian, JACOBIAN_MODES)
        self.model = model
        self.classes_per_chunk = _checks.positive_int("classes_per_chunk", classes_per_chunk)
        self.rivals = None if rivals is None else _checks.positive_int("rivals", rivals)
        self.jacobian_mode = _default_jacobian_mode() if jacobian == "auto" else jacobian
        if attribution is not None and not isinstance(attribution, Attribution):
            raise TypeError(
                f"`attribution` must be an Attribution, received {type(attribution).__name__}"
            )
        self.attribution = attribution or Gradient()
        self._logits_of_model = logits_function(model)
        self._functions: dict[tuple, Any] = {}
        self._num_classes: dict[tuple, int] = {}

    def logits(self, images: tf.Tensor) -> tf.Tensor:
        """The model's float32 logits (B, C), in inference mode; traceable."""
        return _checked_logits(self._logits_of_model(images))

    def num_classes(self, images: tf.Tensor) -> int:
        """The number of classes for images of this shape, checking the model once."""
        shape = tuple(images.shape[1:])
        if shape not in self._num_classes:
            # One eager pass on a blank image catches a model that is not a
            # (B, C) classifier or whose output ignores its input, before any
            # tf.function is traced (batch_jacobian would return zeros there).
            # While an outer function traces images of any height and width, the probe
            # takes a fixed size: the number of classes does not depend on it.
            size = tuple(_PROBE_SIDE if d is None else d for d in shape)
            if tf.executing_eagerly():
                probe = tf.zeros((1, *size), tf.float32)
                with tf.GradientTape() as tape:
                    tape.watch(probe)
                    logits = self.logits(probe)
                if tape.gradient(logits, probe) is None:
                    raise _no_gradient_error()
            else:
                # While tracing, the probe runs eagerly outside the graph; init_scope
                # pauses gradient tapes, so only the output is checked there.
                with tf.init_scope():
                    logits = self.logits(tf.zeros((1, *size), tf.float32))
            _warn_if_probabilities(logits.numpy())
            self._num_classes[shape] = int(logits.shape[-1])
        return self._num_classes[shape]

    def compiled(self, kind: Any, images: tf.Tensor, extra_signature, python_function):
        """`python_function(images, *extra)` as a tf.function for images shaped like
        `images`, traced once per (kind, image shape) and kept by this engine; `kind` is
        any hashable that names what the function computes."""
        key = (kind, tuple(images.shape[1:]))
        if key not in self._functions:
            self.num_classes(images)
            signature = [tf.TensorSpec((None,) + key[1], tf.float32), *extra_signature]
            # One trace per engine and image shape, as the signature makes it. The partial
            # keeps TensorFlow from counting every engine's first trace as a retrace of one
            # function (it keys the count on the code object): the sanity checks and a
            # notebook build engine after engine, and logged "triggered tf.function retracing".
            self._functions[key] = tf.function(
                functools.partial(python_function), input_signature=signature
            )
        return self._functions[key]

    def jacobian(self, images: tf.Tensor, classes: tf.Tensor) -> tf.Tensor:
        """(B, len(classes), H, W, ch) with batch_jacobian, as `class_gradients` promises."""

        def compute(images, classes):
            with tf.GradientTape() as tape:
                tape.watch(images)
                logits = self.logits(images)
                chunk_logits = tf.gather(logits, classes, axis=1)
            return _batch_jacobian(tape, chunk_logits, images)

        function = self.compiled("jacobian", images, [tf.TensorSpec((None,), tf.int32)], compute)
        return function(images, classes)

    def __call__(self, images: tf.Tensor, targets: Any, with_rivals: bool) -> GradientStats:
        """Gradient statistics for a batch.

        Args:
            images: float32 (B, H, W, ch), already checked.
            targets: int32 (B,) classes to explain, or None for the predicted ones.
            with_rivals: whether to compute rival_max / rival_min (needs the
                rivals' gradients; without it one backward pass suffices).
        """
        function = self.compiled(
            "rivals" if with_rivals else "target",
            images,
            [tf.TensorSpec((None,), tf.int32)],
            self._with_rivals if with_rivals else self._target_only,
        )
        return GradientStats(*function(images, _as_targets(images, targets)))

    def statistics(self, images: tf.Tensor, targets: Any, with_rivals: bool) -> GradientStats:
        """What `__call__` returns, traced into the caller's graph instead of called as a
        compiled function of its own: for a caller that compiles more work around it."""
        body = self._with_rivals if with_rivals else self._target_only
        return GradientStats(*body(images, _as_targets(images, targets)))

    @staticmethod
    def _resolve_targets(logits: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        # -1 stands for "the predicted class"; argmax takes the first maximum.
        predicted = tf.argmax(logits, axis=1, output_type=tf.int32)
        return tf.where(targets < 0, predicted, targets)

    def _attribute(self, gradients: tf.Tensor, images: tf.Tensor) -> tf.Tensor:
        """The attribution from the gradients at the points: the mean over the S points
        (sample-major rows, any trailing class axis) times the attribution's scale."""
        count = self.attribution.num_points
        if count > 1:
            shape = tf.concat([[count, -1], tf.shape(gradients)[1:]], axis=0)
            gradients = tf.reduce_mean(tf.reshape(gradients, shape), axis=0)
        scale = self.attribution.scale(images)
        if scale is None:
            return gradients
        if gradients.shape.rank == scale.shape.rank + 1:  # (B, k, H, W, ch) from a chunk
            scale = scale[:, None]
        return gradients * scale

    def _target_only(self, images, targets):
        points = self.attribution.points(images)
        with tf.GradientTape() as tape:
            tape.watch(points)
            point_logits = self.logits(points)
        logits = point_logits if points is images else self.logits(images)
        targets = self._resolve_targets(logits, targets)
        seeds = tf.one_hot(targets, logits.shape[-1])
        if points is not images:
            seeds = tf.tile(seeds, [self.attribution.num_points, 1])
        gradient = tape.gradient(point_logits, points, output_gradients=seeds)
        if gradient is None:
            raise _no_gradient_error()
        return logits, targets, self._attribute(gradient, images), None, None

    def _fold_chunk(self, images, class_ids, targets, state):
        """One forward pass, the attributions of a chunk of classes, folded into the state.

        `class_ids` (B, k) gives each image's classes for this chunk; -1 pads a
        chunk and counts for nothing. state = (target_attribution, rival_max,
        rival_min). With an attribution of several points, `targets` must be
        resolved already. Returns the logits (of the points), the resolved targets
        and the new state.
        """
        classes = tf.maximum(class_ids, 0)
        points = self.attribution.points(images)
        if points is not images:  # S points per image, sample-major
            classes = tf.tile(classes, [self.attribution.num_points, 1])
        loop = self.jacobian_mode == "loop"
        with tf.GradientTape(persistent=loop) as tape:
            tape.watch(points)
            logits = self.logits(points)
            chunk_logits = tf.gather(logits, classes, axis=1, batch_dims=1)
        if points is images:
            targets = self._resolve_targets(logits, targets)
        is_target = tf.equal(class_ids, targets[:, None])
        is_rival = (class_ids >= 0) & ~is_target
        if not loop:
            jacobian = self._attribute(_batch_jacobian(tape, chunk_logits, points), images)
            return logits, targets, _fold_stacked(jacobian, is_target, is_rival, state)
        # One class at a time, with per-image weights instead of a stacked
        # (B, k, H, W, ch) Jacobian and broadcast selects: measured about 15%
        # faster on CPUs (benchmarks/README.md).
        for column in range(chunk_logits.shape[1]):
            gradient = _column_gradient(tape, chunk_logits, points, column)
            state = _fold_column(
                self._attribute(gradient, images), is_target[:, column], is_rival[:, column],
                state,
            )
        return logits, targets, state

    def _class_ids(self, images, targets, num_classes):
        """(B, n) classes whose gradients are needed, the logits if computed, the targets."""
        batch = tf.shape(images)[0]
        if self.rivals is None or self.rivals >= num_classes - 1:
            return tf.tile(tf.range(num_classes)[None, :], [batch, 1]), None, targets
        # Each image's target and its k highest-scoring other classes (one extra forward pass).
        logits = self.logits(images)
        targets = self._resolve_targets(logits, targets)
        others = tf.where(tf.one_hot(targets, num_classes) > 0, -np.inf, logits)
        rivals = tf.math.top_k(others, k=self.rivals).indices
        return tf.concat([targets[:, None], rivals], axis=1), logits, targets

    def _with_rivals(self, images, targets):
        num_classes = self.num_classes(images)
        class_ids, logits, targets = self._class_ids(images, targets, num_classes)
        count = class_ids.shape[1]
        size = min(self.classes_per_chunk, count)
        chunks = math.ceil(count / size)
        class_ids = tf.pad(class_ids, [[0, 0], [0, chunks * size - count]], constant_values=-1)

        if logits is None and _moves_points(self.attribution):
            # The chunks' forward passes are of the points: the intact images' logits
            # (and so the predicted classes) need a pass of their own. Not only for several
            # points: IG's one midpoint and SmoothGrad's one noisy copy are not the images
            # either (the targets stayed unresolved there, and the maps all zero).
            logits = self.logits(images)
            targets = self._resolve_targets(logits, targets)
        infinity = tf.fill(tf.shape(images), np.inf)
        # The first chunk's forward pass also gives the logits (and so the
        # predicted classes) when they are not known yet.
        first_logits, targets, state = self._fold_chunk(
            images, class_ids[:, :size], targets, (tf.zeros_like(images), -infinity, infinity)
        )
        if chunks > 1:

            def body(index, *state):
                chunk = class_ids[:, index * size : (index + 1) * size]
                _, _, state = self._fold_chunk(images, tf.ensure_shape(chunk, (None, size)),
                                               targets, state)
                return (index + 1, *state)

            # One chunk at a time: by default TensorFlow runs up to 10 iterations
            # at once (only the fold is sequential), which multiplies the peak
            # memory by up to 10 (benchmarks/README.md, peak RSS table).
            _, *state = tf.while_loop(
                lambda index, *_: index < chunks, body, (1, *state), parallel_iterations=1
            )
        return (first_logits if logits is None else logits, targets, *state)


def _as_targets(images: tf.Tensor, targets: Any) -> tf.Tensor:
    """int32 (B,) targets; -1, "the predicted class", for all images when None."""
    if targets is None:
        # Built from the dynamic shape so that this also works while an
        # outer tf.function (e.g. the SavedModel export) traces.
        return tf.fill(tf.shape(images)[:1], -1)
    return tf.convert_to_tensor(targets, tf.int32)


def _moves_points(attribution: Attribution) -> bool:
    """Whether `attribution` takes its gradients at other points than the images
    (integrated gradients' path, SmoothGrad's noise), whatever their number."""
    return type(attribution).points is not Attribution.points


# The folds are elementwise passes over (B, H, W, ch) per class; compiled with XLA they run as
# one fused pass instead of one per operation: the five maps of a 224x224 ResNet-18 measured
# 1.14x -> 1.08x the plain all-class loop (benchmarks/README.md). Exact: the operations are
# the same maxima, minima and sums (a 0/1 weight's product is exact).
_fold = functools.partial(tf.function, jit_compile=True, reduce_retracing=True)


@_fold
def _fold_stacked(
    jacobian: tf.Tensor, is_target: tf.Tensor, is_rival: tf.Tensor, state: tuple
) -> tuple:
    """Fold a (B, k, H, W, ch) chunk; the (B, k) masks say which images each class counts for."""
    target_gradient, rival_max, rival_min = state
    is_target = is_target[:, :, None, None, None]
    is_rival = is_rival[:, :, None, None, None]
    inf = tf.constant(np.inf, tf.float32)
    return (
        target_gradient + tf.reduce_sum(tf.where(is_target, jacobian, 0.0), 1),
        tf.maximum(rival_max, tf.reduce_max(tf.where(is_rival, jacobian, -inf), 1)),
        tf.minimum(rival_min, tf.reduce_min(tf.where(is_rival, jacobian, inf), 1)),
    )


@_fold
def _fold_column(
    gradient: tf.Tensor, is_target: tf.Tensor, is_rival: tf.Tensor, state: tuple
) -> tuple:
    """Fold one class's (B, H, W, ch) gradient; the (B,) masks say which images it counts for."""
    target_gradient, rival_max, rival_min = state
    weight = tf.cast(is_target, tf.float32)[:, None, None, None]
    # +-inf offsets keep a non-rival's gradient out of the max and the min.
    offset = tf.where(is_rival, 0.0, np.inf)[:, None, None, None]
    return (
        target_gradient + weight * gradient,
        tf.maximum(rival_max, gradient - offset),
        tf.minimum(rival_min, gradient + offset),
    )
