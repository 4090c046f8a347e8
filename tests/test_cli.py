import json

import pytest

from polymodal.cli import default_run_name, main

SMOKE = ["data.dataset=synthetic", "trainer.max_epochs=2", "trainer.progress=false", "model.width=8"]


@pytest.mark.parametrize("kind", ["datasets", "encoders", "fusions", "strategies"])
def test_list(kind, capsys):
    assert main(["list", kind]) == 0
    out = capsys.readouterr().out
    assert out.strip(), kind
    from polymodal.registries import ALL

    for name in ALL[kind].names():
        assert name in out


def test_train_then_eval(tmp_path, capsys):
    code = main(["train", *SMOKE, f"out_dir={tmp_path}", "name=smoke"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "fused_acc" in out and "a_acc" in out and "b_acc" in out
    run = tmp_path / "smoke"
    results = json.loads((run / "results.json").read_text())
    assert 0.0 <= results["test"]["fused_acc"] <= 1.0
    assert (run / "report.md").is_file()
    assert main(["eval", str(run), "--split", "val"]) == 0
    out = capsys.readouterr().out
    assert "val metrics" in out and "fused_acc" in out


def test_default_name_increments_and_resume_picks_latest(tmp_path, capsys):
    assert main(["train", *SMOKE, f"out_dir={tmp_path}"]) == 0
    assert main(["train", *SMOKE, f"out_dir={tmp_path}"]) == 0
    assert (tmp_path / "synthetic-mla-seed0").is_dir() and (tmp_path / "synthetic-mla-seed0-2").is_dir()
    assert default_run_name(tmp_path, "synthetic-mla-seed0", resume=True) == "synthetic-mla-seed0-2"
    assert default_run_name(tmp_path, "synthetic-mla-seed0", resume=False) == "synthetic-mla-seed0-3"


def test_bad_config_exits_2_with_key_path(tmp_path, capsys):
    assert main(["train", "data.dataset=synthetic", "optim.lr=fast", f"out_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "optim.lr" in err and "'fast'" in err


def test_unexpected_positional_and_missing_config(tmp_path, capsys):
    assert main(["train", "data.dataset=synthetic", "extra"]) == 1
    assert "unexpected argument 'extra'" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "nope.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_eval_missing_run_dir(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "no-run")]) != 0
    assert "no-run" in capsys.readouterr().err


def test_usage_errors():
    assert main([]) == 2
    assert main(["list", "widgets"]) == 2
