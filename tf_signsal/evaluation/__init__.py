"""The deletion benchmark: orders and fills, the evaluator, its counts and result.

    orders.py          Order objects: MoRF, LeRF, Insertion (which pixels at fraction p)
    fills.py           Fill objects: Constant, Blur, Mean, Road; as_fill, parse_fill
    road.py            ROAD's noisy linear imputation (road_impute)
    pairs.py           the (method, fill) pairs, the paper's fractions, pair names
    protocol.py        DeletionProtocol: fractions, pairs, orders, checked, fingerprinted
    rules.py           the sorts behind the orders, deletion_masks
    random_control.py  the seeded random ranking, the control
    evaluator.py       AllegianceEvaluator: any explainer, chunked forward passes,
                       tf.distribute, batch_counts
    counts.py          DeletionCounts: additive, fingerprinted, saved without pickle
    result.py          AllegianceResult: curves, AUC, SRG per order, JSON (no TensorFlow)
    pointing.py        the pointing game: does a map's peak fall on the object
    sanity.py          model-randomisation and random-logit checks
    sanity_result.py   RandomizationResult, rank_correlations (no TensorFlow)

The names below are imported on first use (PEP 562), so that importing a numpy-only
module (`tf_signsal.evaluation.result`, `counts`, `protocol`, `fills`, `orders`,
`sanity_result`, `pointing`) loads
no TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import Any

from tf_signsal.vocabulary import FILLS as FILLS  # re-exported
from tf_signsal.vocabulary import ORDERS as ORDERS

# The public names, by the module that defines them.
_LAZY = {
    "counts": ("DeletionCounts",),
    "evaluator": ("AllegianceEvaluator", "Explainer"),
    "fills": (
        "Blur", "Constant", "Fill", "Mean", "Road", "as_fill", "blur_images", "fill_values",
        "mean_images", "parse_fill",
    ),
    "orders": ("Insertion", "LeRF", "MoRF", "Order", "Ranking", "as_order"),
    "pairs": (
        "ALL_PAIRS", "DELETION_METHODS", "PAPER_FRACTIONS", "PAPER_PAIRS", "RANDOM_METHOD",
        "RANDOM_PAIRS", "Pair", "pair_name", "parse_pair",
    ),
    "pointing": ("pointing_game", "pointing_score"),
    "protocol": ("DeletionProtocol",),
    "random_control": ("random_maps",),
    "result": ("AllegianceResult", "trapezoid_auc"),
    "road": ("road_impute",),
    "rules": ("deletion_masks",),
    "sanity": (
        "ExplainerFactory", "random_logit_check", "randomization_check",
    ),
    "sanity_result": ("RandomizationResult", "rank_correlations"),
}
_MODULE_OF = {name: module for module, names in _LAZY.items() for name in names}

__all__ = sorted(["FILLS", "ORDERS", *_MODULE_OF])


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'tf_signsal.evaluation' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"tf_signsal.evaluation.{_MODULE_OF[name]}"), name)
    globals()[name] = value  # imported once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
