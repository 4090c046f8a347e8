"""Kinetics-Sounds: the 31-class audio-visual subset of Kinetics-400 in the OGM-GE split lists (14799 training /
2597 test clips). docs/datasets.md.

Raw layout accepted by ``polymodal prepare kinetics-sounds --raw DIR``: a folder (searched recursively, so
class sub-folders are fine) of clips named as in the lists, ``{clip_id}.mp4`` (or .mkv / .webm / .avi); the
audio is the clip's own track, or ``{clip_id}.wav`` anywhere under DIR when the audio was extracted. The
lists name clips ``youtubeid_start_end`` (training) or ``youtubeid_index`` (test), with a class index 0-30;
they give no class names, so the classes are named by their index. Preprocessing and layout as CREMA-D
(polymodal.data.datasets.av_clips).
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

NAME = "kinetics-sounds"
NUM_CLASSES = 31
CLASSES = tuple(str(i) for i in range(NUM_CLASSES))
LISTS = ("kinetics_sounds_ogmge/my_train.txt", "kinetics_sounds_ogmge/my_test.txt")
VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi")
FOLDER = "kinetics_sounds"
OBTAIN = ("Kinetics-Sounds is not downloaded by polymodal. Its clips are 10 s windows of YouTube videos of "
          "Kinetics-400 (https://github.com/cvdfoundation/kinetics-dataset; the annotations are licensed CC BY 4.0 "
          "by Google, the videos remain under their owners' YouTube terms); fetch the clips of the OGM-GE lists "
          "yourself and run `polymodal prepare kinetics-sounds --raw DIR` with DIR holding {clip_id}.mp4 files")


def read_protocol() -> tuple[dict[str, tuple[int, dict[str, str]]], dict[str, Any]]:
    """clip id -> (label, {"ogmge": split}) from the shipped lists, and the protocol record for the manifest."""
    clips: dict[str, tuple[int, dict[str, str]]] = {}
    record: dict[str, Any] = {"classes": NUM_CLASSES, "lists": {}}
    for split, rel in zip(("train", "test"), LISTS, strict=True):
        lines, digest = read_list(rel)
        record["lists"][rel] = {"protocol": "ogmge", "split": split, "rows": len(lines), "sha256": digest}
        for line in lines:
            clip_id, _, label = line.split(",")
            clips[clip_id] = (int(label), {"ogmge": split})
    return clips, record


def plan(raw: Path, log: Log) -> tuple[Plan, dict[str, Any]]:
    """The listed clips found under ``raw`` (recursively) and those missing, compared per class before writing."""
    listed, record = read_protocol()
    videos: dict[str, Path] = {}
    wavs: dict[str, Path] = {}
    for path in sorted(raw.rglob("*")):
        if path.stem in listed and path.is_file():
            if path.suffix.lower() in VIDEO_SUFFIXES:
                videos.setdefault(path.stem, path)
            elif path.suffix.lower() == ".wav":
                wavs.setdefault(path.stem, path)
    clips, missing = [], []
    for clip_id, (label, splits) in sorted(listed.items()):
        c = Clip(clip_id, label, splits, videos.get(clip_id, Path()), wavs.get(clip_id))
        (clips if clip_id in videos else missing).append(c)
    log(f"{raw}: {len(clips)} of the {len(listed)} listed clips found ({len(wavs)} with a separate .wav); "
        f"{len(missing)} missing")
    if not clips:
        raise FileNotFoundError(f"polymodal prepare kinetics-sounds: no file under {raw} is named like a clip of the "
                                f"OGM-GE lists (e.g. {next(iter(listed))}.mp4). {OBTAIN}")
    log_missing("kinetics-sounds", clips, missing, CLASSES, "the protocol", log, OBTAIN)
    return Plan(clips, missing), {"dataset": "Kinetics-Sounds", "split_source": record, "raw": str(raw)}


@register_preparer(NAME, obtain=OBTAIN)
def prepare_kinetics_sounds(raw: Path, out: Path | None, log: Log) -> dict[str, Any]:
    """Check a Kinetics-Sounds copy against the OGM-GE lists, then prepare it (polymodal.data.datasets.av_clips)."""
    p, protocol = plan(raw, log)
    return prepare_clips(NAME, p, out if out is not None else default_data_root() / FOLDER, protocol, CLASSES, log)


HINT = f"Run `polymodal prepare kinetics-sounds --raw DIR` first (or set data.root to its --out folder). {OBTAIN}"


@DATASETS.register(NAME, tiny={})
def kinetics_sounds(split: str = "train", root: str | None = None, val_fraction: float = 0.1, val_seed: int = 0,
                    audio_seconds: float = 5.0, tile_seconds: float = 10.0, frame_size: int | None = None,
                    augment: bool | None = None, allow_incomplete: bool = False, cache_features: bool = True) -> AVClips:
    """Kinetics-Sounds (audio + 3 video frames, 31 classes), prepared by `polymodal prepare kinetics-sounds`."""
    check_cache_option(NAME, cache_features)
    return AVClips(NAME, prepared_folder(root, FOLDER), split, CLASSES, HINT, "ogmge", val_fraction, val_seed, audio_seconds, tile_seconds,
                   frame_size, augment, allow_incomplete)


kinetics_sounds.__signature__ = inspect.signature(kinetics_sounds)  # type: ignore[attr-defined]

__all__ = ["CLASSES", "kinetics_sounds", "plan", "prepare_kinetics_sounds", "read_protocol"]
