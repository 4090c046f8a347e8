"""`polymodal eval` takes a modality's accuracy over the rows where it is present, as results.json does."""

import json
import re

import numpy as np
import pytest

from polymodal.cli import main
from polymodal.engine import train
from polymodal.report.metrics import load_predictions, summarize

from ._helpers import tiny_config


@pytest.mark.slow
def test_cli_eval_equals_results_json_with_half_the_test_slots_missing(tmp_path, capsys):
    cfg = tiny_config(tmp_path, "name=half", "trainer.max_epochs=2", "data.split_options.test.missing_rate=0.5",
                      "data.split_options.test.missing_seed=0")
    res = train(cfg)
    stored = json.loads((res.run_dir / "results.json").read_text())["test"]
    preds = load_predictions(res.run_dir / "predictions_test.npz")
    assert set(preds.present) == {"a", "b"}
    absent = 1 - np.mean([preds.present[m].mean() for m in preds.present])
    assert absent == pytest.approx(0.5, abs=0.05)
    # over all rows the modality's accuracy would differ: the absent rows are predicted from nothing
    rows = preds.present["a"]
    over_all = float((preds.per_modality["a"].argmax(1) == preds.y_true).mean())
    over_present = float((preds.per_modality["a"][rows].argmax(1) == preds.y_true[rows]).mean())
    assert stored["a_acc"] == pytest.approx(over_present) and summarize(preds)["a_acc"] == pytest.approx(over_present)
    assert over_all != pytest.approx(over_present)
    capsys.readouterr()
    assert main(["eval", str(res.run_dir), "--split", "test"]) == 0
    printed = dict(re.findall(r"^\s+(\w+)\s+([\d.]+) %$", capsys.readouterr().out, flags=re.M))
    for key in ("fused_acc", "a_acc", "b_acc"):
        assert float(printed[key]) == pytest.approx(100 * stored[key], abs=0.006), key
