"""The one run reader, ``polymodal.load_run``: what training leaves, read back; the model on request gives
the predictions the engine saved."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import polymodal
from polymodal.engine import train
from polymodal.engine.runfolder import Run, load_run, predictions_file
from polymodal.tasks import read_predictions

from ._helpers import tiny_config


def test_load_run_reads_everything_training_leaves(tmp_path):
    result = train(tiny_config(tmp_path, "name=r", "trainer.max_epochs=2", "trainer.max_steps_per_epoch=3",
                               "data.options.missing=0.3"))
    run = polymodal.load_run(tmp_path / "r")
    assert isinstance(run, Run) and polymodal.load_run is load_run
    from polymodal.report import load_run as report_load_run
    from polymodal.report.markdown import load_run as markdown_load_run

    assert report_load_run is load_run and markdown_load_run is load_run
    assert run.config["name"] == "r" and run.config["data"]["dataset"] == "synthetic"
    assert run.run_config().strategy.name == "joint"
    assert run.results["best_epoch"] == result.best_epoch and run.metrics["test"] == result.metrics
    assert [r["epoch"] for r in run.records] == [1, 2] and run.end["stopped_reason"] == "max_epochs"
    assert run.task.name == "classification" and run.notes == []
    assert set(run.predictions) == {"val", "test"} and run.provenance["seed"] == 0 and run.data_state is None
    np.testing.assert_array_equal(run.test_predictions.probs, read_predictions(predictions_file(run.run_dir, "test")).probs)
    assert isinstance(run.strategy_state(), dict)
    assert run.checkpoint("best").state["epoch"] == result.best_epoch
    # the model on request: the best checkpoint, whose test predictions are the saved ones
    model = run.model()
    assert model is run.model() and not model.training
    ds = run.datasets(["test"])["test"]
    batch = ds.collate_fn()([ds[i] for i in range(len(ds))])
    with torch.no_grad():
        probs = model(batch).logits.softmax(dim=1).numpy()
    np.testing.assert_allclose(probs, run.test_predictions.probs, rtol=1e-5, atol=1e-6)


def test_load_run_names_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_run(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds none of config.yaml"):
        load_run(tmp_path / "empty")
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "results.json").write_text('{"task": "regression", "test": {"rmse": 0.5}}')
    run = load_run(partial)
    assert run.task.name == "regression" and run.metrics == {"test": {"rmse": 0.5}}
    assert "`config.yaml` is missing." in run.notes and run.predictions == {}
    with pytest.raises(FileNotFoundError, match="config.yaml does not exist"):
        run.model()
    (partial / "results.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"results\.json must hold a JSON object"):
        load_run(partial)
