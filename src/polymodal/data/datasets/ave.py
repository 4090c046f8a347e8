"""AVE (Audio-Visual Event): 4143 10 s YouTube clips of 28 event classes with the official train / val / test
lists (Tian et al., ECCV 2018). docs/datasets.md.

Raw layout accepted by ``polymodal prepare ave --raw DIR`` (the official release, searched recursively):
the clips ``{VideoID}.mp4`` and the lists ``trainSet.txt``, ``valSet.txt``, ``testSet.txt`` (each line
``Category&VideoID&Quality&StartTime&EndTime``; a header line is skipped). Clip-level classification: the
label is the category; the event's start and end seconds are not used. Classes: the categories, sorted. The official validation list is used for selection.
Preprocessing as CREMA-D (av_clips.py).
"""

from __future__ import annotations

import hashlib
import inspect
from pathlib import Path
from typing import Any

from polymodal.data.base import DATASETS
from polymodal.data.datasets.av_clips import (
    AVClips,
    Clip,
    Plan,
    check_cache_option,
    load_prepared,
    log_missing,
    prepare_clips,
    prepared_folder,
)
from polymodal.data.prepare import Log, register_preparer

NAME = "ave"
FOLDER = "ave"
LISTS = {"train": "trainSet.txt", "val": "valSet.txt", "test": "testSet.txt"}
OBTAIN = ("AVE is not downloaded by polymodal. Get the release (AVE_Dataset.zip) from its authors' page "
          "(https://github.com/YapengTian/AVE-ECCV18); the clips are YouTube videos distributed for research use. "
          "Then run `polymodal prepare ave --raw DIR` with DIR holding the .mp4 clips and trainSet.txt, valSet.txt, "
          "testSet.txt")


def read_list(path: Path) -> tuple[list[tuple[str, str]], str]:
    """(video id, category) per line of an official list, and the list's SHA-256."""
    data = path.read_bytes()
    rows = []
    for n, line in enumerate(data.decode("utf-8-sig", errors="replace").splitlines(), 1):
        parts = line.strip().split("&")
        if not line.strip() or (n == 1 and parts[0] == "Category"):
            continue
        if len(parts) != 5:
            raise ValueError(f"AVE: {path}, line {n}: {line!r}; expected Category&VideoID&Quality&StartTime&EndTime")
        rows.append((parts[1], parts[0]))
    return rows, hashlib.sha256(data).hexdigest()


def plan(raw: Path, log: Log) -> tuple[Plan, dict[str, Any], tuple[str, ...]]:
    files = {split: sorted(raw.rglob(name)) for split, name in LISTS.items()}
    absent = [LISTS[s] for s, f in files.items() if not f]
    if absent:
        raise FileNotFoundError(f"polymodal prepare ave: {', '.join(absent)} not found under {raw}. {OBTAIN}")
    listed: dict[str, list[tuple[str, str]]] = {}
    record: dict[str, Any] = {"lists": {}}
    for split, f in files.items():
        listed[split], digest = read_list(f[0])
        record["lists"][LISTS[split]] = {"protocol": "official", "split": split, "rows": len(listed[split]),
                                         "sha256": digest}
    classes = tuple(sorted({cat for rows in listed.values() for _, cat in rows}))
    record["classes"] = list(classes)
    videos = {p.stem: p for p in raw.rglob("*.mp4")}
    clips, missing = [], []
    for split, rows in listed.items():
        for vid, cat in rows:
            c = Clip(vid, classes.index(cat), {"official": split}, videos.get(vid, Path()))
            (clips if vid in videos else missing).append(c)
    log(f"{raw}: {len(clips)} of the {len(clips) + len(missing)} listed clips found; {len(missing)} missing")
    if not clips:
        raise FileNotFoundError(f"polymodal prepare ave: none of the listed clips is under {raw}. {OBTAIN}")
    log_missing("ave", clips, missing, classes, "the lists", log)
    return Plan(clips, missing), {"dataset": "AVE", "split_source": record, "raw": str(raw)}, classes


@register_preparer(NAME, obtain=OBTAIN)
def prepare_ave(raw: Path, out: Path | None, log: Log) -> dict[str, Any]:
    """Check an AVE copy against its official lists, then prepare it (polymodal.data.datasets.av_clips)."""
    from polymodal.paths import default_data_root

    p, protocol, classes = plan(raw, log)
    return prepare_clips(NAME, p, out if out is not None else default_data_root() / FOLDER, protocol, classes, log)


HINT = f"Run `polymodal prepare ave --raw DIR` first (or set data.root to its --out folder). {OBTAIN}"


@DATASETS.register(NAME, tiny={})
def ave(split: str = "train", root: str | None = None, audio_seconds: float = 5.0, tile_seconds: float = 10.0,
        frame_size: int | None = None, augment: bool | None = None, allow_incomplete: bool = False, cache_features: bool = True) -> AVClips:
    """AVE (audio + 3 video frames, 28 events), prepared by `polymodal prepare ave`; official train/val/test."""
    check_cache_option(NAME, cache_features)
    folder = prepared_folder(root, FOLDER)
    manifest, _, _ = load_prepared(NAME, folder, HINT)
    return AVClips(NAME, folder, split, manifest["protocol"]["split_source"]["classes"], HINT, "official",
                   audio_seconds=audio_seconds, tile_seconds=tile_seconds, frame_size=frame_size, augment=augment,
                   allow_incomplete=allow_incomplete)


ave.__signature__ = inspect.signature(ave)  # type: ignore[attr-defined]

__all__ = ["ave", "plan", "prepare_ave", "read_list"]
