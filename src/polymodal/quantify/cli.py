"""``polymodal quantify RUN_DIR [--split test]``: the quantification report of a trained run (docs/quantify.md).

Registered on the main parser by ``polymodal.cli``; nothing heavy is imported until the command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

COMMANDS = ("quantify",)


def add_parsers(sub: Any) -> None:
    """Add the ``quantify`` sub-command to the main parser's sub-parsers."""
    p = sub.add_parser("quantify", help="what each modality contributes, how they interact, robustness and cost of a "
                                        "trained run: quantify.md / quantify.html in the run (docs/quantify.md)")
    p.add_argument("run_dir", type=Path, help="a run folder written by polymodal train")
    p.add_argument("--split", default="test", choices=("train", "val", "test"), help="the split to quantify (default test)")
    p.add_argument("--levels", type=int, default=5, help="noise levels / missing rates of the robustness curves (default 5)")
    p.add_argument("--clusters", type=int, default=10, help="k-means clusters per modality for PID (default 10)")
    p.add_argument("--emap-partners", type=int, default=256, help="partner samples of the EMAP expectations (default 256)")
    p.add_argument("--permutations", type=int, default=200,
                   help="random orders of the Monte-Carlo Shapley estimate beyond 8 modalities (default 200)")
    p.add_argument("--solver", choices=("mirror", "cvxpy"), default="mirror",
                   help="PID solver: mirror (built in, default) or cvxpy (pip install 'polymodal[quantify]')")
    p.add_argument("--sections", default=None,
                   help="comma-separated parts to compute (default all): subsets, shapley, pid, emap, perceptual, "
                        "imbalance, robustness, complexity, geometry")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for the passes (default: the run's trainer.num_threads, else torch's own)")
    p.add_argument("--seed", type=int, default=0)


def run(ns: argparse.Namespace) -> int:
    """Run a parsed ``quantify`` command; returns the exit code."""
    from polymodal.quantify.core import SECTIONS, quantify_run

    sections = tuple(s.strip() for s in ns.sections.split(",") if s.strip()) if ns.sections else SECTIONS
    q, path = quantify_run(ns.run_dir, ns.split, sections=sections, levels=ns.levels, pid_clusters=ns.clusters,
                           emap_partners=ns.emap_partners, permutations=ns.permutations, solver=ns.solver, seed=ns.seed,
                           threads=ns.threads)
    if q.shapley:
        phi = ", ".join(f"{m} {q.shapley['phi'][m]:+.4f}" for m in q.modalities)
        print(f"Shapley values ({q.score}, {q.shapley['method']}): {phi}")
    for pair, d in q.pid.items():
        print(f"PID {pair}: redundancy {d['redundancy']:.3f}, unique {d['unique1']:.3f} / {d['unique2']:.3f}, "
              f"synergy {d['synergy']:.3f} bits")
    if q.emap is not None:
        print(f"EMAP gap ({q.score}): {q.emap.gap:+.4f}")
    print(f"report: {path} ({q.seconds.get('total', 0.0):.1f} s)")
    return 0
