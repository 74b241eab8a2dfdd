"""Sanity checks of saliency maps (Adebayo et al. 2018, "Sanity checks for saliency
maps", arXiv 1810.03292): does a map depend on what the model learned?

    randomization_check  the model-parameter randomisation test: re-initialise the
                         layers from the top (output) down, cascading or one at a
                         time, and measure how far each map moves from the intact
                         model's map (Spearman rank correlation, their Fig. 2)
    random_logit_check   the map of the predicted class against the map of a random
                         other class of the same image

A map that survives randomisation (correlation near 1 after the weights are
gone) shows the input, not the model. Everything here works on a copy of the
model: the user's model is never modified.

Any explainer can be checked. By default the maps are `SignedSaliency(model,
attribution=...)`'s, so the package's integrated-gradients and SmoothGrad maps
are checked like the paper's gradient maps. `explainer=` takes a factory
`model -> explainer` instead: the randomisation runs on a copy that the user
never sees, so the check builds the explainer itself, once, on that copy (whose
weights are then re-drawn in place: the explainer must read the model's weights
when called, as calling the model does). The explainer is the evaluator's
protocol, a callable returning {map name: (B, H, W) map}, with the class to
explain: the checks call `explainer(images, targets=classes)`, `classes` an
int32 (B,) tensor, because the class must stay fixed while the model changes and
the random-logit check explains a class other than the predicted one. A factory
that builds a `SignedSaliency` (e.g. `lambda model: SignedSaliency(model,
rivals=3)`) gets the default's path: only the maps asked for, and the signed
variant below.

Decisions, all measured by `tests/test_sanity.py`:

- Which layers: every layer that holds trainable parameters once unfrozen (a
  frozen backbone counts): Dense, Conv, DepthwiseConv, Embedding,
  BatchNormalization, ... Layers of a nested Sequential/Functional model are
  listed one by one, named "nested_model/layer". A BatchNormalization's gamma
  and beta are re-initialised (to their initializers, 1 and 0); its moving
  mean and variance are statistics of the data, not parameters, and are kept.
  The order is the model's layer order, reversed (top first); for a subclassed
  model that stands for the order in which it assigns its layers.
- Re-initialisation: each trainable variable gets a fresh draw of its own
  layer's initializer (`kernel_initializer`, `bias_initializer`,
  `gamma_initializer`, ...) with a seed derived from `seed`, the layer's
  position from the top and the variable's position, so a run is
  deterministic under `seed` and layer i gets the same new weights at every
  step and in both modes. Constant initializers (zeros for biases) give their
  constant, as a freshly built layer has. A variable with no initializer
  found gets GlorotUniform (rank >= 2) or zeros (vectors), the Keras defaults.
- Explained class: fixed to the intact model's prediction (or `targets`) for
  every randomised model, so that a map changes because the model changed,
  not because another class is explained.
- Maps compared: the maps as the explainer returns them (`SignedSaliency`'s
  are normalised; min-max does not change ranks). These five maps are already
  non-negative (the "absolute value" variant of Adebayo et al.); their
  "no absolute value" variant is the signed attribution (the signed gradient
  by default): at each pixel, the target attribution of the channel whose |a|
  is largest, with its sign (its absolute value is the raw standard map). Its
  correlations are `spearman_signed`: a sign flip that |a| hides shows there,
  as it shows in the positive and negative maps. A user's explainer has no
  signed variant the package knows: `spearman_signed` is None.
- Constant maps: the rank correlation with a constant map is undefined (no
  ranking). Such an image counts as 0.0 in the mean (a map that collapsed
  keeps none of the intact ranking) and is counted in `undefined`; no NaN is
  ever returned.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tf_signsal import _checks, _data, _model
from tf_signsal.attributions import Attribution
from tf_signsal.evaluation.sanity_result import INTACT, RandomizationResult, rank_correlations
from tf_signsal.maps import METHODS, SignedSaliency

__all__ = [
    "INTACT",
    "ExplainerFactory",
    "RandomizationResult",
    "random_logit_check",
    "randomization_check",
    "rank_correlations",
]

#: What `explainer=` of the checks takes: a factory model -> explainer of that model,
#: where an explainer is called as `explainer(images, targets=classes)` and returns
#: {map name: (B, H, W) map} (the evaluator's `Explainer`, told the class to explain).
ExplainerFactory = Callable[[Any], Callable[..., Mapping[str, Any]]]


# ----------------------------------------------------------------------------- the model copy


def _copy_model(model: Any) -> Any:
    """A copy of `model` with its own variables holding the same values."""
    try:
        copy = keras.models.clone_model(model)
    except (NotImplementedError, TypeError, ValueError) as error:
        raise ValueError(
            "`model` must be a model that Keras can copy (Sequential, Functional, or a "
            "subclassed model with get_config/from_config): the randomisation runs on a copy, "
            f"never on your model; keras.models.clone_model failed with: {error}"
        ) from None
    copy.set_weights(model.get_weights())
    # Frozen layers are randomised too (their parameters are still the model's):
    # unfreezing the copy marks them; the maps use inference mode either way.
    _unfreeze(copy)
    return copy


def _unfreeze(model: Any) -> None:
    # Layer by layer: setting `trainable` on a Functional model does not reach the
    # layers of a nested model that was frozen on its own (Keras 3.15).
    model.trainable = True
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            _unfreeze(layer)
        else:
            layer.trainable = True


def _weighted_layers(model: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(name, layer) of every layer with trainable parameters, bottom first; nested
    models are opened."""
    found: list[tuple[str, Any]] = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found.extend(_weighted_layers(layer, f"{prefix}{layer.name}/"))
        elif layer.trainable_weights:
            found.append((f"{prefix}{layer.name}", layer))
    unique, seen = [], set()
    for name, layer in found:  # a layer used twice is one layer
        if id(layer) not in seen:
            seen.add(id(layer))
            unique.append((name, layer))
    return unique


def _derived_seed(seed: int, layer_index: int, variable_index: int) -> int:
    state = np.random.SeedSequence([seed, layer_index, variable_index]).generate_state(1)
    return int(state[0] % (2**31 - 1))


def _initializer_of(layer: Any, variable: Any) -> Any:
    """The initializer `layer` (or one of its sublayers) declares for `variable`, or None."""
    flatten = getattr(layer, "_flatten_layers", None)
    owners = list(flatten(include_self=True, recursive=True)) if flatten else [layer]
    name = variable.name.split("/")[-1].split(":")[0]
    attributes = (f"{name}_initializer", f"{name.removesuffix('_kernel')}_initializer")
    for owner in owners:
        if getattr(owner, name, None) is variable:
            for attribute in attributes:
                if getattr(owner, attribute, None) is not None:
                    return getattr(owner, attribute)
    for attribute in attributes:  # no owner found by identity (e.g. a property)
        if getattr(layer, attribute, None) is not None:
            return getattr(layer, attribute)
    return None


def _fresh_values(layer: Any, layer_index: int, seed: int) -> list[tuple[Any, Any]]:
    """(variable, new value) for each trainable variable of `layer`, seeded."""
    fresh = []
    for variable_index, variable in enumerate(layer.trainable_weights):
        derived = _derived_seed(seed, layer_index, variable_index)
        declared = _initializer_of(layer, variable)
        initializer = None
        if declared is not None:
            try:
                initializer = keras.initializers.get(declared)
                config = initializer.get_config()
                if "seed" in config:
                    initializer = type(initializer).from_config({**config, "seed": derived})
            except (TypeError, ValueError, NotImplementedError):
                initializer = None
        if initializer is None:
            initializer = (
                keras.initializers.GlorotUniform(seed=derived)
                if len(variable.shape) >= 2
                else keras.initializers.Zeros()
            )
        value = initializer(shape=tuple(variable.shape), dtype=variable.dtype)
        fresh.append((variable, value))
    return fresh


# ----------------------------------------------------------------------------- the explainer


def _takes_targets(explainer: Any) -> bool:
    try:
        parameters = inspect.signature(explainer).parameters.values()
    except (TypeError, ValueError):  # no signature to read: let the call tell
        return True
    return any(p.name == "targets" or p.kind is p.VAR_KEYWORD for p in parameters)


class _Explainer:
    """The explainer of one model as the checks call it: a `SignedSaliency` through its
    own path (only the maps asked for and, with `signed`, the signed attribution beside
    them), any other through the protocol `explainer(images, targets=...)`, its maps
    checked."""

    def __init__(
        self, model: Any, explainer: ExplainerFactory | None, attribution: Any, signed: bool,
        value_range: tuple[float, float] = (0.0, 1.0),
    ):
        if explainer is None:
            with warnings.catch_warnings():  # the checks warn at the user's call
                warnings.simplefilter("ignore", _model.ValueRangeWarning)
                built = SignedSaliency(model, attribution=attribution, value_range=value_range)
        elif not callable(explainer):
            raise TypeError(
                "`explainer` must be None or a factory model -> explainer, e.g. "
                f"`lambda model: SignedSaliency(model, rivals=3)`, received "
                f"{type(explainer).__name__}"
            )
        elif not (isinstance(attribution, str) and attribution == "gradient"):
            raise ValueError(
                "`attribution` configures the default explainer: with `explainer` given, "
                "build it with the attribution instead, e.g. "
                "explainer=lambda model: SignedSaliency(model, attribution=...)"
            )
        elif value_range != (0.0, 1.0):
            raise ValueError(
                "`value_range` configures the default explainer: with `explainer` given, "
                "build it with the value range instead, e.g. "
                "explainer=lambda model: SignedSaliency(model, value_range=...)"
            )
        else:
            built = explainer(model)
        self.own = isinstance(built, SignedSaliency)
        if self.own and built.model is not model:
            # It would explain the intact model at every step: correlations of 1, silently.
            raise ValueError(
                "`explainer` must build its explainer on the model it is given (the "
                "randomised copy), it built a SignedSaliency of another model"
            )
        if not self.own and not (callable(built) and _takes_targets(built)):
            raise TypeError(
                "`explainer` must build a callable explainer(images, targets) -> {map name: "
                "(B, H, W) map} (the checks choose the class it explains), it "
                f"built {type(built).__name__}"
                + (" without a `targets` argument" if callable(built) else "")
            )
        self.explainer = built
        # A user's explainer still needs the model's classes: a SignedSaliency gives them
        # with the package's checks of the model, quietly (its warnings speak of its maps).
        with warnings.catch_warnings():
            if not self.own:
                warnings.simplefilter("ignore")
            self.saliency = built if self.own else SignedSaliency(model)
        self.signed = _signed_function(built) if self.own and signed else None

    def num_classes(self, images: tf.Tensor) -> int:
        with warnings.catch_warnings():
            if not self.own:
                warnings.simplefilter("ignore")
            return self.saliency.num_classes(images)

    def first(
        self, images: tf.Tensor, targets: Any, methods: Sequence[str] | None
    ) -> tuple[tuple[str, ...], tf.Tensor, dict[Any, np.ndarray]]:
        """(methods, explained classes, maps) of the intact model, explaining `targets`
        or the predicted classes; `methods` None is every map (the five of a
        `SignedSaliency`). The signed attribution is the map under the key None."""
        if self.own:
            methods = _checks.check_choices(
                "methods", METHODS if methods is None else methods, METHODS
            )
            maps = self.explainer.explain(images, targets, methods)
            explained = maps.targets
        else:
            num_classes = self.num_classes(images)
            if targets is None:
                explained = tf.argmax(self.saliency.logits(images), axis=1, output_type=tf.int32)
            else:
                explained = tf.constant(
                    _checks.class_indices("targets", targets, images.shape[0], num_classes)
                )
            maps = _checks.explainer_maps(self.explainer(images, targets=explained), None, images)
            names = tuple(maps)
            methods = _checks.check_choices("methods", names if methods is None else methods, names)
        return methods, explained, self._arrays(maps, images, explained, methods)

    def __call__(
        self, images: tf.Tensor, targets: tf.Tensor, methods: tuple[str, ...]
    ) -> dict[Any, np.ndarray]:
        """The maps `methods` explaining `targets` (and the signed attribution, key None)."""
        if self.own:
            maps = self.explainer.explain_step(images, targets, methods)
        else:
            maps = _checks.explainer_maps(
                self.explainer(images, targets=targets), methods, images
            )
        return self._arrays(maps, images, targets, methods)

    def _arrays(self, maps, images, targets, methods) -> dict[Any, np.ndarray]:
        arrays = {m: np.asarray(maps[m]) for m in methods}
        if self.signed is not None:
            arrays[None] = self.signed(images, targets).numpy()
        return arrays


def _signed_function(saliency: SignedSaliency) -> Any:
    """images, targets -> the signed attribution map (B, H, W): at each pixel the target
    class's attribution (the gradient by default) in the channel of the largest |a|, with
    its sign. Its absolute value is the raw standard map."""
    attribution = saliency.attribution
    count = attribution.num_points

    @tf.function(reduce_retracing=True)
    def signed(images, targets):
        points = attribution.points(images)  # the images themselves for the gradient
        with tf.GradientTape() as tape:
            tape.watch(points)
            logits = saliency.logits(points)
            picked = tf.gather(logits, tf.tile(targets, [count]), axis=1, batch_dims=1)
        gradient = tape.gradient(picked, points)
        if count > 1:  # the mean over the points (sample-major), as the maps take it
            shape = tf.concat([[count, -1], tf.shape(images)[1:]], axis=0)
            gradient = tf.reduce_mean(tf.reshape(gradient, shape), axis=0)
        scale = attribution.scale(images)
        if scale is not None:
            gradient = gradient * scale
        channel = tf.argmax(tf.abs(gradient), axis=-1, output_type=tf.int32)
        return tf.gather(gradient, channel, axis=-1, batch_dims=3)

    return signed


# ----------------------------------------------------------------------------- the checks


def _checked_images(model: Any, images: Any, steps: int | None) -> tf.Tensor:
    """All of `images` as one checked batch, read by the package's one data path."""
    if not isinstance(model, keras.Model):
        raise TypeError(
            "`model` must be a Keras model (Sequential, Functional or subclassed), "
            f"received {type(model).__name__}"
        )
    # stacklevel 3: a warning about a dataset's length points at the user's call.
    source = _data.batches(images, steps=steps, model=model, what="check", stacklevel=3)
    return source.stack().images


def randomization_check(
    model: Any,
    images: Any,
    methods: Sequence[str] | None = None,
    cascade: bool = True,
    seed: int = 0,
    targets: Any = None,
    *,
    attribution: str | Attribution = "gradient",
    explainer: ExplainerFactory | None = None,
    steps: int | None = None,
    value_range: tuple[float, float] = (0.0, 1.0),
) -> RandomizationResult:
    """The model-parameter randomisation test of Adebayo et al. (their Fig. 2).

    The layers with trainable parameters are re-initialised from the top
    (output) down, on a copy of `model`: cascading (step i re-initialises
    layers 1..i) or independently (step i re-initialises layer i only). At
    each step, each image's maps are compared with the intact model's maps by
    Spearman rank correlation, averaged over images. The explained class stays
    the intact model's prediction (or `targets`) at every step. See the module
    docstring for which layers, the re-initialisation rule, the signed variant,
    constant maps and the explainer protocol.

    Args:
        model: a Keras classifier (see `SignedSaliency`) that Keras can clone.
            It is never modified.
        images: float images (B, H, W, ch), B >= 1, in any form `explain` reads
            (an array, a tuple (images, labels), a `tf.data.Dataset`: all of it is
            checked at once; labels are not explained, pass `targets`).
        methods: the maps to compare: None for every map of the explainer (the
            five of `METHODS` by default), or some of its map names.
        cascade: True for cascading randomisation, False for one layer at a time.
        seed: an integer in [0, 2**32); the same seed gives the same result.
        targets: None to explain the intact model's predicted classes, or one
            class index per image.
        attribution: what the default explainer's maps are of: "gradient" (the
            paper), "gradient_x_input", "integrated_gradients", "smoothgrad" or a
            configured `tf_signsal.attributions` object; only with `explainer=None`.
        explainer: None for `SignedSaliency(model, attribution=attribution)`, or
            a factory `model -> explainer`, called once with the copy of `model`
            that is randomised; the explainer is called as
            `explainer(images, targets=classes)` and returns {map name: (B, H, W)
            map} (see the module docstring).
        steps: at most this many batches of a dataset `images` (Keras's
            `steps=`), the way to bound a dataset that repeats.
        value_range: (low, high) of the model's input, for the default explainer's
            attribution (see `SignedSaliency`); only with `explainer=None`.

    Returns:
        A `RandomizationResult`.

    Raises:
        ValueError: among the argument checks, a model the check cannot copy and
            re-initialise, refused before any work: one loaded from a SavedModel
            (its weights are its graph's) or with a `Lambda` layer.

    Example:
        >>> result = randomization_check(model, images[:32])
        >>> print(result.summary())
        >>> result.plot().figure.savefig("randomization.png")
        >>> ig = randomization_check(model, images[:32], attribution="integrated_gradients")
    """
    refusal = _model.copy_refusal(model)
    if refusal is not None:
        raise ValueError(refusal)
    value_range = _checks.value_range(value_range)
    _model.warn_value_range(model, value_range, stacklevel=2)
    images = _checked_images(model, images, steps)
    seed = _checks.seed("seed", seed)
    cascade = _checks.boolean("cascade", cascade)

    copy = _copy_model(model)
    layers = _weighted_layers(copy)
    if not layers:
        raise ValueError(
            "`model` has no layer with trainable parameters: there is nothing to randomise"
        )
    layers = layers[::-1]  # top first
    explain = _Explainer(copy, explainer, attribution, signed=True, value_range=value_range)
    methods, explained, intact = explain.first(images, targets, methods)

    # The signed attribution (key None) is compared as one more map.
    steps = len(layers) + 1
    spearman = {m: np.ones(steps, np.float64) for m in intact}
    undefined = {m: np.zeros(steps, np.int64) for m in intact}
    for m, values in intact.items():
        undefined[m][0] = np.sum(~rank_correlations(values, values)[1])

    saved = None  # (variable, intact value) of the layer randomised alone at the last step
    for step, (_, layer) in enumerate(layers, start=1):
        if not cascade and saved is not None:
            for variable, value in saved:
                variable.assign(value)
        saved = [(v, tf.identity(v)) for v in layer.trainable_weights]
        # Layer `step`'s draw depends on (seed, step) only: both modes share it.
        for variable, value in _fresh_values(layer, step, seed):
            variable.assign(value)
        for m, values in explain(images, explained, methods).items():
            correlations, defined = rank_correlations(values, intact[m])
            spearman[m][step] = np.mean(correlations)  # B >= 1: never an empty mean
            undefined[m][step] = np.sum(~defined)

    return RandomizationResult(
        layers=tuple(name for name, _ in layers),
        spearman={m: spearman[m] for m in methods},
        spearman_signed=spearman.get(None),
        undefined={m: undefined[m] for m in methods},
        undefined_signed=undefined.get(None),
        targets=explained.numpy().astype(np.int64),
        cascade=bool(cascade),
        seed=seed,
        n_images=int(images.shape[0]),
    )


def random_logit_check(
    model: Any,
    images: Any,
    methods: Sequence[str] | None = None,
    seed: int = 0,
    *,
    attribution: str | Attribution = "gradient",
    explainer: ExplainerFactory | None = None,
    steps: int | None = None,
    value_range: tuple[float, float] = (0.0, 1.0),
) -> dict[str, float]:
    """The random-logit check: does a map depend on the class it explains?

    For each image, the map of the predicted class is compared with the map of
    another class drawn at random (uniformly among the C - 1 others, seeded:
    `d = numpy.random.default_rng(seed).integers(0, C - 1, B)`, the class is
    `d + (d >= predicted)`). A map that barely changes explains the image,
    not the class.

    Args:
        model: a Keras classifier with at least two outputs; not modified.
        images: float images (B, H, W, ch), B >= 1, in any form `explain` reads
            (see `randomization_check`).
        methods: the maps to compare: None for every map of the explainer (the
            five of `METHODS` by default), or some of its map names.
        seed: an integer in [0, 2**32) choosing the other classes.
        attribution: what the default explainer's maps are of (see
            `randomization_check`); only with `explainer=None`.
        explainer: None for `SignedSaliency(model, attribution=attribution)`, or
            a factory `model -> explainer`, called once with `model`; the
            explainer is called as `explainer(images, targets=classes)` (see the
            module docstring).
        steps: at most this many batches of a dataset `images` (Keras's `steps=`).
        value_range: (low, high) of the model's input, for the default explainer's
            attribution (see `SignedSaliency`); only with `explainer=None`.

    Returns:
        map name -> the mean over images of the Spearman rank correlation of the
        two maps, in [-1, 1]; an image with a constant map counts as 0.0.

    Example:
        >>> random_logit_check(model, images)["positive"]
        >>> random_logit_check(model, images, attribution="smoothgrad")["positive"]
    """
    value_range = _checks.value_range(value_range)
    _model.warn_value_range(model, value_range, stacklevel=2)
    images = _checked_images(model, images, steps)
    seed = _checks.seed("seed", seed)
    explain = _Explainer(model, explainer, attribution, signed=False, value_range=value_range)
    num_classes = explain.num_classes(images)
    _checks.several_classes(
        num_classes,
        "the random-logit check compares the predicted class with another class, and there "
        "is none",
    )
    methods, predicted, predicted_maps = explain.first(images, None, methods)
    draw = np.random.default_rng(seed).integers(0, num_classes - 1, images.shape[0])
    others = (draw + (draw >= predicted.numpy())).astype(np.int32)
    other = explain(images, tf.constant(others), methods)
    # B >= 1: never an empty mean.
    return {m: float(np.mean(rank_correlations(other[m], predicted_maps[m])[0])) for m in methods}
