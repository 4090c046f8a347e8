"""Contrastive: coordinated embeddings, one per modality, scored by cross-modal retrieval (docs/coordinated.md).

The model gives every modality its own L2-normalised embedding (the ``coordinated`` fusion's
``per_modality``); the split's columns are those embeddings (``emb_<m>``), and the metrics need the
whole split at once: class-level retrieval recall@1/5/10 and mAP in every direction
(:mod:`polymodal.coordinated.metrics`), zero-shot accuracy of each modality against class prototypes of
each other modality of the same split (:mod:`polymodal.coordinated.zeroshot`), the modality gap, and a
``loss`` (symmetric InfoNCE at CLIP's initial temperature 0.07 over the whole split, every pair of
modalities: comparable across epochs and objectives). The best epoch has the highest validation
``mean_R1`` (mean R@1 over every direction).

Labels are class ids used only for relevance (a hit = same class): a dataset declares
``task = "contrastive"`` (``avdigits-pairs``, ``avdigits-named``) and is trained by the ``contrastive``
strategy.
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

from polymodal.report.table import is_number, markdown_table, num, pct
from polymodal.tasks.base import EMBEDDINGS, SINGLE_LABEL, TASKS, Task
from polymodal.tasks.classification import ClassLabels
from polymodal.tasks.outputs import EvalOutputs, ModelOutput

EMB = "emb_"
LOSS_SCALE = 1 / 0.07  # the fixed temperature of the reported loss
KS = (1, 5, 10)


@dataclass
class ContrastivePredictions:
    """One split's embeddings: ``embeddings`` modality -> (N, D) float32 (zeros where absent), ``present``
    modality -> (N,) bool, ``y_true`` (N,) class ids, ``index`` (N,) dataset positions."""

    y_true: np.ndarray
    embeddings: dict[str, np.ndarray]
    present: dict[str, np.ndarray]
    index: np.ndarray | None = None
    class_names: tuple[str, ...] = ()
    task: ClassVar[str] = "contrastive"
    per_modality: dict[str, np.ndarray] = field(default_factory=dict)  # no per-modality predictions
    extras: dict[str, np.ndarray] = field(default_factory=dict)


def infonce(embeddings: Mapping[str, np.ndarray], present: Mapping[str, np.ndarray], scale: float = LOSS_SCALE) -> float | None:
    """Mean symmetric InfoNCE (nats) over every pair of modalities, on the rows where both are present."""
    from polymodal.coordinated.losses import clip_loss

    names, terms = list(embeddings), []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            rows = np.asarray(present[a], bool) & np.asarray(present[b], bool)
            if rows.sum() < 2:
                continue
            ea, eb = (torch.from_numpy(np.asarray(embeddings[m], np.float64)[rows]) for m in (a, b))
            terms.append(float(clip_loss(ea, eb, float(np.log(scale)))))
    return float(np.mean(terms)) if terms else None


def contrastive_summary(pred: ContrastivePredictions) -> dict[str, float | int | None]:
    """Every metric of the task from a predictions object (see the module docstring)."""
    from polymodal.coordinated.metrics import cross_modal_metrics, mean_recall
    from polymodal.coordinated.zeroshot import modality_gap, prototype_accuracy

    names, y = list(pred.embeddings), np.asarray(pred.y_true)
    out: dict[str, float | int | None] = {"loss": infonce(pred.embeddings, pred.present)}
    if len(names) < 2:
        out["n"] = int(len(y))
        return out
    retrieval = cross_modal_metrics(pred.embeddings, y, pred.present, ks=KS)
    for k in KS:
        out[f"mean_R{k}"] = mean_recall(retrieval, k)
    maps = [v for key, v in retrieval.items() if key.endswith("_mAP") and np.isfinite(v)]
    out["mean_mAP"] = float(np.mean(maps)) if maps else None
    for m in names:
        out[f"{m}_R1"] = mean_recall(retrieval, 1, query=m)
    out.update(retrieval)
    for q in names:
        for s in names:
            if q == s:
                continue
            qr, sr = np.asarray(pred.present[q], bool), np.asarray(pred.present[s], bool)
            classes = np.unique(y[sr])
            keep = qr & np.isin(y, classes)
            if keep.sum() == 0 or len(classes) < 2:
                out[f"zeroshot_{q}_from_{s}"] = None
                continue
            out[f"zeroshot_{q}_from_{s}"] = prototype_accuracy(pred.embeddings[q][keep], y[keep], pred.embeddings[s][sr], y[sr])
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            ra, rb = np.asarray(pred.present[a], bool), np.asarray(pred.present[b], bool)
            out[f"gap_{a}_{b}"] = modality_gap(pred.embeddings[a][ra], pred.embeddings[b][rb]) if ra.any() and rb.any() else None
    out = {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in out.items()}
    out["n"] = int(len(y))
    return out


@TASKS.register("contrastive")
class Contrastive(ClassLabels, Task):
    """Coordinated embeddings: class-level cross-modal retrieval (R@1/5/10, mAP), zero-shot accuracy,
    modality gap; best epoch on the highest validation mean R@1."""

    name = "contrastive"
    monitor = "mean_R1"
    mode = "max"
    log_suffix = "R1"
    label_dtype = np.int64
    # labels are class ids (they define relevance; stratified splits, balanced sampling apply); each modality's
    # embedding comes from the same forward pass (no per-modality evaluation)
    capabilities = frozenset({EMBEDDINGS, SINGLE_LABEL})
    results_intro = ("Retrieval with class-level relevance (a hit = an item of the query's class), in %; "
                     "zero-shot: each modality classified by the other modality's class prototypes of the "
                     "same split, in %; loss: InfoNCE at temperature 0.07 (nats).")

    def loss(self, output: Tensor | dict[str, Tensor], target: Tensor, *, rows: Tensor | None = None,
             class_weights: Tensor | None = None) -> Tensor:
        """Symmetric InfoNCE at the fixed temperature 0.07, averaged over every pair of modalities in
        ``output`` (modality -> (B, D) embeddings), on ``rows`` (the trainable objectives with learnable
        temperatures are the ``contrastive`` strategy's)."""
        from polymodal.coordinated.losses import clip_loss, modality_pairs, pairwise_objective

        if class_weights is not None:
            raise ValueError("class weights (data.class_weights) are not defined for the contrastive task")
        if not isinstance(output, Mapping):
            raise TypeError(f"the contrastive loss takes a dict of (B, D) embeddings per modality; got {type(output).__name__}")
        present = None if rows is None else {m: rows for m in output}
        scale = float(np.log(LOSS_SCALE))
        loss, _ = pairwise_objective(output, modality_pairs(list(output), "all_pairs"),
                                     lambda a, b: clip_loss(a, b, scale), present)
        return loss

    def batch_columns(self, output: ModelOutput) -> dict[str, Tensor]:
        """``emb_<m>``: each modality's (B, D) embedding (zeros where it is absent)."""
        if not output.per_modality:
            raise ValueError("the contrastive task needs per-modality embeddings: use model.fusion=coordinated "
                             "(the contrastive strategy's default)")
        return {f"{EMB}{m}": F.normalize(e.float(), dim=-1) for m, e in output.per_modality.items()}

    def predictions(self, out: EvalOutputs, class_names: Sequence[str] = ()) -> ContrastivePredictions:
        emb = {k[len(EMB):]: v.astype(np.float32) for k, v in out.columns.items() if k.startswith(EMB)}
        return ContrastivePredictions(y_true=out.label, embeddings=emb, present={m: out.present[m] for m in emb},
                                      index=out.index, class_names=tuple(class_names))

    def modalities_alone(self, names: Sequence[str]) -> list[str]:
        """None: every modality's embedding already comes from the one forward pass."""
        return []

    def prediction_columns(self, out: EvalOutputs, class_names: Sequence[str]) -> dict[str, np.ndarray]:
        """``emb_<m>``: each modality's unit embedding, None on the rows where the modality is absent."""
        columns = {}
        for m, e in self.embeddings(out, list(out.present)).items():
            column = np.empty(len(e), dtype=object)
            column[:] = [None if np.isnan(v[0]) else v for v in e]
            columns[f"{EMB}{m}"] = column
        return columns

    def embeddings(self, out: EvalOutputs | None, modalities: Sequence[str]) -> dict[str, np.ndarray]:
        """modality -> (N, D) float32 embeddings of the predicted rows; NaN rows where the modality is absent."""
        cols = {} if out is None else {k[len(EMB):]: v for k, v in out.columns.items() if k.startswith(EMB)}
        n = 0 if out is None else len(out.index)
        dim = next((v.shape[1] for v in cols.values()), 0)
        result = {}
        for m in modalities:
            e = np.full((n, dim), np.nan, dtype=np.float32)
            if m in cols:
                e[:] = cols[m].astype(np.float32)
                e[~out.present[m]] = np.nan  # type: ignore[union-attr]
            result[m] = e
        return result

    def figures(self, pred: Any, fig_dir: Path) -> dict[str, tuple[Path, str]]:
        return {}

    def summarize(self, pred: ContrastivePredictions) -> dict[str, float | int | None]:
        return contrastive_summary(pred)

    def metrics(self, out: EvalOutputs, modalities: list[str]) -> dict[str, float | None]:
        """:func:`contrastive_summary`: ``loss``, ``mean_R1/5/10``, ``mean_mAP``, ``<m>_R1`` (R@1 with m as
        the query), ``<a>_to_<b>_R1/R5/R10/mAP``, ``zeroshot_<q>_from_<s>``, ``gap_<a>_<b>``, ``n``."""
        summary = contrastive_summary(self.predictions(out))
        for m in modalities:
            summary.setdefault(f"{m}_R1", None)
        return summary  # type: ignore[return-value]

    def example_outputs(self, n: int = 24, modalities: Sequence[str] = ("a", "b"), num_outputs: int = 3,
                        seed: int = 0) -> EvalOutputs:
        """A small split as the engine collects it: ``emb_<m>`` unit embeddings (width 8) that lean towards
        their class's direction, some rows missing a modality (their embeddings zero)."""
        rng = np.random.default_rng(seed)
        label = self.read_targets(np.arange(n) % num_outputs)
        present = {m: rng.random(n) < 0.75 for m in modalities}
        columns = {}
        for m in modalities:
            e = np.eye(8)[label] * 2 + rng.standard_normal((n, 8))
            e = e / np.linalg.norm(e, axis=1, keepdims=True)
            columns[f"{EMB}{m}"] = np.where(present[m][:, None], e, 0.0).astype(np.float32)
        return EvalOutputs(index=np.arange(n, dtype=np.int64), label=label, logits=np.zeros((n, 0), np.float32),
                           per_modality={}, present=present, task=self.name, columns=columns)

    # -- predictions file ------------------------------------------------------------------------
    def to_arrays(self, pred: ContrastivePredictions) -> dict[str, np.ndarray]:
        """``y_true``, ``modalities``, ``class_names``, ``emb_<m>`` (N, D) and ``present_<m>`` (N,)."""
        arrays: dict[str, np.ndarray] = {
            "y_true": np.asarray(pred.y_true),
            "modalities": np.array(list(pred.embeddings), dtype=str),
            "class_names": np.array(list(pred.class_names), dtype=str),
        }
        arrays.update({f"{EMB}{m}": np.asarray(e, np.float32) for m, e in pred.embeddings.items()})
        arrays.update({f"present_{m}": np.asarray(p, bool) for m, p in pred.present.items()})
        return arrays

    def from_arrays(self, arrays: Mapping[str, np.ndarray], path: Path) -> ContrastivePredictions:
        if "y_true" not in arrays or "modalities" not in arrays:
            raise ValueError(f"predictions file {path} lacks y_true / modalities; it holds {sorted(arrays)}")
        names = [str(m) for m in arrays["modalities"]]
        missing = [f"{EMB}{m}" for m in names if f"{EMB}{m}" not in arrays]
        if missing:
            raise ValueError(f"predictions file {path} lacks the embedding arrays {missing}")
        n = len(arrays["y_true"])
        return ContrastivePredictions(
            y_true=arrays["y_true"],
            embeddings={m: arrays[f"{EMB}{m}"] for m in names},
            present={m: arrays.get(f"present_{m}", np.ones(n, bool)).astype(bool) for m in names},
            index=arrays.get("index"),
            class_names=tuple(str(c) for c in arrays.get("class_names", [])),
        )

    def owns_file(self, files: set[str]) -> bool:
        return any(f.startswith(EMB) for f in files)

    # -- report ----------------------------------------------------------------------------------
    def infer_from_metrics(self, splits: list[dict[str, Any]]) -> bool:
        return any("mean_R1" in d for d in splits)

    def results_table(self, results: dict[str, Any]) -> list[str]:
        val, test = results.get("val") or {}, results.get("test") or {}
        rows = []
        for key in dict.fromkeys([*val, *test]):
            v, t = val.get(key), test.get(key)
            if not (is_number(v) or is_number(t)) or key.startswith("gap_"):
                continue
            if key in ("loss", "n"):
                rows.append([{"loss": "loss (InfoNCE, T = 0.07)", "n": "samples"}[key], num(v), num(t)])
            else:
                rows.append([key, pct(v), pct(t)])
        return markdown_table(["metric", "val", "test"], rows)

    def learning_curve(self) -> tuple[str, str, str]:
        """Validation mean R@1 (fused panel) and each direction's / query modality's R@1."""
        return ("mean_R1", "R1", "R@1")

    def report_section(self, pred: ContrastivePredictions, run_dir: Path) -> list[str]:
        """Test retrieval per direction, zero-shot accuracies and the modality gap."""
        s = contrastive_summary(pred)
        names = list(pred.embeddings)
        rows = [[f"{q} -> {g}", *(pct(s.get(f"{q}_to_{g}_{k}")) for k in ("R1", "R5", "R10", "mAP"))]
                for q in names for g in names if q != g]
        out = ["## Test retrieval", "", f"{len(pred.y_true)} test samples; class-level relevance, in %.", ""]
        out += markdown_table(["query -> gallery", "R@1", "R@5", "R@10", "mAP"], rows) + [""]
        zs = [[q, s_, pct(s.get(f"zeroshot_{q}_from_{s_}"))] for q in names for s_ in names if q != s_]
        out += ["Zero-shot: each query classified by the class prototypes (mean embeddings) of the other "
                "modality in the test split.", ""]
        out += markdown_table(["query", "prototypes from", "accuracy %"], zs) + [""]
        gaps = [f"{a}/{b} {num(s.get(f'gap_{a}_{b}'), '.3f')}" for i, a in enumerate(names) for b in names[i + 1 :]]
        out += [f"Modality gap (distance between the centroids of unit embeddings): {', '.join(gaps)}.", ""]
        return out


__all__ = ["Contrastive", "ContrastivePredictions", "contrastive_summary", "infonce"]
