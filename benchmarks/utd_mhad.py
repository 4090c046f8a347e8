"""UTD-MHAD beyond the strategy table: pairs of modalities, conditional independence, peak memory (docs/utd_mhad.md).

Reads the runs of ``polymodal bench --dataset utd-mhad --config configs/utd_mhad.yaml --runs-dir
runs/bench/utd_mhad`` (benchmarks/results/utd_mhad.md; the command is in its JSON) and adds:

1. **Pairs of modalities**: every trained ``joint`` and ``mla`` model evaluated on the test subjects with
   one modality absent from every sample (``data.split_options.test.absent=[m]``: the model's own
   missing-modality path, no retraining), and ``poe`` (the ``unimodal`` run's calibrated experts, temperatures
   fitted on validation) over each pair. Each pair is compared with the same model on all three modalities
   (crossed paired bootstrap over the shared test samples and the seeds).
2. **Are the modalities conditionally independent given the action?** From the ``unimodal`` runs' separately
   trained experts: for each pair (a, b) the observed rate of test samples both get wrong, against the rate
   conditional independence predicts, sum_y p(y) P(a wrong | y) P(b wrong | y). A ratio near 1 is what
   AV-digits (pairs drawn at random within a class) gives by construction; above 1, errors share causes
   beyond the label (the same person, the same trial), which a product of experts cannot know.
3. ``--memory``: peak resident memory (ru_maxrss) of preparing the cache from the release files into an
   empty cache folder, and of one training epoch per strategy, each in a fresh process.

    python benchmarks/utd_mhad.py [--runs runs/bench/utd_mhad] [--seeds 0,1,2,3,4] [--memory]
    python benchmarks/utd_mhad.py --recompute      # the Markdown table again from the JSON alone

Writes benchmarks/results/utd_mhad_analysis.md and .json.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
OUT = RESULTS / "utd_mhad_analysis"
CONFIG = ROOT / "configs" / "utd_mhad.yaml"
MODALITIES = ("depth", "skeleton", "inertial")
TRAINED = ("joint", "mla")
STRATEGIES = ("unimodal", "joint", "mla", "ogm_ge", "mmpareto", "qmf", "pmr", "agm", "gblending")


def _correct(pred: Any) -> np.ndarray:
    order = np.argsort(pred.index) if pred.index is not None else np.arange(len(pred.y_true))
    return (np.asarray(pred.probs).argmax(1) == pred.y_true)[order]


def _predictions(run: Path, split: str) -> Any:
    from polymodal.engine.evaluate import load_predictions
    from polymodal.engine.runfolder import predictions_file

    return load_predictions(predictions_file(run, split))


def _only(pred: Any, subset: tuple[str, ...]) -> Any:
    """The predictions with the per-modality probabilities of ``subset`` only (the experts a poe fuses)."""
    return dataclasses.replace(pred, per_modality={m: pred.per_modality[m] for m in subset})


def pair_correctness(runs: Path, seeds: list[int]) -> dict[tuple[str, str], dict[int, np.ndarray]]:
    """(method, modalities label) -> seed -> (N,) test correctness, for every trained model and pair."""
    from polymodal.bench.poe import product_of_experts
    from polymodal.engine.evaluate import reevaluate_run

    out: dict[tuple[str, str], dict[int, np.ndarray]] = {}
    for method, seed in itertools.product(TRAINED, seeds):
        base = runs / f"utd-mhad-{method}-seed{seed}"
        if not (base / "results.json").is_file():
            raise FileNotFoundError(f"{base} is not a finished run; run the bench command of utd_mhad.json first")
        out.setdefault((method, "+".join(MODALITIES)), {})[seed] = _correct(_predictions(base, "test"))
        for gone in MODALITIES:
            derived = runs / f"utd-mhad-{method}-without-{gone}-seed{seed}"
            if not (derived / "results.json").is_file():
                reevaluate_run(base, derived, [f"data.split_options.test.absent=[{gone}]"], "test")
            label = "+".join(m for m in MODALITIES if m != gone)
            out.setdefault((method, label), {})[seed] = _correct(_predictions(derived, "test"))
    for seed in seeds:
        base = runs / f"utd-mhad-unimodal-seed{seed}"
        val, test = _predictions(base, "val"), _predictions(base, "test")
        for k in (1, 2, 3):
            for subset in itertools.combinations(MODALITIES, k):
                fused, _ = product_of_experts(_only(val, subset), _only(test, subset))
                order = np.argsort(test.index) if test.index is not None else np.arange(len(test.y_true))
                out.setdefault(("poe", "+".join(subset)), {})[seed] = (fused.argmax(1) == test.y_true)[order]
    return out


def independence(runs: Path, seeds: list[int]) -> list[dict[str, Any]]:
    """Observed vs conditionally independent joint error rate of every pair of unimodal experts, per seed."""
    rows = []
    for a, b in itertools.combinations(MODALITIES, 2):
        observed, expected = [], []
        for seed in seeds:
            test = _predictions(runs / f"utd-mhad-unimodal-seed{seed}", "test")
            y = np.asarray(test.y_true)
            wa = test.per_modality[a].argmax(1) != y
            wb = test.per_modality[b].argmax(1) != y
            observed.append(float((wa & wb).mean()))
            expected.append(float(sum((y == c).mean() * wa[y == c].mean() * wb[y == c].mean() for c in np.unique(y))))
        rows.append({"pair": f"{a}+{b}", "observed": observed, "expected": expected,
                     "ratio": [o / e if e > 0 else None for o, e in zip(observed, expected, strict=True)]})
    return rows


def mla_against(bench_json: Path, others: tuple[str, ...] = ("joint", "unimodal", "poe")) -> list[dict[str, Any]]:
    """MLA - X in fused test accuracy (crossed paired bootstrap) for each X, from the strategy table's JSON alone."""
    from polymodal.bench.compare import paired_by_seed
    from polymodal.bench.tables import decode_correct

    runs = json.loads(bench_json.read_text())["runs"]
    by = {}
    for r in runs:
        if r.get("dataset") == "utd-mhad" and "test_correct" in r and not r.get("missing_rate"):
            by.setdefault(r["method"], {})[int(r["seed"])] = decode_correct(r["test_correct"])
    if "mla" not in by:
        raise ValueError(f"{bench_json} holds no mla run of utd-mhad")
    return [{"method": "mla", "baseline": x, **paired_by_seed(by["mla"], by[x])} for x in others if x in by]


def _peak_rss(code: str) -> float:
    """Peak resident memory (MB) of a fresh Python process running ``code``."""
    wrapped = code + "\nimport resource; print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    done = subprocess.run([sys.executable, "-c", wrapped], capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"memory probe failed ({done.returncode}): {done.stderr[-2000:]}")
    line = [x for x in done.stdout.splitlines() if x.startswith("PEAK ")][-1]
    return int(line.split()[1]) / 1024.0  # Linux reports kB


def memory(strategies: list[str]) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        prep = (f"import os; os.environ['POLYMODAL_CACHE'] = {cache!r}\n"
                "from polymodal.data.datasets.utd_mhad import release_root\n"
                "from polymodal.data.datasets.utd_mhad.features import Preprocessing, prepared_cache\n"
                "prepared_cache(release_root(None), Preprocessing())")
        rows.append({"method": "prepare", "metric": "peak_rss_mb", "value": round(_peak_rss(prep), 1)})
    for s in strategies:
        with tempfile.TemporaryDirectory() as out:
            code = ("import torch; torch.set_num_threads(1)\n"
                    "from polymodal.config import load_config\nfrom polymodal.engine.loop import train\n"
                    f"train(load_config({str(CONFIG)!r}, ['strategy.name={s}', 'trainer.max_epochs=1', "
                    f"'trainer.progress=false', 'out_dir={out}', 'name=m']))")
            rows.append({"method": s, "metric": "peak_rss_mb", "value": round(_peak_rss(code), 1)})
        print(f"{s}: {rows[-1]['value']} MB", flush=True)
    return rows


def build(runs: Path, seeds: list[int], with_memory: bool, command: str) -> dict[str, Any]:
    from polymodal.bench.compare import paired_by_seed
    from polymodal.bench.tables import encode_correct

    pairs = pair_correctness(runs, seeds)
    rows: list[dict[str, Any]] = []
    full = "+".join(MODALITIES)
    for (method, label), per_seed in sorted(pairs.items()):
        values = [float(per_seed[s].mean()) for s in seeds]
        row = {"method": method, "dataset": "utd-mhad", "modalities": label, "metric": "fused_acc",
               "mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
               "n": len(values), "values": values, "test_correct": {str(s): encode_correct(per_seed[s]) for s in seeds}}
        if label != full:
            row["vs_all_three"] = paired_by_seed(per_seed, pairs[(method, full)])
        rows.append(row)
    result = {"protocol": ("utd-mhad cross-subject (train subjects 1, 3, 5; validation 7; test 2, 4, 6, 8), configs/utd_mhad.yaml; "
                           "pairs: the trained joint / mla models with one modality absent from every test sample "
                           "(presence mask), poe: the unimodal run's experts fused over the pair (temperatures fitted on "
                           f"val); selection on val; seeds {','.join(map(str, seeds))}"),
              "command": command, "seeds": seeds, "rows": rows, "independence": independence(runs, seeds),
              "mla_against": mla_against(RESULTS / "utd_mhad.json")}
    if with_memory:
        result["memory"] = memory(list(STRATEGIES))
    elif OUT.with_suffix(".json").is_file():
        result["memory"] = json.loads(OUT.with_suffix(".json").read_text()).get("memory", [])
    return result


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def render(result: dict[str, Any]) -> str:
    lines = ["# UTD-MHAD: pairs of modalities, conditional independence, memory", "",
             f"Protocol: {result['protocol']}", "", f"Command: `{result['command']}`", "",
             "## Subsets of modalities (test accuracy, %, mean +- std over seeds)", "",
             "| method | modalities | fused_acc | subset - all three (points) [95 % CI] |", "|---|---|---:|---:|"]
    for row in sorted(result["rows"], key=lambda r: (r["method"], -r["modalities"].count("+"), r["modalities"])):
        d = row.get("vs_all_three")
        diff = "-" if d is None else f"{100 * d['mean']:+.1f} [{100 * d['ci95'][0]:+.1f}, {100 * d['ci95'][1]:+.1f}]"
        lines.append(f"| {row['method']} | {row['modalities']} | {_pct(row['mean'])} +- {_pct(row['std'])} | {diff} |")
    if result.get("mla_against"):
        lines += ["", "## MLA against joint, unimodal and poe (from utd_mhad.json; fused test accuracy, points)", "",
                  "| comparison | difference | 95 % interval | seeds |", "|---|---:|---|---:|"]
        lines += [f"| mla - {d['baseline']} | {100 * d['mean']:+.1f} | [{100 * d['ci95'][0]:+.1f}, {100 * d['ci95'][1]:+.1f}] | "
                  f"{d['n_seeds']} |" for d in result["mla_against"]]
    lines += ["", "## Conditional independence of the unimodal experts' errors (test, mean +- std over seeds)", "",
              "Observed: share of test samples both experts get wrong. Expected under conditional independence given the "
              "action: sum_y p(y) P(a wrong | y) P(b wrong | y). Ratio = observed / expected (1 = independent errors).", "",
              "| pair | observed both wrong, % | expected if independent, % | ratio |", "|---|---:|---:|---:|"]
    def sd(v: list[float]) -> float:
        return statistics.stdev(v) if len(v) > 1 else 0.0

    for row in result["independence"]:
        ratios = [r for r in row["ratio"] if r is not None]
        lines.append(f"| {row['pair']} | {_pct(statistics.fmean(row['observed']))} +- {_pct(sd(row['observed']))} | "
                     f"{_pct(statistics.fmean(row['expected']))} +- {_pct(sd(row['expected']))} | "
                     f"{statistics.fmean(ratios):.2f} +- {sd(ratios):.2f} |")
    if result.get("memory"):
        lines += ["", "## Peak resident memory (one fresh process each; MB)", "",
                  "`prepare`: building the cache from the 861 x 3 release files into an empty cache folder. Each "
                  "strategy: one training epoch of configs/utd_mhad.yaml, 1 thread, evaluation included.", "",
                  "| what | peak RSS, MB |", "|---|---:|"]
        lines += [f"| {r['method']} | {r['value']:.0f} |" for r in result["memory"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=Path, default=ROOT / "runs" / "bench" / "utd_mhad")
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--memory", action="store_true", help="also measure peak memory (prepare + one epoch per strategy)")
    p.add_argument("--recompute", action="store_true", help="rewrite the Markdown from the JSON alone")
    ns = p.parse_args()
    if ns.recompute:
        result = json.loads(OUT.with_suffix(".json").read_text())
    else:
        seeds = [int(s) for s in ns.seeds.split(",")]
        command = "python benchmarks/utd_mhad.py " + " ".join(sys.argv[1:])
        result = build(ns.runs, seeds, ns.memory, command.strip())
        OUT.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    OUT.with_suffix(".md").write_text(render(result))
    print(OUT.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
