"""Index scaling: exact (FAISS flat) against approximate (IVF) search at 1e4, 1e5 and 1e6 vectors.

Two kinds of vectors of width 256, L2-normalised (as every polymodal embedder's output):

- clustered: a mixture of 1,000 Gaussian clusters (centres N(0, I/256), points = centre + N(0, 0.05^2 I)),
  the shape of real embedding collections (many near-duplicates and topics);
- uniform: uniform in the cube [-1, 1]^256, then normalised: no structure at all, the worst case of
  every partitioning index.

Per size and kind, in one run: the exact index (``IndexFlatIP``) and the IVF index the search index
builds past its threshold (``polymodal.coordinated.index.build_ivf`` with ``ivf_params(n)``: nlist ~
4 sqrt(n) as a power of two, k-means on 64 * nlist rows), probed with several nprobe values. Reported:
build seconds (IVF: k-means training + adding), index memory (the serialised index's bytes), queries per
second (1,000 held-out queries searched in one batch, median of 3), and recall@10 of IVF against the
exact top 10 of the same queries. Target at 1e6 clustered: recall@10 >= 0.95 at >= 20x the exact QPS.

    python benchmarks/index_scaling.py [--sizes 10000,100000,1000000] [--threads 2]

Writes benchmarks/results/index_scaling.md and .json. Seconds are wall-clock on a shared machine: compare
rows of one run, not across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import faiss
import numpy as np

from polymodal.coordinated.index import build_ivf, ivf_params
from polymodal.report.table import markdown_table

DIM = 256
CLUSTERS = 1000
SIGMA = 0.05
QUERIES = 1000
K = 10
TARGET_RECALL, TARGET_SPEEDUP = 0.95, 20.0


def normalise(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def make_data(kind: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(base (n, DIM), queries (QUERIES, DIM)) float32 unit rows of one kind; queries are held out."""
    rng = np.random.default_rng(seed)
    total = n + QUERIES
    if kind == "clustered":
        centres = rng.standard_normal((CLUSTERS, DIM), dtype=np.float32) / np.sqrt(DIM)
        labels = rng.integers(0, CLUSTERS, total)
        x = np.empty((total, DIM), np.float32)
        for start in range(0, total, 100_000):  # in chunks: the noise of 1e6 rows at once would double memory
            stop = min(total, start + 100_000)
            x[start:stop] = centres[labels[start:stop]] + SIGMA * rng.standard_normal((stop - start, DIM), dtype=np.float32)
    elif kind == "uniform":
        x = rng.uniform(-1.0, 1.0, (total, DIM)).astype(np.float32)
    else:
        raise ValueError(f"unknown data kind {kind!r}")
    x = normalise(x)
    return x[:n], x[n:]


def timed_search(index: faiss.Index, queries: np.ndarray, repeats: int = 3) -> tuple[float, np.ndarray]:
    """(queries per second, median of ``repeats``; ids of the top K)."""
    times, ids = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        _, ids = index.search(queries, K)
        times.append(time.perf_counter() - t)
    return len(queries) / statistics.median(times), ids


def recall_at_k(approx: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(e)) / K for a, e in zip(approx, exact, strict=True)]))


def run(sizes: list[int], kinds: list[str], threads: int, checkpoint=None) -> list[dict]:
    """Measure every (kind, size); ``checkpoint(rows)`` after each, so a stopped run leaves what it measured."""
    faiss.omp_set_num_threads(threads)
    rows: list[dict] = []
    for kind in kinds:
        for n in sizes:
            base, queries = make_data(kind, n, seed=n)
            t = time.perf_counter()
            flat = faiss.IndexFlatIP(DIM)
            flat.add(base)
            flat_build = time.perf_counter() - t
            flat_qps, exact = timed_search(flat, queries)
            rows.append({"dataset": kind, "n": n, "method": "flat", "nlist": None, "nprobe": None,
                         "build_s": flat_build, "index_mb": faiss.serialize_index(flat).nbytes / 2**20,
                         "qps": flat_qps, "recall_at_10": 1.0, "speedup": 1.0})
            print(f"{kind} n={n} flat: build {flat_build:.2f} s, {flat_qps:.0f} q/s", file=sys.stderr, flush=True)
            del flat
            nlist, default_nprobe = ivf_params(n)
            t = time.perf_counter()
            ivf = build_ivf(base, np.arange(n, dtype=np.int64), nlist)
            ivf_build = time.perf_counter() - t
            size_mb = faiss.serialize_index(ivf).nbytes / 2**20
            for nprobe in sorted({max(1, default_nprobe // 2), default_nprobe, 2 * default_nprobe, 4 * default_nprobe}):
                ivf.nprobe = nprobe
                qps, approx = timed_search(ivf, queries)
                recall = recall_at_k(approx, exact)
                rows.append({"dataset": kind, "n": n, "method": "ivf", "nlist": nlist, "nprobe": nprobe,
                             "default": nprobe == default_nprobe, "build_s": ivf_build, "index_mb": size_mb,
                             "qps": qps, "recall_at_10": recall, "speedup": qps / flat_qps})
                print(f"{kind} n={n} ivf nlist={nlist} nprobe={nprobe}: build {ivf_build:.1f} s, {qps:.0f} q/s "
                      f"({qps / flat_qps:.1f}x), recall@10 {recall:.3f}", file=sys.stderr, flush=True)
            del ivf, base, queries
            if checkpoint is not None:
                checkpoint(rows)
    return rows


def verdict(rows: list[dict]) -> str:
    best = [r for r in rows if r["dataset"] == "clustered" and r["n"] == 1_000_000 and r["method"] == "ivf"]
    if not best:
        return "The 1e6 clustered case was not run, so the target is not assessed here."
    ok = [r for r in best if r["recall_at_10"] >= TARGET_RECALL and r["speedup"] >= TARGET_SPEEDUP]
    default = next(r for r in best if r.get("default"))
    text = (f"Target at 1e6 clustered (recall@10 >= {TARGET_RECALL} at >= {TARGET_SPEEDUP:g}x exact QPS): "
            f"the default parameters (nlist {default['nlist']}, nprobe {default['nprobe']}) reach recall@10 "
            f"{default['recall_at_10']:.3f} at {default['speedup']:.1f}x. ")
    if ok:
        settings = ", ".join(f"nprobe {r['nprobe']} ({r['recall_at_10']:.3f}, {r['speedup']:.1f}x)" for r in ok)
        return text + f"Reached with: {settings}."
    return text + "NOT reached with any nprobe measured here."


def write(rows: list[dict], threads: int, command: str, out_dir: Path, seconds: float, peak: float | None = None,
          extra: str = "") -> None:
    """Write index_scaling.json and .md (``extra``: a note appended to the Markdown, kept in the JSON)."""
    protocol = (f"{DIM}-d unit vectors, clustered ({CLUSTERS} Gaussian clusters, sigma {SIGMA}) or uniform; "
                f"{QUERIES} held-out queries searched in one batch (median of 3), top {K}; recall@{K} of IVF "
                f"against FAISS flat on the same queries; faiss {faiss.__version__}, {threads} OpenMP threads")
    if peak is None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB -> GB (Linux reports kB)
    doc = {"protocol": protocol, "command": command, "threads": threads, "faiss": faiss.__version__,
           "peak_rss_gb": round(peak, 2), "wall_seconds": round(seconds), "note": extra, "rows": rows}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "index_scaling.json").write_text(json.dumps(doc, indent=2) + "\n")
    header = ["data", "n", "index", "nlist", "nprobe", "build (s)", "memory (MB)", "queries/s", "x exact", "recall@10"]
    body = [[r["dataset"], f"{r['n']:,}", r["method"] + (" (default)" if r.get("default") else ""),
             r["nlist"] or "-", r["nprobe"] or "-", f"{r['build_s']:.2f}", f"{r['index_mb']:.0f}",
             f"{r['qps']:,.0f}", f"{r['speedup']:.1f}", f"{r['recall_at_10']:.3f}"] for r in rows]
    lines = ["# Index scaling: exact vs IVF search", "", f"Protocol: {protocol}.", "", f"Command: `{command}`", "",
             *markdown_table(header, body, "lrlrrrrrrr"), "", verdict(rows), "",
             "Reading the table:",
             "",
             "- Build of the flat index is a copy of the vectors; IVF build is k-means training (on 64 x nlist "
             "rows, 20 iterations) plus assigning every vector to its cell.",
             "- Memory is the serialised index: 4 bytes x 256 per vector for both (IVF adds 8-byte ids and the "
             "centroids), so IVF saves time, not memory.",
             f"- The clustered data are the friendly case: with {CLUSTERS} clusters of ~n/{CLUSTERS} points, a "
             "query's 10 nearest neighbours all lie in its own cluster, and k-means cells follow the clusters, "
             "so a few probed cells hold all of them (recall 1.0 even at small nprobe). Real embeddings lie "
             "between this and uniform: measure recall on your own vectors before lowering nprobe.",
             "- Uniform vectors have no clusters for the cells to follow: the true neighbours of a query are "
             "barely closer than any other vector and fall in many cells, so IVF recall there is low at any "
             "useful speed-up. Real embeddings are clustered; the uniform rows show the worst case.",
             "- Queries per second are for batches of 1,000 queries; single queries pay per-call overhead.",
             "- Below 50,000 live vectors polymodal's search index stays exact (its default IVF threshold): the "
             "1e4 IVF rows are there for comparison only.",
             f"- Machine: {os.cpu_count()} CPU cores shared with other jobs during the run (it ran under `nice`): "
             "absolute seconds and queries per second are pessimistic; compare rows of one size and kind.",
             f"- Peak memory of the whole run (all sizes, data included): {peak:.1f} GB; wall time {seconds / 60:.0f} min.",
             *([f"- {extra}"] if extra else []),
             ""]
    (out_dir / "index_scaling.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10000,100000,1000000")
    p.add_argument("--kinds", default="clustered,uniform")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    p.add_argument("--render", type=Path, default=None, metavar="NAME.json",
                   help="rewrite the Markdown table from a results JSON alone (no measuring)")
    p.add_argument("--merge", action="store_true",
                   help="measure only --kinds x --sizes and replace those rows in the existing OUT/index_scaling.json "
                        "(the other rows, its command and its note are kept; the note records the merge)")
    ns = p.parse_args(argv)
    if ns.render is not None:
        doc = json.loads(ns.render.read_text())
        write(doc["rows"], doc["threads"], doc["command"], ns.out, doc["wall_seconds"], doc["peak_rss_gb"],
              doc.get("note", ""))
        print(verdict(doc["rows"]))
        return 0
    sizes = [int(float(s)) for s in ns.sizes.split(",")]
    kinds = ns.kinds.split(",")
    t = time.perf_counter()
    command = "python benchmarks/index_scaling.py" + ("" if argv is None and len(sys.argv) == 1 else " " + " ".join(argv or sys.argv[1:]))
    if ns.merge:
        return merge(sizes, kinds, ns.threads, ns.out, command)
    rows = run(sizes, kinds, ns.threads, lambda done: write(done, ns.threads, command, ns.out, time.perf_counter() - t))
    write(rows, ns.threads, command, ns.out, time.perf_counter() - t)
    print(verdict(rows))
    return 0


def merge(sizes: list[int], kinds: list[str], threads: int, out: Path, command: str) -> int:
    """Measure (kind, size) pairs again and put their rows in place of the old ones in ``out``'s JSON."""
    path = out / "index_scaling.json"
    if not path.is_file():
        raise SystemExit(f"--merge needs an existing {path}; run without --merge first")
    doc = json.loads(path.read_text())
    if doc["threads"] != threads:
        raise SystemExit(f"--threads {threads} differs from the {doc['threads']} threads of {path}; rows would not compare")
    t = time.perf_counter()
    new = run(sizes, kinds, threads)
    done = {(r["dataset"], r["n"]) for r in new}
    order = {k: i for i, k in enumerate(["clustered", "uniform"])}
    rows = sorted([r for r in doc["rows"] if (r["dataset"], r["n"]) not in done] + new,
                  key=lambda r: (order.get(r["dataset"], 9), r["n"], r["method"] != "flat", r["nprobe"] or 0))
    seconds = time.perf_counter() - t
    groups = ", ".join(f"{k} {n:,}" for k, n in sorted(done))
    note = (doc.get("note", "") + f" The rows of {groups} were measured again on their own by `{command}` "
            f"({seconds / 60:.0f} min) and replace the earlier ones.").strip()
    write(rows, threads, doc["command"], out, doc["wall_seconds"] + seconds, doc["peak_rss_gb"], note)
    print(verdict(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
