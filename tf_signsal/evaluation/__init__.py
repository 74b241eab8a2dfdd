"""The deletion benchmark: rules, pairs and fills, the evaluator, its result.

    rules.py           which pixels a map deletes at each fraction (the paper's rule)
    random_control.py  the seeded random ranking, the control
    pairs.py           the (method, fill) pairs, the paper's fractions, fill values
    evaluator.py       AllegianceEvaluator: any explainer, chunked forward passes,
                       tf.distribute
    counts.py          the occluded items and the counts, a named record
    fills.py           the blur and mean fills
    road.py            ROAD's noisy linear imputation (road_impute)
    result.py          AllegianceResult: curves, AUC, SRG per order, JSON
    sanity.py          model-randomisation and random-logit checks
"""

from tf_signsal.evaluation.counts import DeletionCounts
from tf_signsal.evaluation.evaluator import AllegianceEvaluator, Explainer
from tf_signsal.evaluation.fills import blur_images, mean_images
from tf_signsal.evaluation.pairs import (
    ALL_PAIRS,
    DELETION_METHODS,
    PAPER_FRACTIONS,
    PAPER_PAIRS,
    RANDOM_METHOD,
    RANDOM_PAIRS,
    Fill,
    Pair,
    fill_values,
    pair_name,
    parse_pair,
)
from tf_signsal.evaluation.random_control import random_maps
from tf_signsal.evaluation.result import AllegianceResult, trapezoid_auc
from tf_signsal.evaluation.road import road_impute
from tf_signsal.evaluation.rules import ORDERS, deletion_masks
from tf_signsal.evaluation.sanity import (
    RandomizationResult,
    random_logit_check,
    randomization_check,
    rank_correlations,
)
from tf_signsal.vocabulary import FILLS

__all__ = [
    "ALL_PAIRS",
    "DELETION_METHODS",
    "FILLS",
    "ORDERS",
    "PAPER_FRACTIONS",
    "PAPER_PAIRS",
    "RANDOM_METHOD",
    "RANDOM_PAIRS",
    "AllegianceEvaluator",
    "AllegianceResult",
    "DeletionCounts",
    "Explainer",
    "Fill",
    "Pair",
    "RandomizationResult",
    "deletion_masks",
    "fill_values",
    "pair_name",
    "parse_pair",
    "blur_images",
    "mean_images",
    "random_logit_check",
    "random_maps",
    "randomization_check",
    "rank_correlations",
    "road_impute",
    "trapezoid_auc",
]
