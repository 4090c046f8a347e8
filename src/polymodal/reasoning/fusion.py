"""Fusions that reason through concepts: each modality predicts concepts, a head maps them to the label.

    program             a known rule, exact: p(y) = sum_v prod_i p_i(v_i) T[v, y] (DeepProbLog-style)
    relation            the same with the table T learned (softmax over classes; CP low-rank optional)
    concept_bottleneck  a free head (MLP or linear) over the concept probabilities (Koh et al., 2020)

All three share :class:`ConceptFusion`: ``concept_logits(features, present)`` gives each concept's
logits (B, V) from its modality's features (one linear head, or MLP, per modality), and
``label_logits(concept_logits, present)`` maps them to label logits (``reason(probs, present)`` does
the same from concept probabilities). Every concept fusion takes ``hidden`` (0: linear concept heads,
else an MLP with that many units) and ``temperature`` (concept logits are divided by it: below 1, the
concepts start further from uniform). ``forward`` chains them, so the fusions train with any strategy
(``joint``: the label alone) and with ``cbm`` (concept supervision). Interventions set a concept's
logits to a one-hot (0 at the value, -inf elsewhere) and call ``label_logits`` again
(:mod:`polymodal.reasoning.analysis`).

The program and relation fusions contract in log space (:func:`log_contract`, a logsumexp over the
concept log-probabilities from ``log_softmax``): log p(y) stays exact and its gradient non-zero when
p(y) is below what a float can hold (two confident wrong concepts: p(y) ~ e^-100 underflows float32).
A class that no combination of concept values reaches (p(y) = 0 exactly) gets the finite logit
:data:`LOG_ZERO`.

Missing modalities: a program or relation fusion marginalises an absent modality's concepts under a
uniform prior (exact: the sum over its values, each weighted 1/V); the bottleneck head sees zeros and a
presence flag. Absent feature slots are never read (``torch.where`` before the heads).
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from polymodal.fusion.base import FUSIONS, Fusion, FusionOutput
from polymodal.reasoning.concepts import Concept, parse_concepts
from polymodal.reasoning.rules import MAX_TABLE_ENTRIES, RULES, SIZED_BY_CLASSES, Rule, as_table

CONCEPT_EXTRA = "concept"
"""The group of the extras that carry concept probabilities (``concept.<modality>.<name>``, (B, V)): predictions
files keep them as ``extra_concept.<key>`` and the report's concept section shows them."""

# label logit of a class with probability exactly 0 (no combination of concept values reaches it): finite, so
# that cross-entropy, metrics and checkpoints stay finite, and far below any log-probability the contraction
# meets (that would take concept log-probabilities near -1e4); representable in float16 / bfloat16 too
LOG_ZERO = -1.0e4


def contract(probs: Sequence[Tensor], table: Tensor) -> Tensor:
    """p(y) = sum_{v_1..v_k} prod_i probs[i][:, v_i] * table[v_1, ..., v_k, y]: (B, C), in probability space.

    probs: k tensors (B, V_i) (rows need not sum to 1); table: (V_1, ..., V_k, C). Exact, by
    contracting one concept at a time (cost B * prod V_i * C), but p(y) underflows to 0 when it falls
    below the float's range; the fusions use :func:`log_contract`.
    """
    if len(probs) != table.dim() - 1:
        raise ValueError(f"contract: {len(probs)} concept distributions for a table over {table.dim() - 1} concepts")
    out = torch.einsum("bi,i...->b...", probs[0], table)
    for p in probs[1:]:
        out = torch.einsum("bi,bi...->b...", p, out)
    return out


def _logsumexp(x: Tensor, dim: int) -> Tensor:
    """logsumexp over ``dim`` that returns -inf, with a zero gradient, where every term is -inf
    (``torch.logsumexp`` gives a NaN gradient there, and such slices are common: a rule's table is
    mostly zeros)."""
    m = x.detach().amax(dim, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    s = (x - m).exp().sum(dim)
    some = s > 0
    out = torch.where(some, s, torch.ones_like(s)).log() + m.squeeze(dim)
    return torch.where(some, out, torch.full_like(out, -math.inf))


def safe_log(p: Tensor) -> Tensor:
    """log p with log 0 = -inf and a zero (not NaN) gradient at p = 0."""
    pos = p > 0
    return torch.where(pos, torch.where(pos, p, torch.ones_like(p)).log(), torch.full_like(p, -math.inf))


def log_contract(log_probs: Sequence[Tensor], log_table: Tensor) -> Tensor:
    """log p(y) = logsumexp_{v_1..v_k} (sum_i log_probs[i][:, v_i] + log_table[v_1, ..., v_k, y]): (B, C).

    The log-space twin of :func:`contract`: log_probs are k tensors (B, V_i) of log-probabilities
    (-inf allowed, e.g. a one-hot intervention), log_table is (V_1, ..., V_k, C) (-inf where the table
    is 0). Exact for any p(y) a float's exponent range can write as a log, with a non-zero gradient
    where the probability-space product underflows. -inf where p(y) = 0 exactly. Cost: B * prod V_i * C
    in time and memory (the first step broadcasts the table over the batch).
    """
    if len(log_probs) != log_table.dim() - 1:
        raise ValueError(f"log_contract: {len(log_probs)} concept distributions for a table over {log_table.dim() - 1} concepts")
    out = log_table[None]  # (1, V_1, ..., V_k, C): contract V_1, then V_2, ... (always dimension 1)
    for lp in log_probs:
        if lp.dim() != 2 or lp.shape[1] != out.shape[1]:
            raise ValueError(f"log_contract: concept log-probabilities of shape {tuple(lp.shape)}; expected (B, {out.shape[1]})")
        out = _logsumexp(lp.reshape(*lp.shape, *([1] * (out.dim() - 2))) + out, dim=1)
    return out


class ConceptFusion(Fusion):
    """Base: per-modality concept heads plus ``reason``; subclasses define ``reason``."""

    concepts: list[Concept]

    def __init__(self, in_dims: dict[str, int], concepts: list[Concept], hidden: int = 0, temperature: float = 1.0) -> None:
        super().__init__()
        if not in_dims:
            raise ValueError(f"{type(self).__name__} needs at least one modality in in_dims; got none")
        if not isinstance(hidden, int) or hidden < 0:
            raise ValueError(f"model.fusion_args.hidden={hidden!r}: expected an integer >= 0 (0 = linear concept heads)")
        if not isinstance(temperature, int | float) or not temperature > 0:
            raise ValueError(f"model.fusion_args.temperature={temperature!r}: expected a number > 0")
        self.temperature = float(temperature)
        self.concepts = concepts
        self.modality_names = list(in_dims)
        heads = {}
        for m, d in in_dims.items():
            width = sum(c.num_values for c in concepts if c.modality == m)
            if width == 0:
                continue
            heads[m] = nn.Linear(d, width) if hidden == 0 else nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, width))
        self.heads = nn.ModuleDict(heads)

    @property
    def keys(self) -> list[str]:
        return [c.key for c in self.concepts]

    def concept_logits(self, features: dict[str, Tensor], present: dict[str, Tensor]) -> dict[str, Tensor]:
        """concept key -> logits (B, V); rows where the modality is absent hold the head's bias (unused)."""
        out: dict[str, Tensor] = {}
        for m, head in self.heads.items():
            x = torch.where(present[m][:, None], features[m], 0.0)
            z = head(x) / self.temperature
            sizes = [c.num_values for c in self.concepts if c.modality == m]
            parts = z.split(sizes, dim=1)
            for c, part in zip([c for c in self.concepts if c.modality == m], parts, strict=True):
                out[c.key] = part
        return out

    def concept_probs(self, features: dict[str, Tensor], present: dict[str, Tensor]) -> dict[str, Tensor]:
        return {k: v.softmax(-1) for k, v in self.concept_logits(features, present).items()}

    @abstractmethod
    def reason(self, probs: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        """Label logits (B, C) from concept probabilities (key -> (B, V)) and the presence mask."""

    def label_logits(self, concept_logits: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        """Label logits (B, C) from concept logits (key -> (B, V); -inf allowed), what ``forward`` and
        training use: ``reason`` of their softmax here; the program and relation fusions work from their
        ``log_softmax`` instead, so that nothing underflows."""
        return self.reason({k: z.softmax(-1) for k, z in concept_logits.items()}, present)

    def forward(self, features: dict[str, Tensor], present: dict[str, Tensor]) -> FusionOutput:
        logits = self.concept_logits(features, present)
        probs = {k: z.softmax(-1) for k, z in logits.items()}
        return FusionOutput(self.label_logits(logits, present),
                            extras={f"{CONCEPT_EXTRA}.{k}": p for k, p in probs.items()})

    def _marginalised_log(self, log_probs: dict[str, Tensor], present: dict[str, Tensor]) -> list[Tensor]:
        """Each concept's log-distribution, the uniform prior (log 1/V) where its modality is absent."""
        out = []
        for c in self.concepts:
            lp = log_probs[c.key]
            out.append(torch.where(present[c.modality][:, None], lp, torch.full_like(lp, -math.log(c.num_values))))
        return out

    def _log_reason(self, log_probs: dict[str, Tensor], present: dict[str, Tensor], log_table: Tensor) -> Tensor:
        """log p(y) by :func:`log_contract`; :data:`LOG_ZERO` where p(y) = 0 exactly."""
        q = self._marginalised_log(log_probs, present)
        out = log_contract(q, log_table.to(q[0].dtype))
        return torch.where(torch.isneginf(out), torch.full_like(out, LOG_ZERO), out)


def _check_table_size(name: str, concepts: list[Concept], num_outputs: int) -> None:
    size = math.prod(c.num_values for c in concepts) * num_outputs
    if size > MAX_TABLE_ENTRIES:
        raise ValueError(
            f"{name} fusion: concepts {[(c.key, c.num_values) for c in concepts]} x {num_outputs} classes give a "
            f"table of {size} entries (limit {MAX_TABLE_ENTRIES}); use fewer concepts or values"
        )


@FUSIONS.register("program", tiny={"rule": "max"})
class ProgramFusion(ConceptFusion):
    """Neuro-symbolic fusion with a known rule: the label distribution computed exactly from the concepts.

    Each modality's features go through a linear head (or an MLP with ``hidden`` units) to the logits of
    its concepts; with the rule's relation table T (V_1, ..., V_k, C),

        p(y) = sum_{v_1..v_k} prod_i p_i(v_i) T[v_1, ..., v_k, y],     logits = log p(y)      (B, C)

    computed in log space (:func:`log_contract`), so cross-entropy on the logits is the negative log-likelihood of the label under the program, as
    in DeepProbLog (Manhaeve et al., NeurIPS 2018): trained from the label alone, the concepts are
    learned up to the rule's symmetries (for sum mod 10: a cyclic shift a -> a + c, b -> b - c).

    rule:      a name in ``RULES`` (sum_mod10, sum_mod, sum, compare, equal, xor, max), a Python
               callable ``fn(*values) -> class``, an integer table of classes (V_1, ..., V_k) or a
               relation table (V_1, ..., V_k, C); see :func:`polymodal.reasoning.rules.as_table`
    rule_args: keyword arguments of a named rule (e.g. ``{"n": 5}``; sum_mod and max default to
               n = the number of classes)
    concepts:  see :func:`polymodal.reasoning.concepts.parse_concepts`; default: one concept per
               modality with the rule's number of values
    temperature: concept logits are divided by it (default 0.2): the concepts start away from
               uniform, where p(y) of a sum is flat in every direction and label-only training
               stalls (on avdigits-sum: 13 epochs to 94 % validation accuracy at 0.2, about 20 to 74 %
               at 1.0)
    Missing modality: its concepts are marginalised under a uniform prior. No per-modality logits.
    """

    def __init__(
        self,
        in_dims: dict[str, int],
        num_outputs: int,
        rule: str | Rule | Callable[..., int] | Tensor | np.ndarray | list | None = None,
        rule_args: dict[str, Any] | None = None,
        concepts: Any = None,
        hidden: int = 0,
        temperature: float = 0.2,
    ) -> None:
        if rule is None:
            raise ValueError(f"program fusion needs a rule: set model.fusion_args.rule to one of {RULES.names()}")
        default = 10
        if isinstance(rule, str) and rule in SIZED_BY_CLASSES and "n" not in (rule_args or {}):
            rule_args = {**(rule_args or {}), "n": num_outputs}
        if isinstance(rule, str) and rule in RULES:
            try:
                r = RULES.get(rule).factory(**(rule_args or {}))
            except TypeError as e:
                raise ValueError(f"model.fusion_args.rule_args {rule_args} do not fit rule {rule!r}: {e}") from None
            default = r.values if isinstance(r.values, int) else r.values[0]
        elif isinstance(rule, Rule):
            default = rule.values if isinstance(rule.values, int) else rule.values[0]
        concept_list = parse_concepts(concepts, list(in_dims), default)
        super().__init__(in_dims, concept_list, hidden, temperature)
        _check_table_size("program", concept_list, num_outputs)
        table = as_table(rule, [c.num_values for c in concept_list], num_outputs, rule_args)
        self.register_buffer("table", table, persistent=False)

    def reason(self, probs: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        return self._log_reason({k: safe_log(p) for k, p in probs.items()}, present, safe_log(self.table))

    def label_logits(self, concept_logits: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        return self._log_reason({k: z.log_softmax(-1) for k, z in concept_logits.items()}, present, safe_log(self.table))


@FUSIONS.register("relation", tiny={"concepts": 2})
class RelationFusion(ConceptFusion):
    """Learned structure: the program fusion with the rule unknown, a learned relation table.

    T[v, :] = softmax over classes of W[v, :], W (V_1, ..., V_k, C) a free tensor (``rank=None``) or a
    CP factorisation W[v, y] = sum_r prod_i A_i[r, v_i] * B[r, y] (``rank=r``: sum_i V_i r + C r
    parameters instead of prod_i V_i C, for large tables). Then p(y) = sum_v prod_i p_i(v_i) T[v, y] as in
    :class:`ProgramFusion`, logits = log p(y). The model must discover the rule; compare
    ``relation_table()`` with the true table after aligning the latent concepts
    (:func:`polymodal.reasoning.analysis.table_agreement`).

    concepts: default 10 values per modality. temperature: as in :class:`ProgramFusion` (default 0.2).
    table_temperature: the table's logits are W / table_temperature (default 0.1), so that an optimiser
    step moves them 1 / table_temperature times further: at 1.0 a 10 x 10 x 10 table learns too slowly
    (with the digits supervised, 20 epochs recover a third of the sum table; at 0.1 all of it).
    init_std: std of the table's initial logits.
    """

    def __init__(
        self,
        in_dims: dict[str, int],
        num_outputs: int,
        concepts: Any = None,
        rank: int | None = None,
        hidden: int = 0,
        init_std: float = 1.0,
        temperature: float = 0.2,
        table_temperature: float = 0.1,
    ) -> None:
        concept_list = parse_concepts(concepts, list(in_dims), 10)
        super().__init__(in_dims, concept_list, hidden, temperature)
        _check_table_size("relation", concept_list, num_outputs)
        if not isinstance(table_temperature, int | float) or not table_temperature > 0:
            raise ValueError(f"model.fusion_args.table_temperature={table_temperature!r}: expected a number > 0")
        self.table_temperature = float(table_temperature)
        cards = [c.num_values for c in concept_list]
        self.rank = rank
        std = init_std * self.table_temperature  # the table's logits start with std init_std
        if rank is None:
            self.weight = nn.Parameter(torch.randn(*cards, num_outputs) * std)
        else:
            if not isinstance(rank, int) or rank < 1:
                raise ValueError(f"model.fusion_args.rank={rank!r}: expected an integer >= 1 or null (full table)")
            s = (std / math.sqrt(rank)) ** (1.0 / (len(cards) + 1))  # a sum of rank products of k + 1 factors
            self.factors = nn.ParameterList([nn.Parameter(torch.randn(rank, v) * s) for v in cards])
            self.out_factor = nn.Parameter(torch.randn(rank, num_outputs) * s)

    def relation_logits(self) -> Tensor:
        """The table's logits (V_1, ..., V_k, C): W / table_temperature."""
        if self.rank is None:
            return self.weight / self.table_temperature
        w = self.out_factor  # (r, C)
        for a in reversed(self.factors):  # build (r, V_i, ..., V_k, C)
            w = a.reshape(*a.shape, *([1] * (w.dim() - 1))) * w[:, None]
        return w.sum(0) / self.table_temperature

    def relation_table(self) -> Tensor:
        """The learned table T (V_1, ..., V_k, C), each row a distribution over classes."""
        return self.relation_logits().softmax(-1)

    def reason(self, probs: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        return self._log_reason({k: safe_log(p) for k, p in probs.items()}, present, self.relation_logits().log_softmax(-1))

    def label_logits(self, concept_logits: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        log_probs = {k: z.log_softmax(-1) for k, z in concept_logits.items()}
        return self._log_reason(log_probs, present, self.relation_logits().log_softmax(-1))


@FUSIONS.register("concept_bottleneck", tiny={"concepts": 2, "head_hidden": 4})
class ConceptBottleneckFusion(ConceptFusion):
    """Concept bottleneck (Koh et al., ICML 2020): concepts per modality, then a free head to the label.

    Head input: every concept's probabilities (zeros where its modality is absent) and one presence
    flag per modality; head: linear (``head_hidden=0``) or Linear -> ReLU -> Linear with
    ``head_hidden`` units. Output: label logits (B, C). Train it with the ``cbm`` strategy for the
    paper's independent / sequential / joint modes with concept supervision, or with ``joint`` (label
    only: an unsupervised bottleneck).
    concepts: default 10 values per modality.
    """

    def __init__(
        self,
        in_dims: dict[str, int],
        num_outputs: int,
        concepts: Any = None,
        hidden: int = 0,
        head_hidden: int = 128,
        temperature: float = 1.0,
    ) -> None:
        concept_list = parse_concepts(concepts, list(in_dims), 10)
        super().__init__(in_dims, concept_list, hidden, temperature)
        if not isinstance(head_hidden, int) or head_hidden < 0:
            raise ValueError(f"model.fusion_args.head_hidden={head_hidden!r}: expected an integer >= 0 (0 = linear head)")
        width = sum(c.num_values for c in concept_list) + len(in_dims)
        self.head = (
            nn.Linear(width, num_outputs)
            if head_hidden == 0
            else nn.Sequential(nn.Linear(width, head_hidden), nn.ReLU(), nn.Linear(head_hidden, num_outputs))
        )

    def reason(self, probs: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        parts = [torch.where(present[c.modality][:, None], probs[c.key], 0.0) for c in self.concepts]
        flags = [present[m][:, None].to(parts[0].dtype) for m in self.modality_names]
        return self.head(torch.cat([*parts, *flags], dim=1))


__all__ = [
    "LOG_ZERO",
    "ConceptBottleneckFusion",
    "ConceptFusion",
    "ProgramFusion",
    "RelationFusion",
    "contract",
    "log_contract",
    "safe_log",
]
