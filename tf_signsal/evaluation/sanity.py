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
- Maps compared: the maps as `SignedSaliency.explain` returns them
  (normalised; min-max does not change ranks). These five maps are already
  non-negative (the "absolute value" variant of Adebayo et al.); their
  "no absolute value" variant is the signed gradient: at each pixel, the
  target gradient of the channel whose |g| is largest, with its sign (its
  absolute value is the raw standard map). Its correlations are
  `spearman_signed`: a sign flip that |g| hides shows there, as it shows in
  the positive and negative maps.
- Constant maps: the rank correlation with a constant map is undefined (no
  ranking). Such an image counts as 0.0 in the mean (a map that collapsed
  keeps none of the intact ranking) and is counted in `undefined`; no NaN is
  ever returned.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tf_signsal import _checks
from tf_signsal._io import read_json, write_json
from tf_signsal.maps import METHODS, SignedSaliency

#: The first step of every curve: the intact model.
INTACT = "intact"


# ----------------------------------------------------------------------------- ranks


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of a vector, ties sharing their average rank (scipy's "average")."""
    sorter = np.argsort(values, kind="mergesort")
    inverse = np.empty_like(sorter)
    inverse[sorter] = np.arange(values.size)
    ordered = values[sorter]
    first = np.r_[True, ordered[1:] != ordered[:-1]]
    dense = first.cumsum()[inverse]
    starts = np.r_[np.nonzero(first)[0], first.size]
    return 0.5 * (starts[dense] + starts[dense - 1] + 1)


def rank_correlations(maps: Any, reference: Any) -> tuple[np.ndarray, np.ndarray]:
    """Spearman rank correlation of each map with its reference map.

    Args:
        maps, reference: arrays or tensors of one shape (B, ...): B maps each.

    Returns:
        (correlations, defined): float64 (B,) and bool (B,). An image whose map
        or reference map is constant has no ranking: its correlation is
        undefined, returned as 0.0 with `defined` False. Ties take their
        average rank, as `scipy.stats.spearmanr`.
    """
    a = np.asarray(maps, np.float64)
    b = np.asarray(reference, np.float64)
    if a.shape != b.shape or a.ndim < 1:
        raise ValueError(
            f"`maps` and `reference` must have one shape (B, ...), received {a.shape} "
            f"and {b.shape}"
        )
    a = a.reshape(a.shape[0], -1)
    b = b.reshape(b.shape[0], -1)
    correlations = np.zeros(a.shape[0], np.float64)
    defined = np.zeros(a.shape[0], bool)
    for index, (x, y) in enumerate(zip(a, b)):
        if x.size < 2 or np.all(x == x[0]) or np.all(y == y[0]):
            continue
        rx = _average_ranks(x)
        ry = _average_ranks(y)
        rx -= rx.mean()
        ry -= ry.mean()
        value = np.dot(rx, ry) / np.sqrt(np.dot(rx, rx) * np.dot(ry, ry))
        correlations[index] = np.clip(value, -1.0, 1.0)
        defined[index] = True
    return correlations, defined


# ----------------------------------------------------------------------------- the result


@dataclass(eq=False)
class RandomizationResult:
    """Rank correlations of randomised models' maps with the intact model's maps.

    Step 0 is the intact model; step i re-initialises layer i from the top
    (`cascade=False`) or layers 1..i (`cascade=True`).

    Attributes:
        layers: the randomised layers, top (output) first.
        spearman: method -> float64 (len(layers) + 1,): the mean over images of
            the Spearman rank correlation of each image's map (H x W values)
            with the intact model's map of the same image; index 0 is 1.0.
        spearman_signed: float64 (len(layers) + 1,), the same for the signed
            gradient (the "no absolute value" variant; see the module).
        undefined: method -> int64 (len(layers) + 1,): how many images of each
            step had a constant map (theirs or the intact one), counted as 0.0.
        undefined_signed: the same for the signed gradient.
        targets: int64 (B,), the explained class of each image.
        cascade: whether the randomisation cascaded.
        seed: the seed of the re-initialisations.
        n_images: number of images.
    """

    layers: tuple[str, ...]
    spearman: dict[str, np.ndarray]
    spearman_signed: np.ndarray
    undefined: dict[str, np.ndarray]
    undefined_signed: np.ndarray
    targets: np.ndarray
    cascade: bool
    seed: int
    n_images: int

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(self.spearman)

    @property
    def steps(self) -> tuple[str, ...]:
        """The x axis: "intact", then the layer names, top first."""
        return (INTACT, *self.layers)

    def summary(self) -> str:
        """A text table: one row per step, one column per method (and the signed gradient)."""
        columns = (*self.methods, "signed")
        values = {**self.spearman, "signed": self.spearman_signed}
        width = max(len("step"), *(len(s) for s in self.steps))
        kind = "cascading from the top" if self.cascade else "one layer at a time"
        lines = [
            f"Rank correlation with the intact maps over {self.n_images} images "
            f"(randomised {kind}, seed {self.seed})",
            f"{'step':<{width}}  " + " ".join(f"{c:>9}" for c in columns),
        ]
        for index, step in enumerate(self.steps):
            row = " ".join(f"{values[c][index]:>9.3f}" for c in columns)
            lines.append(f"{step:<{width}}  {row}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (no NaN: undefined correlations are 0.0 and counted)."""
        return {
            "layers": list(self.layers),
            "cascade": bool(self.cascade),
            "seed": int(self.seed),
            "n_images": int(self.n_images),
            "targets": np.asarray(self.targets).astype(int).tolist(),
            "spearman": {m: np.asarray(v, np.float64).tolist() for m, v in self.spearman.items()},
            "spearman_signed": np.asarray(self.spearman_signed, np.float64).tolist(),
            "undefined": {m: np.asarray(v).astype(int).tolist() for m, v in self.undefined.items()},
            "undefined_signed": np.asarray(self.undefined_signed).astype(int).tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RandomizationResult:
        """Inverse of `to_dict`; also reads the record of `tf-signsal sanity`'s
        sanity.json (under "randomization")."""
        if isinstance(data, dict) and "layers" not in data and "randomization" in data:
            data = data["randomization"]
        required = ("layers", "spearman", "spearman_signed", "undefined", "undefined_signed",
                    "targets", "cascade", "seed", "n_images")
        missing = [key for key in required if not isinstance(data, dict) or key not in data]
        if missing:
            raise ValueError(
                f"not a RandomizationResult record (as `to_dict` writes): missing {missing}"
            )
        try:
            result = cls(
                layers=tuple(str(name) for name in data["layers"]),
                spearman={m: np.asarray(v, np.float64) for m, v in data["spearman"].items()},
                spearman_signed=np.asarray(data["spearman_signed"], np.float64),
                undefined={m: np.asarray(v, np.int64) for m, v in data["undefined"].items()},
                undefined_signed=np.asarray(data["undefined_signed"], np.int64),
                targets=np.asarray(data["targets"], np.int64),
                cascade=bool(data["cascade"]),
                seed=int(data["seed"]),
                n_images=int(data["n_images"]),
            )
        except (AttributeError, TypeError, ValueError) as error:
            raise ValueError(f"not a RandomizationResult record: {error}") from None
        steps = len(result.layers) + 1
        series = {**result.spearman, **{f"undefined {m}": v for m, v in result.undefined.items()},
                  "signed": result.spearman_signed, "undefined signed": result.undefined_signed}
        wrong = sorted(name for name, values in series.items() if values.shape != (steps,))
        if wrong or set(result.spearman) != set(result.undefined):
            raise ValueError(
                f"not a RandomizationResult record: {wrong or 'undefined'} must hold one value "
                f"per step ({steps}: intact and {len(result.layers)} layers) for each method"
            )
        if result.targets.shape != (result.n_images,):
            raise ValueError(
                f"not a RandomizationResult record: {result.targets.shape[0]} targets for "
                f"{result.n_images} images"
            )
        return result

    def save_json(self, path: str | os.PathLike) -> None:
        """Write `to_dict()` as JSON, atomically (a temporary file, then a rename)."""
        write_json(path, self.to_dict())

    @classmethod
    def load_json(cls, path: str | os.PathLike) -> RandomizationResult:
        """Read a file written by `save_json`."""
        return cls.from_dict(read_json(path))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RandomizationResult) and self.to_dict() == other.to_dict()

    def plot(self, ax: Any = None, title: str | None = None) -> Any:
        """Correlation against randomisation step, as Adebayo et al.'s Fig. 2:
        `tf_signsal.plotting.plot_randomization`.

        Example:
            >>> ax = randomization_check(model, images).plot(title="cascading")
            >>> ax.figure.savefig("randomization.png")
        """
        from tf_signsal import plotting  # matplotlib only when a plot is asked for

        return plotting.plot_randomization(self, ax=ax, title=title)



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


# ----------------------------------------------------------------------------- the checks


def _checked_images(model: Any, images: Any) -> tf.Tensor:
    if not isinstance(model, keras.Model):
        raise TypeError(
            "`model` must be a Keras model (Sequential, Functional or subclassed), "
            f"received {type(model).__name__}"
        )
    images = _checks.as_image_batch(images)
    _checks.check_model_input(model, images)
    if images.shape[0] == 0:
        raise ValueError("`images` must hold at least one image, received a batch of 0")
    return images


def _signed_function(saliency: SignedSaliency) -> Any:
    """images, targets -> the signed gradient map (B, H, W): at each pixel the target
    gradient of the channel with the largest |g|, with its sign."""

    @tf.function(reduce_retracing=True)
    def signed(images, targets):
        with tf.GradientTape() as tape:
            tape.watch(images)
            logits = saliency.logits(images)
            picked = tf.gather(logits, targets, axis=1, batch_dims=1)
        gradient = tape.gradient(picked, images)
        channel = tf.argmax(tf.abs(gradient), axis=-1, output_type=tf.int32)
        return tf.gather(gradient, channel, axis=-1, batch_dims=3)

    return signed


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if values.size else 0.0


def randomization_check(
    model: Any,
    images: Any,
    methods: Sequence[str] = METHODS,
    cascade: bool = True,
    seed: int = 0,
    targets: Any = None,
) -> RandomizationResult:
    """The model-parameter randomisation test of Adebayo et al. (their Fig. 2).

    The layers with trainable parameters are re-initialised from the top
    (output) down, on a copy of `model`: cascading (step i re-initialises
    layers 1..i) or independently (step i re-initialises layer i only). At
    each step, each image's maps are compared with the intact model's maps by
    Spearman rank correlation, averaged over images. The explained class stays
    the intact model's prediction (or `targets`) at every step. See the module
    docstring for which layers, the re-initialisation rule, the signed variant
    and constant maps.

    Args:
        model: a Keras classifier (see `SignedSaliency`) that Keras can clone.
            It is never modified.
        images: float images (B, H, W, ch), B >= 1.
        methods: any of `METHODS`.
        cascade: True for cascading randomisation, False for one layer at a time.
        seed: an integer in [0, 2**32); the same seed gives the same result.
        targets: None to explain the intact model's predicted classes, or one
            class index per image.

    Returns:
        A `RandomizationResult`.

    Example:
        >>> result = randomization_check(model, images[:32])
        >>> print(result.summary())
        >>> result.plot().figure.savefig("randomization.png")
    """
    images = _checked_images(model, images)
    methods = _checks.check_choices("methods", methods, METHODS)
    seed = _checks.integer("seed", seed, minimum=0, maximum=2**32 - 1)
    cascade = _checks.boolean("cascade", cascade)

    copy = _copy_model(model)
    layers = _weighted_layers(copy)
    if not layers:
        raise ValueError(
            "`model` has no layer with trainable parameters: there is nothing to randomise"
        )
    layers = layers[::-1]  # top first
    saliency = SignedSaliency(copy)
    signed = _signed_function(saliency)

    intact = saliency.explain_checked(images, targets, methods)
    explained = intact.targets
    intact_maps = {m: intact.maps[m].numpy() for m in methods}
    intact_signed = signed(images, explained).numpy()

    steps = len(layers) + 1
    spearman = {m: np.ones(steps, np.float64) for m in methods}
    spearman_signed = np.ones(steps, np.float64)
    undefined = {m: np.zeros(steps, np.int64) for m in methods}
    undefined_signed = np.zeros(steps, np.int64)
    for m in methods:
        undefined[m][0] = np.sum(~rank_correlations(intact_maps[m], intact_maps[m])[1])
    undefined_signed[0] = np.sum(~rank_correlations(intact_signed, intact_signed)[1])

    saved = None  # (variable, intact value) of the layer randomised alone at the last step
    for step, (_, layer) in enumerate(layers, start=1):
        if not cascade and saved is not None:
            for variable, value in saved:
                variable.assign(value)
        saved = [(v, tf.identity(v)) for v in layer.trainable_weights]
        # Layer `step`'s draw depends on (seed, step) only: both modes share it.
        for variable, value in _fresh_values(layer, step, seed):
            variable.assign(value)
        maps = saliency.explain_batch(images, explained, methods).maps
        for m in methods:
            values, defined = rank_correlations(maps[m], intact_maps[m])
            spearman[m][step] = _mean(values)
            undefined[m][step] = np.sum(~defined)
        values, defined = rank_correlations(signed(images, explained), intact_signed)
        spearman_signed[step] = _mean(values)
        undefined_signed[step] = np.sum(~defined)

    return RandomizationResult(
        layers=tuple(name for name, _ in layers),
        spearman=spearman,
        spearman_signed=spearman_signed,
        undefined=undefined,
        undefined_signed=undefined_signed,
        targets=explained.numpy().astype(np.int64),
        cascade=bool(cascade),
        seed=seed,
        n_images=int(images.shape[0]),
    )


def random_logit_check(
    model: Any, images: Any, methods: Sequence[str] = METHODS, seed: int = 0
) -> dict[str, float]:
    """The random-logit check: does a map depend on the class it explains?

    For each image, the map of the predicted class is compared with the map of
    another class drawn at random (uniformly among the C - 1 others, seeded:
    `d = numpy.random.default_rng(seed).integers(0, C - 1, B)`, the class is
    `d + (d >= predicted)`). A map that barely changes explains the image,
    not the class.

    Args:
        model: a Keras classifier with at least two outputs; not modified.
        images: float images (B, H, W, ch), B >= 1.
        methods: any of `METHODS`.
        seed: an integer in [0, 2**32) choosing the other classes.

    Returns:
        method -> the mean over images of the Spearman rank correlation of the
        two maps, in [-1, 1]; an image with a constant map counts as 0.0.

    Example:
        >>> random_logit_check(model, images)["positive"]
    """
    images = _checked_images(model, images)
    methods = _checks.check_choices("methods", methods, METHODS)
    seed = _checks.integer("seed", seed, minimum=0, maximum=2**32 - 1)
    saliency = SignedSaliency(model)
    num_classes = saliency.num_classes(images)
    _checks.several_classes(
        num_classes,
        "the random-logit check compares the predicted class with another class, and there "
        "is none",
    )
    predicted = saliency.explain_checked(images, None, methods)
    draw = np.random.default_rng(seed).integers(0, num_classes - 1, images.shape[0])
    predicted_classes = predicted.targets.numpy()
    others = (draw + (draw >= predicted_classes)).astype(np.int32)
    other = saliency.explain_batch(images, tf.constant(others), methods)
    return {
        m: _mean(rank_correlations(other.maps[m], predicted.maps[m])[0]) for m in methods
    }
