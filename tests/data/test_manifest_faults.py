"""Bad input meets the bring-your-own-data reader: every odd cell, bad number and damaged file is named in
the data check (and follows ``bad_files``), never silently changes a column's kind or a value."""

import csv
import json
import os

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from polymodal.data.datasets.manifest import Manifest, ManifestError, from_manifest, infer_kind
from polymodal.data.io import read_audio
from polymodal.data.splits import assign_splits
from polymodal.data.validation import DatasetValidationError

from ._faults import write_csv, write_table, write_wav


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    folder = tmp_path_factory.mktemp("faults")
    return folder, write_table(folder)


def _read(folder, df, name, **kw):
    return from_manifest(write_csv(df, folder / name), label="label", id="id", **kw)


def _problem(m_or_err, check):
    report = m_or_err.report
    found = report.by_check(check)
    assert found, f"no {check!r} row in\n{report.to_markdown()}"
    return found[0]


# ---- kinds are decided by the majority of a column's cells -----------------------------------------------


def test_one_odd_audio_cell_is_an_error_row_and_the_column_stays_audio(base):
    folder, df = base
    df = df.copy()
    df.loc[5, "audio"] = "wav/s005.wv"  # a typo in one of 24 cells
    assert infer_kind(df["audio"].tolist()) == "audio"
    with pytest.raises(DatasetValidationError) as err:
        _read(folder, df, "odd.csv")
    p = _problem(err.value, "odd_cell")
    assert p.severity == "error" and p.column == "audio" and "row 6" in ", ".join(p.examples)
    assert "s005.wv" in str(err.value) and "bad_files=skip" in str(err.value)
    skipped = _read(folder, df, "odd.csv", bad_files="skip")
    assert skipped.kinds["audio"] == "audio" and [s["name"] for s in skipped.modality_specs][0] == "audio"
    assert not skipped.present["audio"][5] and skipped.present["audio"].sum() == len(df) - 1
    dropped = _read(folder, df, "odd.csv", bad_files="drop")
    assert 5 not in np.concatenate([dropped.rows[s] for s in ("train", "val", "test")])


def test_one_word_in_a_numeric_column_is_a_bad_number_not_a_text_modality(base):
    folder, df = base
    df = df.copy()
    df.loc[7, "size"] = "unknown"
    assert infer_kind(df["size"].tolist()) == "numeric"
    with pytest.raises(DatasetValidationError) as err:
        _read(folder, df, "word.csv")
    p = _problem(err.value, "bad_number")
    assert p.column == "size" and p.examples == ["row 8: 'unknown'"]
    skipped = _read(folder, df, "word.csv", bad_files="skip")
    assert skipped.kinds["size"] == "numeric" and "size" not in [s["name"] for s in skipped.modality_specs]
    assert skipped.item("tabular", 7).numpy()[1] == 1.0  # treated as empty: imputed, with the indicator
    assert "row 8" in skipped.report.to_markdown()


def test_every_kind_and_every_ignored_column_is_in_the_check(base):
    folder, df = base
    df = df.copy()
    df["code"] = [f"x{i}" for i in range(len(df))]  # looks like an identifier: ignored
    df["blank"] = ""
    m = _read(folder, df, "kinds.csv")
    kinds = {p.column: p.detail for p in m.report.by_check("column_kind")}
    assert set(kinds) == {"audio", "image", "size", "code", "blank"}
    assert kinds["audio"].startswith("audio") and kinds["image"].startswith("image")
    assert kinds["size"].startswith("numeric") and kinds["code"].startswith("ignored")
    assert kinds["blank"].startswith("ignored")
    assert "| info | column_kind | code |" in m.report.to_markdown()


def test_parquet_list_and_struct_columns_are_refused_unless_ignored(base):
    folder, df = base
    df = df.copy()
    df["tags"] = [[1, 2]] * len(df)
    df["meta"] = [{"a": 1}] * len(df)
    path = folder / "nested.parquet"
    df.to_parquet(path, index=False)
    with pytest.raises(ManifestError) as err:
        from_manifest(path, label="label", id="id", root=folder)
    msg = str(err.value)
    assert "tags" in msg and "meta" in msg and "list" in msg and "ignore" in msg
    m = from_manifest(path, label="label", id="id", root=folder, schema={"tags": "ignore", "meta": "ignore"})
    assert m.kinds["tags"] == "ignore" and {p.column for p in m.report.by_check("column_kind")} >= {"tags", "meta"}


# ---- numbers that are not numbers ------------------------------------------------------------------------


def test_nan_inf_and_overflow_in_a_numeric_column_are_named_with_their_rows(base):
    folder, df = base
    df = df.copy()
    df.loc[[2, 10, 20], "size"] = ["nan", "inf", "1e999"]
    with pytest.raises(DatasetValidationError) as err:
        _read(folder, df, "nonfinite.csv")
    p = _problem(err.value, "bad_number")
    assert p.column == "size" and p.count == 3
    assert p.examples == ["row 3: 'nan'", "row 11: 'inf'", "row 21: '1e999'"]


def test_a_word_in_a_numeric_cell_at_prediction_is_named_not_imputed(base):
    folder, df = base
    m = _read(folder, df, "clean.csv")
    state = json.loads(json.dumps(m.state()))
    new = df.drop(columns="label").head(4).copy()
    new.loc[new.index[2], "size"] = "abc"
    new.loc[new.index[3], "size"] = "inf"
    with pytest.raises(DatasetValidationError) as err:
        Manifest(new, {"root": str(folder), "id": "id"}, state=state)
    p = _problem(err.value, "bad_number")
    assert p.column == "size" and p.examples == ["row 3: 'abc'", "row 4: 'inf'"]
    skipped = Manifest(new, {"root": str(folder), "id": "id", "bad_files": "skip"}, state=state)
    assert skipped.item("tabular", 2).numpy()[1] == 1.0 and "row 3" in skipped.report.to_markdown()
    new.loc[new.index[1], "size"] = ""  # an empty cell is not an error (here: the tabular modality is missing)
    ok = Manifest(new.head(2), {"root": str(folder), "id": "id"}, state=state)
    assert not ok.report.errors and not ok.present["tabular"][1] and ok.present["tabular"][0]


# ---- .npy time series ------------------------------------------------------------------------------------


def _series_table(folder, bad: dict[int, str]):
    (folder / "ts").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(24):
        p = folder / "ts" / f"t{i}.npy"
        np.save(p, rng.standard_normal((16, 2)).astype(np.float32) + i % 3)
        rows.append({"id": f"t{i}", "series": f"ts/t{i}.npy", "level": f"{i % 3 + 0.1 * i:.1f}",
                     "label": ("a", "b", "c")[i % 3]})
    for i, name in bad.items():
        rows[i]["series"] = f"ts/{name}"
    return write_csv(pd.DataFrame(rows), folder / "series.csv")


def _absurd_npy(path):
    """A 128-byte .npy whose header asks for a 1 TiB float64 array."""
    header = np.lib.format.header_data_from_array_1_0(np.zeros((1,), np.float64))
    header["shape"] = (1 << 37,)
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(b"\0" * 16)
    return path


def test_npy_files_are_checked_from_their_header_and_errors_follow_bad_files(tmp_path):
    ts = tmp_path / "ts"
    ts.mkdir()
    np.save(ts / "strings.npy", np.array([["a", "b"]] * 16))
    np.save(ts / "struct.npy", np.zeros(16, dtype=[("x", "f4"), ("y", "f4")]))
    np.save(ts / "complex.npy", np.ones((16, 2), dtype=np.complex64))
    _absurd_npy(ts / "huge.npy")
    np.save(ts / "big.npy", np.zeros((4096, 64), np.float32))  # 1 MiB: over timeseries.max_mb=0.5
    bad = {1: "strings.npy", 4: "struct.npy", 7: "complex.npy", 10: "huge.npy", 13: "big.npy"}
    path = _series_table(tmp_path, bad)
    opts = dict(label="label", id="id", timeseries={"max_mb": 0.5})
    with pytest.raises(DatasetValidationError) as err:
        from_manifest(path, **opts)
    p = _problem(err.value, "unreadable_file")
    assert p.count == 5 and p.column == "series"
    text = str(err.value)
    for word in ("dtype", "structured", "complex", "1 TiB", "timeseries.max_mb"):
        assert word in text, word
    m = from_manifest(path, bad_files="skip", **opts)
    assert [r for r in range(24) if not m.present["series"][r]] == sorted(bad)


def test_a_symlink_loop_is_an_unreadable_file_also_with_skip(base, tmp_path):
    folder, df = base
    df = df.copy()
    os.symlink(tmp_path / "loop_b.wav", tmp_path / "loop_a.wav")
    os.symlink(tmp_path / "loop_a.wav", tmp_path / "loop_b.wav")
    df.loc[3, "audio"] = str(tmp_path / "loop_a.wav")
    with pytest.raises(DatasetValidationError) as err:
        _read(folder, df, "loop.csv")
    p = _problem(err.value, "unreadable_file")
    assert "loop_a.wav" in p.examples[0] and "symbolic link" in p.examples[0] and "row 4" in p.examples[0]
    m = _read(folder, df, "loop.csv", bad_files="skip")
    assert not m.present["audio"][3]


def test_a_schema_yaml_with_a_bad_tag_names_the_file(base, tmp_path):
    folder, df = base
    schema = tmp_path / "schema.yaml"
    schema.write_text("size: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ManifestError, match=r"schema file .*schema\.yaml.*mapping"):
        from_manifest(write_csv(df, folder / "s.csv"), label="label", schema=schema)


# ---- rough edges -----------------------------------------------------------------------------------------


def test_clip_length_is_the_95th_percentile_capped_and_long_clips_are_reported(base, tmp_path):
    folder, df = base
    df = df.copy()
    write_wav(tmp_path / "long.wav", 12.0, 440)
    df.loc[4, "audio"] = str(tmp_path / "long.wav")
    m = _read(folder, df, "long.csv")
    assert m.stats["audio"]["samples"] == 2000  # 0.25 s at 8 kHz, not the 12 s of one outlier
    p = _problem(m, "cropped")
    assert p.count == 1 and "11.75 s" in p.detail and "95th percentile" in p.detail


def test_read_audio_decodes_only_the_frames_asked_for(tmp_path, monkeypatch):
    path = write_wav(tmp_path / "a.wav", 3.0, 200)
    asked = []
    real = sf.SoundFile.read

    def spy(self, frames=-1, *a, **kw):
        asked.append(frames)
        return real(self, frames, *a, **kw)

    monkeypatch.setattr(sf.SoundFile, "read", spy)
    x, sr = read_audio(path, max_frames=800)
    assert len(x) == 800 and sr == 8000 and asked == [800]


def test_a_semicolon_separated_table_is_read_by_its_delimiter(base):
    folder, df = base
    path = folder / "semi.csv"
    df.to_csv(path, index=False, sep=";", quoting=csv.QUOTE_MINIMAL)
    m = from_manifest(path, label="label", id="id")
    assert m.kinds["audio"] == "audio" and m.kinds["size"] == "numeric"
    assert "';'" in _problem(m, "delimiter").detail


def test_a_table_with_an_unknown_delimiter_names_the_option(tmp_path):
    path = tmp_path / "odd.csv"
    path.write_text("id#audio#label\na#b.wav#x\n")
    with pytest.raises(ManifestError, match="delimiter"):
        from_manifest(path, label="label")


def test_a_single_row_class_keeps_the_others_stratified():
    y = np.array([0] * 40 + [1] * 40 + [2])
    res = assign_splits(y, val=0.25, test=0.25, seed=0)
    assert res.split[-1] == "train"
    for s in ("val", "test"):
        assert np.bincount(y[res.split == s], minlength=3)[:2].tolist() == [10, 10], s
    assert any("class" in n and "2" in n for n in res.notes) and not any("not stratified" in n for n in res.notes)


def test_duplicate_rows_are_named(base):
    folder, df = base
    df = pd.concat([df, df.iloc[[3]], df.iloc[[3]]], ignore_index=True)
    df.loc[len(df) - 2:, "id"] = ["dup1", "dup2"]
    m = from_manifest(write_csv(df, folder / "dups.csv"), label="label", id="id")
    p = _problem(m, "duplicate_rows")
    assert p.count == 1 and p.examples == ["rows 4, 25, 26"] and p.severity == "warning"
    assert len(set(m.split[[3, 24, 25]])) == 1  # the copies share one split: no file shared between splits


# ---- given train/test splits -----------------------------------------------------------------------------


def test_val_is_carved_from_given_train_rows_stratified():
    y = np.arange(100) % 4
    given = np.array(["train"] * 80 + ["test"] * 20, dtype=object)
    res = assign_splits(y, given=given, val=0.15, test=0.15, seed=0)
    assert (res.split[80:] == "test").all() and set(res.split[:80]) == {"train", "val"}
    assert (res.split == "val").sum() == 15 and len(set(y[res.split == "val"])) == 4
    assert any("val" in n and "train" in n for n in res.info)


def test_val_and_test_are_carved_from_a_train_only_table_and_given_val_is_kept():
    y = np.arange(100) % 4
    only = assign_splits(y, given=np.array(["train"] * 100, dtype=object), seed=0)
    plain = assign_splits(y, seed=0)
    assert (only.split == plain.split).all()  # the same rows as without a split column
    given = np.array(["train"] * 70 + ["val"] * 10 + ["test"] * 20, dtype=object)
    kept = assign_splits(y, given=given, seed=0)
    assert (kept.split == given).all()


def test_grouped_carving_keeps_groups_together():
    groups = np.repeat([f"g{i}" for i in range(40)], 3)
    y = np.arange(120) % 2
    given = np.array(["train"] * 90 + ["test"] * 30, dtype=object)
    res = assign_splits(y, groups=groups, given=given, val=0.15, seed=0)
    for g in np.unique(groups):
        assert len(set(res.split[groups == g])) == 1
    assert (res.split == "val").any()


def test_manifest_with_train_and_test_rows_reports_the_carved_val(base):
    folder, df = base
    df = df.copy()
    df["split"] = ["test" if i % 5 == 0 else "train" for i in range(len(df))]
    m = _read(folder, df, "tt.csv")
    assert len(m.rows["val"]) > 0 and set(m.split[df["split"] == "test"]) == {"test"}
    note = [p for p in m.report.by_check("split") if "val" in p.detail]
    assert note and note[0].severity == "info" and "splits.val" in note[0].detail


def test_no_val_split_names_the_option(base):
    folder, df = base
    df = df.copy()
    df["split"] = ["test" if i % 5 == 0 else "train" for i in range(len(df))]
    with pytest.raises(DatasetValidationError, match="splits.val"):
        _read(folder, df, "noval.csv", splits={"val": 0})


def test_the_check_with_every_column_kind_is_printed_before_training(base, capsys):
    from polymodal.data.datasets.manifest import cached_manifest

    folder, df = base
    cached_manifest(write_csv(df, folder / "printed.csv"), {"label": "label", "id": "id", "schema": {"image": "ignore"}})
    err = capsys.readouterr().err
    assert "| info | column_kind | image | " in err and "ignored (given in the schema)" in err
    assert "| info | column_kind | audio | " in err
