"""The run report: ``report.md`` plus PNG figures, built from the files a training run leaves behind.

A run folder holds (any may be missing; the report says what it could not show):

- ``config.yaml``           resolved run config (``name``, ``seed``, ``data.dataset``, ``strategy.name``, ``model.fusion``)
- ``metrics.jsonl``         one JSON object per line: epoch records (``"epoch": int`` + scalars, optionally
                            ``"type": "epoch"``) or events (``"event": name`` or ``"type": name``, e.g. ``nan_loss``;
                            a ``"type": "end"`` record backs up ``results.json``'s best epoch and stop reason)
- ``results.json``          ``best_epoch``, ``epochs_run``, ``stopped_reason``, ``sec_per_epoch``, ``val`` and ``test``
                            dicts with ``fused_acc``, ``<modality>_acc`` (null when the fusion cannot run on one
                            modality), ``macro_f1``, ``ece``
- ``predictions_test.npz``  the task's arrays (classification: ``y_true`` (N,), ``probs`` (N, C), ``index``,
                            ``probs_<modality>``, ``class_names``) and ``task`` (``predictions_val.npz``
                            likewise, optional: it fills val metrics results.json lacks)
- ``provenance.json``       free-form: package versions, git commit, data checksums

The folder is read by the one run reader, :func:`polymodal.engine.runfolder.load_run`. The run's task
(:mod:`polymodal.tasks`; ``results.json``'s ``task``, else the predictions file's) writes the results table,
the section about the test predictions and its figures: a regression run reports ``rmse``, ``mae``, ``r2``
fused and ``<modality>_rmse`` / ``<modality>_r2``, and draws a predicted-vs-true scatter plot instead of the
confusion matrix and the reliability diagram.

Unknown keys are ignored or listed as they are; nothing here needs a screen or a network.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.engine.runfolder import Run, load_run, run_files
from polymodal.report.escape import md_code, md_text
from polymodal.report.extras import extras_section
from polymodal.report.plots import plot_grad_norms, plot_learning_curves
from polymodal.report.table import is_number, markdown_table, num
from polymodal.runpaths import RunPaths

RUN_FILES = run_files()
FIGURES = {"curves": "learning_curves.png", "grad": "grad_norms.png"}  # the task's figures come from Task.figures
MAX_PROVENANCE_LINES = 25

RunFiles = Run  # what load_run returns (the name this module used before the one run reader)
_is_number, _num = is_number, num


def _table(header: list[str], rows: list[list[str]]) -> str:
    """Markdown table; first column left-aligned, the others right-aligned."""
    return "\n".join(markdown_table(header, rows))


def _training_lines(run: Run) -> list[str]:
    r = run.results
    lines = []
    if "best_epoch" in r or "epochs_run" in r:
        sel = r.get("selection")
        how = "validation" if not isinstance(sel, str) else f"the {'lowest' if run.task.mode == 'min' else 'highest'} {sel}"
        lines.append(f"- Best epoch (selected on {how}): {_num(r.get('best_epoch'))} of {_num(r.get('epochs_run'))} run.")
    if r.get("stopped_reason") is not None:
        lines.append(f"- Training stopped: {md_text(r['stopped_reason'])}.")
    if r.get("message"):
        lines.append(f"- Message: {md_text(r['message'])}")
    sec = r.get("sec_per_epoch")
    if not _is_number(sec):
        logged = [x["sec_per_epoch"] for x in run.records if _is_number(x.get("sec_per_epoch"))]
        sec = float(np.mean(logged)) if logged else None
    if sec is not None:
        lines.append(f"- Seconds per epoch: {sec:.2f} s.")
    throughput = [x["samples_per_sec"] for x in run.records if _is_number(x.get("samples_per_sec"))]
    if throughput:
        lines.append(f"- Training throughput: {np.mean(throughput):.1f} samples/s (mean over epochs).")
    return lines or ["- No training summary (`results.json` missing or without `best_epoch`)."]


def _flatten(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        items += _flatten(v, key + ".") if isinstance(v, dict) and v else [(key, v)]
    return items


def _provenance_lines(prov: dict[str, Any]) -> list[str]:
    items = _flatten(prov)
    lines = []
    for key, value in items[:MAX_PROVENANCE_LINES]:
        text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        lines.append(f"- {md_text(key)}: {md_code(text if len(text) <= 80 else text[:77] + '...')}")
    if len(items) > MAX_PROVENANCE_LINES:
        lines.append(f"- ... and {len(items) - MAX_PROVENANCE_LINES} more entries in `provenance.json`.")
    return lines or ["- `provenance.json` is empty."]


def _last_epoch_table(records: list[dict[str, Any]]) -> str:
    last = records[-1]
    rows = [[md_text(k), _num(v, ".4g")] for k, v in last.items() if k != "epoch" and _is_number(v)]
    return _table(["key", "value"], rows)


def _task_section(run: Run, pred: Any) -> list[str]:
    """The task's section about the test predictions, with the class names escaped (they come from the
    user's label column: ``<script>`` must not become HTML, see :mod:`polymodal.report.escape`)."""
    names = tuple(getattr(pred, "class_names", ()) or ())
    safe = tuple(md_text(c) for c in names)
    if safe == names or not dataclasses.is_dataclass(pred):
        return run.task.report_section(pred, run.run_dir)
    lines = run.task.report_section(dataclasses.replace(pred, class_names=safe), run.run_dir)
    run.task.report_section(pred, run.run_dir)  # files a task writes beside the report keep the names as they are
    return lines


def render_report(run: Run, figures: dict[str, Path], task_figures: dict[str, tuple[Path, str]] | None = None) -> str:
    """Markdown text of the report; ``figures`` maps keys of :data:`FIGURES` to files written under the run
    folder, ``task_figures`` the task's figures of the test predictions (key -> (file, alt text))."""
    task_figures = task_figures or {}
    cfg = run.config
    name = cfg.get("name") or run.run_dir.name
    data, strategy, model = (cfg.get(k) if isinstance(cfg.get(k), dict) else {} for k in ("data", "strategy", "model"))
    fusion = model.get("fusion") or "strategy default"
    out = [
        f"# Run report: {md_text(name)}",
        "",
        f"Dataset {md_code(data.get('dataset', 'unknown'))} | strategy {md_code(strategy.get('name', 'unknown'))} | "
        f"fusion {md_code(fusion)} | seed {md_text(cfg.get('seed', 'unknown'))}",
        "",
    ]
    if run.notes:
        out += ["Notes: " + " ".join(md_text(n) for n in run.notes), ""]
    out += ["## Results", ""]
    task = run.task
    if run.results:
        out += [task.results_intro, "", "\n".join(task.results_table(run.results)), ""]
    out += ["## Training", "", *_training_lines(run), ""]
    if run.events:
        out += ["Events:", ""]
        for e in run.events:
            extra = ", ".join(f"{k}={v}" for k, v in e.items() if k not in ("event", "type", "epoch", "message"))
            where = f"epoch {e['epoch']}: " if "epoch" in e else ""
            line = f"- {where}{e.get('event', e.get('type'))}" + (f" ({extra})" if extra else "")
            out.append(md_text(line) + (f": {md_text(e['message'])}" if e.get("message") else ""))
        out.append("")
    rel = {k: p.relative_to(run.run_dir).as_posix() for k, p in figures.items()}
    rel.update({k: p.relative_to(run.run_dir).as_posix() for k, (p, _) in task_figures.items()})
    if "curves" in rel:
        out += [f"![Learning curves]({rel['curves']})", ""]
    if "grad" in rel:
        out += [
            "Encoder gradient norms (log scale). A modality whose norm, or ratio to the first modality, "
            "stays far below the others is learning little (a lazy modality).",
            "",
            f"![Gradient norms]({rel['grad']})",
            "",
        ]
    if run.records:
        out += [f"Last epoch record (epoch {run.records[-1]['epoch']}):", "", _last_epoch_table(run.records), ""]
    if run.test_predictions is not None:
        out += _task_section(run, run.test_predictions)
        out += extras_section(run.test_predictions)
    for key, (_, alt) in task_figures.items():
        out += [f"![{alt}]({rel[key]})", ""]
    if run.provenance:
        out += ["## Provenance", "", *_provenance_lines(run.provenance), ""]
    return "\n".join(out)


def write_report(run_dir: str | Path) -> Path:
    """Write ``run_dir/report.md`` and its figures under ``run_dir/figures/``; return the report path."""
    run = load_run(run_dir)
    fig_dir = RunPaths(run.run_dir).figures
    if fig_dir.is_dir():  # a figure this run no longer supports must not linger from an earlier report
        for stale in fig_dir.glob("*.png"):
            stale.unlink(missing_ok=True)
    figures: dict[str, Path] = {}
    if run.records:
        figures["curves"] = plot_learning_curves(run.records, fig_dir / FIGURES["curves"], run.task.learning_curve())
        grad = plot_grad_norms(run.records, fig_dir / FIGURES["grad"])
        if grad is not None:
            figures["grad"] = grad
    task_figures = run.task.figures(run.test_predictions, fig_dir) if run.test_predictions is not None else {}
    path = RunPaths(run.run_dir).report
    path.write_text(render_report(run, figures, task_figures))
    return path
