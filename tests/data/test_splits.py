import numpy as np
import pytest

from polymodal.data.splits import assign_splits


def test_stratified_split_keeps_class_proportions_and_is_seeded():
    y = np.repeat(np.arange(4), [40, 40, 40, 80])
    a = assign_splits(y, val=0.15, test=0.15, seed=0)
    b = assign_splits(y, val=0.15, test=0.15, seed=0)
    assert (a.split == b.split).all() and not a.notes
    assert not (assign_splits(y, seed=1).split == a.split).all()
    for s, frac in (("train", 0.7), ("val", 0.15), ("test", 0.15)):
        counts = np.bincount(y[a.split == s], minlength=4)
        assert np.allclose(counts / np.bincount(y), frac, atol=0.05), (s, counts)


def test_groups_stay_in_one_split():
    rng = np.random.default_rng(0)
    groups = np.repeat([f"p{i}" for i in range(30)], 5)
    y = rng.integers(0, 3, len(groups))
    res = assign_splits(y, groups=groups, val=0.2, test=0.2, seed=2)
    for g in np.unique(groups):
        assert len(set(res.split[groups == g])) == 1
    assert set(res.split) == {"train", "val", "test"}


def test_given_splits_are_kept_and_the_rest_assigned():
    y = np.arange(100) % 2
    given = np.array(["test"] * 10 + ["val"] * 10 + [""] * 80, dtype=object)
    res = assign_splits(y, given=given, val=0.2, test=0.2)
    assert (res.split[:10] == "test").all() and (res.split[10:20] == "val").all()
    assert set(res.split[20:]) == {"train", "val"}  # a test split exists: none of the free rows go to test


def test_kfold_validation_parts_partition_the_non_test_rows():
    y = np.arange(60) % 3
    tests = {tuple(np.flatnonzero(assign_splits(y, folds=4, fold=f, test=0.2).split == "test")) for f in range(4)}
    assert len(tests) == 1  # the test rows do not depend on the fold
    vals = [set(np.flatnonzero(assign_splits(y, folds=4, fold=f, test=0.2).split == "val")) for f in range(4)]
    assert sum(len(v) for v in vals) == len(set().union(*vals)) == 60 - len(next(iter(tests)))


def test_regression_targets_are_stratified_by_quantile_and_bad_fractions_fail():
    y = np.linspace(0, 1, 200)
    res = assign_splits(y, task="regression", val=0.2, test=0.2)
    for s in ("val", "test"):
        assert np.histogram(y[res.split == s], bins=5, range=(0, 1))[0].min() >= 6
    with pytest.raises(ValueError, match="val \\+ test < 1"):
        assign_splits(y, val=0.5, test=0.5)
    with pytest.raises(ValueError, match="folds"):
        assign_splits(y, folds=3, fold=3)
