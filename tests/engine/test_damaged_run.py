"""Damaged run files are named (file, what is wrong, what to do); a failed resume changes nothing."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file

from polymodal.cli import main
from polymodal.engine import evaluate_run, load_checkpoint, train
from polymodal.engine.checkpoint import DamagedRunFile
from polymodal.engine.runfolder import LOCK_FILE

from ._helpers import tiny_config


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """A finished two-epoch run on the synthetic dataset (copied by each test before damaging it)."""
    cfg = tiny_config(tmp_path_factory.mktemp("base"), "trainer.max_epochs=2", "name=base")
    train(cfg)
    return cfg.run_dir


@pytest.fixture
def run(base_run, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(base_run, dst)
    return dst


def _poison(path, value=float("nan")):
    weights = load_file(str(path))
    name = sorted(weights)[0]
    weights[name].view(-1)[0] = value
    save_file(weights, str(path))
    return name


def _untouched(run):
    """config.yaml and provenance.json as they are now (a failed resume must leave them so)."""
    return {f: (run / f).read_bytes() for f in ("config.yaml", "provenance.json")}


def _resume(run, *overrides):
    return train(tiny_config(run.parent, f"name={run.name}", "trainer.max_epochs=3", *overrides), resume=True)


def test_nan_weights_are_refused_by_eval_naming_file_and_tensor(run, capsys):
    name = _poison(run / "checkpoints" / "best" / "model.safetensors")
    with pytest.raises(DamagedRunFile, match=rf"best/model.safetensors: 1 of its \d+ tensors hold NaN.*{name} \(1 NaN"):
        evaluate_run(run, "test")
    assert main(["eval", str(run)]) == 1
    err = capsys.readouterr().err
    assert "model.safetensors" in err and name in err and "train the run again" in err and "Traceback" not in err


def test_inf_weights_are_refused_by_resume_and_config_is_kept(run):
    name = _poison(run / "checkpoints" / "last" / "model.safetensors", float("inf"))
    before = _untouched(run)
    with pytest.raises(DamagedRunFile, match=rf"last/model.safetensors: .*{name} \(0 NaN, 1 inf"):
        _resume(run)
    assert _untouched(run) == before and not (run / LOCK_FILE).exists()


def test_truncated_model_file_is_named(run, capsys):
    path = run / "checkpoints" / "best" / "model.safetensors"
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DamagedRunFile, match="model.safetensors: not a readable safetensors file .300 bytes.*truncated"):
        evaluate_run(run, "test")
    assert main(["eval", str(run)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "restore model.safetensors" in err and "SafetensorError" not in err


def test_model_file_of_another_run_is_named_with_its_tensors(run, tmp_path, capsys):
    other = tiny_config(tmp_path / "other", "trainer.max_epochs=1", "model.width=16")
    train(other)
    shutil.copy(other.run_dir / "checkpoints" / "best" / "model.safetensors",
                run / "checkpoints" / "best" / "model.safetensors")
    assert main(["eval", str(run)]) == 1
    err = capsys.readouterr().err
    assert "best/model.safetensors: its weights do not fit the model that" in err and "config.yaml" in err
    assert "of another shape" in err and "(file (16," in err and "model (8," in err
    assert "size mismatch for" not in err  # not torch's raw message


def test_config_pointing_at_another_dataset(run, capsys):
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("options: {}", "options: {num_classes: 6}", 1))
    assert main(["eval", str(run)]) == 1
    err = capsys.readouterr().err
    assert "its weights do not fit the model that" in err and "another dataset, number of classes" in err
    assert "(file (4,), model (6,))" in err
    before = _untouched(run)
    with pytest.raises(DamagedRunFile, match="last/model.safetensors: its weights do not fit"):
        _resume(run, "data.options={num_classes: 6}")
    assert _untouched(run) == before


@pytest.mark.parametrize("content, problem", [
    ("garbage{", "not valid JSON"),
    ("[1, 2]", "holds a JSON list, expected an object"),
    ('{"optimizer": {"__tensor__": "nope"}}', "its 'optimizer' entry names a tensor that optimizer.safetensors does not hold"),
])
def test_damaged_state_json_is_named_by_eval_and_resume(run, content, problem):
    for ckpt in ("best", "last"):
        (run / "checkpoints" / ckpt / "state.json").write_text(content)
    with pytest.raises(DamagedRunFile, match=f"best/state.json: {problem}"):
        evaluate_run(run, "test")
    before = _untouched(run)
    with pytest.raises(DamagedRunFile, match=f"last/state.json: {problem}.*cannot be resumed"):
        _resume(run)
    assert _untouched(run) == before and not (run / LOCK_FILE).exists()


def test_state_json_without_what_resume_needs(run):
    path = run / "checkpoints" / "last" / "state.json"
    state = json.loads(path.read_text())
    del state["epoch"]
    state["history"] = "none"
    path.write_text(json.dumps(state))
    before = _untouched(run)
    with pytest.raises(DamagedRunFile, match="cannot be resumed: 'epoch' is missing; 'history' is a str, expected list"):
        _resume(run)
    assert _untouched(run) == before


def test_optimizer_state_of_other_settings_is_named(run):
    before = _untouched(run)
    with pytest.raises(DamagedRunFile, match="last/state.json: its optimizer state does not fit this run's optimizer"):
        _resume(run, "optim.name=sgd", "model.encoders.a.dropout=0.1")  # SGD cannot take AdamW's state groups
    assert _untouched(run) == before


def test_a_good_resume_still_rewrites_config_and_provenance(run):
    result = _resume(run)
    assert result.epochs_run == 3
    assert "max_epochs: 3" in (run / "config.yaml").read_text()
    assert json.loads((run / "provenance.json").read_text())["resumed"] is True


def test_checkpoint_loads_when_intact(base_run):
    ckpt = load_checkpoint(base_run / "checkpoints" / "best")
    assert all(torch.isfinite(t).all() for t in ckpt.model.values())


# ---- a run trained on a table (Predictor.load, data_state.json)

@pytest.fixture(scope="module")
def table_run(tmp_path_factory):
    from polymodal import Predictor

    folder = tmp_path_factory.mktemp("table")
    rng = np.random.default_rng(0)
    pd.DataFrame({"x1": rng.normal(size=60), "x2": rng.normal(size=60), "y": ["a", "b", "c"] * 20}).to_csv(
        folder / "t.csv", index=False)
    Predictor(label="y", path=folder / "run").fit(folder / "t.csv", strategy="joint", max_epochs=1,
                                                  overrides=["trainer.progress=false", "model.width=8"])
    return folder


@pytest.fixture
def table_copy(table_run, tmp_path):
    shutil.copytree(table_run / "run", tmp_path / "run")
    return tmp_path / "run"


def test_predictor_load_refuses_non_finite_weights(table_copy, table_run):
    from polymodal import Predictor

    name = _poison(table_copy / "checkpoints" / "best" / "model.safetensors")
    with pytest.raises(DamagedRunFile, match=f"best/model.safetensors: 1 of its .*{name}"):
        Predictor.load(table_copy)
    assert main(["predict", str(table_copy), "--manifest", str(table_run / "t.csv"),
                 "--out", str(table_copy.parent / "p.csv")]) == 1
    assert not (table_copy.parent / "p.csv").exists()


@pytest.mark.parametrize("content, problem", [
    ("{oops", "not valid JSON"),
    ('{"label": "y"}', "'version' is missing; .*'options' is missing"),
    ('{"version": 1, "label": "y", "task": "classification", "class_names": ["a"], "columns": {}, '
     '"modalities": [{"kind": "tabular"}], "stats": {}, "options": {}}', "'modalities' entries \\[0\\] lack a name"),
])
def test_predictor_load_names_a_damaged_data_state(table_copy, content, problem):
    from polymodal import Predictor

    (table_copy / "data_state.json").write_text(content)
    with pytest.raises(DamagedRunFile, match=f"data_state.json: .*{problem}.*restore it from a copy"):
        Predictor.load(table_copy)


def test_predictor_load_names_a_truncated_model(table_copy):
    from polymodal import Predictor

    (table_copy / "checkpoints" / "best" / "model.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(DamagedRunFile, match="not a readable safetensors file"):
        Predictor.load(table_copy)
