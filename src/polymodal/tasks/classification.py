"""Classification: one class per sample; cross-entropy, accuracy / macro F1 / ECE, the best epoch on the
highest validation fused accuracy (docs/architecture.md, "A task"). :class:`ClassLabels` is the label side
that every task with one class id per sample shares (classification, contrastive)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from polymodal.report.metrics import (
    accuracy,
    check_class_ids,
    check_probs,
    confusion_matrix,
    expected_calibration_error,
    macro_f1,
    per_class_report,
    present_rows,
)
from polymodal.report.table import is_number, markdown_table, modality_names, num, pct
from polymodal.tasks.base import (
    LOGITS,
    PER_MODALITY,
    SINGLE_LABEL,
    TASKS,
    SyntheticData,
    SyntheticSpec,
    Task,
)
from polymodal.tasks.labels import (
    Claim,
    LabelColumn,
    LabelProblem,
    integer_cell,
    label_text,
    sorted_names,
)
from polymodal.tasks.labels import (
    is_number as is_number_cell,
)
from polymodal.tasks.outputs import EvalOutputs

MAX_CONFUSION_CLASSES = 30  # larger confusion matrices go to a CSV file instead of a Markdown table
FEW_CLASSES = 20  # a column of whole numbers with at most max(FEW_CLASSES, 5 % of its cells) values holds class ids
ODD_SHARE = 0.1  # ... and the share of its other cells (a typo, a nan) above which it is not read as classes


@dataclass
class Predictions:
    """Everything evaluation collects on one split, one row per dataset sample (no duplicates).

    y_true:      (N,) int class ids
    probs:       (N, C) fused class probabilities under the strategy's fusion rule
    per_modality:name -> (N, C) probabilities with every other modality marked absent
                 (absent from the dict when the fusion cannot run with a modality alone)
    index:       (N,) dataset positions, sorted
    class_names: C names (may be empty: then "0".."C-1")
    present:     name -> (N,) bool, whether the modality was present in the sample; a modality's
                 accuracy is taken over these rows only (all rows when a modality has no entry)
    extras:      name -> (N, ...) per-sample outputs beside the prediction (:mod:`polymodal.tasks.outputs`)
    """

    y_true: np.ndarray
    probs: np.ndarray
    per_modality: dict[str, np.ndarray] = field(default_factory=dict)
    index: np.ndarray | None = None
    class_names: tuple[str, ...] = ()
    present: dict[str, np.ndarray] = field(default_factory=dict)
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    task: ClassVar[str] = "classification"


def summarize_classification(pred: Predictions, n_bins: int = 15) -> dict[str, float | int | None]:
    """Headline metrics of one split: ``fused_acc``, ``macro_f1``, ``ece``, ``<modality>_acc``, ``n``.

    ``<modality>_acc`` appears only for the modalities in ``pred.per_modality`` (a fusion that cannot
    run with a modality alone has no entry; callers that need a ``None`` for it add it themselves). It is
    taken over the rows where the modality is present (``pred.present``), None when it is present in no row.
    This is the one place the engine, ``polymodal eval`` and the reports compute it.
    """
    y = check_class_ids(pred.y_true, "Predictions.y_true")
    probs = check_probs(pred.probs, len(y), "Predictions.probs")
    num_classes = probs.shape[1]
    out: dict[str, float | int | None] = {
        "fused_acc": accuracy(y, probs),
        "macro_f1": macro_f1(y, probs.argmax(axis=1), num_classes),
        "ece": expected_calibration_error(y, probs, n_bins),
    }
    for name, p in pred.per_modality.items():
        probs_m = check_probs(p, len(y), f"Predictions.per_modality[{name!r}]")
        rows = present_rows(pred.present.get(name), len(y), name)
        out[f"{name}_acc"] = accuracy(y[rows], probs_m[rows]) if rows.any() else None
    out["n"] = len(y)
    return out


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


def class_counts(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(C,) number of samples of each class; raises on labels outside [0, C)."""
    labels = np.asarray(labels).astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"labels span [{labels.min()}, {labels.max()}] but the dataset declares {num_classes} classes "
            f"(check the dataset's num_outputs)"
        )
    return np.bincount(labels, minlength=num_classes)


def inverse_frequency_weights(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """(C,) class weights ``N / (C * n_c)`` (1 for every class when balanced); 0 for an absent class."""
    counts = class_counts(labels, num_classes).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / (num_classes * np.maximum(counts, 1)), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


def balanced_sample_weights(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """(N,) per-sample weights ``1 / n_{y_i}``: every class is drawn equally often on average."""
    counts = class_counts(labels, num_classes).astype(np.float64)
    return torch.tensor(1.0 / counts[np.asarray(labels).astype(np.int64)], dtype=torch.float64)


class ClassLabels:
    """The label side of a task with one class id per sample: a table's label column read as class names,
    class ids as targets, class weights and balanced sampling, splits stratified by class, and the
    ``synthetic`` dataset's class prototypes."""

    label_dtype: ClassVar[type[np.generic]] = np.int64
    name: ClassVar[str]

    def claim(self, cells: Sequence[Any]) -> Claim | None:
        """A column of words (most cells not numbers), or of few distinct whole numbers (class ids: at most
        max(20, 5 % of the cells) values). A column that is almost all such whole numbers (at most 10 % other
        cells) with a few other cells (``3.5``, ``nan``, a word) is claimed with those cells as odd: it stops
        inference, since it is neither clean class ids nor a regression target."""
        n = len(cells)
        numbers = sum(1 for v in cells if is_number_cell(v))
        if 2 * numbers <= n:
            return Claim(f"{len(set(map(label_text, cells)))} distinct values, {n - numbers} of {n} cells not numbers")
        whole = [i for i, v in enumerate(cells) if integer_cell(v)]
        distinct = len({label_text(cells[i]) for i in whole})
        few = max(FEW_CLASSES, int(0.05 * n))
        if not whole or distinct > few:
            return None
        odd = [(i, v) for i, v in enumerate(cells) if not integer_cell(v)]
        reason = f"{len(whole)} of {n} cells are whole numbers with {distinct} distinct values (class ids)"
        if not odd:
            return Claim(reason)
        if len(odd) > ODD_SHARE * n:
            return None
        return Claim(reason, odd, f"the label column looks like class ids ({reason}), but {len(odd)} cell(s) are "
                                  "not whole numbers")

    def class_names_from(self, cells: Sequence[Any]) -> tuple[str, ...]:
        """Every distinct label (``3.0`` is class ``3``), numbers in numeric order first; at least two."""
        names = sorted_names(cells)
        if len(names) < 2:
            raise ValueError(f"{len(names)} class(es) {list(names)}; {self.name} needs at least 2 (or set "
                             "task=regression)")
        return names

    def parse_labels(self, cells: Sequence[Any], class_names: Sequence[str]) -> LabelColumn:
        """Class ids (-1 where a row has no label, or one the model was not trained on: a warning names
        those rows, which are predicted but not scored)."""
        index = {c: i for i, c in enumerate(class_names)}
        ids, unknown = [], []
        for r, v in enumerate(cells):
            i = -1 if v is None else index.get(label_text(v), -1)
            if v is not None and i < 0:
                unknown.append(r)
            ids.append(i)
        problems = []
        if unknown:
            problems.append(LabelProblem("unknown_class", "warning", f"labels the model was not trained on (known: "
                                         f"{list(class_names)}); these rows are predicted but not scored", unknown,
                                         [label_text(cells[r]) for r in unknown]))
        y = np.array(ids, dtype=np.int64)
        return LabelColumn(y, y >= 0, problems)

    def label_value(self, cell: Any) -> Any:
        """The class the cell names (``3.0`` is class ``3``)."""
        return label_text(cell)

    def num_outputs_for(self, class_names: Sequence[str], y: np.ndarray) -> int:
        return len(class_names)

    def fill_missing(self, y: np.ndarray) -> np.ndarray:
        return np.where(np.asarray(y) < 0, 0, y)

    def label_shape(self, num_outputs: int) -> tuple[int, ...]:
        return ()

    def check_labels(self, labels: np.ndarray, num_outputs: int, where: str = "dataset") -> None:
        """(N,) whole class ids in [0, num_outputs), at least two classes declared."""
        y = np.asarray(labels)
        if y.ndim != 1:
            raise ValueError(f"{where}: {self.name} labels of shape {y.shape}; expected (N,) class ids")
        if num_outputs < 2:
            raise ValueError(f"{where}: {self.name} needs at least 2 classes; the dataset declares {num_outputs}")
        if y.dtype.kind not in "iu" and not (y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y))):
            raise ValueError(f"{where}: {self.name} labels must be whole class ids; got dtype {y.dtype}")
        if y.size and (y.min() < 0 or y.max() >= num_outputs):
            raise ValueError(f"{where}: class ids span [{y.min()}, {y.max()}]; expected ids in [0, {num_outputs - 1}]")

    def stratum_names(self, y: np.ndarray) -> np.ndarray | None:
        return np.asarray(y).astype(str)

    def split_problems(self, y: np.ndarray, split: np.ndarray, class_names: Sequence[str]) -> list[LabelProblem]:
        """Classes with fewer than 2 training rows, or none in a val / test split that has rows."""
        small = []
        for c, name in enumerate(class_names):
            counts = [int(((split == s) & (y == c)).sum()) for s in ("train", "val", "test")]
            if counts[0] < 2 or (counts[1] == 0 and (split == "val").any()) or (counts[2] == 0 and (split == "test").any()):
                small.append(f"{name}: {'/'.join(map(str, counts))}")
        if not small:
            return []
        return [LabelProblem("small_class", "warning", "classes too small for the split (rows in train/val/test "
                             "shown): they cannot be both learnt and scored; add samples or merge classes", items=small)]

    def class_weights(self, labels: np.ndarray, num_outputs: int) -> Tensor:
        """Inverse class frequency ``N / (C * n_c)`` (:func:`inverse_frequency_weights`)."""
        return inverse_frequency_weights(labels, num_outputs)

    def sample_weights(self, labels: np.ndarray, num_outputs: int) -> Tensor:
        """``1 / n_{y_i}`` (:func:`balanced_sample_weights`)."""
        return balanced_sample_weights(labels, num_outputs)

    def synthetic_data(self, spec: SyntheticSpec) -> SyntheticData:
        """Each class has a random prototype in each modality (from ``seed``); a sample is its class
        prototype plus noise of the modality's ``noise``; classes in equal numbers, shuffled."""
        proto_rng = np.random.default_rng(spec.seed)
        protos = [proto_rng.standard_normal((spec.num_classes, d)) for d in spec.dims]
        labels = np.arange(spec.n) % spec.num_classes
        spec.rng.shuffle(labels)
        x = [(p[labels] + s * spec.rng.standard_normal((spec.n, p.shape[1]))).astype(np.float32)
             for p, s in zip(protos, spec.noise, strict=True)]
        return SyntheticData(labels, x, spec.num_classes, tuple(str(c) for c in range(spec.num_classes)))

    def example_labels(self, rng: np.random.Generator, n: int, num_outputs: int) -> np.ndarray:
        return np.asarray(np.arange(n) % num_outputs).astype(self.label_dtype)


@TASKS.register("classification")
class Classification(ClassLabels, Task):
    """One class per sample: cross-entropy; accuracy, macro F1 and ECE; best epoch on val fused accuracy."""

    name = "classification"
    monitor = "fused_acc"
    mode = "max"
    log_suffix = "acc"
    label_dtype = np.int64
    capabilities = frozenset({LOGITS, SINGLE_LABEL, PER_MODALITY})
    infer_priority = 20
    bench_extra = ("macro_f1",)
    bench_percent = True
    bench_score = "fused_acc"
    bench_score_label = "fused test accuracy"
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

    def sample_losses(self, output: Tensor, target: Tensor, *, class_weights: Tensor | None = None) -> Tensor:
        """(B,) cross-entropy of every row, each times its class's weight (``F.cross_entropy(...,
        reduction="none")``)."""
        return F.cross_entropy(output, target, weight=class_weights, reduction="none")

    def predictions(self, out: EvalOutputs, class_names: Sequence[str] = ()) -> Predictions:
        """Class probabilities (softmax of the logits) as :class:`Predictions`."""
        return Predictions(
            y_true=out.label,
            probs=softmax(out.logits),
            per_modality={m: softmax(v) for m, v in out.per_modality.items()},
            index=out.index,
            class_names=tuple(class_names),
            present=dict(out.present),
        )

    def summarize(self, pred: Predictions) -> dict[str, float | int | None]:
        """:func:`summarize_classification`: ``fused_acc``, ``macro_f1``, ``ece``, ``<m>_acc``, ``n``."""
        return summarize_classification(pred)

    def metrics(self, out: EvalOutputs, modalities: list[str]) -> dict[str, float | None]:
        """``loss`` (fused cross-entropy, nats), ``fused_acc``, ``macro_f1`` and ``ece`` (15 bins) of the fused
        prediction, ``<m>_acc`` per modality over the rows where it is present (None if n/a), ``n``."""
        summary = summarize_classification(self.predictions(out))
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
        modality, ``present_<m>`` (N,) bool."""
        names = list(dict.fromkeys([*pred.present, *pred.per_modality]))
        arrays: dict[str, np.ndarray] = {
            "y_true": np.asarray(pred.y_true),
            "probs": np.asarray(pred.probs),
            "modalities": np.array(names, dtype=str),
            "class_names": np.array(list(pred.class_names), dtype=str),
        }
        arrays.update({f"probs_{m}": np.asarray(p) for m, p in pred.per_modality.items()})
        arrays.update({f"present_{m}": np.asarray(p, dtype=bool) for m, p in pred.present.items()})
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
        ``MAX_CONFUSION_CLASSES`` classes), the per-class report."""
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
        return out

    def learning_curve(self) -> tuple[str, str, str]:
        return ("fused_acc", "acc", "accuracy")

    def sample_scores(self, pred: Predictions) -> np.ndarray:
        """Whether the fused prediction got each sample right (dataset order): their mean is ``fused_acc``."""
        order = np.argsort(pred.index) if pred.index is not None else np.arange(len(pred.y_true))
        return (np.asarray(pred.probs).argmax(axis=1) == np.asarray(pred.y_true))[order]

    def prediction_columns(self, out: EvalOutputs, class_names: Sequence[str]) -> dict[str, np.ndarray]:
        """``prediction`` (the most probable class's name) and ``prob_<class>`` per class."""
        probs = softmax(out.logits).astype(np.float64)
        columns: dict[str, np.ndarray] = {"prediction": np.array([class_names[i] for i in probs.argmax(1)], dtype=str)}
        columns.update({f"prob_{name}": probs[:, c] for c, name in enumerate(class_names)})
        return columns

    def figures(self, pred: Predictions, fig_dir: Path) -> dict[str, tuple[Path, str]]:
        """The reliability diagram of the fused test prediction."""
        from polymodal.report.plots import plot_reliability

        path = plot_reliability(pred.y_true, pred.probs, fig_dir / "reliability_test.png", title="test, fused")
        return {"reliability": (path, "Reliability diagram, test")}


__all__ = ["ClassLabels", "Classification", "Predictions", "balanced_sample_weights", "class_counts",
           "inverse_frequency_weights", "masked_cross_entropy", "softmax", "summarize_classification"]
