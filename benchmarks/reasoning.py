"""Reasoning through concepts on AV-digits: program / relation / concept-bottleneck fusions.

Bench profile (configs/avdigits_joint.yaml: small CNN encoders, cached log-mel, AdamW, cosine decay,
batch 64) with the learning rate, epochs and early stopping given below; selection on validation,
seeds 0, 1, 2. Writes benchmarks/results/reasoning.md and reasoning.json (``--name`` another name).

    python benchmarks/reasoning.py [--seeds 0,1,2] [--epochs 20] [--processes 2] [--only sum,compare,...]
    python benchmarks/reasoning.py --recompute [--name reasoning]   # the Markdown again from the JSON alone

Grid (every run trained through the engine, ``polymodal.bench.runner.run_jobs``):

    sum        avdigits-sum from the sum label alone: program (rule sum_mod10) and relation (learned
               table), both with strategy cbm, concept_weight=0 (no digit labels), balance=1; and the
               concept bottleneck with the digits supervised (cbm, joint mode, concept_weight=1)
    compare    avdigits-compare, program (rule compare), label only
    hard       avdigits-sum-hard, program (sum_mod10), label only
    hardsup    avdigits-sum-hard, program with the digits supervised (cbm, concept_weight=1)
    relsup     avdigits-sum, relation with the digits supervised (cbm, concept_weight=1): the rule
               must still be learned, from grounded concepts
    pairs      avdigits-sum, program, label only, 300 and 1,200 training pairs (2,400 = the sum runs)

After training, each run's best checkpoint is reloaded to read its concepts: concept accuracy per
modality after aligning latent concepts to digits on VALIDATION (program on a sum: the cyclic shift
a -> a + c, b -> b - c with the best agreement; relation: a Hungarian matching per modality; compare
and the supervised bottleneck: identity), the product of the two concept accuracies, the learned
table's agreement with the true one (relation), and the accuracy when 10 % / 30 % of the test
concepts are replaced by the true (aligned) digit, in two orders: the least confident first
(uncertainty-guided) and a random order (seed 0; Koh et al.'s baseline). The TFN rows are read from
benchmarks/results/fusions.json (same profile, at most 20 epochs). Each run folder also gets
``concepts_test.csv``: per test sample, the prediction and each concept's value and probability.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polymodal.bench.results import ResultRow, read_results, write_results
from polymodal.bench.runner import Job, run_jobs
from polymodal.reasoning import (
    ORDERS,
    as_table,
    best_permutation,
    best_shift,
    concept_outputs,
    explain,
    intervention_accuracy,
    load_run,
    table_agreement,
)

HERE = Path(__file__).resolve().parent
CONFIG = HERE.parent / "configs" / "avdigits_joint.yaml"
LABEL_ONLY = ("strategy.name=cbm", "strategy.args.concept_weight=0", "strategy.args.balance=1.0")
METHODS = {  # name -> (fusion overrides, strategy overrides)
    "program": (("model.fusion=program",), LABEL_ONLY),
    "relation": (("model.fusion=relation",), LABEL_ONLY),
    "cbm-supervised": (("model.fusion=concept_bottleneck",), ("strategy.name=cbm", "strategy.args.concept_weight=1.0")),
    "relation-supervised": (("model.fusion=relation",), ("strategy.name=cbm", "strategy.args.concept_weight=1.0")),
    "program-supervised": (("model.fusion=program",), ("strategy.name=cbm", "strategy.args.concept_weight=1.0")),
}
RULE = {"avdigits-sum": "sum_mod10", "avdigits-sum-hard": "sum_mod10", "avdigits-compare": "compare"}
FRACTIONS = (0.0, 0.1, 0.3)
# intervention order -> key prefix in the analysis and variant suffix in the table
INTERVENE = {"uncertainty": "intervene", "random": "intervene_random"}
VARIANT = {"uncertainty": "intervene", "random": "intervene-random"}
COLUMNS = ("fused_acc", "audio_concept_acc", "image_concept_acc", "concept_product_acc", "rule_table_acc", "sec_per_epoch")


def jobs_for(groups: list[str], seeds: list[int], epochs: int, lr: float) -> list[Job]:
    common = (f"trainer.max_epochs={epochs}", "trainer.patience=null", f"optim.lr={lr}")
    grid: list[tuple[str, str, int | None]] = []  # (dataset, method, pairs)
    if "sum" in groups:
        grid += [("avdigits-sum", m, None) for m in ("program", "relation", "cbm-supervised")]
    if "relsup" in groups:  # the relation head with the digits supervised: does it find the rule then?
        grid.append(("avdigits-sum", "relation-supervised", None))
    if "compare" in groups:
        grid.append(("avdigits-compare", "program", None))
    if "hard" in groups:
        grid.append(("avdigits-sum-hard", "program", None))
    if "hardsup" in groups:  # the corrupted sum with the digits supervised
        grid.append(("avdigits-sum-hard", "program-supervised", None))
    if "pairs" in groups:
        grid += [("avdigits-sum", "program", n) for n in (300, 1200)]
    jobs = []
    for ds, method, pairs in grid:
        fusion, strategy = METHODS[method]
        rule = (f"model.fusion_args.rule={RULE[ds]}",) if method.startswith("program") else ()
        subset = () if pairs is None else (f"data.split_options.train.pairs={pairs}",)
        for seed in seeds:
            name = f"{ds}-{method}" + ("" if pairs is None else f"-pairs{pairs}") + f"-seed{seed}"
            overrides = (f"data.dataset={ds}", *fusion, *rule, *strategy, *subset, *common, f"seed={seed}")
            jobs.append(Job(name, overrides, {"dataset": ds, "method": method, "pairs": pairs, "seed": seed}))
    return jobs


def analyse(run_dir: Path, dataset: str, method: str) -> dict[str, float]:
    """Concept accuracies (aligned on val, measured on test), table agreement, intervention curve."""
    torch.set_num_threads(1)
    model, splits = load_run(run_dir, ["val", "test"])
    outs = {s: concept_outputs(model, splits[s]) for s in ("val", "test")}
    truth = {s: (splits[s].concept_labels["audio"]["digit"], splits[s].concept_labels["image"]["digit"]) for s in outs}
    pred = {s: (o.probs["audio.concept"].argmax(1), o.probs["image.concept"].argmax(1)) for s, o in outs.items()}
    res: dict[str, float] = {"fused_acc": outs["test"].accuracy}
    if method == "program" and dataset != "avdigits-compare":  # sum: align by the best cyclic shift on val
        c = best_shift(pred["val"][0], truth["val"][0], pred["val"][1], truth["val"][1])
        perms = [(np.arange(10) + c) % 10, (np.arange(10) - c) % 10]
        res["shift"] = c
    elif method.startswith("relation"):  # Hungarian matching of each modality's latent values to digits on val
        perms = [best_permutation(pred["val"][i], truth["val"][i], 10) for i in range(2)]
        true_table = as_table("sum_mod10", [10, 10], 10)
        res["rule_table_acc"] = table_agreement(model.fusion.relation_table().detach(), true_table, perms)
    else:
        perms = [np.arange(10), np.arange(10)]
    latent = {s: (perms[0][truth[s][0]], perms[1][truth[s][1]]) for s in truth}  # true digit in latent coordinates
    res["audio_concept_acc"] = float(np.mean(pred["test"][0] == latent["test"][0]))
    res["image_concept_acc"] = float(np.mean(pred["test"][1] == latent["test"][1]))
    res["concept_product_acc"] = res["audio_concept_acc"] * res["image_concept_acc"]
    true = {"audio.concept": latent["test"][0], "image.concept": latent["test"][1]}
    for order in ORDERS:
        curve = intervention_accuracy(model, outs["test"], true, FRACTIONS, order=order, seed=0)
        res.update({f"{INTERVENE[order]}_{round(100 * f)}": v for f, v in curve.items()})
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default="sum,relsup,compare,hard,hardsup,pairs")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--lr", type=float, default=0.002)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--runs-dir", default=str(HERE / "runs" / "reasoning"))
    p.add_argument("--out", default=str(HERE / "results"))
    p.add_argument("--train", action=argparse.BooleanOptionalAction, default=True, help="train missing runs (else report finished ones)")
    p.add_argument("--name", default="reasoning", help="results file name under --out (NAME.md, NAME.json)")
    p.add_argument("--recompute", action="store_true",
                   help="rewrite --out/NAME.md and its differences from --out/NAME.json alone (no runs read)")
    args = p.parse_args(argv)
    if args.recompute:
        md = recompute(Path(args.out) / f"{args.name}.json")
        print(f"wrote {md}")
        return 0
    groups = args.only.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    jobs = jobs_for(groups, seeds, args.epochs, args.lr)
    runs_dir = Path(args.runs_dir)
    if args.train:
        run_jobs(jobs, runs_dir, config=str(CONFIG), processes=args.processes)
    cache = runs_dir / "analysis.json"
    done = json.loads(cache.read_text()) if cache.is_file() else {}
    per_job: dict[str, dict[str, float]] = {}
    for j in jobs:
        if not (runs_dir / j.name / "results.json").is_file():
            continue
        if j.name not in done:
            done[j.name] = analyse(runs_dir / j.name, j.tags["dataset"], j.tags["method"])
            done[j.name]["sec_per_epoch"] = json.loads((runs_dir / j.name / "results.json").read_text())["sec_per_epoch"]
            cache.write_text(json.dumps(done, indent=1))
        per_job[j.name] = done[j.name]
        table = runs_dir / j.name / "concepts_test.csv"
        if not table.is_file():  # per-sample explanation: prediction, each concept's value and probability
            model, splits = load_run(runs_dir / j.name, ["test"])
            explain(model, splits["test"]).to_csv(table, index=False)

    rows: list[ResultRow] = []
    keys = sorted({(j.tags["dataset"], j.tags["method"], j.tags["pairs"]) for j in jobs}, key=str)
    for ds, method, pairs in keys:
        got = [per_job[j.name] for j in jobs if (j.tags["dataset"], j.tags["method"], j.tags["pairs"]) == (ds, method, pairs) and j.name in per_job]
        if not got:
            continue
        kw = {"variant": method, "label_budget": pairs or 2400}
        for metric in COLUMNS:
            vals = [g[metric] for g in got if metric in g]
            if vals:
                rows.append(ResultRow("cbm", ds, metric, vals, **kw))
        if pairs is None:
            for order in ORDERS:
                for f in FRACTIONS[1:]:
                    vals = [g[f"{INTERVENE[order]}_{round(100 * f)}"] for g in got if f"{INTERVENE[order]}_{round(100 * f)}" in g]
                    if vals:
                        rows.append(ResultRow("cbm", ds, "fused_acc", vals, label_budget=2400,
                                              variant=f"{method}+{VARIANT[order]}-{round(100 * f)}%"))
    fusions = HERE / "results" / "fusions.json"
    if fusions.is_file():
        for r in read_results(fusions)[2]:
            if r.dataset == "avdigits-sum" and r.fusion == "tfn" and r.metric in ("fused_acc", "sec_per_epoch"):
                rows.append(ResultRow("joint", r.dataset, r.metric, r.values, variant="tfn (fusions.md)", label_budget=2400))
    records = run_records(jobs, runs_dir, per_job)
    # the command that reproduces the table (--no-train only re-tabulates finished runs, so it is left out)
    given = [a for a in (argv if argv is not None else sys.argv[1:]) if a not in ("--no-train", "--train")]
    command = "python benchmarks/reasoning.py " + " ".join(given)
    protocol = (f"AV-digits (sum, compare, sum-hard); bench profile (configs/avdigits_joint.yaml) with lr {args.lr}, "
                f"{args.epochs} epochs, no early stopping; selection on val; test accuracy; seeds {args.seeds}; "
                "concept accuracies after aligning latent concepts to digits on val")
    js, md = write_table(args.name, rows, records, protocol=protocol, command=command.strip(), out_dir=Path(args.out))
    print(f"wrote {md} and {js}")
    return 0


def write_table(name: str, rows: list[ResultRow], records: list[dict[str, Any]], *, protocol: str, command: str,
                out_dir: Path, history: str = "") -> tuple[Path, Path]:
    """NAME.md and NAME.json from the rows and the per-run records (the differences are computed from the
    records); ``history`` (kept in the JSON) is a note on where the rows come from, shown after the notes."""
    differences = reasoning_differences(records)
    notes = NOTES + spread_text(rows) + differences_text(differences) + (f"\n{history.strip()}\n" if history.strip() else "")
    js, md = write_results(
        name,
        rows,
        protocol=protocol,
        command=command,
        out_dir=out_dir,
        columns=[c for c in COLUMNS if any(r.metric == c for r in rows)],
        title="Reasoning through concepts on AV-digits",
        notes=notes,
    )
    doc = json.loads(js.read_text())  # the per-run records and the differences, so the intervals recompute
    doc.update({"differences": differences, "runs": records})
    if history.strip():
        doc["history"] = history.strip()
    js.write_text(json.dumps(doc, indent=2) + "\n")
    return js, md


def recompute(path: Path) -> Path:
    """Rewrite the Markdown twin of the results file ``path`` (and its differences) from the file alone."""
    protocol, command, rows = read_results(path)
    doc = json.loads(path.read_text())
    _, md = write_table(path.stem, rows, doc.get("runs", []), protocol=protocol, command=command,
                        out_dir=path.parent, history=doc.get("history", ""))
    return md


# (dataset, A, B): A - B in fused test accuracy, each on its 2,400-pair runs
COMPARISONS = (
    ("avdigits-sum", "program", "relation"),
    ("avdigits-sum", "program", "cbm-supervised"),
    ("avdigits-sum", "relation-supervised", "program"),
    ("avdigits-sum-hard", "program-supervised", "program"),
)


def run_records(jobs: list[Job], runs_dir: Path, per_job: dict[str, Any]) -> list[dict[str, Any]]:
    """One record per finished full-budget run: dataset, method, seed and its per-sample test correctness."""
    from polymodal.bench.command import test_correct
    from polymodal.bench.tables import encode_correct

    out = []
    for j in jobs:
        if j.name in per_job and j.tags["pairs"] is None:
            correct = test_correct(runs_dir / j.name)
            if correct is not None:
                out.append({"dataset": j.tags["dataset"], "method": j.tags["method"], "seed": j.tags["seed"],
                            "test_correct": encode_correct(correct)})
    return out


def reasoning_differences(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """:data:`COMPARISONS` with the crossed paired bootstrap of ``polymodal bench`` (one set of test samples
    per draw shared by every seed and both methods; seeds resampled), from the records alone."""
    from polymodal.bench.compare import paired_by_seed
    from polymodal.bench.tables import decode_correct

    by: dict[tuple[str, str], dict[int, Any]] = {}
    for r in records:
        by.setdefault((r["dataset"], r["method"]), {})[int(r["seed"])] = decode_correct(r["test_correct"])
    out = []
    for ds, a, b in COMPARISONS:
        ra, rb = by.get((ds, a), {}), by.get((ds, b), {})
        d = paired_by_seed(ra, rb)
        if d is not None:
            out.append({"dataset": ds, "method": a, "baseline": b, "metric": "fused_acc", **d})
    return out


def spread_text(rows: list[ResultRow]) -> str:
    """The seed-to-seed spread of the trained rows' fused test accuracy (std over seeds, points)."""
    stds = sorted(100 * float(np.std(r.values, ddof=1)) for r in rows  # the rows trained here (not fusions.md's)
                  if r.metric == "fused_acc" and len(r.values) > 1 and r.method == "cbm"
                  and "+intervene" not in str(r.to_dict().get("variant")))
    if not stds:
        return ""
    return (f"\nSeed-to-seed spread of fused test accuracy (std over seeds): median {float(np.median(stds)):.1f} points, "
            f"range {stds[0]:.1f}-{stds[-1]:.1f}.\n")


def differences_text(differences: list[dict[str, Any]]) -> str:
    """The notes' paragraph on the differences (what reasoning.md shows)."""
    if not differences:
        return ""
    parts = [f"{d['method']} - {d['baseline']} on {d['dataset']} = {100 * d['mean']:+.1f} points "
             f"[{100 * d['ci95'][0]:+.1f}, {100 * d['ci95'][1]:+.1f}] ({d['n_seeds']} seed{'s' if d['n_seeds'] != 1 else ''})"
             for d in differences]
    half = sorted(50 * (d["ci95"][1] - d["ci95"][0]) for d in differences)
    return ("\nDifferences in fused test accuracy, crossed paired bootstrap 95 % interval (seed s of one method "
            "paired with seed s of the other; test samples resampled once per draw for all seeds): "
            + "; ".join(parts) + f". A typical interval's half-width is {half[len(half) // 2]:.1f} points.\n")


NOTES = """\
method `cbm` = the cbm strategy (docs/reasoning.md); variant = the fusion: `program` (known rule,
exact), `relation` (learned table), trained from the task label alone (no digit labels, balance=1);
`cbm-supervised` = concept bottleneck with the digits supervised (joint mode, concept_weight=1);
`relation-supervised` / `program-supervised` = those fusions with the digits supervised the same way.
`+intervene-k%`: the same models with k % of the test concepts (over all (sample, modality) slots)
replaced by the true digit, the least confident first (uncertainty-guided); `+intervene-random-k%`: the
same in a random order (seed 0), the baseline of Koh et al. (ICML 2020). label_budget = training pairs.
Concept accuracies: test, after aligning each model's latent concepts to digits on validation (program
on a sum from the label alone: the best cyclic shift; relation: Hungarian matching; compare and the
supervised models: none). concept_product_acc = audio x image concept accuracy (what the fused accuracy
would be if the rule were applied to the argmax concepts with independent errors).
rule_table_acc = fraction of the 100 digit pairs whose learned class (argmax of the relation table at the
aligned concepts) is the true (a + b) mod 10. `joint / tfn (fusions.md)`: the best fusion of
benchmarks/results/fusions.md on avdigits-sum (bench profile, at most 20 epochs, lr 2e-3, early stopping).
Seconds per epoch were measured with several runs sharing 2 CPU cores next to other work.
avdigits-sum is (spoken digit + written digit) mod 10, 10 classes, from 2,400 pairs: not the task of the
DeepProbLog / Scallop figures (about 97-98 %), MNIST addition with the full sum (19 classes, two written
digits, roughly ten times more pairs), so the numbers do not compare directly.
"""


if __name__ == "__main__":
    sys.exit(main())
