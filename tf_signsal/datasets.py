"""The synthetic signs and the pointing game, kept under their old module name.

They live in `tf_signsal.data.synthetic` (and `tf_signsal.data`); this module re-exports
them so that `from tf_signsal.datasets import synthetic_signs` keeps working.
"""

from tf_signsal.data.synthetic import (
    CHANCE,
    POINTING_GROUPS,
    RANDOM_MAP,
    SYNTHETIC_CLASS_IS_BRIGHT,
    SYNTHETIC_CLASS_NAMES,
    pointing_game,
    pointing_score,
    synthetic_signs,
)

__all__ = [
    "CHANCE", "POINTING_GROUPS", "RANDOM_MAP", "SYNTHETIC_CLASS_IS_BRIGHT",
    "SYNTHETIC_CLASS_NAMES", "pointing_game", "pointing_score", "synthetic_signs",
]
