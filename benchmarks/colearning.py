"""Co-learning on AV-digits: a weak modality's model helped by a strong one under label budgets.

Bench profile (configs/avdigits_joint.yaml: small CNN encoders of width 64, cached log-mel, AdamW lr 2e-3, cosine
decay, batch 64, late fusion with per-modality heads) on ``avdigits-hard``'s 2,400 training pairs, with the epochs
given below and no early stopping; every method draws half of each epoch's 2,400 rows from the labelled ones
(``strategy.args.labelled_share`` 0.5, with replacement: the same number of steps and the same labelled rows per
step for every method, docs/colearning.md); selection on validation (the target's own accuracy: every co-learning strategy predicts with the
target modality alone); test accuracy of the target alone. Label budgets: ``strategy.args.label_fraction`` of
the 2,400 training rows (per class, seeded by ``label_seed`` = the run's seed; the other rows without labels).
Writes benchmarks/results/colearning.md and colearning.json (``--name`` another name).

    python benchmarks/colearning.py [--seeds 0,1,2] [--budgets 0.01,0.05,0.2] [--epochs 12] [--width 64] [--pairs N] [--processes 2]
                                    [--labelled-share 0.5] [--target audio]   # --target image: the roles swapped;
                                                                              # --target audio,image: both, audio first
    python benchmarks/colearning.py --recompute [--name colearning]   # the Markdown again from the JSON alone

Methods (docs/colearning.md): ``labelled-only`` (supervised on the budget; the baseline), ``co-training``
(threshold 0.9, class-balanced, from epoch ``--warmup-epochs``), ``cross-distill`` (teacher = the other modality's head trained on
the budget, T = 4, the unlabelled pairs as transfer set, from epoch ``--warmup-epochs``), ``contrastive-aux`` (CLIP loss over all
pairs as an auxiliary, weight 1, 64-d). Each difference is A - labelled-only at the same budget, crossed paired
bootstrap (``polymodal.bench.compare``: seed s of A with seed s of the baseline, which also share the labelled
rows; one draw of test samples per replicate for every seed).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.bench.results import ResultRow, read_results, write_results
from polymodal.bench.runner import Job, run_jobs

HERE = Path(__file__).resolve().parent
CONFIG = HERE.parent / "configs" / "avdigits_joint.yaml"
DATASET = "avdigits-hard"
BASELINE = "labelled-only"
METHODS = ("labelled-only", "co-training", "cross-distill", "contrastive-aux")
OTHER = {"audio": "image", "image": "audio"}
WARMUP = ("co-training", "cross-distill")  # the methods whose transfer starts after warmup_epochs


def jobs_for(methods: list[str], budgets: list[float], seeds: list[int], epochs: int, target: str,
             width: int = 64, pairs: int | None = None, warmup_epochs: int = 2,
             labelled_share: float | None = 0.5) -> list[Job]:
    """Seed-major order, so that a grid cut short has whole seeds."""
    subset = () if pairs is None else (f"data.split_options.train.pairs={pairs}",)
    share = "null" if labelled_share is None else f"{labelled_share:g}"
    common = (*subset, f"data.dataset={DATASET}", f"trainer.max_epochs={epochs}", "trainer.patience=null", f"model.width={width}",
              f"strategy.args.target={target}", f"strategy.args.source={OTHER[target]}",
              f"strategy.args.labelled_share={share}")
    jobs = []
    for seed in seeds:
        for budget in budgets:
            for method in methods:
                name = f"{target}-{method}-{round(100 * budget)}pct-seed{seed}"
                warmup = (f"strategy.args.warmup_epochs={warmup_epochs}",) if method in WARMUP else ()
                overrides = (*common, *warmup, f"strategy.name={method}", f"strategy.args.label_fraction={budget}",
                             f"strategy.args.label_seed={seed}", f"seed={seed}")
                jobs.append(Job(name, overrides, {"method": method, "budget": budget, "seed": seed, "target": target}))
    return jobs


def run_records(jobs: list[Job], runs_dir: Path) -> list[dict[str, Any]]:
    """One record per finished run: its tags, test accuracies and per-sample test correctness of the target."""
    from polymodal.bench.command import test_correct
    from polymodal.bench.tables import encode_correct

    out = []
    for j in jobs:
        path = runs_dir / j.name / "results.json"  # not a run file name of the package: the runner's output
        if not path.is_file():
            continue
        res = json.loads(path.read_text())
        correct = test_correct(runs_dir / j.name)
        if correct is None:
            continue
        metrics = res["test"]  # the selected checkpoint's test metrics
        out.append({**j.tags, "fused_acc": metrics["fused_acc"], "source_acc": metrics.get(f"{OTHER[j.tags['target']]}_acc"),
                    "sec_per_epoch": res.get("sec_per_epoch"), "test_correct": encode_correct(correct)})
    return out


def rows_of(records: list[dict[str, Any]]) -> list[ResultRow]:
    """Mean and std over seeds of the target's test accuracy (and the source head's), per method and budget."""
    rows = []
    keys = sorted({(r["target"], r["method"], r["budget"]) for r in records}, key=lambda k: (k[0], k[2], METHODS.index(k[1])))
    for target, method, budget in keys:
        got = [r for r in records if (r["target"], r["method"], r["budget"]) == (target, method, budget)]
        kw = {"variant": f"{target} student", "label_budget": budget}
        rows.append(ResultRow(method, DATASET, f"{target}_acc", [r["fused_acc"] for r in got], **kw))
        source = [r["source_acc"] for r in got if r["source_acc"] is not None]
        if source and method != "contrastive-aux":  # contrastive-aux never trains the source's head
            rows.append(ResultRow(method, DATASET, f"{OTHER[target]}_acc", source, **kw))
        secs = [r["sec_per_epoch"] for r in got if r["sec_per_epoch"] is not None]
        if secs:
            rows.append(ResultRow(method, DATASET, "sec_per_epoch", secs, **kw))
    return rows


def differences(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every method minus labelled-only at the same target and budget (crossed paired bootstrap), from the
    records alone."""
    from polymodal.bench.compare import paired_by_seed
    from polymodal.bench.tables import decode_correct

    by: dict[tuple[str, str, float], dict[int, np.ndarray]] = {}
    for r in records:
        by.setdefault((r["target"], r["method"], r["budget"]), {})[int(r["seed"])] = decode_correct(r["test_correct"])
    out = []
    for (target, method, budget), runs in sorted(by.items(), key=lambda kv: (kv[0][0], kv[0][2], METHODS.index(kv[0][1]))):
        if method == BASELINE or (target, BASELINE, budget) not in by:
            continue
        d = paired_by_seed(runs, by[(target, BASELINE, budget)])
        if d is not None:
            out.append({"target": target, "budget": budget, "method": method, "baseline": BASELINE,
                        "metric": f"{target}_acc", **d})
    return out


def differences_text(diffs: list[dict[str, Any]]) -> str:
    if not diffs:
        return ""
    lines = ["", "Differences in the target's test accuracy against labelled-only at the same budget (points; crossed "
             "paired bootstrap 95 % interval; * = the interval excludes zero):", "",
             "| target | budget | method | difference | 95 % interval | seeds |", "|---|---:|---|---:|---|---:|"]
    for d in diffs:
        star = " *" if d["ci95"][0] > 0 or d["ci95"][1] < 0 else ""
        lines.append(f"| {d['target']} | {100 * d['budget']:g} % | {d['method']} | {100 * d['mean']:+.1f}{star} | "
                     f"[{100 * d['ci95'][0]:+.1f}, {100 * d['ci95'][1]:+.1f}] | {d['n_seeds']} |")
    several = len({d["target"] for d in diffs}) > 1  # name the student when the table has both roles

    def what(d: dict[str, Any]) -> str:
        student = f" ({d['target']} student)" if several else ""
        return f"{d['method']}{student} at {100 * d['budget']:g} %"

    wins = [what(d) for d in diffs if d["ci95"][0] > 0]
    losses = [what(d) for d in diffs if d["ci95"][1] < 0]
    lines += ["", "Better than labelled-only with an interval that excludes zero: " + (", ".join(wins) or "none") + ". "
              "Worse with an interval that excludes zero: " + (", ".join(losses) or "none") + "."]
    return "\n".join(lines) + "\n"


NOTES = """\
method = the strategy (docs/colearning.md); variant = which modality is the student (the model tested, alone:
its own head, the other modality absent); label_budget = fraction of the training labels kept (per class; the
labelled rows of seed s are the same for every method). `<target>_acc`: test accuracy of the student alone,
the number the methods are compared on; `<source>_acc`: the other modality's head alone on the same budget
(for cross-distill: the teacher; for co-training: the other view; for labelled-only: that modality trained on
its labels; not given for contrastive-aux, whose source head is never trained), taken at the epoch selected
for the student. Selection on validation by the student's accuracy. Every method draws the same share of
labelled rows into every batch (`strategy.args.labelled_share`, with replacement), so every method of one
seed and budget takes the same number of steps with the same labelled rows per step; the methods differ only
in what they do with the unlabelled rows. Seconds per epoch were measured with two runs sharing 2 CPU cores
next to other work.

What this can show: whether, on this synthetic pairing of spoken and written digits with corrupted speech and
images, each transfer beats training the student on its labels alone at small budgets, with seed and
test-sample variation accounted for. What it cannot show: behaviour on naturally co-occurring modalities
(AV-digits pairs a recording with a random image of the same digit, so the views are conditionally independent
given the class, the case co-training's theory assumes), with larger models, longer training or tuned
thresholds and weights (every method runs with its defaults), or with a teacher trained on more labels than the
student (here both share the budget).
"""


def write_table(name: str, records: list[dict[str, Any]], *, protocol: str, command: str, out_dir: Path,
                history: str = "") -> tuple[Path, Path]:
    diffs = differences(records)
    rows = rows_of(records)
    columns = [c for c in ("audio_acc", "image_acc", "sec_per_epoch") if any(r.metric == c for r in rows)]
    notes = NOTES + differences_text(diffs) + (f"\n{history.strip()}\n" if history.strip() else "")
    js, md = write_results(name, rows, protocol=protocol, command=command, out_dir=out_dir, columns=columns,
                           title="Co-learning on AV-digits: a weak modality helped by a strong one", notes=notes,
                           extra={"differences": diffs, "runs": records, **({"history": history.strip()} if history.strip() else {})})
    return js, md


def recompute(path: Path) -> Path:
    """Rewrite the Markdown twin of ``path`` (rows and differences) from the JSON file alone."""
    protocol, command, _ = read_results(path)
    doc = json.loads(path.read_text())
    _, md = write_table(path.stem, doc["runs"], protocol=protocol, command=command, out_dir=path.parent,
                        history=doc.get("history", ""))
    return md


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--budgets", default="0.01,0.05,0.2")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--pairs", type=int, default=None,
                   help="train on a seeded subset of this many training pairs (data.split_options.train.pairs)")
    p.add_argument("--warmup-epochs", type=int, default=2, help="strategy.args.warmup_epochs of co-training and cross-distill")
    p.add_argument("--width", type=int, default=64, help="model.width of the encoders")
    p.add_argument("--target", default="audio", help="the student modality: audio, image, or both in the order given "
                   "(audio,image: every audio run first)")
    p.add_argument("--labelled-share", type=float, default=0.5,
                   help="strategy.args.labelled_share: share of each epoch's draws given to the labelled rows (0: one pass)")
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--runs-dir", default=str(HERE / "runs" / "colearning"))
    p.add_argument("--out", default=str(HERE / "results"))
    p.add_argument("--train", action=argparse.BooleanOptionalAction, default=True, help="train missing runs (else report finished ones)")
    p.add_argument("--name", default="colearning", help="results file name under --out (NAME.md, NAME.json)")
    p.add_argument("--history", default="", help="a note kept in the JSON on how the grid was run")
    p.add_argument("--recompute", action="store_true", help="rewrite --out/NAME.md from --out/NAME.json alone")
    args = p.parse_args(argv)
    if args.recompute:
        print(f"wrote {recompute(Path(args.out) / f'{args.name}.json')}")
        return 0
    methods = args.methods.split(",")
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        p.error(f"--methods: unknown {unknown}; expected some of {list(METHODS)}")
    if BASELINE not in methods:
        p.error(f"--methods must include the baseline {BASELINE}")
    budgets = [float(b) for b in args.budgets.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    targets = args.target.split(",")
    if not targets or any(t not in OTHER for t in targets) or len(set(targets)) != len(targets):
        p.error(f"--target {args.target!r}: expected audio, image, or both separated by a comma")
    jobs = [j for t in targets for j in jobs_for(methods, budgets, seeds, args.epochs, t, args.width, args.pairs,
                                                 args.warmup_epochs, args.labelled_share or None)]
    runs_dir = Path(args.runs_dir)
    if args.train:
        run_jobs(jobs, runs_dir, config=str(CONFIG), processes=args.processes)
    records = run_records(jobs, runs_dir)
    given = [a for a in (argv if argv is not None else sys.argv[1:]) if a not in ("--no-train", "--train")]
    given = [a for i, a in enumerate(given) if a != "--history" and (i == 0 or given[i - 1] != "--history")]
    command = ("python benchmarks/colearning.py " + " ".join(given)).strip()
    train_rows = "2,400 training pairs" if args.pairs is None else f"{args.pairs} of the 2,400 training pairs (seeded subset)"
    share = (f"labelled share {args.labelled_share:g} of every epoch's {'2,400' if args.pairs is None else args.pairs} "
             "draws (with replacement)" if args.labelled_share else "one pass over every training row per epoch")
    protocol = (f"{DATASET}, {train_rows}; bench profile (configs/avdigits_joint.yaml) with model.width {args.width}, {args.epochs} epochs, no early stopping, transfer from epoch "
                f"{args.warmup_epochs} (counted from 0); "
                f"label budgets {args.budgets} of those rows (per class, seeded by the run's seed); {share}; "
                f"the student ({' then '.join(targets)}) alone at test; selection on val by the student's accuracy; seeds {args.seeds}")
    js, md = write_table(args.name, records, protocol=protocol, command=command, out_dir=Path(args.out),
                         history=args.history)
    print(f"wrote {md} and {js} ({len(records)} of {len(jobs)} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
