"""The run report: ``report.md`` plus PNG figures, built from the files a training run leaves behind.

A run folder holds (any may be missing; the report says what it could not show):

- ``config.yaml``           resolved run config (``name``, ``seed``, ``data.dataset``, ``strategy.name``, ``model.fusion``)
- ``metrics.jsonl``         one JSON object per line: epoch records (``"epoch": int`` + scalars, optionally
                            ``"type": "epoch"``) or events (``"event": name`` or ``"type": name``, e.g. ``nan_loss``;
                            a ``"type": "end"`` record backs up ``results.json``'s best epoch and stop reason)
- ``results.json``          ``best_epoch``, ``epochs_run``, ``stopped_reason``, ``sec_per_epoch``, ``val`` and ``test``
                            dicts with ``fused_acc``, ``<modality>_acc`` (null when the fusion cannot run on one
                            modality), ``macro_f1``, ``ece``
- ``predictions_test.npz``  ``y_true`` (N,), ``probs`` (N, C), ``index``, ``probs_<modality>``, ``class_names``
                            (``predictions_val.npz`` likewise, optional: it fills val metrics results.json lacks)
- ``provenance.json``       free-form: package versions, git commit, data checksums

A regression run (``results.json``'s ``task``, or predictions holding ``pred`` instead of ``probs``) reports
``rmse``, ``mae``, ``r2`` fused and ``<modality>_rmse`` / ``<modality>_r2``, and draws a predicted-vs-true
scatter plot instead of the confusion matrix and the reliability diagram.

Unknown keys are ignored or listed as they are; nothing here needs a screen or a network.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from polymodal.report.metrics import (
    Predictions,
    RegressionPredictions,
    accuracy,
    confusion_matrix,
    load_predictions,
    per_class_report,
    summarize,
    summarize_regression,
)
from polymodal.report.plots import (
    plot_grad_norms,
    plot_learning_curves,
    plot_regression_scatter,
    plot_reliability,
)
from polymodal.report.table import markdown_table

RUN_FILES = ("config.yaml", "metrics.jsonl", "results.json", "predictions_test.npz", "provenance.json")
FIGURES = {"curves": "learning_curves.png", "grad": "grad_norms.png", "reliability": "reliability_test.png",
           "scatter": "scatter_test.png"}
MAX_CONFUSION_CLASSES = 30  # larger confusion matrices go to a CSV file instead of a Markdown table
MAX_PROVENANCE_LINES = 25


@dataclass
class RunFiles:
    """What :func:`load_run` read from a run folder; ``notes`` lists files missing or partly unreadable."""

    run_dir: Path
    config: dict[str, Any] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)  # epoch records, in file order
    events: list[dict[str, Any]] = field(default_factory=list)  # records with an "event" key
    results: dict[str, Any] = field(default_factory=dict)
    predictions: Predictions | RegressionPredictions | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    end: dict[str, Any] = field(default_factory=dict)  # the closing "end" record of metrics.jsonl, if any
    notes: list[str] = field(default_factory=list)

    @property
    def task(self) -> str:
        """"regression" when results.json says so, the test predictions are regression predictions, or
        the logged metrics are regression metrics (``rmse`` / ``r2`` without ``fused_acc``); else
        "classification"."""
        if self.results.get("task") in ("classification", "regression"):
            return str(self.results["task"])
        if self.predictions is not None:
            return self.predictions.task
        splits = [d for d in (self.results.get("val"), self.results.get("test")) if isinstance(d, dict)]
        if any("rmse" in d or "r2" in d for d in splits) and not any("fused_acc" in d for d in splits):
            return "regression"
        return "classification"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); fix or delete the file and run the report again") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object at top level; got {type(data).__name__}")
    return data


def _read_metrics_log(path: Path, run: RunFiles) -> None:
    """Sort ``metrics.jsonl`` lines into epoch records and events (both spellings: ``"type"`` / ``"event"``)."""
    bad = 0
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            bad += 1  # e.g. the last line of a run killed while writing
            continue
        if not isinstance(rec, dict):
            bad += 1
            continue
        kind = rec.get("event", rec.get("type", "epoch"))
        if kind == "epoch" and isinstance(rec.get("epoch"), int):
            run.records.append(rec)
        elif kind == "end":  # the run's closing summary: a fallback when results.json lacks these keys
            run.end = rec
        elif kind != "epoch":
            run.events.append(rec)
    if bad:
        run.notes.append(f"{bad} unreadable line(s) in `metrics.jsonl` were skipped.")


def load_run(run_dir: str | Path) -> RunFiles:
    """Read the run files of ``run_dir``; raises FileNotFoundError if it holds none of them.

    Metrics that ``results.json`` lacks for a split (a key absent, not a null) are computed from
    ``predictions_<split>.npz`` when that file exists.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {run_dir} does not exist (expected the out_dir/name of a training run)")
    present = [f for f in RUN_FILES if (run_dir / f).is_file()]
    if not present:
        raise FileNotFoundError(f"run folder {run_dir} holds none of {', '.join(RUN_FILES)}; is it a training run folder?")
    run = RunFiles(run_dir=run_dir)
    run.notes += [f"`{f}` is missing." for f in RUN_FILES if f not in present]
    if (p := run_dir / "config.yaml").is_file():
        try:
            cfg = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ValueError(f"{p} is not valid YAML: {e}") from None
        run.config = cfg if isinstance(cfg, dict) else {}
    if (p := run_dir / "metrics.jsonl").is_file():
        _read_metrics_log(p, run)
    if (p := run_dir / "results.json").is_file():
        run.results = _read_json(p)
    for key in ("best_epoch", "epochs_run", "stopped_reason"):
        if key not in run.results and key in run.end:
            run.results[key] = run.end[key]
    for split in ("val", "test"):
        if (p := run_dir / f"predictions_{split}.npz").is_file():
            pred = load_predictions(p)
            if split == "test":
                run.predictions = pred
            logged = run.results.setdefault(split, {}) if isinstance(run.results.get(split, {}), dict) else {}
            summary = summarize(pred)
            # regression: the engine logs the fused MSE as "loss"; do not repeat it as "mse"
            filled = [k for k in summary if k != "n" and k not in logged and not (k == "mse" and "loss" in logged)]
            logged.update({k: summary[k] for k in filled})
            if filled:
                run.notes.append(f"{split} {', '.join(filled)} computed from `predictions_{split}.npz`.")
    if (p := run_dir / "provenance.json").is_file():
        run.provenance = _read_json(p)
    return run


# ----------------------------------------------------------------------------- formatting


def _is_number(x: object) -> bool:
    return isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool) and math.isfinite(x)


def _pct(x: object) -> str:
    return f"{100 * x:.2f}" if _is_number(x) else "n/a"


def _num(x: object, fmt: str = ".4f") -> str:
    if isinstance(x, int) and not isinstance(x, bool):
        return str(x)
    return format(x, fmt) if _is_number(x) else "n/a"


def _table(header: list[str], rows: list[list[str]]) -> str:
    """Markdown table; first column left-aligned, the others right-aligned."""
    return "\n".join(markdown_table(header, rows))


def _modalities(results: dict[str, Any], suffixes: tuple[str, ...] = ("_acc",)) -> list[str]:
    """Modality names of the per-modality keys ``<m><suffix>`` in results.json (fused keys left out)."""
    names: dict[str, None] = {}
    for split in ("val", "test"):
        for key in results.get(split) or {}:
            for suffix in suffixes:
                if key.endswith(suffix) and "@" not in key and key != f"fused{suffix}" and len(key) > len(suffix):
                    names[key[: -len(suffix)]] = None
    return list(names)


def _regression_table(results: dict[str, Any]) -> str:
    val, test = results.get("val") or {}, results.get("test") or {}
    rows = [[label, _num(val.get(key), ".4g"), _num(test.get(key), ".4g")]
            for key, label in (("rmse", "fused RMSE"), ("mae", "fused MAE"), ("r2", "fused R^2"))]
    modalities = _modalities(results, ("_rmse", "_r2"))
    for m in modalities:
        rows.append([f"{m} RMSE", _num(val.get(f"{m}_rmse"), ".4g"), _num(test.get(f"{m}_rmse"), ".4g")])
        rows.append([f"{m} R^2", _num(val.get(f"{m}_r2"), ".4g"), _num(test.get(f"{m}_r2"), ".4g")])
    known = {"rmse", "mae", "r2"} | {f"{m}_{k}" for m in modalities for k in ("rmse", "r2")}
    for key in dict.fromkeys([*val, *test]):
        if key not in known and (_is_number(val.get(key)) or _is_number(test.get(key))):
            label = {"loss": "loss (fused MSE)", "mse": "fused MSE", "n": "samples"}.get(key, key)
            rows.append([label, _num(val.get(key), ".4g"), _num(test.get(key), ".4g")])
    return _table(["metric", "val", "test"], rows)


def _metrics_table(results: dict[str, Any]) -> str:
    val, test = results.get("val") or {}, results.get("test") or {}
    rows = [["fused accuracy (%)", _pct(val.get("fused_acc")), _pct(test.get("fused_acc"))]]
    for key in dict.fromkeys([*val, *test]):
        if key.startswith("fused_acc@"):
            rows.append([f"fused accuracy, {key.split('@', 1)[1]} rule (%)", _pct(val.get(key)), _pct(test.get(key))])
    for m in _modalities(results):
        rows.append([f"{m} accuracy (%)", _pct(val.get(f"{m}_acc")), _pct(test.get(f"{m}_acc"))])
    rows.append(["macro F1 (%)", _pct(val.get("macro_f1")), _pct(test.get("macro_f1"))])
    rows.append(["ECE", _num(val.get("ece")), _num(test.get("ece"))])
    known = {"fused_acc", "macro_f1", "ece"} | {f"{m}_acc" for m in _modalities(results)}
    for key in dict.fromkeys([*val, *test]):
        if key not in known and not key.startswith("fused_acc@") and (_is_number(val.get(key)) or _is_number(test.get(key))):
            label = {"loss": "loss (fused cross-entropy)", "n": "samples"}.get(key, key)
            rows.append([label, _num(val.get(key), ".4g"), _num(test.get(key), ".4g")])
    return _table(["metric", "val", "test"], rows)


def _training_lines(run: RunFiles) -> list[str]:
    r = run.results
    lines = []
    if "best_epoch" in r or "epochs_run" in r:
        sel = r.get("selection")
        how = "validation" if not isinstance(sel, str) else f"the {'lowest' if sel.endswith('rmse') else 'highest'} {sel}"
        lines.append(f"- Best epoch (selected on {how}): {_num(r.get('best_epoch'))} of {_num(r.get('epochs_run'))} run.")
    if r.get("stopped_reason") is not None:
        lines.append(f"- Training stopped: {r['stopped_reason']}.")
    if r.get("message"):
        lines.append(f"- Message: {r['message']}")
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


def _class_section(pred: Predictions, run_dir: Path) -> list[str]:
    y, probs = np.asarray(pred.y_true), np.asarray(pred.probs)
    num_classes = probs.shape[1]
    names = list(pred.class_names) if len(pred.class_names) == num_classes else [str(c) for c in range(num_classes)]
    y_pred = probs.argmax(axis=1)
    cm = confusion_matrix(y, y_pred, num_classes)
    accs = [f"fused {100 * accuracy(y, probs):.2f} %"]
    accs += [f"{m} alone {100 * accuracy(y, p):.2f} %" for m, p in pred.per_modality.items()]
    out = ["## Test predictions (fused)", "", f"{len(y)} test samples, {num_classes} classes; accuracy: {', '.join(accs)}.", ""]
    if num_classes <= MAX_CONFUSION_CLASSES:
        out += ["Confusion matrix (rows: true class, columns: predicted class):", ""]
        out += [_table(["true \\ pred", *names], [[names[i], *map(str, cm[i])] for i in range(num_classes)]), ""]
    else:
        csv = run_dir / "confusion_test.csv"
        np.savetxt(csv, cm, fmt="%d", delimiter=",", header=",".join(names), comments="")
        out += [f"Confusion matrix ({num_classes} x {num_classes}, rows true): [confusion_test.csv](confusion_test.csv)", ""]
    rep = per_class_report(y, y_pred, num_classes)
    rows = [
        [names[c], f"{rep['precision'][c]:.3f}", f"{rep['recall'][c]:.3f}", f"{rep['f1'][c]:.3f}", str(rep["support"][c])]
        for c in range(num_classes)
    ]
    out += ["Per-class report:", "", _table(["class", "precision", "recall", "F1", "support"], rows), ""]
    return out + _concept_section(pred)


def _concept_section(pred: Predictions) -> list[str]:
    """Predicted concepts (fusions that reason through concepts): per concept, the rows where its
    modality is present, the mean confidence of the predicted value, the share of rows below 0.5, and the
    most frequent predicted values; per-sample values are in ``predictions_test.npz`` (``concept_<key>``)."""
    if not pred.concepts:
        return []
    rows = []
    for key, p in pred.concepts.items():
        p = np.asarray(p, dtype=np.float64)
        here = np.asarray(pred.present.get(key.split(".", 1)[0], np.ones(len(p), dtype=bool)), dtype=bool)
        if not here.any():
            rows.append([key, "0", "n/a", "n/a", "-"])
            continue
        conf, value = p[here].max(axis=1), p[here].argmax(axis=1)
        counts = np.bincount(value, minlength=p.shape[1])
        top = ", ".join(f"{v} ({100 * counts[v] / here.sum():.0f} %)" for v in np.argsort(-counts, kind="stable")[:3])
        rows.append([key, str(int(here.sum())), f"{conf.mean():.3f}", f"{100 * np.mean(conf < 0.5):.1f} %", top])
    return ["## Concepts (test)", "",
            "What each modality's concept head predicts on the test rows where the modality is present; "
            "per-sample concept probabilities are in `predictions_test.npz` (`concept_<key>`).", "",
            _table(["concept", "rows", "mean confidence", "confidence < 0.5", "most predicted values"], rows), ""]


def _regression_section(pred: RegressionPredictions) -> list[str]:
    y = np.asarray(pred.y_true)
    k = 1 if y.ndim == 1 else y.shape[1]
    summary = summarize_regression(pred)
    parts = [f"fused RMSE {_num(summary['rmse'], '.4g')}, MAE {_num(summary['mae'], '.4g')}, R^2 {_num(summary['r2'])}"]
    parts += [f"{m} alone RMSE {_num(summary.get(f'{m}_rmse'), '.4g')}, R^2 {_num(summary.get(f'{m}_r2'))}"
              for m in pred.per_modality]
    noun = "target" if k == 1 else "targets"
    out = ["## Test predictions (fused)", "", f"{len(y)} test samples, {k} regression {noun}; " + "; ".join(parts) + ".", ""]
    if pred.per_modality:
        out += ["Per-modality metrics are taken over the samples where the modality is present.", ""]
    return out


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
        lines.append(f"- {key}: `{text if len(text) <= 80 else text[:77] + '...'}`")
    if len(items) > MAX_PROVENANCE_LINES:
        lines.append(f"- ... and {len(items) - MAX_PROVENANCE_LINES} more entries in `provenance.json`.")
    return lines or ["- `provenance.json` is empty."]


def _last_epoch_table(records: list[dict[str, Any]]) -> str:
    last = records[-1]
    rows = [[k, _num(v, ".4g")] for k, v in last.items() if k != "epoch" and _is_number(v)]
    return _table(["key", "value"], rows)


def render_report(run: RunFiles, figures: dict[str, Path]) -> str:
    """Markdown text of the report; ``figures`` maps keys of :data:`FIGURES` to files written under the run folder."""
    cfg = run.config
    name = cfg.get("name") or run.run_dir.name
    data, strategy, model = (cfg.get(k) if isinstance(cfg.get(k), dict) else {} for k in ("data", "strategy", "model"))
    fusion = model.get("fusion") or "strategy default"
    out = [
        f"# Run report: {name}",
        "",
        f"Dataset `{data.get('dataset', 'unknown')}` | strategy `{strategy.get('name', 'unknown')}` | "
        f"fusion `{fusion}` | seed {cfg.get('seed', 'unknown')}",
        "",
    ]
    if run.notes:
        out += ["Notes: " + " ".join(run.notes), ""]
    out += ["## Results", ""]
    regression = run.task == "regression"
    if run.results and regression:
        out += [
            "RMSE and MAE in target units, R^2 as a fraction (1 = perfect, 0 = predicting the mean); "
            "per-modality metrics over the samples where the modality is present; "
            "n/a: not logged, or the fusion cannot run on that modality alone.",
            "",
            _regression_table(run.results),
            "",
        ]
    elif run.results:
        out += [
            "Accuracies and macro F1 in %, ECE as a fraction (0 = calibrated); "
            "n/a: not logged, or the fusion cannot run on that modality alone.",
            "",
            _metrics_table(run.results),
            "",
        ]
    out += ["## Training", "", *_training_lines(run), ""]
    if run.events:
        out += ["Events:", ""]
        for e in run.events:
            extra = ", ".join(f"{k}={v}" for k, v in e.items() if k not in ("event", "type", "epoch", "message"))
            where = f"epoch {e['epoch']}: " if "epoch" in e else ""
            line = f"- {where}{e.get('event', e.get('type'))}" + (f" ({extra})" if extra else "")
            out.append(line + (f": {e['message']}" if e.get("message") else ""))
        out.append("")
    rel = {k: p.relative_to(run.run_dir).as_posix() for k, p in figures.items()}
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
    if isinstance(run.predictions, RegressionPredictions):
        out += _regression_section(run.predictions)
    elif run.predictions is not None:
        out += _class_section(run.predictions, run.run_dir)
    if "scatter" in rel:
        out += [f"![Predicted vs true, test]({rel['scatter']})", ""]
    if "reliability" in rel:
        out += [f"![Reliability diagram, test]({rel['reliability']})", ""]
    if run.provenance:
        out += ["## Provenance", "", *_provenance_lines(run.provenance), ""]
    return "\n".join(out)


def write_report(run_dir: str | Path) -> Path:
    """Write ``run_dir/report.md`` and its figures under ``run_dir/figures/``; return the report path."""
    run = load_run(run_dir)
    fig_dir = run.run_dir / "figures"
    for stale in FIGURES.values():  # a figure this run no longer supports must not linger from an earlier report
        (fig_dir / stale).unlink(missing_ok=True)
    figures: dict[str, Path] = {}
    if run.records:
        figures["curves"] = plot_learning_curves(run.records, fig_dir / FIGURES["curves"])
        grad = plot_grad_norms(run.records, fig_dir / FIGURES["grad"])
        if grad is not None:
            figures["grad"] = grad
    if isinstance(run.predictions, RegressionPredictions):
        p = run.predictions
        figures["scatter"] = plot_regression_scatter(p.y_true, p.pred, fig_dir / FIGURES["scatter"], title="test, fused")
    elif run.predictions is not None:
        p = run.predictions
        figures["reliability"] = plot_reliability(p.y_true, p.probs, fig_dir / FIGURES["reliability"], title="test, fused")
    path = run.run_dir / "report.md"
    path.write_text(render_report(run, figures))
    return path
