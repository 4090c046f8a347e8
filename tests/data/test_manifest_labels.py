"""The label column of a table: the task inferred from it (and why, in the data check), a column that is almost
all class ids with a few odd cells stopping with their rows named, and label sets (``cat|dog``) read as a
multilabel target."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from polymodal.data.datasets.manifest import ManifestError
from polymodal.datasets import from_manifest


def _table(labels: list[str], seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = len(labels)
    return pd.DataFrame({"x1": [f"{v:.4f}" for v in rng.standard_normal(n)],
                         "x2": [f"{v:.4f}" for v in rng.standard_normal(n)], "y": labels})


def _classes(n: int = 200, k: int = 10) -> list[str]:
    return [str(i % k) for i in range(n)]


def _task_row(m) -> str:
    rows = [p for p in m.report.problems if p.check == "task"]
    assert len(rows) == 1 and rows[0].severity == "info" and rows[0].column == "y"
    return rows[0].detail


def test_a_typo_in_integer_class_labels_stops_and_names_the_row():
    labels = _classes()
    labels[57] = "3.5"  # 200 class ids 0..9 and one typo: neither clean classes nor a regression target
    with pytest.raises(ManifestError, match=r"label column 'y'.*looks like class ids") as err:
        from_manifest(_table(labels), label="y")
    message = str(err.value)
    assert "row 58: '3.5'" in message and "data.options.task" in message
    # saying which task it is settles it: a regression on the numbers, or classes with "3.5" among them
    assert from_manifest(_table(labels), label="y", task="regression").task == "regression"
    m = from_manifest(_table(labels), label="y", task="classification")
    assert "3.5" in m.class_names and "given (task=classification)" in _task_row(m)


def test_nan_labels_are_named_instead_of_turning_the_column_into_a_regression():
    labels = _classes()
    labels[3] = labels[120] = "nan"
    with pytest.raises(ManifestError) as err:
        from_manifest(_table(labels), label="y")
    message = str(err.value)
    assert "looks like class ids" in message and "row 4: 'nan'" in message and "row 121: 'nan'" in message
    assert "leave a cell empty" in message and "regression targets must be finite" not in message
    # an empty cell is a row without a label: inferred as classes, the row left out with a warning
    labels[3] = labels[120] = ""
    m = from_manifest(_table(labels), label="y")
    assert m.task == "classification" and len(m.class_names) == 10
    assert any(p.check == "missing_label" for p in m.report.problems)


def test_the_data_check_shows_the_inferred_task_and_why():
    m = from_manifest(_table(_classes()), label="y")
    assert m.task == "classification"
    assert _task_row(m).startswith("classification, inferred: 200 of 200 cells are whole numbers with 10 distinct values")
    targets = [f"{v:.3f}" for v in np.random.default_rng(1).normal(50, 10, 200)]
    m = from_manifest(_table(targets), label="y")
    assert m.task == "regression" and _task_row(m).startswith("regression, inferred: 200 of 200 cells are numbers")
    words = [["cat", "dog", "fish"][i % 3] for i in range(60)]
    m = from_manifest(_table(words), label="y")
    assert m.task == "classification" and "3 distinct values, 60 of 60 cells not numbers" in _task_row(m)
    assert "| task |" in m.report.to_markdown()


def test_label_sets_are_a_multilabel_target():
    sets = ["cat|dog", "dog", "fish", "cat", "dog | fish", "cat|fish|dog", "|"] * 10
    m = from_manifest(_table(sets), label="y")
    assert m.task == "multilabel" and m.class_names == ("cat", "dog", "fish")
    assert "multilabel, inferred: 40 of 70 cells list several labels separated by '|'" in _task_row(m)
    np.testing.assert_array_equal(m.y[:7], [[1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0], [0, 1, 1], [1, 1, 1], [0, 0, 0]])
    train = m.dataset("train")
    assert train.num_outputs == 3 and train.labels.shape == (len(train), 3) and train.task == "multilabel"
    # a new table read with the fitted state: a label the model never saw is predicted but not scored
    fitted = type(m)(_table(["cat|bird", "dog"]), state=m.state())
    assert fitted.has_label.tolist() == [False, True]
    assert any(p.check == "unknown_label" and "row 1: 'bird'" in p.examples for p in fitted.report.problems)
