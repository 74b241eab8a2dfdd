"""AllegianceResult: the curves and AUCs of a deletion benchmark, and their JSON."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tf_signsal._io import write_atomic
from tf_signsal.evaluation.pairs import Pair, pair_name, parse_pair


@dataclass(eq=False)
class AllegianceResult:
    """Allegiance curves of a deletion benchmark.

    Attributes:
        fractions: float64 (P,), the deletion fractions.
        curves: (method, fill) -> float64 (P,), allegiance at each fraction.
        auc: (method, fill) -> trapezoid area with x as a fraction (at most
            max(fractions); lower is better).
        deleted: (method, fill) -> float64 (P,), mean fraction of each image's
            pixels really deleted (short of p where ties or zeros stop it).
        accuracy: (method, fill) -> float64 (P,) accuracy against the labels
            on the occluded images, or None when the data had no labels.
        n_images: number of images evaluated.
    """

    fractions: np.ndarray
    curves: dict[Pair, np.ndarray]
    auc: dict[Pair, float]
    deleted: dict[Pair, np.ndarray]
    accuracy: dict[Pair, np.ndarray] | None
    n_images: int

    @property
    def pairs(self) -> tuple[Pair, ...]:
        return tuple(self.curves)

    def summary(self) -> str:
        """A text table: AUC and allegiance at each fraction, one row per pair."""
        names = [pair_name(p) for p in self.pairs]
        width = max(len("pair"), *(len(n) for n in names))
        header = f"{'pair':<{width}}  {'AUC':>5}  " + " ".join(
            f"{p * 100:>5.0f}%" for p in self.fractions
        )
        lines = [
            f"Allegiance over {self.n_images} images (AUC: trapezoid, x as a fraction; lower is "
            "better)",
            header,
        ]
        for name, pair in zip(names, self.pairs):
            values = " ".join(f"{a:>6.3f}" for a in self.curves[pair])
            lines.append(f"{name:<{width}}  {self.auc[pair]:>5.3f}  {values}")
        if self.accuracy is not None:
            first = next(iter(self.accuracy.values()))[0]
            lines.append(f"accuracy at {self.fractions[0] * 100:.0f}% deleted: {first:.4f}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; pairs are "method/fill" strings."""

        def named(values: dict) -> dict:
            return {pair_name(p): np.asarray(v).tolist() for p, v in values.items()}

        return {
            "fractions": self.fractions.tolist(),
            "n_images": int(self.n_images),
            "curves": named(self.curves),
            "auc": {pair_name(p): float(v) for p, v in self.auc.items()},
            "deleted": named(self.deleted),
            "accuracy": None if self.accuracy is None else named(self.accuracy),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AllegianceResult:
        """Inverse of `to_dict`."""

        def parsed(values: dict) -> dict:
            return {parse_pair(n): np.asarray(v, np.float64) for n, v in values.items()}

        return cls(
            fractions=np.asarray(data["fractions"], np.float64),
            curves=parsed(data["curves"]),
            auc={parse_pair(n): float(v) for n, v in data["auc"].items()},
            deleted=parsed(data["deleted"]),
            accuracy=None if data["accuracy"] is None else parsed(data["accuracy"]),
            n_images=int(data["n_images"]),
        )

    def save_json(self, path: str | os.PathLike) -> None:
        """Write `to_dict()` as JSON, atomically (a temporary file, then a rename)."""
        # allow_nan=False: NaN is not JSON, and no curve of a real run holds one.
        write_atomic(path, json.dumps(self.to_dict(), indent=1, allow_nan=False).encode())

    @classmethod
    def load_json(cls, path: str | os.PathLike) -> AllegianceResult:
        """Read a file written by `save_json`."""
        with open(path) as file:
            return cls.from_dict(json.load(file, parse_constant=_refuse_constant))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AllegianceResult) and self.to_dict() == other.to_dict()

    def plot(
        self, ax: Any = None, title: str | None = None, pairs: Sequence[Pair] | None = None
    ) -> Any:
        """Allegiance curves as in the paper's Figs. 3 and 4: `tf_signsal.plotting.plot_allegiance`.

        Example:
            >>> ax = result.plot(title="CIFAR-10")
            >>> ax.figure.savefig("curves.png")
        """
        from tf_signsal import plotting  # matplotlib only when a plot is asked for

        return plotting.plot_allegiance(self, ax=ax, title=title, pairs=pairs)


def trapezoid_auc(fractions: Sequence[float], curve: Sequence[float]) -> float:
    """sum_j (a_j + a_{j-1}) / 2 * (p_j - p_{j-1}), x as a fraction (spec section 2.3)."""
    p = np.asarray(fractions, np.float64)
    a = np.asarray(curve, np.float64)
    return float(np.sum((a[1:] + a[:-1]) / 2 * (p[1:] - p[:-1])))


def _refuse_constant(name: str) -> float:
    raise ValueError(f"not a valid allegiance result: the JSON holds {name}, which is no number")
