"""MMPareto: Pareto-integrated multimodal and unimodal gradients (Wei & Hu, ICML 2024).

Paper: Y. Wei, D. Hu, "MMPareto: Boosting Multimodal Learning with Innocent Unimodal Assistance",
ICML 2024, arXiv 2405.17730. Official code: github GeWu-Lab/MMPareto_ICML2024 (``code/MMPareto.py``,
``code/min_norm_solvers.py``).

Losses: the multimodal ``L_mm = CE(fused)`` and one unimodal ``L_m = CE(o_m)`` per modality (late fusion:
``o_m`` are the per-modality heads' logits, over the rows where m is present). Encoder m's parameters
receive two gradients, g_mm = dL_mm/dtheta_m and g_m = dL_m/dtheta_m (each flattened over the whole
encoder). Their weights (a_mm, a_m) are

    (1/2, 1/2)                              if cos(g_mm, g_m) > 0 (no conflict)
    (gamma, 1 - gamma),  gamma = clip(((g_m - g_mm) . g_m) / ||g_mm - g_m||^2, 0, 1)   otherwise

(the two-task min-norm, MGDA, closed form: the Pareto-stationary direction). The update direction is
``d = 2 (a_mm g_mm + a_m g_m)``, then, per parameter tensor (as the official code), its magnitude is
restored and enlarged: with t = g_mm + g_m (the plain gradient of ``L_mm + sum_m L_m``),
``grad = scale * d * ||t|| / ||d||`` if ``||t|| > ||d||``, else ``scale * d``. Heads and every parameter
outside the encoders keep the plain gradient of the summed loss, as in the official code.

The directions are computed from unscaled autograd gradients (all-reduced under DDP); the plain
gradient comes from the engine's backward, so mixed-precision loss scaling is preserved by expressing
the final gradient relative to it. The official solver returns 0.999 / 0.001 instead of 1 / 0 at the
clip boundaries, which are reached only when the gradients do not conflict (handled by the first case).

Hyper-parameters (official code): ``scale`` 1.5 (its ``gamma``); optimiser SGD lr 2e-3, momentum 0.9,
weight decay 1e-4, StepLR(30, 0.1), 50 epochs, batch 64.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from polymodal.data.batch import Batch
from polymodal.strategies.base import STRATEGIES, StepContext, Strategy, unwrap
from polymodal.strategies.joint import encoder_grad_norms
from polymodal.strategies.toolkit import (
    GradSnapshot,
    check_number,
    check_setup,
    per_modality_logits,
    unimodal_losses,
)


def min_norm_weight(g1: Tensor, g2: Tensor) -> float:
    """gamma in [0, 1] minimising ||gamma g1 + (1 - gamma) g2|| (two-task MGDA closed form)."""
    diff = g1 - g2
    denom = float(diff @ diff)
    if denom <= 0:
        return 0.5
    return min(max(float((g2 - g1) @ g2) / denom, 0.0), 1.0)


def pareto_weights(g_mm: Tensor, g_uni: Tensor) -> tuple[float, float]:
    """MMPareto's weights (a_mm, a_uni) of the flattened multimodal and unimodal gradients."""
    cos = F.cosine_similarity(g_mm.float(), g_uni.float(), dim=0, eps=1e-12)
    if float(cos) > 0:
        return 0.5, 0.5
    gamma = min_norm_weight(g_mm.float(), g_uni.float())
    return gamma, 1.0 - gamma


def _flat(grads: list[Tensor]) -> Tensor:
    return torch.cat([g.reshape(-1) for g in grads]) if grads else torch.zeros(0)


@STRATEGIES.register("mmpareto", tiny={})
class MMPareto(Strategy):
    """Multimodal + unimodal losses whose encoder gradients are combined in a Pareto-optimal direction.

    scale: magnitude enlargement of the combined encoder gradient (official code: 1.5)
    Fusion: needs per-modality logits (default ``late``).
    """

    def __init__(self, scale: float = 1.5) -> None:
        self.scale = check_number("scale", scale, strict=True, note="official 1.5")

    def setup(self, model: nn.Module, train_dataset: Any) -> None:
        check_setup(self, model, train_dataset, per_modality=True)

    @staticmethod
    def _grads(loss: Tensor, params: list[nn.Parameter], ctx: StepContext) -> list[Tensor]:
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        out = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True)]
        if ctx.world_size > 1:
            out = [ctx.all_reduce_mean(g) for g in out]
        return out

    def training_step(self, model: nn.Module, batch: Batch, ctx: StepContext) -> dict[str, Tensor | float]:
        core = unwrap(model)
        weights = ctx.class_weights
        out = model(batch)
        per = per_modality_logits(out, "MMPareto")
        loss_mm = self.task.loss(out.logits, batch.label, class_weights=weights)
        uni = unimodal_losses(self.task, per, batch.present, batch.label, weights, names=core.modalities)
        params = {m: [p for p in core.encoders[m].parameters() if p.requires_grad] for m in uni}
        all_params = [p for m in uni for p in params[m]]
        g_mm_all = self._grads(loss_mm, all_params, ctx)
        g_mm, start = {}, 0
        for m in uni:
            g_mm[m] = g_mm_all[start : start + len(params[m])]
            start += len(params[m])
        g_uni = {m: self._grads(uni[m], params[m], ctx) for m in uni}
        loss = loss_mm + sum(uni.values())
        snap = GradSnapshot(all_params)
        ctx.backward(loss)
        logs: dict[str, Tensor | float] = {"loss": loss.detach(), "loss/fused": loss_mm.detach()}
        for m in uni:
            a_mm, a_uni = pareto_weights(_flat(g_mm[m]), _flat(g_uni[m]))
            # this step's plain gradient t (earlier micro-batches' accumulated gradient is kept apart)
            plain = [snap.step_grad(p) for p in params[m]]
            raw_norm = float(_flat([a + b for a, b in zip(g_mm[m], g_uni[m], strict=True)]).norm())
            got_norm = float(_flat([g for g in plain if g is not None]).norm())
            # the engine's loss scaling (mixed precision, 1 / accumulate); 1 for a plain fp32 backward
            loss_scale = got_norm / raw_norm if raw_norm > 0 else 1.0
            for p, t, gm, gu in zip(params[m], plain, g_mm[m], g_uni[m], strict=True):
                if t is None:
                    continue
                d = (2 * (a_mm * gm + a_uni * gu)).to(t.dtype)
                t_norm, d_norm = float(t.norm()), float(d.norm()) * loss_scale
                factor = t_norm / d_norm if d_norm > 0 and t_norm > d_norm else 1.0
                new = d * (loss_scale * factor * self.scale)
                snap.replace(p, new)
            logs.update({f"loss/{m}": uni[m].detach(), f"weight_mm/{m}": a_mm, f"weight_uni/{m}": a_uni})
        logs.update(encoder_grad_norms(core))
        ctx.step()
        return logs
