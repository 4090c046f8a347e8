"""Regression labels in the Batch and the synthetic dataset's regression variant."""

import numpy as np
import pytest
import torch

from polymodal.data.base import build_dataset
from polymodal.data.batch import collate, collate_labels
from polymodal.data.datasets.synthetic import SyntheticDataset
from polymodal.data.schema import Modality

SCHEMA = (Modality("x", "tabular", (3,)),)


def _samples(labels):
    return [{"inputs": {"x": torch.full((3,), float(i))}, "label": y, "index": i} for i, y in enumerate(labels)]


def test_float_labels_collate_to_float32():
    b = collate(_samples([0.5, -1.25, 2.0]), SCHEMA)
    assert b.label.dtype == torch.float32 and b.label.shape == (3,)
    assert b.label.tolist() == [0.5, -1.25, 2.0]
    b = collate(_samples([[0.5, 1.0], [2.0, -3.0]]), SCHEMA)
    assert b.label.dtype == torch.float32 and b.label.shape == (2, 2)
    assert b.size == 2 and b.select(torch.tensor([1])).label.tolist() == [[2.0, -3.0]]


@pytest.mark.parametrize("labels", [
    [np.float64(0.5), np.float64(1.5)],
    [np.array([0.5, 1.0]), np.array([1.5, 2.0])],
    [torch.tensor(0.5, dtype=torch.float64), torch.tensor(1.5, dtype=torch.float64)],
])
def test_numpy_and_tensor_targets_become_float32(labels):
    label = collate_labels(labels)
    assert label.dtype == torch.float32 and label.shape[0] == 2


def test_class_ids_stay_int64():
    for labels in ([1, 0, 2], [np.int64(1), np.int64(2)], [torch.tensor(1), torch.tensor(3)]):
        label = collate_labels(labels)
        assert label.dtype == torch.int64 and label.tolist() == [int(y) for y in labels]


def _r2_of_least_squares(x: np.ndarray, y: np.ndarray) -> float:
    a = np.c_[x, np.ones(len(x))]
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    res = y - a @ coef
    return 1.0 - float((res**2).sum() / ((y - y.mean()) ** 2).sum())


def test_synthetic_regression_is_deterministic_and_needs_both_modalities():
    ds = build_dataset("synthetic", "train", task="regression", size=400)
    assert ds.task == "regression" and ds.num_outputs == 1 and ds.class_names == ()
    assert ds.labels.shape == (400,) and ds.labels.dtype == np.float32
    sample = ds[3]
    assert isinstance(sample["label"], float) and sample["label"] == pytest.approx(float(ds.labels[3]))
    again = SyntheticDataset("train", task="regression", size=400)
    np.testing.assert_array_equal(ds.labels, again.labels)
    np.testing.assert_array_equal(ds.x[0], again.x[0])
    other_seed = SyntheticDataset("train", task="regression", size=400, seed=1)
    assert not np.allclose(ds.labels, other_seed.labels)
    val = SyntheticDataset("val", task="regression", size=400)
    assert not np.allclose(ds.labels, val.labels)
    # the target is a sum of one part per modality: both together explain it, either alone about half
    both = _r2_of_least_squares(np.c_[ds.x[0], ds.x[1]], ds.labels)
    alone = [_r2_of_least_squares(x, ds.labels) for x in ds.x]
    assert both > 0.98
    assert all(0.3 < r < 0.7 for r in alone), alone
    # the read-out directions are shared by the splits: a fit on train predicts val
    a = np.c_[ds.x[0], ds.x[1], np.ones(400)]
    coef, *_ = np.linalg.lstsq(a, ds.labels, rcond=None)
    pred = np.c_[val.x[0], val.x[1], np.ones(400)] @ coef
    assert 1 - ((val.labels - pred) ** 2).sum() / ((val.labels - val.labels.mean()) ** 2).sum() > 0.98


def test_synthetic_regression_several_targets_and_missing():
    ds = SyntheticDataset("test", task="regression", num_targets=3, size=40, missing=0.4)
    assert ds.labels.shape == (40, 3) and ds.num_outputs == 3
    assert isinstance(ds[0]["label"], list) and len(ds[0]["label"]) == 3
    batch = ds.collate_fn()([ds[i] for i in range(8)])
    assert batch.label.shape == (8, 3) and batch.label.dtype == torch.float32
    assert not ds.present.all() and ds.present.any(axis=1).all()


def test_synthetic_rejects_bad_regression_options():
    with pytest.raises(ValueError, match="task='ranking'"):
        SyntheticDataset("train", task="ranking")
    with pytest.raises(ValueError, match="num_targets"):
        SyntheticDataset("train", task="regression", num_targets=0)
