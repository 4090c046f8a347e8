"""A run trained on a table keeps the split of every row: `polymodal eval`, `--resume` and prediction use
it (matched by id, or by row content without an id column) and refuse a table whose rows changed. Real
`python -m polymodal` processes on real files written by the tests."""

import os
import subprocess
import sys

import pandas as pd
import pytest

from ._faults import write_csv, write_table

TINY = ["model.width=8", "trainer.progress=false", "trainer.max_epochs=1", "data.batch_size=16"]


def cli(*args, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "polymodal", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


def ok(res):
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def metrics(stdout):
    return [line for line in stdout.splitlines() if "_acc" in line]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run trained on ``table.csv`` (id column ``id``) and the table's rows."""
    folder = tmp_path_factory.mktemp("runsplits")
    df = write_table(folder)
    write_csv(df, folder / "table.csv")
    ok(cli("train", f"data.manifest={folder / 'table.csv'}", "data.label=label", "data.options.id=id", *TINY,
           f"out_dir={folder / 'runs'}", "name=run", cwd=folder))
    return folder, df, folder / "runs" / "run"


def test_eval_of_a_shuffled_table_uses_the_stored_split(trained):
    folder, df, run = trained
    before = ok(cli("eval", run, cwd=folder)).stdout
    stored = pd.read_csv(run / "splits.csv", dtype=str, keep_default_na=False)
    write_csv(df.sample(frac=1.0, random_state=3), folder / "table.csv")
    after = ok(cli("eval", run, cwd=folder)).stdout
    assert metrics(after) == metrics(before) and metrics(after)
    assert (run / "splits.csv").read_text() == stored.to_csv(index=False)  # eval never rewrites it

    from polymodal.config import load_config
    from polymodal.engine.build import build_datasets

    test = build_datasets(load_config(run / "config.yaml"), ["train", "test"])["test"]
    assert sorted(test.row_ids()) == sorted(stored.loc[stored["split"] == "test", "id"])
    write_csv(df, folder / "table.csv")


def test_eval_of_a_changed_table_refuses_and_says_what_changed(trained):
    folder, df, run = trained
    changed = df.drop(index=[0]).copy()  # s000 removed
    changed.loc[5, "size"] = "9.99"  # s005 changed
    changed = pd.concat([changed, df.iloc[[1]].assign(id="new1")], ignore_index=True)  # new1 added
    write_csv(changed, folder / "table.csv")
    try:
        res = cli("eval", run, cwd=folder)
        assert res.returncode == 1
        err = res.stderr
        for word in ("changed since", "1 row added", "new1", "1 row removed", "s000", "1 row changed", "s005",
                     "--allow-changed-table", "new run"):
            assert word in err, (word, err)
        res = ok(cli("eval", run, "--allow-changed-table", cwd=folder))
        assert "fused_acc" in res.stdout and "stored split" in res.stderr
    finally:
        write_csv(df, folder / "table.csv")


def test_predict_accepts_bad_files_and_marks_rows_without_input(trained):
    folder, df, run = trained
    new = df.drop(columns="label").head(5).copy()
    new.loc[1, "audio"] = "wav/gone.wav"
    new.loc[3, ["audio", "image", "size"]] = ""
    write_csv(new, folder / "new.csv")
    res = cli("predict", run, "--manifest", folder / "new.csv", "--out", folder / "p.csv", cwd=folder)
    assert res.returncode == 1 and "gone.wav" in res.stderr and "--bad-files skip" in res.stderr
    ok(cli("predict", run, "--manifest", folder / "new.csv", "--out", folder / "p.csv", "--bad-files", "skip",
           cwd=folder))
    pred = pd.read_csv(folder / "p.csv", keep_default_na=False)
    assert len(pred) == 5 and list(pred["no_input"]) == [False, False, False, True, False]
    assert pred.loc[3, "prediction"] == "" and not pred.loc[1, "present_audio"] and pred.loc[1, "prediction"] != ""


def test_a_table_without_id_is_matched_by_row_content(tmp_path):
    df = write_table(tmp_path, per_class=6).drop(columns="id")
    write_csv(df, tmp_path / "t.csv")
    ok(cli("train", f"data.manifest={tmp_path / 't.csv'}", "data.label=label", *TINY, f"out_dir={tmp_path}",
           "name=r", cwd=tmp_path))
    before = ok(cli("eval", tmp_path / "r", cwd=tmp_path)).stdout
    write_csv(df.sample(frac=1.0, random_state=1), tmp_path / "t.csv")
    assert metrics(ok(cli("eval", tmp_path / "r", cwd=tmp_path)).stdout) == metrics(before)
    df.loc[2, "size"] = "7.5"
    write_csv(df, tmp_path / "t.csv")
    res = cli("eval", tmp_path / "r", cwd=tmp_path)
    assert res.returncode == 1 and "row 3" in res.stderr and "--allow-changed-table" in res.stderr


def test_resume_keeps_splits_csv_and_refuses_a_changed_table(tmp_path):
    df = write_table(tmp_path, per_class=6)
    write_csv(df, tmp_path / "t.csv")
    args = [f"data.manifest={tmp_path / 't.csv'}", "data.label=label", "data.options.id=id", *TINY,
            f"out_dir={tmp_path}", "name=r"]
    ok(cli("train", *args, cwd=tmp_path))
    splits = (tmp_path / "r" / "splits.csv").read_bytes()
    write_csv(df.sample(frac=1.0, random_state=2), tmp_path / "t.csv")
    ok(cli("train", *args, "trainer.max_epochs=2", "--resume", cwd=tmp_path))
    assert (tmp_path / "r" / "splits.csv").read_bytes() == splits
    write_csv(df.drop(index=[4, 9]), tmp_path / "t.csv")
    res = cli("train", *args, "trainer.max_epochs=3", "--resume", cwd=tmp_path)
    assert res.returncode == 1 and "2 rows removed" in res.stderr and "s004" in res.stderr
    assert (tmp_path / "r" / "splits.csv").read_bytes() == splits


def test_a_table_with_only_train_and_test_rows_trains_with_no_split_option(tmp_path):
    df = write_table(tmp_path, per_class=8)
    df["split"] = ["test" if i % 4 == 0 else "train" for i in range(len(df))]
    write_csv(df, tmp_path / "given.csv")
    res = ok(cli("train", f"data.manifest={tmp_path / 'given.csv'}", "data.label=label", "trainer.max_epochs=1",
                 cwd=tmp_path))
    assert "fused_acc" in res.stdout
    run = next((tmp_path / "runs").iterdir())
    splits = pd.read_csv(run / "splits.csv", dtype=str, keep_default_na=False)
    assert (splits["split"] == "val").sum() > 0
    given = df["split"].to_numpy()
    assert set(given[(splits["split"] == "val").to_numpy()]) == {"train"}
    assert (splits["split"].to_numpy()[given == "test"] == "test").all()
    assert "carved" in (run / "data_check.md").read_text()
