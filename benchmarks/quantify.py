"""Quantification of trained runs (docs/quantify.md): which modality each method relies on, how the modalities
interact, how robust the model is, on one dataset given as an argument.

    python benchmarks/quantify.py --dataset avdigits-hard                 # joint and MLA, seeds 0,1,2
    python benchmarks/quantify.py --dataset avdigits-sum                  # the best fusion (TFN) and the program
    python benchmarks/quantify.py --dataset utd-mhad --runs-dir runs/bench/utd_mhad --no-train
                                          # joint and MLA: the runs of benchmarks/results/utd_mhad.md, not retrained
    python benchmarks/quantify.py --cost                                  # time of one quantification
    python benchmarks/quantify.py --recompute benchmarks/results/quantify/avdigits-hard.json

Methods on AV-digits (configs/avdigits_joint.yaml or configs/avdigits_mla.yaml, AdamW, selection on val):
    joint     late fusion (sum of per-modality heads), joint training
    mla       MLA (configs/avdigits_mla.yaml: shared head, alternating updates, the calibrated rule at test,
              MLA's default: per-modality temperatures fitted on validation, docs/strategies.md)
    tfn       joint training of the tensor fusion network, the best fusion on avdigits-sum (fusions.md)
    program   the program fusion with the known rule sum_mod10, trained from the label alone (cbm,
              concept_weight 0, balance 1, 20 epochs without early stopping: docs/reasoning.md)
On utd-mhad both methods use configs/utd_mhad.yaml, the recipe of `polymodal bench --dataset utd-mhad --config
configs/utd_mhad.yaml` (benchmarks/results/utd_mhad.md): its encoders for depth, skeleton and inertial, and for MLA
the rule that config names (entropy, the rule of the committed UTD-MHAD tables). Runs are named
<dataset>-<method>-seed<seed>, as `polymodal bench` names them, so `--runs-dir` can point at that benchmark's runs
and `--no-train` quantifies them as they are.

Every run is trained once (resumable: finished runs are kept; `--no-train`: only runs already there), then
quantified on its test split (`polymodal.quantify`, default settings, one thread); its report (quantify.md and
figures) is left in the run folder and the first seed's is copied to OUT/<dataset>-<method>/. OUT/<dataset>.md
and its JSON twin hold mean +- std (ddof = 1) over seeds of each number. The cost mode trains a three-modality
run (avdigits-3view, 1,000 training pairs, 1 epoch) and times the quantification of its 1,000-sample training
split with 5-level robustness curves (wall-clock seconds per section; the machine's load is recorded), with one
torch thread by default (`--threads`): one of the two cores, so the time bounds that of both, and on a machine
other jobs share, torch's intra-op threads do not wait on each other for a core.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
CONFIGS = HERE.parent / "configs"
LABEL_ONLY = ("strategy.name=cbm", "strategy.args.concept_weight=0", "strategy.args.balance=1.0",
              "trainer.patience=null")
METHODS: dict[str, tuple[str, tuple[str, ...]]] = {  # name -> (config file, overrides)
    "joint": ("avdigits_joint.yaml", ("strategy.name=joint", "model.fusion=late")),
    "mla": ("avdigits_mla.yaml", ()),
    "tfn": ("avdigits_joint.yaml", ("strategy.name=joint", "model.fusion=tfn")),
    "program": ("avdigits_joint.yaml", ("model.fusion=program", "model.fusion_args.rule=sum_mod10", *LABEL_ONLY)),
}
DATASET_METHODS: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {  # dataset -> its own recipe per method
    "utd-mhad": {"joint": ("utd_mhad.yaml", ("strategy.name=joint", "strategy.args={}")),
                 "mla": ("utd_mhad.yaml", ("strategy.name=mla",))},
}
DEFAULT_METHODS = {"avdigits-sum": "tfn,program"}


def methods_of(dataset: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """The (config file, overrides) of each method on ``dataset``."""
    return {**METHODS, **DATASET_METHODS.get(dataset, {})}


PROTOCOL = ("{dataset}; {configs}; selection on val; quantified on the test split with "
            "polymodal.quantify defaults (PID: k-means k=10 per modality; EMAP: 256 partners; perceptual score: "
            "5 permutations; robustness: 5 levels); seeds {seeds}")


def _row(method: str, dataset: str, metric: str, values: list[float]) -> dict[str, Any]:
    v = [float(x) for x in values]
    return {"method": method, "dataset": dataset, "metric": metric, "mean": float(np.mean(v)),
            "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, "n": len(v), "values": v}


def numbers(q: dict[str, Any]) -> dict[str, float]:
    """The benchmark's numbers of one run's quantify.json (metric -> value)."""
    out: dict[str, float] = {}
    mods = q["modalities"]
    full = "+".join(mods)
    out["fused_acc"] = q["subsets"][full]["fused_acc"]
    for m in mods:
        out[f"{m}_acc"] = q["subsets"][m]["fused_acc"]
        out[f"shapley_{m}"] = q["shapley"]["phi"][m]
        if q.get("deciding"):
            out[f"decides_{m}"] = q["deciding"][m]
        if q.get("perceptual"):
            out[f"perceptual_{m}"] = q["perceptual"]["drop"][m]
        if m in q.get("noise", {}):
            out[f"noise_relative_{m}"] = q["noise"][m]["relative"]
            if q["noise"][m]["effective"] is not None:
                out[f"noise_effective_{m}"] = q["noise"][m]["effective"]
            out[f"missing_relative_{m}"] = q["missing"][m]["relative"]
        ratios = [r for r in (q.get("imbalance") or {}).get("grad_ratio", {}).get(m, []) if r is not None]
        if ratios:
            out[f"grad_ratio_{m}"] = float(np.mean(ratios))
        accs = [(e, a) for e, a in zip(q["imbalance"]["epochs"], q["imbalance"]["unimodal"].get(m, []), strict=False)
                if a is not None] if q.get("imbalance") else []
        if accs:
            best = max(a for _, a in accs)
            out[f"epoch_to_90pct_best_{m}"] = float(next(e for e, a in accs if a >= 0.9 * best))
    if q.get("deciding") and "none" in q["deciding"]:  # samples no modality decides (a tie for the largest value)
        out["decides_none"] = q["deciding"]["none"]
    for pair, d in q.get("pid", {}).items():
        a, b = pair.split("+")
        prefix = "pid_" if len(mods) == 2 else f"pid_{pair}_"
        out[f"{prefix}redundancy"] = d["redundancy"]
        out[f"{prefix}unique_{a}"] = d["unique1"]
        out[f"{prefix}unique_{b}"] = d["unique2"]
        out[f"{prefix}synergy"] = d["synergy"]
        if "synergy_floor" in d:
            out[f"{prefix}synergy_floor"] = d["synergy_floor"]
        out[f"{prefix}mi_joint"] = d["mi_joint"]
    if q.get("emap"):
        out["emap_acc"] = q["emap"]["projection"]["fused_acc"]
        out["emap_gap"] = q["emap"]["gap"]
    out["quantify_seconds"] = q["seconds"]["total"]
    return out


def render(doc: dict[str, Any]) -> str:
    """The Markdown table of a results document: rows = metrics, columns = methods."""
    from polymodal.report.table import markdown_table

    methods = list(dict.fromkeys(r["method"] for r in doc["rows"]))
    metrics = list(dict.fromkeys(r["metric"] for r in doc["rows"]))
    cell = {(r["method"], r["metric"]): r for r in doc["rows"]}

    def fmt(r: dict[str, Any] | None) -> str:
        if r is None:
            return "-"
        pct = r["metric"].endswith("_acc") or r["metric"].startswith("decides_")
        scale, unit = (100.0, "") if pct else (1.0, "")
        digits = 2 if pct else 3
        mean = f"{scale * r['mean']:.{digits}f}"
        mean = mean[1:] if mean.startswith("-") and float(mean) == 0 else mean
        return f"{mean} +- {scale * r['std']:.{digits}f}{unit}" + ("" if r["n"] == doc["n"] else f" (n={r['n']})")

    rows = [[m, *(fmt(cell.get((meth, m))) for meth in methods)] for m in metrics]
    lines = [f"# Quantification on {doc['dataset']}", "", f"Protocol: {doc['protocol']}", "",
             f"Command: `{doc['command']}`", "",
             f"Each cell: mean +- std (ddof = 1) over n = {doc['n']} seeds. Accuracies (`*_acc`) and shares "
             "(`decides_*`) in %; Shapley values, perceptual scores, robustness areas and the EMAP gap in units of "
             "test accuracy (fractions); PID in bits; seconds of wall-clock time. docs/quantify.md defines each.",
             "", *markdown_table(["metric", *methods], rows), ""]
    if doc.get("notes"):
        lines += [doc["notes"].strip(), ""]
    folders = dict.fromkeys(m.split(" ")[0] for m in methods)  # "mla (stopped early)" -> its method's folder
    lines += [f"Reports of seed {doc['seeds'][0]}: " + ", ".join(f"[{m}]({doc['dataset']}-{m}/quantify.md)" for m in folders), ""]
    return "\n".join(lines)


def write(doc: dict[str, Any], out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    js, md = out / f"{doc['dataset']}.json", out / f"{doc['dataset']}.md"
    js.write_text(json.dumps(doc, indent=1) + "\n")
    md.write_text(render(doc))
    return js, md


def bench(dataset: str, methods: list[str], seeds: list[int], runs_dir: Path, out: Path, processes: int,
          command: str, train: bool = True, partial: bool = False, threads: int = 1) -> tuple[Path, Path]:
    from polymodal.bench.runner import Job, run_jobs
    from polymodal.engine.runfolder import load_run
    from polymodal.quantify import quantify
    from polymodal.quantify.report import write_quantify_report
    from polymodal.runpaths import RunPaths

    recipes = methods_of(dataset)
    unknown = [m for m in methods if m not in recipes]
    if unknown:
        raise SystemExit(f"unknown methods {unknown}; expected some of {', '.join(recipes)}")
    per: dict[str, list[dict[str, float]]] = {}
    for method in methods:
        config, overrides = recipes[method]
        jobs = [Job(f"{dataset}-{method}-seed{s}", (f"data.dataset={dataset}", *overrides, f"seed={s}"),
                    {"method": method, "seed": s}) for s in seeds]
        if train:
            run_jobs(jobs, runs_dir, config=str(CONFIGS / config), processes=processes)
        for j in jobs:
            run_dir = runs_dir / j.name
            paths = RunPaths(run_dir)
            label = method
            if not paths.results.is_file():
                if not (partial and paths.model("best").is_file()):
                    print(f"{j.name}: not finished; left out")
                    continue
                label = f"{method} (stopped early)"  # a run cut short: its best checkpoint so far
            if not paths.quantify_json.is_file():
                t = time.time()
                write_quantify_report(quantify(run_dir, "test", threads=threads))
                print(f"{j.name}: quantified in {time.time() - t:.0f} s")
            q = json.loads(paths.quantify_json.read_text())
            got = numbers(q)
            if label != method:  # how far it trained: its best epoch and the epochs it ran
                epochs = [r["epoch"] for r in load_run(run_dir).records]
                got["epochs_run"] = float(max(epochs, default=0))
            per.setdefault(label, []).append(got)
            if j.tags["seed"] == seeds[0]:
                dest = out / f"{dataset}-{method}"
                shutil.rmtree(dest, ignore_errors=True)
                dest.mkdir(parents=True)
                shutil.copy(paths.quantify_report, dest / paths.quantify_report.name)
                shutil.copytree(paths.quantify_figures, dest / paths.quantify_figures.name)
    rows = []
    for method, runs in per.items():
        for metric in dict.fromkeys(k for r in runs for k in r):
            vals = [r[metric] for r in runs if metric in r]
            rows.append(_row(method, dataset, metric, vals))
    configs = "; ".join(f"{m}: configs/{recipes[m][0]}" + (f" with {' '.join(recipes[m][1])}" if recipes[m][1] else "")
                        for m in methods)
    if not per:
        raise SystemExit(f"no finished run of {methods} on {dataset} in {runs_dir}")
    seeds = sorted({s for s in seeds if any((RunPaths(runs_dir / f"{dataset}-{m}-seed{s}").results.is_file()
                                             or partial) and (runs_dir / f"{dataset}-{m}-seed{s}").is_dir()
                                            for m in methods)})
    doc = {"dataset": dataset, "protocol": PROTOCOL.format(dataset=dataset, configs=configs, seeds=",".join(map(str, seeds))),
           "command": command, "seeds": seeds, "n": len(seeds), "rows": rows, "notes": ""}
    old = out / f"{dataset}.json"
    if old.is_file():  # keep the notes written about an earlier table
        doc["notes"] = json.loads(old.read_text()).get("notes", "")
    return write(doc, out)


def cost(runs_dir: Path, out: Path, command: str, threads: int = 1) -> tuple[Path, Path]:
    """Time one quantification of a 1,000-sample split of a three-modality run with ``threads`` torch threads."""
    from polymodal.bench.runner import Job, run_jobs
    from polymodal.quantify import quantify

    job = Job("cost-avdigits-3view", ("data.dataset=avdigits-3view", "strategy.name=joint", "model.fusion=late",
                                       "data.split_options.train.pairs=1000", "trainer.max_epochs=1", "seed=0"))
    run_jobs([job], runs_dir, config=str(CONFIGS / "avdigits_joint.yaml"), processes=1)
    load = os.getloadavg()[0]
    t, c = time.time(), time.process_time()
    q = quantify(runs_dir / job.name, "train", threads=threads, levels=5)
    total, cpu = time.time() - t, time.process_time() - c
    doc = {"dataset": "avdigits-3view", "protocol": ("avdigits-3view, joint late fusion trained 1 epoch on 1,000 pairs "
                                                     "(bench profile); its 1,000-sample training split quantified with "
                                                     f"every section, 5 robustness levels, {threads} torch "
                                                     f"thread{'s' if threads > 1 else ''}"),
           "command": command, "n": q.n, "modalities": q.modalities, "seconds": q.seconds, "wall_seconds": total,
           "cpu_seconds": cpu, "load_average_at_end": os.getloadavg()[0], "threads": threads,
           "cpus": os.cpu_count(), "load_average_at_start": load, "target_seconds": 120.0}
    js, md = out / "cost.json", out / "cost.md"
    doc["notes"] = json.loads(js.read_text()).get("notes", "") if js.is_file() else ""  # kept from an earlier run
    js.write_text(json.dumps(doc, indent=1) + "\n")
    md.write_text(render_cost(doc))
    return js, md


def render_cost(doc: dict[str, Any]) -> str:
    from polymodal.report.table import markdown_table

    rows = [[k, f"{v:.1f}"] for k, v in doc["seconds"].items()]
    verdict = "under" if doc["wall_seconds"] < doc["target_seconds"] else "OVER"
    threads = int(doc.get("threads", 2))
    head = (f"{doc['n']} samples, modalities {', '.join(doc['modalities'])}: {doc['wall_seconds']:.1f} s of wall-clock "
            f"time ({verdict} the 120 s target) with {threads} torch thread{'s' if threads > 1 else ''} on a machine of "
            f"{doc['cpus']} CPU cores, and {doc['cpu_seconds']:.1f} s of CPU time (all threads of the process). The "
            f"machine's 1-minute load average was {doc['load_average_at_start']:.1f} at the start and "
            f"{doc['load_average_at_end']:.1f} at the end (other processes shared the cores).")
    if threads == 1:
        head += (" With one thread the quantification keeps to one core (CPU time close to the wall-clock time), so "
                 "the figure is also an upper bound for the same work with both cores free.")
    else:
        head += (f" The wall-clock time is an upper bound for an idle machine, on which it would lie between the CPU "
                 f"time / {doc['cpus']} ({doc['cpu_seconds'] / doc['cpus']:.1f} s, both cores busy) and the CPU time "
                 f"({doc['cpu_seconds']:.1f} s, one core).")
    lines = ["# Cost of one quantification", "", f"Protocol: {doc['protocol']}", "", f"Command: `{doc['command']}`", "",
             head, "", "Wall-clock seconds per section:", "", *markdown_table(["section", "seconds"], rows), ""]
    if doc.get("notes"):
        lines += [doc["notes"].strip(), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="avdigits-hard")
    p.add_argument("--methods", default=None, help="comma-separated (default: joint,mla; tfn,program on avdigits-sum)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--runs-dir", default=str(HERE / "runs" / "quantify"))
    p.add_argument("--out", default=str(HERE / "results" / "quantify"))
    p.add_argument("--train", action=argparse.BooleanOptionalAction, default=True,
                   help="train missing runs (--no-train: tabulate the finished ones)")
    p.add_argument("--partial", action="store_true",
                   help="also quantify runs cut short (their best checkpoint so far), as '<method> (stopped early)'")
    p.add_argument("--cost", action="store_true", help="time one quantification of a 1,000-sample 3-modality split")
    p.add_argument("--threads", type=int, default=1, help="torch threads of each quantification (default 1)")
    p.add_argument("--recompute", default=None, metavar="NAME.json", help="rewrite NAME.md from its JSON twin alone")
    args = p.parse_args(argv)
    given = [a for a in (argv if argv is not None else sys.argv[1:]) if a not in ("--no-train", "--train")]
    command = "python benchmarks/quantify.py " + " ".join(given)
    if args.recompute:
        path = Path(args.recompute)
        doc = json.loads(path.read_text())
        md = path.with_suffix(".md")
        md.write_text(render_cost(doc) if "wall_seconds" in doc else render(doc))
        print(f"wrote {md}")
        return 0
    if args.cost:
        js, md = cost(Path(args.runs_dir), Path(args.out), command.strip(), args.threads)
    else:
        methods = (args.methods or DEFAULT_METHODS.get(args.dataset, "joint,mla")).split(",")
        js, md = bench(args.dataset, methods, [int(s) for s in args.seeds.split(",")], Path(args.runs_dir),
                       Path(args.out), args.processes, command.strip(), args.train, args.partial, args.threads)
    print(f"wrote {md} and {js}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
