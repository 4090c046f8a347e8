"""Every registered fusion trained with the `joint` strategy on avdigits-hard and avdigits-sum.

Bench profile (configs/avdigits_joint.yaml: small CNN encoders, cached log-mel, at most 20 epochs,
early stopping and selection on validation), seeds 0, 1, 2. Writes benchmarks/results/fusions.md and
fusions.json (fused and unimodal test accuracy mean +- std, parameters, seconds per epoch).

    python benchmarks/fusions.py [--fusions late,tfn] [--datasets avdigits-hard] [--seeds 0,1,2] [--processes 2]

Runs are kept under benchmarks/runs/fusions/ and finished ones are skipped, so the table can be
filled over several invocations.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from polymodal.bench.results import ResultRow, write_results
from polymodal.bench.runner import Job, run_jobs
from polymodal.registries import FUSIONS

HERE = Path(__file__).resolve().parent
CONFIG = HERE.parent / "configs" / "avdigits_joint.yaml"
METRICS = ("fused_acc", "audio_acc", "image_acc", "macro_f1")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fusions", default=",".join(FUSIONS.names()))
    p.add_argument("--datasets", default="avdigits-hard,avdigits-sum")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--runs-dir", default=str(HERE / "runs" / "fusions"))
    p.add_argument("--out", default=str(HERE / "results"))
    args = p.parse_args(argv)
    fusions = args.fusions.split(",")
    datasets = args.datasets.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    jobs = [
        Job(
            f"{ds}-{fu}-seed{seed}",
            (f"data.dataset={ds}", "strategy.name=joint", f"model.fusion={fu}", f"seed={seed}"),
            {"fusion": fu, "dataset": ds, "seed": seed},
        )
        for ds in datasets
        for fu in fusions
        for seed in seeds
    ]
    results = run_jobs(jobs, args.runs_dir, config=str(CONFIG), processes=args.processes)
    rows: list[ResultRow] = []
    for ds in datasets:
        for fu in fusions:
            done = [results[j.name] for j in jobs if j.tags["dataset"] == ds and j.tags["fusion"] == fu and j.name in results]
            if not done:
                continue
            for metric in METRICS:
                vals = [r["test"].get(metric) for r in done]
                if all(v is not None for v in vals):
                    rows.append(ResultRow("joint", ds, metric, [float(v) for v in vals], fusion=fu))
            rows.append(ResultRow("joint", ds, "params", [float(r["params"]) for r in done if r.get("params") is not None], fusion=fu))
            rows.append(ResultRow("joint", ds, "sec_per_epoch", [float(r["sec_per_epoch"]) for r in done], fusion=fu))
            rows.append(ResultRow("joint", ds, "epoch", [float(r["best_epoch"]) for r in done], fusion=fu))
    command = "python benchmarks/fusions.py " + " ".join(argv if argv is not None else sys.argv[1:])
    js, md = write_results(
        "fusions",
        rows,
        protocol=f"{', '.join(datasets)}; joint strategy; bench profile (configs/avdigits_joint.yaml); "
        f"selection on val; test accuracy; seeds {args.seeds}",
        command=command.strip(),
        out_dir=args.out,
        title="Fusions on AV-digits (joint training)",
        notes="Unimodal accuracy: the model evaluated with the other modality marked absent "
        "(n/a where the fusion cannot run with one modality).",
    )
    print(f"wrote {md} and {js}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
