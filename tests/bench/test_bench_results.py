"""Results files: JSON twin in the documented format, Markdown table, round trip."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from polymodal.bench import ResultRow, read_results, write_results

PROTOCOL = "avdigits-hard, bench profile, selection on val, seeds 0,1,2"
COMMAND = "polymodal bench --strategies mla,joint --dataset avdigits-hard --seeds 0,1,2"


def _rows() -> list[ResultRow]:
    return [
        ResultRow("mla", "avdigits-hard", "fused_acc", [0.91, 0.92, 0.906]),
        ResultRow("mla", "avdigits-hard", "audio_acc", [0.61, 0.64, 0.6]),
        ResultRow("mla", "avdigits-hard", "sec_per_epoch", [12.1, 12.4, 11.9]),
        ResultRow("mla", "avdigits-hard", "params", [123456, 123456, 123456]),
        ResultRow("mla", "avdigits-hard", "fused_acc", [0.89, 0.90, 0.91], variant="no-hgm"),
        ResultRow("joint", "avdigits-hard", "fused_acc", [0.85, 0.86], fusion="late", missing_rate=0.3, missing_at="test"),
    ]


def test_json_format_and_round_trip(tmp_path: Path) -> None:
    rows = _rows()
    json_path, md_path = write_results("fusion", rows, protocol=PROTOCOL, command=COMMAND, out_dir=tmp_path / "res")
    assert (json_path, md_path) == (tmp_path / "res" / "fusion.json", tmp_path / "res" / "fusion.md")
    doc = json.loads(json_path.read_text())
    assert list(doc) == ["protocol", "command", "rows"]
    assert (doc["protocol"], doc["command"]) == (PROTOCOL, COMMAND)
    first, ablation, missing = doc["rows"][0], doc["rows"][4], doc["rows"][5]
    assert list(first) == ["method", "dataset", "metric", "mean", "std", "n", "values"]  # optional keys only when set
    assert first["mean"] == pytest.approx(statistics.mean([0.91, 0.92, 0.906]))
    assert first["std"] == pytest.approx(statistics.stdev([0.91, 0.92, 0.906]))  # ddof = 1
    assert first["n"] == 3 and first["values"] == [0.91, 0.92, 0.906]
    assert ablation["variant"] == "no-hgm" and "fusion" not in ablation
    assert {k: missing[k] for k in ("fusion", "missing_rate", "missing_at", "n")} == {
        "fusion": "late", "missing_rate": 0.3, "missing_at": "test", "n": 2}
    protocol, command, back = read_results(json_path)
    assert (protocol, command) == (PROTOCOL, COMMAND)
    assert back == rows


def test_markdown_table(tmp_path: Path) -> None:
    _, md_path = write_results("fusion", _rows(), protocol=PROTOCOL, command=COMMAND, out_dir=tmp_path,
                               title="Fusion on AV-digits", notes="One clip is 0.33 points.")
    text = md_path.read_text()
    assert text.startswith("# Fusion on AV-digits")
    assert text.index(f"Protocol: {PROTOCOL}") < text.index("| method |")
    assert f"Command: `{COMMAND}`" in text
    assert text.rstrip().endswith("One clip is 0.33 points.")
    header = "| method | variant | fusion | missing_rate | missing_at | dataset | fused_acc (%) | audio_acc (%) | sec_per_epoch (s) | params |"
    assert header in text
    mean, std = statistics.mean([0.91, 0.92, 0.906]), statistics.stdev([0.91, 0.92, 0.906])
    assert f"| mla | default | - | - | - | avdigits-hard | {100 * mean:.2f} +- {100 * std:.2f} | 61.67 +- 2.08 | 12.1 +- 0.3 | 123,456 |" in text
    assert "| mla | no-hgm | - | - | - | avdigits-hard | 90.00 +- 1.00 | - | - | - |" in text
    assert "| joint | default | late | 0.3 | test | avdigits-hard | 85.50 +- 0.71 (n=2) | - | - | - |" in text


def test_columns_pick_and_order(tmp_path: Path) -> None:
    _, md_path = write_results("pick", _rows(), protocol=PROTOCOL, command=COMMAND, out_dir=tmp_path,
                               columns=["audio_acc", "fused_acc"])
    text = md_path.read_text()
    assert "| audio_acc (%) | fused_acc (%) |" in text and "params" not in text
    with pytest.raises(ValueError, match=r"columns \['ece'\] name metrics no row holds"):
        write_results("pick", _rows(), protocol=PROTOCOL, command=COMMAND, out_dir=tmp_path, columns=["ece"])


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not fractions in \\[0, 1\\].*divide percentages by 100"):
        ResultRow("mla", "avdigits", "fused_acc", [91.0, 92.0])
    with pytest.raises(ValueError, match="unknown metric 'accuracy'; expected one of fused_acc"):
        ResultRow("mla", "avdigits", "accuracy", [0.9])
    with pytest.raises(ValueError, match="values is empty"):
        ResultRow("mla", "avdigits", "fused_acc", [])
    twice = [ResultRow("mla", "avdigits", "fused_acc", [0.9])] * 2
    with pytest.raises(ValueError, match="duplicate row"):
        write_results("dup", twice, protocol=PROTOCOL, command=COMMAND, out_dir=tmp_path)
    with pytest.raises(ValueError, match="plain file name"):
        write_results("sub/x", _rows(), protocol=PROTOCOL, command=COMMAND, out_dir=tmp_path)
    with pytest.raises(ValueError, match="no rows"):
        write_results("empty", [], protocol=PROTOCOL, command=COMMAND, out_dir=tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"protocol": "p", "command": "c", "rows": [{"method": "mla", "metric": "fused_acc"}]}))
    with pytest.raises(ValueError, match=r"rows\[0\] lacks keys \['dataset', 'values'\]"):
        read_results(bad)
    with pytest.raises(FileNotFoundError):
        read_results(tmp_path / "absent.json")
    assert ResultRow("mla", "avdigits", "fused_acc@entropy-batch", [0.9]).std == 0.0


def test_extra_keys_follow_the_rows_and_cannot_replace_them(tmp_path):
    rows = [ResultRow(method="m", dataset="d", metric="fused_acc", values=[0.5])]
    js, _ = write_results("x", rows, protocol="p", command="c", out_dir=tmp_path, extra={"runs": [{"seed": 0}]})
    doc = json.loads(js.read_text())
    assert list(doc) == ["protocol", "command", "rows", "runs"] and doc["runs"] == [{"seed": 0}]
    with pytest.raises(ValueError, match=r"extra keys \['rows'\]"):
        write_results("x", rows, protocol="p", command="c", out_dir=tmp_path, extra={"rows": []})
