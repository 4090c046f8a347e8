"""Test-time fusion rules: per-modality logits + presence -> fused logits.

The rules form a registry, ``FUSION_RULES`` (a strategy names one as ``strategy.args.fusion_rule``);
every entry is a function ``rule(logits, present, weights=None, temperatures=None) -> (B, C)`` with the
weights of the ``fixed`` rule and the per-modality temperatures of the ``calibrated`` rules (each rule reads
only its own). Adding a rule is a function and a registry line; the registry-parametrised test
``tests/inference/test_rule_registry.py`` then checks it (absent modalities drop out, NaN in absent slots
is never read, a row with nothing present gets zeros).

fixed          weights from the config (equal by default), renormalised over present modalities
entropy        per sample: e_m = -sum_c p_mc log p_mc, w_m = softmax over present m of (-e_m)  (MLA, correct)
entropy-batch  the MLA reference code's rule: softmax over the BATCH dimension, entropy summed over the
               whole batch, one weight per modality per batch (depends on batch composition; exists only
               to reproduce published numbers; evaluate with batch size 64 as the reference did, on the
               fixed random order of the split that ``data.eval_order=auto`` gives it)
calibrated     sum over present m of log softmax(o_m / T_m), T_m fitted on the validation split
               (:mod:`polymodal.inference.calibration`): the Bayes rule when the modalities are conditionally
               independent given the label (up to the class prior, constant on balanced classes)
calibrated-entropy  the entropy rule on calibrated probabilities: w_m = softmax over present m of
               -entropy(softmax(o_m / T_m)), output sum_m w_m log softmax(o_m / T_m)

Every rule returns sum_m w_m x_m with w_m = 0 for an absent modality, where x_m = o_m (the logits) or,
for the ``CALIBRATED_RULES``, the calibrated log-probabilities log softmax(o_m / T_m); the weights sum
to 1 over the present modalities except in ``calibrated``, where every present one has weight 1 (a
sum of log-likelihoods). A row with nothing present gets zeros.

Regression: ``fixed`` is a weighted mean of the per-modality real-valued outputs (B, K), renormalised
over the present modalities; the entropy rules read the outputs as class logits and are not defined there.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

import torch
from torch import Tensor

from polymodal.fusion.masking import masked_softmax, masked_sum, presence_mask
from polymodal.registry import Registry

FUSION_RULES: Registry[Tensor] = Registry("fusion rule")  # name -> rule(logits, present, weights=None)

# rules whose output for a sample depends on the other samples of its batch: evaluated on a fixed random
# order of the split (``data.eval_order``), never on a class-sorted one
BATCH_LEVEL_RULES = ("entropy-batch",)
# rules that read per-modality temperatures fitted on the validation split (a strategy fits them before it
# evaluates; MLA stores them in its checkpoint) and mix calibrated log-probabilities instead of logits
CALIBRATED_RULES = ("calibrated", "calibrated-entropy")


def _stack(logits: Mapping[str, Tensor], present: Mapping[str, Tensor], names: Sequence[str]) -> tuple[Tensor, Tensor]:
    o = torch.stack([logits[m] for m in names], dim=1)  # (B, M, C)
    return o, presence_mask(present, names)  # (B, M)


def _combine(o: Tensor, mask: Tensor, w: Tensor) -> Tensor:
    """sum_m w_m o_m with the weights renormalised over each row's present modalities (0 where none is)."""
    w = torch.where(mask, w, torch.zeros_like(w))
    total = w.sum(dim=1, keepdim=True)
    w = torch.where(total > 0, w / total.clamp_min(1e-12), torch.zeros_like(w))
    return masked_sum(o, mask, w)


@FUSION_RULES.register("fixed", tiny={})
def fixed_fusion(
    logits: Mapping[str, Tensor],
    present: Mapping[str, Tensor],
    weights: Mapping[str, float] | None = None,
    temperatures: Mapping[str, float] | None = None,
) -> Tensor:
    """Fixed weights (equal by default) renormalised over the present modalities: (B, C) = sum_m w_m o_m."""
    names = list(logits)
    if weights is not None:
        missing = [m for m in names if m not in weights]
        if missing:
            raise ValueError(f"fixed fusion weights lack modalities {missing}; got weights for {sorted(weights)}")
        if any(weights[m] < 0 for m in names):
            raise ValueError(f"fixed fusion weights must be >= 0; got {dict(weights)}")
    o, mask = _stack(logits, present, names)
    w = torch.tensor([1.0 if weights is None else float(weights[m]) for m in names], dtype=o.dtype, device=o.device)
    return _combine(o, mask, w.expand(mask.shape))


def entropy(logits: Tensor) -> Tensor:
    """Per-row entropy (nats) of softmax over the last dimension: (..., C) -> (...)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(dim=-1)


def entropy_fusion(logits: Mapping[str, Tensor], present: Mapping[str, Tensor]) -> Tensor:
    """Per-sample uncertainty weighting: w_m = softmax over present modalities of -entropy(o_m)."""
    names = list(logits)
    o, mask = _stack(logits, present, names)
    w = masked_softmax(-entropy(o), mask).to(o.dtype)  # (B, M)
    return _combine(o, mask, w)


def entropy_batch_fusion(logits: Mapping[str, Tensor], present: Mapping[str, Tensor]) -> Tensor:
    """The reference code's batch-level rule (one weight per modality for the whole batch).

    For each modality: p = softmax(o_m, dim=0) (over the batch!), e_m = -sum(p * log p) over all entries,
    w = softmax over modalities of (-e_m). Only the rows where a modality is present enter its entropy;
    weights are then renormalised per row over the modalities present in that row.
    """
    names = list(logits)
    o, mask = _stack(logits, present, names)
    neg_e = []
    for i, m in enumerate(names):
        rows = mask[:, i]
        if bool(rows.any()):
            p = torch.softmax(logits[m][rows].float(), dim=0)
            neg_e.append((p * torch.log(p)).sum())
        else:
            neg_e.append(torch.tensor(float("-inf"), device=o.device))
    w = torch.softmax(torch.stack(neg_e), dim=0).to(o.dtype)
    return _combine(o, mask, w.expand(mask.shape))


@FUSION_RULES.register("entropy", tiny={})
def _entropy_rule(
    logits: Mapping[str, Tensor],
    present: Mapping[str, Tensor],
    weights: Mapping[str, float] | None = None,
    temperatures: Mapping[str, float] | None = None,
) -> Tensor:
    """Per-sample entropy weights: softmax over the present modalities of minus each one's entropy (MLA)."""
    return entropy_fusion(logits, present)


@FUSION_RULES.register("entropy-batch", tiny={})
def _entropy_batch_rule(
    logits: Mapping[str, Tensor],
    present: Mapping[str, Tensor],
    weights: Mapping[str, float] | None = None,
    temperatures: Mapping[str, float] | None = None,
) -> Tensor:
    """The MLA reference code's batch-level entropy weights: one weight per modality for the whole batch."""
    return entropy_batch_fusion(logits, present)


def calibrated_log_probs(
    logits: Mapping[str, Tensor], temperatures: Mapping[str, float] | None
) -> dict[str, Tensor]:
    """log softmax(o_m / T_m) of every modality (the calibrated rules' inputs); raises without a temperature
    for each modality, or with one that is not a positive finite number."""
    names = list(logits)
    if temperatures is None:
        raise ValueError(
            "the calibrated fusion rules need a temperature per modality, fitted on the validation split; none "
            "was given (a strategy fits them before it evaluates: see docs/strategies.md, 'MLA, done right')"
        )
    missing = [m for m in names if m not in temperatures]
    if missing:
        raise ValueError(f"calibrated fusion: no temperature for modalities {missing}; got temperatures for "
                         f"{sorted(temperatures)}")
    bad = {m: temperatures[m] for m in names if not (math.isfinite(float(temperatures[m])) and temperatures[m] > 0)}
    if bad:
        raise ValueError(f"calibrated fusion: temperatures must be positive finite numbers; got {bad}")
    return {m: torch.log_softmax(logits[m].float() / float(temperatures[m]), dim=-1).to(logits[m].dtype)
            for m in names}


@FUSION_RULES.register("calibrated", tiny={"temperatures": {"audio": 0.5, "image": 2.0, "text": 1.0}})
def calibrated_fusion(
    logits: Mapping[str, Tensor],
    present: Mapping[str, Tensor],
    weights: Mapping[str, float] | None = None,
    temperatures: Mapping[str, float] | None = None,
) -> Tensor:
    """Sum of the present modalities' calibrated log-probabilities log softmax(o_m / T_m) (the Bayes rule)."""
    logp = calibrated_log_probs(logits, temperatures)
    names = list(logp)
    o, mask = _stack(logp, present, names)
    return masked_sum(o, mask, torch.ones(mask.shape, dtype=o.dtype, device=o.device))


@FUSION_RULES.register("calibrated-entropy", tiny={"temperatures": {"audio": 0.5, "image": 2.0, "text": 1.0}})
def calibrated_entropy_fusion(
    logits: Mapping[str, Tensor],
    present: Mapping[str, Tensor],
    weights: Mapping[str, float] | None = None,
    temperatures: Mapping[str, float] | None = None,
) -> Tensor:
    """Per-sample entropy weights on calibrated probabilities, mixing the calibrated log-probabilities."""
    return entropy_fusion(calibrated_log_probs(logits, temperatures), present)


RULES: tuple[str, ...] = tuple(sorted(FUSION_RULES.registered()))  # the rules registered above (fusion_rule's values)
FusionRuleName = Literal[RULES]  # type: ignore[valid-type]  (what strategy.args.fusion_rule may be: checked at load)


def fuse(
    rule: str,
    logits: Mapping[str, Tensor],
    present: Mapping[str, Tensor],
    weights: Mapping[str, float] | None = None,
    temperatures: Mapping[str, float] | None = None,
) -> Tensor:
    """Fused logits (B, C) of the registered rule ``rule``; ``weights`` are used by the ``fixed`` rule only,
    ``temperatures`` (fitted on validation) by the ``CALIBRATED_RULES`` only."""
    if rule not in FUSION_RULES:
        raise ValueError(f"unknown fusion rule {rule!r}; expected one of {RULES}")
    return FUSION_RULES.get(rule).factory(logits, present, weights, temperatures)
