"""Wall time and peak memory of the README's main job (`polymodal train` on its default config).

Runs the job in a fresh subprocess (a cold start: dataset build and log-mel cache included unless
--warm-cache) and samples the resident memory of its whole process tree (workers included) from
/proc every 0.1 s. Writes benchmarks/results/main_job.md and main_job.json.

    python benchmarks/main_job.py [--threads 2] [--repeats 1] [key=value ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _tree_rss_bytes(root: int) -> int:
    """Sum of VmRSS over ``root`` and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        pid, ppid = int(entry), int(fields.get("PPid", "0").strip() or 0)
        children.setdefault(ppid, []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0]) * 1024
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def run_once(threads: int, overrides: list[str], warm_cache: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        if not warm_cache:
            env["POLYMODAL_CACHE"] = str(Path(tmp) / "cache")
        cmd = [sys.executable, "-m", "polymodal", "train", f"out_dir={tmp}/runs", f"trainer.num_threads={threads}",
               "trainer.progress=false", *overrides]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, _tree_rss_bytes(proc.pid))
            time.sleep(0.1)
        wall = time.perf_counter() - t0
        out = proc.stdout.read() if proc.stdout else ""
        if proc.returncode != 0:
            raise RuntimeError(f"main job failed ({proc.returncode}):\n{out}")
        results = json.loads(next(Path(tmp, "runs").glob("*/results.json")).read_text())
        shutil.rmtree(Path(tmp, "runs"), ignore_errors=True)
    test = results["test"]
    return {"wall_s": wall, "peak_rss_mb": peak / 2**20, "epochs": results["epochs_run"],
            "sec_per_epoch": results.get("sec_per_epoch"), **{f"test_{k}": v for k, v in test.items() if k.endswith("_acc")}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--warm-cache", action="store_true")
    p.add_argument("--out", default=str(HERE / "results"))
    p.add_argument("overrides", nargs="*")
    args = p.parse_args(argv)
    runs = [run_once(args.threads, args.overrides, args.warm_cache) for _ in range(args.repeats)]
    keys = list(runs[0])
    summary = {k: [r[k] for r in runs] for k in keys}
    command = "python benchmarks/main_job.py " + " ".join(argv if argv is not None else sys.argv[1:])
    protocol = (f"`polymodal train` (default config) in a fresh process, {args.threads} torch threads, "
                f"{'warm' if args.warm_cache else 'cold'} feature cache; peak = summed RSS of the process tree")
    doc = {"protocol": protocol, "command": command.strip(), "rows": [
        {"method": "main-job", "dataset": "avdigits-hard", "metric": k, "mean": statistics.mean(v),
         "std": statistics.stdev(v) if len(v) > 1 else 0.0, "n": len(v), "values": v}
        for k, v in summary.items() if all(isinstance(x, (int, float)) for x in v)]}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "main_job.json").write_text(json.dumps(doc, indent=2) + "\n")
    lines = ["# Main job: time and memory", "", f"Protocol: {protocol}", "", f"Command: `{command.strip()}`", "",
             "| metric | mean | std | n |", "|---|---:|---:|---:|"]
    lines += [f"| {r['metric']} | {r['mean']:.3f} | {r['std']:.3f} | {r['n']} |" for r in doc["rows"]]
    (out / "main_job.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
