"""DeletionProtocol: what a deletion benchmark measures, checked once, with a fingerprint.

The fractions, the (method, fill) pairs, the orders, the value range and the seed decide
every count the evaluator makes; they are checked here, once, and shared by
`AllegianceEvaluator`, `AllegianceCallback` and the command line's run record. The
fingerprint (a SHA-256 of all of them, the fills' parameters included) travels with
`DeletionCounts`, so that counts of differently configured evaluators are never added.
Numpy only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tf_signsal import _checks
from tf_signsal.evaluation.fills import Constant, Fill, as_fill
from tf_signsal.evaluation.orders import MoRF, Order, as_order
from tf_signsal.evaluation.pairs import PAPER_FRACTIONS, PAPER_PAIRS, Pair, pair_name
from tf_signsal.vocabulary import ORDERS

PROTOCOL_VERSION = 1
"""The version of the fingerprinted record (`DeletionProtocol.to_dict`)."""


@dataclass(frozen=True, eq=False)
class DeletionProtocol:
    """The deletion benchmark's settings, checked when made.

    Args:
        fractions: deletion fractions in [0, 1), strictly increasing, at least two.
        pairs: (method, fill) pairs: a method names a map ("random" is the seeded
            control); a fill is a `Fill`, a fill's text ("black", "blur(2.0)", see
            `parse_fill`), a number, or one number per channel.
        orders: `Order` objects or their names ("morf", "lerf", "insertion"); "morf"
            (the paper's deletion) is required.
        value_range: (low, high) of the model's input: the "black" and "white" fills.
        seed: integer in [0, 2**32): the "random" ranking's and ROAD's noise's seed.
        explainer: what makes the maps, as text (e.g. the attribution): part of the
            fingerprint, so that counts of different maps are never added.

    Attributes:
        pairs: ((method, Fill), ...), the fills as given (unbound).
        keys: ((method, fill key), ...), the pairs' keys in `AllegianceResult`.
        fills: the distinct fills, in the pairs' order, bound to `value_range` and
            `seed` (`Fill.bind`): what the evaluator computes with.
        fingerprint: SHA-256 hex digest of `to_dict()` (fingerprint excluded).

    Example:
        >>> protocol = DeletionProtocol(pairs=[("positive", Blur(2.0)), ("positive", "black")])
        >>> protocol.keys
        (('positive', 'blur(2.0)'), ('positive', 'black'))
    """

    fractions: Sequence[float] = PAPER_FRACTIONS
    pairs: Sequence[Pair] = PAPER_PAIRS
    orders: Sequence[str | Order] = ("morf",)
    value_range: tuple[float, float] = (0.0, 1.0)
    seed: int = 0
    explainer: str = ""
    keys: tuple[Pair, ...] = field(init=False, repr=False)
    fills: tuple[Fill, ...] = field(init=False, repr=False)
    fingerprint: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        def set_(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)  # frozen: set once, here

        set_("fractions", _checks.fractions(self.fractions, at_least=2))
        set_("pairs", _check_pairs(self.pairs))
        set_("orders", _check_orders(self.orders))
        set_("value_range", _checks.value_range(self.value_range))
        set_("seed", _checks.seed("seed", self.seed))
        if not isinstance(self.explainer, str):
            raise TypeError(f"`explainer` must be a text, received {self.explainer!r}")
        _check_constants(self.pairs, self.value_range)
        set_("keys", tuple((method, fill.key) for method, fill in self.pairs))
        distinct = dict.fromkeys(fill for _, fill in self.pairs)
        set_("fills", tuple(fill.bind(self.value_range, self.seed) for fill in distinct))
        record = json.dumps(self._record(), sort_keys=True, default=repr)
        set_("fingerprint", hashlib.sha256(record.encode()).hexdigest())

    def check_methods(self, methods: Sequence[str]) -> None:
        """Refuse pairs whose method is not one of `methods`."""
        for method, _ in self.pairs:
            if method not in methods:
                raise ValueError(
                    f"unknown method {method!r} in `pairs`: valid methods are {list(methods)}"
                )

    def _record(self) -> dict[str, Any]:
        return {
            "version": PROTOCOL_VERSION,
            "fractions": list(self.fractions),
            "pairs": [pair_name(pair) for pair in self.pairs],
            "fills": {
                fill.name: {"class": _qualified(fill), "config": fill.get_config()}
                for _, fill in self.pairs
            },
            "orders": {order.name: _qualified(order) for order in self.orders},
            "value_range": list(self.value_range),
            "seed": self.seed,
            "explainer": self.explainer,
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record: version, fractions, pair names, each fill's class and
        parameters, order names and classes, value range, seed, explainer, fingerprint."""
        return {**self._record(), "fingerprint": self.fingerprint}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DeletionProtocol) and other.fingerprint == self.fingerprint

    def __hash__(self) -> int:
        return hash(self.fingerprint)


def _qualified(value: Any) -> str:
    return f"{type(value).__module__}.{type(value).__qualname__}"


def _check_pairs(value: Any) -> tuple[tuple[str, Fill], ...]:
    """Non-repeating (method, Fill) pairs."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise TypeError(
            "`pairs` must be a sequence of (method, fill) pairs, e.g. PAPER_PAIRS, "
            f"received {value!r}"
        )
    if not value:
        raise ValueError("`pairs` must hold at least one (method, fill) pair, received none")
    checked = []
    for pair in value:
        if isinstance(pair, str) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise TypeError(f"each of `pairs` must be a (method, fill) pair, received {pair!r}")
        method, fill = pair
        if not isinstance(method, str) or not method:
            raise TypeError(f"the method of a pair must be a name, received {method!r} in {pair!r}")
        if "/" in method:  # "method/fill" names the pair in JSON and logs
            raise ValueError(f"a method name must not contain \"/\", received {method!r}")
        try:
            fill = as_fill(fill)
        except (TypeError, ValueError) as error:
            raise type(error)(f"`pairs` {pair!r}: {error}") from None
        checked.append((method, fill))
    names = [pair_name(pair) for pair in checked]
    if len(set(names)) != len(names):
        raise ValueError(f"`pairs` must not repeat a pair, received {names}")
    named: dict[str, Fill] = {}
    for _, fill in checked:  # a name is a key in results: one fill per name
        if named.setdefault(fill.name, fill) != fill:
            raise ValueError(
                f"`pairs` hold two different fills named {fill.name!r}: "
                f"{named[fill.name]!r} and {fill!r}; give each its own name"
            )
    return tuple(checked)


def _check_orders(value: Any) -> tuple[Order, ...]:
    """Distinct orders, MoRF among them."""
    if isinstance(value, (str, Order)):
        value = (value,)
    try:
        value = tuple(value)
    except TypeError:
        raise TypeError(
            f"`orders` must be a selection of {list(ORDERS)} or Order objects, received {value!r}"
        ) from None
    orders = tuple(dict.fromkeys(as_order(order) for order in value))
    names = [order.name for order in orders]
    bad = [order for order in orders if not isinstance(order.name, str) or not order.name]
    if bad or len(set(names)) != len(names):
        raise ValueError(f"`orders` must have distinct, non-empty names, received {orders}")
    impostors = [o for o in orders if o.name in ORDERS and o != as_order(o.name)]
    if impostors:
        raise ValueError(
            f"the order {impostors[0]!r} is named {impostors[0].name!r}, the name of a built-in "
            "order: give it a name of its own"
        )
    if MoRF() not in orders:
        raise ValueError(
            f"`orders` must include \"morf\" (the paper's deletion, whose curves are "
            f"`result.curves`), received {names}"
        )
    return orders


def _check_constants(pairs: Sequence[tuple[str, Fill]], value_range: tuple[float, float]) -> None:
    """Refuse constants outside `value_range`, and two pairs that are the same deletion."""
    low, high = value_range
    resolved: dict[tuple, tuple[str, Any]] = {}
    for method, fill in pairs:
        if not isinstance(fill, Constant):
            continue
        given = (method, fill.key)
        values = fill.resolved(value_range)
        if any(not low <= v <= high for v in values):
            raise ValueError(
                f"fill {fill.key!r} of pair {given!r} lies outside `value_range` "
                f"({low:g}, {high:g}): the occluded image would hold values the model "
                "never sees"
            )
        # One value for every channel, as a number or a tuple, is the same fill; and
        # numbers equal in float32, the images' type, fill alike.
        values = tuple(np.float32(v) for v in values)
        key = (method, values[:1] if len(set(values)) == 1 else values)
        if key in resolved:
            raise ValueError(
                f"`pairs` {resolved[key]!r} and {given!r} are the same deletion "
                f"(with value_range ({low:g}, {high:g})): give each once"
            )
        resolved[key] = given
