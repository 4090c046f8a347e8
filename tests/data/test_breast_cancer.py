"""The breast-cancer survival dataset: the table scikit-survival ships, its seeded stratified split, train-split
standardisation, the modalities option and the message when the survival extra is absent."""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("sksurv", reason="the survival extra (scikit-survival) is not installed")

from polymodal.data.datasets.breast_cancer import BreastCancer, load_table  # noqa: E402

SHA256 = "1c059d79f24f537d2a02ce3e915d7b89f445919957ebf26f023b49e377ddedf2"


def test_the_table_is_the_one_the_tests_and_the_benchmark_rely_on():
    genes, clinical, targets, names, digest, _ = load_table()
    assert genes.shape == (198, 76) and clinical.shape == (198, 6) and targets.shape == (198, 2)
    assert int(targets[:, 1].sum()) == 51 and len(names) == 76
    assert digest == SHA256  # a changed table changes every published number: look before updating this


def test_splits_are_seeded_disjoint_and_keep_the_share_of_events():
    parts = {s: BreastCancer(s, split_seed=3) for s in ("train", "val", "test")}
    assert [len(parts[s]) for s in ("train", "val", "test")] == [118, 40, 40]
    shares = [float(parts[s].labels[:, 1].mean()) for s in parts]
    assert max(shares) - min(shares) < 0.03  # stratified by the event indicator (51 / 198 = 0.26)
    rows = np.concatenate([parts[s].labels for s in parts])
    _, _, targets, *_ = load_table()
    assert sorted(map(tuple, rows.tolist())) == sorted(map(tuple, targets.astype(np.float32).tolist()))
    again = BreastCancer("test", split_seed=3)
    np.testing.assert_array_equal(again.labels, parts["test"].labels)
    assert not np.array_equal(BreastCancer("test", split_seed=4).labels, parts["test"].labels)
    assert parts["test"].provenance["sha256"] == SHA256 and parts["test"].provenance["events"] == 10


def test_features_are_standardised_with_the_training_split_only():
    train, test = BreastCancer("train"), BreastCancer("test")
    np.testing.assert_allclose(train.x["genes"].mean(0).numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(train.x["genes"].std(0, unbiased=False).numpy(), 1.0, atol=1e-4)
    assert float(test.x["genes"].mean(0).abs().max()) > 0.1  # the test split's own statistics are not used
    clinical = train.x["clinical"].numpy()
    np.testing.assert_allclose(clinical[:, :2].mean(0), 0.0, atol=1e-5)  # age, size
    assert set(np.unique(clinical[:, 2:])) <= {0.0, 1.0}  # oestrogen receptor, grade one-hot stay indicators
    assert train.feature_names["clinical"][:3] == ("age", "size", "er_positive")


def test_modalities_option_serves_a_subset_and_names_the_key_when_wrong():
    genes = BreastCancer("val", modalities=["genes"])
    assert genes.modalities == ["genes"] and genes[0]["inputs"].keys() == {"genes"}
    with pytest.raises(ValueError, match=r"data\.options\.modalities=\['image'\]"):
        BreastCancer("val", modalities=["image"])


def test_without_the_extra_the_error_names_it(monkeypatch):
    load_table.cache_clear()
    monkeypatch.setitem(sys.modules, "sksurv", None)  # import sksurv now raises ImportError
    monkeypatch.setitem(sys.modules, "sksurv.datasets", None)
    try:
        with pytest.raises(ImportError, match=r"pip install 'polymodal\[survival\]'"):
            BreastCancer("train")
    finally:
        load_table.cache_clear()
