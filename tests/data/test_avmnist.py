"""AV-MNIST preparation from a tiny fake copy of MultiBench's avmnist folder (.npy arrays in its shapes)."""

import json

import numpy as np
import pytest

from polymodal.data.base import build_dataset
from polymodal.data.datasets import avmnist
from polymodal.data.prepare import prepare


def _release(root, n_train, n_test):
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        (root / "image").mkdir(parents=True, exist_ok=True)
        (root / "audio").mkdir(exist_ok=True)
        np.save(root / "image" / f"{split}_data.npy", rng.integers(0, 256, (n, 784)).astype(np.float32))
        np.save(root / "audio" / f"{split}_data.npy", rng.integers(0, 256, (n, 112, 112)).astype(np.float32))
        np.save(root / f"{split}_labels.npy", np.arange(n) % 10)


def test_prepare_av_mnist(tmp_path, monkeypatch):
    monkeypatch.setattr(avmnist, "VAL_SIZE", 4)
    root = tmp_path / "avmnist"
    _release(root, 24, 10)
    out = tmp_path / "out"
    report = prepare("av-mnist", tmp_path, out, print)
    assert (report["train"], report["test"]) == (24, 10)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["test"] == [1] * 10
    image = np.load(out / "image.npy", mmap_mode="r")
    raw = np.load(root / "image" / "train_data.npy")
    np.testing.assert_allclose(image[3, 0], raw[3].reshape(28, 28) / 255.0, atol=1e-3)
    val = build_dataset("av-mnist", "val", root=str(out))
    assert len(val) == 4 and val.labels.tolist() == [0, 1, 2, 3]  # the last 4 training pairs: rows 20-23
    s = val[0]
    assert s["inputs"]["image"].shape == (1, 28, 28) and s["inputs"]["audio"].shape == (112, 112)
    assert len(build_dataset("av-mnist", "train", root=str(out))) == 20


def test_av_mnist_rejects_bad_arrays(tmp_path):
    root = tmp_path / "avmnist"
    _release(root, 6, 3)
    np.save(root / "test_labels.npy", np.array([0, 1, 12]))
    with pytest.raises(ValueError, match="labels 0..12"):
        prepare("av-mnist", tmp_path, tmp_path / "o", print)
    np.save(root / "test_labels.npy", np.array([0, 1]))
    with pytest.raises(ValueError, match="differ in length"):
        prepare("av-mnist", tmp_path, tmp_path / "o", print)
    assert not (tmp_path / "o").exists()  # nothing written
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="MultiBench"):
        prepare("av-mnist", tmp_path / "empty", None, print)
