"""tf_signsal: sign-aware saliency maps for Keras classifiers.

Implements "A matter of attitude: Focusing on positive and active gradients to
boost saliency maps" (Llorente, Boal, Sanchez-Ubeda, arXiv 2309.12913): the
standard, positive, negative, active and inactive maps, and the black/white
deletion allegiance benchmark.

Pipeline: images -> `SignedSaliency` (the gradient engine, five maps; the one
way into the gradients) -> any explainer's maps -> `AllegianceEvaluator`
(`tf_signsal.evaluation`: masks, fills, forward passes, counts) ->
`AllegianceResult` -> `tf_signsal.plotting` / JSON.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

from tf_signsal.vocabulary import ATTRIBUTIONS, FILLS, METHODS, ORDERS

__version__ = "0.1.0"

# The public names, by the module that defines them. They are imported on first use
# (PEP 562), so that `import tf_signsal` and the command line's --help do not pay for
# TensorFlow until a name that needs it is used.
_LAZY = {
    "tf_signsal.attributions": ("GradientXInput", "IntegratedGradients", "SmoothGrad"),
    "tf_signsal.evaluation": (
        "ALL_PAIRS", "PAPER_FRACTIONS", "PAPER_PAIRS", "RANDOM_PAIRS", "AllegianceEvaluator",
        "AllegianceResult", "RandomizationResult", "random_logit_check", "randomization_check",
        "road_impute",
    ),
    "tf_signsal.gradients": ("class_gradients",),
    "tf_signsal.loading": ("load_model",),
    "tf_signsal.maps": ("Explanation", "SignedSaliency"),
    "tf_signsal.maps_io": ("StoredMaps", "read_maps"),
}
_MODULE_OF = {name: module for module, names in _LAZY.items() for name in names}
_SUBMODULES = (
    "attributions", "callbacks", "data", "datasets", "demo", "evaluation", "gradients", "loading",
    "maps", "maps_io", "models", "plotting", "report", "serving", "training",
)

__all__ = [
    "ALL_PAIRS", "ATTRIBUTIONS", "FILLS", "METHODS", "ORDERS", "PAPER_FRACTIONS", "PAPER_PAIRS",
    "RANDOM_PAIRS", "AllegianceEvaluator", "AllegianceResult", "Explanation", "GradientXInput",
    "IntegratedGradients", "RandomizationResult", "SignedSaliency", "SmoothGrad", "StoredMaps",
    "__version__", "class_gradients", "load_model", "random_logit_check", "randomization_check",
    "read_maps", "road_impute",
]


def __getattr__(name: str) -> Any:
    if name == "GradientEngine":  # private now: still resolved, with a warning, for one release
        warnings.warn(
            "tf_signsal.GradientEngine is deprecated and will be removed: it needs checked "
            "input; use SignedSaliency (explain, explain_step) or tf_signsal.class_gradients",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.import_module("tf_signsal.gradients")._GradientEngine
    if name in _MODULE_OF:
        value = getattr(importlib.import_module(_MODULE_OF[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"tf_signsal.{name}")
    else:
        raise AttributeError(f"module 'tf_signsal' has no attribute {name!r}")
    globals()[name] = value  # imported once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, *_SUBMODULES})
