"""User-provided strings (class names, column names, file names, run names) are escaped where they enter
``report.md`` and ``data_check.md``: a class named ``<script>alert(1)</script>`` stays text when the file is
rendered, and a class named ``a|b`` stays one table cell. Rendered with a real CommonMark renderer
(markdown-it-py, installed with rich) with GitHub's tables."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from markdown_it import MarkdownIt

from polymodal.data.datasets.manifest import from_manifest
from polymodal.report import write_report
from polymodal.report.escape import md_code, md_text
from polymodal.report.metrics import Predictions, save_predictions

SCRIPT = "<script>alert(1)</script>"
PIPE = "a|b"
CLASSES = (SCRIPT, PIPE, "plain")
INJECTED_TAGS = {"script", "img", "svg", "b", "a"}  # tags that only an unescaped user string can bring in


class _Html(HTMLParser):
    """The tags of a rendered page, and the text of every table row's cells."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.images: list[str] = []  # the src of every <img>
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs).get("src") or "")
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def render(markdown: str) -> _Html:
    page = _Html()
    page.feed(MarkdownIt("commonmark").enable("table").render(markdown))
    return page


def test_md_text_neutralises_markup_and_keeps_ordinary_text():
    assert md_text(SCRIPT) == "&lt;script>alert(1)&lt;/script>"
    assert md_text("[x](javascript:alert(1))") == r"[x]\(javascript:alert(1))"
    assert md_text("&lt;b&gt;") == "&amp;lt;b&amp;gt;"  # renders as the text &lt;b&gt;, not as <b>
    for text in ("a -> b", "< 0.5", "x > 0", "R&D", PIPE, "row 3: 'x.wav'"):
        assert md_text(text) == text
    assert md_code("a`b") == "``a`b``" and md_code("plain") == "`plain`"
    for text in (SCRIPT, "[x](javascript:alert(1))", "<img src=x onerror=alert(1)>", "&lt;b&gt;", "<!-- c -->"):
        page = render(f"| c |\n|---|\n| {md_text(text)} |\n\n{md_text(text)}\n")
        assert not set(page.tags) & INJECTED_TAGS, text
        assert page.rows[1] == [text]  # the cell shows the text as it was given


def _fake_run(run_dir: Path) -> None:
    run_dir.mkdir(parents=True)
    cfg = {"name": "<b>bold</b> run", "seed": 0, "data": {"dataset": "manifest"}, "strategy": {"name": "mla"},
           "model": {"fusion": "shared_head"}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run_dir / "metrics.jsonl").write_text(json.dumps({"epoch": 0, "val/fused_acc": 0.5}) + "\n")
    (run_dir / "results.json").write_text(json.dumps({"best_epoch": 0, "epochs_run": 1, "stopped_reason": "max_epochs",
                                                      "val": {"fused_acc": 0.5}, "test": {"fused_acc": 0.5}}))
    rng = np.random.default_rng(0)
    y = np.arange(30) % 3
    probs = rng.dirichlet(np.ones(3), 30)
    save_predictions(Predictions(y, probs, {}, np.arange(30), CLASSES), run_dir / "predictions_test.npz")
    (run_dir / "provenance.json").write_text(json.dumps({"manifest": "data/`<svg onload=alert(1)>`.csv"}))


def test_report_md_escapes_class_names_run_names_and_provenance(tmp_path):
    run_dir = tmp_path / "run"
    _fake_run(run_dir)
    text = write_report(run_dir).read_text()
    assert "<script" not in text and "<b>" not in text
    page = render(text)
    assert not set(page.tags) & (INJECTED_TAGS - {"img"})
    assert page.images and all(src.startswith("figures/") for src in page.images)  # the report's own figures only
    confusion = [r for r in page.rows if r and r[0] in ("true \\ pred", *CLASSES)][:4]
    assert confusion[0] == ["true \\ pred", *CLASSES]  # every class name one header cell, shown as given
    assert [r[0] for r in confusion[1:]] == list(CLASSES) and all(len(r) == 4 for r in confusion)
    per_class = [r for r in page.rows if r and r[0] in CLASSES][3:]
    assert [r[0] for r in per_class] == list(CLASSES) and all(len(r) == 5 for r in per_class)
    assert "- manifest: ``data/`<svg onload=alert(1)>`.csv``" in text  # a code span no backtick closes early


def test_data_check_md_escapes_class_column_and_file_names(tmp_path):
    img_col = "<img src=x onerror=alert(1)>"
    rows = []
    for i in range(24):
        label = CLASSES[i % 3]
        split = "val" if i % 8 == 6 else "test" if i % 8 == 7 else "train"
        if label == SCRIPT and split == "train":
            split = "val" if i < 12 else "test"  # no training row: a small_class warning names the class
        rows.append({"size": f"{i % 5}.5", img_col: f"{i % 4}.0", "photo": "", "label": label, "split": split})
    rows[0]["photo"] = "<svg onload=alert(1)>.png"  # a missing file, skipped
    rows[1]["photo"] = "ok.png"
    table = tmp_path / "table.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    from PIL import Image

    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(tmp_path / "ok.png")
    # a class named "a|b" is one class when the task says so (a "|" in a label cell otherwise lists labels)
    m = from_manifest(table, label="label", bad_files="skip", schema={"photo": "image"}, task="classification")
    assert {p.check for p in m.report.problems} >= {"small_class", "missing_file", "column_kind"}
    text = m.report.to_markdown()
    assert "<script" not in text and "<img" not in text and "<svg" not in text
    page = render(text)
    assert not set(page.tags) & INJECTED_TAGS
    assert all(len(r) == 6 for r in page.rows)  # severity, check, column, count, detail, examples
    cells = {(r[1], r[2]): r for r in page.rows[1:]}
    assert ("column_kind", img_col) in cells  # the column name shown as given
    assert SCRIPT in cells[("small_class", "label")][5] and "<svg onload=alert(1)>.png" in cells[("missing_file", "photo")][5]
    assert re.search(r"\| info \| column_kind \| &lt;img src=x onerror=alert\(1\)> \|", text)


@pytest.mark.slow
def test_a_trained_run_writes_escaped_report_and_data_check(tmp_path):
    import polymodal

    rng = np.random.default_rng(0)
    img_col = "<img src=x onerror=alert(1)>"
    rows = [{"x": f"{c + 0.3 * rng.standard_normal():.3f}", img_col: f"{rng.standard_normal():.3f}", "label": CLASSES[c]}
            for c in np.arange(60) % 3]
    predictor = polymodal.Predictor(label="label", path=tmp_path / "run", task="classification")  # "a|b": one class
    predictor.fit(pd.DataFrame(rows), strategy="joint", max_epochs=1)
    for name in ("report.md", "data_check.md"):
        text = (tmp_path / "run" / name).read_text()
        assert "<script" not in text, name
        page = render(text)
        assert not set(page.tags) & (INJECTED_TAGS - {"img"}), name
        assert all(src.startswith("figures/") for src in page.images), name
    page = render((tmp_path / "run" / "report.md").read_text())
    assert ["true \\ pred", *CLASSES] in page.rows
    check = render((tmp_path / "run" / "data_check.md").read_text())
    assert any(r[1:3] == ["column_kind", img_col] for r in check.rows)  # the column name shown as given
