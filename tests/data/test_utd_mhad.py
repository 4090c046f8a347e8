"""UTD-MHAD: the release layout, the preprocessing, the cache, the splits, `polymodal prepare`, and the real files."""

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.io import savemat

from polymodal.cli import main
from polymodal.data.base import build_dataset
from polymodal.data.datasets.utd_mhad import ACTIONS, UTDMHAD, release_root
from polymodal.data.datasets.utd_mhad.features import (
    Preprocessing,
    depth_clip,
    inertial_clip,
    prepared_cache,
    resample,
    skeleton_clip,
)
from polymodal.data.datasets.utd_mhad.release import KINDS, SequenceId, scan
from polymodal.paths import default_data_root

from .._utdmhad import write_release, write_sequence


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("utd") / "utd_mhad"
    write_release(root)
    return root


def test_splits_are_cross_subject_and_labels_are_actions(release):
    parts = {s: UTDMHAD(s, root=str(release)) for s in ("train", "val", "test")}
    subjects = {s: {sid.subject for sid in ds.ids} for s, ds in parts.items()}
    assert subjects == {"train": {1, 3, 5}, "val": {7}, "test": {2, 4, 6, 8}}
    assert sum(len(ds) for ds in parts.values()) == 3 * 8
    ds = parts["test"]
    assert ds.num_outputs == 27 and ds.class_names == ACTIONS and ds.class_names[0] == "right arm swipe to the left"
    np.testing.assert_array_equal(ds.labels, [sid.action - 1 for sid in ds.ids])
    sample = ds[0]
    assert {k: tuple(v.shape) for k, v in sample["inputs"].items()} == {
        "depth": (16, 1, 64, 48), "skeleton": (64, 60), "inertial": (128, 6)}
    assert [m.kind for m in ds.schema] == ["video", "timeseries", "timeseries"]
    assert ds.provenance["subjects"] == [2, 4, 6, 8] and ds.provenance["settings"]["depth_frames"] == 16
    other = UTDMHAD("val", root=str(release), val_subjects=[1, 3])
    assert {sid.subject for sid in other.ids} == {1, 3}
    assert {sid.subject for sid in UTDMHAD("train", root=str(release), val_subjects=[1, 3]).ids} == {5, 7}


def test_root_may_be_the_data_folder_or_the_release_folder(release):
    assert release_root(str(release.parent)) == release
    assert release_root(str(release)) == release


@pytest.mark.parametrize("bad", [[2], [1, 3, 5, 7], []])
def test_validation_subjects_must_be_some_training_subjects(release, bad):
    with pytest.raises(ValueError, match="val_subjects"):
        UTDMHAD("val", root=str(release), val_subjects=bad)


def test_preprocessing_values():
    p = Preprocessing(depth_frames=4, depth_size=(60, 80), skeleton_frames=5, inertial_rows=9)
    raw = np.zeros((240, 320, 10), dtype=np.uint16)
    raw[60:180, 100:200, :] = 2000  # the person: 120 x 100 px at 2 m ...
    raw[100:120, 140:160, 3] = 1500  # ... with a hand 0.5 m nearer in frame 3 (sampled: frames 0, 3, 6, 9)
    out = depth_clip(raw, p)
    assert out.shape == (4, 1, 60, 80) and out.dtype == np.float16
    # cropped to the person's box grown by 10 % and to 3:4 (H:W): 132 x 176 px around the box centre
    inner = out[:, 0, 10:50, 20:60]
    assert np.all(out[0, 0, 30, 40] == np.float16(0.5)) and np.all(inner[[0, 2, 3]] == np.float16(0.5))
    assert out[1, 0].max() == np.float16(1.0)  # the nearer hand: 0.5 + 500 / 1000 = 1
    assert np.all(out[:, 0, :, :2] == 0) and np.all(out[:, 0, :, -2:] == 0)  # background beside the person
    assert depth_clip(np.zeros((240, 320, 5), dtype=np.uint16), p).max() == 0  # an empty clip stays empty

    skel = np.zeros((20, 3, 3))
    skel[3] = [[1.0, 1.1, 1.2], [2.0, 2.0, 2.0], [3.0, 3.0, 3.0]]  # hip centre (x, y, z over 3 frames) moves in x
    skel[1] = skel[3] + np.array([[0.0], [0.5], [0.0]])  # shoulder centre 0.5 m above it
    out = skel_out = skeleton_clip(skel, p)  # torso 0.5 m
    assert out.shape == (5, 60) and out.dtype == np.float32
    np.testing.assert_allclose(skel_out[0, 9:12], 0, atol=1e-7)  # first frame's hip centre at the origin
    np.testing.assert_allclose(skel_out[0, 3:6], [0, 1, 0], atol=1e-6)  # torso length scaled to 1
    np.testing.assert_allclose(skel_out[-1, 9:12], [(1.2 - 1.0) / 0.5, 0, 0], atol=1e-6)  # whole-body motion kept
    with pytest.raises(ValueError, match="torso"):
        skeleton_clip(np.zeros((20, 3, 3)), p, "s.mat")

    iner = np.stack([np.arange(5.0)] * 6, axis=1)
    out = inertial_clip(iner, p)
    assert out.shape == (9, 6)
    np.testing.assert_allclose(out[:, 0], np.linspace(0, 4, 9))  # linear: ends kept, midpoints interpolated
    np.testing.assert_allclose(resample(np.array([[0.0], [10.0]]), 3)[:, 0], [0, 5, 10])


def test_cached_values_equal_decoding_each_file(release):
    cached = UTDMHAD("val", root=str(release))
    direct = UTDMHAD("val", root=str(release), cache_features=False)
    assert "cache" in cached.provenance and "cache" not in direct.provenance
    for i in range(len(cached)):
        a, b = cached[i]["inputs"], direct[i]["inputs"]
        for m in a:
            assert a[m].dtype == b[m].dtype and np.array_equal(a[m].numpy(), b[m].numpy()), m
    arrays = cached.arrays
    assert all(isinstance(arrays[m], np.memmap) for m in arrays)  # memory-mapped, not loaded


def test_cache_is_reused_and_rebuilt_when_files_or_settings_change(tmp_path):
    root = tmp_path / "utd_mhad"
    write_release(root, actions=(1,), subjects=(1, 2, 7))
    first = prepared_cache(root, Preprocessing())
    stamp = (first.path / "depth.npy").stat().st_mtime_ns
    again = prepared_cache(root, Preprocessing())
    assert again.path == first.path and (again.path / "depth.npy").stat().st_mtime_ns == stamp
    other = prepared_cache(root, Preprocessing(depth_frames=8))
    assert other.path != first.path and other.arrays()["depth"].shape[1] == 8
    write_sequence(root, SequenceId(1, 2, 1), frames=50)  # a file replaced by another recording
    rebuilt = prepared_cache(root, Preprocessing())
    assert rebuilt.path != first.path
    lengths = {(r["subject"], r["depth_length"]) for r in rebuilt.index["sequences"]}
    assert (2, 50) in lengths
    index = json.loads((rebuilt.path / "index.json").read_text())
    sha = hashlib.sha256((root / "Depth" / "a1_s2_t1_depth.mat").read_bytes()).hexdigest()
    assert sha in [r["depth_sha256"] for r in index["sequences"]]
    (rebuilt.path / "skeleton.npy").write_bytes(b"broken")  # a damaged cache is rebuilt, not read
    assert prepared_cache(root, Preprocessing()).arrays()["skeleton"].shape == (3, 64, 60)


def test_missing_modalities_use_the_presence_path(release):
    ds = UTDMHAD("test", root=str(release), absent=["depth"])
    assert all(ds[i]["inputs"]["depth"] is None for i in range(len(ds)))
    assert ds.provenance["absent"] == ["depth"]
    ds = UTDMHAD("test", root=str(release), missing_rate=0.5, missing_seed=3)
    present = np.array([[ds[i]["inputs"][m] is not None for m in ds.modalities] for i in range(len(ds))])
    assert present.any(axis=1).all() and abs(ds.realised_missing_rate - (1 - present.mean())) < 1e-12
    assert 0.3 < ds.realised_missing_rate <= 0.5
    with pytest.raises(ValueError, match="cannot be combined"):
        UTDMHAD("test", root=str(release), absent=["depth"], missing_rate=0.1)
    with pytest.raises(ValueError, match="absent"):
        UTDMHAD("test", root=str(release), absent=list(ds.modalities))


def test_modalities_subset(release):
    ds = UTDMHAD("val", root=str(release), modalities=["inertial", "skeleton"])
    assert ds.modalities == ["inertial", "skeleton"] and set(ds[0]["inputs"]) == {"inertial", "skeleton"}
    with pytest.raises(ValueError, match="modalities"):
        UTDMHAD("val", root=str(release), modalities=["rgb"])


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_odd_files_are_named_in_the_error(release, tmp_path):
    root = _copy(release, tmp_path / "a")
    (root / "Depth" / "a1_s1_t1_dept.mat").write_bytes(b"")
    with pytest.raises(ValueError, match="a1_s1_t1_dept.mat"):
        scan(root)
    root = _copy(release, tmp_path / "b")
    (root / "Inertial" / "a2_s3_t1_inertial.mat").unlink()
    with pytest.raises(ValueError, match=r"without a Inertial file .*a2_s3_t1_inertial\.mat"):
        scan(root)
    root = _copy(release, tmp_path / "c")
    savemat(root / "Skeleton" / "a1_s1_t1_skeleton.mat", {"d_skel": np.zeros((25, 3, 40))})
    with pytest.raises(ValueError, match=r"a1_s1_t1_skeleton\.mat: d_skel has shape \(25, 3, 40\).*expected \(20, 3, frames\)"):
        UTDMHAD("train", root=str(root))
    savemat(root / "Skeleton" / "a1_s1_t1_skeleton.mat", {"skel": np.zeros((20, 3, 40))})
    with pytest.raises(ValueError, match="not the variable 'd_skel'"):
        UTDMHAD("train", root=str(root), cache_features=False)[0]
    with pytest.raises(FileNotFoundError, match="Depth/, Skeleton/ and Inertial/"):
        scan(tmp_path)


def test_prepare_from_folders_with_rgb_videos(release, tmp_path, capsys):
    download = _copy(release, tmp_path / "download" / "UTD-MHAD")
    (download / "RGB").mkdir()
    (download / "RGB" / "a1_s1_t1_color.avi").write_bytes(b"RIFF")
    out = tmp_path / "data" / "utd_mhad"
    assert main(["prepare", "utd-mhad", "--raw", str(download.parent), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "sequences: 24" in text and "ignored_other_files: 1" in text
    sums = (out / "SHA256SUMS").read_text().splitlines()
    assert len(sums) == 3 * 24 and not (out / "RGB").exists()
    digest, name = sums[0].split("  ")
    assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
    assert len(UTDMHAD("test", root=str(out.parent))) == 12
    # a file in place with other bytes stops the command; nothing is overwritten
    target = out / "Inertial" / "a1_s2_t1_inertial.mat"
    target.write_bytes(b"other")
    assert main(["prepare", "utd-mhad", "--raw", str(download), "--out", str(out)]) == 1
    assert "differ from the download" in capsys.readouterr().err and target.read_bytes() == b"other"


def test_prepare_from_zip_files(release, tmp_path, capsys):
    download = tmp_path / "zips"
    download.mkdir()
    for kind in KINDS.values():
        with zipfile.ZipFile(download / f"{kind.folder}.zip", "w") as z:
            for f in sorted((release / kind.folder).glob("*.mat")):
                z.write(f, f"{kind.folder}/{f.name}")
    with zipfile.ZipFile(download / "RGB.zip", "w") as z:
        z.writestr("RGB/a1_s1_t1_color.avi", b"RIFF")
    out = tmp_path / "out"
    assert main(["prepare", "utd-mhad", "--raw", str(download), "--out", str(out)]) == 0
    assert "ignored_other_files: 1" in capsys.readouterr().out
    assert len(scan(out)) == 24
    assert main(["prepare", "utd-mhad", "--raw", str(tmp_path / "nothing")]) == 1
    (tmp_path / "empty").mkdir()
    assert main(["prepare", "utd-mhad", "--raw", str(tmp_path / "empty"), "--out", str(tmp_path / "o2")]) == 1
    assert "neither the folders" in capsys.readouterr().err
    assert main(["prepare", "no-such-dataset", "--raw", str(download)]) == 1


def test_train_on_the_written_release(release, tmp_path):
    """`polymodal train configs/utd_mhad.yaml` on files in the release layout: one short epoch, every metric."""
    config = Path(__file__).resolve().parents[2] / "configs" / "utd_mhad.yaml"
    args = ["train", str(config), f"data.root={release}", f"out_dir={tmp_path}", "name=utd", "trainer.max_epochs=1",
            "trainer.progress=false", "model.width=8", "model.encoders.depth.channels=[4,8]",
            "model.encoders.skeleton.channels=[4,8]", "model.encoders.inertial.channels=[4,8]"]
    assert main(args) == 0
    results = json.loads((tmp_path / "utd" / "results.json").read_text())
    assert results["test"]["n"] == 12 and 0 <= results["test"]["fused_acc"] <= 1
    provenance = json.loads((tmp_path / "utd" / "provenance.json").read_text())
    assert "utd-mhad" in json.dumps(provenance) and "depth_range_mm" in json.dumps(provenance)


REAL = release_root(None) if default_data_root().is_dir() else None


@pytest.mark.skipif(REAL is None or not (REAL / "Depth").is_dir(), reason="the real UTD-MHAD files are not in the data folder")
def test_real_release_counts_and_cross_subject_split():
    ids = scan(REAL)
    assert len(ids) == 861
    assert len({s.action for s in ids}) == 27 and {s.subject for s in ids} == set(range(1, 9))
    listed = {line.split("  ")[1].removeprefix("./") for line in (REAL / "SHA256SUMS").read_text().splitlines()
              if line.endswith(".mat")}
    assert {f"{KINDS[k].folder}/{sid.path(REAL, k).name}" for sid in ids for k in KINDS} == listed
    parts = {s: build_dataset("utd-mhad", s) for s in ("train", "val", "test")}
    assert {s: len(d) for s, d in parts.items()} == {"train": 323, "val": 108, "test": 430}
    subjects = {s: {sid.subject for sid in d.ids} for s, d in parts.items()}
    assert subjects == {"train": {1, 3, 5}, "val": {7}, "test": {2, 4, 6, 8}}
    assert all(len(set(d.labels)) == 27 for d in parts.values())
    x = parts["test"][0]["inputs"]
    assert 0 < float(x["depth"].max()) <= 1 and float(x["inertial"].abs().max()) > 0


def test_depth_gets_the_recommended_encoder_without_a_config(release):
    """A model built with no encoder named (`polymodal train --dataset utd-mhad`) gets the dataset's
    recommended depth encoder; a config's keyword arguments apply on top, and a named encoder replaces it."""
    from polymodal.coordinated.towers import build_tower
    from polymodal.encoders.video import VideoFrames, VideoR2Plus1D
    from polymodal.models import build_model

    ds = UTDMHAD("val", root=str(release))
    depth = next(m for m in ds.schema if m.name == "depth")
    model = build_model(ds.schema, ds.num_outputs, width=16)
    enc = model.encoders["depth"]
    assert isinstance(enc, VideoR2Plus1D)
    x = torch.as_tensor(np.stack([ds[i]["inputs"]["depth"] for i in range(2)]))
    assert enc(x).shape == (2, 16)
    strided = build_model(ds.schema, ds.num_outputs, width=16, encoders={"depth": {"stem_stride": 2}})
    assert (enc.patch, strided.encoders["depth"].patch) == (4, 2)
    named = build_model(ds.schema, ds.num_outputs, width=16, encoders={"depth": {"name": "video_frames"}})
    assert isinstance(named.encoders["depth"], VideoFrames)
    assert isinstance(build_tower(depth, dim=8, width=16).encoder, VideoR2Plus1D)


def test_a_malformed_encoder_recommendation_is_named():
    from polymodal.data.schema import Modality
    from polymodal.encoders.base import default_encoder_spec

    odd = Modality("depth", "video", (4, 1, 8, 8), extra={"encoder": "video_r2plus1d"})
    with pytest.raises(ValueError, match=r"depth.*extra\['encoder'\]"):
        default_encoder_spec(odd)
    assert default_encoder_spec(Modality("clip", "video", (4, 1, 8, 8))) == {"name": "video_frames"}
