"""MVSA-Single: tweets (image + text) labelled positive / neutral / negative; the MLA split (1555 / 519).
docs/datasets.md.

Raw layout accepted by ``polymodal prepare mvsa-single --raw DIR`` (the official release, at DIR or one level
below): ``data/{id}.jpg``, ``data/{id}.txt`` and ``labelResultAll.txt`` (a header line, then ``id<TAB>text
label,image label`` per pair, as annotated separately for the text and the image).

Label-merging rule (Xu and Mao, MultiSentiNet, CIKM 2017; followed by the MLA lists): a pair whose text and
image labels agree takes that label; a pair where one is neutral takes the other (positive or negative); a pair
with one positive and one negative label is discarded. The shipped MLA lists are the protocol; every listed
item's label is checked against this rule applied to ``labelResultAll.txt`` and disagreements are reported.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from polymodal.data.base import DATASETS
from polymodal.data.datasets.av_clips import check_cache_option, class_table, prepared_folder
from polymodal.data.datasets.image_text import ImageText, Item, ItemPlan, counts_of, prepare_items
from polymodal.data.datasets.published_splits import read_list
from polymodal.data.prepare import Log, register_preparer
from polymodal.paths import default_data_root

NAME = "mvsa-single"
CLASSES = ("negative", "neutral", "positive")
LISTS = ("mla/my_train_mvsa.txt", "mla/my_test_mvsa.txt")
FOLDER = "mvsa_single"
OBTAIN = ("MVSA-Single is not downloaded by polymodal. Request it from its authors (Niu et al., MMM 2016; "
          "http://mcrlab.net/research/mvsa-sentiment-analysis-on-multi-view-social-data/); the tweets' images and "
          "texts remain under Twitter's terms and the authors allow research use only. Then run "
          "`polymodal prepare mvsa-single --raw DIR` with DIR holding data/ and labelResultAll.txt")


def merge_labels(text_label: str, image_label: str) -> str | None:
    """The standard rule (module docstring): agree -> that label; one neutral -> the other; opposite -> None."""
    t, i = text_label.strip().lower(), image_label.strip().lower()
    for x in (t, i):
        if x not in CLASSES:
            raise ValueError(f"MVSA-Single: label {x!r} is not one of {CLASSES}")
    if t == i:
        return t
    if "neutral" in (t, i):
        return i if t == "neutral" else t
    return None


def read_annotations(path: Path) -> dict[str, str | None]:
    """id -> merged label (None: discarded by the rule) from ``labelResultAll.txt``."""
    merged: dict[str, str | None] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        parts = line.split()
        if not parts or (n == 1 and not parts[0].isdigit()):
            continue
        if len(parts) != 2 or "," not in parts[1]:
            raise ValueError(f"MVSA-Single: {path}, line {n}: {line!r}; expected 'id<TAB>text_label,image_label'")
        text_label, image_label = parts[1].split(",", 1)
        merged[parts[0]] = merge_labels(text_label, image_label)
    return merged


def plan(raw: Path, log: Log) -> tuple[ItemPlan, dict[str, Any]]:
    root = next((c for c in (raw, *sorted(p for p in raw.iterdir() if p.is_dir()))
                 if (c / "data").is_dir() and (c / "labelResultAll.txt").is_file()), None)
    if root is None:
        raise FileNotFoundError(f"polymodal prepare mvsa-single: {raw} holds no data/ folder with labelResultAll.txt "
                                f"beside it (at its top or one level below). {OBTAIN}")
    merged = read_annotations(root / "labelResultAll.txt")
    record: dict[str, Any] = {"classes": list(CLASSES), "lists": {},
                              "label_rule": "agree -> that label; one neutral -> the other; opposite -> discarded"}
    items, missing, disagree = [], [], []
    for split, rel in zip(("train", "test"), LISTS, strict=True):
        lines, digest = read_list(rel)
        record["lists"][rel] = {"protocol": "mla", "split": split, "rows": len(lines), "sha256": digest}
        for line in lines:
            name, word = line.split()
            item_id = name.removesuffix(".jpg")
            label = CLASSES.index(word)
            if item_id in merged and merged[item_id] != word:
                disagree.append(f"{item_id}: list {word}, rule {merged[item_id]}")
            it = Item(item_id, label, {"mla": split}, root / "data" / f"{item_id}.jpg", root / "data" / f"{item_id}.txt")
            (items if it.image.is_file() and Path(it.text).is_file() else missing).append(it)
    record["label_rule_disagreements"] = len(disagree)
    log(f"{root}: {len(items)} of the {len(items) + len(missing)} listed pairs found; {len(missing)} missing; "
        f"{sum(v is None for v in merged.values())} annotated pairs discarded by the label rule")
    if disagree:
        log(f"mvsa-single: {len(disagree)} listed label(s) differ from the label rule on labelResultAll.txt, e.g. "
            f"{disagree[0]}; the list's label is used (it is the published protocol)")
    if not items:
        raise FileNotFoundError(f"polymodal prepare mvsa-single: none of the listed pairs has data/ID.jpg and "
                                f"data/ID.txt under {root}. {OBTAIN}")
    if missing:
        log(f"mvsa-single: the raw copy lacks {len(missing)} listed pair(s) (e.g. {missing[0].item_id}); counts per "
            f"class that differ from the protocol:\n{class_table(counts_of([*items, *missing]), counts_of(items), CLASSES)}"
            f"\nThey are skipped; the prepared copy is marked incomplete.")
    return ItemPlan(items, missing), {"dataset": "MVSA-Single", "split_source": record, "raw": str(root)}


@register_preparer(NAME, obtain=OBTAIN)
def prepare_mvsa(raw: Path, out: Path | None, log: Log) -> dict[str, Any]:
    """Check an MVSA-Single copy against the MLA lists and the label rule, then prepare it (image_text.py)."""
    p, protocol = plan(raw, log)
    return prepare_items(NAME, p, out if out is not None else default_data_root() / FOLDER, protocol, CLASSES, log)


HINT = f"Run `polymodal prepare mvsa-single --raw DIR` first (or set data.root to its --out folder). {OBTAIN}"


@DATASETS.register(NAME, tiny={})
def mvsa_single(split: str = "train", root: str | None = None, val_fraction: float = 0.1, val_seed: int = 0,
                image_size: int | None = None, max_length: int = 64, vocab_size: int = 30000,
                augment: bool | None = None, allow_incomplete: bool = False, cache_features: bool = True) -> ImageText:
    """MVSA-Single (image + tweet text, 3 sentiments), prepared by `polymodal prepare mvsa-single`; MLA split."""
    check_cache_option(NAME, cache_features)
    return ImageText(NAME, prepared_folder(root, FOLDER), split, CLASSES, HINT, "mla", val_fraction, val_seed,
                     image_size, max_length, vocab_size, augment, allow_incomplete)


mvsa_single.__signature__ = inspect.signature(mvsa_single)  # type: ignore[attr-defined]

__all__ = ["CLASSES", "merge_labels", "mvsa_single", "plan", "prepare_mvsa", "read_annotations"]
