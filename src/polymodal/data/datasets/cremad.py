"""CREMA-D: 7442 clips of 91 actors speaking 12 sentences with 6 emotions (audio + video). docs/datasets.md.

Raw layout accepted by ``polymodal prepare cremad --raw DIR`` (the official release, at DIR or one level
below): ``AudioWAV/{actor}_{sentence}_{emotion}_{level}.wav`` and ``VideoFlash/{same}.flv``. Both published
split lists are prepared at once (they are two different 6698 / 744 partitions of the same 7442 clips):

    ogmge   cremad_ogmge/train.csv, test.csv (OGM-GE, CVPR 2022; also BalanceBenchmark's), the default
    mla     mla/my_train_cre.txt, my_test_cre.txt (MLA, CVPR 2024)

Classes in the OGM-GE order (its ``stat.csv``): NEU, HAP, SAD, FEA, DIS, ANG. A list's label must agree with
the emotion code in the clip's name. Preprocessing and the prepared layout: polymodal.data.datasets.av_clips.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from polymodal.data.base import DATASETS
from polymodal.data.datasets.av_clips import (
    AVClips,
    Clip,
    Plan,
    check_cache_option,
    log_missing,
    prepare_clips,
    prepared_folder,
)
from polymodal.data.datasets.published_splits import read_list
from polymodal.data.prepare import Log, register_preparer
from polymodal.paths import default_data_root

NAME = "cremad"
CLASSES = ("NEU", "HAP", "SAD", "FEA", "DIS", "ANG")
MLA_NAMES = {"Neutral": "NEU", "Happy": "HAP", "Sad": "SAD", "Fear": "FEA", "Disgust": "DIS", "Anger": "ANG"}
PROTOCOLS = {"ogmge": ("cremad_ogmge/train.csv", "cremad_ogmge/test.csv"),
             "mla": ("mla/my_train_cre.txt", "mla/my_test_cre.txt")}
FOLDER = "cremad"  # prepared data under $POLYMODAL_DATA
OBTAIN = ("CREMA-D is not downloaded by polymodal. Get it from https://github.com/CheyneyComputerScience/CREMA-D "
          "(git lfs; the AudioWAV/ and VideoFlash/ folders), licensed under the Open Database License (ODbL 1.0) "
          "with the contents under the Database Contents License (DbCL 1.0); then run "
          "`polymodal prepare cremad --raw DIR` with DIR holding AudioWAV/ and VideoFlash/")


def read_protocols() -> tuple[dict[str, tuple[int, dict[str, str]]], dict[str, Any]]:
    """clip id -> (label, {protocol: split}) from the shipped lists, and the protocol record for the manifest."""
    clips: dict[str, tuple[int, dict[str, str]]] = {}
    record: dict[str, Any] = {"classes": list(CLASSES), "lists": {}}
    for proto, files in PROTOCOLS.items():
        for split, rel in zip(("train", "test"), files, strict=True):
            lines, digest = read_list(rel)
            record["lists"][rel] = {"protocol": proto, "split": split, "rows": len(lines), "sha256": digest}
            for line in lines:
                if proto == "ogmge":
                    clip_id, code = line.split(",")
                else:
                    name, word = line.split()
                    clip_id, code = name.removesuffix(".flv"), MLA_NAMES[word]
                label = CLASSES.index(code)
                if clip_id.split("_")[2] != code:
                    raise ValueError(f"CREMA-D list {rel}: {clip_id} is labelled {code}, its name says "
                                     f"{clip_id.split('_')[2]}")
                prev = clips.setdefault(clip_id, (label, {}))
                if prev[0] != label:
                    raise ValueError(f"CREMA-D lists disagree on the label of {clip_id}")
                prev[1][proto] = split
    return clips, record


def release_folder(raw: Path) -> Path:
    """The folder holding AudioWAV/ and VideoFlash/ (DIR or one level below); FileNotFoundError says where to get it."""
    for cand in (raw, *sorted(p for p in raw.iterdir() if p.is_dir())):
        if (cand / "AudioWAV").is_dir() and (cand / "VideoFlash").is_dir():
            return cand
    raise FileNotFoundError(f"polymodal prepare cremad: {raw} holds no AudioWAV/ and VideoFlash/ folders (at its top "
                            f"or one level below). {OBTAIN}")


def plan(raw: Path, log: Log) -> tuple[Plan, dict[str, Any]]:
    """The clips of the published lists found in ``raw`` and those missing, with the per-class comparison logged
    before anything is written."""
    root = release_folder(raw)
    listed, record = read_protocols()
    clips, missing = [], []
    for clip_id, (label, splits) in sorted(listed.items()):
        video, audio = root / "VideoFlash" / f"{clip_id}.flv", root / "AudioWAV" / f"{clip_id}.wav"
        c = Clip(clip_id, label, splits, video, audio)
        (clips if video.is_file() and audio.is_file() else missing).append(c)
    extra = len({p.stem for p in (root / "VideoFlash").glob("*.flv")} - set(listed))
    log(f"{root}: {len(clips)} of the {len(listed)} listed clips have both files; {len(missing)} missing; "
        f"{extra} other .flv files ignored")
    if not clips:
        raise FileNotFoundError(f"polymodal prepare cremad: none of the {len(listed)} clips of the published lists has "
                                f"both {root}/VideoFlash/ID.flv and {root}/AudioWAV/ID.wav. {OBTAIN}")
    log_missing("cremad", clips, missing, CLASSES, "the protocol", log, OBTAIN)
    return Plan(clips, missing), {"dataset": "CREMA-D", "split_source": record, "raw": str(root)}


@register_preparer(NAME, obtain=OBTAIN)
def prepare_cremad(raw: Path, out: Path | None, log: Log) -> dict[str, Any]:
    """Check a CREMA-D copy against both published lists, then prepare it (polymodal.data.datasets.av_clips)."""
    p, protocol = plan(raw, log)
    return prepare_clips(NAME, p, out if out is not None else default_data_root() / FOLDER, protocol, CLASSES, log)


HINT = f"Run `polymodal prepare cremad --raw DIR` first (or set data.root to its --out folder). {OBTAIN}"


@DATASETS.register(NAME, tiny={})
def cremad(split: str = "train", root: str | None = None, protocol: str = "ogmge", val_fraction: float = 0.1,
           val_seed: int = 0, audio_seconds: float = 5.0, tile_seconds: float = 10.0, frame_size: int | None = None,
           augment: bool | None = None, allow_incomplete: bool = False, cache_features: bool = True) -> AVClips:
    """CREMA-D (audio + 3 video frames, 6 emotions), prepared by `polymodal prepare cremad`; protocol ogmge or mla."""
    check_cache_option(NAME, cache_features)
    return AVClips(NAME, prepared_folder(root, FOLDER), split, CLASSES, HINT, protocol, val_fraction, val_seed, audio_seconds,
                   tile_seconds, frame_size, augment, allow_incomplete)


cremad.__signature__ = inspect.signature(cremad)  # type: ignore[attr-defined]

__all__ = ["CLASSES", "PROTOCOLS", "cremad", "plan", "prepare_cremad", "read_protocols", "release_folder"]
