"""VGGSound: 10 s YouTube clips of 309 sound classes with the official train / test split (Chen et al., ICASSP
2020). docs/datasets.md.

Raw layout accepted by ``polymodal prepare vggsound --raw DIR``: the official ``vggsound.csv`` (no header;
``youtube_id,start_seconds,label,split`` per row, split ``train`` or ``test``) anywhere under DIR, and the clips
as ``{youtube_id}_{start:06d}.mp4`` (or ``{youtube_id}_{start}``; .mkv / .webm / .avi), searched recursively;
the audio is the clip's own track or ``{same name}.wav``. The classes are the csv's labels, sorted. The csv is
the protocol: its SHA-256 is recorded in the manifest. Preprocessing as CREMA-D (av_clips.py).
"""

from __future__ import annotations

import csv
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

NAME = "vggsound"
FOLDER = "vggsound"
VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi")
OBTAIN = ("VGGSound is not downloaded by polymodal. The clip list (vggsound.csv) is published by the Visual "
          "Geometry Group, Oxford (https://www.robots.ox.ac.uk/~vgg/data/vggsound/, CC BY 4.0); the clips are "
          "YouTube videos under their owners' terms, which you fetch yourself. Then run "
          "`polymodal prepare vggsound --raw DIR` with DIR holding vggsound.csv and the clips")


def read_csv(path: Path) -> tuple[list[tuple[str, str, str]], str]:
    """(clip name, label, split) rows of the official csv and its SHA-256."""
    data = path.read_bytes()
    rows = []
    for n, row in enumerate(csv.reader(data.decode("utf-8-sig").splitlines()), 1):
        if not row:
            continue
        if len(row) != 4 or row[3] not in ("train", "test") or not row[1].strip().isdigit():
            raise ValueError(f"VGGSound: {path}, row {n}: {row!r}; expected youtube_id,start_seconds,label,train|test")
        rows.append((f"{row[0]}_{int(row[1]):06d}", row[2], row[3]))
    return rows, hashlib.sha256(data).hexdigest()


def plan(raw: Path, log: Log) -> tuple[Plan, dict[str, Any], tuple[str, ...]]:
    found = sorted(raw.rglob("vggsound.csv"))
    if not found:
        raise FileNotFoundError(f"polymodal prepare vggsound: no vggsound.csv under {raw}. {OBTAIN}")
    rows, digest = read_csv(found[0])
    classes = tuple(sorted({label for _, label, _ in rows}))
    videos: dict[str, Path] = {}
    wavs: dict[str, Path] = {}
    for path in raw.rglob("*"):
        stem = path.stem
        parts = stem.rsplit("_", 1)
        if len(parts) == 2 and parts[1].isdigit():  # {id}_{start} without zero padding
            stem = f"{parts[0]}_{int(parts[1]):06d}"
        if path.suffix.lower() in VIDEO_SUFFIXES:
            videos.setdefault(stem, path)
        elif path.suffix.lower() == ".wav":
            wavs.setdefault(stem, path)
    clips, missing = [], []
    for name, label, split in rows:
        c = Clip(name, classes.index(label), {"official": split}, videos.get(name, Path()), wavs.get(name))
        (clips if name in videos else missing).append(c)
    log(f"{raw}: {len(clips)} of the {len(rows)} clips of {found[0].name} found; {len(missing)} missing")
    if not clips:
        raise FileNotFoundError(f"polymodal prepare vggsound: no clip of {found[0]} is under {raw} (e.g. "
                                f"{rows[0][0]}.mp4). {OBTAIN}")
    log_missing("vggsound", clips, missing, classes, "the csv", log,
                "Most copies of VGGSound lack some clips that were removed from YouTube; say how many beside any comparison.")
    record = {"classes": list(classes), "lists": {found[0].name: {"rows": len(rows), "sha256": digest}}}
    return Plan(clips, missing), {"dataset": "VGGSound", "split_source": record, "raw": str(raw)}, classes


@register_preparer(NAME, obtain=OBTAIN)
def prepare_vggsound(raw: Path, out: Path | None, log: Log) -> dict[str, Any]:
    """Check a VGGSound copy against its official csv, then prepare it (polymodal.data.datasets.av_clips)."""
    from polymodal.paths import default_data_root

    p, protocol, classes = plan(raw, log)
    return prepare_clips(NAME, p, out if out is not None else default_data_root() / FOLDER, protocol, classes, log)


HINT = f"Run `polymodal prepare vggsound --raw DIR` first (or set data.root to its --out folder). {OBTAIN}"


@DATASETS.register(NAME, tiny={})
def vggsound(split: str = "train", root: str | None = None, val_fraction: float = 0.1, val_seed: int = 0,
             audio_seconds: float = 5.0, tile_seconds: float = 10.0, frame_size: int | None = None,
             augment: bool | None = None, allow_incomplete: bool = False, cache_features: bool = True) -> AVClips:
    """VGGSound (audio + 3 video frames, 309 classes), prepared by `polymodal prepare vggsound`; official split."""
    check_cache_option(NAME, cache_features)
    folder = prepared_folder(root, FOLDER)
    manifest, _, _ = load_prepared(NAME, folder, HINT)
    classes = manifest["protocol"]["split_source"]["classes"]
    return AVClips(NAME, folder, split, classes, HINT, "official", val_fraction, val_seed, audio_seconds,
                   tile_seconds, frame_size, augment, allow_incomplete)


vggsound.__signature__ = inspect.signature(vggsound)  # type: ignore[attr-defined]

__all__ = ["plan", "prepare_vggsound", "read_csv", "vggsound"]
