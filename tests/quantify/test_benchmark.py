"""benchmarks/quantify.py and its committed results: every table re-renders from its JSON, every recipe it
trains is a valid configuration, and each table links the first seed's reports it ships."""

from __future__ import annotations

import json

import numpy as np
import pytest

from .._benchmarks import ROOT, load_benchmark

RESULTS = ROOT / "benchmarks" / "results" / "quantify"
TABLES = sorted(p for p in RESULTS.glob("*.json") if p.stem != "cost")


def test_the_committed_tables_are_there():
    assert {p.stem for p in TABLES} >= {"avdigits-hard", "avdigits-sum", "utd-mhad"}
    assert (RESULTS / "cost.json").is_file()


@pytest.mark.parametrize("path", [*TABLES, RESULTS / "cost.json"], ids=lambda p: p.stem)
def test_each_table_rerenders_from_its_json(path):
    bench = load_benchmark("quantify")
    doc = json.loads(path.read_text())
    text = bench.render_cost(doc) if "wall_seconds" in doc else bench.render(doc)
    assert text == path.with_suffix(".md").read_text()


@pytest.mark.parametrize("path", TABLES, ids=lambda p: p.stem)
def test_each_cell_is_the_mean_and_std_of_its_seeds_and_links_its_reports(path):
    doc = json.loads(path.read_text())
    assert doc["protocol"] and doc["command"].startswith("python benchmarks/quantify.py") and doc["n"] == 3
    for row in doc["rows"]:
        assert row["mean"] == pytest.approx(float(np.mean(row["values"])), abs=1e-12)
        if row["n"] > 1:
            assert row["std"] == pytest.approx(float(np.std(row["values"], ddof=1)), abs=1e-12)
    for method in dict.fromkeys(r["method"] for r in doc["rows"]):
        report = RESULTS / f"{doc['dataset']}-{method}" / "quantify.md"
        assert report.is_file(), report
        assert f"{doc['dataset']}-{method}-seed{doc['seeds'][0]}" in report.read_text().splitlines()[0]


@pytest.mark.parametrize("dataset", ["avdigits-hard", "avdigits-sum", "utd-mhad"])
def test_every_recipe_is_a_valid_configuration(dataset):
    from polymodal.config import load_config

    bench = load_benchmark("quantify")
    recipes = bench.methods_of(dataset)
    if dataset == "utd-mhad":  # its own encoders and recipe, as benchmarks/results/utd_mhad.md was trained
        assert {m: recipes[m][0] for m in ("joint", "mla")} == {"joint": "utd_mhad.yaml", "mla": "utd_mhad.yaml"}
    for method, (config, overrides) in recipes.items():
        cfg = load_config(str(ROOT / "configs" / config), [f"data.dataset={dataset}", *overrides, "seed=0"])
        assert cfg.strategy.name == {"tfn": "joint", "program": "cbm"}.get(method, method)


def test_numbers_of_a_three_modality_report():
    bench = load_benchmark("quantify")
    mods = ["a", "b", "c"]
    subsets = {"+".join(s): {"fused_acc": 0.5} for s in (["a"], ["b"], ["c"], mods)}
    pid = {"redundancy": 0.1, "unique1": 0.2, "unique2": 0.3, "synergy": 0.4, "synergy_floor": 0.3, "mi_joint": 1.0}
    q = {"modalities": mods, "subsets": subsets, "shapley": {"phi": {"a": 0.1, "b": 0.2, "c": 0.3}},
         "deciding": {"a": 0.2, "b": 0.3, "c": 0.4, "none": 0.1}, "pid": {"a+b": pid, "a+c": pid, "b+c": pid},
         "emap": {"projection": {"fused_acc": 0.4}, "gap": 0.1}, "seconds": {"total": 3.0}}
    got = bench.numbers(q)
    assert got["shapley_c"] == 0.3 and got["decides_none"] == 0.1
    assert got["pid_a+c_unique_c"] == 0.3 and got["pid_b+c_synergy_floor"] == 0.3 and got["emap_gap"] == 0.1
