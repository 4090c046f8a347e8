"""UPMC Food-101: 101 dishes, a web image and the title of its page per item; the MLA split (62970 / 22714).
docs/datasets.md.

Raw layout accepted by ``polymodal prepare upmc-food101 --raw DIR`` (the official release, at DIR or one level
below): ``images/{train,test}/{class}/{class}_{n}.jpg`` (found by file name anywhere under ``images/``) and
``texts/train_titles.csv``, ``texts/test_titles.csv`` (no header; ``image name, title text..., class`` per row:
the first field names the image, the last the class, the fields between are the text).
"""

from __future__ import annotations

import csv
import functools
import inspect
from pathlib import Path
from typing import Any

from polymodal.data.base import DATASETS
from polymodal.data.datasets.av_clips import check_cache_option, class_table, prepared_folder
from polymodal.data.datasets.image_text import ImageText, Item, ItemPlan, counts_of, prepare_items
from polymodal.data.datasets.published_splits import read_list
from polymodal.data.prepare import Log, register_preparer
from polymodal.paths import default_data_root

NAME = "upmc-food101"
LISTS = ("mla/my_train_food.txt", "mla/my_test_food.txt")
FOLDER = "upmc_food101"
OBTAIN = ("UPMC Food-101 is not downloaded by polymodal. Get it from its authors (Wang et al., ICME workshops 2015; "
          "http://visiir.isir.upmc.fr/explore); the images and texts were collected from the web and are provided "
          "for research use only. Then run `polymodal prepare upmc-food101 --raw DIR` with DIR holding images/ and "
          "texts/")


@functools.cache
def classes() -> tuple[str, ...]:
    """The 101 class names of the training list, sorted."""
    lines, _ = read_list(LISTS[0])
    return tuple(sorted({line.split()[1] for line in lines}))


def read_titles(texts: Path) -> dict[str, str]:
    titles: dict[str, str] = {}
    for f in sorted(texts.glob("*.csv")):
        with f.open(encoding="utf-8", errors="replace", newline="") as h:
            for n, row in enumerate(csv.reader(h), 1):
                if len(row) < 3:
                    raise ValueError(f"UPMC Food-101: {f}, row {n}: {row!r}; expected 'image, text, class'")
                titles[row[0]] = ",".join(row[1:-1])
    return titles


def plan(raw: Path, log: Log) -> tuple[ItemPlan, dict[str, Any]]:
    root = next((c for c in (raw, *sorted(p for p in raw.iterdir() if p.is_dir()))
                 if (c / "images").is_dir() and (c / "texts").is_dir()), None)
    if root is None:
        raise FileNotFoundError(f"polymodal prepare upmc-food101: {raw} holds no images/ and texts/ folders (at its "
                                f"top or one level below). {OBTAIN}")
    names = classes()
    images = {p.name: p for p in (root / "images").rglob("*.jpg")}
    titles = read_titles(root / "texts")
    record: dict[str, Any] = {"classes": len(names), "lists": {}}
    items, missing = [], []
    for split, rel in zip(("train", "test"), LISTS, strict=True):
        lines, digest = read_list(rel)
        record["lists"][rel] = {"protocol": "mla", "split": split, "rows": len(lines), "sha256": digest}
        for line in lines:
            name, cls = line.split()
            it = Item(name.removesuffix(".jpg"), names.index(cls), {"mla": split}, images.get(name, Path()),
                      titles.get(name, ""))
            (items if name in images and name in titles else missing).append(it)
    log(f"{root}: {len(items)} of the {len(items) + len(missing)} listed items have an image and a title; "
        f"{len(missing)} missing")
    if not items:
        raise FileNotFoundError(f"polymodal prepare upmc-food101: no listed item has both images/.../NAME.jpg and a "
                                f"row in texts/*.csv under {root}. {OBTAIN}")
    if missing:
        log(f"upmc-food101: the raw copy lacks {len(missing)} listed item(s) (e.g. {missing[0].item_id}); counts per "
            f"class that differ from the protocol:\n{class_table(counts_of([*items, *missing]), counts_of(items), names)}"
            f"\nThey are skipped; the prepared copy is marked incomplete.")
    return ItemPlan(items, missing), {"dataset": "UPMC Food-101", "split_source": record, "raw": str(root)}


@register_preparer(NAME, obtain=OBTAIN)
def prepare_food101(raw: Path, out: Path | None, log: Log) -> dict[str, Any]:
    """Check a UPMC Food-101 copy against the MLA lists, then prepare it (image_text.py)."""
    p, protocol = plan(raw, log)
    return prepare_items(NAME, p, out if out is not None else default_data_root() / FOLDER, protocol, classes(), log)


HINT = f"Run `polymodal prepare upmc-food101 --raw DIR` first (or set data.root to its --out folder). {OBTAIN}"


@DATASETS.register(NAME, tiny={})
def upmc_food101(split: str = "train", root: str | None = None, val_fraction: float = 0.1, val_seed: int = 0,
                 image_size: int | None = None, max_length: int = 64, vocab_size: int = 30000,
                 augment: bool | None = None, allow_incomplete: bool = False, cache_features: bool = True) -> ImageText:
    """UPMC Food-101 (image + page title, 101 dishes), prepared by `polymodal prepare upmc-food101`; MLA split."""
    check_cache_option(NAME, cache_features)
    return ImageText(NAME, prepared_folder(root, FOLDER), split, classes(), HINT, "mla", val_fraction, val_seed,
                     image_size, max_length, vocab_size, augment, allow_incomplete)


upmc_food101.__signature__ = inspect.signature(upmc_food101)  # type: ignore[attr-defined]

__all__ = ["classes", "plan", "prepare_food101", "read_titles", "upmc_food101"]
