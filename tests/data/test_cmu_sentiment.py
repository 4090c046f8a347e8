"""CMU-MOSI / CMU-MOSEI preparation from tiny fake feature pickles with the real key names and feature sizes: MulT's
aligned ``mosi_data.pkl`` (text 300 GloVe, audio 5 COVAREP, vision 20 FACET; labels (N, 1, 1), ids of three
parts as bytes) and MMSA's ``aligned_50.pkl`` for MOSEI (text 768, audio 74, vision 35; ``regression_labels``
(N,), string ids, the extra keys MMSA ships)."""

import dataclasses
import json
import pickle

import numpy as np
import pytest

from polymodal.data.base import build_dataset
from polymodal.data.datasets import cmu_sentiment as cs
from polymodal.data.prepare import prepare

SIZES = {"train": 12, "valid": 4, "test": 6}


def _mult_split(rng, n, steps=50, dims=(300, 5, 20), split="train"):
    text, audio, vision = (rng.standard_normal((n, steps, d)).astype(np.float32) for d in dims)
    labels = (rng.integers(-9, 10, n) / 3.0).reshape(n, 1, 1)
    ids = np.array([[f"vid{split}{i // 3}".encode(), str(i % 3).encode(), b"x"] for i in range(n)], dtype=object)
    return {"text": text, "audio": audio, "vision": vision, "labels": labels, "id": ids}


def _mult_release(folder, seed=0, **kw):
    rng = np.random.default_rng(seed)
    data = {s: _mult_split(rng, n, split=s, **kw) for s, n in SIZES.items()}
    data["train"]["audio"][0, :3, 1] = -np.inf  # COVAREP's -inf
    data["train"]["labels"][1, 0, 0] = np.nan  # a damaged label: skipped
    data["test"]["text"][2] = 0
    data["test"]["audio"][2] = 0
    data["test"]["vision"][2] = np.nan  # no feature at all: skipped
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mosi_data.pkl").write_bytes(pickle.dumps(data, protocol=4))
    return data


def _standard(monkeypatch, name, sizes):
    """Make the standard split sizes those of the fake pickle (without its skipped segments)."""
    monkeypatch.setitem(cs.RELEASES, name, dataclasses.replace(cs.RELEASES[name], sizes=sizes))


def test_prepare_cmu_mosi_from_the_mult_pickle(tmp_path):
    raw = tmp_path / "raw" / "MOSI"
    data = _mult_release(raw)
    unaligned = {s: _mult_split(np.random.default_rng(1), n, steps=7, split=s) for s, n in SIZES.items()}
    (raw / "mosi_data_noalign.pkl").write_bytes(pickle.dumps(unaligned))  # the aligned one is taken
    out = tmp_path / "mosi"
    lines: list[str] = []
    report = prepare("cmu-mosi", tmp_path / "raw", out, lines.append)
    assert (report["train"], report["valid"], report["test"]) == (11, 4, 5) and report["skipped"] == 2
    assert report["non_finite_values_set_to_0"] == {"text": 0, "audio": 3, "vision": 0}
    text = "\n".join(lines)
    assert "train 1284 / 12 / 11" in text and "standard   1284, found     11" in text
    assert "skipped train/vidtrain0_1_x: label nan is not a score in [-3, 3]" in text
    assert "skipped test/vidtest0_2_x: every feature of the segment is zero or not finite" in text
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["protocol"]["split_source"]["file"] == "mosi_data.pkl"
    assert manifest["protocol"]["split_source"]["label_key"] == "labels"
    assert manifest["settings"]["shapes"] == {"text": [50, 300], "audio": [50, 5], "vision": [50, 20]}
    assert not manifest["complete"] and len(manifest["skipped"]) == 2
    y = data["valid"]["labels"].reshape(-1)
    rounded = np.bincount(cs.score_class(y), minlength=7).tolist()
    assert manifest["counts"]["valid"]["rounded"] == dict(zip(cs.SCORE_CLASSES, rounded, strict=True))
    audio = np.load(out / "audio.npy", mmap_mode="r")
    assert audio.shape == (20, 50, 5) and audio.dtype == np.float32 and np.isfinite(audio).all()
    assert audio[0, 0, 1] == 0 and audio[0, 3, 1] == data["train"]["audio"][0, 3, 1]
    with pytest.raises(ValueError, match="allow_incomplete"):
        build_dataset("cmu-mosi", "test", root=str(out))

    assert prepare("cmu-mosi", tmp_path / "raw", out, print)["reused"] is True  # same pickle: nothing redone
    val = build_dataset("cmu-mosi", "val", root=str(out), allow_incomplete=True)
    assert len(val) == 4 and val.task == "sentiment" and val.num_outputs == 1
    np.testing.assert_allclose(val.labels, y.astype(np.float32))
    assert val.segment_ids[0] == "vidvalid0_0_x"
    s = val[1]
    assert {k: tuple(v.shape) for k, v in s["inputs"].items()} == {"text": (50, 300), "audio": (50, 5), "vision": (50, 20)}
    np.testing.assert_array_equal(s["inputs"]["vision"].numpy(), data["valid"]["vision"][1])
    batch = val.collate_fn()([val[i] for i in range(len(val))])
    batch.validate(val.schema)
    binary = build_dataset("cmu-mosi", "test", root=str(out), allow_incomplete=True, target="binary")
    seven = build_dataset("cmu-mosi", "test", root=str(out), allow_incomplete=True, target="7class")
    scores = np.delete(data["test"]["labels"].reshape(-1), 2)
    assert binary.task == "classification" and binary.labels.tolist() == (scores >= 0).astype(int).tolist()
    assert seven.class_names == ("-3", "-2", "-1", "0", "1", "2", "3")
    assert seven.labels.tolist() == (np.round(scores) + 3).astype(int).tolist()
    with pytest.raises(ValueError, match="target='regression'; expected one of score, binary, 7class"):
        build_dataset("cmu-mosi", "test", root=str(out), allow_incomplete=True, target="regression")


@pytest.fixture(scope="module")
def mosei(tmp_path_factory):
    """MMSA's layout for CMU-MOSEI, prepared with the standard sizes patched to the fake pickle's (complete)."""
    tmp_path = tmp_path_factory.mktemp("mosei")
    rng = np.random.default_rng(3)
    sizes = {"train": 24, "valid": 8, "test": 8}
    data = {}
    for split, n in sizes.items():
        data[split] = {
            "raw_text": np.array([f"segment {i} was fine" for i in range(n)], dtype=object),
            "id": np.array([f"-3g5yACwYnA$_${i}" for i in range(n)], dtype=object),
            "text": rng.standard_normal((n, 50, 768)).astype(np.float32),
            "text_bert": rng.integers(0, 30000, (n, 3, 50)).astype(np.float32),
            "audio": rng.standard_normal((n, 50, 74)).astype(np.float32),
            "vision": rng.standard_normal((n, 50, 35)).astype(np.float32),
            "classification_labels": rng.integers(0, 3, n).astype(np.float32),
            "regression_labels": np.clip(rng.normal(0.3, 1.5, n), -3, 3).astype(np.float32),
            "annotations": np.array(["Positive"] * n, dtype=object),
        }
    (tmp_path / "raw" / "MOSEI" / "Processed").mkdir(parents=True)
    (tmp_path / "raw" / "MOSEI" / "Processed" / "aligned_50.pkl").write_bytes(pickle.dumps(data))
    out = tmp_path / "prepared"
    with pytest.MonkeyPatch.context() as mp:
        _standard(mp, "cmu-mosei", sizes)
        report = prepare("cmu-mosei", tmp_path / "raw", out, print)
    return out, report, data


def test_prepare_cmu_mosei_from_the_mmsa_pickle(mosei):
    out, report, data = mosei
    assert report["segments"] == 40 and report["skipped"] == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["protocol"]["split_source"]["label_key"] == "regression_labels"
    assert manifest["settings"]["shapes"] == {"text": [50, 768], "audio": [50, 74], "vision": [50, 35]}
    assert json.loads((out / "items.json").read_text())[0] == "-3g5yACwYnA$_$0"
    test = build_dataset("cmu-mosei", "test", root=str(out))  # complete: no allow_incomplete needed
    np.testing.assert_allclose(test.labels, data["test"]["regression_labels"])
    assert test[0]["inputs"]["audio"].shape == (50, 74)


@pytest.mark.slow
def test_a_sentiment_run_reports_mae_correlation_and_accuracies(mosei, tmp_path):
    """One epoch of `joint` on the prepared CMU-MOSEI copy: results.json and the report carry the sentiment metrics."""
    from polymodal.config import load_config
    from polymodal.engine import train

    out, _, _ = mosei
    cfg = load_config(None, ["data.dataset=cmu-mosei", f"data.root={out}", "strategy.name=joint", "model.width=8",
                             "trainer.max_epochs=1", "trainer.progress=false", "trainer.num_threads=1",
                             "data.batch_size=8", "data.eval_batch_size=8", f"out_dir={tmp_path}", "name=mosei"])
    result = train(cfg)
    assert result.task == "sentiment" and result.selection == "val mae"
    for key in ("mae", "rmse", "corr", "acc2", "acc2_nonzero", "f1", "acc7", "acc5", "text_rmse"):
        assert key in result.metrics, key
    results = json.loads((tmp_path / "mosei" / "results.json").read_text())
    assert results["test"]["n"] == 8 and 0 <= results["test"]["acc2"] <= 1
    report_md = (tmp_path / "mosei" / "report.md").read_text()
    assert "| Acc-2 (negative / non-negative) |" in report_md and "Sentiment metrics (fused)" in report_md


def test_wrong_layouts_are_clear_errors(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    with pytest.raises(FileNotFoundError, match="holds no .pkl.*research use only"):
        prepare("cmu-mosi", raw, tmp_path / "o", print)
    (raw / "CMU_MOSI_COVAREP.csd").write_bytes(b"\x89HDF\r\n\x1a\n")
    with pytest.raises(FileNotFoundError, match=r"CMU_MOSI_COVAREP.csd.*does not read .csd files"):
        prepare("cmu-mosi", raw, tmp_path / "o", print)

    def write(data, name="mosi_data.pkl"):
        (raw / name).write_bytes(pickle.dumps(data))

    rng = np.random.default_rng(0)
    good = {s: _mult_split(rng, n, steps=4, split=s) for s, n in SIZES.items()}
    write({"train": good["train"], "test": good["test"]})
    with pytest.raises(ValueError, match=r"holds \['test', 'train'\]; expected a dict with the splits train, valid, test"):
        prepare("cmu-mosi", raw, tmp_path / "o", print)
    bad = {s: dict(d) for s, d in good.items()}
    bad["valid"]["visual"] = bad["valid"].pop("vision")
    write(bad)
    with pytest.raises(ValueError, match=r"\['valid'\] lacks vision; it holds audio, id, labels, text, visual"):
        prepare("cmu-mosi", raw, tmp_path / "o", print)
    bad = {s: dict(d) for s, d in good.items()}
    bad["test"]["audio"] = bad["test"]["audio"].mean(axis=1)
    write(bad)
    with pytest.raises(ValueError, match=r"\['test'\]\['audio'\] has shape \(6, 5\); expected \(segments, steps, features\)"):
        prepare("cmu-mosi", raw, tmp_path / "o", print)
    bad = {s: dict(d) for s, d in good.items()}
    bad["train"]["labels"] = np.zeros((12, 1, 7))
    write(bad)
    with pytest.raises(ValueError, match=r"has shape \(12, 1, 7\); expected one sentiment score per segment"):
        prepare("cmu-mosi", raw, tmp_path / "o", print)
    bad = {s: dict(d) for s, d in good.items()}
    bad["valid"]["labels"] = bad["valid"]["labels"][:3]
    write(bad)
    with pytest.raises(ValueError, match=r"\['valid'\] arrays differ in their number of segments"):
        prepare("cmu-mosi", raw, tmp_path / "o", print)
    mosei = {s: _mult_split(rng, n, steps=1, dims=(1, 1, 1), split=s) for s, n in cs.RELEASES["cmu-mosei"].sizes.items()}
    write(mosei)
    with pytest.raises(ValueError, match="has the split sizes of CMU-MOSEI.*polymodal prepare cmu-mosei"):
        prepare("cmu-mosi", raw, tmp_path / "o", print)
    write(good, "other.pkl")
    (raw / "mosi_data.pkl").unlink()
    write(good, "another.pkl")
    with pytest.raises(ValueError, match="several .pkl files"):
        prepare("cmu-mosi", raw, tmp_path / "o", print)
    assert not (tmp_path / "o").exists()  # nothing written

    class Shell:
        def __reduce__(self):
            return (print, ("code run by a pickle",))

    (raw / "another.pkl").unlink()
    write({"train": Shell()}, "other.pkl")
    with pytest.raises(ValueError, match="asks for builtins.print, which is not a numpy array"):
        prepare("cmu-mosi", raw, tmp_path / "o", print)
    with pytest.raises(FileNotFoundError, match="prepared data is absent"):
        build_dataset("cmu-mosei", "val", root=str(tmp_path))
