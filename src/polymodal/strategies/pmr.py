"""PMR: prototypical modal rebalance (Fan et al., CVPR 2023).

Paper: Y. Fan, W. Xu, H. Wang, J. Wang, S. Guo, "PMR: Prototypical Modal Rebalance for Multimodal
Learning", CVPR 2023, arXiv 2211.07089. Official code: github fanyunfeng-bit/Modal-Imbalance-PMR
(``main_Prototype_grad.py``); the clipped coefficients and the entropy term follow BalanceBenchmark
(github GeWu-Lab/BalanceBenchmark, ``PMR_trainer.py``).

Prototypes: at the start of every epoch, for each modality m and class k, c_k^m = mean of the encoder
features phi_m(x) of the training samples of class k (eval mode, no gradient, rows where m is
present), smoothed across epochs: ``c <- (1 - momentum) c_new + momentum c_old`` (epoch 0: c_new). A
class with no sample keeps its previous prototype (zero at epoch 0).

Prototypical cross-entropy (PCE) of a row: ``-log softmax_k(-d(phi_m(x), c_k^m))[y]``, d the Euclidean
distance (official code; ``distance="squared"`` uses its square). Imbalance from prototype scores:

    s_m = mean over present rows of softmax_k(-d(phi_m, c^m))[y]
    rho_m = s_m / mean_{j != m} s_j
    beta_m = clip(1 / rho_m - 1, 0, 1)      (> 0 for the slow modality: accelerate it with PCE)
    gamma_m = clip(rho_m - 1, 0, 1)        (> 0 for the dominant modality: regularise it with PER)
    loss = CE(fused) + alpha * sum_m beta_m PCE_m - mu * sum_m gamma_m H_m

H_m is the mean entropy of the dominant modality's prototype softmax (prototypical entropy
regularisation, PER), applied only in the first ``per_epochs`` epochs of the modulation window (it
keeps the dominant modality from converging prematurely). For two modalities this is exactly the
published rule: with rho = s_a / s_v >= 1, audio gets beta = 0 and PER weight clip(rho - 1, 0, 1), visual
gets PCE weight clip(rho - 1, 0, 1) and no PER (and symmetrically when rho < 1); for M > 2 each modality
is compared with the mean of the others (a generalisation). Coefficients are computed without gradient
(BalanceBenchmark's code lets gradient flow through them; the official release uses the constant
alpha for the slow modality instead of the clipped ratio) and, under DDP, from all-reduced scores. The PCE and
PER terms are active for ``modulation_starts <= epoch <= modulation_ends``.

Hyper-parameters (published defaults): ``alpha`` 1.0 (official code; BalanceBenchmark uses 0.1),
``momentum`` 0.2 (official ``--momentum_coef``; BalanceBenchmark 0.5), window 0..100 (official),
``proto_fraction`` 1.0 (the official code uses the first 10 % of the shuffled training batches),
``mu`` 0.01 and ``per_epochs`` 5: the official release has no PER and publishes no default for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from polymodal.data.batch import Batch
from polymodal.strategies.base import STRATEGIES, StepContext, Strategy, backward_and_step, unwrap
from polymodal.strategies.toolkit import (
    check_number,
    check_setup,
    check_window,
    dominance_ratios,
    eval_mode,
    from_prefixed_state,
    in_window,
    mean_over_present,
    prefixed_state,
    present_sum,
    subset_loader,
)


def prototype_logits(features: Tensor, prototypes: Tensor, distance: str = "euclidean") -> Tensor:
    """(B, D) features, (C, D) prototypes -> (B, C) logits = -distance to each prototype."""
    sq = (features.float()[:, None, :] - prototypes.float()[None, :, :]).pow(2).sum(dim=-1)  # (B, C)
    return -(sq if distance == "squared" else sq.clamp_min(1e-12).sqrt())


def pmr_coefficients(scores: Mapping[str, float]) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """(rho, beta, gamma) per modality from prototype scores s_m (floats > 0); see the module docstring."""
    rho = dominance_ratios(scores)
    beta = {m: min(max(1.0 / r - 1.0, 0.0), 1.0) if r > 0 else 1.0 for m, r in rho.items()}
    gamma = {m: min(max(r - 1.0, 0.0), 1.0) for m, r in rho.items()}
    return rho, beta, gamma


@STRATEGIES.register("pmr", tiny={"proto_batch_size": 16})
class PMR(Strategy):
    """Prototypical cross-entropy for the slow modality, prototypical entropy for the dominant one.

    alpha:             weight of the PCE term (official code default 1.0)
    mu:                weight of the PER term (0 disables it)
    per_epochs:        PER is applied for epochs modulation_starts .. modulation_starts + per_epochs - 1
    momentum:          prototype smoothing across epochs (official 0.2)
    modulation_starts: first epoch with PCE/PER (official 0)
    modulation_ends:   last epoch with PCE/PER, inclusive (official 100)
    distance:          "euclidean" (official) or "squared"
    proto_fraction:    fraction of the training set used for the prototypes each epoch (official 0.1)
    proto_batch_size:  batch size of the prototype pass
    seed:              seed of the subset drawn when proto_fraction < 1
    Fusion: any fusion over pooled encoder features (default ``late``).
    """

    def __init__(
        self,
        alpha: float = 1.0,
        mu: float = 0.01,
        per_epochs: int = 5,
        momentum: float = 0.2,
        modulation_starts: int = 0,
        modulation_ends: int = 100,
        distance: Literal["euclidean", "squared"] = "euclidean",
        proto_fraction: float = 1.0,
        proto_batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        self.alpha, self.mu = check_number("alpha", alpha), check_number("mu", mu)
        if not (isinstance(momentum, int | float) and 0 <= momentum < 1):
            raise ValueError(f"strategy.args.momentum={momentum!r}; expected 0 <= momentum < 1")
        if not (isinstance(per_epochs, int) and per_epochs >= 0):
            raise ValueError(f"strategy.args.per_epochs={per_epochs!r}; expected an integer >= 0 (epochs)")
        check_window(modulation_starts, modulation_ends)
        if distance not in ("euclidean", "squared"):
            raise ValueError(f"strategy.args.distance={distance!r}; expected 'euclidean' or 'squared'")
        if not (isinstance(proto_fraction, int | float) and 0 < proto_fraction <= 1):
            raise ValueError(f"strategy.args.proto_fraction={proto_fraction!r}; expected 0 < fraction <= 1")
        if not (isinstance(proto_batch_size, int) and proto_batch_size >= 1):
            raise ValueError(f"strategy.args.proto_batch_size={proto_batch_size!r}; expected an integer >= 1")
        self.per_epochs = per_epochs
        self.momentum = float(momentum)
        self.modulation_starts, self.modulation_ends = modulation_starts, modulation_ends
        self.distance = distance
        self.proto_fraction = float(proto_fraction)
        self.proto_batch_size = proto_batch_size
        self.seed = seed
        self.prototypes: dict[str, Tensor] = {}  # modality -> (C, D)
        self._dataset: Any = None

    def setup(self, model: nn.Module, train_dataset: Any) -> None:
        check_setup(self, model, train_dataset, input_level="pooled", dataset_for="compute class prototypes")
        self._dataset = train_dataset

    @torch.no_grad()
    def compute_prototypes(self, model: nn.Module, epoch: int) -> dict[str, Tensor]:
        """Class-mean features per modality over (a fraction of) the training set: name -> (C, D)."""
        core = unwrap(model)
        device = next(core.parameters()).device
        n = len(self._dataset)
        idx = np.arange(n)
        if self.proto_fraction < 1:
            rng = np.random.default_rng([self.seed, epoch])
            idx = np.sort(rng.permutation(n)[: max(1, int(round(self.proto_fraction * n)))])
        loader = subset_loader(self._dataset, idx, self.proto_batch_size)
        c = core.num_outputs
        sums = {m: torch.zeros(c, core.feature_dim(m), device=device) for m in core.modalities}
        counts = {m: torch.zeros(c, device=device) for m in core.modalities}
        with eval_mode(core):
            for batch in loader:
                batch = batch.to(device)
                feats = core(batch).features
                for m in core.modalities:
                    rows = batch.present[m]
                    sums[m].index_add_(0, batch.label[rows], feats[m][rows].float())
                    counts[m].index_add_(0, batch.label[rows], torch.ones_like(batch.label[rows], dtype=torch.float))
        protos = {}
        for m in core.modalities:
            seen = counts[m] > 0
            new = torch.where(seen[:, None], sums[m] / counts[m].clamp_min(1)[:, None], 0.0)
            old = self.prototypes.get(m)
            if old is not None:
                old = old.to(device)
                new = torch.where(seen[:, None], (1 - self.momentum) * new + self.momentum * old, old)
            protos[m] = new
        return protos

    def on_epoch_start(self, model: nn.Module, epoch: int) -> None:
        if self._dataset is None:
            raise RuntimeError("strategy 'pmr' was not set up: call setup(model, train_dataset) first")
        self.prototypes = self.compute_prototypes(model, epoch)

    def training_step(self, model: nn.Module, batch: Batch, ctx: StepContext) -> dict[str, Tensor | float]:
        core = unwrap(model)
        out = model(batch)
        loss = self.task.loss(out.logits, batch.label, class_weights=ctx.class_weights)
        logs: dict[str, Tensor | float] = {"loss/fused": loss.detach()}
        active = in_window(ctx.epoch, self.modulation_starts, self.modulation_ends) and bool(self.prototypes)
        if active:
            pce, ent, stats = {}, {}, {}
            names = [m for m in core.modalities if bool(batch.present[m].any())]
            for m in names:
                rows = batch.present[m]
                logits = prototype_logits(out.features[m][rows], self.prototypes[m].to(out.logits.device),
                                          self.distance)
                pce[m] = self.task.loss(logits, batch.label[rows])  # prototype logits scored as class logits
                logp = torch.log_softmax(logits, dim=1)
                ent[m] = -(logp.exp() * logp).sum(dim=1).mean()
                stats[m] = present_sum(logp.detach().exp().gather(1, batch.label[rows, None]), rows)
            if len(names) >= 2:
                scores = mean_over_present(stats, ctx)
                rho, beta, gamma = pmr_coefficients(scores)
                use_per = self.mu > 0 and ctx.epoch < self.modulation_starts + self.per_epochs
                for m in names:
                    loss = loss + self.alpha * beta[m] * pce[m]
                    if use_per:
                        loss = loss - self.mu * gamma[m] * ent[m]
                    logs.update({f"rho/{m}": rho[m], f"beta/{m}": beta[m], f"gamma/{m}": gamma[m],
                                 f"pce/{m}": pce[m].detach()})
        return backward_and_step(core, loss, ctx, logs)

    def state_dict(self) -> dict[str, Any]:
        return prefixed_state("prototype", self.prototypes)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.prototypes = from_prefixed_state(state, "prototype", torch.float32)
