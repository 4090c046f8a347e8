"""AV-digits: the published recipe checksums, splits, variants, missing modalities and the artifact."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from polymodal.data.base import DATASETS, build_dataset
from polymodal.data.datasets import avdigits as av
from polymodal.data.datasets.avdigits import (
    AVDIGITS_LOGMEL,
    AVDigits,
    corrupted_test_sha256,
    load_artifact,
    recipe_checksums,
)
from polymodal.data.transforms import LogMel, LogMelConfig

SPEAKERS = {"george", "jackson", "lucas", "nicolas", "theo", "yweweler"}
HARD = {"snr_db": 5.0, "sigma": 0.2, "occlusion": 9}


def wave(variant: str, split: str, **options) -> AVDigits:
    return AVDigits(variant, split, cache_features=False, **options)


def test_recipe_checksums():
    art = load_artifact()
    assert recipe_checksums(art.recipe, art.files) == {
        "all_rows": "cf76718d3cbcdfba",
        "test_rows": "35122b1d4a4e0eb9",
        "image2": "159dce8114ad5ba6",
        "sum": "dfff13ee1d26de8c",
    }
    assert art.manifest["recipe_checksums"] == av.RECIPE_CHECKSUMS


def test_splits_sizes_speakers_and_pairing():
    art = load_artifact()
    pools = {"train": (0, 6000), "val": (6000, 8000), "test": (8000, 10000)}
    for split, size in [("train", 2400), ("val", 300), ("test", 300)]:
        ds = wave("avdigits", split)
        assert len(ds) == size and ds.labels.shape == (size,)
        assert set(ds.speakers) == SPEAKERS
        assert np.bincount(ds.labels, minlength=10).tolist() == [size // 10] * 10
        rows = ds.image_rows["image"]
        assert len(set(rows.tolist())) == size and rows.min() >= pools[split][0] and rows.max() < pools[split][1]
        np.testing.assert_array_equal(art.image_labels[rows], ds.audio_digits)  # paired within the digit
        np.testing.assert_array_equal(ds.labels, ds.audio_digits)
        recs = {int(f[:-4].split("_")[2]) for f in ds.files}
        assert recs == set(av.RECORDINGS[split])
    sample = ds[0]
    assert sample["inputs"]["audio"].shape == (8000,) and sample["inputs"]["image"].shape == (1, 28, 28)
    assert ds.tensor("image").dtype == torch.float32 and 0 <= ds.tensor("image").min() <= ds.tensor("image").max() <= 1
    assert ds.tensor("audio").abs().max() <= 1


def test_deterministic():
    a = AVDigits("avdigits-hard", "val", persist_features=False, **HARD)
    b = AVDigits("avdigits-hard", "val", persist_features=False, **HARD)
    for name in a.modalities:
        assert torch.equal(a.tensor(name), b.tensor(name))
    assert a.provenance == b.provenance


def test_hard_noise_snr_and_occlusion():
    clean, hard = wave("avdigits", "test"), wave("avdigits-hard", "test", **HARD)
    assert clean.files == hard.files and not torch.equal(clean.tensor("audio"), hard.tensor("audio"))
    art = load_artifact()
    idx = art.files.index(clean.files[7])
    n = int(art.lengths[idx])
    x, y = clean.tensor("audio")[7].double(), hard.tensor("audio")[7].double()
    snr = 10 * torch.log10(x[:n].square().mean() / (y[:n] - x[:n]).square().mean())
    assert float(snr) == pytest.approx(HARD["snr_db"], abs=0.3)
    assert torch.all(y[n:] == 0)  # noise covers the clip, not the padding
    k = HARD["occlusion"]
    zeros = (hard.tensor("image")[:, 0] == 0).numpy()
    windows = np.lib.stride_tricks.sliding_window_view(zeros, (k, k), axis=(1, 2)).all(axis=(-1, -2))
    assert windows.any(axis=(1, 2)).all()  # every image has a k x k square of zeros
    assert not torch.equal(clean.tensor("image"), hard.tensor("image"))


def test_corruption_matches_the_recipe_walked_row_by_row():
    """Naive twin: corrupt all 3000 rows literally as the recipe says, then keep the test rows."""
    art, rec = load_artifact(), load_artifact().recipe
    s, sigma, k = HARD["snr_db"], HARD["sigma"], HARD["occlusion"]
    rng_a, g = np.random.default_rng(1), np.random.default_rng(2)
    audio, images = [], []
    for clip, row in zip(rec.clip, rec.image_row, strict=True):
        x = art.clips[clip, : art.lengths[clip]] / 32768
        p = np.mean(x**2)
        x = x + rng_a.standard_normal(len(x)) * np.sqrt(p / 10 ** (s / 10))
        audio.append(np.pad(x, (0, 8000 - len(x))))
        im = np.clip(art.images[row] / 255 + sigma * g.standard_normal((28, 28)), 0, 1)
        r, c = g.integers(0, 28 - k + 1, size=2)
        im[r : r + k, c : c + k] = 0
        images.append(im)
    test = rec.split == 2
    ds = wave("avdigits-hard", "test", **HARD)
    np.testing.assert_array_equal(ds.tensor("audio").numpy(), np.array(audio)[test].astype(np.float32))
    np.testing.assert_array_equal(ds.tensor("image").numpy()[:, 0], np.array(images)[test].astype(np.float32))


def test_three_views():
    ds = wave("avdigits-3view", "val", **HARD)
    assert ds.modalities == ["audio", "image", "image2"]
    art = load_artifact()
    np.testing.assert_array_equal(art.image_labels[ds.image_rows["image2"]], ds.audio_digits)
    assert not np.any(ds.image_rows["image"] == ds.image_rows["image2"])
    assert not torch.equal(ds.tensor("image"), ds.tensor("image2"))
    hard = wave("avdigits-hard", "val", **HARD)  # same audio and first image as the hard variant
    assert torch.equal(ds.tensor("audio"), hard.tensor("audio")) and torch.equal(ds.tensor("image"), hard.tensor("image"))


def _mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    joint = np.zeros((10, 10))
    np.add.at(joint, (a, b), 1)
    joint /= joint.sum()
    outer = joint.sum(1, keepdims=True) * joint.sum(0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log(joint[nz] / outer[nz])).sum())


def test_sum_labels_need_both_modalities():
    ds = wave("avdigits-sum", "train")
    image_digits = load_artifact().image_labels[ds.image_rows["image"]]
    np.testing.assert_array_equal(ds.labels, (ds.audio_digits + image_digits) % 10)
    for digits in (ds.audio_digits, image_digits):
        joint = np.zeros((10, 10), dtype=int)
        np.add.at(joint, (digits, ds.labels), 1)
        assert (joint > 0).all()  # every (digit, label) pair occurs: the label is spread
        assert joint.max(axis=1).sum() / len(ds) < 0.2  # best guess from one modality is near chance (0.1)
        assert _mutual_information(digits, ds.labels) < 0.06  # ~0.017 nats is the bias of 2400 samples
    assert _mutual_information(ds.audio_digits, ds.audio_digits) > 2.2  # the estimator does see dependence


def test_missing_modalities():
    ds = wave("avdigits", "train", missing_rate=0.3, missing_seed=4)
    assert ds.realised_missing_rate == pytest.approx(0.3, abs=0.005)
    assert ds.present.shape == (2400, 2) and ds.present.any(axis=1).all()
    assert ds.provenance["realised_missing_rate"] == ds.realised_missing_rate
    row = int(np.flatnonzero(~ds.present[:, 1])[0])
    assert ds[row]["inputs"]["image"] is None and ds[row]["inputs"]["audio"] is not None
    batch = ds.collate_fn()([ds[i] for i in range(16)])
    batch.validate(ds.schema)
    assert torch.equal(batch.present["image"], torch.from_numpy(ds.present[:16, 1]))
    full = wave("avdigits", "val", missing_rate=0.5)
    assert full.realised_missing_rate == 0.5 and (full.present.sum(axis=1) == 1).all()
    assert wave("avdigits-3view", "val", missing_rate=0.6).present.any(axis=1).all()  # 3 views allow <= 2/3
    with pytest.raises(ValueError, match=r"missing_rate=0.6 is out of range: .*\(M-1\)/M = 0.500"):
        wave("avdigits", "val", missing_rate=0.6)
    other = wave("avdigits", "train", missing_rate=0.3, missing_seed=5)
    assert not np.array_equal(ds.present, other.present)


def test_logmel_cache_matches_on_the_fly():
    waves = wave("avdigits-hard", "val", **HARD)
    first = AVDigits("avdigits-hard", "val", **HARD)  # computes and writes the cache
    again = AVDigits("avdigits-hard", "val", **HARD)  # loads it
    with torch.no_grad():
        expected = LogMel(AVDIGITS_LOGMEL)(waves.tensor("audio"))
    torch.testing.assert_close(first.tensor("audio"), expected, atol=1e-4, rtol=1e-5)
    assert torch.equal(first.tensor("audio"), again.tensor("audio"))
    spec = first.schema[0]
    assert spec.representation == "logmel" and spec.shape == (40, 51) and spec.sample_rate == 8000
    assert waves.schema[0].extra["logmel"] == spec.extra["logmel"]  # encoders fed waveforms match the cache
    small = AVDigits("avdigits", "test", logmel={"n_mels": 20}, persist_features=False)
    assert small.schema[0].shape == (20, 101) and small[0]["inputs"]["audio"].shape == (20, 101)
    with pytest.raises(ValueError, match="valid keys"):
        AVDigits("avdigits", "test", logmel={"mels": 20})
    with pytest.raises(ValueError, match="logmel.sample_rate is 16000"):
        AVDigits("avdigits", "test", logmel=LogMelConfig(sample_rate=16000))


def test_registry_options_and_errors():
    assert {"avdigits", "avdigits-hard", "avdigits-3view", "avdigits-sum"} <= set(DATASETS.names())
    ds = build_dataset("avdigits-hard", "test", cache_features=False, root="raw/here")
    assert ds.corruption == av.HARD_DEFAULTS and ds.provenance["root"] == "raw/here"
    assert ds.num_outputs == 10 and ds.class_names == tuple("0123456789")
    assert set(ds.provenance["artifact_sha256"]) >= {"audio.flac", "audio_index.csv"}
    with pytest.raises(TypeError, match="'snr' \\(did you mean 'snr_db'\\?\\)"):
        build_dataset("avdigits-hard", "test", snr=3)
    with pytest.raises(ValueError, match="avdigits is not corrupted"):
        build_dataset("avdigits", "test", sigma=0.3)
    with pytest.raises(ValueError, match="occlusion=30"):
        build_dataset("avdigits-hard", "test", occlusion=30)
    with pytest.raises(IndexError):
        ds[300]


def test_corrupted_test_sha256():
    digests = corrupted_test_sha256("avdigits-hard", **HARD)
    ds = wave("avdigits-hard", "test", **HARD)
    assert digests == corrupted_test_sha256(ds)
    assert set(digests) == {"audio", "image"} and all(len(h) == 64 for h in digests.values())
    other = corrupted_test_sha256("avdigits-hard", **{**HARD, "sigma": 0.25})
    assert other["audio"] == digests["audio"] and other["image"] != digests["image"]  # audio depends on snr_db only


def test_tampered_artifact_is_rejected(tmp_path):
    copy = tmp_path / "avdigits-v1"
    shutil.copytree(load_artifact().path, copy)
    index = copy / "audio_index.csv"
    data = bytearray(index.read_bytes())
    data[100] ^= 1
    index.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"audio_index.csv is corrupt: sha256 .*rebuild with `python -m polymodal"):
        build_dataset("avdigits", "test", artifact_dir=copy)
    with pytest.raises(FileNotFoundError, match="AV-digits artifact not found"):
        load_artifact(tmp_path / "nowhere")
    (copy / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="manifest .*manifest.json is corrupt"):
        load_artifact(copy)


def test_verify_command(capsys):
    from polymodal.data.datasets._avdigits_build import main

    assert main(["verify"]) == 0
    assert "recipe checksums OK" in capsys.readouterr().out


@pytest.mark.slow
def test_rebuild_reproduces_the_shipped_artifact(tmp_path, raw_data):
    """From the real raw data, or (fresh clone) from the raw files written back from the artifact: then a
    round trip that checks the builder reads, cuts, indexes and encodes the recordings as shipped."""
    raw = raw_data
    from polymodal.data.datasets._avdigits_build import main

    assert main(["build", "--root", str(raw), "--out", str(tmp_path)]) == 0
    shipped = load_artifact().manifest
    rebuilt = json.loads((tmp_path / "manifest.json").read_text())
    assert rebuilt["audio"]["pcm_sha256"] == shipped["audio"]["pcm_sha256"]
    assert rebuilt["recipe_checksums"] == shipped["recipe_checksums"]
    same_encoder = rebuilt["audio"]["libsndfile"] == shipped["audio"]["libsndfile"]
    for name, entry in shipped["files"].items():
        if name != "audio.flac" or same_encoder:  # FLAC bytes depend on the encoder version
            assert rebuilt["files"][name] == entry, name
    assert load_artifact(tmp_path).recipe.clip.shape == (3000,)


def test_calibrated_hard_variant_is_pinned():
    """avdigits-hard's corruption is fixed once (docs/benchmarks.md); its test arrays must never change."""
    assert av.HARD_DEFAULTS == {"snr_db": 0.0, "sigma": 0.5, "occlusion": 10}
    sha = corrupted_test_sha256("avdigits-3view")
    assert sha == {
        "audio": "a02df8e0f61385c1e2d8949b67910a004079fcbe5d76ac3b390d5dff3671eb2a",
        "image": "68b5bc73c6e426737a5ab69b88e0b1e264a68e639c8f818faa6f04f43bfa196b",
        "image2": "47bf68699bf841775a7f9585a5cf9c5ef696f96ce10255479ec72d0a74edd369",
    }
