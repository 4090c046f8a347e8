"""AGM: adaptive gradient modulation from Shapley mono-modal responses (Li et al., ICCV 2023).

Paper: H. Li, X. Li, P. Hu, Y. Lei, C. Li, Y. Zhou, "Boosting Multi-modal Model Performance with
Adaptive Gradient Modulation", ICCV 2023, arXiv 2308.07686. Official code: github lihong2303/AGM_ICCV2023
(the 2- and 3-modality training loops); BalanceBenchmark (github GeWu-Lab/BalanceBenchmark,
``AGM_trainer.py``) for the M-modality Shapley form.

Mono-modal response of modality m: its Shapley value in the fused logits, over coalitions S of the
other modalities (a coalition's value v(S) = the fused logits with only S present, v({}) = 0):

    phi_m = sum_{S subset of others} |S|! (M - |S| - 1)! / M! * (v(S + {m}) - v(S))       (B, C)

(for two modalities: phi_a = (v(av) - v(v) + v(a)) / 2, the official code's form). The coalitions
without every modality are evaluated in eval mode without gradient, as in the official code; for late
(sum) fusion phi_m equals the modality's own logits. Then, per batch:

    s_m = mean over present rows of -log max(softmax(phi_m)[y], 1e-8)       (mono-modal loss)
    r_m = exp(M / (M - 1) * (mean_j s_j - s_m))                             (current discrepancy)
    eta_m = the same with s replaced by its running mean over all steps so far, s_hat
    k_m = exp(alpha * min(eta_m - r_m, clip))                               (gradient coefficient)

The loss is one cross-entropy on the fused logits; after backward, every gradient of encoder m is
multiplied by k_m (a modality learning faster than its running average is slowed, a lagging one sped
up). s_hat is updated after k is computed (s_hat = 0, hence eta = 1, at the first step). The official
code scales the mono-modal outputs' gradients with backward hooks; scaling encoder m's gradients is the
paper's stated effect and works for any fusion. Scores are all-reduced under DDP so every rank applies
the same coefficients.

Hyper-parameters (official code defaults): ``alpha`` 1.0 (BalanceBenchmark uses 0.1), ``clip`` 10
(the exponent's cap in the official CREMA-D loop; 7 in its other loops), modulation window epochs 0..20.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from polymodal.data.batch import Batch
from polymodal.strategies.base import STRATEGIES, StepContext, Strategy, unwrap
from polymodal.strategies.joint import encoder_grad_norms
from polymodal.strategies.toolkit import (
    GradSnapshot,
    check_number,
    check_setup,
    check_window,
    eval_mode,
    in_window,
    mean_over_present,
    present_sum,
    true_class_probability,
)


def shapley_values(values: Mapping[frozenset[str], Tensor], names: Sequence[str]) -> dict[str, Tensor]:
    """Shapley value of each modality from coalition values (v(frozenset()) is 0 when absent).

    values: coalition -> (B, C) fused logits with exactly that coalition present.
    """
    n = len(names)
    out: dict[str, Tensor] = {}
    for m in names:
        others = [j for j in names if j != m]
        total: Tensor | None = None
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for combo in itertools.combinations(others, size):
                s = frozenset(combo)
                with_m = values[s | {m}]
                without = values[s] if s else torch.zeros_like(with_m)
                term = weight * (with_m - without)
                total = term if total is None else total + term
        out[m] = total
    return out


def agm_coefficients(
    scores: Mapping[str, float], running: Mapping[str, float], alpha: float, clip: float
) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """(r, eta, k) per modality from current mono-modal losses and their running means."""
    n = len(scores)
    mean_s = sum(scores.values()) / n
    mean_r = sum(running[m] for m in scores) / n
    r = {m: math.exp(n / (n - 1) * (mean_s - s)) for m, s in scores.items()}
    eta = {m: math.exp(n / (n - 1) * (mean_r - running[m])) for m in scores}
    k = {m: math.exp(alpha * min(eta[m] - r[m], clip)) for m in scores}
    return r, eta, k


@STRATEGIES.register("agm", tiny={})
class AGM(Strategy):
    """Adaptive gradient modulation: each encoder's gradient scaled by its Shapley-based coefficient.

    alpha:             modulation strength (official default 1.0)
    clip:              cap on eta - r inside the exponential (official CREMA-D loop: 10)
    modulation_starts: first epoch with modulation (official 0)
    modulation_ends:   last epoch with modulation, inclusive (official 20)
    Fusion: any fusion that runs with modalities marked absent (default ``late``); 2^M - 1 forward
    passes per step.
    """

    def __init__(self, alpha: float = 1.0, clip: float = 10.0, modulation_starts: int = 0,
                 modulation_ends: int = 20) -> None:
        self.alpha = check_number("alpha", alpha, note="official default 1.0")
        self.clip = check_number("clip", clip, strict=True, note="official 10")
        check_window(modulation_starts, modulation_ends)
        self.modulation_starts, self.modulation_ends = modulation_starts, modulation_ends
        self.running: dict[str, float] = {}  # modality -> running mean of its mono-modal loss s_hat
        self.counts: dict[str, int] = {}  # modality -> steps that entered its running mean

    def setup(self, model: nn.Module, train_dataset: Any) -> None:
        core = check_setup(self, model, train_dataset)
        if len(core.modalities) > 6:
            raise ValueError(f"strategy 'agm' evaluates 2^M coalitions; M={len(core.modalities)} is too many (<= 6)")

    def _coalitions(self, core: nn.Module, batch: Batch, full: Tensor) -> dict[frozenset[str], Tensor]:
        names = core.modalities
        values = {frozenset(names): full.detach()}
        with eval_mode(core), torch.no_grad():
            for size in range(1, len(names)):
                for combo in itertools.combinations(names, size):
                    values[frozenset(combo)] = core(batch, modalities=list(combo)).logits
        return values

    def training_step(self, model: nn.Module, batch: Batch, ctx: StepContext) -> dict[str, Tensor | float]:
        core = unwrap(model)
        out = model(batch)
        loss = self.task.loss(out.logits, batch.label, class_weights=ctx.class_weights)
        phi = shapley_values(self._coalitions(core, batch, out.logits), core.modalities)
        names = [m for m in core.modalities if bool(batch.present[m].any())]
        stats = {}
        with torch.no_grad():
            for m in names:
                rows = batch.present[m]
                p = true_class_probability(phi[m][rows], batch.label[rows])
                stats[m] = present_sum(-torch.log(p.clamp_min(1e-8)), rows)
        snap = GradSnapshot(core.encoders.parameters())
        ctx.backward(loss)
        logs: dict[str, Tensor | float] = {"loss": loss.detach()}
        if len(names) >= 2:
            scores = mean_over_present(stats, ctx)
            running = {m: self.running.get(m, 0.0) for m in names}
            r, eta, k = agm_coefficients(scores, running, self.alpha, self.clip)
            active = in_window(ctx.epoch, self.modulation_starts, self.modulation_ends)
            for m in names:
                if active:  # scale this step's gradient; earlier micro-batches' (accumulation) are kept
                    snap.scale(core.encoders[m].parameters(), k[m])
                logs.update({f"score/{m}": scores[m], f"ratio/{m}": r[m], f"coeff/{m}": k[m] if active else 1.0})
            for m in names:
                c = self.counts[m] = self.counts.get(m, 0) + 1
                self.running[m] = running[m] * (c - 1) / c + scores[m] / c
        logs.update(encoder_grad_norms(core))
        ctx.step()
        return logs

    def state_dict(self) -> dict[str, Any]:
        return {"running": dict(self.running), "counts": dict(self.counts)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.running = {k: float(v) for k, v in state.get("running", {}).items()}
        self.counts = {k: int(v) for k, v in state.get("counts", {}).items()}
