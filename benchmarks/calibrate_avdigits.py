"""Calibrate avdigits-hard's corruption (docs/benchmarks.md, "Calibration of avdigits-hard").

Unimodal runs only (the `unimodal` strategy: each encoder with its own head, trained independently),
bench profile, seeds 0, 1, 2, before any fusion or balancing method touches the variant. Audio depends
only on the SNR `s`, the image only on (`sigma`, `k`), so grid point i pairs audio setting i with image
setting i in one unimodal run (the two branches do not interact). Targets on VALIDATION: audio-only and
image-only accuracy each in [0.55, 0.80].

    python benchmarks/calibrate_avdigits.py --snr -6,-3,0 --sigma 0.5,0.6,0.7 --occlusion 12,14,14

Writes benchmarks/results/calibration.md and calibration.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from polymodal.bench.results import ResultRow, write_results
from polymodal.bench.runner import Job, run_jobs

HERE = Path(__file__).resolve().parent
CONFIG = HERE.parent / "configs" / "avdigits_joint.yaml"


def best_epoch(run_dir: Path, modality: str) -> int:
    """Epoch at which a branch reaches its best validation accuracy (first one on ties)."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    scored = [(r[f"val/{modality}_acc"], -r["epoch"]) for r in records if r.get(f"val/{modality}_acc") is not None]
    return -max(scored)[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--snr", required=True, help="comma-separated audio SNRs s in dB")
    p.add_argument("--sigma", required=True, help="comma-separated image noise std values")
    p.add_argument("--occlusion", required=True, help="comma-separated occluding square sizes k")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--runs-dir", default=str(HERE / "runs" / "calibration"))
    p.add_argument("--out", default=str(HERE / "results"))
    args = p.parse_args(argv)
    snrs = [float(s) for s in args.snr.split(",")]
    sigmas = [float(s) for s in args.sigma.split(",")]
    ks = [int(k) for k in args.occlusion.split(",")]
    if not len(snrs) == len(sigmas) == len(ks):
        p.error("--snr, --sigma and --occlusion need the same number of values (grid point i pairs them)")
    seeds = [int(s) for s in args.seeds.split(",")]
    jobs = []
    for s, sigma, k in zip(snrs, sigmas, ks, strict=True):
        for seed in seeds:
            tag = f"s{s:g}-sigma{sigma:g}-k{k}"
            jobs.append(
                Job(
                    f"{tag}-seed{seed}",
                    (
                        "data.dataset=avdigits-hard", "strategy.name=unimodal", "model.fusion=late", f"seed={seed}",
                        f"data.options.snr_db={s}", f"data.options.sigma={sigma}", f"data.options.occlusion={k}",
                    ),
                    {"tag": tag, "audio": f"s={s:g} dB", "image": f"sigma={sigma:g}, k={k}"},
                )
            )
    results = run_jobs(jobs, args.runs_dir, config=str(CONFIG), processes=args.processes)
    rows = []
    for tag in dict.fromkeys(j.tags["tag"] for j in jobs):
        group = [j for j in jobs if j.tags["tag"] == tag and j.name in results]
        if not group:
            continue
        res = [results[j.name] for j in group]
        for split in ("val", "test"):
            for mod in ("audio", "image"):
                variant = group[0].tags[mod]
                rows.append(ResultRow("unimodal", "avdigits-hard", f"{mod}_acc", [r[split][f"{mod}_acc"] for r in res], variant=f"{variant} ({split})"))
        for mod in ("audio", "image"):
            epochs = [float(best_epoch(Path(args.runs_dir) / j.name, mod)) for j in group]
            rows.append(ResultRow("unimodal", "avdigits-hard", "epoch", epochs, variant=f"{group[0].tags[mod]} (best val epoch)"))
    command = "python benchmarks/calibrate_avdigits.py " + " ".join(argv if argv is not None else sys.argv[1:])
    js, md = write_results(
        "calibration",
        rows,
        protocol="avdigits-hard corruption search; unimodal strategy; bench profile; accuracy of each branch alone; seeds " + args.seeds,
        command=command.strip(),
        out_dir=args.out,
        title="Calibration of avdigits-hard (unimodal runs only)",
    )
    print(f"wrote {md} and {js}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
