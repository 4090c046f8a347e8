"""A trained run's model, evaluated many times over one split without running its encoders again.

:class:`Probe` runs the encoders over the split once and keeps every modality's features (at the fusion's
input level). Every later question (a subset of modalities, a modality permuted across samples, pairs of
samples mixed for EMAP, missing rows) is then a pass of the fusion and the strategy's test-time rule over
these features: a modality left out is marked absent in the presence mask and its slot zero-filled, exactly
what :class:`~polymodal.models.MultimodalModel` does with an absent modality (the model's own
missing-modality path; the features of a present row do not depend on the other rows, as the encoders run
in eval mode). Only a corrupted modality is encoded again (:meth:`Probe.encode`).

A row in which no modality is left is predicted by the empty coalition: the same output for every sample,
the mean of the full model's outputs over the split (:attr:`Probe.constant`; docs/quantify.md).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from polymodal.data.batch import Batch
from polymodal.models import FeatureTransform, MultimodalModel
from polymodal.tasks import get_task, read_task_state
from polymodal.tasks.base import LOGITS
from polymodal.tasks.outputs import EvalOutputs, ModelOutput


class QuantifyError(ValueError):
    """A run or split that cannot be quantified; the message names what is missing and how to fix it."""


class FeatureModel(nn.Module):
    """The trained model's fusion over precomputed features: ``batch.inputs[m]`` holds modality m's features
    at the fusion's input level ((B, D) pooled, (B, T, D) sequence); absent rows are zero-filled as
    :meth:`MultimodalModel.forward` does. ``sequence_masks`` (set by the probe per chunk) are handed to a
    fusion that reads them."""

    def __init__(self, model: MultimodalModel) -> None:
        super().__init__()
        self.core = model
        self.modalities: list[str] = list(model.modalities)
        self.fusion = model.fusion
        self.encoders = model.encoders
        self.num_outputs = model.num_outputs
        self.sequence_masks: dict[str, Tensor] = {}

    def __getattr__(self, name: str) -> Any:
        """Modules a strategy added to the trained model (``model.imagine``'s translators, ...) are read from it."""
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("core"), name)

    def forward(self, batch: Batch, modalities: Collection[str] | None = None,
                transform: FeatureTransform | None = None) -> ModelOutput:
        """As :meth:`MultimodalModel.forward`, on precomputed features (``transform`` included)."""
        names = set(modalities) if modalities is not None else set(self.modalities)
        present = {m: (batch.present[m] if m in names else torch.zeros_like(batch.present[m])) for m in self.modalities}
        feats = {}
        for m in self.modalities:
            x = batch.inputs[m]
            keep = present[m].view(-1, *([1] * (x.dim() - 1)))
            feats[m] = torch.where(keep, x, torch.zeros_like(x))
        if transform is not None:
            feats, present = transform(feats, present)
        if getattr(self.fusion, "uses_sequence_mask", False):
            out = self.fusion(feats, present, sequence_mask=self.sequence_masks)
        else:
            out = self.fusion(feats, present)
        return ModelOutput(out.logits, out.per_modality, feats, dict(out.extras or {}))


def _pooled(x: Tensor) -> Tensor:
    """(N, D) of a feature tensor: sequences averaged over positions, anything else flattened."""
    return x.mean(1) if x.dim() == 3 else x.reshape(len(x), -1)


@dataclass
class Probe:
    """One split of a trained run, encoded once (see the module docstring). Rows are in the evaluation
    loader's order; :meth:`outputs` sorts them by dataset index as evaluation does.

    features: modality -> (N, ...) features at the fusion's input level (zeros where the modality is absent)
    present:  modality -> (N,) bool, whether the dataset has the modality in the row
    label:    (N, ...) targets; index: (N,) dataset positions
    constant: (C,) the empty coalition's output (mean of the full model's outputs)
    """

    model: MultimodalModel
    strategy: Any
    task: Any
    dataset: Any
    features: dict[str, Tensor]
    sequence_masks: dict[str, Tensor]
    present: dict[str, Tensor]
    label: Tensor
    index: Tensor
    batch_size: int
    fitted: Any = None
    constant: Tensor = field(default_factory=lambda: torch.zeros(0))
    order: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))

    @property
    def modalities(self) -> list[str]:
        return list(self.model.modalities)

    @property
    def n(self) -> int:
        return len(self.index)

    # -- building ----------------------------------------------------------------------------------------
    @classmethod
    def from_run(cls, run: Any, split: str = "test", *, batch_size: int | None = None) -> Probe:
        """Encode ``split`` of a :class:`~polymodal.engine.runfolder.Run` with its best checkpoint."""
        from polymodal.engine.data import make_eval_loader
        from polymodal.runpaths import RunPaths

        task = run.task
        if LOGITS not in task.capabilities:
            raise QuantifyError(f"run {run.run_dir}: its task {task.name!r} gives no predictions to quantify (its "
                                f"outputs are embeddings); polymodal quantify needs a task whose model predicts the "
                                f"label (classification, regression, multilabel, survival)")
        model, strategy, train = run.trained()
        cfg = run.run_config()
        ds = train if split == "train" else run.datasets([split])[split]
        check_labels(ds, split)
        loader = make_eval_loader(ds, batch_size=batch_size or cfg.data.eval_batch_size, order=cfg.data.eval_order,
                                  fusion_rule=strategy.fusion_rule, num_workers=0)
        fitted = read_task_state(task, RunPaths(run.run_dir).task_state)
        return cls.from_loader(model, strategy, task, ds, loader, fitted=fitted)

    @classmethod
    @torch.no_grad()
    def from_loader(cls, model: MultimodalModel, strategy: Any, task: Any, dataset: Any, loader: Any, *,
                    fitted: Any = None) -> Probe:
        """Encode every batch of ``loader`` (a trained ``model`` in eval mode, its ``strategy``)."""
        model.eval()
        names = list(model.modalities)
        chunks: dict[str, list[Tensor]] = {}
        masks: dict[str, list[Tensor]] = {}
        uses_masks = getattr(model.fusion, "uses_sequence_mask", False)
        size = 0
        for batch in loader:
            batch.validate(dataset.schema)
            size = max(size, batch.size)
            for m in names:
                chunks.setdefault(f"f/{m}", []).append(model.encode(m, batch.inputs[m], batch.present[m]).float())
                chunks.setdefault(f"p/{m}", []).append(batch.present[m].bool())
                if uses_masks and (mask := model.encoders[m].sequence_mask(batch.inputs[m])) is not None:
                    masks.setdefault(m, []).append(mask)
            chunks.setdefault("label", []).append(batch.label)
            chunks.setdefault("index", []).append(batch.index)
        if not chunks:
            raise QuantifyError("the split is empty: nothing to quantify")
        cat = {k: torch.cat(v) for k, v in chunks.items()}
        probe = cls(model=model, strategy=strategy, task=get_task(task), dataset=dataset,
                    features={m: cat[f"f/{m}"] for m in names}, sequence_masks={m: torch.cat(v) for m, v in masks.items()},
                    present={m: cat[f"p/{m}"] for m in names}, label=cat["label"], index=cat["index"].long(),
                    batch_size=size, fitted=fitted)
        probe.order = torch.argsort(probe.index)
        full = probe.logits()
        anywhere = torch.stack(list(probe.present.values())).any(0)
        probe.constant = full[anywhere].mean(0) if bool(anywhere.any()) else full.mean(0)
        return probe

    # -- passes over the features --------------------------------------------------------------------------
    @torch.no_grad()
    def logits(self, keep: Collection[str] | None = None, *, features: Mapping[str, Tensor] | None = None,
               present: Mapping[str, Tensor] | None = None, source: Mapping[str, Tensor] | None = None,
               chunk: int | None = None) -> Tensor:
        """(R, C) fused outputs (the strategy's test-time rule) with only the modalities ``keep`` (None: all).

        features / present: replace the probe's (N, ...) features / (N,) presence of some modalities
        source:   modality -> (R,) row of the probe each output row takes that modality from (default: row r
                  itself, R = N); mixes samples (EMAP, permutations)
        chunk:    rows per pass (default: the evaluation batch size, so batch-level rules see the same batches)
        A row left with no modality gets :attr:`constant`."""
        kept = set(self.modalities if keep is None else keep)
        unknown = kept - set(self.modalities)
        if unknown:
            raise QuantifyError(f"modalities {sorted(unknown)} are not the model's; it has {self.modalities}")
        feats = {**self.features, **(features or {})}
        pres = {**self.present, **(present or {})}
        src = dict(source or {})
        n = len(next(iter(src.values()))) if src else self.n
        step = chunk or self.batch_size
        out: list[Tensor] = []
        fm = FeatureModel(self.model)
        for start in range(0, n, step):
            sel = torch.arange(start, min(start + step, n))
            rows = {m: (src[m][sel] if m in src else sel) for m in self.modalities}
            p = {m: (pres[m][rows[m]] if m in kept else torch.zeros(len(sel), dtype=torch.bool)) for m in self.modalities}
            any_present = torch.stack(list(p.values())).any(0)
            fill = (self.constant if self.constant.numel() else torch.zeros(self.model.num_outputs)).expand(len(sel), -1)
            if not bool(any_present.any()):
                out.append(fill.clone())
                continue
            fm.sequence_masks = {m: v[rows[m]] for m, v in self.sequence_masks.items()}
            batch = Batch({m: feats[m][rows[m]] for m in self.modalities}, p, self.label[sel % self.n], self.index[sel % self.n])
            try:
                res = self.strategy.predict(fm, batch).logits.float()
            except (ValueError, RuntimeError, TypeError, KeyError) as e:
                absent = [m for m in self.modalities if m not in kept]
                raise QuantifyError(
                    f"the model cannot predict with {', '.join(absent) or 'some modalities'} absent "
                    f"(fusion {type(self.model.fusion).__name__}, strategy {type(self.strategy).__name__}: "
                    f"{type(e).__name__}: {e}); polymodal quantify evaluates subsets of modalities through the "
                    f"presence mask, so it needs a fusion that can drop a modality (late, shared_head, gated, "
                    f"attention, ...: see docs/quantify.md)") from None
            if not torch.isfinite(res[any_present]).all():
                raise QuantifyError(
                    f"the model gives non-finite outputs with only {sorted(kept)} present (fusion "
                    f"{type(self.model.fusion).__name__}); it cannot drop a modality through the presence mask")
            out.append(torch.where(any_present.view(-1, 1), res, fill))
        return torch.cat(out)

    def outputs(self, logits: Tensor, extras: Mapping[str, np.ndarray] | None = None) -> EvalOutputs:
        """The split's :class:`EvalOutputs` of ``logits`` (N, C) (rows in the probe's order), sorted by dataset
        index; ``extras`` (N, ...) per sample, in the probe's order too."""
        o = self.order
        columns = self.task.batch_columns(ModelOutput(logits, None, {}, {}))
        cols = {k: v.detach().cpu().numpy()[o.numpy()] for k, v in columns.items()}
        logit = cols.pop("logits", np.zeros((self.n, 0), dtype=np.float32))
        return EvalOutputs(index=self.index[o].numpy().astype(np.int64),
                           label=self.task.read_targets(self.label[o].cpu().numpy()),
                           logits=logit.astype(np.float32), per_modality={},
                           present={m: self.present[m][o].cpu().numpy() for m in self.modalities},
                           task=self.task.name, extras={k: np.asarray(v)[o.numpy()] for k, v in (extras or {}).items()},
                           columns=cols, fitted=self.fitted)

    def metrics(self, logits: Tensor) -> dict[str, float | None]:
        """The task's metrics of ``logits`` over the split (per-modality ones left out)."""
        return self.task.metrics(self.outputs(logits), [])

    def score(self, logits: Tensor) -> float:
        """The task's monitor, signed so that higher is better (the Shapley value function)."""
        value = self.metrics(logits).get(self.task.monitor)
        if value is None or not np.isfinite(value):
            raise QuantifyError(f"the task's metric {self.task.monitor!r} is undefined on this split (value {value})")
        return float(value) if self.task.mode == "max" else -float(value)

    def sample_values(self, logits: Tensor) -> np.ndarray | None:
        """(N,) per-sample values, minus the task's per-sample loss (log-likelihood of the target), in the
        probe's order; None for a task without a per-sample loss."""
        try:
            loss = self.task.sample_losses(logits, self.label)
        except ValueError:
            return None
        return -loss.detach().cpu().numpy().astype(np.float64)

    # -- encoding again ----------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, modality: str, transform: Callable[[Tensor, Tensor, np.random.Generator], Tensor],
               seed: int = 0) -> Tensor:
        """(N, ...) features of ``modality`` after ``transform(x, present, rng)`` changed its inputs (in the
        probe's row order), for robustness curves. Iterates the split again in the same order."""
        rng = np.random.default_rng(seed)
        out = torch.empty_like(self.features[modality])
        pos = {int(i): r for r, i in enumerate(self.index.tolist())}
        for start in range(0, len(self.dataset), self.batch_size):
            idx = list(range(start, min(start + self.batch_size, len(self.dataset))))
            batch = self.dataset.collate_fn()([self.dataset[i] for i in idx])
            x = transform(batch.inputs[modality], batch.present[modality], rng)
            f = self.model.encode(modality, x, batch.present[modality]).float()
            rows = torch.tensor([pos[int(i)] for i in batch.index.tolist()])
            out[rows] = f
        return out

    def pooled(self, modality: str) -> np.ndarray:
        """(N, D) features of a modality pooled over positions (the representation PID and the projections use)."""
        return _pooled(self.features[modality]).cpu().numpy()


def check_labels(ds: Any, split: str) -> None:
    """A split must carry labels: a clear error for a split whose rows have none."""
    labels = getattr(ds, "labels", None)
    if labels is None or len(labels) == 0:
        raise QuantifyError(f"split {split!r} has no labels; quantification compares predictions with the labels: "
                            f"use a labelled split (--split val or test)")
    has = getattr(ds, "has_label", None)
    if has is not None and not np.asarray(has, dtype=bool).all():
        missing = int((~np.asarray(has, dtype=bool)).sum())
        raise QuantifyError(f"split {split!r} has {missing} of {len(has)} rows without a label; quantification needs "
                            f"every row labelled: use a labelled split or fill the label column")


__all__ = ["FeatureModel", "Probe", "QuantifyError", "check_labels"]
