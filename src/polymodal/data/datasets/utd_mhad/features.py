"""UTD-MHAD preprocessing: fixed-size arrays per sequence, computed once and kept memory-mapped on disk.

Per sequence (docs/utd_mhad.md, "Preprocessing"):

- depth: ``depth_frames`` frames taken at evenly spaced positions of the clip (rounded indices of
  ``linspace(0, frames - 1, depth_frames)``). The release's depth frames hold the person only (every other
  pixel is 0), who fills about 8 % of a 240x320 frame, so the frames are cropped to the box around every
  non-zero pixel of the sampled frames, grown by 10 % and to the aspect ratio of ``depth_size`` (zeros outside
  the frame), then area-resampled to ``depth_size``. Values: a person's pixel at depth d becomes
  0.5 + (median - d) / ``depth_range_mm`` (median: the clip's median person depth; nearer is brighter),
  clipped to [0.05, 1], so that a hand pushed forward stands out; background stays 0. (depth_frames, 1, H, W),
  stored float16.
- skeleton: every joint minus the hip centre of the FIRST frame (so whole-body motion such as a lunge is
  kept), divided by the mean shoulder-centre-to-hip-centre distance of the clip (the torso length), then
  linearly resampled in time to ``skeleton_frames``: (skeleton_frames, 60), joints major (joint j's x, y, z
  in columns 3j..3j+2), float32.
- inertial: the 6 channels in their units (g, degrees / s), linearly resampled in time to ``inertial_rows``:
  (inertial_rows, 6), float32.

The cache is one folder per (release files, settings) under ``polymodal.paths.cache_dir()/utd-mhad``: three
``.npy`` arrays opened with ``mmap_mode="r"`` and ``index.json`` (the sequences in row order, the SHA-256 of
every release file read, the settings, the SHA-256 of each array). It is written into a temporary folder
and renamed into place, so a reader never sees half a cache. Preparation decodes one file at a time: the
decoded depth (about 9 GB for the release) is never held at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from polymodal.data.datasets.utd_mhad.release import JOINTS, KINDS, SequenceId, read, scan
from polymodal.paths import cache_dir

CACHE_VERSION = "utd-mhad-cache-v2"
REFERENCE_JOINT = JOINTS.index("hip_center")
TORSO = (JOINTS.index("shoulder_center"), JOINTS.index("hip_center"))
ARRAYS = ("depth", "skeleton", "inertial")


@dataclass(frozen=True)
class Preprocessing:
    """The settings of the fixed-size arrays (module docstring); recorded in every run's provenance."""

    depth_frames: int = 16
    depth_size: tuple[int, int] = (64, 48)
    depth_range_mm: float = 1000.0
    skeleton_frames: int = 64
    inertial_rows: int = 128

    def __post_init__(self) -> None:
        bad = [k for k, v in (("depth_frames", self.depth_frames), ("skeleton_frames", self.skeleton_frames),
                              ("inertial_rows", self.inertial_rows)) if not (isinstance(v, int) and v >= 2)]
        size = tuple(self.depth_size)
        if len(size) != 2 or not all(isinstance(v, int) and 1 <= v <= s for v, s in zip(size, (240, 320), strict=False)):
            bad.append("depth_size")
        if not self.depth_range_mm > 0:
            bad.append("depth_range_mm")
        if bad:
            raise ValueError(f"utd-mhad dataset: data.options {bad} out of range: frames / rows must be integers >= 2, "
                             f"depth_size [H, W] within 240x320, depth_range_mm > 0; got {asdict(self)}")
        object.__setattr__(self, "depth_size", (int(size[0]), int(size[1])))

    def key(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def resample(x: np.ndarray, n: int) -> np.ndarray:
    """(T, C) -> (n, C) by linear interpolation at n evenly spaced positions of [0, T - 1] (ends kept)."""
    t = x.shape[0]
    pos = np.linspace(0.0, t - 1.0, n)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, t - 1)
    w = (pos - lo)[:, None]
    return (1.0 - w) * x[lo] + w * x[hi]


def depth_clip(raw: np.ndarray, p: Preprocessing) -> np.ndarray:
    """(240, 320, frames) uint16 millimetres -> (depth_frames, 1, H, W) float16 in [0, 1] (module docstring)."""
    idx = np.linspace(0, raw.shape[2] - 1, p.depth_frames).round().astype(np.int64)
    clip = np.ascontiguousarray(raw[:, :, idx].transpose(2, 0, 1)).astype(np.float32)  # (F, 240, 320)
    person = clip > 0
    if not person.any():
        return np.zeros((p.depth_frames, 1, *p.depth_size), dtype=np.float16)
    values = np.where(person, np.clip(0.5 + (np.median(clip[person]) - clip) / p.depth_range_mm, 0.05, 1.0), 0.0)
    ys, xs = np.nonzero(person.any(axis=0))
    cy, cx = (ys.min() + ys.max() + 1) / 2, (xs.min() + xs.max() + 1) / 2
    h, w = 1.1 * (ys.max() + 1 - ys.min()), 1.1 * (xs.max() + 1 - xs.min())
    aspect = p.depth_size[0] / p.depth_size[1]
    h, w = max(h, w * aspect), max(w, h / aspect)
    y0, x0 = int(np.floor(cy - h / 2)), int(np.floor(cx - w / 2))
    y1, x1 = y0 + max(1, round(h)), x0 + max(1, round(w))
    pad = max(0, -y0, -x0, y1 - clip.shape[1], x1 - clip.shape[2])
    values = np.pad(values, ((0, 0), (pad, pad), (pad, pad)))[:, y0 + pad:y1 + pad, x0 + pad:x1 + pad]
    small = F.adaptive_avg_pool2d(torch.from_numpy(values.astype(np.float32))[:, None], p.depth_size)
    return small.numpy().astype(np.float16)


def skeleton_clip(raw: np.ndarray, p: Preprocessing, path: Path | str = "skeleton") -> np.ndarray:
    """(20, 3, frames) metres -> (skeleton_frames, 60) float32, centred on the first hip centre, torso-scaled."""
    joints = raw.astype(np.float64).transpose(2, 0, 1)  # (frames, 20, 3)
    torso = float(np.linalg.norm(joints[:, TORSO[0]] - joints[:, TORSO[1]], axis=1).mean())
    if not torso > 1e-6:
        raise ValueError(f"UTD-MHAD: {path}: the shoulder centre and hip centre coincide in every frame (torso length "
                         f"{torso:g}); the skeleton cannot be scaled")
    centred = (joints - joints[0, REFERENCE_JOINT]) / torso
    return resample(centred.reshape(len(joints), -1), p.skeleton_frames).astype(np.float32)


def inertial_clip(raw: np.ndarray, p: Preprocessing) -> np.ndarray:
    """(rows, 6) -> (inertial_rows, 6) float32."""
    return resample(raw.astype(np.float64), p.inertial_rows).astype(np.float32)


def _read_hashed(path: Path, kind: str) -> tuple[np.ndarray, str]:
    """The checked array of a release file and the SHA-256 of its bytes, from one read of the file."""
    data = path.read_bytes()
    return read(path, kind, data), hashlib.sha256(data).hexdigest()


def sequence_arrays(root: Path, sid: SequenceId, p: Preprocessing) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """The three preprocessed arrays of one sequence and what was read (lengths, file digests)."""
    out: dict[str, np.ndarray] = {}
    info: dict[str, object] = {"action": sid.action, "subject": sid.subject, "trial": sid.trial}
    for kind in ARRAYS:
        path = sid.path(root, kind)
        raw, digest = _read_hashed(path, kind)
        info[f"{kind}_length"] = int(raw.shape[0] if kind == "inertial" else raw.shape[-1])
        info[f"{kind}_sha256"] = digest
        if kind == "depth":
            out[kind] = depth_clip(raw, p)
        elif kind == "skeleton":
            out[kind] = skeleton_clip(raw, p, path)
        else:
            out[kind] = inertial_clip(raw, p)
        del raw  # one decoded file at a time
    return out, info


def _listing_key(root: Path, ids: list[SequenceId], p: Preprocessing) -> str:
    h = hashlib.sha256(f"{CACHE_VERSION}|{p.key()}".encode())
    for sid in ids:
        for kind in ARRAYS:
            st = sid.path(root, kind).stat()
            h.update(f"{sid.stem}|{kind}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class Cache:
    """A prepared cache: memory-mapped arrays in row order and their index."""

    path: Path
    index: dict

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: np.load(self.path / f"{k}.npy", mmap_mode="r", allow_pickle=False) for k in ARRAYS}


def _shapes(n: int, p: Preprocessing) -> dict[str, tuple[tuple[int, ...], type]]:
    return {"depth": ((n, p.depth_frames, 1, *p.depth_size), np.float16),
            "skeleton": ((n, p.skeleton_frames, 3 * len(JOINTS)), np.float32),
            "inertial": ((n, p.inertial_rows, len(KINDS) * 2), np.float32)}


def _valid(folder: Path, n: int, p: Preprocessing) -> dict | None:
    try:
        index = json.loads((folder / "index.json").read_text(encoding="utf-8"))
        for k, (shape, dtype) in _shapes(n, p).items():
            a = np.load(folder / f"{k}.npy", mmap_mode="r", allow_pickle=False)
            if a.shape != shape or a.dtype != dtype:
                return None
    except (OSError, ValueError):
        return None
    return index if index.get("version") == CACHE_VERSION and len(index.get("sequences", ())) == n else None


def prepared_cache(root: Path, p: Preprocessing, progress: Callable[[int, int], None] | None = None) -> Cache:
    """The cache of the release folder ``root`` under settings ``p``: reused when present and whole, else built."""
    ids = scan(root)
    key = _listing_key(root, ids, p)
    folder = cache_dir() / "utd-mhad" / key
    index = _valid(folder, len(ids), p) if folder.is_dir() else None
    if index is not None:
        return Cache(folder, index)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=folder.parent))
    try:
        shapes = _shapes(len(ids), p)
        out = {k: np.lib.format.open_memmap(tmp / f"{k}.npy", mode="w+", dtype=dt, shape=shape)
               for k, (shape, dt) in shapes.items()}
        rows = []
        for i, sid in enumerate(ids):
            arrays, info = sequence_arrays(root, sid, p)
            for k in ARRAYS:
                out[k][i] = arrays[k]
            rows.append(info)
            if progress is not None:
                progress(i + 1, len(ids))
        for a in out.values():
            a.flush()
        del out
        index = {"version": CACHE_VERSION, "root": str(root), "settings": json.loads(p.key()), "sequences": rows,
                 "arrays_sha256": {k: _file_sha256(tmp / f"{k}.npy") for k in ARRAYS}}
        (tmp / "index.json").write_text(json.dumps(index, indent=1), encoding="utf-8")
        try:
            os.replace(tmp, folder)  # atomic when the target does not exist
        except OSError:
            if _valid(folder, len(ids), p) is None:  # another process's whole cache wins; a broken one is replaced
                shutil.rmtree(folder, ignore_errors=True)
                os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    index = _valid(folder, len(ids), p)
    if index is None:
        raise RuntimeError(f"UTD-MHAD: the prepared cache {folder} is incomplete right after writing it; "
                           "check free disk space and delete the folder")
    return Cache(folder, index)


__all__ = ["CACHE_VERSION", "Cache", "Preprocessing", "depth_clip", "inertial_clip", "prepared_cache", "resample",
           "sequence_arrays", "skeleton_clip"]
