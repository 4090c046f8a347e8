"""Speed and memory of soft-DTW (``polymodal.alignment.soft_dtw``, docs/align_translate.md) with exact DTW beside
it, for two sequences of n = m frames.

Per length: two random sequences (n, 64) (seeded, float32); the cost is their pairwise squared Euclidean
distance (``pairwise_cost``), counted in every time. ``softdtw-forward``: cost + soft-DTW value (gamma 0.1);
``softdtw-forward-backward``: the same, then the gradient with respect to the first sequence (the paper's
backward recursion, then autograd through the cost); ``dtw``: cost + exact DTW with its path (forward only: not
differentiable). Time: median of the repeats after one warm-up call, one torch thread (and one BLAS thread).
Memory: every (length, operation) runs in its own fresh process; ``peak_rss_mb`` is the rise of the process's
peak resident set during one call (what the call adds on top of the inputs; torch and numpy together),
``peak_traced_mb`` the peak of the Python / numpy heap during one call (tracemalloc; torch's own allocations are
not traced).

    python benchmarks/softdtw_speed.py [--lengths 100,300,1000] [--repeats 5]
    python benchmarks/softdtw_speed.py --render     # rebuild the .md from the committed .json only

Writes benchmarks/results/softdtw_speed.md and softdtw_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
NAME = "softdtw_speed"
GAMMA = 0.1
DIM = 64
OPERATIONS = {
    "softdtw-forward": "soft-DTW value (cost included)",
    "softdtw-forward-backward": "soft-DTW value and its gradient with respect to a sequence",
    "dtw": "exact DTW value and path (reference; not differentiable)",
}


def measure(length: int, operation: str, repeats: int) -> dict[str, Any]:
    """One (length, operation) in this process: peak memory of one call, then the median time of ``repeats``."""
    import resource
    import time
    import tracemalloc

    import torch

    from polymodal.alignment import dtw, pairwise_cost, soft_dtw

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(length)
    x0 = torch.randn(length, DIM, generator=g)
    y = torch.randn(length, DIM, generator=g)

    def call() -> None:
        if operation == "dtw":
            dtw(pairwise_cost(x0, y))
            return
        x = x0.clone().requires_grad_(operation == "softdtw-forward-backward")
        value = soft_dtw(pairwise_cost(x, y), GAMMA)
        if x.requires_grad:
            value.backward()

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    call()  # the first call: the rise of the peak resident set, before any warm pool exists
    rss = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    tracemalloc.start()
    call()
    traced = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return {"length": length, "operation": operation, "median_s": statistics.median(times), "times_s": times,
            "peak_rss_mb": rss, "peak_traced_mb": traced}


def run_isolated(length: int, operation: str, repeats: int) -> dict[str, Any]:
    """:func:`measure` in a fresh interpreter (so the memory of one measurement never hides another's)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    code = (f"import json, sys; sys.path.insert(0, {str(HERE)!r}); import softdtw_speed as s; "
            f"print(json.dumps(s.measure({length}, {operation!r}, {repeats})))")
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def render(result: dict[str, Any]) -> str:
    """The markdown table of a results JSON (the committed table is recomputable from its twin)."""
    cell = {(r["length"], r["operation"]): r for r in result["rows"]}
    lengths = sorted({r["length"] for r in result["rows"]})
    lines = ["# Soft-DTW speed and memory", "", f"Protocol: {result['protocol']}", "",
             f"Command: `{result['command']}`", "",
             "| n = m | operation | median time (ms) | peak RSS rise (MiB) | peak traced heap (MiB) |",
             "|---:|---|---:|---:|---:|"]
    for n in lengths:
        for op, label in OPERATIONS.items():
            r = cell.get((n, op))
            if r is not None:
                lines.append(f"| {n} | {op} ({label}) | {1000 * r['median_s']:.1f} | {r['peak_rss_mb']:.1f} | "
                             f"{r['peak_traced_mb']:.1f} |")
    lines += ["", *result["notes"], ""]
    return "\n".join(lines)


def notes_of(rows: list[dict[str, Any]]) -> list[str]:
    cell = {(r["length"], r["operation"]): r for r in rows}
    lengths = sorted({r["length"] for r in rows})
    out = []
    lo, hi = lengths[0], lengths[-1]
    fb = [cell.get((n, "softdtw-forward-backward")) for n in (lo, hi)]
    if all(fb):
        ratio = fb[1]["median_s"] / fb[0]["median_s"]
        out.append(f"Soft-DTW forward+backward: {1000 * fb[0]['median_s']:.1f} ms at n = {lo}, "
                   f"{1000 * fb[1]['median_s']:.1f} ms at n = {hi} ({ratio:.0f} x for {(hi / lo) ** 2:.0f} x the cells).")
    out += [
        "How it runs: the recursions step along the n + m - 1 anti-diagonals with one vectorised numpy step each "
        "(float64), so short sequences are dominated by the per-step overhead (time grows more slowly than n m) "
        "and long ones by the n m cells; the forward keeps the (n + 2) x (m + 2) table of R for the backward, "
        "and the backward allocates a few more tables of that size (about 8 bytes x n m each). Exact DTW runs "
        "the same anti-diagonal loop plus a Python loop over the n + m steps of its path.",
        "Before the squared distance of `pairwise_cost` was expanded into a matrix product (it built the "
        "(n, m, 64) differences), the same protocol measured at n = 1000: 2,568 ms forward and 7,326 ms "
        "forward+backward, with a resident-set rise of 491 and 1,007 MiB: the differences, not the recursions, "
        "held most of the memory (the earlier table is in the history of this file).",
        "What it can show: the cost of one soft-DTW loss evaluation (and of its gradient) at these lengths on "
        "one CPU thread of this machine, and how it grows with the length; the relative cost of soft-DTW and "
        "exact DTW. What it cannot show: batched use (`soft_dtw_batch` shares the anti-diagonal steps among the "
        "strings of a batch), GPU time (the recursions run in numpy on the CPU), other feature dimensions (the "
        "dimension enters through the pairwise cost alone) or another machine; the timings of a shared machine "
        "vary by some percent from run to run (the repeats are in the JSON).",
    ]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lengths", default="100,300,1000")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path, default=RESULTS, help="folder of NAME.md / NAME.json")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--render", action="store_true", help="rebuild the .md from the committed .json only")
    mode.add_argument("--recompute", action="store_true", help="the same as --render (the project's usual name)")
    args = p.parse_args(argv)
    md, js = args.out / f"{NAME}.md", args.out / f"{NAME}.json"
    if args.render or args.recompute:
        md.write_text(render(json.loads(js.read_text())))
        print(md)
        return 0
    lengths = [int(n) for n in args.lengths.split(",")]
    load = os.getloadavg()[0]
    rows = [run_isolated(n, op, args.repeats) for n in lengths for op in OPERATIONS]
    load = max(load, os.getloadavg()[0])
    result = {
        "protocol": (f"two random sequences of n = m frames, feature dimension {DIM}, squared Euclidean cost "
                     f"(counted), gamma {GAMMA}; median of {args.repeats} calls after one warm-up; each (n, "
                     f"operation) in a fresh process; 1 torch / BLAS thread; {platform.machine()}, "
                     f"{os.cpu_count()} cores, load average up to {load:.1f} during the run (other work shared "
                     f"the machine), Python {platform.python_version()}"),
        "command": f"python benchmarks/softdtw_speed.py --lengths {args.lengths} --repeats {args.repeats}",
        "rows": rows,
        "notes": notes_of(rows),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    js.write_text(json.dumps(result, indent=1) + "\n")
    md.write_text(render(result))
    print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
