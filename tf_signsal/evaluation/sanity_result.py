"""The sanity checks' numbers: Spearman rank correlations and the randomisation test's
record, `RandomizationResult` (`tf_signsal.evaluation.sanity` computes them). Numpy only:
reading a saved record loads no TensorFlow.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from tf_signsal._io import read_json, write_json

#: The first step of every curve: the intact model.
INTACT = "intact"


# ----------------------------------------------------------------------------- ranks


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of a vector, ties sharing their average rank (scipy's "average")."""
    sorter = np.argsort(values, kind="mergesort")
    inverse = np.empty_like(sorter)
    inverse[sorter] = np.arange(values.size)
    ordered = values[sorter]
    first = np.r_[True, ordered[1:] != ordered[:-1]]
    dense = first.cumsum()[inverse]
    starts = np.r_[np.nonzero(first)[0], first.size]
    return 0.5 * (starts[dense] + starts[dense - 1] + 1)


def rank_correlations(maps: Any, reference: Any) -> tuple[np.ndarray, np.ndarray]:
    """Spearman rank correlation of each map with its reference map.

    Args:
        maps, reference: arrays or tensors of one shape (B, ...): B maps each.

    Returns:
        (correlations, defined): float64 (B,) and bool (B,). An image whose map
        or reference map is constant has no ranking: its correlation is
        undefined, returned as 0.0 with `defined` False. Ties take their
        average rank, as `scipy.stats.spearmanr`.
    """
    a = np.asarray(maps, np.float64)
    b = np.asarray(reference, np.float64)
    if a.shape != b.shape or a.ndim < 1:
        raise ValueError(
            f"`maps` and `reference` must have one shape (B, ...), received {a.shape} "
            f"and {b.shape}"
        )
    a = a.reshape(a.shape[0], -1)
    b = b.reshape(b.shape[0], -1)
    correlations = np.zeros(a.shape[0], np.float64)
    defined = np.zeros(a.shape[0], bool)
    for index, (x, y) in enumerate(zip(a, b)):
        if x.size < 2 or np.all(x == x[0]) or np.all(y == y[0]):
            continue
        rx = _average_ranks(x)
        ry = _average_ranks(y)
        rx -= rx.mean()
        ry -= ry.mean()
        value = np.dot(rx, ry) / np.sqrt(np.dot(rx, rx) * np.dot(ry, ry))
        correlations[index] = np.clip(value, -1.0, 1.0)
        defined[index] = True
    return correlations, defined


# ----------------------------------------------------------------------------- the result


@dataclass(eq=False)
class RandomizationResult:
    """Rank correlations of randomised models' maps with the intact model's maps.

    Step 0 is the intact model; step i re-initialises layer i from the top
    (`cascade=False`) or layers 1..i (`cascade=True`).

    Attributes:
        layers: the randomised layers, top (output) first.
        spearman: map name -> float64 (len(layers) + 1,): the mean over images
            of the Spearman rank correlation of each image's map (H x W values)
            with the intact model's map of the same image; index 0 is 1.0.
        spearman_signed: float64 (len(layers) + 1,), the same for the signed
            attribution (the "no absolute value" variant; see the module); None
            for an explainer other than a `SignedSaliency`.
        undefined: map name -> int64 (len(layers) + 1,): how many images of each
            step had a constant map (theirs or the intact one), counted as 0.0.
        undefined_signed: the same for the signed attribution (None with it).
        targets: int64 (B,), the explained class of each image.
        cascade: whether the randomisation cascaded.
        seed: the seed of the re-initialisations.
        n_images: number of images.
    """

    layers: tuple[str, ...]
    spearman: dict[str, np.ndarray]
    spearman_signed: np.ndarray | None
    undefined: dict[str, np.ndarray]
    undefined_signed: np.ndarray | None
    targets: np.ndarray
    cascade: bool
    seed: int
    n_images: int

    @property
    def methods(self) -> tuple[str, ...]:
        """The compared maps' names, in order."""
        return tuple(self.spearman)

    @property
    def steps(self) -> tuple[str, ...]:
        """The x axis: "intact", then the layer names, top first."""
        return (INTACT, *self.layers)

    def summary(self) -> str:
        """A text table: one row per step, one column per map (and the signed variant)."""
        values = dict(self.spearman)
        if self.spearman_signed is not None:
            values["signed"] = self.spearman_signed
        columns = tuple(values)
        width = max(len("step"), *(len(s) for s in self.steps))
        kind = "cascading from the top" if self.cascade else "one layer at a time"
        lines = [
            f"Rank correlation with the intact maps over {self.n_images} images "
            f"(randomised {kind}, seed {self.seed})",
            f"{'step':<{width}}  " + " ".join(f"{c:>9}" for c in columns),
        ]
        for index, step in enumerate(self.steps):
            row = " ".join(f"{values[c][index]:>9.3f}" for c in columns)
            lines.append(f"{step:<{width}}  {row}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (no NaN: undefined correlations are 0.0 and counted; the
        signed series are null without a signed variant)."""
        signed = self.spearman_signed is not None
        return {
            "layers": list(self.layers),
            "cascade": bool(self.cascade),
            "seed": int(self.seed),
            "n_images": int(self.n_images),
            "targets": np.asarray(self.targets).astype(int).tolist(),
            "spearman": {m: np.asarray(v, np.float64).tolist() for m, v in self.spearman.items()},
            "spearman_signed": (
                np.asarray(self.spearman_signed, np.float64).tolist() if signed else None
            ),
            "undefined": {m: np.asarray(v).astype(int).tolist() for m, v in self.undefined.items()},
            "undefined_signed": (
                np.asarray(self.undefined_signed).astype(int).tolist() if signed else None
            ),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RandomizationResult:
        """Inverse of `to_dict`; also reads the record of `tf-signsal sanity`'s
        sanity.json (under "randomization")."""
        if isinstance(data, dict) and "layers" not in data and "randomization" in data:
            data = data["randomization"]
        required = ("layers", "spearman", "spearman_signed", "undefined", "undefined_signed",
                    "targets", "cascade", "seed", "n_images")
        missing = [key for key in required if not isinstance(data, dict) or key not in data]
        if missing:
            raise ValueError(
                f"not a RandomizationResult record (as `to_dict` writes): missing {missing}"
            )
        signed = data["spearman_signed"] is not None
        if signed != (data["undefined_signed"] is not None):
            raise ValueError(
                "not a RandomizationResult record: spearman_signed and undefined_signed must "
                "both be null (no signed variant) or both hold values"
            )
        try:
            result = cls(
                layers=tuple(str(name) for name in data["layers"]),
                spearman={m: np.asarray(v, np.float64) for m, v in data["spearman"].items()},
                spearman_signed=(
                    np.asarray(data["spearman_signed"], np.float64) if signed else None
                ),
                undefined={m: np.asarray(v, np.int64) for m, v in data["undefined"].items()},
                undefined_signed=np.asarray(data["undefined_signed"], np.int64) if signed else None,
                targets=np.asarray(data["targets"], np.int64),
                cascade=bool(data["cascade"]),
                seed=int(data["seed"]),
                n_images=int(data["n_images"]),
            )
        except (AttributeError, TypeError, ValueError) as error:
            raise ValueError(f"not a RandomizationResult record: {error}") from None
        steps = len(result.layers) + 1
        series = {**result.spearman, **{f"undefined {m}": v for m, v in result.undefined.items()}}
        if signed:
            series.update(signed=result.spearman_signed, **{
                "undefined signed": result.undefined_signed})
        wrong = sorted(name for name, values in series.items() if values.shape != (steps,))
        if wrong or set(result.spearman) != set(result.undefined):
            raise ValueError(
                f"not a RandomizationResult record: {wrong or 'undefined'} must hold one value "
                f"per step ({steps}: intact and {len(result.layers)} layers) for each method"
            )
        if result.targets.shape != (result.n_images,):
            raise ValueError(
                f"not a RandomizationResult record: {result.targets.shape[0]} targets for "
                f"{result.n_images} images"
            )
        return result

    def save_json(self, path: str | os.PathLike) -> None:
        """Write `to_dict()` as JSON, atomically (a temporary file, then a rename)."""
        write_json(path, self.to_dict())

    @classmethod
    def load_json(cls, path: str | os.PathLike) -> RandomizationResult:
        """Read a file written by `save_json`."""
        return cls.from_dict(read_json(path))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RandomizationResult) and self.to_dict() == other.to_dict()

    def plot(self, ax: Any = None, title: str | None = None) -> Any:
        """Correlation against randomisation step, as Adebayo et al.'s Fig. 2:
        `tf_signsal.plotting.plot_randomization`.

        Example:
            >>> ax = randomization_check(model, images).plot(title="cascading")
            >>> ax.figure.savefig("randomization.png")
        """
        from tf_signsal import plotting  # matplotlib only when a plot is asked for

        return plotting.plot_randomization(self, ax=ax, title=title)
