"""Survival on the breast-cancer data: gene-only, clinical-only, joint, unimodal and MLA Cox models against a
penalised (ridge) Cox model on all features, over repeated random splits (docs/survival.md).

Protocol: seed s both draws the stratified 60/20/20 split (``data.options.split_seed=s``) and seeds the
training; every neural model uses ``configs/breast_cancer_survival.yaml`` (late fusion of per-modality MLP
log-risks, width 16, AdamW, one full batch per epoch, at most 60 epochs, best validation C-index). The
classical reference is scikit-survival's ``CoxPHSurvivalAnalysis`` on the 82 standardised features of both
modalities, its ridge penalty picked among ALPHAS by the validation C-index and fitted on the training split
(its survival curves from the same Breslow baseline as the neural models'). Differences to it are paired
(same patients) and their 95 % intervals come from a two-stage bootstrap: seeds drawn with replacement, and the
test patients of each drawn seed resampled (the test set is nested in the seed, since each seed is a split).

    python benchmarks/survival.py [--seeds 0,1,2,3,4] [--threads 1]

Trains into benchmarks/runs/survival/ (finished runs are reused) and writes benchmarks/results/survival.md and
survival.json. Needs the survival extra (scikit-survival).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RUNS = HERE / "runs" / "survival"
CONFIG = ROOT / "configs" / "breast_cancer_survival.yaml"
ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0)
RESAMPLES = 2000
REFERENCE = "cox-ridge"

# method -> (label, overrides of the survival profile)
METHODS: dict[str, tuple[str, list[str]]] = {
    "genes-only": ("joint on genes alone", ["data.options.modalities=[genes]"]),
    "clinical-only": ("joint on clinical alone", ["data.options.modalities=[clinical]"]),
    "joint": ("joint, late fusion (sum of log-risks)", []),
    "unimodal": ("unimodal heads, mean of log-risks", ["strategy.name=unimodal"]),
    "mla": ("MLA, shared head, fixed equal weights", ["strategy.name=mla", "model.fusion=shared_head",
                                                       "strategy.args.fusion_rule=fixed"]),
}


def train_method(method: str, seed: int) -> Path:
    """The run folder of ``method`` on ``seed`` (trained unless it holds a results.json)."""
    from polymodal.config import load_config
    from polymodal.engine.loop import train

    run = RUNS / f"{method}-seed{seed}"
    if not (run / "results.json").is_file():
        overrides = [*METHODS[method][1], f"seed={seed}", f"data.options.split_seed={seed}", f"name={run.name}",
                     f"out_dir={RUNS}", "trainer.progress=false"]
        train(load_config(CONFIG, overrides))
    return run


def read_run(run: Path) -> dict[str, Any]:
    """A run's test C-index (results.json), and its test IBS: from results.json when the run fitted its survival
    reference, else from a reference fitted here on the best checkpoint's training-split risks (the same
    :meth:`~polymodal.tasks.survival.Survival.fit_state`)."""
    from polymodal.engine.evaluate import evaluate_run
    from polymodal.tasks import read_predictions
    from polymodal.tasks.survival import SurvivalReference
    from polymodal.tasks.survival.task import ibs_of

    results = json.loads((run / "results.json").read_text())
    pred = read_predictions(run / "predictions_test.npz")
    ibs = results["test"].get("ibs")
    if ibs is None:
        train = evaluate_run(run, "train")
        pred.reference = SurvivalReference.fit(train.risk, train.time, train.event)
        ibs = ibs_of(pred)
    return {"test_cindex": results["test"]["cindex"], "test_ibs": ibs,
            "val_cindex": results["val"]["cindex"], "best_epoch": results.get("best_epoch"),
            "time": pred.time.astype(np.float64), "event": pred.event.astype(np.float64),
            "risk": pred.risk.astype(np.float64), "index": np.asarray(pred.index)}


def cox_reference(seed: int) -> dict[str, Any]:
    """The ridge Cox model on both modalities' features: alpha by validation C-index, fitted on train."""
    from sksurv.linear_model import CoxPHSurvivalAnalysis

    from polymodal.data.datasets.breast_cancer import BreastCancer
    from polymodal.tasks.survival import SurvivalReference, concordance_index
    from polymodal.tasks.survival.task import SurvivalPredictions, ibs_of

    data = {}
    for split in ("train", "val", "test"):
        ds = BreastCancer(split, split_seed=seed)
        x = torch.cat([ds.x["genes"], ds.x["clinical"]], dim=1).numpy().astype(np.float64)
        y = ds.labels.astype(np.float64)
        data[split] = (x, y[:, 0], y[:, 1])

    def structured(t, e):
        return np.array(list(zip(e.astype(bool), t, strict=True)), dtype=[("event", bool), ("time", float)])

    scores = {}
    for alpha in ALPHAS:
        model = CoxPHSurvivalAnalysis(alpha=alpha).fit(data["train"][0], structured(*data["train"][1:]))
        scores[alpha] = (concordance_index(data["val"][1], data["val"][2], model.predict(data["val"][0]))[0], model)
    alpha = max(ALPHAS, key=lambda a: scores[a][0])  # ties keep the smaller penalty (first in ALPHAS)
    val_cindex, model = scores[alpha]
    x, t, e = data["test"]
    risk = model.predict(x)
    reference = SurvivalReference.fit(model.predict(data["train"][0]), data["train"][1], data["train"][2])
    pred = SurvivalPredictions(y_true=np.column_stack([t, e]), risk=risk, reference=reference)
    return {"test_cindex": concordance_index(t, e, risk)[0], "test_ibs": ibs_of(pred), "val_cindex": val_cindex,
            "alpha": alpha, "time": t, "event": e, "risk": risk}


def _cindex(t: np.ndarray, e: np.ndarray, r: np.ndarray) -> float:
    from polymodal.tasks.survival import concordance_index

    c, _ = concordance_index(t, e, r)
    return float("nan") if c is None else c


def nested_bootstrap(runs: list[dict[str, Any]], base: list[dict[str, Any]] | None, *, resamples: int = RESAMPLES,
                     seed: int = 0) -> tuple[float, float]:
    """95 % interval of the mean over seeds of C(method) - C(base) (or of C(method) when ``base`` is None):
    seeds drawn with replacement, the test patients of each drawn seed resampled, the same patients for both."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        picks = rng.integers(0, len(runs), len(runs))
        diffs = []
        for k in picks:
            run = runs[k]
            i = rng.integers(0, len(run["time"]), len(run["time"]))
            c = _cindex(run["time"][i], run["event"][i], run["risk"][i])
            if base is not None:
                ref = base[k]
                c -= _cindex(ref["time"][i], ref["event"][i], ref["risk"][i])
            diffs.append(c)
        if np.isfinite(diffs).all():
            values.append(float(np.mean(diffs)))
    lo, hi = np.quantile(values, [0.025, 0.975])
    return float(lo), float(hi)


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--threads", type=int, default=1)
    ns = ap.parse_args()
    torch.set_num_threads(ns.threads)
    seeds = [int(s) for s in ns.seeds.split(",")]
    per: dict[str, list[dict[str, Any]]] = {REFERENCE: [cox_reference(s) for s in seeds]}
    for method in METHODS:
        per[method] = [read_run(train_method(method, s)) for s in seeds]
    for method, runs in per.items():  # every method scores the same test patients of each split
        for s, run, ref in zip(seeds, runs, per[REFERENCE], strict=True):
            if not (np.array_equal(run["time"], ref["time"]) and np.array_equal(run["event"], ref["event"])):
                raise RuntimeError(f"{method} seed {s}: the test targets differ from the reference's; the split drifted")
    rows = []
    for method, runs in per.items():
        c = [r["test_cindex"] for r in runs]
        ibs = [r["test_ibs"] for r in runs]
        row: dict[str, Any] = {
            "method": method,
            "label": "ridge Cox (scikit-survival), all 82 features" if method == REFERENCE else METHODS[method][0],
            "test_cindex": c, "test_ibs": ibs, "val_cindex": [r["val_cindex"] for r in runs],
            "cindex_interval": nested_bootstrap(runs, None),
        }
        if method == REFERENCE:
            row["alpha"] = [r["alpha"] for r in runs]
        else:
            row["best_epoch"] = [r["best_epoch"] for r in runs]
            ref = [r["test_cindex"] for r in per[REFERENCE]]
            row["diff_vs_reference"] = [a - b for a, b in zip(c, ref, strict=True)]
            row["diff_interval"] = nested_bootstrap(runs, per[REFERENCE])
        rows.append(row)
    events = [int(r["event"].sum()) for r in per[REFERENCE]]
    n_test = [len(r["time"]) for r in per[REFERENCE]]
    protocol = (f"breast-cancer (198 patients, 51 events), seeds {ns.seeds}: seed s draws the stratified 60/20/20 "
                f"split and seeds the training; test sets of {n_test[0]} patients with {_span(events)} "
                f"events; neural models: {CONFIG.relative_to(ROOT)}; reference: ridge Cox, alpha in {list(ALPHAS)} by "
                f"validation C-index; {torch.get_num_threads()} torch thread(s)")
    command = f"python benchmarks/survival.py --seeds {ns.seeds}"
    out = HERE / "results" / "survival"
    out.with_suffix(".json").write_text(json.dumps({"protocol": protocol, "command": command, "seeds": seeds,
                                                    "test_events": events, "test_size": n_test, "rows": rows},
                                                   indent=1) + "\n")
    out.with_suffix(".md").write_text(render(protocol, command, rows, events) + "\n")
    print(render(protocol, command, rows, events))


def _span(values: list[int]) -> str:
    return str(values[0]) if min(values) == max(values) else f"{min(values)}-{max(values)}"


def _fmt(values: list[float | None], digits: int = 3) -> str:
    vals = [v for v in values if v is not None]
    if not vals:
        return "n/a"
    m, s = _mean_std(vals)
    return f"{m:.{digits}f} +- {s:.{digits}f}" + (f" (n={len(vals)})" if len(vals) != len(values) else "")


def render(protocol: str, command: str, rows: list[dict[str, Any]], events: list[int]) -> str:
    from polymodal.report.table import markdown_table

    table = []
    for r in rows:
        lo, hi = r["cindex_interval"]
        diff = "reference"
        if "diff_interval" in r:
            d_lo, d_hi = r["diff_interval"]
            diff = f"{statistics.fmean(r['diff_vs_reference']):+.3f} [{d_lo:+.3f}, {d_hi:+.3f}]"
        table.append([r["method"], r["label"], _fmt(r["test_cindex"]), f"[{lo:.3f}, {hi:.3f}]", diff,
                      _fmt(r["test_ibs"]), _fmt(r["val_cindex"])])
    lines = ["# Survival: breast cancer, genes and clinical variables", "", f"Protocol: {protocol}", "",
             f"Command: `{command}`", "",
             "Each cell: mean +- std (ddof = 1) over the seeds; C-index: Harrell's (0.5 = random ranking); IBS: "
             "integrated Brier score (lower is better; 0.25 = always 0.5). Intervals: 95 %, two-stage bootstrap "
             f"({RESAMPLES} resamples: seeds with replacement, then the test patients of each seed); the difference "
             f"is paired with {REFERENCE} on the same patients.", "",
             *markdown_table(["method", "model", "test C-index", "95 % interval", f"minus {REFERENCE} [95 %]",
                              "test IBS", "val C-index"], table, align="llrrrrr"), ""]
    half = [(r["diff_interval"][1] - r["diff_interval"][0]) / 2 for r in rows if "diff_interval" in r]
    resolved = [r["method"] for r in rows if "diff_interval" in r and (r["diff_interval"][0] > 0 or r["diff_interval"][1] < 0)]
    lines += [
        f"What it can show: whether a model ranks {sum(events)} test events over {len(events)} splits better than chance "
        "(the C-index interval against 0.5), and differences to the ridge Cox model larger than the half-width of their "
        f"interval, here {min(half):.3f} to {max(half):.3f} C-index; resolved differences: "
        f"{', '.join(resolved) if resolved else 'none'}.", "",
        "What it cannot show: a ranking of the fusion strategies, whose differences are smaller than those half-widths; "
        f"a test set holds {_span(events)} events, so one split's C-index moves by several points with a "
        "handful of patients. The IBS of the ridge Cox model is not tuned (its penalty is chosen on the C-index).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
