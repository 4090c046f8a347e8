"""A table re-saved unchanged through pandas (``-29.90`` written ``-29.9``, an integer column with an empty
cell written ``3.0``) still matches the splits a run stored: rows are compared by the values the model
reads, not by the text of their cells (it counted 17 of the example's rows as changed). A value that did
change is still found, and splits stored by runs that hashed the text still match the unchanged table."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from polymodal.data.datasets import run_splits
from polymodal.data.datasets.manifest import ManifestError, from_manifest
from polymodal.data.datasets.manifest.content import row_keys
from polymodal.datasets import example_manifest

FILES = {"audio": "ignore", "image": "ignore"}  # the files play no part here: not read


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """The shipped example table (written with csv: ``-29.90``), with an integer column that has one empty
    cell, and the same table read and written again by pandas."""
    folder = tmp_path_factory.mktemp("resaved")
    with example_manifest().open(newline="") as f:
        rows = list(csv.DictReader(f))
    for i, r in enumerate(rows):
        r["strokes"] = "" if i == 5 else str(1 + i % 4)
    original = folder / "original.csv"
    with original.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    resaved = folder / "resaved.csv"
    pd.read_csv(original).to_csv(resaved, index=False)
    text = resaved.read_text()
    assert "-29.90," in original.read_text() and "-29.90," not in text and "-29.9," in text
    strokes = [pd.read_csv(t, dtype=str, keep_default_na=False)["strokes"][0] for t in (original, resaved)]
    assert strokes == ["1", "1.0"]  # the integer column with an empty cell became floats
    return folder, original, resaved


def _train(folder: Path, table: Path, **kw):
    m = from_manifest(table, label="digit", schema=FILES, **kw)
    path = folder / f"splits-{len(kw)}.csv"
    path.write_text(m.splits_csv())
    return m, path


def _by_row(m) -> dict[str, str]:
    ids = m.row_ids(np.arange(m.n)) if m.options.id else [str(int(r)) for r in m.row_number]
    return dict(zip(ids, (str(s) for s in m.split), strict=True))


@pytest.mark.parametrize("by_id", [False, True])
def test_a_table_resaved_by_pandas_matches_the_stored_splits(tables, by_id):
    folder, original, resaved = tables
    kw = {"id": "id"} if by_id else {}
    m, splits = _train(folder, original, **kw)
    again = from_manifest(resaved, label="digit", schema=FILES, stored_splits=str(splits), **kw)
    assert [p.check for p in again.report.problems if p.check in ("stored_split", "table_changed")] == ["stored_split"]
    assert _by_row(again) == _by_row(m)
    assert again.keys == [m.keys[int(r) - 1] for r in again.row_number]  # the same hash of the same values


@pytest.mark.parametrize("by_id", [False, True])
def test_a_value_that_changed_is_still_a_changed_row(tables, by_id):
    folder, original, resaved = tables
    kw = {"id": "id"} if by_id else {}
    _, splits = _train(folder, original, **kw)
    df = pd.read_csv(resaved)
    df.loc[3, "loudness_db"] = df.loc[3, "loudness_db"] + 0.01
    changed = folder / "changed.csv"
    df.to_csv(changed, index=False)
    with pytest.raises(ManifestError, match="changed since the run was trained") as err:
        from_manifest(changed, label="digit", schema=FILES, stored_splits=str(splits), **kw)
    assert "row 4" in str(err.value)


def test_splits_stored_as_text_hashes_still_match_the_unchanged_table(tables):
    folder, original, _ = tables
    m = from_manifest(original, label="digit", schema=FILES)
    cols = m._content_columns()
    assert row_keys(m, cols) != row_keys(m, cols, by_value=False)  # -29.90 hashes apart as text and as a value
    older = folder / "older-splits.csv"  # as a run trained before wrote it: hashes of the cells' text
    older.write_text("row,id,split,content,inputs\n" + "".join(
        f"{r + 1},{r},{m.split[r]},{m.text_keys[r]},{m.text_input_keys[r]}\n" for r in range(m.n)))
    again = from_manifest(original, label="digit", schema=FILES, stored_splits=str(older))
    assert again.report.by_check("stored_split") and _by_row(again) == _by_row(m)
    stored = run_splits.read_splits_csv(older)
    assert run_splits.stored_splits_of(stored, m.input_keys, also=m.text_input_keys) == [str(s) for s in m.split]
