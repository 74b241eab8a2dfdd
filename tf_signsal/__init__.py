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

from tf_signsal.attributions import (
    ATTRIBUTIONS,
    GradientXInput,
    IntegratedGradients,
    SmoothGrad,
)
from tf_signsal.evaluation import (
    ALL_PAIRS,
    FILLS,
    ORDERS,
    PAPER_FRACTIONS,
    PAPER_PAIRS,
    RANDOM_PAIRS,
    AllegianceEvaluator,
    AllegianceResult,
    RandomizationResult,
    random_logit_check,
    randomization_check,
)
from tf_signsal.gradients import GradientEngine, class_gradients
from tf_signsal.maps import METHODS, Explanation, SignedSaliency

__version__ = "0.1.0"

__all__ = [
    "ALL_PAIRS",
    "ATTRIBUTIONS",
    "FILLS",
    "ORDERS",
    "PAPER_FRACTIONS",
    "PAPER_PAIRS",
    "RANDOM_PAIRS",
    "AllegianceEvaluator",
    "AllegianceResult",
    "METHODS",
    "Explanation",
    "GradientEngine",
    "GradientXInput",
    "IntegratedGradients",
    "RandomizationResult",
    "SmoothGrad",
    "SignedSaliency",
    "class_gradients",
    "random_logit_check",
    "randomization_check",
    "__version__",
]
