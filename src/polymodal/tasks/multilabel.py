"""Multilabel: any number of C labels per sample (a photo of a cat and a dog); one binary cross-entropy per
label; micro and macro F1 at a decision threshold chosen on validation, and mean average precision
(scikit-learn's definitions); the best epoch on the highest validation mAP (docs/architecture.md, "A task").

Targets are (N, C) multi-hot rows of 0 and 1. A table's label cells list a sample's labels separated by
``|`` (``cat|dog``; one label is a cell of one name; a cell of separators only, ``|``, is the empty set);
``task=auto`` chooses this task when a label cell holds a separator. The threshold is fitted after
training: the one of 0.05, 0.10, ..., 0.95 with the highest micro F1 of the best checkpoint's validation
predictions (ties: the one nearest 0.5); the test metrics and the ``Predictor`` use it (until then, during
training, 0.5). mAP needs no threshold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from polymodal.report.metrics import present_rows
from polymodal.report.table import is_number, markdown_table, modality_names, num, pct
from polymodal.tasks.base import LOGITS, PER_MODALITY, TASKS, SyntheticData, SyntheticSpec, Task
from polymodal.tasks.labels import Claim, LabelColumn, LabelProblem, label_text, sorted_names
from polymodal.tasks.outputs import EvalOutputs

SEPARATOR = "|"
THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.05), 2)  # the decision thresholds tried on validation
DEFAULT_THRESHOLD = 0.5  # before one is fitted (the epochs' validation metrics)


@dataclass
class MultilabelPredictions:
    """A split's multilabel predictions.

    y_true:       (N, C) 0/1 float targets
    probs:        (N, C) fused label probabilities (sigmoid of the logits)
    per_modality: name -> (N, C) probabilities with every other modality marked absent
    index:        (N,) dataset positions;  class_names: the C labels;  present: name -> (N,) bool
    threshold:    the decision threshold (a label is predicted when its probability is at least this)
    extras:       name -> (N, ...) per-sample outputs beside the prediction
    """

    y_true: np.ndarray
    probs: np.ndarray
    per_modality: dict[str, np.ndarray] = field(default_factory=dict)
    index: np.ndarray | None = None
    class_names: tuple[str, ...] = ()
    present: dict[str, np.ndarray] = field(default_factory=dict)
    threshold: float = DEFAULT_THRESHOLD
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    task: ClassVar[str] = "multilabel"


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Element-wise logistic function of logits, computed by torch (the engine's numbers)."""
    return torch.sigmoid(torch.from_numpy(np.asarray(x, dtype=np.float32))).numpy()


def label_tokens(cell: Any) -> list[str]:
    """The labels of one cell: ``"cat|dog"`` -> ["cat", "dog"] (spaces around names and empty names dropped)."""
    return [t for t in (label_text(p.strip()) for p in str(cell).split(SEPARATOR)) if t]


def average_precision(y: np.ndarray, p: np.ndarray) -> float | None:
    """Mean over the labels with at least one positive row of scikit-learn's average precision (None: none)."""
    from sklearn.metrics import average_precision_score

    keep = y.sum(axis=0) > 0
    if not keep.any() or len(y) == 0:
        return None
    return float(average_precision_score(y[:, keep], p[:, keep], average="macro"))


def per_sample_f1(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """(N,) F1 of each sample's predicted label set against its true set, 2 |A n B| / (|A| + |B|), 1 when both
    are empty (scikit-learn's ``f1_score(average="samples", zero_division=1)`` is their mean)."""
    yi, pi = np.asarray(y) > 0.5, np.asarray(pred).astype(bool)
    both, size = (yi & pi).sum(axis=1), yi.sum(axis=1) + pi.sum(axis=1)
    return np.where(size > 0, 2 * both / np.maximum(size, 1), 1.0)


def f1_scores(y: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """(micro F1, macro F1) of 0/1 predictions; the macro mean is over the labels that occur in the targets or
    the predictions (scikit-learn's ``f1_score`` with ``zero_division=0``)."""
    from sklearn.metrics import f1_score

    yi, pi = y.astype(int), pred.astype(int)
    used = np.flatnonzero((yi.sum(axis=0) + pi.sum(axis=0)) > 0)
    if len(used) == 0:  # nothing true and nothing predicted: every label is right
        return 1.0, 1.0
    micro = float(f1_score(yi, pi, average="micro", labels=used, zero_division=0))
    macro = float(f1_score(yi, pi, average="macro", labels=used, zero_division=0))
    return micro, macro


def summarize_multilabel(pred: MultilabelPredictions) -> dict[str, float | int | None]:
    """``mAP`` (mean average precision over labels), ``micro_f1``, ``macro_f1`` and ``samples_f1`` (the mean of
    :func:`per_sample_f1`) at ``threshold``, the
    ``threshold``, ``<m>_mAP`` over the rows where modality m is present (None with no such row), ``n``."""
    y, probs = np.asarray(pred.y_true, dtype=np.float64), np.asarray(pred.probs, dtype=np.float64)
    if y.ndim != 2 or probs.shape != y.shape:
        raise ValueError(f"multilabel predictions: y_true {y.shape} and probs {probs.shape}; expected the same (N, C)")
    chosen = probs >= pred.threshold
    micro, macro = f1_scores(y, chosen)
    out: dict[str, float | int | None] = {"mAP": average_precision(y, probs), "micro_f1": micro, "macro_f1": macro,
                                          "samples_f1": float(per_sample_f1(y, chosen).mean()),
                                          "threshold": float(pred.threshold)}
    for m, p in pred.per_modality.items():
        rows = present_rows(pred.present.get(m), len(y), m)
        out[f"{m}_mAP"] = average_precision(y[rows], np.asarray(p, dtype=np.float64)[rows]) if rows.any() else None
    out["n"] = len(y)
    return out


def masked_bce(logits: Tensor, target: Tensor, rows: Tensor | None = None, pos_weight: Tensor | None = None) -> Tensor:
    """Mean binary cross-entropy with logits over the selected rows and every label (``pos_weight`` (C,) as in
    ``F.binary_cross_entropy_with_logits``); with no row selected a zero still connected to ``logits``."""
    if target.shape != logits.shape:
        raise ValueError(f"multilabel targets of shape {tuple(target.shape)} do not match the model's outputs "
                         f"{tuple(logits.shape)}; the dataset's num_outputs must equal the number of labels")
    dtype = torch.promote_types(logits.dtype, torch.float32)
    logits, target = logits.to(dtype), target.to(dtype)
    w = None if pos_weight is None else pos_weight.to(logits.device, dtype)
    if rows is not None:
        if not bool(rows.any()):
            return logits.sum() * 0.0
        logits, target = logits[rows], target[rows]
    return F.binary_cross_entropy_with_logits(logits, target, pos_weight=w)


@TASKS.register("multilabel")
class Multilabel(Task):
    """Several labels per sample: binary cross-entropy; micro / macro F1 at a validation-chosen threshold, mAP;
    best epoch on val mAP."""

    name = "multilabel"
    monitor = "mAP"
    mode = "max"
    log_suffix = "mAP"
    label_dtype = np.float32
    capabilities = frozenset({LOGITS, PER_MODALITY})
    fit_on = "val"
    infer_priority = 30  # a separator in a label cell is the most specific sign
    bench_extra = ("micro_f1", "macro_f1", "samples_f1")
    bench_percent = True
    bench_score = "samples_f1"
    bench_score_label = "per-sample F1 (samples_f1)"
    results_intro = ("mAP: mean over labels of the average precision, in %; micro / macro F1 in % at the decision "
                     "threshold chosen on validation (the threshold row); per-modality mAP over the samples where "
                     "the modality is present; n/a: not logged, or the fusion cannot run on that modality alone.")

    # -- labels ----------------------------------------------------------------------------------
    def claim(self, cells: Sequence[Any]) -> Claim | None:
        """A column with at least one cell that lists labels separated by ``|``."""
        several = sum(1 for v in cells if isinstance(v, str) and SEPARATOR in v)
        if not several:
            return None
        return Claim(f"{several} of {len(cells)} cells list several labels separated by '{SEPARATOR}'")

    def class_names_from(self, cells: Sequence[Any]) -> tuple[str, ...]:
        """Every distinct label of every cell, numbers in numeric order first; at least two."""
        names = sorted_names([t for v in cells for t in label_tokens(v)])
        if len(names) < 2:
            raise ValueError(f"{len(names)} distinct label(s) {list(names)}; multilabel needs at least 2")
        return names

    def parse_labels(self, cells: Sequence[Any], class_names: Sequence[str]) -> LabelColumn:
        """(N, C) multi-hot targets (NaN rows without a label); a row with a label the model was not trained on
        is predicted but not scored (a warning names it)."""
        index = {c: i for i, c in enumerate(class_names)}
        y = np.full((len(cells), len(class_names)), np.nan, dtype=np.float32)
        has = np.zeros(len(cells), dtype=bool)
        unknown, values = [], []
        for r, v in enumerate(cells):
            if v is None:
                continue
            tokens = label_tokens(v)
            bad = [t for t in tokens if t not in index]
            if bad:
                unknown.append(r)
                values.append(SEPARATOR.join(bad))
                continue
            y[r] = 0.0
            y[r, [index[t] for t in tokens]] = 1.0
            has[r] = True
        problems = []
        if unknown:
            problems.append(LabelProblem("unknown_label", "warning", f"labels the model was not trained on (known: "
                                         f"{list(class_names)}); these rows are predicted but not scored", unknown, values))
        return LabelColumn(y, has, problems)

    def label_value(self, cell: Any) -> Any:
        """The set of labels the cell lists, as one text (``dog|cat`` and ``cat | dog`` are one value)."""
        return SEPARATOR.join(sorted(set(label_tokens(cell))))

    def num_outputs_for(self, class_names: Sequence[str], y: np.ndarray) -> int:
        return len(class_names)

    def label_shape(self, num_outputs: int) -> tuple[int, ...]:
        return (num_outputs,)

    def check_labels(self, labels: np.ndarray, num_outputs: int, where: str = "dataset") -> None:
        """(N, C) rows of 0 and 1 with C = ``num_outputs`` >= 2."""
        super().check_labels(labels, num_outputs, where)
        y = np.asarray(labels)
        if num_outputs < 2:
            raise ValueError(f"{where}: multilabel needs at least 2 labels; the dataset declares {num_outputs}")
        if not np.isin(y, (0, 1)).all():
            raise ValueError(f"{where}: multilabel targets must be 0 or 1 (multi-hot rows); got values "
                             f"{np.unique(y)[:5].tolist()}")

    def strata(self, y: np.ndarray) -> np.ndarray:
        """The rarest label of each row (rows without a label: one stratum of their own), so that every label
        reaches every split."""
        y = np.asarray(y, dtype=np.float64)
        counts = y.sum(axis=0)
        rarity = np.where(y > 0, counts[None, :], np.inf)
        return np.where(np.isfinite(rarity.min(axis=1)), rarity.argmin(axis=1), y.shape[1]).astype(np.int64)

    def split_problems(self, y: np.ndarray, split: np.ndarray, class_names: Sequence[str]) -> list[LabelProblem]:
        """Labels with fewer than 2 positive training rows, or none in a val / test split that has rows."""
        y = np.nan_to_num(np.asarray(y, dtype=np.float64))
        small = []
        for c, name in enumerate(class_names):
            counts = [int(y[split == s, c].sum()) for s in ("train", "val", "test")]
            if counts[0] < 2 or (counts[1] == 0 and (split == "val").any()) or (counts[2] == 0 and (split == "test").any()):
                small.append(f"{name}: {'/'.join(map(str, counts))}")
        if not small:
            return []
        return [LabelProblem("small_label", "warning", "labels too rare for the split (rows with the label in "
                             "train/val/test shown): they cannot be both learnt and scored", items=small)]

    def synthetic_data(self, spec: SyntheticSpec) -> SyntheticData:
        """Each label has a random prototype per modality (from ``seed``); a sample has one or two labels
        (``num_classes`` of them in all) and is the sum of their prototypes plus the modality's ``noise``."""
        proto_rng = np.random.default_rng(spec.seed)
        protos = [proto_rng.standard_normal((spec.num_classes, d)) for d in spec.dims]
        labels = np.zeros((spec.n, spec.num_classes), dtype=np.float32)
        labels[np.arange(spec.n), np.arange(spec.n) % spec.num_classes] = 1.0
        second = spec.rng.integers(0, spec.num_classes, spec.n)
        pair = spec.rng.random(spec.n) < 0.5
        labels[np.flatnonzero(pair), second[pair]] = 1.0
        spec.rng.shuffle(labels)
        x = [(labels @ p + s * spec.rng.standard_normal((spec.n, p.shape[1]))).astype(np.float32)
             for p, s in zip(protos, spec.noise, strict=True)]
        return SyntheticData(labels, x, spec.num_classes, tuple(str(c) for c in range(spec.num_classes)))

    def example_labels(self, rng: np.random.Generator, n: int, num_outputs: int) -> np.ndarray:
        y = (rng.random((n, num_outputs)) < 0.3).astype(np.float32)
        y[np.arange(n), np.arange(n) % num_outputs] = 1.0  # every row has a label, every label a row
        return y

    # -- training ---------------------------------------------------------------------------------
    def loss(self, output: Tensor | dict[str, Tensor], target: Tensor, *, rows: Tensor | None = None,
             class_weights: Tensor | None = None) -> Tensor:
        """:func:`masked_bce`: binary cross-entropy with logits, mean over rows and labels; ``class_weights``
        (``data.class_weights``) weigh each label's positives (``pos_weight``)."""
        if not isinstance(output, Tensor):
            raise TypeError(f"the multilabel loss takes a (B, C) logits tensor; got {type(output).__name__}")
        return masked_bce(output, target, rows, class_weights)

    def sample_losses(self, output: Tensor, target: Tensor, *, class_weights: Tensor | None = None) -> Tensor:
        """(B,) binary cross-entropy of each row, mean over its labels."""
        w = None if class_weights is None else class_weights.to(output.device, output.dtype)
        return F.binary_cross_entropy_with_logits(output, target.to(output.dtype), pos_weight=w,
                                                  reduction="none").mean(dim=1)

    def class_weights(self, labels: np.ndarray, num_outputs: int) -> Tensor:
        """Each label's negatives over its positives in the training labels (1 for a label without positives):
        the ``pos_weight`` that balances each label's two sides."""
        y = np.asarray(labels, dtype=np.float64).reshape(len(labels), num_outputs)
        pos = y.sum(axis=0)
        return torch.tensor(np.where(pos > 0, (len(y) - pos) / np.maximum(pos, 1), 1.0), dtype=torch.float32)

    # -- outputs -> predictions and metrics -------------------------------------------------------
    def predictions(self, out: EvalOutputs, class_names: Sequence[str] = ()) -> MultilabelPredictions:
        """Label probabilities (sigmoid of the logits) at the fitted threshold (0.5 before one is fitted)."""
        return MultilabelPredictions(
            y_true=np.asarray(out.label, dtype=np.float32),
            probs=sigmoid(out.logits),
            per_modality={m: sigmoid(v) for m, v in out.per_modality.items()},
            index=out.index,
            class_names=tuple(class_names),
            present=dict(out.present),
            threshold=self._threshold(out.fitted),
        )

    @staticmethod
    def _threshold(fitted: Any) -> float:
        return float(fitted["threshold"]) if fitted else DEFAULT_THRESHOLD

    def fit_state(self, out: EvalOutputs) -> dict[str, float]:
        """The threshold of :data:`THRESHOLDS` with the highest micro F1 of the fused validation predictions
        (ties: the one nearest 0.5)."""
        y, probs = np.asarray(out.label, dtype=np.float64), sigmoid(out.logits).astype(np.float64)
        scores = [f1_scores(y, probs >= t)[0] for t in THRESHOLDS]
        best = max(scores)
        ties = [t for t, s in zip(THRESHOLDS, scores, strict=True) if s == best]
        return {"threshold": float(min(ties, key=lambda t: (abs(t - DEFAULT_THRESHOLD), t)))}

    def state_to_arrays(self, state: Any) -> dict[str, np.ndarray]:
        return {"threshold": np.asarray(self._threshold(state), dtype=np.float64)}

    def state_from_arrays(self, arrays: Mapping[str, np.ndarray], path: Path) -> dict[str, float]:
        if "threshold" not in arrays:
            raise ValueError(f"{path}: the multilabel task's state lacks its threshold; it holds {sorted(arrays)}")
        return {"threshold": float(arrays["threshold"])}

    def summarize(self, pred: MultilabelPredictions) -> dict[str, float | int | None]:
        """:func:`summarize_multilabel`."""
        return summarize_multilabel(pred)

    def metrics(self, out: EvalOutputs, modalities: list[str]) -> dict[str, float | None]:
        """``loss`` (binary cross-entropy, mean over rows and labels, nats), ``mAP``, ``micro_f1``, ``macro_f1``,
        ``samples_f1``, ``threshold``, ``<m>_mAP`` for every modality (None if n/a) and ``n``."""
        summary = summarize_multilabel(self.predictions(out))
        loss = masked_bce(torch.from_numpy(np.asarray(out.logits, np.float32)), torch.from_numpy(np.asarray(out.label, np.float32)))
        keys = ("mAP", "micro_f1", "macro_f1", "samples_f1", "threshold")
        metrics: dict[str, float | None] = {"loss": float(loss), **{k: summary[k] for k in keys}}  # type: ignore[misc]
        for m in modalities:
            metrics[f"{m}_mAP"] = summary.get(f"{m}_mAP")  # type: ignore[assignment]
        metrics["n"] = int(len(out.label))
        return metrics

    # -- the predictions file ---------------------------------------------------------------------
    def to_arrays(self, pred: MultilabelPredictions) -> dict[str, np.ndarray]:
        """``y_true`` and ``probs`` (N, C), ``threshold``, ``modalities``, ``class_names``, ``probs_<m>`` per
        available modality, ``present_<m>`` (N,) bool."""
        names = list(dict.fromkeys([*pred.present, *pred.per_modality]))
        arrays: dict[str, np.ndarray] = {
            "y_true": np.asarray(pred.y_true, dtype=np.float32),
            "probs": np.asarray(pred.probs, dtype=np.float32),
            "threshold": np.asarray(pred.threshold, dtype=np.float64),
            "modalities": np.array(names, dtype=str),
            "class_names": np.array(list(pred.class_names), dtype=str),
        }
        arrays.update({f"probs_{m}": np.asarray(p, dtype=np.float32) for m, p in pred.per_modality.items()})
        arrays.update({f"present_{m}": np.asarray(p, dtype=bool) for m, p in pred.present.items()})
        return arrays

    def from_arrays(self, arrays: Mapping[str, np.ndarray], path: Path) -> MultilabelPredictions:
        missing = [k for k in ("y_true", "probs", "threshold") if k not in arrays]
        if missing:
            raise ValueError(f"predictions file {path} lacks arrays {missing}; it holds {sorted(arrays)}")
        y, probs = arrays["y_true"], arrays["probs"]
        if y.ndim != 2 or probs.shape != y.shape:
            raise ValueError(f"predictions file {path}: y_true {y.shape} and probs {probs.shape}; expected the same (N, C)")
        return MultilabelPredictions(
            y_true=y,
            probs=probs,
            per_modality={k[len("probs_"):]: v for k, v in arrays.items() if k.startswith("probs_")},
            index=arrays.get("index"),
            class_names=tuple(str(c) for c in arrays.get("class_names", [])),
            present={k[len("present_"):]: v.astype(bool) for k, v in arrays.items() if k.startswith("present_")},
            threshold=float(arrays["threshold"]),
        )

    def sample_scores(self, pred: MultilabelPredictions) -> np.ndarray:
        """Each sample's F1 at the threshold (:func:`per_sample_f1`, dataset order): their mean is ``samples_f1``."""
        order = np.argsort(pred.index) if pred.index is not None else np.arange(len(pred.y_true))
        return per_sample_f1(pred.y_true, np.asarray(pred.probs) >= pred.threshold)[order]

    # -- the Predictor -----------------------------------------------------------------------------
    def prediction_columns(self, out: EvalOutputs, class_names: Sequence[str]) -> dict[str, np.ndarray]:
        """``prediction``: the predicted labels joined by ``|`` ("" for none), ``prob_<label>`` per label."""
        probs = sigmoid(out.logits).astype(np.float64)
        chosen = probs >= self._threshold(out.fitted)
        columns: dict[str, np.ndarray] = {
            "prediction": np.array([SEPARATOR.join(n for n, on in zip(class_names, row, strict=True) if on)
                                    for row in chosen], dtype=str)}
        columns.update({f"prob_{name}": probs[:, c] for c, name in enumerate(class_names)})
        return columns

    # -- report -----------------------------------------------------------------------------------
    def infer_from_metrics(self, splits: list[dict[str, Any]]) -> bool:
        return any("mAP" in d and "micro_f1" in d for d in splits)

    def results_table(self, results: dict[str, Any]) -> list[str]:
        val, test = results.get("val") or {}, results.get("test") or {}
        rows = [[label, pct(val.get(key)), pct(test.get(key))]
                for key, label in (("mAP", "fused mAP (%)"), ("micro_f1", "micro F1 (%)"), ("macro_f1", "macro F1 (%)"),
                                   ("samples_f1", "per-sample F1 (%)"))]
        modalities = modality_names(results, ("_mAP",))
        rows += [[f"{m} mAP (%)", pct(val.get(f"{m}_mAP")), pct(test.get(f"{m}_mAP"))] for m in modalities]
        known = {"mAP", "micro_f1", "macro_f1", "samples_f1"} | {f"{m}_mAP" for m in modalities}
        for key in dict.fromkeys([*val, *test]):
            if key not in known and (is_number(val.get(key)) or is_number(test.get(key))):
                label = {"loss": "loss (binary cross-entropy)", "n": "samples", "threshold": "threshold"}.get(key, key)
                rows.append([label, num(val.get(key), ".4g"), num(test.get(key), ".4g")])
        return markdown_table(["metric", "val", "test"], rows)

    def report_section(self, pred: MultilabelPredictions, run_dir: Path) -> list[str]:
        """Test mAP and F1, fused and per modality, and a per-label table (support, precision, recall, F1, AP)."""
        from sklearn.metrics import average_precision_score, precision_recall_fscore_support

        y, probs = np.asarray(pred.y_true, dtype=np.float64), np.asarray(pred.probs, dtype=np.float64)
        s = summarize_multilabel(pred)
        c = y.shape[1]
        names = list(pred.class_names) if len(pred.class_names) == c else [str(i) for i in range(c)]
        parts = [f"fused mAP {pct(s['mAP'])} %, micro F1 {pct(s['micro_f1'])} %, macro F1 {pct(s['macro_f1'])} %"]
        parts += [f"{m} alone mAP {pct(s.get(f'{m}_mAP'))} %" for m in pred.per_modality]
        out = ["## Test predictions (fused)", "",
               f"{len(y)} test samples, {c} labels ({y.sum(axis=1).mean():.2f} per sample on average); "
               + "; ".join(parts) + f"; decision threshold {pred.threshold:g} (chosen on validation).", ""]
        chosen = (probs >= pred.threshold).astype(int)
        precision, recall, f1, support = precision_recall_fscore_support(y.astype(int), chosen, labels=np.arange(c),
                                                                         zero_division=0)
        rows = []
        for i in range(c):
            ap = float(average_precision_score(y[:, i], probs[:, i])) if y[:, i].sum() > 0 else None
            rows.append([names[i], str(int(support[i])), f"{precision[i]:.3f}", f"{recall[i]:.3f}", f"{f1[i]:.3f}",
                         num(ap, ".3f")])
        out += ["Per-label report (at the threshold; AP needs none):", "",
                *markdown_table(["label", "support", "precision", "recall", "F1", "AP"], rows), ""]
        return out

    def learning_curve(self) -> tuple[str, str, str]:
        return ("mAP", "mAP", "mAP")


__all__ = ["DEFAULT_THRESHOLD", "SEPARATOR", "THRESHOLDS", "Multilabel", "MultilabelPredictions", "average_precision",
           "f1_scores", "label_tokens", "masked_bce", "per_sample_f1", "sigmoid", "summarize_multilabel"]
