"""Classification: one class per sample; cross-entropy, accuracy / macro F1 / ECE, the best epoch on the
highest validation fused accuracy (docs/architecture.md, "A task")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from polymodal.report.metrics import (
    Predictions,
    accuracy,
    confusion_matrix,
    per_class_report,
    summarize,
)
from polymodal.report.table import is_number, markdown_table, modality_names, num, pct
from polymodal.tasks.base import TASKS, Task

if TYPE_CHECKING:
    from polymodal.engine.evaluate import EvalOutputs

MAX_CONFUSION_CLASSES = 30  # larger confusion matrices go to a CSV file instead of a Markdown table


def masked_cross_entropy(logits: Tensor, label: Tensor, rows: Tensor, weight: Tensor | None = None) -> Tensor:
    """Mean cross-entropy (nats) of ``logits`` (B, C) on the rows where ``rows`` (B,) is True.

    ``weight`` (C,) weights each class as in ``F.cross_entropy`` (the mean is over the summed weights).
    With no row selected the result is a zero that still depends on ``logits`` (every rank of a
    distributed run then takes part in the backward pass).
    """
    if not bool(rows.any()):
        return logits.sum() * 0.0
    w = None if weight is None else weight.to(logits.device, logits.dtype)
    if bool(rows.all()):  # the common case: no copy of the selected rows (the same numbers)
        return F.cross_entropy(logits, label, weight=w)
    return F.cross_entropy(logits[rows], label[rows], weight=w)


def softmax(x: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, C) logits, computed by torch (the engine's numbers)."""
    return torch.softmax(torch.from_numpy(x), dim=1).numpy()


@TASKS.register("classification")
class Classification(Task):
    """One class per sample: cross-entropy; accuracy, macro F1 and ECE; best epoch on val fused accuracy."""

    name = "classification"
    monitor = "fused_acc"
    mode = "max"
    log_suffix = "acc"
    label_dtype = np.int64
    uses_classes = True
    results_intro = ("Accuracies and macro F1 in %, ECE as a fraction (0 = calibrated); "
                     "n/a: not logged, or the fusion cannot run on that modality alone.")

    def loss(self, output: Tensor | dict[str, Tensor], target: Tensor, *, rows: Tensor | None = None,
             class_weights: Tensor | None = None) -> Tensor:
        """``F.cross_entropy(logits, target, weight=class_weights)`` when ``rows`` is None, else
        :func:`masked_cross_entropy` on the selected rows (unchanged numerics)."""
        if not isinstance(output, Tensor):
            raise TypeError(f"the classification loss takes a (B, C) logits tensor; got {type(output).__name__}")
        if rows is None:
            return F.cross_entropy(output, target, weight=class_weights)
        return masked_cross_entropy(output, target, rows, class_weights)

    def predictions(self, out: EvalOutputs, class_names: Sequence[str] = ()) -> Predictions:
        """Class probabilities (softmax of the logits) as :class:`Predictions`."""
        return Predictions(
            y_true=out.label,
            probs=softmax(out.logits),
            per_modality={m: softmax(v) for m, v in out.per_modality.items()},
            index=out.index,
            class_names=tuple(class_names),
            present=dict(out.present),
            concepts=dict(out.concepts),
        )

    def summarize(self, pred: Predictions) -> dict[str, float | int | None]:
        """:func:`polymodal.report.metrics.summarize`: ``fused_acc``, ``macro_f1``, ``ece``, ``<m>_acc``, ``n``."""
        return summarize(pred)

    def metrics(self, out: EvalOutputs, modalities: list[str]) -> dict[str, float | None]:
        """``loss`` (fused cross-entropy, nats), ``fused_acc``, ``macro_f1`` and ``ece`` (15 bins) of the fused
        prediction, ``<m>_acc`` per modality over the rows where it is present (None if n/a), ``n``."""
        summary = summarize(self.predictions(out))
        metrics: dict[str, float | None] = {
            "loss": float(F.cross_entropy(torch.from_numpy(out.logits), torch.from_numpy(out.label))),
            **{k: summary[k] for k in ("fused_acc", "macro_f1", "ece")},
        }
        for m in modalities:
            metrics[f"{m}_acc"] = summary.get(f"{m}_acc")  # type: ignore[assignment]
        metrics["n"] = int(len(out.label))
        return metrics

    # -- predictions file ------------------------------------------------------------------------
    def to_arrays(self, pred: Predictions) -> dict[str, np.ndarray]:
        """``y_true`` (N,), ``probs`` (N, C), ``modalities``, ``class_names``, ``probs_<m>`` (N, C) per available
        modality, ``present_<m>`` (N,) bool, ``concept_<key>`` (N, V)."""
        names = list(dict.fromkeys([*pred.present, *pred.per_modality]))
        arrays: dict[str, np.ndarray] = {
            "y_true": np.asarray(pred.y_true),
            "probs": np.asarray(pred.probs),
            "modalities": np.array(names, dtype=str),
            "class_names": np.array(list(pred.class_names), dtype=str),
        }
        arrays.update({f"probs_{m}": np.asarray(p) for m, p in pred.per_modality.items()})
        arrays.update({f"present_{m}": np.asarray(p, dtype=bool) for m, p in pred.present.items()})
        arrays.update({f"concept_{k}": np.asarray(p) for k, p in pred.concepts.items()})
        return arrays

    def from_arrays(self, arrays: Mapping[str, np.ndarray], path: Path) -> Predictions:
        missing = [k for k in ("y_true", "probs") if k not in arrays]
        if missing:
            raise ValueError(f"predictions file {path} lacks arrays {missing}; it holds {sorted(arrays)}")
        y, probs = arrays["y_true"], arrays["probs"]
        if probs.ndim != 2 or y.shape != (probs.shape[0],):
            raise ValueError(f"predictions file {path}: y_true {y.shape} and probs {probs.shape}; expected (N,) and (N, C)")
        return Predictions(
            y_true=y,
            probs=probs,
            per_modality={k[len("probs_"):]: v for k, v in arrays.items() if k.startswith("probs_")},
            index=arrays.get("index"),
            class_names=tuple(str(c) for c in arrays["class_names"]) if "class_names" in arrays else (),
            present={k[len("present_"):]: v.astype(bool) for k, v in arrays.items() if k.startswith("present_")},
            concepts={k[len("concept_"):]: v for k, v in arrays.items() if k.startswith("concept_")},
        )

    def owns_file(self, files: set[str]) -> bool:
        return "probs" in files

    # -- report ----------------------------------------------------------------------------------
    def infer_from_metrics(self, splits: list[dict[str, Any]]) -> bool:
        return any("fused_acc" in d for d in splits)

    def results_table(self, results: dict[str, Any]) -> list[str]:
        val, test = results.get("val") or {}, results.get("test") or {}
        rows = [["fused accuracy (%)", pct(val.get("fused_acc")), pct(test.get("fused_acc"))]]
        for key in dict.fromkeys([*val, *test]):
            if key.startswith("fused_acc@"):
                rows.append([f"fused accuracy, {key.split('@', 1)[1]} rule (%)", pct(val.get(key)), pct(test.get(key))])
        modalities = modality_names(results, ("_acc",))
        for m in modalities:
            rows.append([f"{m} accuracy (%)", pct(val.get(f"{m}_acc")), pct(test.get(f"{m}_acc"))])
        rows.append(["macro F1 (%)", pct(val.get("macro_f1")), pct(test.get("macro_f1"))])
        rows.append(["ECE", num(val.get("ece")), num(test.get("ece"))])
        known = {"fused_acc", "macro_f1", "ece"} | {f"{m}_acc" for m in modalities}
        for key in dict.fromkeys([*val, *test]):
            if key not in known and not key.startswith("fused_acc@") and (is_number(val.get(key)) or is_number(test.get(key))):
                label = {"loss": "loss (fused cross-entropy)", "n": "samples"}.get(key, key)
                rows.append([label, num(val.get(key), ".4g"), num(test.get(key), ".4g")])
        return markdown_table(["metric", "val", "test"], rows)

    def report_section(self, pred: Predictions, run_dir: Path) -> list[str]:
        """Test accuracy fused and per modality, the confusion matrix (a CSV file beyond
        ``MAX_CONFUSION_CLASSES`` classes), the per-class report and the predicted concepts."""
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
            out += [*markdown_table(["true \\ pred", *names], [[names[i], *map(str, cm[i])] for i in range(num_classes)]), ""]
        else:
            csv = run_dir / "confusion_test.csv"
            np.savetxt(csv, cm, fmt="%d", delimiter=",", header=",".join(names), comments="")
            out += [f"Confusion matrix ({num_classes} x {num_classes}, rows true): [confusion_test.csv](confusion_test.csv)", ""]
        rep = per_class_report(y, y_pred, num_classes)
        rows = [
            [names[c], f"{rep['precision'][c]:.3f}", f"{rep['recall'][c]:.3f}", f"{rep['f1'][c]:.3f}", str(rep["support"][c])]
            for c in range(num_classes)
        ]
        out += ["Per-class report:", "", *markdown_table(["class", "precision", "recall", "F1", "support"], rows), ""]
        return out + _concept_section(pred)

    def learning_curve(self) -> tuple[str, str, str]:
        return ("fused_acc", "acc", "accuracy")

    def figures(self, pred: Predictions, fig_dir: Path) -> dict[str, tuple[Path, str]]:
        """The reliability diagram of the fused test prediction."""
        from polymodal.report.plots import plot_reliability

        path = plot_reliability(pred.y_true, pred.probs, fig_dir / "reliability_test.png", title="test, fused")
        return {"reliability": (path, "Reliability diagram, test")}


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
            *markdown_table(["concept", "rows", "mean confidence", "confidence < 0.5", "most predicted values"], rows), ""]


__all__ = ["Classification", "masked_cross_entropy", "softmax"]
