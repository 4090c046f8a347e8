import csv
import json

import pytest

from polymodal.cli import main


def test_bench_runs_writes_tables_and_resumes(tmp_path, capsys):
    out = tmp_path / "results" / "smoke"
    args = ["bench", "--strategies", "joint,mla", "--dataset", "synthetic", "--seeds", "0,1", "--out", str(out),
            "--processes", "2", "--runs-dir", str(tmp_path / "runs"), "--strategy-args", "mla.hgm_mean=running",
            "trainer.max_epochs=2", "model.width=8"]
    assert main(args) == 0, capsys.readouterr().err
    for ext in ("md", "json", "csv", "png"):
        assert (out.parent / f"smoke.{ext}").is_file(), ext
    doc = json.loads((out.parent / "smoke.json").read_text())
    fused = {r["method"]: r for r in doc["rows"] if r["metric"] == "fused_acc"}
    assert set(fused) == {"joint", "mla"} and all(r["n"] == 2 for r in fused.values())
    assert {r["metric"] for r in doc["rows"]} >= {"fused_acc", "a_acc", "b_acc", "macro_f1", "sec_per_epoch", "epoch"}
    (diff,) = doc["differences"]
    assert diff["method"] == "mla" and diff["baseline"] == "joint" and diff["ci95"][0] <= diff["mean"] <= diff["ci95"][1]
    md = (out.parent / "smoke.md").read_text()
    assert "Difference to `joint`" in md and "| mla | synthetic |" in md
    assert "strategy args mla.hgm_mean=running" in doc["protocol"]
    cfg = (tmp_path / "runs" / "synthetic-mla-seed0" / "config.yaml").read_text()
    assert "hgm_mean: running" in cfg
    with open(out.parent / "smoke.csv") as f:
        assert len(list(csv.DictReader(f))) == 4
    capsys.readouterr()
    assert main(args) == 0  # finished runs are kept and skipped
    assert "4 of 4 runs already finished" in capsys.readouterr().out


def test_bench_rejects_bad_input_before_running(tmp_path, capsys):
    assert main(["bench", "--strategies", "jointt", "--dataset", "synthetic", "--out", str(tmp_path / "x")]) == 2
    assert "unknown strategy 'jointt'" in capsys.readouterr().err
    assert main(["bench", "--strategies", "joint", "--dataset", "synthetic", "--seeds", "a", "--out", str(tmp_path / "x")]) == 1
    assert "--seeds" in capsys.readouterr().err
    assert main(["bench", "--strategies", "joint", "--dataset", "synthetic", "--strategy-args", "mla.hgm=false",
                 "--out", str(tmp_path / "x")]) == 1
    assert "NAME.KEY=VALUE" in capsys.readouterr().err


def test_bench_missing_protocol_reports_realised_rates(tmp_path, capsys):
    out = tmp_path / "results" / "missing"
    args = ["bench", "--strategies", "joint,unimodal", "--dataset", "synthetic", "--seeds", "0", "--out", str(out),
            "--processes", "2", "--runs-dir", str(tmp_path / "runs"), "--missing-rate", "0.3", "--missing-at", "test,both", "trainer.max_epochs=1", "model.width=8"]
    # the synthetic dataset names its option `missing`; map the protocol's keys onto it
    from polymodal.bench import command

    assert command.missing_settings([0.3], ["train"])[0].overrides == (
        "data.split_options.train.missing_rate=0.3", "data.split_options.train.missing_seed=0")
    assert main(args) == 0, capsys.readouterr().err
    doc = json.loads((out.parent / "missing.json").read_text())
    conds = {(r["missing_rate"], r["missing_at"]) for r in doc["rows"]}
    assert conds == {(0.3, "test"), (0.3, "both")}
    realised = {(x["method"], x["missing_at"]): x for x in doc["realised_missing_rates"]}
    assert realised[("joint", "test")]["train"] == 0 and realised[("joint", "test")]["val"] == 0
    assert abs(realised[("joint", "test")]["test"] - 0.3) < 0.1
    assert abs(realised[("joint", "both")]["train"] - 0.3) < 0.1
    assert "Realised missing rates" in (out.parent / "missing.md").read_text()
    # missing at test only: the model trained on complete data is evaluated, not trained again
    runs = tmp_path / "runs"
    derived = json.loads((runs / "synthetic-joint-miss0.3-test-seed0" / "results.json").read_text())
    base = json.loads((runs / "synthetic-joint-seed0" / "results.json").read_text())
    assert derived["derived_from"] == "synthetic-joint-seed0" and derived["val"] == base["val"]
    assert derived["best_epoch"] == base["best_epoch"]
    assert "missing_rate: 0.3" in (runs / "synthetic-joint-miss0.3-test-seed0" / "config.yaml").read_text()
    import numpy as np

    with np.load(runs / "synthetic-joint-miss0.3-test-seed0" / "predictions_test.npz") as z:
        absent = 1 - np.mean([z[k].mean() for k in z.files if k.startswith("present_")])
    assert abs(absent - 0.3) < 0.1
    with np.load(runs / "synthetic-joint-seed0" / "predictions_test.npz") as z:
        assert all(z[k].all() for k in z.files if k.startswith("present_"))
    assert not (runs / "synthetic-joint-miss0.3-test-seed0.partial").exists()
    assert main([*args[:-4], "--missing-at", "never"]) == 1


def test_bench_variants_are_rows_with_a_variant_key(tmp_path, capsys):
    out = tmp_path / "results" / "ablation"
    args = ["bench", "--strategies", "mla", "--dataset", "synthetic", "--seeds", "0", "--out", str(out),
            "--processes", "2", "--runs-dir", str(tmp_path / "runs"), "--variant", "hgm:",
            "--variant", "no-hgm:strategy.args.hgm=false,strategy.args.fusion_rule=fixed", "--baseline", "variant:hgm",
            "trainer.max_epochs=1", "model.width=8"]
    assert main(args) == 0, capsys.readouterr().err
    doc = json.loads((out.parent / "ablation.json").read_text())
    assert {r["variant"] for r in doc["rows"]} == {"hgm", "no-hgm"}
    (diff,) = doc["differences"]  # every variant against the named one, within the strategy
    assert (diff["method"], diff["variant"], diff["baseline"], diff["n_seeds"]) == ("mla", "no-hgm", "variant:hgm", 1)
    assert "Difference to variant `hgm` of the same method" in (out.parent / "ablation.md").read_text()
    for bad, message in (("variant:hgmm", "no --variant is named 'hgmm'"), ("joint", "not one of --strategies")):
        i = args.index("variant:hgm")
        assert main([*args[:i], bad, *args[i + 1:]]) == 1
        assert message in capsys.readouterr().err
    cfg = (tmp_path / "runs" / "synthetic-mla-v-no-hgm-seed0" / "config.yaml").read_text()
    assert "hgm: false" in cfg and "fusion_rule: fixed" in cfg
    assert main([*args[:-2], "--variant", "bad name:x=1"]) == 1
    assert "plain NAME" in capsys.readouterr().err


def test_strategy_args_take_the_seed_umt_learns_from_its_own_seeds_teacher(tmp_path, capsys):
    runs = tmp_path / "runs"
    common = ["--dataset", "synthetic", "--seeds", "0,1", "--processes", "2", "--runs-dir", str(runs), "trainer.max_epochs=1", "model.width=8"]
    assert main(["bench", "--strategies", "unimodal", "--out", str(tmp_path / "t"), *common]) == 0, capsys.readouterr().err
    teacher = str(runs / "synthetic-unimodal-seed{seed}")
    assert main(["bench", "--strategies", "unimodal,umt", "--out", str(tmp_path / "u"), *common,
                 "--strategy-args", f"umt.teachers={{a: {teacher}, b: {teacher}}}"]) == 0, capsys.readouterr().err
    for seed in (0, 1):
        cfg = (runs / f"synthetic-umt-seed{seed}" / "config.yaml").read_text()
        assert f"synthetic-unimodal-seed{seed}" in cfg and "{seed}" not in cfg
    assert "2 of 4 runs already finished" in capsys.readouterr().out


def test_tables_are_recomputed_from_the_json_alone_with_poe_rows(tmp_path, capsys):
    import shutil

    out = tmp_path / "results" / "recompute"
    runs = tmp_path / "runs"
    args = ["bench", "--strategies", "joint,unimodal", "--dataset", "synthetic", "--seeds", "0,1", "--out", str(out),
            "--processes", "2", "--runs-dir", str(runs), "trainer.max_epochs=2", "model.width=8"]
    assert main(args) == 0, capsys.readouterr().err
    doc = json.loads((out.parent / "recompute.json").read_text())
    assert doc["format"] == 2 and doc["baseline"] == "joint"
    records = {(r["method"], r["seed"]): r for r in doc["runs"]}
    assert set(records) == {(m, s) for m in ("joint", "unimodal", "poe") for s in (0, 1)}
    n = records[("joint", 0)]["test"]["n"]
    assert all(len(r["test_correct"]) == n and set(r["test_correct"]) <= {"0", "1"} for r in records.values())
    for r in records.values():  # the correctness vector is the accuracy the table shows
        assert r["test"]["fused_acc"] == pytest.approx(r["test_correct"].count("1") / n)
    poe = records[("poe", 0)]
    assert poe["derived_from"] == "synthetic-unimodal-seed0" and set(poe["temperatures"]) == {"a", "b"}
    assert {d["method"] for d in doc["differences"]} == {"unimodal", "poe"}
    assert "poe" in doc["protocol"]
    md_before = (out.parent / "recompute.md").read_text()
    assert "| poe | synthetic |" in md_before and "half-width" in md_before and "spread" in md_before
    # a fresh clone has no run folders: the tables come back from the JSON alone, identical
    shutil.rmtree(runs)
    for ext in ("md", "csv", "png"):
        (out.parent / f"recompute.{ext}").unlink()
    capsys.readouterr()
    assert main(["bench", "--recompute", str(out.parent / "recompute.json")]) == 0, capsys.readouterr().err
    assert (out.parent / "recompute.md").read_text() == md_before
    assert json.loads((out.parent / "recompute.json").read_text()) == doc
    assert (out.parent / "recompute.csv").is_file() and (out.parent / "recompute.png").is_file()


def test_recompute_refuses_a_file_without_run_records(tmp_path, capsys):
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"protocol": "p", "command": "c", "rows": []}))
    assert main(["bench", "--recompute", str(old)]) == 1
    err = capsys.readouterr().err
    assert "no per-run records" in err and "command" in err
    assert main(["bench", "--recompute", str(old), "--strategies", "joint"]) == 1
    assert "drop ['--strategies']" in capsys.readouterr().err
    assert main(["bench", "--strategies", "joint"]) == 1
    assert "--dataset, --out" in capsys.readouterr().err


def test_replace_runs_puts_a_rerun_methods_records_in_place_and_recomputes(tmp_path, capsys):
    common = ["--dataset", "synthetic", "--processes", "2", "trainer.max_epochs=2", "model.width=8"]
    base = tmp_path / "base"
    assert main(["bench", "--strategies", "joint,mla", "--seeds", "0,1", "--out", str(base),
                 "--runs-dir", str(tmp_path / "r1"), *common]) == 0, capsys.readouterr().err
    new = tmp_path / "new"
    assert main(["bench", "--strategies", "mla", "--seeds", "0,1", "--out", str(new), "--runs-dir", str(tmp_path / "r2"),
                 *common, "strategy.args.fusion_rule=fixed"]) == 0, capsys.readouterr().err
    before = json.loads(base.with_suffix(".json").read_text())
    fresh = {r["seed"]: r for r in json.loads(new.with_suffix(".json").read_text())["runs"]}
    capsys.readouterr()
    assert main(["bench", "--recompute", str(base.with_suffix(".json")), "--replace-runs", str(new.with_suffix(".json"))]) == 0
    assert "replaced the runs of mla, synthetic" in capsys.readouterr().out
    after = json.loads(base.with_suffix(".json").read_text())
    assert [r for r in after["runs"] if r["method"] == "joint"] == [r for r in before["runs"] if r["method"] == "joint"]
    assert {r["seed"]: r for r in after["runs"] if r["method"] == "mla"} == fresh
    acc = next(r for r in after["rows"] if r["method"] == "mla" and r["metric"] == "fused_acc")
    assert acc["values"] == pytest.approx([fresh[s]["test"]["fused_acc"] for s in (0, 1)])
    assert "fusion_rule=fixed" in after["command"] and "replaced by those of" in after["command"]
    # a record with no counterpart (another seed) is refused and nothing is written
    other = tmp_path / "other"
    assert main(["bench", "--strategies", "mla", "--seeds", "2", "--out", str(other), "--runs-dir", str(tmp_path / "r2"),
                 *common]) == 0, capsys.readouterr().err
    written = base.with_suffix(".json").read_text()
    capsys.readouterr()
    assert main(["bench", "--recompute", str(base.with_suffix(".json")), "--replace-runs", str(other.with_suffix(".json"))]) == 1
    err = capsys.readouterr().err
    assert "no counterpart" in err and "'mla', 'synthetic'" in err and "2)" in err
    assert base.with_suffix(".json").read_text() == written
    assert main(["bench", "--strategies", "mla", "--dataset", "synthetic", "--out", str(other),
                 "--replace-runs", str(new.with_suffix(".json"))]) == 1
    assert "only goes with --recompute" in capsys.readouterr().err
