"""MLA: Multimodal Representation Learning by Alternating Unimodal Adaptation (Zhang et al., CVPR 2024).

Paper: arXiv 2311.10707. Each mini-batch makes one optimiser step PER MODALITY, in a fixed order; a
step touches only that modality's encoder and the ONE shared linear head (fusion ``shared_head``).
Head gradient modification (HGM) projects the head's weight gradient with a recursive-least-squares
projector P shared by all modalities, so that learning from the current modality disturbs what the
head learned from the others as little as possible. At test time the per-modality logits are fused
by an uncertainty rule (per-sample entropy by default; see ``polymodal.inference``).

Done right where the official code is broken (docs/methods.md): HGM really runs (the official code never
matches its parameter name), the projector is detached (no autograd history), any feature width works,
the denominator is the scalar ``alpha + r P r^T``, entropy fusion is per sample (the batch-level rule
is kept as ``entropy-batch`` to reproduce published numbers), and under DDP the batch-mean feature is
all-reduced so P stays identical on every rank.

Regression: each alternating step minimises the mean squared error of the modality's outputs, and only
the ``fixed`` test-time rule is defined (a weighted mean of the per-modality outputs over the present
modalities); the entropy rules need class probabilities and raise in ``setup``.

Hyper-parameters (official, CREMA-D, ResNet-18 from scratch): SGD lr 1e-3, momentum 0.9, weight decay
1e-4, StepLR(70, 0.1), 100 epochs, batch 64; fixed fusion weights 0.55/0.45 (audio/visual) or
0.35/0.25/0.40 (audio/visual/text).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from polymodal.data.batch import Batch
from polymodal.inference.rules import RULES, fuse
from polymodal.strategies.base import STRATEGIES, StepContext, Strategy, dataset_task, grad_norm, unwrap
from polymodal.strategies.joint import task_loss


class HGMProjector:
    """The OWM / recursive-least-squares projector P (d x d) of MLA's head gradient modification.

    ``update(r, alpha)`` absorbs a feature direction r (1 x d):
        k = P r^T;  P <- P - k k^T / (alpha + r k);  P <- P / ||P||_F  (if ``normalize``)
    ``project(grad)`` returns grad @ P^T. P is a plain tensor: no autograd history is ever kept.
    After absorbing r, a projected update keeps the fraction alpha / (alpha + r P r^T) of its
    component along r (before the optional normalisation, which rescales all of P).
    """

    def __init__(self, dim: int, normalize: bool = True, device: torch.device | str = "cpu") -> None:
        self.normalize = normalize
        self.P = torch.eye(dim, device=device)

    @torch.no_grad()
    def update(self, r: Tensor, alpha: float) -> None:
        r = r.detach().reshape(1, -1).to(self.P)
        if r.shape[1] != self.P.shape[0]:
            raise ValueError(f"HGM feature has width {r.shape[1]}; the projector is {tuple(self.P.shape)}")
        k = self.P @ r.T  # (d, 1)
        denom = alpha + float(r @ k)  # scalar alpha + r P r^T
        self.P = self.P - (k @ k.T) / denom
        if self.normalize:
            self.P = self.P / torch.linalg.matrix_norm(self.P)

    @torch.no_grad()
    def project(self, grad: Tensor) -> Tensor:
        return grad @ self.P.to(grad).T



@STRATEGIES.register("mla", tiny={})
class MLA(Strategy):
    """Alternating unimodal adaptation with a shared head, HGM and uncertainty-based test-time fusion.

    order:       modality order of the alternating steps (default: the model's modality order)
    grad_mode:   what happens to gradients between the steps of one batch (docs/methods.md):
                 "clear" (set to None after each step: other encoders do not move),
                 "zero" (zeroed, kept: momentum and weight decay keep moving every parameter that
                 ever had a gradient), "reference" (the official code: zeroed between the steps of a
                 batch, cleared at the end of it)
    hgm:         head gradient modification on/off (off = plain gradient: the ablation)
    hgm_normalize: Frobenius-normalise P after each update (reference definition; it also shrinks
                 the head's effective learning rate by about 1/sqrt(d))
    hgm_mean:    "batch" (official code) or "running" (the paper's dataset mean, as a running mean of
                 the modality's features over the current epoch)
    fusion_rule: test-time rule: "entropy" (per sample, default), "entropy-batch", "fixed"
                 (the only one defined for regression)
    fusion_weights: weights of the "fixed" rule, modality -> weight (equal if omitted)
    """

    name = "mla"
    default_fusion = "shared_head"
    supports_regression = True

    def __init__(
        self,
        order: Sequence[str] | None = None,
        grad_mode: Literal["clear", "zero", "reference"] = "clear",
        hgm: bool = True,
        hgm_normalize: bool = True,
        hgm_mean: Literal["batch", "running"] = "batch",
        fusion_rule: str = "entropy",
        fusion_weights: dict[str, float] | None = None,
    ) -> None:
        if grad_mode not in ("clear", "zero", "reference"):
            raise ValueError(f"strategy.args.grad_mode={grad_mode!r}; expected 'clear', 'zero' or 'reference'")
        if hgm_mean not in ("batch", "running"):
            raise ValueError(f"strategy.args.hgm_mean={hgm_mean!r}; expected 'batch' or 'running'")
        if fusion_rule not in RULES:
            raise ValueError(f"strategy.args.fusion_rule={fusion_rule!r}; expected one of {RULES}")
        self.order = list(order) if order is not None else None
        self.grad_mode = grad_mode
        self.hgm = hgm
        self.hgm_normalize = hgm_normalize
        self.hgm_mean = hgm_mean
        self.fusion_rule = fusion_rule
        self.fusion_weights = dict(fusion_weights) if fusion_weights is not None else None
        self.projector: HGMProjector | None = None
        self.steps = 0  # alternating steps taken so far (HGM skips its update on the very first)
        self._running: dict[str, tuple[Tensor, int]] = {}
        self._ever_had_grad: set[int] = set()  # ids of parameters that ever received a gradient

    def setup(self, model: nn.Module, train_dataset: Any) -> None:
        self.task = dataset_task(train_dataset)
        if self.task == "regression" and self.fusion_rule != "fixed":
            default = ", the default" if self.fusion_rule == "entropy" else ""
            raise ValueError(
                f"strategy 'mla': {self.fusion_rule} fusion (strategy.args.fusion_rule={self.fusion_rule}{default}) "
                f"is not defined for regression (it weighs modalities by the entropy of their class "
                f"probabilities); set strategy.args.fusion_rule=fixed"
            )
        core = unwrap(model)
        head = getattr(core.fusion, "head", None)
        if not isinstance(head, nn.Linear):
            raise ValueError(
                "strategy 'mla' needs a fusion with one shared linear head (model.fusion=shared_head); "
                f"got {type(core.fusion).__name__}"
            )
        if self.order is None:
            self.order = list(core.modalities)
        unknown = [m for m in self.order if m not in core.modalities]
        if unknown or len(self.order) < 2:
            raise ValueError(
                f"strategy.args.order={self.order}: MLA needs >= 2 of the model's modalities {core.modalities}"
            )
        if self.fusion_weights is not None and set(self.fusion_weights) != set(core.modalities):
            raise ValueError(
                f"strategy.args.fusion_weights names {sorted(self.fusion_weights)}; expected one weight for "
                f"each of {core.modalities}"
            )
        self.projector = HGMProjector(head.in_features, normalize=self.hgm_normalize)

    def on_epoch_start(self, model: nn.Module, epoch: int) -> None:
        self._running = {}

    def _direction(self, m: str, feats: Tensor, ctx: StepContext) -> Tensor:
        n = torch.tensor(float(feats.shape[0]), device=feats.device)
        total = feats.detach().float().sum(dim=0)
        if ctx.world_size > 1:  # identical P on every rank: reduce sums and counts
            total = ctx.all_reduce_mean(total) * ctx.world_size
            n = ctx.all_reduce_mean(n) * ctx.world_size
        if self.hgm_mean == "running":
            prev_sum, prev_n = self._running.get(m, (torch.zeros_like(total), 0))
            total, n_all = prev_sum + total, prev_n + int(n)
            self._running[m] = (total, n_all)
            return (total / n_all)[None]
        return (total / n)[None]

    def _after_step(self, params: list[nn.Parameter], end_of_batch: bool) -> None:
        keep_zero = self.grad_mode == "zero" or (self.grad_mode == "reference" and not end_of_batch)
        if not keep_zero:
            for p in params:
                p.grad = None
            return
        for p in params:  # like zero_grad(set_to_none=False): only parameters that ever had a gradient
            if id(p) in self._ever_had_grad:
                p.grad = torch.zeros_like(p) if p.grad is None else p.grad.zero_()

    def training_step(self, model: nn.Module, batch: Batch, ctx: StepContext) -> dict[str, Tensor | float]:
        core = unwrap(model)
        head: nn.Linear = core.fusion.head
        if self.projector is None:
            self.setup(model, None)
        weights = ctx.extra.get("class_weights")
        logs: dict[str, Tensor | float] = {}
        active = [m for m in self.order if bool(batch.present[m].any())]
        for i, m in enumerate(active):
            rows = batch.present[m]
            sub = batch if bool(rows.all()) else batch.select(rows)
            out = model(sub, modalities=[m])
            logits = out.per_modality[m]
            loss = task_loss(logits, sub.label, None, weights, self.task)
            ctx.backward(loss)  # raises (nothing stepped) when the loss is not finite
            if self.hgm:
                if self.steps > 0:
                    alpha = 0.1 ** (1 + ctx.batch_idx / max(ctx.batches_per_epoch, 1))
                    self.projector.update(self._direction(m, out.features[m], ctx), alpha)
                if head.weight.grad is not None:
                    head.weight.grad = self.projector.project(head.weight.grad)
            params = [p for p in core.parameters() if p.requires_grad]
            self._ever_had_grad.update(id(p) for p in params if p.grad is not None)
            logs[f"loss/{m}"] = loss.detach()
            logs[f"grad_norm/{m}"] = grad_norm(core.encoders[m])
            ctx.step(list(core.encoders[m].parameters()) + list(head.parameters()))
            self.steps += 1
            self._after_step(params, end_of_batch=i == len(active) - 1)
        if active:
            logs["loss"] = sum(logs[f"loss/{m}"] for m in active) / len(active)
        return logs

    def predict(self, model: nn.Module, batch: Batch):
        out = model(batch)
        if out.per_modality is None:
            raise ValueError("MLA's test-time fusion needs per-modality logits (model.fusion=shared_head)")
        out.logits = fuse(self.fusion_rule, out.per_modality, batch.present, self.fusion_weights)
        return out

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"steps": self.steps}
        if self.projector is not None:
            state["P"] = self.projector.P.clone()
        for m, (total, n) in self._running.items():
            state[f"running_sum/{m}"] = total.clone()
            state[f"running_n/{m}"] = n
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state.get("steps", 0))
        if "P" in state and self.projector is not None:
            self.projector.P = torch.as_tensor(state["P"]).clone().float()
        self._running = {
            k.split("/", 1)[1]: (torch.as_tensor(v), int(state[f"running_n/{k.split('/', 1)[1]}"]))
            for k, v in state.items()
            if k.startswith("running_sum/")
        }
