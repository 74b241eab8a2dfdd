"""What the package reads from a user's model without running it.

- `expected_range(model)`: the pixel range the model's first layers show it expects, where
  they show one: a `Rescaling` or `Normalization` layer the input meets before anything
  else changes its values (keras.applications' EfficientNet, EfficientNetV2, MobileNetV3
  and ConvNeXt include one and expect [0, 255]).
- `warn_value_range(model, value_range)`: a `ValueRangeWarning` when the `value_range`
  given contradicts it (the API: `SignedSaliency`, `AllegianceEvaluator`, the sanity
  checks); the command line refuses its default range instead (`tf_signsal.cli._common`).
- `copy_refusal(model)`: why the randomisation sanity check cannot copy and re-initialise
  the model (a SavedModel's graph, a `Lambda` layer), or None.

Private API, for the package's own modules.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import keras
import numpy as np

# The conventional pixel ranges an image model is fed. A Rescaling layer maps one of them
# to one of them (its purpose); the pair it maps exactly is how its input range is read.
_RANGES: tuple[tuple[float, float], ...] = ((0.0, 1.0), (-1.0, 1.0), (0.0, 255.0))
# How far (a share of the range's span) a computed end may be from a conventional one:
# Rescaling(1/128, offset=-1) (EfficientNetV2) takes [0, 256], read as [0, 255].
_TOLERANCE = 0.02
# Layers that move or drop pixels without changing the scale of their values.
_PASS_THROUGH = tuple(
    layer for layer in (
        getattr(keras.layers, name, None) for name in (
            "InputLayer", "Resizing", "CenterCrop", "Cropping1D", "Cropping2D", "Cropping3D",
            "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Reshape", "Permute",
            "Identity", "Dropout", "SpatialDropout2D", "GaussianNoise", "GaussianDropout",
            "RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom", "RandomCrop",
        )
    ) if layer is not None
)


class ValueRangeWarning(UserWarning):
    """The `value_range` given is not the pixel range the model's first layers expect."""


class SavedModelLayer(keras.layers.Layer):
    """Base of the layers that run a SavedModel's graph (`tf_signsal.load_model`): their
    variables live in the graph, not in Keras weights, so Keras can neither copy the
    layer nor re-initialise it."""


class ExpectedRange(NamedTuple):
    """The input range a model's first layers show.

    Attributes:
        value_range: (low, high) the model expects, e.g. (0.0, 255.0).
        layer: the path of the layer that shows it, e.g. "efficientnetb0/rescaling".
        reason: what that layer does, e.g. "Rescaling(scale=0.00392157, offset=0) maps
            [0, 255] to [0, 1]".
    """

    value_range: tuple[float, float]
    layer: str
    reason: str


def expected_range(model: Any) -> ExpectedRange | None:
    """The pixel range `model` expects, read from the first layer that changes its input's
    values, or None when that cannot be seen.

    The input is followed through a Sequential or Functional model (and into nested ones)
    past the layers that keep the scale of the values (`_PASS_THROUGH`: resizing,
    cropping, padding, reshaping, augmentation), to the first other layer. A `Rescaling`
    there shows the range it maps to [0, 1], [-1, 1] or [0, 255] (exactly one of these
    maps to one of these: Rescaling(1/255) takes [0, 255], Rescaling(1/127.5, offset=-1)
    takes [0, 255], Rescaling(2, offset=-1) takes [0, 1]); a `Normalization` shows the
    range whose values its mean and standard deviation describe (ConvNeXt's ImageNet
    statistics times 255: [0, 255]). Any other first layer (a convolution, a `Lambda`),
    a branching input or a subclassed model shows nothing: None.
    """
    found = _first_layer(model, "")
    if found is None:
        return None
    layer, path = found
    if isinstance(layer, keras.layers.Rescaling):
        return _rescaling_range(layer, path)
    if isinstance(layer, keras.layers.Normalization):
        return _normalization_range(layer, path)
    return None


def _first_layer(model: Any, prefix: str) -> tuple[Any, str] | None:
    """(the first layer that changes the values of `model`'s input, its path), or None."""
    if isinstance(model, keras.Sequential):
        chain = list(model.layers)
    elif hasattr(model, "operations") and getattr(model, "inputs", None):
        chain = _input_chain(model)
        if chain is None:
            return None
    else:  # a subclassed model: the order of its layers is not the order of its calls
        return None
    for layer in chain:
        if isinstance(layer, keras.Model):
            return _first_layer(layer, f"{prefix}{layer.name}/")
        if not isinstance(layer, _PASS_THROUGH):
            return layer, f"{prefix}{layer.name}"
    return None


def _input_chain(model: Any) -> list[Any] | None:
    """The operations a Functional model applies to its input, in order, while each is
    the only one that takes the tensor before it; None when the input branches."""
    if len(model.inputs) != 1:
        return None
    tensor, chain = model.inputs[0], []
    while True:
        consumers = [
            (operation, node)
            for operation in model.operations
            for node in operation._inbound_nodes  # the graph's calls, as gradients.py walks it
            if any(t is tensor for t in node.input_tensors)
        ]
        if not consumers:
            return chain
        if len(consumers) != 1 or len(consumers[0][1].output_tensors) != 1:
            return chain or None  # a branch: the layers before it still count
        operation, node = consumers[0]
        chain.append(operation)
        if not isinstance(operation, _PASS_THROUGH):
            return chain
        tensor = node.output_tensors[0]


def _conventional(low: float, high: float) -> tuple[float, float] | None:
    for range_ in _RANGES:
        span = range_[1] - range_[0]
        if abs(low - range_[0]) <= _TOLERANCE * span and abs(high - range_[1]) <= _TOLERANCE * span:
            return range_
    return None


def _numbers(value: Any) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(value), np.float64).ravel()


def _rescaling_range(layer: Any, path: str) -> ExpectedRange | None:
    scale, offset = np.broadcast_arrays(_numbers(layer.scale), _numbers(layer.offset))
    if not (scale > 0).all() or not np.isfinite(offset).all():
        return None
    found = []
    for low, high in _RANGES:  # what the layer maps to: every channel from one range
        taken = {_conventional(a, b) for a, b in zip((low - offset) / scale,
                                                     (high - offset) / scale)}
        if len(taken) == 1 and None not in taken:
            found.append((taken.pop(), (low, high)))
    if len(found) != 1:  # none, or ambiguous (the identity maps every range to itself)
        return None
    (taken, given), = found
    return ExpectedRange(
        taken, path,
        f"Rescaling(scale={_join(layer.scale)}, offset={_join(layer.offset)}) maps "
        f"{_text(taken)} to {_text(given)}",
    )


def _normalization_range(layer: Any, path: str) -> ExpectedRange | None:
    if getattr(layer, "invert", False) or getattr(layer, "mean", None) is None:
        return None
    mean, variance = _numbers(layer.mean), _numbers(layer.variance)
    std = np.sqrt(np.maximum(variance, 0.0))
    if np.allclose(mean, 0) and np.allclose(std, 1):  # not adapted: the identity
        return None
    best = None
    for low, high in _RANGES:  # image data: the mean inside, a std of 5% to 60% of the span
        span = high - low
        centred, spread = (mean - low) / span, std / span
        if ((centred >= 0) & (centred <= 1)).all() and ((spread >= .05) & (spread <= .6)).all():
            # The range in which the statistics look most like an image's (mean near the
            # middle, std near a quarter of the span).
            distance = float(np.abs(centred - .5).mean() + np.abs(spread - .25).mean())
            if best is None or distance < best[0]:
                best = (distance, (low, high))
    if best is None:
        return None
    return ExpectedRange(
        best[1], path,
        f"Normalization(mean={_join(mean)}, std={_join(std)}) standardises values in "
        f"{_text(best[1])}",
    )


def _join(values: Any) -> str:
    """A number, or a list of them, as a layer's argument reads."""
    numbers = [f"{v:.4g}" for v in _numbers(values)]
    return numbers[0] if len(numbers) == 1 else f"[{', '.join(numbers)}]"


def _text(range_: tuple[float, float]) -> str:
    return f"[{range_[0]:g}, {range_[1]:g}]"


def contradiction(model: Any, value_range: tuple[float, float]) -> ExpectedRange | None:
    """What `model`'s first layers expect when it is not `value_range`, else None."""
    expected = expected_range(model)
    if expected is None:
        return None
    span = expected.value_range[1] - expected.value_range[0]
    if all(abs(given - wanted) <= _TOLERANCE * span
           for given, wanted in zip(value_range, expected.value_range)):
        return None
    return expected


def warn_value_range(model: Any, value_range: tuple[float, float], stacklevel: int = 1) -> None:
    """A `ValueRangeWarning` when `model`'s first layers expect another range than
    `value_range`. `stacklevel`: as `warnings.warn`'s, counted from the caller."""
    expected = contradiction(model, value_range)
    if expected is None:
        return
    low, high = expected.value_range
    warnings.warn(
        f"tf_signsal: value_range ({value_range[0]:g}, {value_range[1]:g}) is not what "
        f"`model` expects: its layer '{expected.layer}' ({expected.reason}) takes inputs in "
        f"{_text(expected.value_range)}. Feed images in that range and pass "
        f"value_range=({low:g}, {high:g}) (on the command line: --value-range {low:g} "
        f"{high:g}); the black and white fills and baselines are the ends of value_range",
        ValueRangeWarning,
        stacklevel=stacklevel + 1,
    )


# ----------------------------------------------------------------------------- copies


def _layers(model: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(path, layer) of every layer of `model`, nested models opened."""
    found = []
    for layer in getattr(model, "layers", []):
        found.append((f"{prefix}{layer.name}", layer))
        if isinstance(layer, keras.Model):
            found.extend(_layers(layer, f"{prefix}{layer.name}/"))
    return found


def copy_refusal(model: Any) -> str | None:
    """Why the randomisation sanity check cannot run on `model` (it copies the model and
    re-initialises the copy's layers), or None."""
    for path, layer in _layers(model):
        if isinstance(layer, (SavedModelLayer, keras.layers.TFSMLayer)):
            return (
                f"the model runs a SavedModel's graph (layer '{path}'): its weights are "
                "variables of that graph, not Keras weights, so the randomisation check can "
                "neither copy the model nor re-initialise its layers. Run it on the Keras "
                "model the SavedModel was exported from (e.g. its .keras file); the "
                "random-logit check works on the SavedModel as it is"
            )
        if isinstance(layer, keras.layers.Lambda):
            return (
                f"the model has a Lambda layer ('{path}'): the randomisation check runs on a "
                "copy of the model, and Keras copies a Lambda by re-creating its Python "
                "function, which safe mode refuses (and weights the function captures would "
                "stay your model's). Replace the Lambda by Keras layers (e.g. Rescaling) or "
                "a layer subclass with get_config; the random-logit check works as it is"
            )
    return None
