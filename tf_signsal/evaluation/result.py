"""AllegianceResult: the curves and AUCs of a deletion benchmark, and their JSON."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tf_signsal._io import read_json, write_json
from tf_signsal.evaluation.orders import order_better
from tf_signsal.evaluation.pairs import Pair, pair_name, parse_pair


@dataclass(eq=False)
class AllegianceResult:
    """Allegiance curves of a deletion benchmark, per order.

    `curves`, `auc`, `deleted` and `accuracy` are those of MoRF (the paper's deletion);
    `order_curves[order]` and the other `order_*` attributes hold every order run.

    Attributes:
        fractions: float64 (P,), the deletion fractions.
        n_images: number of images evaluated.
        order_curves: order -> (method, fill) -> float64 (P,), allegiance at each
            fraction.
        order_deleted: order -> (method, fill) -> float64 (P,), mean fraction of each
            image's pixels really filled (for MoRF short of p where ties or zeros stop
            it; for insertion the pixels not yet put back).
        order_accuracy: order -> (method, fill) -> float64 (P,) accuracy against the
            labels on the occluded images; None when the data had no labels.
    """

    fractions: np.ndarray
    n_images: int
    order_curves: dict[str, dict[Pair, np.ndarray]]
    order_deleted: dict[str, dict[Pair, np.ndarray]]
    order_accuracy: dict[str, dict[Pair, np.ndarray]] | None

    @property
    def orders(self) -> tuple[str, ...]:
        return tuple(self.order_curves)

    @property
    def pairs(self) -> tuple[Pair, ...]:
        return tuple(self.curves)

    @property
    def order_auc(self) -> dict[str, dict[Pair, float]]:
        """order -> (method, fill) -> trapezoid area with x as a fraction (at most
        max(fractions)); lower is better for MoRF, higher for LeRF and insertion."""
        return {
            order: {pair: trapezoid_auc(self.fractions, c) for pair, c in curves.items()}
            for order, curves in self.order_curves.items()
        }

    @property
    def srg(self) -> dict[Pair, float]:
        """Symmetric Relevance Gain, AUC(LeRF) - AUC(MoRF) per pair (higher is better);
        empty unless both orders ran."""
        if not {"morf", "lerf"} <= set(self.order_curves):
            return {}
        auc = self.order_auc
        return {pair: auc["lerf"][pair] - auc["morf"][pair] for pair in self.pairs}

    @property
    def curves(self) -> dict[Pair, np.ndarray]:
        """MoRF: (method, fill) -> allegiance at each fraction."""
        return self.order_curves["morf"]

    @property
    def auc(self) -> dict[Pair, float]:
        """MoRF: (method, fill) -> trapezoid area (lower is better)."""
        return self.order_auc["morf"]

    @property
    def deleted(self) -> dict[Pair, np.ndarray]:
        """MoRF: (method, fill) -> mean fraction of pixels really deleted."""
        return self.order_deleted["morf"]

    @property
    def accuracy(self) -> dict[Pair, np.ndarray] | None:
        """MoRF: (method, fill) -> accuracy on the occluded images, or None."""
        return None if self.order_accuracy is None else self.order_accuracy["morf"]

    def summary(self) -> str:
        """A text table per order: AUC and allegiance at each fraction, one row per pair;
        then the SRG when MoRF and LeRF ran."""
        names = [pair_name(p) for p in self.pairs]
        width = max(len("pair"), *(len(n) for n in names))
        header = f"{'pair':<{width}}  {'AUC':>5}  " + " ".join(
            f"{p * 100:>5.0f}%" for p in self.fractions
        )
        lines = []
        auc = self.order_auc
        for order, curves in self.order_curves.items():
            title = "Allegiance" if order == "morf" else f"Allegiance, {order}"
            better = order_better(order)
            lines += [
                f"{title} over {self.n_images} images (AUC: trapezoid, x as a fraction"
                + (f"; {better} is better)" if better else ")"),
                header,
            ]
            for name, pair in zip(names, self.pairs):
                values = " ".join(f"{a:>6.3f}" for a in curves[pair])
                lines.append(f"{name:<{width}}  {auc[order][pair]:>5.3f}  {values}")
        if self.srg:
            lines.append("SRG = AUC(lerf) - AUC(morf), higher is better")
            lines += [f"{n:<{width}}  {self.srg[p]:>6.3f}" for n, p in zip(names, self.pairs)]
        if self.accuracy is not None:
            first = next(iter(self.accuracy.values()))[0]
            lines.append(f"accuracy at {self.fractions[0] * 100:.0f}% deleted: {first:.4f}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; pairs are "method/fill" strings. The top-level curves, auc,
        deleted and accuracy are MoRF's (as files written before orders existed);
        "orders" holds every order run and "srg" the SRG when MoRF and LeRF ran."""

        def named(values: dict | None) -> dict | None:
            if values is None:
                return None
            return {pair_name(p): np.asarray(v).tolist() for p, v in values.items()}

        def record(order: str) -> dict[str, Any]:
            return {
                "curves": named(self.order_curves[order]),
                "auc": {pair_name(p): float(v) for p, v in self.order_auc[order].items()},
                "deleted": named(self.order_deleted[order]),
                "accuracy": None if self.order_accuracy is None else named(
                    self.order_accuracy[order]
                ),
            }

        return {
            "fractions": self.fractions.tolist(),
            "n_images": int(self.n_images),
            **record("morf"),
            "orders": {order: record(order) for order in self.orders},
            "srg": {pair_name(p): float(v) for p, v in self.srg.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AllegianceResult:
        """Inverse of `to_dict` (also reads files written before orders existed)."""

        def parsed(values: dict) -> dict:
            return {parse_pair(n): np.asarray(v, np.float64) for n, v in values.items()}

        required = ("fractions", "n_images", "curves", "deleted", "accuracy")
        missing = [key for key in required if not isinstance(data, dict) or key not in data]
        if missing:
            raise ValueError(
                f"not an AllegianceResult record (as `to_dict` writes): missing {missing}"
            )
        try:
            orders = data.get("orders") or {"morf": data}
            has_accuracy = orders["morf"]["accuracy"] is not None
            fractions = np.asarray(data["fractions"], np.float64)
            tables = {
                "curves": {o: parsed(r["curves"]) for o, r in orders.items()},
                "deleted": {o: parsed(r["deleted"]) for o, r in orders.items()},
                "accuracy": {o: parsed(r["accuracy"]) for o, r in orders.items()}
                if has_accuracy else {},
            }
            n_images = int(data["n_images"])
        except (AttributeError, IndexError, KeyError, TypeError, ValueError) as error:
            raise ValueError(f"not an AllegianceResult record: {error!r}") from None
        pair_sets = {frozenset(series) for table in tables.values() for series in table.values()}
        if len(pair_sets) > 1:
            raise ValueError(
                "not an AllegianceResult record: its curves, deleted shares and accuracies "
                "do not name the same pairs in every order"
            )
        wrong = sorted(
            f"{name} {order} {pair_name(pair)}"
            for name, table in tables.items()
            for order, series in table.items()
            for pair, values in series.items()
            if values.shape != fractions.shape
        )
        if fractions.ndim != 1 or wrong:
            raise ValueError(
                f"not an AllegianceResult record: {wrong[:3] or 'fractions'} must hold one "
                f"value per fraction ({fractions.size})"
            )
        return cls(
            fractions=fractions,
            n_images=n_images,
            order_curves=tables["curves"],
            order_deleted=tables["deleted"],
            order_accuracy=tables["accuracy"] if has_accuracy else None,
        )

    def save_json(self, path: str | os.PathLike) -> None:
        """Write `to_dict()` as JSON, atomically (a temporary file, then a rename)."""
        # allow_nan=False: NaN is not JSON, and no curve of a real run holds one.
        write_json(path, self.to_dict())

    @classmethod
    def load_json(cls, path: str | os.PathLike) -> AllegianceResult:
        """Read a file written by `save_json`."""
        return cls.from_dict(read_json(path))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AllegianceResult) and self.to_dict() == other.to_dict()

    def plot(
        self,
        ax: Any = None,
        title: str | None = None,
        pairs: Sequence[Pair] | None = None,
        order: str = "morf",
    ) -> Any:
        """Allegiance curves as in the paper's Figs. 3 and 4, of one order, drawn by
        `tf_signsal.plotting.plot_curves` (x: pixels deleted (%), for insertion the
        pixels not yet put back; the legend gives each AUC).

        Args:
            ax: a matplotlib Axes to draw on; a new figure when None.
            title: an optional title (an order other than MoRF is added to it).
            pairs: the (method, fill) pairs to draw, in legend order; all when None
                (e.g. the black-fill pairs only, for one panel of Fig. 3).
            order: which order's curves, among `orders`.

        Returns:
            the matplotlib Axes.

        Example:
            >>> ax = result.plot(title="CIFAR-10")
            >>> ax.figure.savefig("curves.png")
        """
        # The one link between the evaluation and plotting: lazy, and one way (matplotlib
        # only when a plot is asked for; plotting takes names and arrays).
        from tf_signsal import plotting

        if order not in self.order_curves:
            raise ValueError(f"`order` must be among the result's orders {list(self.orders)}, "
                             f"received {order!r}")
        chosen = self.pairs if pairs is None else tuple(tuple(p) for p in pairs)
        unknown = [pair_name(p) for p in chosen if p not in self.curves]
        if unknown:
            raise ValueError(
                f"`pairs` must be among the evaluated pairs "
                f"{[pair_name(p) for p in self.pairs]}, received unknown {unknown}"
            )
        curves, auc = self.order_curves[order], self.order_auc[order]
        return plotting.plot_curves(
            self.fractions,
            {pair_name(p): curves[p] for p in chosen},
            auc={pair_name(p): auc[p] for p in chosen},
            ax=ax,
            title=" - ".join(t for t in (title, None if order == "morf" else order) if t),
        )


def trapezoid_auc(fractions: Sequence[float], curve: Sequence[float]) -> float:
    """sum_j (a_j + a_{j-1}) / 2 * (p_j - p_{j-1}), x as a fraction (spec section 2.3)."""
    p = np.asarray(fractions, np.float64)
    a = np.asarray(curve, np.float64)
    return float(np.sum((a[1:] + a[:-1]) / 2 * (p[1:] - p[:-1])))
