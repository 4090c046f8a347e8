"""Evaluation: fused and per-modality predictions, gathered across ranks without duplicates.

Per-modality ("unimodal") predictions follow docs/benchmarks.md: the model is evaluated with every other
modality marked absent (``strategy.predict(model, batch.with_absent(others))``). When the fusion
cannot run that way (it raises), the modality is reported as unavailable (None / left out).
A modality's accuracy (regression: RMSE and R^2) is taken over the samples in which that modality is present.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from lightning_fabric import Fabric
from torch.utils.data import DataLoader

from polymodal.config import load_config
from polymodal.data.schema import Modality
from polymodal.engine.build import build_datasets, build_run_model, build_strategy
from polymodal.engine.checkpoint import checkpoint_dir, load_checkpoint, load_model_state, model_file
from polymodal.engine.data import make_eval_loader
from polymodal.models import MultimodalModel
from polymodal.report.metrics import (
    Predictions,
    RegressionPredictions,
    summarize,
    summarize_regression,
)
from polymodal.report.metrics import load_predictions as _load_report_predictions
from polymodal.strategies.base import Strategy

log = logging.getLogger(__name__)


@dataclass
class EvalOutputs:
    """One row per dataset sample, sorted by dataset index.

    index:        (N,) int64 dataset positions
    label:        (N,) int64 class ids; regression: (N,) or (N, K) float32 targets
    logits:       (N, C) float32 fused logits (the strategy's rule); regression: (N, K) outputs
    per_modality: name -> (N, C) logits with every other modality absent; missing when unavailable
    present:      name -> (N,) bool, whether the modality was present in the sample
    task:         "classification" or "regression"; by default what ``label`` says (float -> regression)
    concepts:     concept key -> (N, V) probabilities, from fusions that reason through concepts
    """

    index: np.ndarray
    label: np.ndarray
    logits: np.ndarray
    per_modality: dict[str, np.ndarray]
    present: dict[str, np.ndarray]
    task: str | None = None
    concepts: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task is None:
            self.task = "regression" if np.issubdtype(np.asarray(self.label).dtype, np.floating) else "classification"
        if self.task not in ("classification", "regression"):
            raise ValueError(f"task {self.task!r}; expected 'classification' or 'regression'")

    def regression_pred(self, values: np.ndarray | None = None) -> np.ndarray:
        """Regression outputs (the fused ones by default) in the shape of ``label``: (N,) or (N, K)."""
        v = self.logits if values is None else values
        if v.size != self.label.size:
            raise ValueError(
                f"the model gives {v.shape[-1]} outputs per sample but the targets have shape "
                f"{self.label.shape[1:] or '()'}; the dataset's num_outputs must equal the number of targets"
            )
        return v.reshape(self.label.shape)


@torch.no_grad()
def collect_outputs(
    fabric: Fabric,
    model: MultimodalModel,
    strategy: Strategy,
    loader: DataLoader,
    schema: tuple[Modality, ...],
    task: str | None = None,
) -> EvalOutputs:
    """Run the model over ``loader`` on every rank and gather the de-duplicated outputs on all ranks.

    ``task`` ("classification" / "regression") defaults to what the labels say (float -> regression).
    """
    names = [m.name for m in schema]
    was_training = model.training
    model.eval()
    chunks: dict[str, list[torch.Tensor]] = {}
    failed: dict[str, str] = {}
    for batch in loader:
        batch.validate(schema)
        fused = strategy.predict(model, batch)
        rows = {"index": batch.index, "label": batch.label, "logits": fused.logits.float()}
        for key, p in (getattr(fused, "concepts", None) or {}).items():
            rows[f"concept/{key}"] = p.float()
        for m in names:
            rows[f"present/{m}"] = batch.present[m]
            if m in failed:
                continue
            try:
                out = strategy.predict(model, batch.with_absent([o for o in names if o != m]))
                rows[f"per/{m}"] = out.logits.float()
            except (ValueError, RuntimeError, TypeError, KeyError) as e:
                failed[m] = f"{type(e).__name__}: {e}"
        for k, v in rows.items():
            chunks.setdefault(k, []).append(v.detach())
    model.train(was_training)
    if not chunks:
        raise ValueError("the evaluation loader yielded no batch; the split is empty")
    flags = torch.tensor([float(m in failed) for m in names], device=fabric.device)
    if fabric.world_size > 1:
        flags = fabric.all_reduce(flags, reduce_op="sum")
    for m, flag in zip(names, flags.tolist(), strict=True):
        if flag > 0:
            chunks.pop(f"per/{m}", None)
            log.warning("modality %r: no unimodal prediction (the fusion cannot run with it alone): %s",
                        m, failed.get(m, "failed on another rank"))
    local = {k: torch.cat(v) for k, v in chunks.items()}
    if fabric.world_size > 1:
        gathered = fabric.all_gather(local)
        local = {k: v.reshape(-1, *v.shape[2:]) for k, v in gathered.items()}
    arrays = {k: v.cpu().numpy() for k, v in local.items()}
    index, first = np.unique(arrays["index"], return_index=True)
    pick = {k: v[first] for k, v in arrays.items()}
    if task is None:
        task = "regression" if np.issubdtype(pick["label"].dtype, np.floating) else "classification"
    return EvalOutputs(
        index=index.astype(np.int64),
        label=pick["label"].astype(np.float32 if task == "regression" else np.int64),
        logits=pick["logits"].astype(np.float32),
        per_modality={m: pick[f"per/{m}"].astype(np.float32) for m in names if f"per/{m}" in pick},
        present={m: pick[f"present/{m}"].astype(bool) for m in names},
        task=task,
        concepts={k[len("concept/"):]: v.astype(np.float32) for k, v in pick.items() if k.startswith("concept/")},
    )


def compute_metrics(out: EvalOutputs, modalities: list[str]) -> dict[str, float | None]:
    """``loss`` (fused cross-entropy, nats), ``fused_acc``, ``<m>_acc`` per modality (None if n/a),
    ``macro_f1`` and ``ece`` (15 bins) of the fused prediction, ``n``.

    Regression (``out.task``): see :func:`compute_regression_metrics`.
    """
    if out.task == "regression":
        return compute_regression_metrics(out, modalities)
    summary = summarize(to_predictions(out))
    metrics: dict[str, float | None] = {
        "loss": float(F.cross_entropy(torch.from_numpy(out.logits), torch.from_numpy(out.label))),
        **{k: summary[k] for k in ("fused_acc", "macro_f1", "ece")},
    }
    for m in modalities:  # over the rows where m is present (summarize); None when unavailable
        metrics[f"{m}_acc"] = summary.get(f"{m}_acc")
    metrics["n"] = int(len(out.label))
    return metrics


def compute_regression_metrics(out: EvalOutputs, modalities: list[str]) -> dict[str, float | None]:
    """``loss`` (fused mean squared error over samples and targets), ``rmse``, ``mae``, ``r2`` of the fused
    prediction; per modality ``<m>_rmse`` and ``<m>_r2`` over the samples where m is present (None if
    n/a, or for R^2 with fewer than two such samples); ``n``. RMSE and R^2 average over targets as
    scikit-learn's defaults do."""
    summary = summarize_regression(to_predictions(out))
    metrics: dict[str, float | None] = {
        "loss": summary["mse"],
        "rmse": summary["rmse"],
        "mae": summary["mae"],
        "r2": _finite_or_none(summary["r2"]),
    }
    for m in modalities:
        metrics[f"{m}_rmse"] = summary.get(f"{m}_rmse")
        metrics[f"{m}_r2"] = _finite_or_none(summary.get(f"{m}_r2"))
    metrics["n"] = int(len(out.label))
    return metrics


def _finite_or_none(x: float | int | None) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def _softmax(x: np.ndarray) -> np.ndarray:
    return torch.softmax(torch.from_numpy(x), dim=1).numpy()


def to_predictions(out: EvalOutputs, class_names: tuple[str, ...] = ()) -> Predictions | RegressionPredictions:
    """Class probabilities (softmax of the logits) in the report's :class:`Predictions` form; for
    regression the outputs in the shape of the targets as :class:`RegressionPredictions`."""
    if out.task == "regression":
        return RegressionPredictions(
            y_true=out.label,
            pred=out.regression_pred(),
            per_modality={m: out.regression_pred(v) for m, v in out.per_modality.items()},
            present=dict(out.present),
            index=out.index,
        )
    return Predictions(
        y_true=out.label,
        probs=_softmax(out.logits),
        per_modality={m: _softmax(v) for m, v in out.per_modality.items()},
        index=out.index,
        class_names=tuple(class_names),
        present=dict(out.present),
        concepts=dict(out.concepts),
    )


def save_predictions(path: str | os.PathLike, out: EvalOutputs, class_names: tuple[str, ...] = ()) -> None:
    """npz with ``y_true`` (N,), ``probs`` (N, C), ``index`` (N,), ``modalities``, ``class_names``,
    ``probs_<m>`` (N, C) per available modality and ``present_<m>`` (N,) bool per modality.

    Regression: ``y_true`` and ``pred`` (N,) or (N, K), ``pred_<m>`` per available modality,
    ``present_<m>``, ``index``, ``modalities``, ``class_names`` (empty) and ``task`` ("regression").
    """
    preds = to_predictions(out, class_names)
    if isinstance(preds, RegressionPredictions):
        reg: dict[str, np.ndarray] = {
            "y_true": preds.y_true,
            "pred": preds.pred,
            "index": out.index,
            "modalities": np.array(list(out.present), dtype=str),
            "class_names": np.array([], dtype=str),
            "task": np.array("regression"),
        }
        reg.update({f"pred_{m}": p for m, p in preds.per_modality.items()})
        reg.update({f"present_{m}": p for m, p in out.present.items()})
        np.savez_compressed(path, **reg)
        return
    arrays: dict[str, np.ndarray] = {
        "y_true": preds.y_true,
        "probs": preds.probs,
        "index": out.index,
        "modalities": np.array(list(out.present), dtype=str),
        "class_names": np.array(list(class_names), dtype=str),
    }
    for m, p in preds.per_modality.items():
        arrays[f"probs_{m}"] = p
    for m, p in out.present.items():
        arrays[f"present_{m}"] = p
    for key, p in out.concepts.items():
        arrays[f"concept_{key}"] = p
    np.savez_compressed(path, **arrays)


def load_predictions(path: str | os.PathLike) -> Predictions | RegressionPredictions:
    """Read an npz written by :func:`save_predictions` (:class:`RegressionPredictions` for a regression run)."""
    with np.load(path, allow_pickle=False) as z:
        if "pred" in z.files and "probs" not in z.files:
            return _load_report_predictions(path)
        modalities = [str(m) for m in z["modalities"]]
        return Predictions(
            y_true=z["y_true"],
            probs=z["probs"],
            per_modality={m: z[f"probs_{m}"] for m in modalities if f"probs_{m}" in z},
            index=z["index"],
            class_names=tuple(str(c) for c in z["class_names"]),
            present={m: z[f"present_{m}"].astype(bool) for m in modalities if f"present_{m}" in z},
            concepts={k[len("concept_"):]: z[k] for k in z.files if k.startswith("concept_")},
        )


def _outputs_for(cfg, run_dir: Path, split: str, checkpoint: str, accelerator: str | None):
    """Rebuild ``cfg``'s model, load ``run_dir``'s checkpoint and collect outputs on ``split``."""
    ckpt = load_checkpoint(checkpoint_dir(run_dir, checkpoint))
    datasets = build_datasets(cfg, ["train", split]) if split != "train" else build_datasets(cfg, ["train"])
    strategy = build_strategy(cfg)
    model = build_run_model(cfg, datasets["train"], strategy)
    strategy.setup(model, datasets["train"])
    load_model_state(model, ckpt.model, model_file(run_dir, checkpoint), run_dir / "config.yaml")
    strategy.load_state_dict(ckpt.strategy)
    fabric = Fabric(accelerator=accelerator or cfg.trainer.accelerator, devices=1, precision=cfg.trainer.precision)
    model = fabric.setup_module(model)
    ds = datasets[split]
    loader = fabric.setup_dataloaders(
        make_eval_loader(ds, batch_size=cfg.data.eval_batch_size, order=cfg.data.eval_order,
                         fusion_rule=strategy.fusion_rule, num_workers=cfg.data.num_workers),
        use_distributed_sampler=False,
    )
    return collect_outputs(fabric, model, strategy, loader, ds.schema, task=ds.task), ds


def evaluate_run(
    run_dir: str | os.PathLike,
    split: str = "test",
    *,
    checkpoint: str = "best",
    accelerator: str | None = None,
) -> Predictions | RegressionPredictions:
    """Rebuild a finished run from ``run_dir/config.yaml``, load its ``checkpoint`` ("best" or "last")
    and predict ``split`` in one process (``accelerator`` defaults to the run's own)."""
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path} does not exist; is {run_dir} a run folder written by train()?")
    out, ds = _outputs_for(load_config(cfg_path), run_dir, split, checkpoint, accelerator)
    return to_predictions(out, ds.class_names)


def reevaluate_run(
    base_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    overrides: list[str],
    split: str = "test",
    *,
    accelerator: str | None = None,
) -> dict:
    """Evaluate a finished run's best checkpoint on ``split`` under changed data options, as a new run folder.

    For conditions that change only the evaluation data (e.g. modalities missing at test time) the trained
    model is the same, so there is no need to train again. ``out_dir`` gets a copy of ``base_dir`` whose
    ``config.yaml`` carries ``overrides``, new ``predictions_<split>.npz``, the split's provenance and a
    ``results.json`` whose ``split`` metrics are replaced (``derived_from`` names the base run). The folder
    is written under a temporary name and renamed at the end, so an interrupted call leaves nothing behind.
    Returns the new results.json content.
    """
    import json
    import shutil

    from polymodal.config import dump_config

    base, out = Path(base_dir), Path(out_dir)
    for f in ("config.yaml", "results.json", "provenance.json"):
        if not (base / f).is_file():
            raise FileNotFoundError(f"{base / f} does not exist; {base} is not a finished run folder")
    if out.exists():
        raise FileExistsError(f"{out} exists; remove it or choose another folder")
    cfg = load_config(base / "config.yaml", [*overrides, f"name={out.name}", f"out_dir={out.parent}"])
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(base, tmp, ignore=shutil.ignore_patterns(f"predictions_{split}.npz", "report*", "figures", "logs"))
    (tmp / "config.yaml").write_text(dump_config(cfg))
    outputs, ds = _outputs_for(cfg, tmp, split, "best", accelerator)
    save_predictions(tmp / f"predictions_{split}.npz", outputs, ds.class_names)
    results = json.loads((base / "results.json").read_text())
    results[split] = compute_metrics(outputs, [m.name for m in ds.schema])
    results["derived_from"] = base.name
    results["derived_overrides"] = list(overrides)
    (tmp / "results.json").write_text(json.dumps(results, indent=1))
    prov = json.loads((base / "provenance.json").read_text())
    prov.setdefault("datasets", {})[split] = dict(getattr(ds, "provenance", {}) or {})
    prov["derived_from"] = base.name
    (tmp / "provenance.json").write_text(json.dumps(prov, indent=1, default=str))
    tmp.rename(out)
    from polymodal.report import write_report

    write_report(out)
    return results
