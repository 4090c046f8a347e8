"""`polymodal bench`: strategies x datasets x seeds, in parallel processes, resumable, with tables.

:func:`run_bench` plans the runs (``polymodal.bench.plan``), runs them (``polymodal.bench.runner``),
collects one record per finished run, and hands the records to ``polymodal.bench.tables``, which
aggregates them, computes the paired differences and writes the files.

Writes ``OUT.md`` / ``OUT.json`` (the results format of docs/benchmarks.md, plus one record per run with
its per-sample test correctness, so that ``polymodal bench --recompute OUT.json`` rebuilds every table
without the run folders), ``OUT.csv`` (one line per run) and ``OUT.png`` (bar chart of fused and
per-modality test accuracy, mean +- std), and in the Markdown the difference of every method to
``joint`` with a crossed paired bootstrap 95 % interval (``polymodal.bench.compare``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.bench.plan import (
    MISSING_AT,
    BenchPlan,
    Setting,
    missing_settings,
    plan_bench,
    variant_settings,
)
from polymodal.bench.runner import run_jobs
from polymodal.bench.tables import VARIANT_BASELINE, encode_correct, write_tables
from polymodal.engine.results import read_provenance, read_results
from polymodal.engine.runfolder import predictions_file
from polymodal.report.metrics import load_predictions, macro_f1
from polymodal.tasks import DEFAULT_TASK, SINGLE_LABEL, get_task


def _realised(run_dir: Path) -> dict[str, float]:
    prov = (read_provenance(run_dir) or {}).get("datasets", {})
    return {split: float(d["realised_missing_rate"]) for split, d in prov.items() if isinstance(d, dict) and "realised_missing_rate" in d}


def _derive(base: Path, out: Path, overrides: list[str]) -> dict[str, Any]:
    from polymodal.engine import reevaluate_run

    return reevaluate_run(base, out, overrides, "test")


def test_scores(run_dir: str | Path) -> np.ndarray | None:
    """The task's per-sample scores of the run's best model on the test split, in dataset order
    (:meth:`polymodal.tasks.Task.sample_scores`: booleans for per-sample correctness); None without a
    predictions file or for a task without per-sample scores. What the crossed bootstrap pairs across seeds
    and methods."""
    path = predictions_file(run_dir, "test")
    if not path.is_file():
        return None
    p = load_predictions(path)
    return get_task(p.task).sample_scores(p)


def test_correct(run_dir: str | Path) -> np.ndarray | None:
    """Whether the run's best model got each test sample right, in dataset order (None without a predictions
    file, or for a task whose per-sample scores are not right / wrong)."""
    scores = test_scores(run_dir)
    return scores if scores is not None and scores.dtype == bool else None


def check_baseline(baseline: str | None, strategies: str, settings: Sequence[Setting] | None) -> str:
    """The ``--baseline`` of ``polymodal bench`` checked against what is benchmarked (default ``joint``).

    ``variant:NAME`` compares every variant with variant NAME of the same strategy and dataset."""
    if baseline is None:
        return "joint"
    if baseline.startswith(VARIANT_BASELINE):
        name = baseline[len(VARIANT_BASELINE):]
        labels = [s.variant for s in settings or () if s.variant]
        if name not in labels:
            raise ValueError(f"--baseline {baseline}: no --variant is named {name!r}; the variants are {labels or 'none'}")
        return baseline
    names = strategies.split(",")
    if baseline not in names:
        raise ValueError(f"--baseline {baseline}: not one of --strategies {names}; give one of them or variant:NAME")
    return baseline


def run_bench(
    strategies: Sequence[str],
    datasets: Sequence[str],
    seeds: Sequence[int],
    out: str | Path,
    *,
    config: str | None = None,
    overrides: Sequence[str] = (),
    processes: int | None = None,
    runs_dir: str | Path | None = None,
    command: str = "",
    baseline: str = "joint",
    settings: Sequence[Setting] | None = None,
    strategy_args: Sequence[str] = (),
    poe: bool = True,
    log=print,
) -> dict[str, Path]:
    """Run (or reuse) every (strategy, dataset, seed) and write the tables; returns the written paths.

    strategy_args: ``NAME.KEY=VALUE`` items that set ``strategy.args.KEY`` for strategy NAME's runs only
    (e.g. ``gblending.probe_epochs=2``); they are stated in the protocol line. ``{seed}`` in a value is
    replaced by the run's seed (e.g. UMT's teachers: the ``unimodal`` run of the same seed).
    poe: when ``unimodal`` is benchmarked, add the ``poe`` rows (its per-modality models fused as a
    calibrated product of experts; no training of its own): the ceiling of conditionally independent
    modalities (docs/benchmarks.md).

    The steps, each a function of its own: plan the runs (:func:`polymodal.bench.plan.plan_bench`), run
    them (:func:`run_planned`), collect one record per finished run (:func:`collect_records`), then
    aggregate, compare with the baseline (paired bootstrap) and write (``polymodal.bench.tables``).
    """
    plan = plan_bench(strategies, datasets, seeds, out, config=config, overrides=overrides, runs_dir=runs_dir,
                      settings=settings, strategy_args=strategy_args)
    results = run_planned(plan, processes=processes, log=log)
    records, realised = collect_records(plan, results, poe=poe)
    if not records:
        raise RuntimeError(f"no run finished; see the run folders under {plan.runs}")
    return write_tables(plan.out, records, protocol=protocol_line(plan, poe=poe), command=command or "polymodal bench",
                        baseline=baseline, realised=realised)


def run_planned(
    plan: BenchPlan, *, processes: int | None = None, log: Callable[[str], None] = print
) -> dict[str, dict[str, Any]]:
    """Run (or reuse) the plan's runs; then evaluate each derived job from its base run's model.

    Returns run name -> its ``results.json``, for the runs that finished (a failed derivation is logged
    and left out).
    """
    results = run_jobs(plan.to_run(), plan.runs, config=plan.config, processes=processes, log=log)
    runs = plan.runs
    for j in plan.derived:
        base = plan.base_name(j)
        done = read_results(runs / j.name)
        if done is not None:
            results[j.name] = done
        elif base in results:
            try:
                results[j.name] = _derive(runs / base, runs / j.name, list(j.tags["setting"].overrides))
                log(f"{j.name}: evaluated {base} under {j.tags['setting'].label}")
            except Exception as e:  # noqa: BLE001 - report and go on with the other runs
                log(f"{j.name} FAILED: {type(e).__name__}: {e}")
    return results


def collect_records(
    plan: BenchPlan, results: dict[str, dict[str, Any]], *, poe: bool = True
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(run records, realised missing rates) of the finished runs, in the order of the tables.

    A run record is what ``polymodal.bench.tables`` aggregates (:func:`run_record`); with ``poe`` each
    finished ``unimodal`` run adds its product-of-experts record (:func:`poe_record`). The realised
    missing rates are the means over a condition's runs of each split's rate (missing-rate settings only).
    """
    runs = plan.runs
    records: list[dict[str, Any]] = []
    realised: list[dict[str, Any]] = []
    for d, st, s in ((d, st, s) for d in plan.datasets for st in plan.settings for s in plan.strategies):
        keys = {"variant": st.variant, "missing_rate": st.missing_rate, "missing_at": st.missing_at}
        done = [(j, results[j.name]) for j in plan.jobs
                if j.tags["dataset"] == d and j.tags["strategy"] == s and j.tags["setting"] == st and j.name in results]
        if st.missing_rate is not None and done:
            per_run = [_realised(runs / j.name) for j, _ in done]
            realised.append({"method": s, "dataset": d, **keys,
                             **{split: float(np.mean([r[split] for r in per_run if split in r])) for split in ("train", "val", "test")}})
        records += [run_record(runs / j.name, r, s, d, j.tags["seed"], keys) for j, r in done]
        if s == "unimodal" and poe and done and SINGLE_LABEL in get_task(done[0][1].get("task") or DEFAULT_TASK).capabilities:
            records += [poe_record(runs / j.name, d, j.tags["seed"], keys) for j, _ in done]
    return records, realised


def protocol_line(plan: BenchPlan, *, poe: bool = True) -> str:
    """The ``protocol`` of the results files: datasets, strategies, configuration, selection, seeds."""
    strategies, datasets, seeds = plan.strategies, plan.datasets, plan.seeds
    config, overrides, strategy_args = plan.config, plan.overrides, plan.strategy_args
    return (f"{', '.join(datasets)}; strategies {', '.join(strategies)}"
            f"{' (+ poe: the unimodal runs fused as a product of experts, temperatures fitted on val)' if poe and 'unimodal' in strategies else ''}; "
            f"{'config ' + str(config) if config else 'default config (bench profile)'}"
            f"{'; overrides ' + ' '.join(overrides) if overrides else ''}"
            f"{'; strategy args ' + ' '.join(strategy_args) if strategy_args else ''}; selection on val; test metrics; seeds {','.join(map(str, seeds))}"
            f"{'; missing at test: the model trained on complete data, evaluated under the mask' if plan.derived else ''}")


def run_record(run_dir: Path, result: dict[str, Any], method: str, dataset: str, seed: int,
               keys: dict[str, Any]) -> dict[str, Any]:
    """What one finished run contributes to a benchmark's tables (see ``polymodal.bench.tables``)."""
    rec: dict[str, Any] = {"method": method, "dataset": dataset, **{k: v for k, v in keys.items() if v is not None},
                           "seed": int(seed), "best_epoch": result.get("best_epoch"),
                           "sec_per_epoch": result.get("sec_per_epoch"), "params": result.get("params"),
                           "test": {}}
    task = get_task(result.get("task") or DEFAULT_TASK)
    keep = {*task.bench_metrics(result["test"]), task.bench_score, "n"}
    rec["test"] = {k: v for k, v in result["test"].items() if k in keep}
    if task.name != DEFAULT_TASK:  # a record that names no task is the default task's (older files)
        rec["task"] = task.name
    scores = test_scores(run_dir)
    if scores is not None and scores.dtype == bool:
        rec["test_correct"] = encode_correct(scores)
    elif scores is not None:
        rec["test_scores"] = [round(float(s), 6) for s in scores]
    return rec


def poe_record(unimodal_dir: Path, dataset: str, seed: int, keys: dict[str, Any]) -> dict[str, Any]:
    """The ``poe`` row of one seed: the unimodal run's per-modality models fused by the sum of their
    temperature-scaled log-probabilities (the product of experts), temperatures fitted on val."""
    from polymodal.bench.poe import product_of_experts

    val = load_predictions(predictions_file(unimodal_dir, "val"))
    test = load_predictions(predictions_file(unimodal_dir, "test"))
    fused, temps = product_of_experts(val, test)
    order = np.argsort(test.index) if test.index is not None else np.arange(len(test.y_true))
    correct = (fused.argmax(axis=1) == test.y_true)[order]
    num_classes = fused.shape[1]
    rec: dict[str, Any] = {"method": "poe", "dataset": dataset, **{k: v for k, v in keys.items() if v is not None},
                           "seed": int(seed), "derived_from": unimodal_dir.name,
                           "temperatures": {m: float(t) for m, t in temps.items()},
                           "test": {"fused_acc": float(correct.mean()),
                                    "macro_f1": macro_f1(test.y_true, fused.argmax(axis=1), num_classes),
                                    "n": len(correct)},
                           "test_correct": encode_correct(correct)}
    return rec


__all__ = [  # the settings builders and Setting are re-exported: the CLI builds its settings from here
    "MISSING_AT",
    "Setting",
    "collect_records",
    "missing_settings",
    "poe_record",
    "protocol_line",
    "run_bench",
    "run_planned",
    "run_record",
    "variant_settings",
]
