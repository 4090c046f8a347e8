"""UMT and UME: uni-modal teachers and the uni-modal ensemble (Du et al., ICML 2023).

Paper: C. Du, J. Teng, T. Li, Y. Liu, T. Yuan, Y. Wang, Y. Yuan, H. Zhao, "On Uni-Modal Feature
Learning in Supervised Multi-Modal Learning", ICML 2023, arXiv 2305.01233. Re-implementation
consulted: BalanceBenchmark (github GeWu-Lab/BalanceBenchmark, ``UMT_trainer.py``).

UMT (Uni-Modal Teacher): a late-fusion model is trained with ``CE(fused) + distill_weight * sum_m
MSE(phi_m(x_m), phi_m^T(x_m))``, where phi_m^T is the encoder of a finished ``unimodal`` run for
modality m (frozen, eval mode) and the MSE is taken over the rows where m is present, between
features at the fusion's input level. Teachers are read from ``<run_dir>/checkpoints/best/
model.safetensors``; a teacher encoder must have the student's architecture (same encoder name and
``model.width``), which is how the paper distils (same backbones). Train the teachers first::

    polymodal train strategy.name=unimodal name=teachers data.dataset=<dataset> model.width=<width>

then ``strategy.name=umt strategy.args.teachers='{audio: runs/teachers, image: runs/teachers}'``.

UME (Uni-Modal Ensemble): each modality's encoder and head are trained alone (the loss is the sum of
the unimodal cross-entropies over the rows where each modality is present: with per-modality heads the
terms share no parameter, so each modality learns exactly as in a unimodal run, global gradient
clipping aside); the prediction is the average of the unimodal logits over the modalities present in
each row (``weights`` gives a fixed weighted average instead; the paper averages the unimodal outputs).

Hyper-parameters: ``distill_weight`` 1.0 (the paper weights the distillation term per dataset and
publishes no single default; BalanceBenchmark calls it ``alpha``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml
from torch import Tensor, nn

from polymodal.data.batch import Batch
from polymodal.inference.rules import fixed_fusion
from polymodal.models import ModelOutput
from polymodal.runpaths import RunPaths
from polymodal.strategies.base import STRATEGIES, StepContext, Strategy, backward_and_step, unwrap
from polymodal.strategies.toolkit import check_number, check_setup, per_modality_logits, unimodal_losses

TEACHER_STRATEGIES = ("unimodal", "ume")  # runs whose encoders were trained on one modality each
_HOW_TO = (
    "train the teachers first, e.g. `polymodal train strategy.name=unimodal name=teachers "
    "data.dataset=<dataset> model.width=<width>`, then pass "
    "strategy.args.teachers='{<modality>: runs/teachers, ...}'"
)



def encoder_state(state: Mapping[str, Tensor], modality: str) -> dict[str, Tensor]:
    """The entries of encoder ``modality`` in a model state dict, keys relative to the encoder.

    Accepts keys with any wrapper prefix (``module.``, ``_forward_module.``, ...) before ``encoders.<m>.``.
    """
    marker = f"encoders.{modality}."
    out = {}
    for key, value in state.items():
        at = key.find(marker)
        if at == 0 or (at > 0 and key[at - 1] == "."):
            out[key[at + len(marker):]] = value
    return out


def load_teacher(run_dir: str | Path, modality: str, template: nn.Module) -> nn.Module:
    """A frozen copy of ``template`` holding encoder ``modality`` of a finished run's best checkpoint."""
    from safetensors.torch import load_file

    run_dir = Path(run_dir)
    path = RunPaths(run_dir).model()
    key = f"strategy.args.teachers.{modality}"
    if not path.is_file():
        raise FileNotFoundError(f"{key}: no teacher checkpoint at {path}; {_HOW_TO}")
    cfg_path = RunPaths(run_dir).config
    if cfg_path.is_file():
        cfg = yaml.safe_load(cfg_path.read_text()) or {}
        name = (cfg.get("strategy") or {}).get("name")
        if name is not None and name not in TEACHER_STRATEGIES:
            raise ValueError(
                f"{key}: run {run_dir} was trained with strategy {name!r}; a teacher must be a "
                f"{' or '.join(TEACHER_STRATEGIES)} run ({_HOW_TO})"
            )
    sub = encoder_state(load_file(str(path)), modality)
    if not sub:
        raise ValueError(f"{key}: checkpoint {path} has no encoder for modality {modality!r}; {_HOW_TO}")
    teacher = copy.deepcopy(template)
    try:
        teacher.load_state_dict(sub, strict=True)
    except RuntimeError as err:
        raise ValueError(
            f"{key}: the encoder in {path} does not fit this model's {modality!r} encoder "
            f"({type(template).__name__}); train the teacher with the same encoder and model.width. "
            f"Details: {str(err).splitlines()[0]}"
        ) from None
    teacher.eval()
    teacher.requires_grad_(False)
    return teacher


@STRATEGIES.register("umt", tiny={})
class UMT(Strategy):
    """Uni-modal teachers: late fusion with feature distillation from finished unimodal runs.

    teachers:       modality -> run folder of a finished ``unimodal`` run (required; a subset of the
                    modalities is allowed: the others are trained without distillation)
    distill_weight: weight of the feature-distillation MSE (>= 0)
    """

    def __init__(self, teachers: Mapping[str, str] | None = None, distill_weight: float = 1.0) -> None:
        if not teachers:
            raise ValueError(f"strategy 'umt' needs strategy.args.teachers (modality -> unimodal run folder); {_HOW_TO}")
        if not isinstance(teachers, Mapping):
            raise ValueError(f"strategy.args.teachers={teachers!r}; expected a mapping modality -> run folder")
        self.distill_weight = check_number("distill_weight", distill_weight)
        self.teacher_dirs = {str(m): str(d) for m, d in teachers.items()}
        self.teachers: dict[str, nn.Module] = {}

    def setup(self, model: nn.Module, train_dataset: Any) -> None:
        core = check_setup(self, model, train_dataset, min_modalities=1)
        unknown = sorted(set(self.teacher_dirs) - set(core.modalities))
        if unknown:
            raise ValueError(
                f"strategy.args.teachers names modalities {unknown} that the model does not have; "
                f"its modalities are {core.modalities}"
            )
        self.teachers = {m: load_teacher(d, m, core.encoders[m]) for m, d in self.teacher_dirs.items()}

    def teacher_features(self, core: nn.Module, m: str, x: Tensor) -> Tensor:
        """Frozen teacher features of modality m at the fusion's input level."""
        teacher = self.teachers[m]
        param = next(teacher.parameters(), None)
        if param is not None and param.device != x.device:
            teacher.to(x.device)
        fn = {"pooled": teacher.forward, "sequence": teacher.sequence, "low_level": teacher.low_level}
        with torch.no_grad():
            return fn[core.fusion.input_level](x)

    def training_step(self, model: nn.Module, batch: Batch, ctx: StepContext) -> dict[str, Tensor | float]:
        core = unwrap(model)
        if not self.teachers:
            self.setup(model, None)
        out = model(batch)
        loss_ce = self.task.loss(out.logits, batch.label, class_weights=ctx.class_weights)
        loss = loss_ce
        logs: dict[str, Tensor | float] = {"loss/fused": loss_ce.detach()}
        for m in self.teachers:
            rows = batch.present[m]
            if not bool(rows.any()):
                continue
            target = self.teacher_features(core, m, batch.inputs[m][rows])
            distill = F.mse_loss(out.features[m][rows], target.to(out.features[m].dtype))
            loss = loss + self.distill_weight * distill
            logs[f"distill/{m}"] = distill.detach()
        return backward_and_step(core, loss, ctx, logs)


@STRATEGIES.register("ume", tiny={})
class UME(Strategy):
    """Uni-modal ensemble: every modality trained alone; prediction = average of the unimodal logits.

    weights: optional fixed modality -> weight of the average (equal if omitted), renormalised over
             the modalities present in each row
    Fusion: needs per-modality logits (default ``late``).
    """

    fusion_rule = "fixed"

    def __init__(self, weights: Mapping[str, float] | None = None) -> None:
        if weights is not None:
            if not isinstance(weights, Mapping) or any(
                not isinstance(w, int | float) or w < 0 for w in weights.values()
            ):
                raise ValueError(f"strategy.args.weights={weights!r}; expected a mapping modality -> number >= 0")
            if sum(weights.values()) <= 0:
                raise ValueError(f"strategy.args.weights={dict(weights)}; at least one weight must be > 0")
        self.weights = dict(weights) if weights is not None else None

    def setup(self, model: nn.Module, train_dataset: Any) -> None:
        core = check_setup(self, model, train_dataset, min_modalities=1, per_modality=True)
        if self.weights is not None and set(self.weights) != set(core.modalities):
            raise ValueError(
                f"strategy.args.weights names {sorted(self.weights)}; expected one weight for each of {core.modalities}"
            )

    def training_step(self, model: nn.Module, batch: Batch, ctx: StepContext) -> dict[str, Tensor | float]:
        core = unwrap(model)
        out = model(batch)
        per = per_modality_logits(out, "UME")
        loss: Tensor | None = None
        logs: dict[str, Tensor | float] = {}
        for m, loss_m in unimodal_losses(self.task, per, batch.present, batch.label, ctx.class_weights,
                                         names=core.modalities).items():
            loss = loss_m if loss is None else loss + loss_m
            logs[f"loss/{m}"] = loss_m.detach()
        if loss is None:  # no modality present in any row: nothing to learn from this batch
            return {"loss": 0.0}
        return backward_and_step(core, loss, ctx, logs)

    def predict(self, model: nn.Module, batch: Batch) -> ModelOutput:
        out = model(batch)
        out.logits = fixed_fusion(per_modality_logits(out, "UME's prediction"), batch.present, self.weights)
        return out
