import json
import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from PIL import Image

from polymodal.data.datasets.manifest import Manifest, ManifestError, from_manifest, infer_kind
from polymodal.data.validation import DatasetValidationError
from polymodal.datasets import from_folder

from ._byod import HEADER, write_csv, write_digits


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    folder = tmp_path_factory.mktemp("digits")
    return folder, write_digits(folder)


def test_kinds_are_inferred_and_can_be_overridden():
    assert infer_kind(["a/b.wav", "c.FLAC", None]) == "audio"
    assert infer_kind(["x.png", "y.jpg"]) == "image"
    assert infer_kind(["x.mp4"]) == "video" and infer_kind(["s.npy", "t.csv"]) == "timeseries"
    assert infer_kind(["n.txt"]) == "text" and infer_kind([None, None]) == "ignore"
    assert infer_kind(["1.5", 2, "-3e2", None]) == "numeric"
    assert infer_kind(["red", "blue", "red"]) == "categorical"
    assert infer_kind(["the cat sat on the mat", "a dog barked twice"]) == "text"
    assert infer_kind(["x.png", "y.wav"]) == "categorical"  # mixed kinds: not a file column


def test_manifest_reads_real_files_with_missing_and_absent_cells(digits, tmp_path):
    folder, rows = digits
    rows = [dict(r) for r in rows]
    rows[0]["image"] = ""  # missing modality for this row
    rows[1]["loudness"] = ""  # missing value: imputed, with an indicator
    path = write_csv(folder / "m1.csv", rows)
    m = from_manifest(path, label="digit", id="sample", schema={"speaker": "ignore"})
    assert m.kinds == {"audio": "audio", "image": "image", "note": "text", "loudness": "numeric", "ink": "numeric",
                       "speaker": "ignore"}
    assert [s["name"] for s in m.modality_specs] == ["audio", "image", "note", "tabular"]
    assert m.task == "classification" and m.class_names == tuple(str(d) for d in range(10))
    assert not m.present["image"][0] and m.present["audio"][0] and m.present["image"][1:].all()
    assert m.report.by_check("imputed")[0].column == "loudness"
    tab = m.item("tabular", 1).numpy()
    assert tab[0] == 0 and tab[1] == 1  # imputed with the train mean (0 after scaling) + indicator
    assert sum(len(m.dataset(s)) for s in ("train", "val", "test")) == len(rows)
    ds = m.dataset("train")
    samples = m.stats["audio"]["samples"]  # the 95th percentile of the training clips' lengths
    lengths = [sf.info(rows[r]["audio"]).frames for r in m.rows["train"]]
    assert samples == int(np.percentile(lengths, 95, method="lower")) < max(lengths)
    assert m.stats["audio"]["logmel"]["hop_length"] == 160  # 8 kHz: 20 ms hop, 32 ms window
    cropped = m.report.by_check("cropped")[0]
    assert cropped.count == sum(n > samples + 1 for n in (sf.info(r["audio"]).frames for r in rows))
    assert ds.schema[0].shape == (40, 1 + samples // 160) and ds.schema[1].shape == (1, 28, 28)
    batch = ds.collate_fn()([ds[i] for i in range(len(ds))])
    batch.validate(ds.schema)
    state = json.loads(ds.run_files()["data_state.json"])
    assert state["stats"]["audio"]["sample_rate"] == 8000 and state["stats"]["image"]["mode"] == "L"
    mean = state["stats"]["tabular"]["numeric"][1]["mean"]  # ink: statistics of the train split only
    train_rows = m.rows["train"]
    assert mean == pytest.approx(np.mean([float(rows[r]["ink"]) for r in train_rows]))


def test_missing_file_is_an_error_by_default_and_skip_or_drop_on_request(digits):
    folder, rows = digits
    rows = [dict(r) for r in rows]
    rows[2]["audio"] = str(folder / "no_such.wav")
    path = write_csv(folder / "m2.csv", rows)
    with pytest.raises(DatasetValidationError) as err:
        from_manifest(path, label="digit")
    msg = str(err.value)
    assert "missing_file" in msg and "no_such.wav" in msg and "row 3" in msg and "bad_files=skip" in msg
    skipped = from_manifest(path, label="digit", bad_files="skip")
    assert not skipped.present["audio"][2] and skipped.present["image"][2]
    assert "no_such.wav" in skipped.report.to_markdown()
    dropped = from_manifest(path, label="digit", bad_files="drop")
    assert 2 not in np.concatenate([dropped.dataset(s).rows for s in ("train", "val", "test")])


def test_every_validation_problem_is_named(digits, tmp_path):
    folder, rows = digits
    rows = [dict(r) for r in rows]
    (tmp_path / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    rows[3]["audio"] = str(tmp_path / "broken.wav")  # unreadable
    x, _ = sf.read(rows[4]["audio"], dtype="float32")
    sf.write(tmp_path / "fast.wav", np.repeat(x, 2), 16000)  # another sample rate: resampled
    rows[4]["audio"] = str(tmp_path / "fast.wav")
    Image.open(folder / rows[5]["image"]).resize((32, 32)).save(tmp_path / "big.png")  # another size: resized
    rows[5]["image"] = str(tmp_path / "big.png")
    for r in rows:
        r["split"] = "train"
    rows[6]["split"], rows[7]["split"] = "val", "test"
    rows[7]["image"] = rows[6]["image"]  # the same file in val and test
    rows[8]["split"] = "testing"  # not a split name
    path = write_csv(folder / "m3.csv", rows)
    with pytest.raises(DatasetValidationError) as err:
        from_manifest(path, label="digit", bad_files="error")
    checks = {p.check: p for p in err.value.report.problems}
    assert "missing_file" not in checks
    assert {"unreadable_file", "resampled", "resized", "file_leakage", "bad_split", "small_class"} <= set(checks)
    assert "broken.wav" in checks["unreadable_file"].examples[0]
    assert "16000 Hz resampled to 8000 Hz" in checks["resampled"].detail
    assert "resized to 28x28" in checks["resized"].detail
    assert "testing" in checks["bad_split"].examples[0]
    assert checks["file_leakage"].count == 1 and "test/val" in checks["file_leakage"].examples[0]


def test_group_never_spans_two_splits_and_kfold_partitions(digits):
    folder, rows = digits
    path = write_csv(folder / "m4.csv", [dict(r) for r in rows])
    m = from_manifest(path, label="digit", splits={"group": "speaker", "val": 0.3, "test": 0.3, "seed": 3})
    speakers = np.array(m.table["speaker"], dtype=object)
    for spk in np.unique(speakers):
        assert len(set(m.split[speakers == spk])) == 1
    val_sets = []
    for fold in range(3):
        k = from_manifest(path, label="digit", splits={"folds": 3, "fold": fold, "test": 0.2})
        val_sets.append(set(k.rows["val"].tolist()))
        assert set(k.rows["test"]) == set(from_manifest(path, label="digit", splits={"folds": 3, "fold": 0, "test": 0.2}).rows["test"])
    assert not (val_sets[0] & val_sets[1]) and not (val_sets[1] & val_sets[2])
    assert len(set().union(*val_sets)) == len(rows) - len(k.rows["test"])
    with pytest.raises(ManifestError, match="did you mean 'speaker'"):
        from_manifest(path, label="digit", splits={"group": "speakr"})


def test_given_split_with_a_group_in_two_splits_is_an_error(digits, tmp_path):
    _, rows = digits
    rows = [dict(r, split="train") for r in rows]
    rows[0]["split"] = "test"  # george's row in test, his other rows in train
    rows[1]["split"] = "val"
    with pytest.raises(DatasetValidationError, match="group_leakage") as err:
        from_manifest(write_csv(tmp_path / "g.csv", rows), label="digit", splits={"group": "speaker"}, root=digits[0])
    assert [p.check for p in err.value.report.errors] == ["group_leakage"]


def test_parquet_jsonl_and_data_frame_read_the_same(digits, tmp_path):
    folder, rows = digits
    df = pd.DataFrame(rows)
    df["image"] = [str(folder / p) for p in df["image"]]
    df.to_parquet(tmp_path / "m.parquet")
    df.to_json(tmp_path / "m.jsonl", orient="records", lines=True)
    ms = [from_manifest(src, label="digit", schema={"speaker": "categorical"}) for src in
          (df, tmp_path / "m.parquet", tmp_path / "m.jsonl")]
    for m in ms[1:]:
        assert m.kinds == ms[0].kinds
        assert (m.split == ms[0].split).all()
        assert np.array_equal(m.item("image", 5).numpy(), ms[0].item("image", 5).numpy())
    with pytest.raises(ManifestError, match="unknown table format"):
        (tmp_path / "m.xlsx").write_text("x")
        from_manifest(tmp_path / "m.xlsx", label="digit")


def test_folder_layout_gives_the_same_samples(digits, tmp_path):
    folder, rows = digits
    rows = [dict(r) for r in rows]
    for i, r in enumerate(rows):
        r["split"] = ("train", "val", "test")[i % 3]
        d = tmp_path / "tree" / r["split"] / r["digit"] / r["sample"]
        d.mkdir(parents=True)
        shutil.copy(r["audio"], d / "audio.wav")
        shutil.copy(folder / r["image"], d / "image.png")
    m = from_manifest(write_csv(folder / "m5.csv", rows, [c for c in HEADER.split(",")] + ["split"]), label="digit",
                      schema={"note": "ignore", "loudness": "ignore", "ink": "ignore", "speaker": "ignore"})
    f = from_folder(tmp_path / "tree")
    assert f.kinds == {"audio": "audio", "image": "image"}
    for split in ("train", "val", "test"):
        a, b = m.dataset(split), f.dataset(split)
        assert len(a) == len(b)
        key = lambda ds: sorted((str(ds.labels[i]), round(ds[i]["inputs"]["audio"].sum().item(), 2),  # noqa: E731
                                 round(ds[i]["inputs"]["image"].sum().item(), 3)) for i in range(len(ds)))
        assert key(a) == key(b)


def test_timeseries_text_files_and_video(tmp_path):
    import av

    rows = []
    for i in range(12):
        x = np.sin(np.linspace(0, 6, 30 + i))[:, None] * np.array([[1.0, 2.0]]) + i % 2
        np.save(tmp_path / f"acc{i}.npy", x.astype(np.float32))
        np.savetxt(tmp_path / f"gyr{i}.csv", x.T, delimiter=",")  # channel-major CSV
        (tmp_path / f"n{i}.txt").write_text(f"note {i} says {'odd' if i % 2 else 'even'}")
        with av.open(str(tmp_path / f"v{i}.mp4"), "w") as out:
            stream = out.add_stream("mpeg4", rate=5)
            stream.width = stream.height = 16
            stream.pix_fmt = "yuv420p"
            for t in range(4):
                frame = np.full((16, 16, 3), 40 * t + 100 * (i % 2), dtype=np.uint8)
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
        rows.append({"acc": f"acc{i}.npy", "gyr": f"gyr{i}.csv", "notes": f"n{i}.txt", "clip": f"v{i}.mp4",
                     "label": "odd" if i % 2 else "even"})
    path = write_csv(tmp_path / "ts.csv", rows)
    with pytest.raises(DatasetValidationError, match="bad_channels"):  # gyr is channel-major: 30+ channels
        from_manifest(path, label="label", splits={"val": 0.25, "test": 0.25})
    m = Manifest(path, {"label": "label", "schema": {"gyr": "ignore"}, "splits": {"val": 0.25, "test": 0.25},
                        "video": {"frames": 3, "size": [8, 8]}, "timeseries": {"length": 40}})
    schema = {s.name: s for s in m.schema}
    assert schema["acc"].shape == (40, 2) and schema["notes"].kind == "text" and schema["clip"].shape == (3, 3, 8, 8)
    x = m.item("acc", 0).numpy()
    assert x.shape == (40, 2) and (x[30:] == 0).all()  # padded after normalisation
    both = Manifest(path, {"label": "label", "schema": {"acc": "ignore", "clip": "ignore", "notes": "ignore"},
                           "timeseries": {"layout": "channel_major"}, "splits": {"val": 0.25, "test": 0.25}})
    assert both.schema[0].shape == (30 + max(both.rows["train"]), 2)  # the longest training series, 2 channels


def test_two_columns_of_one_kind_are_two_modalities(digits):
    folder, rows = digits
    rows = [dict(r, side=rows[(i + 1) % len(rows)]["image"]) for i, r in enumerate(rows)]
    m = from_manifest(write_csv(folder / "m6.csv", rows), label="digit", schema={"note": "ignore", "speaker": "ignore"},
                      tabular_groups={"sound": ["loudness"], "paper": ["ink"]})
    assert [(s.name, s.kind) for s in m.schema] == [("audio", "audio"), ("image", "image"), ("side", "image"),
                                                   ("sound", "tabular"), ("paper", "tabular")]
    assert m.schema[3].shape == (2,)  # value + missing indicator
    with pytest.raises(ManifestError, match="not numeric or categorical"):
        from_manifest(write_csv(folder / "m7.csv", rows), label="digit", tabular_groups={"bad": ["image"]})


def test_without_the_cache_files_are_read_again_to_the_same_inputs(digits):
    import torch

    from polymodal.data.transforms import LogMel, LogMelConfig

    folder, rows = digits
    path = write_csv(folder / "m8.csv", [dict(r) for r in rows])
    on = from_manifest(path, label="digit", schema={"speaker": "ignore"})
    off = from_manifest(path, label="digit", schema={"speaker": "ignore"}, cache_features=False)
    assert off.data["image"][0] is None and off.schema[0].representation == "waveform"
    for name in ("image", "note", "tabular"):
        assert torch.equal(on.item(name, 7), off.item(name, 7))
    mel = LogMel(LogMelConfig(**off.stats["audio"]["logmel"]))(off.item("audio", 7)[None])[0]
    assert torch.allclose(mel, on.item("audio", 7), atol=1e-5)


def test_images_keep_raw_pixels_when_not_normalised(digits):
    folder, rows = digits
    path = write_csv(folder / "m9.csv", [dict(r) for r in rows])
    raw = from_manifest(path, label="digit", image={"normalize": False})
    std = from_manifest(path, label="digit")
    x = raw.item("image", 0)
    assert 0 <= x.min() and x.max() <= 1 and raw.stats["image"]["mean"] == [0.0]
    s = std.stats["image"]
    assert np.allclose(std.item("image", 0).numpy() * s["std"][0] + s["mean"][0], x.numpy(), atol=1e-5)


def test_task_option_names_a_registered_task(digits):
    """The task option is a registered task's name (or auto); the task object decides how labels are read."""
    from polymodal.tasks import TASKS

    folder, rows = digits
    path = write_csv(folder / "m_task.csv", rows)
    with pytest.raises(ManifestError, match=r"task: .*unknown task 'ordinal'; expected auto or one of classification"):
        from_manifest(path, label="digit", task="ordinal")
    assert "regression" in TASKS
    m = from_manifest(path, label="ink", task="regression", schema={"speaker": "ignore", "sample": "ignore"})
    assert m.task == "regression" and "single_label" not in m.task_object.capabilities and m.class_names == ()
    assert m.y.dtype == np.float32 and np.allclose(m.y, [float(r["ink"]) for r in rows])
    d = m.dataset("train")
    assert d.task == "regression" and d.num_outputs == 1
