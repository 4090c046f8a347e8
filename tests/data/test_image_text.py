"""MVSA-Single and UPMC Food-101 preparation from tiny fake releases in their official layouts (jpg written with
Pillow, texts as files or csv rows), names from the shipped MLA lists."""

import json

import numpy as np
import pytest
from PIL import Image

from polymodal.data.base import build_dataset
from polymodal.data.datasets import food101, mvsa
from polymodal.data.datasets.av_clips import check_out
from polymodal.data.prepare import prepare


def _jpg(path, value, size=(40, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(path, quality=95)


def test_mvsa_label_rule():
    assert mvsa.merge_labels("positive", "positive") == "positive"
    assert mvsa.merge_labels("neutral", "negative") == "negative"
    assert mvsa.merge_labels("positive", "neutral") == "positive"
    assert mvsa.merge_labels("positive", "negative") is None
    with pytest.raises(ValueError, match="not one of"):
        mvsa.merge_labels("happy", "neutral")


def test_prepare_mvsa_single(tmp_path, monkeypatch):
    from polymodal.data.datasets.published_splits import read_list

    chosen = {}
    for split, rel in zip(("train", "test"), mvsa.LISTS, strict=True):
        lines, _ = read_list(rel)
        for cls in mvsa.CLASSES:
            for line in [x for x in lines if x.split()[1] == cls][:2]:
                chosen[line.split()[0].removesuffix(".jpg")] = (cls, split)
    root = tmp_path / "MVSA_Single"
    rows = ["ID\ttext,image"]
    for k, (item, (cls, _)) in enumerate(sorted(chosen.items())):
        _jpg(root / "data" / f"{item}.jpg", 40 * k % 256)
        (root / "data" / f"{item}.txt").write_bytes(f"tweet {k} about {cls} #tag".encode() + (b"\xff" if k == 0 else b""))
        rows.append(f"{item}\t{cls},{'neutral' if cls != 'neutral' else 'neutral'}")
    rows.append("999999\tpositive,negative")  # discarded by the rule
    (root / "labelResultAll.txt").write_text("\n".join(rows) + "\n")
    broken = sorted(chosen)[1]
    (root / "data" / f"{broken}.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    monkeypatch.setenv("POLYMODAL_PREPARE_WORKERS", "1")
    lines = []
    out = tmp_path / "out"
    report = prepare("mvsa-single", tmp_path, out, lines.append)
    assert report["items"] == len(chosen) - 1 and report["skipped"] == 1 and report["texts_with_undecodable_bytes"] == 1
    assert report["missing"] == 1555 + 519 - len(chosen)
    assert any("1 annotated pairs discarded by the label rule" in x for x in lines)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["skipped"][0]["item"] == broken and manifest["protocol"]["split_source"]["label_rule_disagreements"] == 0
    images = np.load(out / "images.npy", mmap_mode="r")
    assert images.shape == (len(chosen) - 1, 3, 224, 224)
    items = json.loads((out / "items.json").read_text())
    assert [mvsa.CLASSES[it[1]] for it in items] == [chosen[it[0]][0] for it in items]
    with pytest.raises(ValueError, match="allow_incomplete"):
        build_dataset("mvsa-single", "test", root=str(out))
    test = build_dataset("mvsa-single", "test", root=str(out), allow_incomplete=True, image_size=32)
    assert len(test) == sum(1 for it in items if it[2]["mla"] == "test")
    s = test[0]
    assert s["inputs"]["image"].shape == (3, 32, 32) and s["inputs"]["text"].shape == (64,)
    assert test.provenance["manifest"]["protocol"]["dataset"] == "MVSA-Single"
    assert prepare("mvsa-single", tmp_path, out, print)["reused"] is True
    with pytest.raises(FileExistsError, match="holds the prepared dataset 'mvsa-single'"):
        check_out(out, "upmc-food101")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="already holds other files"):
        prepare("mvsa-single", tmp_path, tmp_path / "busy", print)


def test_prepare_upmc_food101(tmp_path, monkeypatch):
    from polymodal.data.datasets.published_splits import read_list

    names = food101.classes()
    assert len(names) == 101
    root = tmp_path / "UPMC_Food101"
    picked = []
    for split, rel in zip(("train", "test"), food101.LISTS, strict=True):
        lines, _ = read_list(rel)
        for cls in names[:3]:
            picked += [(split, *x.split()) for x in lines if x.split()[1] == cls][:2]
    for split in ("train", "test"):
        rows = [(name, f"{cls.replace('_', ' ')} recipe, easy", cls) for sp, name, cls in picked if sp == split]
        (root / "texts").mkdir(parents=True, exist_ok=True)
        import csv

        with (root / "texts" / f"{split}_titles.csv").open("w", newline="") as f:
            csv.writer(f).writerows(rows)
        for k, (name, _, cls) in enumerate(rows):
            _jpg(root / "images" / split / cls / name, 20 * k)
    monkeypatch.setenv("POLYMODAL_PREPARE_WORKERS", "1")
    out = tmp_path / "food"
    lines = []
    report = prepare("upmc-food101", tmp_path, out, lines.append)
    assert report["items"] == len(picked) and report["skipped"] == 0
    assert any("apple_pie" in x and "protocol" in x for x in lines)  # per-class table of the missing items
    texts = json.loads((out / "texts.json").read_text())
    assert texts[0].endswith("recipe, easy")
    ds = build_dataset("upmc-food101", "train", root=str(out), allow_incomplete=True, image_size=32)
    assert ds.num_outputs == 101 and ds[0]["inputs"]["image"].shape == (3, 32, 32)


def test_image_text_datasets_explain_where_to_get_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="research use only"):
        prepare("mvsa-single", tmp_path, None, print)
    with pytest.raises(FileNotFoundError, match="research use only"):
        prepare("upmc-food101", tmp_path, None, print)
    with pytest.raises(FileNotFoundError, match="prepared data is absent"):
        build_dataset("mvsa-single", "val", root=str(tmp_path))
