"""OGM-GE: on-the-fly gradient modulation with generalisation enhancement (Peng et al., CVPR 2022).

Paper: X. Peng, Y. Wei, A. Deng, D. Wang, D. Hu, "Balanced Multimodal Learning via On-the-fly Gradient
Modulation", CVPR 2022, arXiv 2203.15332. Official code: github GeWu-Lab/OGM-GE_CVPR2022 (``main.py``).

One cross-entropy on the fused logits (late fusion: the sum of the per-modality heads' logits). After
the backward pass, each modality's discriminative score on the batch is measured from its own logits,
``score_m = sum_i softmax(o_m)_i[y_i]``, and the encoder of the dominant modality is slowed down:

    ratio_a = score_a / score_v                          (two modalities, as published)
    k_a = 1 - tanh(alpha * relu(ratio_a))  if ratio_a > 1,  else 1        (Eq. 10)
    grad(W) <- k_m * grad(W) + N(0, std(grad(W)))        for the weights W of encoder m (GE)

GE adds Gaussian noise whose std is that of the (unscaled) gradient itself, to the encoders of every
modality, as the official code does (``ge_scope="all"``); ``"modulated"`` restricts it to encoders whose
coefficient is below 1. Modulation is active for ``modulation_starts <= epoch <= modulation_ends``.

Generalisation to M >= 2 modalities (not in the paper): ``ratio_m = score_m / mean_{j != m} score_j``,
with the same coefficient; for two modalities this is exactly the published rule, except at a tie
(ratio exactly 1), where the official code slows audio and this rule slows neither. Scores are means
over the rows where the modality is present (for full batches the ratios equal the published sums'),
and under DDP they are all-reduced so that every rank applies the same coefficients.

Hyper-parameters (published defaults): ``alpha`` 0.8 on CREMA-D (0.1 on VGGSound, 0.3 in
BalanceBenchmark); ``modulation_starts``/``modulation_ends`` 0/50 (official ``main.py``); optimiser of the
official code: SGD lr 1e-3, momentum 0.9, weight decay 1e-4, StepLR(70, 0.1), batch 64.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import Tensor, nn

from polymodal.data.batch import Batch
from polymodal.strategies.base import STRATEGIES, StepContext, Strategy, grad_norm, unwrap
from polymodal.strategies.toolkit import (
    GradSnapshot,
    check_number,
    check_setup,
    check_window,
    dominance_ratios,
    in_window,
    mean_over_present,
    per_modality_logits,
    present_sum,
    true_class_probability,
    unimodal_losses,
)


def ogm_coefficients(scores: Mapping[str, float], alpha: float) -> tuple[dict[str, float], dict[str, float]]:
    """OGM's ratios and gradient coefficients from per-modality scores (floats >= 0).

    ratio_m = score_m / mean over the other modalities of their scores;
    coeff_m = 1 - tanh(alpha * relu(ratio_m)) when ratio_m > 1, else 1.
    Returns (ratios, coefficients), keyed like ``scores``.
    """
    ratios = dominance_ratios(scores)
    coeffs = {m: 1.0 - math.tanh(alpha * max(r, 0.0)) if r > 1 else 1.0 for m, r in ratios.items()}
    return ratios, coeffs


_MIN_NDIM = {"weights": 2, "conv": 3}  # param_filter -> smallest parameter ndim that is modulated


@STRATEGIES.register("ogm_ge", tiny={})
class OGMGE(Strategy):
    """On-the-fly gradient modulation (+ Gaussian noise) of the dominant modality's encoder.

    alpha:             modulation strength (0.8 on CREMA-D, the default; 0.1 on VGGSound)
    modulation_starts: first epoch with modulation (official default 0)
    modulation_ends:   last epoch with modulation, inclusive (official default 50)
    ge:                add the generalisation-enhancement noise (False = plain OGM)
    ge_scope:          "all" (official code: noise on every encoder) or "modulated" (only encoders
                       whose coefficient is below 1)
    param_filter:      which encoder parameters are touched: "weights" (every weight matrix or kernel,
                       ndim >= 2: conv and linear layers) or "conv" (conv kernels only, ndim >= 3: the
                       official code, whose ResNet encoders have no linear layer, touches 4-D kernels)
    seed:              seed of the GE noise generator (its state is checkpointed: resume is exact)
    Fusion: needs per-modality logits (default ``late``, OGM-GE's "sum" fusion).
    """

    def __init__(
        self,
        alpha: float = 0.8,
        modulation_starts: int = 0,
        modulation_ends: int = 50,
        ge: bool = True,
        ge_scope: Literal["all", "modulated"] = "all",
        param_filter: Literal["weights", "conv"] = "weights",
        seed: int = 0,
    ) -> None:
        self.alpha = check_number("alpha", alpha, note="0.8 for CREMA-D")
        check_window(modulation_starts, modulation_ends)
        if ge_scope not in ("all", "modulated"):
            raise ValueError(f"strategy.args.ge_scope={ge_scope!r}; expected 'all' or 'modulated'")
        if param_filter not in ("weights", "conv"):
            raise ValueError(f"strategy.args.param_filter={param_filter!r}; expected 'weights' or 'conv'")
        self.modulation_starts = modulation_starts
        self.modulation_ends = modulation_ends
        self.ge = ge
        self.ge_scope = ge_scope
        self.param_filter = param_filter
        self.seed = seed
        self._gen: torch.Generator | None = None
        self._pending_rng: Tensor | None = None

    def setup(self, model: nn.Module, train_dataset: Any) -> None:
        check_setup(self, model, train_dataset, per_modality=True)

    def _generator(self, device: torch.device) -> torch.Generator:
        if self._gen is None or self._gen.device != device:
            self._gen = torch.Generator(device=device)
            self._gen.manual_seed(self.seed)
            if self._pending_rng is not None:
                self._gen.set_state(self._pending_rng)
                self._pending_rng = None
        return self._gen

    def _scores(self, per: Mapping[str, Tensor], batch: Batch, ctx: StepContext) -> dict[str, float]:
        """Mean softmax probability of the true class per modality, over its present rows."""
        stats = {}
        with torch.no_grad():
            for m in per:
                rows = batch.present[m]
                stats[m] = present_sum(true_class_probability(per[m][rows], batch.label[rows]), rows)
        return mean_over_present(stats, ctx)

    def _modulate(self, encoder: nn.Module, coeff: float, noise: bool, snap: GradSnapshot) -> None:
        """Rewrite this step's gradient g of each selected weight as coeff * g (+ N(0, std(g))); the
        gradient accumulated by earlier micro-batches is left untouched."""
        min_dim = _MIN_NDIM[self.param_filter]
        for p in encoder.parameters():
            if p.grad is None or p.grad.ndim < min_dim:
                continue
            g = snap.step_grad(p)
            new = g * coeff
            if noise and g.numel() > 1:
                std = float(g.float().std()) + 1e-8
                gen = self._generator(g.device)
                new = new + torch.randn(g.shape, generator=gen, device=g.device, dtype=g.dtype) * std
            snap.replace(p, new)

    def training_step(self, model: nn.Module, batch: Batch, ctx: StepContext) -> dict[str, Tensor | float]:
        core = unwrap(model)
        out = model(batch)
        per = per_modality_logits(out, "OGM-GE")
        loss = self.task.loss(out.logits, batch.label, class_weights=ctx.class_weights)
        snap = GradSnapshot(core.encoders.parameters())
        ctx.backward(loss)
        scores = self._scores(per, batch, ctx)
        ratios, coeffs = ogm_coefficients(scores, self.alpha) if len(scores) >= 2 else ({}, {})
        active = in_window(ctx.epoch, self.modulation_starts, self.modulation_ends)
        with torch.no_grad():
            unimodal = unimodal_losses(self.task, per, batch.present, batch.label, names=core.modalities)
        logs: dict[str, Tensor | float] = {"loss": loss.detach()}
        for m in core.modalities:
            coeff = coeffs.get(m, 1.0)
            if active:
                noise = self.ge and (self.ge_scope == "all" or coeff < 1.0)
                self._modulate(core.encoders[m], coeff, noise, snap)
            if m in unimodal:
                logs[f"loss/{m}"] = unimodal[m]
            if m in ratios:
                logs[f"ratio/{m}"] = ratios[m]
            logs[f"coeff/{m}"] = coeff if active else 1.0
            logs[f"grad_norm/{m}"] = grad_norm(core.encoders[m])
        ctx.step()
        return logs

    def state_dict(self) -> dict[str, Any]:
        if self._gen is not None:
            return {"noise_rng": self._gen.get_state()}
        return {"noise_rng": self._pending_rng} if self._pending_rng is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        rng = state.get("noise_rng")
        if rng is None:
            return
        rng = torch.as_tensor(rng, dtype=torch.uint8).cpu()
        if self._gen is not None:
            self._gen.set_state(rng)
        else:
            self._pending_rng = rng
