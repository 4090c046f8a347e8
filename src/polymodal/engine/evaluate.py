"""Evaluation: fused and per-modality predictions, gathered across ranks without duplicates.

Per-modality ("unimodal") predictions follow docs/benchmarks.md: the model is evaluated with every other
modality marked absent (``strategy.predict(model, batch.with_absent(others))``). When the fusion
cannot run that way (it raises), the modality is reported as unavailable (None / left out).
A modality's accuracy (regression: RMSE and R^2) is taken over the samples in which that modality is present.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning_fabric import Fabric
from torch.utils.data import DataLoader

from polymodal.config import load_config
from polymodal.data.schema import Modality
from polymodal.engine.build import build_datasets, restore_trained
from polymodal.engine.checkpoint import checkpoint_dir, load_checkpoint
from polymodal.engine.data import make_eval_loader
from polymodal.engine.results import PROVENANCE_FILE, RESULTS_FILE, read_results
from polymodal.engine.runfolder import CONFIG_FILE, predictions_file
from polymodal.models import MultimodalModel
from polymodal.runpaths import RunPaths
from polymodal.strategies.base import Strategy
from polymodal.tasks import (
    get_task,
    read_predictions,
    read_task_state,
    task_of_labels,
    to_predictions,
    write_predictions,
)
from polymodal.tasks.outputs import EvalOutputs  # noqa: F401  (re-exported: it lives with the tasks)

log = logging.getLogger(__name__)


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

    ``task`` (a task name, :mod:`polymodal.tasks`) defaults to what the labels say (float -> regression); the
    task says which columns a batch's outputs give (:meth:`~polymodal.tasks.Task.batch_columns`) and whether
    each modality is also predicted alone.
    """
    names = [m.name for m in schema]
    task_obj = get_task(task) if task is not None else None
    was_training = model.training
    model.eval()
    chunks: dict[str, list[torch.Tensor]] = {}
    failed: dict[str, str] = {}
    for batch in loader:
        batch.validate(schema)
        fused = strategy.predict(model, batch)
        rows = {"index": batch.index, "label": batch.label}
        columns = task_obj.batch_columns(fused) if task_obj is not None else {"logits": fused.logits.float()}
        rows.update({k if k == "logits" else f"column/{k}": v for k, v in columns.items()})
        for key, p in (fused.extras or {}).items():
            rows[f"extra/{key}"] = p.float() if p.is_floating_point() else p
        alone = task_obj.modalities_alone(names) if task_obj is not None else names
        for m in names:
            rows[f"present/{m}"] = batch.present[m]
            if m in failed or m not in alone:
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
    if task_obj is None:
        task_obj = task_of_labels(pick["label"])
    n = len(index)
    return EvalOutputs(
        index=index.astype(np.int64),
        label=task_obj.read_targets(pick["label"]),
        logits=pick["logits"].astype(np.float32) if "logits" in pick else np.zeros((n, 0), dtype=np.float32),
        per_modality={m: pick[f"per/{m}"].astype(np.float32) for m in names if f"per/{m}" in pick},
        present={m: pick[f"present/{m}"].astype(bool) for m in names},
        task=task_obj.name,
        extras={k[len("extra/"):]: v for k, v in pick.items() if k.startswith("extra/")},
        columns={k[len("column/"):]: v for k, v in pick.items() if k.startswith("column/")},
    )


def compute_metrics(out: EvalOutputs, modalities: list[str]) -> dict[str, float | None]:
    """The task's metrics of the split (:meth:`polymodal.tasks.Task.metrics`): for classification ``loss``
    (fused cross-entropy, nats), ``fused_acc``, ``<m>_acc`` per modality (None if n/a), ``macro_f1`` and ``ece``
    (15 bins) of the fused prediction, ``n``; for regression ``loss`` (MSE), ``rmse``, ``mae``, ``r2``,
    ``<m>_rmse``, ``<m>_r2``, ``n``."""
    return get_task(out.task).metrics(out, modalities)


def save_predictions(path: str | os.PathLike, out: EvalOutputs, class_names: tuple[str, ...] = ()) -> None:
    """Write ``out`` as the task's predictions file (:func:`polymodal.tasks.write_predictions`): for
    classification ``y_true`` (N,), ``probs`` (N, C), ``index`` (N,), ``modalities``, ``class_names``,
    ``probs_<m>`` (N, C) per available modality and ``present_<m>`` (N,) bool per modality; for regression
    ``pred`` and ``pred_<m>`` instead of the probabilities; ``task``."""
    write_predictions(to_predictions(out, class_names), path)


def load_predictions(path: str | os.PathLike) -> Any:
    """Read a predictions file (:func:`polymodal.tasks.read_predictions`): the task's predictions object."""
    return read_predictions(path)


def _outputs_for(cfg, run_dir: Path, split: str, checkpoint: str, accelerator: str | None):
    """Rebuild ``cfg``'s model, load ``run_dir``'s checkpoint and collect outputs on ``split``."""
    ckpt = load_checkpoint(checkpoint_dir(run_dir, checkpoint))
    datasets = build_datasets(cfg, ["train", split]) if split != "train" else build_datasets(cfg, ["train"])
    model, strategy = restore_trained(cfg, run_dir, datasets["train"], checkpoint, ckpt)
    fabric = Fabric(accelerator=accelerator or cfg.trainer.accelerator, devices=1, precision=cfg.trainer.precision)
    model = fabric.setup_module(model)
    ds = datasets[split]
    loader = fabric.setup_dataloaders(
        make_eval_loader(ds, batch_size=cfg.data.eval_batch_size, order=cfg.data.eval_order,
                         fusion_rule=strategy.fusion_rule, num_workers=cfg.data.num_workers),
        use_distributed_sampler=False,
    )
    out = collect_outputs(fabric, model, strategy, loader, ds.schema, task=ds.task)
    out.fitted = read_task_state(get_task(ds.task), RunPaths(run_dir).task_state)
    return out, ds


def evaluate_run(
    run_dir: str | os.PathLike,
    split: str = "test",
    *,
    checkpoint: str = "best",
    accelerator: str | None = None,
) -> Any:
    """Rebuild a finished run from ``run_dir/config.yaml``, load its ``checkpoint`` ("best" or "last")
    and predict ``split`` in one process (``accelerator`` defaults to the run's own)."""
    run_dir = Path(run_dir)
    cfg_path = run_dir / CONFIG_FILE
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
    for f in (CONFIG_FILE, RESULTS_FILE, PROVENANCE_FILE):
        if not (base / f).is_file():
            raise FileNotFoundError(f"{base / f} does not exist; {base} is not a finished run folder")
    if out.exists():
        raise FileExistsError(f"{out} exists; remove it or choose another folder")
    cfg = load_config(base / CONFIG_FILE, [*overrides, f"name={out.name}", f"out_dir={out.parent}"])
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(base, tmp, ignore=shutil.ignore_patterns(predictions_file(base, split).name, *RunPaths(base).derived_files()))
    (tmp / CONFIG_FILE).write_text(dump_config(cfg))
    outputs, ds = _outputs_for(cfg, tmp, split, "best", accelerator)
    save_predictions(predictions_file(tmp, split), outputs, ds.class_names)
    results = read_results(base) or {}
    results[split] = compute_metrics(outputs, [m.name for m in ds.schema])
    results["derived_from"] = base.name
    results["derived_overrides"] = list(overrides)
    (tmp / RESULTS_FILE).write_text(json.dumps(results, indent=1))
    prov = json.loads((base / PROVENANCE_FILE).read_text())
    prov.setdefault("datasets", {})[split] = dict(getattr(ds, "provenance", {}) or {})
    prov["derived_from"] = base.name
    (tmp / PROVENANCE_FILE).write_text(json.dumps(prov, indent=1, default=str))
    tmp.rename(out)
    from polymodal.report import write_report

    write_report(out)
    return results
