"""MLA: Multimodal Representation Learning by Alternating Unimodal Adaptation (Zhang et al., CVPR 2024).

Paper: arXiv 2311.10707. Each mini-batch makes one optimiser step PER MODALITY, in a fixed order; a
step touches only that modality's encoder and the ONE shared linear head (fusion ``shared_head``).
Head gradient modification (HGM) projects the head's weight gradient with a recursive-least-squares
projector P shared by all modalities, so that learning from the current modality disturbs what the
head learned from the others as little as possible. At test time the per-modality logits are fused
by a test-time rule (``polymodal.inference``; ``calibrated`` by default); the ``calibrated`` rules divide each modality's logits by a
temperature fitted on the validation split (:meth:`MLA.prepare_evaluation`, once per trained state, kept
in the checkpoint so that ``polymodal eval`` and the Predictor reuse it; never fitted on test).

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

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from polymodal.data.batch import Batch
from polymodal.inference.calibration import fit_temperature
from polymodal.inference.rules import CALIBRATED_RULES, RULES, FusionRuleName, fuse
from polymodal.strategies.base import STRATEGIES, StepContext, Strategy, grad_norm, unwrap
from polymodal.tasks import LOGITS, SINGLE_LABEL


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


# MLA's test-time rule when strategy.args.fusion_rule is not given (docs/strategies.md says how it was chosen)
DEFAULT_FUSION_RULE = "calibrated"


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
    hgm_rescale: rescale the projected head gradient to the norm of the unprojected one, so that HGM
                 changes the direction of the head's step and not its size (off by default: the
                 paper's definition; docs/strategies.md has the measurement)
    hgm_mean:    "batch" (official code) or "running" (the paper's dataset mean, as a running mean of
                 the modality's features over the current epoch)
    fusion_rule: test-time rule: "calibrated" (default: the sum of the log-probabilities calibrated by
                 per-modality temperatures fitted on validation, the Bayes rule under conditional
                 independence; chosen on validation across avdigits, avdigits-hard and utd-mhad,
                 docs/strategies.md), "calibrated-entropy" (per-sample entropy weights on those
                 calibrated probabilities), "entropy" (per
                 sample, uncalibrated: the paper's rule), "entropy-batch", "fixed" (the only one
                 defined for regression)
    fusion_weights: weights of the "fixed" rule, modality -> weight (equal if omitted)
    """

    name = "mla"
    default_fusion = "shared_head"
    relaxed_by = {"fusion_rule": "fixed"}  # the entropy rules weigh modalities by their class probabilities

    @classmethod
    def requirements(cls, args: dict[str, Any]) -> frozenset[str]:
        """Any task with a prediction per row under the ``fixed`` rule; one class per sample under the entropy
        rules (they weigh modalities by the entropy of their class probabilities)."""
        rule = args.get("fusion_rule", DEFAULT_FUSION_RULE)
        return frozenset({LOGITS}) if rule == "fixed" else frozenset({LOGITS, SINGLE_LABEL})

    def __init__(
        self,
        order: Sequence[str] | None = None,
        grad_mode: Literal["clear", "zero", "reference"] = "clear",
        hgm: bool = True,
        hgm_normalize: bool = True,
        hgm_rescale: bool = False,
        hgm_mean: Literal["batch", "running"] = "batch",
        fusion_rule: FusionRuleName = DEFAULT_FUSION_RULE,
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
        self.hgm_rescale = hgm_rescale
        self.hgm_mean = hgm_mean
        self.fusion_rule = fusion_rule
        self.requires = self.requirements({"fusion_rule": fusion_rule})
        self.fusion_weights = dict(fusion_weights) if fusion_weights is not None else None
        self.projector: HGMProjector | None = None
        self.steps = 0  # alternating steps taken so far (HGM skips its update on the very first)
        self._running: dict[str, tuple[Tensor, int]] = {}
        self._ever_had_grad: set[int] = set()  # ids of parameters that ever received a gradient
        self._batch_had_grad: set[int] = set()  # ids of parameters that received one in the current batch
        self._micro: list[Batch] = []  # micro-batches gathered for the next round (optim.accumulate > 1)
        self.temperatures: dict[str, float] | None = None  # per modality, fitted on validation (calibrated rules)
        self._calibrated = False  # whether the temperatures belong to the current weights (no step since the fit)

    def setup(self, model: nn.Module, train_dataset: Any) -> None:
        self.bind_task(train_dataset)
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
        self._micro = []

    def _direction(self, m: str, total: Tensor, n: Tensor, ctx: StepContext) -> Tensor:
        """The feature direction r of modality m: mean feature of the (accumulated) batch, or the running mean."""
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
        if self.grad_mode == "clear" or (self.grad_mode == "reference" and end_of_batch):
            for p in params:
                p.grad = None
            return
        if self.grad_mode == "reference":
            # the reference code's optimizer.zero_grad() between the steps of a batch zeroes the gradients
            # that exist (those of the modalities already stepped in this batch) and creates none: an
            # encoder whose step has not come yet has no gradient, so momentum and weight decay leave it alone
            for p in params:
                if id(p) in self._batch_had_grad:
                    p.grad = torch.zeros_like(p)
            return
        for p in params:  # "zero": like zero_grad(set_to_none=False): every parameter that ever had a gradient
            if id(p) in self._ever_had_grad:
                p.grad = torch.zeros_like(p) if p.grad is None else p.grad.zero_()

    def _project(self, grad: Tensor) -> Tensor:
        projected = self.projector.project(grad)
        if self.hgm_rescale:
            norm = torch.linalg.vector_norm(projected)
            if float(norm) > 0:
                projected = projected * (torch.linalg.vector_norm(grad) / norm)
        return projected

    def training_step(self, model: nn.Module, batch: Batch, ctx: StepContext) -> dict[str, Tensor | float]:
        """One alternating step per modality. With ``optim.accumulate = k > 1`` the micro-batches are gathered
        and the k of them make one alternating round: each modality's step sees the gradient of all k (its
        share of the loss per micro-batch), HGM projects that accumulated head gradient, and the result
        equals one round on the concatenated batch."""
        if ctx.accumulate > 1:
            self._micro.append(batch)
            last = ctx.batch_idx >= ctx.batches_per_epoch - 1
            if len(self._micro) < ctx.accumulate and not last:
                return {}
            micro, self._micro = self._micro, []
            group, groups = ctx.batch_idx // ctx.accumulate, -(-ctx.batches_per_epoch // ctx.accumulate)
            return self._round(model, micro, ctx, group, groups, scale=float(ctx.accumulate))
        return self._round(model, [batch], ctx, ctx.batch_idx, ctx.batches_per_epoch, scale=1.0)

    def _round(self, model: nn.Module, micro: list[Batch], ctx: StepContext, batch_idx: int, n_batches: int,
               scale: float) -> dict[str, Tensor | float]:
        core = unwrap(model)
        head: nn.Linear = core.fusion.head
        if self.projector is None:
            self.setup(model, None)
        weights = ctx.class_weights
        logs: dict[str, Tensor | float] = {}
        counts = {m: [int(b.present[m].sum()) for b in micro] for m in self.order}
        active = [m for m in self.order if sum(counts[m]) > 0]
        params = [p for p in core.parameters() if p.requires_grad]
        self._batch_had_grad = set()
        self._calibrated = False  # the weights move: the next evaluation fits the temperatures again
        for i, m in enumerate(active):
            total_rows = sum(counts[m])
            feat_sum: Tensor | None = None
            loss_sum = 0.0
            for b, n_rows in zip(micro, counts[m], strict=True):
                if n_rows == 0:
                    continue
                rows = b.present[m]
                sub = b if bool(rows.all()) else b.select(rows)
                out = model(sub, modalities=[m])
                loss = self.task.loss(out.per_modality[m], sub.label, class_weights=weights)
                share = n_rows / total_rows  # the micro-batch's share of the accumulated batch's mean loss
                ctx.backward(loss if len(micro) == 1 else loss * (share * scale))  # raises when not finite
                loss_sum += float(loss.detach()) * share
                f = out.features[m].detach().float().sum(dim=0)
                feat_sum = f if feat_sum is None else feat_sum + f
            if self.hgm:
                if self.steps > 0:
                    alpha = 0.1 ** (1 + batch_idx / max(n_batches, 1))
                    n = torch.tensor(float(total_rows), device=feat_sum.device)
                    self.projector.update(self._direction(m, feat_sum, n, ctx), alpha)
                if head.weight.grad is not None:
                    head.weight.grad = self._project(head.weight.grad)
            had = {id(p) for p in params if p.grad is not None}
            self._ever_had_grad |= had
            self._batch_had_grad |= had
            logs[f"loss/{m}"] = loss_sum
            logs[f"grad_norm/{m}"] = grad_norm(core.encoders[m])
            step_params = list(core.encoders[m].parameters()) + list(head.parameters())
            if len(micro) == 1:
                ctx.step(step_params)
            else:
                ctx.step(step_params, now=True)
            self.steps += 1
            self._after_step(params, end_of_batch=i == len(active) - 1)
        if active:
            logs["loss"] = sum(logs[f"loss/{m}"] for m in active) / len(active)
        return logs

    @torch.no_grad()
    def prepare_evaluation(self, model: nn.Module, train_batches: Callable[[], Iterable[Batch]],
                           world_size: int = 1, val_batches: Callable[[], Iterable[Batch]] | None = None) -> None:
        """The calibrated rules: fit each modality's temperature on the validation split (the rows where it is
        present; every process's rows when distributed), once per trained state. The temperatures of a
        loaded checkpoint are kept as they are; the test split is never offered to this hook."""
        if self.fusion_rule not in CALIBRATED_RULES or self._calibrated:
            return
        if val_batches is None:
            raise ValueError(
                f"strategy.args.fusion_rule={self.fusion_rule!r} fits its temperatures on the validation split, "
                "and none was given to fit them on; train with a validation split (data.splits), or choose "
                "another rule (strategy.args.fusion_rule=entropy)"
            )
        self.temperatures = self.fit_temperatures(model, val_batches(), world_size)
        self._calibrated = True

    def fit_temperatures(self, model: nn.Module, batches: Iterable[Batch], world_size: int = 1) -> dict[str, float]:
        """Per modality, the temperature minimising the NLL of its own logits on ``batches`` (the validation
        split), with :func:`polymodal.inference.calibration.fit_temperature` (the fit of ``poe`` too)."""
        core = unwrap(model)
        was_training = model.training
        model.eval()
        logits: dict[str, list[Tensor]] = {m: [] for m in core.modalities}
        present: dict[str, list[Tensor]] = {m: [] for m in core.modalities}
        labels: list[Tensor] = []
        index: list[Tensor] = []
        try:
            for batch in batches:
                out = model(batch)
                for m in core.modalities:
                    logits[m].append(out.per_modality[m].detach().float())
                    present[m].append(batch.present[m])
                labels.append(batch.label)
                index.append(batch.index)
        finally:
            model.train(was_training)
        if not labels:
            raise ValueError("MLA's calibrated rule: the validation split has no rows to fit the temperatures on")
        z = {m: torch.cat(v).cpu().numpy() for m, v in logits.items()}
        here = {m: torch.cat(v).cpu().numpy().astype(bool) for m, v in present.items()}
        y, idx = torch.cat(labels).cpu().numpy(), torch.cat(index).cpu().numpy()
        if world_size > 1:  # every rank's shard; a padded sampler repeats rows: keep each index once
            shards: list[Any] = [None] * world_size
            torch.distributed.all_gather_object(shards, (z, here, y, idx))
            z = {m: np.concatenate([s[0][m] for s in shards]) for m in z}
            here = {m: np.concatenate([s[1][m] for s in shards]) for m in here}
            y, idx = np.concatenate([s[2] for s in shards]), np.concatenate([s[3] for s in shards])
            _, keep = np.unique(idx, return_index=True)
            z, here, y = {m: v[keep] for m, v in z.items()}, {m: v[keep] for m, v in here.items()}, y[keep]
        temps = {}
        for m in core.modalities:
            rows = here[m]
            temps[m] = fit_temperature(z[m][rows], y[rows])
        return temps

    def predict(self, model: nn.Module, batch: Batch):
        out = model(batch)
        if out.per_modality is None:
            raise ValueError("MLA's test-time fusion needs per-modality logits (model.fusion=shared_head)")
        if self.fusion_rule in CALIBRATED_RULES and self.temperatures is None:
            raise ValueError(
                f"strategy.args.fusion_rule={self.fusion_rule!r} needs the per-modality temperatures fitted on the "
                "validation split, and this model has none (a checkpoint written before the calibrated rules "
                "existed, or a model evaluated before its first validation); evaluate it with "
                "strategy.args.fusion_rule=entropy, or train it again"
            )
        out.logits = fuse(self.fusion_rule, out.per_modality, batch.present, self.fusion_weights, self.temperatures)
        return out

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"steps": self.steps}
        for m, t in (self.temperatures or {}).items():
            state[f"temperature/{m}"] = float(t)
        if self.projector is not None:
            state["P"] = self.projector.P.clone()
        for m, (total, n) in self._running.items():
            state[f"running_sum/{m}"] = total.clone()
            state[f"running_n/{m}"] = n
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state.get("steps", 0))
        temps = {k.split("/", 1)[1]: float(v) for k, v in state.items() if k.startswith("temperature/")}
        self.temperatures = temps or None
        self._calibrated = bool(temps)  # fitted on validation for exactly these weights: never refitted
        if "P" in state and self.projector is not None:
            self.projector.P = torch.as_tensor(state["P"]).clone().float()
        self._running = {
            k.split("/", 1)[1]: (torch.as_tensor(v), int(state[f"running_n/{k.split('/', 1)[1]}"]))
            for k, v in state.items()
            if k.startswith("running_sum/")
        }
