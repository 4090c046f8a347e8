"""MLA against training each encoder alone: its branches against ``unimodal``'s, and its fused accuracy against ``poe``.

    python benchmarks/mla_branches.py --bench benchmarks/results/ceiling.json --runs-dir runs/bench/balancing
    python benchmarks/mla_branches.py --recompute benchmarks/results/mla_branches.json

Reads a ``polymodal bench`` results file that holds ``mla`` and ``unimodal`` runs (and the ``poe`` rows
``polymodal bench`` derives from the unimodal runs) and the run folders beside it. Each branch's test
accuracy is its own head's prediction with the other modalities absent (``predictions_test.npz``,
``probs_<modality>``): for ``mla`` the shared head on that encoder's features (MLA's training alternates
unimodal steps through that one head), for ``unimodal`` the encoder's own head trained alone. Written to
``benchmarks/results/mla_branches.{md,json}`` with every run's per-sample correctness, so the tables rebuild
from the JSON alone.

Differences are crossed paired bootstraps (``polymodal.bench.compare.paired_by_seed``: one draw of test
samples shared by all seeds and both methods, seeds resampled): seed s of MLA is paired with seed s of
``unimodal``. What this can and cannot show: both methods train with the same encoders, optimiser, epochs
and bench profile and select their epoch on validation by their own fused accuracy, so a branch is scored
at the epoch its method chose for the fusion, not at the branch's own best epoch.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from fusion_rules import run_dir_of  # noqa: E402  (benchmarks/ is not a package)

from polymodal.bench.compare import paired_by_seed  # noqa: E402
from polymodal.bench.results import ResultRow, write_results  # noqa: E402
from polymodal.bench.tables import decode_correct, encode_correct  # noqa: E402
from polymodal.engine.runfolder import predictions_file  # noqa: E402
from polymodal.report.metrics import load_predictions  # noqa: E402

NAME = "mla_branches"
PAIRS = (("mla", "poe"), ("mla", "unimodal"), ("poe", "unimodal"))  # fused accuracy, A - B


def branch_records(bench: dict[str, Any], runs_dir: Path) -> list[dict[str, Any]]:
    """One record per (method, seed, modality) for mla and unimodal: per-sample test correctness in dataset order."""
    out = []
    for rec in bench["runs"]:
        if rec["method"] not in ("mla", "unimodal") or rec.get("variant"):
            continue
        path = predictions_file(run_dir_of(runs_dir, rec), "test")
        pred = load_predictions(path)
        if not pred.per_modality:
            raise ValueError(f"{path} holds no per-modality probabilities; it cannot give the branches' accuracy")
        order = np.argsort(pred.index) if pred.index is not None else np.arange(len(pred.y_true))
        y = np.asarray(pred.y_true)
        for m, p in pred.per_modality.items():
            correct = (np.asarray(p).argmax(axis=1) == y)[order]
            if pred.present and m in pred.present:  # a row without the modality is no evidence about its branch
                correct = correct[np.asarray(pred.present[m], dtype=bool)[order]]
            out.append({"method": rec["method"], "dataset": rec["dataset"], "seed": int(rec["seed"]), "modality": m,
                        "test_correct": encode_correct(correct)})
    return out


def fused_records(bench: dict[str, Any]) -> list[dict[str, Any]]:
    """The bench file's fused per-sample correctness of mla, unimodal and poe (their default configurations)."""
    return [{"method": r["method"], "dataset": r["dataset"], "seed": int(r["seed"]), "test_correct": r["test_correct"]}
            for r in bench["runs"] if r["method"] in ("mla", "unimodal", "poe") and not r.get("variant")
            and r.get("test_correct") is not None]


def _by_seed(records: list[dict[str, Any]], **match: Any) -> dict[int, np.ndarray]:
    return {r["seed"]: decode_correct(r["test_correct"]) for r in records
            if all(r.get(k) == v for k, v in match.items())}


def tables(branches: list[dict[str, Any]], fused: list[dict[str, Any]]) -> tuple[list[ResultRow], list[dict[str, Any]], str]:
    rows, differences = [], []
    datasets = sorted({r["dataset"] for r in branches} | {r["dataset"] for r in fused})
    modalities = sorted({r["modality"] for r in branches})
    for d in datasets:
        for method in ("mla", "unimodal", "poe"):
            acc = _by_seed(fused, method=method, dataset=d)
            if acc:
                rows.append(ResultRow(method, d, "fused_acc", [float(acc[s].mean()) for s in sorted(acc)]))
            for m in modalities:
                acc = _by_seed(branches, method=method, dataset=d, modality=m)
                if acc:
                    rows.append(ResultRow(method, d, f"{m}_acc", [float(acc[s].mean()) for s in sorted(acc)]))
        for m in modalities:
            diff = paired_by_seed(_by_seed(branches, method="mla", dataset=d, modality=m),
                                  _by_seed(branches, method="unimodal", dataset=d, modality=m))
            if diff is not None:
                differences.append({"a": "mla", "b": "unimodal", "dataset": d, "metric": f"{m}_acc", **diff})
        for a, b in PAIRS:
            diff = paired_by_seed(_by_seed(fused, method=a, dataset=d), _by_seed(fused, method=b, dataset=d))
            if diff is not None:
                differences.append({"a": a, "b": b, "dataset": d, "metric": "fused_acc", **diff})
    lines = ["| difference | dataset | metric | points | 95 % interval | seeds |", "|---|---|---|---:|---|---:|"]
    for x in differences:
        lines.append(f"| {x['a']} - {x['b']} | {x['dataset']} | {x['metric']} | {100 * x['mean']:+.2f} | "
                     f"[{100 * x['ci95'][0]:+.2f}, {100 * x['ci95'][1]:+.2f}] | {x['n_seeds']} |")
    notes = (NOTES + "\nDifferences (test, crossed paired bootstrap 95 % interval: one draw of test samples shared by "
             "all seeds and both methods, seeds resampled):\n\n" + "\n".join(lines) + "\n")
    return rows, differences, notes


NOTES = """\
`<modality>_acc`: that branch's test accuracy with the other modality absent (MLA: the shared head on that
encoder; unimodal: the encoder's own head, trained alone). `fused_acc`: each method's default fusion
(`poe`: the unimodal runs' calibrated product of experts). Each method's epoch is selected on validation by
its own fused accuracy.
"""


def write(branches: list[dict[str, Any]], fused: list[dict[str, Any]], protocol: str, command: str,
          out_dir: Path, name: str = NAME) -> tuple[Path, Path]:
    rows, differences, notes = tables(branches, fused)
    js, md = write_results(name, rows, protocol=protocol, command=command, out_dir=out_dir,
                           title="MLA's branches against training each encoder alone", notes=notes)
    doc = json.loads(js.read_text())
    doc.update({"differences": differences, "runs": {"branches": branches, "fused": fused}})
    js.write_text(json.dumps(doc, indent=2) + "\n")
    return js, md


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bench", help="a polymodal bench results JSON with mla and unimodal runs (per-run records)")
    p.add_argument("--runs-dir", help="the folder holding that benchmark's run folders")
    p.add_argument("--out", default=str(HERE / "results"))
    p.add_argument("--recompute", metavar="NAME.json", help="rebuild the tables from a results JSON written by this script")
    args = p.parse_args(argv)
    if args.recompute:
        path = Path(args.recompute)
        doc = json.loads(path.read_text())
        runs = doc.get("runs")
        if not isinstance(runs, dict) or "branches" not in runs:
            raise SystemExit(f"{path} was not written by benchmarks/mla_branches.py (no 'runs' with 'branches')")
        js, md = write(runs["branches"], runs["fused"], doc["protocol"], doc["command"], Path(args.out), path.stem)
    else:
        if not args.bench or not args.runs_dir:
            p.error("--bench and --runs-dir are required (or --recompute NAME.json)")
        bench_path = Path(args.bench)
        bench = json.loads(bench_path.read_text())
        if not bench.get("runs"):
            raise SystemExit(f"{bench_path} has no per-run records ('runs'); write it with polymodal bench")
        branches = branch_records(bench, Path(args.runs_dir))
        if not branches:
            raise SystemExit(f"{bench_path} holds no mla or unimodal runs")
        given = argv if argv is not None else sys.argv[1:]
        js, md = write(branches, fused_records(bench), f"the mla and unimodal runs of {bench_path.name} "
                       f"({bench['protocol']})", "python benchmarks/mla_branches.py " + " ".join(given), Path(args.out))
    print(f"wrote {md} and {js}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
