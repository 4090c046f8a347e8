"""Survival: time-to-event targets with right censoring, a Cox model on top of any fusion (docs/survival.md).

Targets are ``(time, event)`` pairs (N, 2); the model outputs one log relative risk per sample
(``num_outputs = 1``). Training minimises Cox's negative log partial likelihood within each batch
(:func:`~polymodal.tasks.survival.cox.cox_partial_nll`, Breslow ties); the best epoch has the highest
validation concordance index (Harrell's C). Survival curves come from the Breslow baseline hazard of the
trained model's risks on the training split (:class:`~polymodal.tasks.survival.reference.SurvivalReference`),
and with them the integrated Brier score (IPCW, the censoring distribution of the training split).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from polymodal.report.table import is_number, markdown_table, modality_names, num
from polymodal.tasks.base import TASKS, SyntheticData, SyntheticSpec, Task, mean_of_present_heads
from polymodal.tasks.labels import LabelColumn, LabelProblem, finite
from polymodal.tasks.outputs import EvalOutputs, ModelOutput
from polymodal.tasks.survival.cox import check_targets, cox_partial_nll, split_target
from polymodal.tasks.survival.metrics import concordance_index, integrated_brier_score, within_follow_up
from polymodal.tasks.survival.reference import SurvivalReference


@dataclass
class SurvivalPredictions:
    """A split's survival predictions.

    y_true:       (N, 2) float: time, event (1 observed, 0 censored)
    risk:         (N,) the fused log relative risk (higher: earlier event)
    per_modality: name -> (N,) log-risk with every other modality absent
    present:      name -> (N,) bool
    reference:    the training split's baseline hazard, censoring distribution and time grid (None: not
                  fitted, so no survival curves and no Brier score)
    extras:       name -> (N, ...) per-sample outputs beside the prediction
    """

    task: ClassVar[str] = "survival"
    y_true: np.ndarray
    risk: np.ndarray
    per_modality: dict[str, np.ndarray] = field(default_factory=dict)
    present: dict[str, np.ndarray] = field(default_factory=dict)
    index: np.ndarray | None = None
    reference: SurvivalReference | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def time(self) -> np.ndarray:
        return np.asarray(self.y_true)[:, 0]

    @property
    def event(self) -> np.ndarray:
        return np.asarray(self.y_true)[:, 1]

    @property
    def grid(self) -> np.ndarray | None:
        return None if self.reference is None else self.reference.grid

    def survival(self) -> np.ndarray | None:
        """(N, T) survival probabilities at :attr:`grid`; None without a reference."""
        return None if self.reference is None else self.reference.curves(self.risk)


def risk_column(values: np.ndarray, what: str = "the model's outputs") -> np.ndarray:
    """(N,) log-risks from outputs of shape (N,) or (N, 1)."""
    values = np.asarray(values)
    if values.ndim == 2 and values.shape[1] == 1:
        return values[:, 0]
    if values.ndim != 1:
        raise ValueError(f"a survival model gives one log-risk per sample; {what} have shape {values.shape} "
                         "(set the dataset's num_outputs to 1)")
    return values


def ibs_of(pred: SurvivalPredictions) -> float | None:
    """The integrated Brier score of the fused predictions over the reference grid inside the split's follow-up
    (None without a reference or with fewer than two such grid times)."""
    if pred.reference is None or len(pred.y_true) == 0:
        return None
    grid = within_follow_up(pred.reference.grid, pred.time)
    if len(grid) < 2:
        return None
    surv = pred.reference.curves(pred.risk, grid)
    return integrated_brier_score(pred.time, pred.event, surv, grid, pred.reference.censoring)


def bootstrap_cindex(time: np.ndarray, event: np.ndarray, risk: np.ndarray, *, resamples: int = 500,
                     seed: int = 0) -> tuple[float, float] | None:
    """95 % percentile interval of Harrell's C over ``resamples`` bootstrap resamples of the rows (resamples
    without a comparable pair are skipped); None when fewer than half of them have one."""
    rng = np.random.default_rng(seed)
    n = len(time)
    values = []
    for _ in range(resamples):
        i = rng.integers(0, n, n)
        c, _ = concordance_index(time[i], event[i], risk[i])
        if c is not None:
            values.append(c)
    if len(values) < resamples // 2:
        return None
    lo, hi = np.quantile(values, [0.025, 0.975])
    return float(lo), float(hi)


@TASKS.register("survival")
class Survival(Task):
    """Time-to-event with censoring: Cox partial likelihood; C-index, integrated Brier score; best val C-index."""

    name = "survival"
    monitor = "cindex"
    mode = "max"
    log_suffix = "cindex"
    label_dtype = np.float32
    fit_on = "train"  # the Breslow baseline and the censoring distribution of the training split
    bench_extra = ("ibs",)  # polymodal bench tabulates the integrated Brier score beside the C-index
    results_intro = ("C-index: Harrell's concordance (0.5 = random ranking, 1 = perfect); IBS: integrated Brier "
                     "score of the survival curves over the time grid (lower is better; 0.25 = always 0.5); loss: "
                     "Cox negative log partial likelihood per event over the split; per-modality C-index over "
                     "the samples where the modality is present; n/a: not logged, or not defined.")

    # -- training ---------------------------------------------------------------------------------
    def loss(self, output: Tensor | dict[str, Tensor], target: Tensor, *, rows: Tensor | None = None,
             class_weights: Tensor | None = None) -> Tensor:
        """:func:`~polymodal.tasks.survival.cox.cox_partial_nll` (Breslow ties, mean over the batch's events)."""
        if class_weights is not None:
            raise ValueError("class weights (data.class_weights) are not defined for a survival task")
        if not isinstance(output, Tensor):
            raise TypeError(f"the survival loss takes a (B, 1) log-risk tensor; got {type(output).__name__}")
        time, event = split_target(target)
        return cox_partial_nll(output, time, event, rows=rows)

    def fuse_unimodal_heads(self, out: ModelOutput, present: Mapping[str, Tensor]) -> ModelOutput:
        """The mean of the per-modality log-risks over the present modalities: every head is trained alone to
        give the whole log-risk (:func:`~polymodal.tasks.base.mean_of_present_heads`)."""
        return mean_of_present_heads(out, present)

    # -- outputs -> predictions and metrics -------------------------------------------------------
    def predictions(self, out: EvalOutputs, class_names: Sequence[str] = ()) -> SurvivalPredictions:
        split_target(out.label)
        fitted = out.fitted
        if fitted is not None and not isinstance(fitted, SurvivalReference):
            raise TypeError(f"survival outputs carry a fitted state of type {type(fitted).__name__}; expected a "
                            "SurvivalReference (Survival.fit_state)")
        return SurvivalPredictions(
            y_true=np.asarray(out.label, dtype=np.float32),
            risk=risk_column(out.logits),
            per_modality={m: risk_column(v, f"modality {m}'s outputs") for m, v in out.per_modality.items()},
            present={m: np.asarray(p, dtype=bool) for m, p in out.present.items()},
            index=out.index,
            reference=fitted,
        )

    def summarize(self, pred: SurvivalPredictions) -> dict[str, float | int | None]:
        """``cindex`` and ``ibs`` of the fused risks, ``<m>_cindex`` over the samples where m is present, ``n``
        and ``events``."""
        time, event = pred.time, pred.event
        summary: dict[str, float | int | None] = {"cindex": concordance_index(time, event, pred.risk)[0],
                                                  "ibs": ibs_of(pred)}
        for m, risk in pred.per_modality.items():
            rows = np.asarray(pred.present.get(m, np.ones(len(time), dtype=bool)), dtype=bool)
            summary[f"{m}_cindex"] = concordance_index(time[rows], event[rows], risk[rows])[0] if rows.any() else None
        summary["n"] = int(len(time))
        summary["events"] = int(np.asarray(event).sum())
        return summary

    def metrics(self, out: EvalOutputs, modalities: list[str]) -> dict[str, float | None]:
        """``loss`` (Cox negative log partial likelihood per event over the whole split, Breslow ties), ``cindex``,
        ``ibs`` (None until the training split's reference is fitted), ``<m>_cindex`` for every modality (None
        if n/a), ``events`` and ``n``."""
        pred = self.predictions(out)
        summary = self.summarize(pred)
        time, event = pred.time.astype(np.float64), pred.event.astype(np.float64)
        loss = cox_partial_nll(torch.from_numpy(pred.risk.astype(np.float64)), torch.from_numpy(time),
                               torch.from_numpy(event))
        metrics: dict[str, float | None] = {"loss": float(loss), "cindex": summary["cindex"], "ibs": summary["ibs"]}
        for m in modalities:
            metrics[f"{m}_cindex"] = summary.get(f"{m}_cindex")  # type: ignore[assignment]
        metrics["events"] = summary["events"]  # type: ignore[assignment]
        metrics["n"] = summary["n"]  # type: ignore[assignment]
        return metrics

    def fit_state(self, out: EvalOutputs) -> SurvivalReference:
        """The training split's :class:`SurvivalReference` (Breslow baseline of the fused risks, censoring
        distribution, time grid), from its collected outputs on the best checkpoint."""
        time, event = split_target(np.asarray(out.label, dtype=np.float64))
        return SurvivalReference.fit(risk_column(out.logits), time, event)

    def state_to_arrays(self, state: SurvivalReference | None) -> dict[str, np.ndarray]:
        return {} if state is None else state.to_arrays()

    def state_from_arrays(self, arrays: Mapping[str, np.ndarray], path: Path) -> SurvivalReference | None:
        return SurvivalReference.from_arrays(arrays, path)

    # -- the predictions file ---------------------------------------------------------------------
    def to_arrays(self, pred: SurvivalPredictions) -> dict[str, np.ndarray]:
        """``y_true`` (N, 2) time and event, ``risk`` (N,), ``modalities``, ``class_names`` (empty), ``risk_<m>``
        per available modality, ``present_<m>`` (N,) bool; with a reference also ``grid`` (T,), ``survival``
        (N, T) and the reference's arrays (``reference/...``)."""
        names = list(dict.fromkeys([*pred.present, *pred.per_modality]))
        arrays: dict[str, np.ndarray] = {
            "y_true": np.asarray(pred.y_true, dtype=np.float32),
            "risk": np.asarray(pred.risk, dtype=np.float32),
            "modalities": np.array(names, dtype=str),
            "class_names": np.array([], dtype=str),
        }
        arrays.update({f"risk_{m}": np.asarray(r, dtype=np.float32) for m, r in pred.per_modality.items()})
        arrays.update({f"present_{m}": np.asarray(p, dtype=bool) for m, p in pred.present.items()})
        if pred.reference is not None:
            arrays["grid"] = pred.reference.grid
            arrays["survival"] = pred.survival().astype(np.float32)  # type: ignore[union-attr]
            arrays.update(pred.reference.to_arrays())
        return arrays

    def from_arrays(self, arrays: Mapping[str, np.ndarray], path: Path) -> SurvivalPredictions:
        missing = [k for k in ("y_true", "risk") if k not in arrays]
        if missing:
            raise ValueError(f"predictions file {path} lacks arrays {missing}; it holds {sorted(arrays)}")
        y, risk = arrays["y_true"], arrays["risk"]
        if y.ndim != 2 or y.shape[1] != 2 or risk.shape != (len(y),):
            raise ValueError(f"predictions file {path}: y_true {y.shape} and risk {risk.shape}; expected (N, 2) and (N,)")
        return SurvivalPredictions(
            y_true=y,
            risk=risk,
            per_modality={k[len("risk_"):]: v for k, v in arrays.items() if k.startswith("risk_")},
            present={k[len("present_"):]: v.astype(bool) for k, v in arrays.items() if k.startswith("present_")},
            index=arrays.get("index"),
            reference=SurvivalReference.from_arrays(arrays, path),
        )

    def owns_file(self, files: set[str]) -> bool:
        return "risk" in files

    # -- labels -----------------------------------------------------------------------------------
    def label_shape(self, num_outputs: int) -> tuple[int, ...]:
        """(2,): time and event."""
        return (2,)

    def num_outputs_for(self, class_names: Sequence[str], y: np.ndarray) -> int:
        """One log-risk per sample."""
        return 1

    def fill_missing(self, y: np.ndarray) -> np.ndarray:
        """Rows without a target get (time 1, censored): never trained on, the value keeps batches well formed."""
        y = np.array(y, dtype=np.float64, copy=True)
        bad = ~np.isfinite(y).all(axis=1)
        y[bad] = (1.0, 0.0)
        return y

    def parse_labels(self, cells: Sequence[Any], class_names: Sequence[str]) -> LabelColumn:
        """Cells of ``(time, event)`` pairs, one per row (a table names its two columns, docs/survival.md; None:
        no target): the time a finite number > 0, the event 0 / 1 (also ``true`` / ``false``). Odd cells are
        errors of the data check; their rows get no target."""
        y = np.full((len(cells), 2), np.nan)
        bad: list[int] = []
        for r, cell in enumerate(cells):
            if cell is None:
                continue
            pair = _pair(cell)
            if pair is None:
                bad.append(r)
            else:
                y[r] = pair
        problems = []
        if bad:
            problems.append(LabelProblem(
                "bad_target", "error", "survival targets need a time (a finite number > 0) and an event (1 observed, "
                "0 censored, or true / false) in every labelled row; fix them, or leave both cells empty to predict "
                "those rows", bad, [cells[r] for r in bad]))
        has = np.array([c is not None for c in cells], dtype=bool)  # a bad cell is an error, not a missing label
        return LabelColumn(self.fill_missing(y).astype(self.label_dtype), has, problems)

    def label_value(self, cell: Any) -> Any:
        """A ``(time, event)`` cell as two floats (``(120, 1)`` and ``("120.0", "true")`` are one target), or its
        text when it is not such a pair."""
        pair = _pair(cell)
        return pair if pair is not None else str(cell)

    def read_targets(self, values: np.ndarray) -> np.ndarray:
        """(N, 2) float32 (time, event); times must be > 0 and events 0 / 1 (a ValueError says which rows)."""
        y = np.asarray(values, dtype=np.float64)
        time, event = split_target(y)
        check_targets(time, event)
        return y.astype(self.label_dtype)

    def strata(self, y: np.ndarray) -> np.ndarray:
        """The event indicator: splits keep the share of observed events."""
        return (np.asarray(y, dtype=np.float64)[:, 1] > 0).astype(np.int64)

    def synthetic_data(self, spec: SyntheticSpec) -> SyntheticData:
        """A Cox model: standard normal features, the log-risk ``eta = sum_m x_m . w_m`` along one fixed random
        unit direction per modality (drawn from ``seed``, each part of unit variance), event times exponential
        with rate ``exp(eta)``, censoring times exponential with mean 2 (about a third censored);
        ``target_noise`` adds normal noise of that scale to eta before the times are drawn."""
        dir_rng = np.random.default_rng((spec.seed, 11))
        directions = [w / np.linalg.norm(w) for w in (dir_rng.standard_normal(d) for d in spec.dims)]
        x = [spec.rng.standard_normal((spec.n, d)).astype(np.float32) for d in spec.dims]
        eta = sum(xm.astype(np.float64) @ w for xm, w in zip(x, directions, strict=True))
        eta = eta + spec.target_noise * spec.rng.standard_normal(spec.n)
        event_time = spec.rng.exponential(1.0 / np.exp(eta))
        censor_time = spec.rng.exponential(2.0, spec.n)
        time = np.minimum(event_time, censor_time) + 1e-3
        event = (event_time <= censor_time).astype(np.float64)
        labels = self.read_targets(np.stack([time, event], axis=1))
        return SyntheticData(labels, x, 1, (), {"events": int(event.sum()), "target_noise": spec.target_noise})

    # -- the Predictor ----------------------------------------------------------------------------
    def prediction_columns(self, out: EvalOutputs, class_names: Sequence[str]) -> dict[str, np.ndarray]:
        """``risk`` (the fused log relative risk), and with the run's reference the survival curve as one column per
        grid time, ``survival_<time>`` (the probability of no event by that time; :func:`survival_column` names
        them)."""
        risk = risk_column(out.logits).astype(np.float64)
        columns: dict[str, np.ndarray] = {"risk": risk}
        reference = out.fitted
        if isinstance(reference, SurvivalReference):
            curves = reference.curves(risk)
            columns.update({survival_column(t): curves[:, j] for j, t in enumerate(reference.grid)})
        return columns

    # -- report -----------------------------------------------------------------------------------
    def infer_from_metrics(self, splits: list[dict[str, Any]]) -> bool:
        return any("cindex" in d for d in splits)

    def results_table(self, results: dict[str, Any]) -> list[str]:
        val, test = results.get("val") or {}, results.get("test") or {}
        rows = [[label, num(val.get(key)), num(test.get(key))]
                for key, label in (("cindex", "fused C-index"), ("ibs", "fused IBS"))]
        modalities = modality_names(results, ("_cindex",))
        rows += [[f"{m} C-index", num(val.get(f"{m}_cindex")), num(test.get(f"{m}_cindex"))] for m in modalities]
        known = {"cindex", "ibs"} | {f"{m}_cindex" for m in modalities}
        for key in dict.fromkeys([*val, *test]):
            if key not in known and (is_number(val.get(key)) or is_number(test.get(key))):
                label = {"loss": "loss (Cox NLL per event)", "n": "samples", "events": "events"}.get(key, key)
                rows.append([label, num(val.get(key)), num(test.get(key))])
        return markdown_table(["metric", "val", "test"], rows)

    def report_section(self, pred: SurvivalPredictions, run_dir: Path) -> list[str]:
        """Test C-index with a 95 % bootstrap interval, IBS, per-modality C-index, and what the curves rest on."""
        summary = self.summarize(pred)
        interval = bootstrap_cindex(pred.time, pred.event, pred.risk)
        ci = f" (95 % bootstrap interval {interval[0]:.3f} to {interval[1]:.3f})" if interval else ""
        parts = [f"C-index {num(summary['cindex'], '.3f')}{ci}", f"IBS {num(summary['ibs'], '.3f')}"]
        parts += [f"{m} alone C-index {num(summary.get(f'{m}_cindex'), '.3f')}" for m in pred.per_modality]
        out = ["## Test predictions (fused)", "",
               f"{summary['n']} test samples, {summary['events']} observed events; " + "; ".join(parts) + ".", ""]
        if pred.reference is not None:
            g = pred.reference.grid
            out += [f"Survival curves: Breslow baseline hazard of the training split's risks, on {len(g)} times "
                    f"from {g[0]:.4g} to {g[-1]:.4g} (the 10th to 90th percentile of the training event times); "
                    "the IBS weights by the training split's censoring distribution and is taken over the grid "
                    "times inside the test follow-up.", ""]
        else:
            out += ["No survival curves: the run has no baseline hazard of its training split.", ""]
        return out

    def learning_curve(self) -> tuple[str, str, str]:
        return ("cindex", "cindex", "C-index")

    def figures(self, pred: SurvivalPredictions, fig_dir: Path) -> dict[str, tuple[Path, str]]:
        """Kaplan-Meier curves of the test samples above and below the median predicted risk, beside the mean
        predicted survival curve of each group."""
        from polymodal.tasks.survival.plots import plot_risk_groups

        path = plot_risk_groups(pred, fig_dir / "survival_test.png")
        return {"survival": (path, "Observed (Kaplan-Meier) and predicted survival by risk group, test")}

    # -- the tiny variant -------------------------------------------------------------------------
    def example_outputs(self, n: int = 24, modalities: Sequence[str] = ("a", "b"), num_outputs: int = 1,
                        seed: int = 0) -> EvalOutputs:
        """Targets from a Cox model with exponential times (about 70 % events), a fitted reference, one log-risk
        per row; ``num_outputs`` is ignored (always 1)."""
        rng = np.random.default_rng(seed)
        risk = rng.standard_normal(n)
        event_time = rng.exponential(1.0 / np.exp(risk))
        censor_time = rng.exponential(2.0, n)
        time = np.minimum(event_time, censor_time) + 1e-3
        event = (event_time <= censor_time).astype(np.float64)
        event[:2] = 1.0  # at least two events for the grid
        label = self.read_targets(np.stack([time, event], axis=1))
        logits = (risk + 0.5 * rng.standard_normal(n)).astype(np.float32)[:, None]
        out = EvalOutputs(
            index=np.arange(n, dtype=np.int64),
            label=label,
            logits=logits,
            per_modality={m: (risk + rng.standard_normal(n)).astype(np.float32)[:, None] for m in modalities},
            present={m: rng.random(n) < 0.75 for m in modalities},
            task=self.name,
        )
        out.fitted = self.fit_state(out)
        return out


def survival_column(time: float) -> str:
    """The Predictor's column of the survival probability at ``time``: ``survival_<time>`` (6 significant digits)."""
    return f"survival_{float(time):.6g}"


def _pair(cell: Any) -> tuple[float, float] | None:
    """A ``(time, event)`` cell as floats, or None when it is not one."""
    if not isinstance(cell, Sequence) or isinstance(cell, str) or len(cell) != 2:
        return None
    time = finite(cell[0])
    event = cell[1]
    if isinstance(event, str):
        event = {"true": 1.0, "false": 0.0, "yes": 1.0, "no": 0.0}.get(event.strip().lower(), event)
    event = finite(event)
    if time is None or time <= 0 or event not in (0.0, 1.0):
        return None
    return time, float(event)


__all__ = ["Survival", "SurvivalPredictions", "bootstrap_cindex", "ibs_of", "risk_column", "survival_column"]
