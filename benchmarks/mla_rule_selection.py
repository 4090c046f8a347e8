"""MLA's default test-time rule, chosen on validation across datasets.

    python benchmarks/mla_rule_selection.py --datasets avdigits,avdigits-hard,avdigits-3view --seeds 0,1,2 \\
        optim.name=sgd optim.lr=0.1
    python benchmarks/mla_rule_selection.py --recompute benchmarks/results/mla_rule_selection.json

Trains MLA with ``polymodal bench`` on every dataset of ``--datasets`` (the bench profile plus the given
overrides; finished runs in ``--runs-dir`` are kept, so adding a dataset trains only its runs), then fuses
each run's stored per-modality probabilities again under every candidate rule
(``benchmarks/fusion_rules.py``: entropy, fixed, fixed-ref, calibrated, calibrated-entropy; the calibrated
rules' temperatures are fitted on the run's validation split) and writes
``benchmarks/results/mla_rule_selection.{md,json}``.

The choice: among the rules that any modality set can use (``fixed-ref``, weights preset for audio and
image, is scored but cannot be a default) and that were scored on every dataset, the one with the highest validation accuracy averaged over the datasets (each dataset's mean over seeds,
so every dataset counts once); a tie keeps the earlier rule of ``PREFERENCE`` (the previous default,
``entropy``, first). Test accuracy is reported beside it and never enters the choice.

What this can and cannot show: the models are trained and their epochs selected with the rule they are
trained with (``strategy.args.fusion_rule``, MLA's default when the overrides do not set it); another rule
is scored on a model selected for that one, which can only favour the trained rule. The
calibrated rules' validation accuracy uses temperatures fitted on that same validation split (two
numbers per model), as MLA's own selection under a calibrated rule does.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import fusion_rules  # noqa: E402  (benchmarks/ is not a package)

from polymodal.bench.results import write_results  # noqa: E402

NAME = "mla_rule_selection"
# ties keep the earlier rule: the previous default first (a change needs evidence), then the simpler rules
PREFERENCE = ("entropy", "fixed", "fixed-ref", "calibrated", "calibrated-entropy")


def train(datasets: list[str], seeds: str, runs_dir: Path, processes: int, overrides: list[str]) -> Path:
    """``polymodal bench`` for MLA on ``datasets`` into ``runs_dir``; returns its results JSON (per-run records)."""
    out = runs_dir / "bench"
    cmd = [sys.executable, "-m", "polymodal", "bench", "--strategies", "mla", "--dataset", ",".join(datasets),
           "--seeds", seeds, "--out", str(out), "--runs-dir", str(runs_dir), "--processes", str(processes), *overrides]
    subprocess.run(cmd, check=True)
    return out.with_suffix(".json")


def select(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per dataset, each rule's mean validation (and test) accuracy over seeds; the rule with the highest mean
    over datasets among those defined on every dataset."""
    val: dict[str, dict[str, list[float]]] = {}
    for r in records:
        if r["rule"] is None or r["rule"] == "trained":  # "trained" repeats the rule the runs were trained with
            continue
        val.setdefault(r["dataset"], {}).setdefault(r["rule"], []).append(r["val_acc"])
    if not val:
        raise ValueError("no re-scored runs: nothing to select from")
    datasets = sorted(val)
    general = {name for name, (_, weights) in fusion_rules.RULES.items() if weights is None}  # no per-modality preset
    candidates = sorted(set.intersection(*(set(by_rule) for by_rule in val.values())) & general)
    per_dataset = {d: {rule: float(np.mean(v)) for rule, v in val[d].items()} for d in datasets}
    score = {rule: float(np.mean([per_dataset[d][rule] for d in datasets])) for rule in candidates}
    rank = {rule: i for i, rule in enumerate(PREFERENCE)}
    chosen = max(candidates, key=lambda k: (score[k], -rank.get(k, len(PREFERENCE))))
    return {"datasets": datasets, "candidates": candidates, "mean_val_acc": score, "per_dataset_val_acc": per_dataset,
            "chosen": chosen}


def write(records: list[dict[str, Any]], protocol: str, command: str, out_dir: Path, name: str = NAME) -> tuple[Path, Path]:
    rows, differences, notes = fusion_rules.tables(records)
    sel = select(records)
    ranking = sorted(sel["candidates"], key=lambda k: -sel["mean_val_acc"][k])
    lines = [f"`{rule}` {100 * sel['mean_val_acc'][rule]:.2f} %" for rule in ranking]
    notes += (f"\nSelection (validation only): mean over the datasets ({', '.join(sel['datasets'])}) of each rule's "
              f"mean validation accuracy over seeds, among the rules any modality set can use: " + "; ".join(lines)
              + f". Chosen: `{sel['chosen']}`.\n")
    js, md = write_results(name, rows, protocol=protocol, command=command, out_dir=out_dir,
                           columns=["val_fused_acc", "fused_acc"], title="MLA's test-time rule, chosen on validation",
                           notes=notes)
    doc = json.loads(js.read_text())
    doc.update({"selection": sel, "differences": differences, "runs": records})
    js.write_text(json.dumps(doc, indent=2) + "\n")
    return js, md


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", help="comma-separated datasets, e.g. avdigits,avdigits-hard,avdigits-3view,utd-mhad")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--runs-dir", default="runs/bench/mla_rule_selection")
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--out", default=str(HERE / "results"))
    p.add_argument("--recompute", metavar="NAME.json", help="rebuild the tables from a results JSON written by this script")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides for every run")
    args = p.parse_args(argv)
    if args.recompute:
        path = Path(args.recompute)
        doc = json.loads(path.read_text())
        if not doc.get("runs") or "rule" not in doc["runs"][0] or "selection" not in doc:
            raise SystemExit(f"{path} was not written by benchmarks/mla_rule_selection.py (no 'selection' or per-run 'rule')")
        js, md = write(doc["runs"], doc["protocol"], doc["command"], Path(args.out), path.stem)
    else:
        if not args.datasets:
            p.error("--datasets is required (or --recompute NAME.json)")
        datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
        bad = [o for o in args.overrides if "=" not in o]
        if bad:
            p.error(f"overrides must be key=value; got {bad}")
        runs_dir = Path(args.runs_dir)
        bench = train(datasets, args.seeds, runs_dir, args.processes, args.overrides)
        records = fusion_rules.collect(bench, runs_dir)
        source = json.loads(bench.read_text())
        given = argv if argv is not None else sys.argv[1:]
        js, md = write(records, f"MLA's test-time rules re-applied to the runs of: {source['protocol']}",
                       "python benchmarks/mla_rule_selection.py " + " ".join(given), Path(args.out))
    print(f"wrote {md} and {js}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
