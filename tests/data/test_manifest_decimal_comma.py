"""A semicolon-separated CSV with decimal commas (``-28,28``), as spreadsheets in many locales write it: its
number columns are read as numbers, with the same values as the comma-separated table, and the data check
says so (``decimal_comma``); they used to turn silently into categorical or text columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from polymodal.data.datasets.manifest import Manifest, from_manifest

from ._faults import write_table


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    folder = tmp_path_factory.mktemp("decimal_comma")
    df = write_table(folder)
    rng = np.random.default_rng(0)
    df["size"] = df["size"].astype(float)
    df["lat"] = np.round(-28.0 - 4 * rng.random(len(df)), 2)  # -28.28, -29.9, ...
    df["dose"] = np.round(1000 + 2000 * rng.random(len(df)), 1)  # 1234.5: written 1.234,5 with thousands points
    return folder, df


def _problems(m, check):
    return {p.column: p for p in m.report.by_check(check)}


def test_decimal_commas_in_a_semicolon_csv_are_numbers_with_the_values_of_the_comma_csv(table):
    folder, df = table
    df.to_csv(folder / "comma.csv", index=False)
    semi = folder / "semicolon.csv"
    df.to_csv(semi, index=False, sep=";", decimal=",")
    cells = pd.read_csv(semi, sep=";", dtype=str)
    assert all("," in v and "." not in v for v in cells["lat"]) and cells["lat"][0].startswith("-")  # e.g. -28,28
    ref = from_manifest(folder / "comma.csv", label="label", id="id")
    m = from_manifest(semi, label="label", id="id")
    assert m.kinds == ref.kinds and m.kinds["lat"] == m.kinds["size"] == m.kinds["dose"] == "numeric"
    assert [s["columns"] for s in m.modality_specs] == [s["columns"] for s in ref.modality_specs]
    for r in range(len(df)):
        assert np.allclose(m.item("tabular", r).numpy(), ref.item("tabular", r).numpy())
    found = _problems(m, "decimal_comma")
    assert set(found) == {"size", "lat", "dose"} and all(p.severity == "info" for p in found.values())
    assert found["lat"].count == len(df) and "';'" in found["lat"].detail
    assert found["lat"].examples[0] == f"row 1: {str(df['lat'][0]).replace('.', ',')!r}"
    assert "decimal_comma" in m.report.to_markdown()
    again = Manifest(semi, state=m.state())  # a table to predict is read the same way
    assert np.allclose(again.item("tabular", 3).numpy(), m.item("tabular", 3).numpy())


def test_thousands_points_and_a_mix_of_conventions_are_read_and_named(tmp_path):
    lines = ["weight;dose;label"]
    for i in range(12):
        weight = "1.5" if i == 4 else f"{i},25"  # one cell written with a point among decimal commas
        lines.append(f"{weight};{i + 1}.234,5;{'ab'[i % 2]}")
    path = tmp_path / "mixed.csv"
    path.write_text("\n".join(lines) + "\n")
    m = from_manifest(path, label="label", splits={"val": 0.25, "test": 0.25})
    assert m.kinds["weight"] == m.kinds["dose"] == "numeric"
    assert m.table["dose"][0] == "1234.5" and m.table["weight"][1] == "1.25" and m.table["weight"][4] == "1.5"
    warning = [p for p in m.report.by_check("decimal_comma") if p.severity == "warning"]
    assert [p.column for p in warning] == ["weight"] and warning[0].examples == ["row 5: '1.5'"]


def test_a_comma_in_words_or_paths_is_left_alone(tmp_path):
    lines = ["note;code;label"]
    for i in range(12):
        lines.append(f"seen twice, then {i} times;x{i},y;{'ab'[i % 2]}")
    path = tmp_path / "words.csv"
    path.write_text("\n".join(lines) + "\n")
    m = from_manifest(path, label="label", schema={"note": "text", "code": "text"}, splits={"val": 0.25, "test": 0.25})
    assert not m.report.by_check("decimal_comma") and m.table["code"][0] == "x0,y"
