"""QMF: quality-aware multimodal fusion with energy-based confidence (Zhang et al., ICML 2023).

Paper: Q. Zhang, H. Wu, C. Zhang, Q. Hu, H. Fu, J. T. Zhou, X. Peng, "Provable Dynamic Fusion for
Low-Quality Multimodal Data", ICML 2023, arXiv 2306.02050. Official code: github QingyangZhang/QMF
(``models/QMF.py``, ``train_qmf.py``, ``utils/crl_utils.py``).

Per sample and modality, the energy of the unimodal logits ``E_m = -logsumexp(o_m)`` gives a
confidence ``w_m = -E_m / T`` (T = 10 in the official code). The fused prediction is the
confidence-weighted sum of the unimodal logits over the modalities present in that row,

    fused = sum_{m present} w_m * o_m        (B, C)       (training and test time alike; ``predict``)

and the training loss is ``CE(fused) + sum_m CE(o_m) + lam * sum_m L_rank(w_m)``, each unimodal term
over the rows where m is present. The ranking regulariser calibrates confidence with each sample's
history: h_i = cumulative unimodal cross-entropy of sample i over training so far, normalised to [0, 1]
by the min and max over the whole training set; each row i is paired with the next row j of the batch
(circularly), and with g = sign(h_i - h_j) (a larger historical loss should mean a lower confidence)

    L_rank = mean_i max(0, g (w_i - w_j) + |h_i - h_j|)          (``margin="paper"``, CRL's form)
    L_rank = mean_i max(0, g (w_i - w_j) - |h_i - h_j|)          (``margin="reference"``, the code)

The official code adds the margin divided by the target while flipping the target's sign, which turns
the margin into a slack; ``reference`` reproduces it. The history is updated after the loss (as in the
code), stored per dataset index (checkpointed), and summed across ranks under DDP.

Hyper-parameters (official defaults): ``lam`` 0.1 (``--lamb``), ``temperature`` 10; official optimiser
Adam lr 1e-4, weight decay 1e-5.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from polymodal.data.batch import Batch
from polymodal.fusion.masking import zero_absent
from polymodal.models import ModelOutput
from polymodal.strategies.base import STRATEGIES, StepContext, Strategy, unwrap
from polymodal.strategies.joint import encoder_grad_norms
from polymodal.strategies.toolkit import (
    check_number,
    check_setup,
    from_prefixed_state,
    per_modality_logits,
    prefixed_state,
)


def energy_confidence(logits: Tensor, temperature: float = 10.0) -> Tensor:
    """(B, C) logits -> (B,) confidence = -energy / T = logsumexp(logits) / T."""
    return torch.logsumexp(logits.float(), dim=-1).to(logits.dtype) / temperature


def energy_fusion(logits: Mapping[str, Tensor], present: Mapping[str, Tensor], temperature: float = 10.0) -> Tensor:
    """(B, C) = sum over present modalities of energy_confidence(o_m)[:, None] * o_m; zeros if none."""
    fused: Tensor | None = None
    for m, o in logits.items():
        term = zero_absent(energy_confidence(o, temperature)[:, None] * o, present[m])
        fused = term if fused is None else fused + term
    return fused


def rank_loss(confidence: Tensor, history: Tensor, margin: Literal["paper", "reference"] = "paper") -> Tensor:
    """QMF's ranking regulariser: (B,) confidences, (B,) normalised historical losses -> scalar."""
    conf_j = torch.roll(confidence, -1)
    hist_j = torch.roll(history, -1)
    g = torch.sign(history - hist_j).to(confidence.dtype)
    gap = (history - hist_j).abs().to(confidence.dtype)
    slack = gap if margin == "paper" else -gap
    return F.relu(g * (confidence - conf_j) + slack * (g != 0)).mean()


@STRATEGIES.register("qmf", tiny={})
class QMF(Strategy):
    """Energy-confidence-weighted late fusion with a confidence-history ranking regulariser.

    lam:         weight of the ranking regulariser (official 0.1)
    temperature: T in confidence = logsumexp(o) / T (official 10)
    margin:      "paper" (CRL's margin, default) or "reference" (the official code's sign)
    Fusion: needs per-modality logits (default ``late``); the strategy's own fusion replaces the sum.
    """

    fusion_rule = "energy"

    def __init__(self, lam: float = 0.1, temperature: float = 10.0,
                 margin: Literal["paper", "reference"] = "paper") -> None:
        self.lam = check_number("lam", lam, note="official 0.1")
        self.temperature = check_number("temperature", temperature, strict=True, note="official 10")
        if margin not in ("paper", "reference"):
            raise ValueError(f"strategy.args.margin={margin!r}; expected 'paper' or 'reference'")
        self.margin = margin
        self.history: dict[str, Tensor] = {}  # modality -> (N,) float64 cumulative per-sample CE

    def setup(self, model: nn.Module, train_dataset: Any) -> None:
        core = check_setup(self, model, train_dataset, per_modality=True)
        n = len(train_dataset) if train_dataset is not None else 0
        self.history = {m: torch.zeros(n, dtype=torch.float64) for m in core.modalities}

    def _history(self, m: str, size: int) -> Tensor:
        h = self.history.get(m)
        if h is None or h.numel() < size:  # grow (setup without a dataset, or unexpected indices)
            grown = torch.zeros(size, dtype=torch.float64)
            if h is not None:
                grown[: h.numel()] = h
            self.history[m] = h = grown
        return h

    def training_step(self, model: nn.Module, batch: Batch, ctx: StepContext) -> dict[str, Tensor | float]:
        core = unwrap(model)
        weights = ctx.class_weights
        out = model(batch)
        per = per_modality_logits(out, "QMF")
        fused = energy_fusion(per, batch.present, self.temperature)
        loss = self.task.loss(fused, batch.label, class_weights=weights)
        logs: dict[str, Tensor | float] = {"loss/fused": loss.detach()}
        index = batch.index.cpu()
        updates = {}
        for m in core.modalities:
            rows = batch.present[m]
            if not bool(rows.any()):
                continue
            o = per[m][rows]
            ce = self.task.sample_losses(o, batch.label[rows], class_weights=weights)
            loss = loss + ce.mean()
            hist = self._history(m, int(index.max()) + 1)
            lo, hi = hist.min(), hist.max()
            norm = (hist - lo) / (hi - lo) if float(hi - lo) > 1e-12 else torch.zeros_like(hist)
            conf = energy_confidence(o, self.temperature)
            rl = rank_loss(conf, norm[index[rows.cpu()]].to(conf.device), self.margin)
            loss = loss + self.lam * rl
            updates[m] = (index[rows.cpu()], ce.detach().double().cpu())
            logs.update({f"loss/{m}": ce.mean().detach(), f"rank/{m}": rl.detach(),
                         f"confidence/{m}": conf.mean().detach()})
        ctx.backward(loss)
        for m, (idx, ce) in updates.items():
            hist = self.history[m]
            delta = torch.zeros_like(hist).index_add_(0, idx, ce)
            if ctx.world_size > 1:  # disjoint rows per rank: the mean times world size is the sum
                delta = (ctx.all_reduce_mean(delta.to(out.logits.device)) * ctx.world_size).cpu().double()
            hist += delta
        logs.update(encoder_grad_norms(core))
        ctx.step()
        logs["loss"] = loss.detach()
        return logs

    def predict(self, model: nn.Module, batch: Batch) -> ModelOutput:
        out = model(batch)
        out.logits = energy_fusion(per_modality_logits(out, "QMF's test-time fusion"), batch.present, self.temperature)
        return out

    def state_dict(self) -> dict[str, Any]:
        return prefixed_state("history", self.history)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = from_prefixed_state(state, "history", torch.float64)
