"""Recipe search on validation, the same budget for every method: which optimiser, learning rate,
schedule and number of epochs the bench profile should use.

Stage 1 trains every (method, recipe) of the grid with seed 0 and ranks the recipes of each method by
validation fused accuracy. Stage 2 trains the ``--finalists`` best recipes of each method with seeds 1
and 2 as well; the chosen recipe of a method is the finalist with the best mean validation accuracy
over the three seeds. Test accuracy is reported beside it and is never used to choose. Runs are
ordinary run folders under ``--runs-dir`` and finished ones are reused, so an interrupted search
resumes. Writes benchmarks/results/recipe_search.md and .json.

    python benchmarks/recipe_search.py [--methods joint,unimodal,mla] [--grid full|medium|small] [--processes 2]

The grid (``full``): SGD (momentum 0.9) at lr 0.01, 0.03, 0.1 and AdamW at lr 5e-4, 2e-3, 5e-3, each
with a cosine or a constant schedule, for 20 or 40 epochs (24 recipes per method), weight decay 1e-4,
batch 64, early stopping with patience 5 on validation, on avdigits-hard with the default encoders.
``medium`` keeps the six optimiser/lr pairs with the cosine schedule and 20 epochs (6 recipes per
method); ``small`` is a two-recipe smoke grid.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.bench.results import ResultRow, write_results
from polymodal.bench.runner import Job, run_jobs

HERE = Path(__file__).resolve().parent
GRIDS = {
    "full": {"opt": [("sgd", 0.01), ("sgd", 0.03), ("sgd", 0.1), ("adamw", 5e-4), ("adamw", 2e-3), ("adamw", 5e-3)],
             "scheduler": ["cosine", "none"], "epochs": [20, 40]},
    "medium": {"opt": [("sgd", 0.01), ("sgd", 0.05), ("sgd", 0.1), ("adamw", 1e-3), ("adamw", 2e-3), ("adamw", 5e-3)],
               "scheduler": ["cosine"], "epochs": [20]},
    "small": {"opt": [("sgd", 0.05), ("adamw", 2e-3)], "scheduler": ["cosine"], "epochs": [20]},
}
FUSION = {"mla": "shared_head"}


def recipes(grid: str) -> list[dict[str, Any]]:
    g = GRIDS[grid]
    return [{"optim": o, "lr": lr, "scheduler": sch, "epochs": ep}
            for (o, lr), sch, ep in itertools.product(g["opt"], g["scheduler"], g["epochs"])]


def recipe_name(r: dict[str, Any]) -> str:
    return f"{r['optim']}-lr{r['lr']:g}-{r['scheduler']}-{r['epochs']}ep"


def job(method: str, r: dict[str, Any], seed: int, dataset: str) -> Job:
    overrides = [f"strategy.name={method}", f"data.dataset={dataset}", f"seed={seed}", f"optim.name={r['optim']}",
                 f"optim.lr={r['lr']}", f"optim.scheduler={r['scheduler']}", f"trainer.max_epochs={r['epochs']}"]
    if method in FUSION:
        overrides.append(f"model.fusion={FUSION[method]}")
    return Job(f"{dataset}-{method}-{recipe_name(r)}-seed{seed}", tuple(overrides),
               {"method": method, "recipe": recipe_name(r), "seed": seed})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default="joint,unimodal,mla")
    p.add_argument("--dataset", default="avdigits-hard")
    p.add_argument("--grid", choices=sorted(GRIDS), default="full")
    p.add_argument("--finalists", type=int, default=2)
    p.add_argument("--processes", type=int, default=None)
    p.add_argument("--runs-dir", default="runs/recipe_search")
    p.add_argument("--out", default=str(HERE / "results"))
    args = p.parse_args(argv)
    methods = args.methods.split(",")
    grid = recipes(args.grid)
    by_name = {recipe_name(r): r for r in grid}
    stage1 = [job(m, r, 0, args.dataset) for m in methods for r in grid]
    res = run_jobs(stage1, args.runs_dir, processes=args.processes)
    val1 = {(j.tags["method"], j.tags["recipe"]): res[j.name]["val"]["fused_acc"] for j in stage1 if j.name in res}
    finalists = {m: sorted((r for (mm, r) in val1 if mm == m), key=lambda r: -val1[(m, r)])[: args.finalists] for m in methods}
    stage2 = [job(m, by_name[r], s, args.dataset) for m in methods for r in finalists[m] for s in (1, 2)]
    res.update(run_jobs(stage2, args.runs_dir, processes=args.processes))
    rows: list[ResultRow] = []
    chosen: dict[str, str] = {}
    for m in methods:
        for r in grid:
            name = recipe_name(r)
            seeds = [s for s in (0, 1, 2) if job(m, r, s, args.dataset).name in res]
            if not seeds:
                continue
            runs = [res[job(m, r, s, args.dataset).name] for s in seeds]
            rows.append(ResultRow(m, args.dataset, "fused_acc", [x["val"]["fused_acc"] for x in runs], variant=f"{name}, val"))
            rows.append(ResultRow(m, args.dataset, "fused_acc", [x["test"]["fused_acc"] for x in runs], variant=f"{name}, test"))
        means = {r: float(np.mean([res[job(m, by_name[r], s, args.dataset).name]["val"]["fused_acc"]
                                   for s in (0, 1, 2) if job(m, by_name[r], s, args.dataset).name in res]))
                 for r in finalists[m]}
        if means:
            chosen[m] = max(means, key=means.get)
    command = "python benchmarks/recipe_search.py " + " ".join(argv if argv is not None else sys.argv[1:])
    notes = "Chosen recipe per method (best mean validation accuracy of the finalists over seeds 0-2):\n\n" + "\n".join(
        f"- {m}: {r}" for m, r in chosen.items())
    _, md = write_results(
        "recipe_search", rows, command=command.strip(), out_dir=args.out, title="Recipe search on validation",
        protocol=(f"{args.dataset}; methods {', '.join(methods)}; grid {args.grid} ({len(grid)} recipes: optimiser, lr, "
                  f"schedule, epochs; weight decay 1e-4, batch 64, patience 5); stage 1 seed 0 for every recipe, stage 2 "
                  f"seeds 1-2 for the {args.finalists} best per method by val fused accuracy; selection on val only; "
                  f"test shown, never used to choose"),
        notes=notes,
    )
    print(md.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
