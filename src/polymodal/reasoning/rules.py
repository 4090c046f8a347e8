"""Named rules over concept values, and the relation tables they define.

A rule maps the values of k categorical concepts (each in ``range(V_i)``) to a class in ``range(C)``.
Its relation table ``T`` of shape ``(V_1, ..., V_k, C)`` holds ``T[v_1, ..., v_k, y] = 1`` where the rule
sends ``(v_1, ..., v_k)`` to ``y`` (a probabilistic table may spread the mass). The program layer
computes ``p(y) = sum_v prod_i p_i(v_i) T[v, y]`` from it.

Named rules live in ``RULES`` so that a config can name them (``model.fusion_args.rule=sum_mod10``);
each factory takes its size as keyword arguments (``model.fusion_args.rule_args.n=5``; for sum_mod
and max, n defaults to the dataset's number of classes):

    sum_mod10   any number of concepts in 0..9, y = sum mod 10
    sum_mod     any number of concepts in 0..n-1, y = sum mod n
    sum         k concepts in 0..n-1, y = sum (k (n - 1) + 1 classes)
    compare     two concepts in 0..n-1, y = 0 (a < b), 1 (a = b), 2 (a > b)
    equal       two concepts in 0..n-1, y = 1 if a = b else 0
    xor         any number of binary concepts, y = parity
    max         any number of concepts in 0..n-1, y = the largest

From Python, :func:`as_rule` also accepts a callable (with ``values`` and ``num_classes``) or a table.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from polymodal.registry import Registry

MAX_TABLE_ENTRIES = 5_000_000
SIZED_BY_CLASSES = ("sum_mod", "max")  # rules whose n defaults to the dataset's number of classes


@dataclass(frozen=True)
class Rule:
    """A deterministic rule: ``fn(*values) -> class`` over concepts with ``values`` values each.

    values:      one int (every concept has that many values) or a tuple, one per concept
    num_classes: the number of classes the rule's outputs fall in
    arity:       the number of concepts the rule takes; None = any number (``values`` is then an int)
    """

    name: str
    fn: Callable[..., int]
    values: int | tuple[int, ...]
    num_classes: int
    arity: int | None = None

    def cards(self, k: int) -> tuple[int, ...]:
        """The number of values of each of ``k`` concepts; ValueError if the rule does not take k."""
        if isinstance(self.values, tuple):
            if len(self.values) != k:
                raise ValueError(f"rule {self.name!r} takes {len(self.values)} concepts; the model has {k}")
            return self.values
        if self.arity is not None and self.arity != k:
            raise ValueError(f"rule {self.name!r} takes {self.arity} concepts; the model has {k}")
        return (self.values,) * k

    def table(self, k: int) -> Tensor:
        """The one-hot relation table (V_1, ..., V_k, C), float32, by enumerating every combination."""
        cards = self.cards(k)
        size = math.prod(cards) * self.num_classes
        if size > MAX_TABLE_ENTRIES:
            raise ValueError(
                f"rule {self.name!r} over concepts of sizes {cards} has a table of {size} entries "
                f"(limit {MAX_TABLE_ENTRIES}); use fewer concepts or fewer values"
            )
        out = torch.zeros(*cards, self.num_classes)
        for v in itertools.product(*(range(c) for c in cards)):
            y = self.fn(*v)
            if not isinstance(y, int | np.integer) or not 0 <= int(y) < self.num_classes:
                raise ValueError(
                    f"rule {self.name!r} sent concept values {v} to {y!r}; expected an int class in "
                    f"[0, {self.num_classes})"
                )
            out[(*v, int(y))] = 1.0
        return out


RULES: Registry[Rule] = Registry("rule")


def _n(name: str, n: Any, low: int = 1) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or n < low:
        raise ValueError(f"rule {name!r}: n={n!r}; expected an integer >= {low} (model.fusion_args.rule_args.n)")
    return n


@RULES.register("sum_mod10", tiny={})
def sum_mod10() -> Rule:
    """(a + b + ...) mod 10 over digits 0..9 (the avdigits-sum label)."""
    return Rule("sum_mod10", lambda *v: sum(v) % 10, 10, 10)


@RULES.register("sum_mod", tiny={"n": 3})
def sum_mod(n: int = 10) -> Rule:
    """(a + b + ...) mod n over concepts in 0..n-1."""
    n = _n("sum_mod", n, 2)
    return Rule(f"sum_mod{n}", lambda *v: sum(v) % n, n, n)


@RULES.register("sum", tiny={"n": 3})
def sum_rule(n: int = 10, arity: int = 2) -> Rule:
    """a + b + ... over concepts in 0..n-1 (arity concepts, arity (n - 1) + 1 classes)."""
    n, arity = _n("sum", n, 2), _n("sum", arity)
    return Rule("sum", lambda *v: sum(v), n, arity * (n - 1) + 1, arity)


@RULES.register("compare", tiny={"n": 3})
def compare(n: int = 10) -> Rule:
    """0 if a < b, 1 if a = b, 2 if a > b (the avdigits-compare label)."""
    n = _n("compare", n, 2)
    return Rule("compare", lambda a, b: (a > b) - (a < b) + 1, n, 3, 2)


@RULES.register("equal", tiny={"n": 3})
def equal(n: int = 10) -> Rule:
    """1 if a = b else 0."""
    n = _n("equal", n, 2)
    return Rule("equal", lambda a, b: int(a == b), n, 2, 2)


@RULES.register("xor", tiny={})
def xor() -> Rule:
    """Parity of any number of binary concepts."""
    return Rule("xor", lambda *v: sum(v) % 2, 2, 2)


@RULES.register("max", tiny={"n": 3})
def max_rule(n: int = 10) -> Rule:
    """The largest of any number of concepts in 0..n-1."""
    n = _n("max", n, 1)
    return Rule("max", lambda *v: max(v), n, n)


def as_table(
    rule: str | Rule | Callable[..., int] | Tensor | np.ndarray | Sequence[Any],
    cards: Sequence[int],
    num_classes: int,
    rule_args: dict[str, Any] | None = None,
) -> Tensor:
    """The relation table (V_1, ..., V_k, C) of ``rule`` for concepts of sizes ``cards`` and C classes.

    rule: a registered name (with ``rule_args``), a :class:`Rule`, a Python callable
          ``fn(*values) -> class`` (enumerated over ``cards``), an integer array of shape ``cards``
          (the class of each combination) or a float array ``(*cards, C)`` whose last axis sums to 1.
    """
    cards = tuple(int(c) for c in cards)
    if isinstance(rule, str):
        try:
            entry = RULES.get(rule)
        except KeyError as e:
            raise ValueError(f"model.fusion_args.rule: {e.args[0]}") from None
        try:
            rule = entry.factory(**(rule_args or {}))
        except TypeError as e:
            raise ValueError(f"model.fusion_args.rule_args {rule_args} do not fit rule {entry.name!r}: {e}") from None
    elif rule_args:
        raise ValueError("model.fusion_args.rule_args applies to a named rule only; pass a configured Rule instead")
    if callable(rule) and not isinstance(rule, Rule):
        rule = Rule(getattr(rule, "__name__", "rule"), rule, cards, num_classes)
    if isinstance(rule, Rule):
        table = rule.table(len(cards))
        if tuple(table.shape[:-1]) != cards:
            raise ValueError(
                f"rule {rule.name!r} is defined over concepts of sizes {tuple(table.shape[:-1])}; the model's "
                f"concepts have sizes {cards}: set model.fusion_args.concepts (or rule_args.n) to match"
            )
    else:
        arr = torch.as_tensor(np.asarray(rule))
        if tuple(arr.shape) == cards and not arr.is_floating_point():
            if arr.numel() and (arr.min() < 0 or arr.max() >= num_classes):
                raise ValueError(f"rule table holds classes outside [0, {num_classes}); got [{arr.min()}, {arr.max()}]")
            table = torch.nn.functional.one_hot(arr.long(), num_classes).float()
        elif tuple(arr.shape) == (*cards, num_classes):
            table = arr.float()
            if (table < 0).any() or not torch.allclose(table.sum(-1), torch.ones(()), atol=1e-5):
                raise ValueError("a probabilistic rule table must be non-negative and sum to 1 over its last axis")
        else:
            raise ValueError(
                f"rule table of shape {tuple(arr.shape)}: expected integer classes of shape {cards} or a "
                f"relation table of shape {(*cards, num_classes)} (concept sizes, then {num_classes} classes)"
            )
    if table.shape[-1] != num_classes:
        raise ValueError(
            f"the rule has {table.shape[-1]} classes but the dataset has {num_classes} outputs; pick a rule "
            f"whose classes are the dataset's labels (model.fusion_args.rule)"
        )
    return table
