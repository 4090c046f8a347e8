"""`polymodal bench`: strategies x datasets x seeds, in parallel processes, resumable, with tables.

Writes ``OUT.md`` / ``OUT.json`` (BENCHMARKS.md's results format), ``OUT.csv`` (one line per run) and
``OUT.png`` (bar chart of fused and per-modality test accuracy, mean +- std), and in the Markdown the
difference of every method to ``joint`` with a paired bootstrap 95 % interval over test samples and
seeds.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.bench.compare import paired_bootstrap
from polymodal.bench.results import ResultRow, write_results
from polymodal.bench.runner import Job, run_jobs
from polymodal.report.metrics import load_predictions

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
    """BENCHMARKS.md's missing-modality protocol: rate r of (sample, modality) slots missing, masks from a
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
    log=print,
) -> dict[str, Path]:
    """Run (or reuse) every (strategy, dataset, seed) and write the tables; returns the written paths.

    strategy_args: ``NAME.KEY=VALUE`` items that set ``strategy.args.KEY`` for strategy NAME's runs only
    (e.g. ``gblending.probe_epochs=2``); they are stated in the protocol line. ``{seed}`` in a value is
    replaced by the run's seed (e.g. UMT's teachers: the ``unimodal`` run of the same seed).
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
    rows: list[ResultRow] = []
    csv_rows: list[dict[str, Any]] = []
    diffs: list[dict[str, Any]] = []
    realised: list[dict[str, Any]] = []
    for d, st, s in ((d, st, s) for d in datasets for st in settings for s in strategies):
        keys = {"missing_rate": st.missing_rate, "missing_at": st.missing_at, "variant": st.variant}
        done = [(j, results[j.name]) for j in jobs
                if j.tags["dataset"] == d and j.tags["strategy"] == s and j.tags["setting"] == st and j.name in results]
        if not done:
            continue
        if st.missing_rate is not None:
            per_run = [_realised(runs / j.name) for j, _ in done]
            realised.append({"method": s, "dataset": d, **keys,
                             **{split: float(np.mean([r[split] for r in per_run if split in r])) for split in ("train", "val", "test")}})
        metrics = ["fused_acc", *sorted(k for k in done[0][1]["test"] if k.endswith("_acc") and k != "fused_acc"), "macro_f1"]
        for metric in metrics:
            vals = [r["test"].get(metric) for _, r in done]
            if vals and all(v is not None for v in vals):
                rows.append(ResultRow(s, d, metric, [float(v) for v in vals], **keys))
        rows.append(ResultRow(s, d, "sec_per_epoch", [float(r["sec_per_epoch"]) for _, r in done if r.get("sec_per_epoch") is not None], **keys))
        rows.append(ResultRow(s, d, "epoch", [float(r["best_epoch"]) for _, r in done], **keys))
        for j, r in done:
            csv_rows.append({"strategy": s, "dataset": d, "seed": j.tags["seed"], **keys, "best_epoch": r["best_epoch"],
                             **{f"test_{k}": v for k, v in r["test"].items()}, "sec_per_epoch": r.get("sec_per_epoch")})
        if s != baseline and baseline in strategies:
            pairs = [(_correct(runs / _run_name(s, d, seed, st)), _correct(runs / _run_name(baseline, d, seed, st))) for seed in seeds]
            pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
            if pairs:
                diff = paired_bootstrap([a for a, _ in pairs], [b for _, b in pairs])
                diffs.append({"method": s, "baseline": baseline, "dataset": d, **{k: v for k, v in keys.items() if v is not None},
                              "metric": "fused_acc", "mean": diff.mean, "ci95": [diff.low, diff.high],
                              "n_seeds": diff.n_seeds, "n_samples": diff.n_samples})
    if not rows:
        raise RuntimeError(f"no run finished; see the run folders under {runs}")
    notes = ""
    if diffs:
        lines = [f"Difference to `{baseline}` in fused test accuracy (points), paired bootstrap 95 % interval over test samples and seeds:", "",
                 "| method | dataset | condition | difference | 95 % interval |", "|---|---|---|---:|---|"]
        lines += [f"| {x['method']} | {x['dataset']} | {_condition(x)} | {100 * x['mean']:+.2f} | "
                  f"[{100 * x['ci95'][0]:+.2f}, {100 * x['ci95'][1]:+.2f}] |" for x in diffs]
        notes = "\n".join(lines)
    if realised:
        lines = ["", "", "Realised missing rates (fraction of (sample, modality) slots missing, mean over seeds):", "",
                 "| method | dataset | condition | train | val | test |", "|---|---|---|---:|---:|---:|"]
        lines += [f"| {x['method']} | {x['dataset']} | {_condition(x)} | {x['train']:.3f} | {x['val']:.3f} | {x['test']:.3f} |" for x in realised]
        notes += "\n".join(lines)
    protocol = (f"{', '.join(datasets)}; strategies {', '.join(strategies)}; "
                f"{'config ' + str(config) if config else 'default config (bench profile)'}"
                f"{'; overrides ' + ' '.join(overrides) if overrides else ''}"
                f"{'; strategy args ' + ' '.join(strategy_args) if strategy_args else ''}; selection on val; test metrics; seeds {','.join(map(str, seeds))}"
                f"{'; missing at test: the model trained on complete data, evaluated under the mask' if derived else ''}")
    json_path, md_path = write_results(out.name, rows, protocol=protocol, command=command or "polymodal bench", out_dir=out.parent,
                                       title=f"Benchmark {out.name}", notes=notes)
    doc = json.loads(json_path.read_text())
    doc["differences"] = diffs
    if realised:
        doc["realised_missing_rates"] = realised
    json_path.write_text(json.dumps(doc, indent=2) + "\n")
    csv_path = out.parent / f"{out.name}.csv"
    with open(csv_path, "w", newline="") as f:
        keys = sorted({k for r in csv_rows for k in r}, key=lambda k: (k not in ("strategy", "dataset", "seed"), k))
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(csv_rows)
    png_path = _bar_chart(rows, out.parent / f"{out.name}.png")
    return {"md": md_path, "json": json_path, "csv": csv_path, "png": png_path}


def _condition(x: dict[str, Any]) -> str:
    if x.get("missing_rate") is not None:
        return f"missing {x['missing_rate']:g} at {x['missing_at']}"
    return str(x["variant"]) if x.get("variant") else "-"


def _bar_chart(rows: Sequence[ResultRow], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    acc = [r for r in rows if r.metric.endswith("_acc")]
    groups = list(dict.fromkeys(f"{r.method}\n{r.dataset}" for r in acc))
    metrics = list(dict.fromkeys(r.metric for r in acc))
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(groups) * max(1, len(metrics)) / 2), 4))
    width = 0.8 / max(1, len(metrics))
    for i, metric in enumerate(metrics):
        xs, ys, es = [], [], []
        for g, group in enumerate(groups):
            r = next((r for r in acc if f"{r.method}\n{r.dataset}" == group and r.metric == metric), None)
            if r is not None:
                xs.append(g + i * width)
                ys.append(100 * r.mean)
                es.append(100 * r.std)
        ax.bar(xs, ys, width, yerr=es, capsize=3, label=metric)
    ax.set_xticks([g + width * (len(metrics) - 1) / 2 for g in range(len(groups))], groups, fontsize=8)
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
