"""The precision the model's passes compute in: `SignedSaliency(model, precision=...)`.

"float32" runs the user's model as it is. "bfloat16" runs a copy of it whose layers compute
in bfloat16 with float32 variables (Keras's "mixed_bfloat16" dtype policy), the weights
copied from the user's model, which is left untouched (its object, dtype policies and
variables). The copy takes the float32 images and casts them at its first layer, so the
input gradient comes back float32 through that cast; the engine casts the logits to
float32, so the folds over classes and the maps are float32 too: only the model's own
forward and backward passes round to bfloat16's 8-bit significand
(benchmarks/README.md, "Reduced precision", measures the agreement with float32's maps).

It pays where the hardware computes bfloat16 natively: CPUs with AVX512-BF16 or AMX, GPUs
with bfloat16 tensor cores. Elsewhere TensorFlow emulates it, slower than float32, and a
warning says so once per process.

Private API: `SignedSaliency`, the evaluator, callbacks and serving reach it through their
`precision` argument.
"""

from __future__ import annotations

import warnings
from typing import Any

import keras
import tensorflow as tf

from tf_signsal import _checks, _model
from tf_signsal.vocabulary import PRECISIONS

_POLICY = "mixed_bfloat16"
# The /proc/cpuinfo flags of a CPU whose instructions compute bfloat16 products.
_NATIVE_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
_warned_emulated = False


class EmulatedPrecisionWarning(UserWarning):
    """bfloat16 was asked for on a machine that has no native bfloat16 arithmetic."""


def check_precision(precision: Any) -> str:
    """`precision` if it is one of `PRECISIONS` (TypeError/ValueError naming it)."""
    return _checks.one_of("precision", precision, PRECISIONS)


def compute_model(model: Any, precision: str = "float32") -> Any:
    """The model the gradient engine runs for `precision`: `model` itself for "float32",
    a bfloat16 copy of it for "bfloat16" (see the module's docstring).

    Raises:
        ValueError: for "bfloat16", a model that cannot be copied layer by layer: a
            subclassed model, a SavedModel's graph (`tf_signsal.load_model` of a
            SavedModel, `keras.layers.TFSMLayer`), a `Lambda` layer, or a layer that
            cannot be re-created from its config with another dtype policy.
    """
    precision = check_precision(precision)
    if precision == "float32":
        return model
    refusal = _refusal(model)
    if refusal is not None:
        raise ValueError(_refused(model, refusal))
    try:
        copy = keras.models.clone_model(model, clone_function=_in_bfloat16, recursive=True)
        copy.set_weights(model.get_weights())
    except (NotImplementedError, TypeError, ValueError) as error:
        raise ValueError(_refused(model, f"copying it failed with: {error}")) from None
    warn_if_emulated()
    return copy


def copy_weights(model: Any, copy: Any) -> None:
    """Give `copy` (from `compute_model`) `model`'s current weights: a copy made before
    training does not follow the training (the callbacks refresh theirs each epoch)."""
    if copy is not model:
        copy.set_weights(model.get_weights())


def has_native_bfloat16() -> bool | None:
    """Whether this machine computes bfloat16 natively: a GPU, or a CPU whose
    /proc/cpuinfo flags include avx512_bf16 or amx_bf16; None when it cannot be told
    (no /proc/cpuinfo, e.g. macOS or Windows)."""
    if tf.config.list_physical_devices("GPU"):
        return True
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            for line in file:
                if line.startswith("flags"):
                    return bool(_NATIVE_FLAGS.intersection(line.split(":", 1)[1].split()))
    except OSError:
        return None
    return None


def warn_if_emulated() -> None:
    """An `EmulatedPrecisionWarning`, once per process, when bfloat16 will be emulated."""
    global _warned_emulated
    if _warned_emulated or has_native_bfloat16() is not False:
        return
    _warned_emulated = True
    warnings.warn(
        "tf_signsal: precision='bfloat16' on a machine without native bfloat16 arithmetic "
        "(no GPU, and the CPU has neither AVX512-BF16 nor AMX-BF16): TensorFlow emulates it, "
        "which is slower than float32, and the maps still round to bfloat16. Use the default "
        "precision='float32' here",
        EmulatedPrecisionWarning,
        stacklevel=4,
    )


def _in_bfloat16(layer: Any) -> Any:
    """A new layer like `layer` (from its config) that computes in bfloat16."""
    config = layer.get_config()
    config["dtype"] = _POLICY
    return layer.__class__.from_config(config)


def _is_graph_model(model: Any) -> bool:
    """A Sequential or Functional model (one Keras can copy layer by layer)."""
    return isinstance(model, keras.Sequential) or bool(
        hasattr(model, "operations") and getattr(model, "inputs", None)
    )


def _refusal(model: Any) -> str | None:
    """Why `model` cannot be copied in bfloat16, or None."""
    if not _is_graph_model(model):
        return (
            f"it is a subclassed model ({type(model).__name__}), whose layers Keras cannot "
            "re-create one by one with another dtype policy"
        )
    for path, layer in _model._layers(model):
        if isinstance(layer, (_model.SavedModelLayer, keras.layers.TFSMLayer)):
            return (
                f"it runs a SavedModel's graph (layer '{path}'), whose weights are variables "
                "of that graph, not Keras weights"
            )
        if isinstance(layer, keras.layers.Lambda):
            return (
                f"it has a Lambda layer ('{path}'), which Keras copies by re-creating its "
                "Python function, refused in safe mode"
            )
        if isinstance(layer, keras.Model) and not _is_graph_model(layer):
            return (
                f"it holds a subclassed model ('{path}', {type(layer).__name__}), whose "
                "layers Keras cannot re-create one by one with another dtype policy"
            )
    return None


def _refused(model: Any, why: str) -> str:
    return (
        f"`precision` 'bfloat16' computes on a copy of `model` whose layers run in bfloat16, "
        f"and this model ({type(model).__name__}) cannot be copied so: {why}. Pass the Keras "
        "Sequential or Functional model itself (e.g. the .keras file the SavedModel was "
        "exported from), or keep the default precision='float32'"
    )
