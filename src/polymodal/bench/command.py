"""`polymodal bench`: strategies x datasets x seeds, in parallel processes, resumable, with tables.

Writes ``OUT.md`` / ``OUT.json`` (the results format of docs/benchmarks.md, plus one record per run with
its per-sample test correctness, so that ``polymodal bench --recompute OUT.json`` rebuilds every table
without the run folders), ``OUT.csv`` (one line per run) and ``OUT.png`` (bar chart of fused and
per-modality test accuracy, mean +- std), and in the Markdown the difference of every method to
``joint`` with a crossed paired bootstrap 95 % interval (``polymodal.bench.compare``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.bench.runner import Job, run_jobs
from polymodal.bench.tables import encode_correct, write_tables
from polymodal.report.metrics import load_predictions, macro_f1

MISSING_AT = ("train", "test", "both")


@dataclass(frozen=True)
class Setting:
    """One experimental condition shared by every strategy (e.g. a missing rate at test time)."""

    label: str  # "" for the default condition; part of run names
    overrides: tuple[str, ...] = ()
    missing_rate: float | None = None
    missing_at: str | None = None
    variant: str | None = None  # ablation name (the row's ``variant`` key)


def variant_settings(specs: Sequence[str]) -> list[Setting]:
    """``NAME:key=value,key=value`` -> one Setting per ablation variant (overrides for every strategy).

    ``NAME:`` with no overrides is the default configuration under a name (e.g. ``hgm+entropy:``).
    """
    out = []
    for spec in specs:
        name, sep, rest = spec.partition(":")
        if not sep or not name or not name.replace("-", "").replace("+", "").replace("_", "").isalnum():
            raise ValueError(f"--variant {spec!r}: expected NAME:key=value[,key=value...] with a plain NAME, e.g. no-hgm:strategy.args.hgm=false")
        ov = tuple(x for x in rest.split(",") if x)
        bad = [x for x in ov if "=" not in x]
        if bad:
            raise ValueError(f"--variant {spec!r}: {bad} are not key=value overrides")
        out.append(Setting(f"v-{name}", ov, variant=name))
    if len({s.variant for s in out}) != len(out):
        raise ValueError("--variant names must be unique")
    return out


def missing_settings(rates: Sequence[float], where: Sequence[str], seed: int = 0) -> list[Setting]:
    """docs/benchmarks.md's missing-modality protocol: rate r of (sample, modality) slots missing, masks from a
    fixed seed, at train (train split only; selection on a complete val), at test (test split only) or
    both (train, val and test)."""
    out = []
    for at in where:
        if at not in MISSING_AT:
            raise ValueError(f"--missing-at {at!r}; expected some of {', '.join(MISSING_AT)}")
        splits = {"train": ("train",), "test": ("test",), "both": ("train", "val", "test")}[at]
        for r in rates:
            if not 0 < r < 1:
                raise ValueError(f"--missing-rate {r}: expected a fraction in (0, 1)")
            ov = tuple(f"data.split_options.{sp}.{k}={v}" for sp in splits for k, v in (("missing_rate", r), ("missing_seed", seed)))
            out.append(Setting(f"miss{r:g}-{at}", ov, r, at))
    return out


def _run_name(strategy: str, dataset: str, seed: int, setting: Setting | None = None) -> str:
    tail = f"-{setting.label}" if setting is not None and setting.label else ""
    return f"{dataset}-{strategy}{tail}-seed{seed}"


def _realised(run_dir: Path) -> dict[str, float]:
    prov = json.loads((run_dir / "provenance.json").read_text()).get("datasets", {})
    return {split: float(d["realised_missing_rate"]) for split, d in prov.items() if isinstance(d, dict) and "realised_missing_rate" in d}


def _with_seed(items: Sequence[str], seed: int) -> list[str]:
    return [x.replace("{seed}", str(seed)) for x in items]


def _derive(base: Path, out: Path, overrides: list[str]) -> dict[str, Any]:
    from polymodal.engine import reevaluate_run

    return reevaluate_run(base, out, overrides, "test")


def _correct(run_dir: Path) -> np.ndarray | None:
    path = run_dir / "predictions_test.npz"
    if not path.is_file():
        return None
    p = load_predictions(path)
    order = np.argsort(p.index) if p.index is not None else np.arange(len(p.y_true))
    return (p.probs.argmax(axis=1) == p.y_true)[order]


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
    """
    from polymodal.config import load_config

    per_strategy: dict[str, list[str]] = {s: [] for s in strategies}
    for item in strategy_args:
        name, sep, rest = item.partition(".")
        if not sep or "=" not in rest or name not in per_strategy:
            raise ValueError(
                f"--strategy-args {item!r}: expected NAME.KEY=VALUE with NAME one of the benchmarked strategies "
                f"({', '.join(strategies)}), e.g. gblending.probe_epochs=2"
            )
        per_strategy[name].append(f"strategy.args.{rest}")

    out = Path(out)
    if out.suffix:
        raise ValueError(f"--out {out} must be a path without extension (NAME.md, NAME.json, ... are written)")
    # validate the configuration of every combination before starting any run
    for s in strategies:
        for d in datasets:
            load_config(config, [*overrides, *_with_seed(per_strategy[s], seeds[0]), f"strategy.name={s}", f"data.dataset={d}"])
    runs = Path(runs_dir) if runs_dir is not None else Path("runs") / "bench" / out.name
    settings = list(settings) if settings else [Setting("")]
    jobs = [
        Job(
            _run_name(s, d, seed, st),
            (*overrides, *st.overrides, *_with_seed(per_strategy[s], seed), f"strategy.name={s}", f"data.dataset={d}", f"seed={seed}"),
            {"strategy": s, "dataset": d, "seed": seed, "setting": st},
        )
        for d in datasets
        for st in settings
        for s in strategies
        for seed in seeds
    ]
    # a condition that changes only the test data (missing at test) needs no training of its own: the
    # model trained without it (the "base" run, same name as a plain run) is evaluated under it
    derived = [j for j in jobs if j.tags["setting"].missing_at == "test"]
    trained = [j for j in jobs if j not in derived]
    bases = {}
    trained_names = {t.name for t in trained}
    for j in derived:
        name = _run_name(j.tags["strategy"], j.tags["dataset"], j.tags["seed"])
        if name not in bases and name not in trained_names:
            bases[name] = Job(name, tuple(o for o in j.overrides if o not in j.tags["setting"].overrides),
                              {**j.tags, "setting": Setting("")})
    results = run_jobs([*trained, *bases.values()], runs, config=config, processes=processes, log=log)
    for j in derived:
        base = _run_name(j.tags["strategy"], j.tags["dataset"], j.tags["seed"])
        if (runs / j.name / "results.json").is_file():
            results[j.name] = json.loads((runs / j.name / "results.json").read_text())
        elif base in results:
            try:
                results[j.name] = _derive(runs / base, runs / j.name, list(j.tags["setting"].overrides))
                log(f"{j.name}: evaluated {base} under {j.tags['setting'].label}")
            except Exception as e:  # noqa: BLE001 - report and go on with the other runs
                log(f"{j.name} FAILED: {type(e).__name__}: {e}")
    records: list[dict[str, Any]] = []
    realised: list[dict[str, Any]] = []
    for d, st, s in ((d, st, s) for d in datasets for st in settings for s in strategies):
        keys = {"variant": st.variant, "missing_rate": st.missing_rate, "missing_at": st.missing_at}
        done = [(j, results[j.name]) for j in jobs
                if j.tags["dataset"] == d and j.tags["strategy"] == s and j.tags["setting"] == st and j.name in results]
        if st.missing_rate is not None and done:
            per_run = [_realised(runs / j.name) for j, _ in done]
            realised.append({"method": s, "dataset": d, **keys,
                             **{split: float(np.mean([r[split] for r in per_run if split in r])) for split in ("train", "val", "test")}})
        records += [run_record(runs / j.name, r, s, d, j.tags["seed"], keys) for j, r in done]
        if s == "unimodal" and poe and done:
            records += [poe_record(runs / j.name, d, j.tags["seed"], keys) for j, _ in done]
    if not records:
        raise RuntimeError(f"no run finished; see the run folders under {runs}")
    protocol = (f"{', '.join(datasets)}; strategies {', '.join(strategies)}"
                f"{' (+ poe: the unimodal runs fused as a product of experts, temperatures fitted on val)' if poe and 'unimodal' in strategies else ''}; "
                f"{'config ' + str(config) if config else 'default config (bench profile)'}"
                f"{'; overrides ' + ' '.join(overrides) if overrides else ''}"
                f"{'; strategy args ' + ' '.join(strategy_args) if strategy_args else ''}; selection on val; test metrics; seeds {','.join(map(str, seeds))}"
                f"{'; missing at test: the model trained on complete data, evaluated under the mask' if derived else ''}")
    return write_tables(out, records, protocol=protocol, command=command or "polymodal bench", baseline=baseline,
                        realised=realised)


def run_record(run_dir: Path, result: dict[str, Any], method: str, dataset: str, seed: int,
               keys: dict[str, Any]) -> dict[str, Any]:
    """What one finished run contributes to a benchmark's tables (see ``polymodal.bench.tables``)."""
    rec: dict[str, Any] = {"method": method, "dataset": dataset, **{k: v for k, v in keys.items() if v is not None},
                           "seed": int(seed), "best_epoch": result.get("best_epoch"),
                           "sec_per_epoch": result.get("sec_per_epoch"), "params": result.get("params"),
                           "test": {k: v for k, v in result["test"].items() if k.endswith("_acc") or k in ("macro_f1", "n")}}
    correct = _correct(run_dir)
    if correct is not None:
        rec["test_correct"] = encode_correct(correct)
    return rec


def poe_record(unimodal_dir: Path, dataset: str, seed: int, keys: dict[str, Any]) -> dict[str, Any]:
    """The ``poe`` row of one seed: the unimodal run's per-modality models fused by the sum of their
    temperature-scaled log-probabilities (the product of experts), temperatures fitted on val."""
    from polymodal.bench.poe import product_of_experts

    val = load_predictions(unimodal_dir / "predictions_val.npz")
    test = load_predictions(unimodal_dir / "predictions_test.npz")
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


