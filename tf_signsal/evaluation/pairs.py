"""The (method, fill) pairs of the deletion benchmark, and their names in JSON.

A pair's key in results is (method, fill key): the fill's key is "black", "white", a
number or a tuple of numbers for constants (as files written before fill objects hold
them), and the fill's name for any other fill ("blur", "blur(2.0)", "road", a user's
name). Numpy only, so that `AllegianceResult` loads without TensorFlow.
"""

from __future__ import annotations

from typing import Any

from tf_signsal.vocabulary import METHODS

PAPER_FRACTIONS: tuple[float, ...] = (
    0.0, 0.03, 0.05, 0.07, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9,
)
PAPER_PAIRS: tuple[tuple[str, str], ...] = (
    ("standard", "black"),
    ("positive", "black"),
    ("active", "black"),
    ("standard", "white"),
    ("negative", "white"),
    ("inactive", "white"),
)
# The paper's fills: constants at the ends of the value range.
PAPER_FILLS: tuple[str, ...] = ("black", "white")
ALL_PAIRS: tuple[tuple[str, str], ...] = tuple((m, f) for f in PAPER_FILLS for m in METHODS)
# The seeded random ranking: a control that any map should beat.
RANDOM_METHOD = "random"
RANDOM_PAIRS: tuple[tuple[str, str], ...] = tuple((RANDOM_METHOD, f) for f in PAPER_FILLS)
DELETION_METHODS: tuple[str, ...] = (*METHODS, RANDOM_METHOD)

Pair = tuple[str, Any]
"""(method, fill): a fill is a `Fill`, a fill's name, a number or one number per channel."""


def fill_key_name(key: Any) -> str:
    """The text of a fill key: a name as it is, a number as `repr`, a tuple as its values
    joined by commas, with a trailing comma for one value ("0.5,")."""
    if isinstance(key, tuple):
        return ",".join(repr(v) for v in key) + ("," if len(key) == 1 else "")
    return repr(key) if isinstance(key, float) else str(key)


def pair_name(pair: Pair) -> str:
    """The JSON name of a pair: "method/fill", e.g. "positive/black", "standard/0.5",
    "standard/0.5,0.4,0.3", "positive/blur(2.0)"; a one-channel tuple keeps a trailing
    comma ("standard/0.5,"). The fill may be a `Fill` (its name) or a result key."""
    method, fill = pair
    name = getattr(fill, "name", None)
    return f"{method}/{name if isinstance(name, str) else fill_key_name(fill)}"


def parse_pair(name: str) -> Pair:
    """Inverse of `pair_name`, to the pair's result key: a fill text that starts with a
    letter is a fill's name, any other is one number or numbers per channel."""
    method, slash, fill = name.partition("/")
    if not slash or not method or not fill:
        raise ValueError(f"a pair name is \"method/fill\", received {name!r}")
    if fill[0].isalpha():
        return method, fill
    values = tuple(float(v) for v in fill.split(",") if v)
    if not values:
        raise ValueError(f"a pair name is \"method/fill\", received {name!r}")
    return (method, values[0]) if "," not in fill else (method, values)
