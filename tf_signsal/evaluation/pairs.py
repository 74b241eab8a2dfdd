"""The (method, fill) pairs of the deletion benchmark and their fill values."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tf_signsal.maps import METHODS
from tf_signsal.vocabulary import FILLS

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
# Fills computed from the image: a blurred copy, its mean; and ROAD's imputation, which
# depends on the mask too.
IMAGE_FILLS: tuple[str, ...] = ("blur", "mean")
ROAD_FILL = "road"
ALL_PAIRS: tuple[tuple[str, str], ...] = tuple((m, f) for f in PAPER_FILLS for m in METHODS)
# The seeded random ranking: a control that any map should beat.
RANDOM_METHOD = "random"
RANDOM_PAIRS: tuple[tuple[str, str], ...] = tuple((RANDOM_METHOD, f) for f in PAPER_FILLS)
DELETION_METHODS: tuple[str, ...] = (*METHODS, RANDOM_METHOD)

Fill = Any  # "black" | "white" | float | tuple[float, ...]
Pair = tuple[str, Fill]


def pair_name(pair: Pair) -> str:
    """The JSON name of a pair: "method/fill", e.g. "positive/black", "standard/0.5",
    "standard/0.5,0.4,0.3"; a one-channel tuple keeps a trailing comma ("standard/0.5,")."""
    method, fill = pair
    if isinstance(fill, tuple):
        return f"{method}/" + ",".join(repr(v) for v in fill) + ("," if len(fill) == 1 else "")
    return f"{method}/{fill!r}" if isinstance(fill, float) else f"{method}/{fill}"


def parse_pair(name: str) -> Pair:
    """Inverse of `pair_name`."""
    method, _, fill = name.partition("/")
    if fill in FILLS:
        return method, fill
    values = tuple(float(v) for v in fill.split(",") if v)
    return (method, values[0]) if "," not in fill else (method, values)


def fill_kind(fill: Fill) -> str:
    """"constant" (black, white, numbers), "image" (blur, mean) or "road"."""
    if fill == ROAD_FILL:
        return "road"
    return "image" if fill in IMAGE_FILLS else "constant"


def fill_values(
    fills: Sequence[Fill], value_range: tuple[float, float], channels: int
) -> np.ndarray:
    """The pixel value of each constant fill, (len(fills), channels) float32: black is
    value_range[0], white value_range[1]; a row of zeros for fills computed from the image."""
    low, high = value_range
    rows = []
    for fill in fills:
        if isinstance(fill, tuple):
            if len(fill) != channels:
                raise ValueError(
                    f"fill {fill} has {len(fill)} values, but the images have "
                    f"{channels} channels: give one value per channel"
                )
            rows.append(fill)
        elif fill_kind(fill) != "constant":
            rows.append((0.0,) * channels)
        else:
            value = {"black": low, "white": high}.get(fill, fill)
            rows.append((value,) * channels)
    return np.array(rows, np.float32)
