"""Planning a benchmark: which runs train, which are evaluated from a base run, and the checks before any run."""

from pathlib import Path

import pytest

from polymodal.bench.command import protocol_line
from polymodal.bench.plan import missing_settings, plan_bench, run_name, strategy_overrides, variant_settings
from polymodal.config import ConfigError


def test_missing_at_test_is_derived_from_a_base_run_that_is_planned_once(tmp_path):
    settings = missing_settings([0.3], ["test", "both"])
    plan = plan_bench(["joint", "unimodal"], ["synthetic"], [0, 1], tmp_path / "out", runs_dir=tmp_path / "runs",
                      settings=settings, overrides=["model.width=8"])
    assert len(plan.jobs) == 2 * 2 * 2  # settings x strategies x seeds, in table order
    assert [j.name for j in plan.jobs[:4]] == [run_name(s, "synthetic", seed, settings[0])
                                               for s in ("joint", "unimodal") for seed in (0, 1)]
    assert {j.name for j in plan.derived} == {f"synthetic-{s}-miss0.3-test-seed{k}" for s in ("joint", "unimodal") for k in (0, 1)}
    assert {j.name for j in plan.trained} == {f"synthetic-{s}-miss0.3-both-seed{k}" for s in ("joint", "unimodal") for k in (0, 1)}
    # the bases are plain runs: the same overrides without the condition's, one per strategy and seed
    assert {j.name for j in plan.bases} == {f"synthetic-{s}-seed{k}" for s in ("joint", "unimodal") for k in (0, 1)}
    base = next(j for j in plan.bases if j.name == "synthetic-joint-seed1")
    assert base.overrides == ("model.width=8", "strategy.name=joint", "data.dataset=synthetic", "seed=1")
    assert base.tags["setting"].label == "" and plan.base_name(plan.derived[0]) == "synthetic-joint-seed0"
    assert plan.to_run() == [*plan.trained, *plan.bases]
    assert plan.runs == tmp_path / "runs" and plan.out == tmp_path / "out"
    assert plan.overrides == ("model.width=8",) and plan.config is None and plan.strategy_args == ()
    protocol = protocol_line(plan, poe=True)
    assert "; overrides model.width=8; selection on val" in protocol
    assert protocol.startswith("synthetic; strategies joint, unimodal (+ poe: ")
    assert protocol.endswith("seeds 0,1; missing at test: the model trained on complete data, evaluated under the mask")


def test_a_base_that_is_trained_anyway_is_not_planned_twice(tmp_path):
    settings = [*variant_settings(["plain:"]), *missing_settings([0.5], ["test"])]
    plan = plan_bench(["joint"], ["synthetic"], [0], tmp_path / "o", settings=settings)
    assert plan.runs == Path("runs") / "bench" / "o"
    assert [j.name for j in plan.trained] == ["synthetic-joint-v-plain-seed0"]
    assert [j.name for j in plan.bases] == ["synthetic-joint-seed0"]
    plain = plan_bench(["joint"], ["synthetic"], [0], tmp_path / "o", settings=missing_settings([0.5], ["test", "train"]))
    assert [j.name for j in plain.bases] == ["synthetic-joint-seed0"]  # no plain job among the trained ones
    assert "missing at test" not in protocol_line(plan_bench(["joint"], ["synthetic"], [0], tmp_path / "o"), poe=True)


def test_strategy_args_and_seed_placeholders(tmp_path):
    assert strategy_overrides(["mla.hgm=false", "mla.order=[b, a]"], ["joint", "mla"]) == {
        "joint": [], "mla": ["strategy.args.hgm=false", "strategy.args.order=[b, a]"]}
    with pytest.raises(ValueError, match=r"--strategy-args 'ogm_ge.alpha=1'.*\(joint, mla\)"):
        strategy_overrides(["ogm_ge.alpha=1"], ["joint", "mla"])
    plan = plan_bench(["umt"], ["synthetic"], [3], tmp_path / "u",
                      strategy_args=["umt.teachers={a: runs/t-seed{seed}, b: runs/t-seed{seed}}"])
    assert "strategy.args.teachers={a: runs/t-seed3, b: runs/t-seed3}" in plan.jobs[0].overrides


def test_bad_input_is_refused_before_any_run(tmp_path):
    with pytest.raises(ValueError, match="without extension"):
        plan_bench(["joint"], ["synthetic"], [0], tmp_path / "out.md")
    with pytest.raises(ConfigError, match="unknown strategy 'jointt'"):
        plan_bench(["jointt"], ["synthetic"], [0], tmp_path / "out")
    assert not (tmp_path / "out").exists() and not Path("runs/bench/out").exists()


def test_a_config_files_strategy_args_go_to_its_own_strategy_only(tmp_path):
    """configs/utd_mhad.yaml gives MLA a fusion_rule; the other strategies of a bench on it must not get it
    (joint would refuse the key), while the command's overrides still reach every run."""
    from polymodal.config import load_config

    config = str(Path(__file__).resolve().parents[2] / "configs" / "utd_mhad.yaml")
    plan = plan_bench(["joint", "mla"], ["utd-mhad"], [0], tmp_path / "b", config=config,
                      overrides=["trainer.max_epochs=2"])
    jobs = {j.tags["strategy"]: j for j in plan.jobs}
    assert jobs["joint"].overrides[0] == "strategy.args={}" and "strategy.args={}" not in jobs["mla"].overrides
    joint, mla = (load_config(config, list(jobs[s].overrides)) for s in ("joint", "mla"))
    assert joint.strategy.args == {} and mla.strategy.args["fusion_rule"] == "calibrated"
    assert joint.trainer.max_epochs == mla.trainer.max_epochs == 2
    # a bench with no config (the built-in profile) resets nothing
    plain = plan_bench(["joint"], ["avdigits"], [0], tmp_path / "c")
    assert not any(o.startswith("strategy.args") for o in plain.jobs[0].overrides)
