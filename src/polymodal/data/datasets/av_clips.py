"""Audio-visual clip datasets prepared once into memory-mapped arrays (CREMA-D, Kinetics-Sounds; docs/datasets.md).

Preparation of one clip (the protocol of MLA / OGM-GE, docs/methods.md "Dataset protocols"):

- audio: read with soundfile (a ``.wav``) or decoded with PyAV (the clip's own audio track), mixed to mono,
  resampled to 16 kHz with a polyphase filter (``scipy.signal.resample_poly``), clipped to [-1, 1] and
  stored as int16. At read time the waveform is tiled to at least 10 s and a 5 s window is cut (random in
  training, the first 5 s otherwise); the encoder computes the log-magnitude STFT (n_fft 256, hop 128,
  log(|X| + 1e-7)) of it (configs/cremad.yaml).
- video: decoded with PyAV; ``frames`` frames at ``fps`` frames per second from the start of the clip (times
  0, 1, 2 s at 1 fps): each is the frame on screen at that time (the last frame whose timestamp is <= t).
  A clip that ends earlier repeats its last frame; the times actually used are stored and the repeats are
  counted in the report. Frames are resized to ``size`` x ``size`` RGB (area filter) and stored uint8. At
  read time training clips get a random resized crop (scale 0.08-1, the same box for the clip's frames) and a
  horizontal flip; other splits are served as stored.

Prepared layout (``OUT``): ``audio.npy`` (all waveforms concatenated, int16) with ``audio_offsets.npy``
(N + 1 int64), ``frames.npy`` (N, frames, 3, size, size) uint8, ``frame_times.npy`` (N, frames) float32
seconds, ``labels.npy`` (N,) int64, ``clips.json`` (clip id, split, label per row), ``manifest.json`` (the
protocol: split source and the SHA-256 of its files, the preprocessing settings, the counts per class and
split, the skipped clips, the SHA-256 of every array) and ``SHA256SUMS``. Every array is opened with
``mmap_mode="r"``: an epoch reads slices of files, it never decodes media.

Resumable: each prepared clip is first written to ``OUT/.parts/`` (one ``.npz``, written atomically and keyed
by the settings and the source file's size and time); a rerun redoes only what is missing. The final arrays
are written to ``OUT/.assembling`` and renamed into place; ``.parts`` is removed afterwards.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polymodal.data.base import MultimodalDataset
from polymodal.data.batch import Sample
from polymodal.data.schema import Modality

Log = Callable[[str], None]
LAYOUT_VERSION = "av-clips-v1"
ARRAYS = ("audio", "audio_offsets", "frames", "frame_times", "labels")


@dataclass(frozen=True)
class ClipSettings:
    """How one clip is turned into arrays (module docstring); recorded in the manifest."""

    sample_rate: int = 16000
    fps: float = 1.0
    frames: int = 3
    size: int = 224
    min_audio_s: float = 0.1  # shorter audio is "too short" and the clip is skipped

    def key(self) -> str:
        return json.dumps({"layout": LAYOUT_VERSION, **asdict(self)}, sort_keys=True)


@dataclass
class Clip:
    """One clip of the published split lists, with the files it is made from."""

    clip_id: str
    label: int
    splits: dict[str, str]  # protocol -> "train", "val" or "test" (a clip may be in the lists of several protocols)
    video: Path
    audio: Path | None = None  # None: the video file's own audio track


@dataclass
class Plan:
    """What a preparer checked before writing: the clips found and the per-class comparison with the split."""

    clips: list[Clip]
    missing: list[Clip] = field(default_factory=list)  # listed by a protocol, absent from the raw copy


class SkipClip(Exception):
    """A clip that cannot be prepared (unreadable or too short); the reason goes into the skip report."""


def read_audio(path: Path, sample_rate: int) -> np.ndarray:
    """Mono float32 waveform of a file at ``sample_rate`` Hz: soundfile for .wav/.flac/.ogg, PyAV otherwise."""
    from scipy.signal import resample_poly

    if path.suffix.lower() in (".wav", ".flac", ".ogg"):
        import soundfile as sf

        try:
            data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        except Exception as e:  # soundfile raises RuntimeError / LibsndfileError on damaged files
            raise SkipClip(f"unreadable audio ({type(e).__name__}: {e})") from e
        wave = data.mean(axis=1)
    else:
        wave, rate = _decode_audio_track(path)
    if wave.size and rate != sample_rate:
        g = math.gcd(int(rate), int(sample_rate))
        wave = resample_poly(wave.astype(np.float64), sample_rate // g, int(rate) // g).astype(np.float32)
    return np.clip(wave, -1.0, 1.0)


def _decode_audio_track(path: Path) -> tuple[np.ndarray, int]:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise SkipClip("the file has no audio track")
            stream = container.streams.audio[0]
            rate = int(stream.rate or stream.codec_context.sample_rate)
            chunks = []
            for frame in container.decode(stream):
                a = frame.to_ndarray().astype(np.float32)
                if frame.format.is_planar:
                    a = a.mean(axis=0)
                else:  # interleaved (1, samples * channels)
                    a = a.reshape(-1, len(frame.layout.channels)).mean(axis=1)
                if frame.format.name.startswith("s16"):
                    a = a / 32768.0
                elif frame.format.name.startswith("s32"):
                    a = a / 2147483648.0
                chunks.append(a)
    except SkipClip:
        raise
    except Exception as e:  # av.error.* on damaged containers
        raise SkipClip(f"unreadable audio track ({type(e).__name__}: {e})") from e
    return (np.concatenate(chunks) if chunks else np.zeros(0, np.float32)), rate


def read_frames(path: Path, s: ClipSettings) -> tuple[np.ndarray, np.ndarray, float]:
    """(frames, 3, size, size) uint8 at times k / fps, the times used, and the clip's last frame time."""
    import av

    targets = [k / s.fps for k in range(s.frames)]
    chosen: list[Any] = [None] * s.frames
    times = np.zeros(s.frames, dtype=np.float32)
    first: Any = None
    last_time = -1.0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise SkipClip("the file has no video track")
            for frame in container.decode(container.streams.video[0]):
                t = float(frame.time) if frame.time is not None else last_time + 1e-3
                if first is None:
                    first = (frame, t)
                for k, target in enumerate(targets):
                    if t <= target + 1e-6:  # keeps the last frame at or before the target: the one on screen
                        chosen[k], times[k] = frame, t
                last_time = t
                if t > targets[-1] + 1e-6:
                    break
            if first is None:
                raise SkipClip("the video track holds no frame")
            for k in range(s.frames):
                if chosen[k] is None:  # the first frame starts after the target (a small start offset)
                    chosen[k], times[k] = first
            out = np.stack([f.reformat(width=s.size, height=s.size, format="rgb24", interpolation="AREA")
                            .to_ndarray().transpose(2, 0, 1) for f in chosen])
    except SkipClip:
        raise
    except Exception as e:
        raise SkipClip(f"unreadable video ({type(e).__name__}: {e})") from e
    return out, times, last_time


def prepare_clip(clip: Clip, s: ClipSettings) -> dict[str, np.ndarray]:
    """The arrays of one clip; SkipClip names why it cannot be prepared."""
    frames, times, _ = read_frames(clip.video, s)
    wave = read_audio(clip.audio or clip.video, s.sample_rate)
    if wave.size < s.min_audio_s * s.sample_rate:
        raise SkipClip(f"audio too short ({wave.size / s.sample_rate:.3f} s < {s.min_audio_s} s)")
    return {"audio": np.round(wave * 32767.0).astype(np.int16), "frames": frames, "frame_times": times}


def _fingerprint(clip: Clip, s: ClipSettings) -> str:
    parts = [s.key(), clip.clip_id]
    for p in (clip.video, clip.audio):
        if p is not None:
            st = p.stat()
            parts.append(f"{p.name}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _work(args: tuple[Clip, ClipSettings, str]) -> tuple[str, str | None]:
    """Prepare one clip into its part file (atomically); returns (clip id, skip reason or None)."""
    clip, s, part = args
    try:
        arrays = prepare_clip(clip, s)
    except SkipClip as e:
        return clip.clip_id, str(e)
    tmp = f"{part}.{os.getpid()}.tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, part)
    return clip.clip_id, None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def split_counts(clips: Sequence[Clip]) -> Counter:
    """Clips per (protocol, split, label)."""
    return Counter((proto, split, c.label) for c in clips for proto, split in c.splits.items())


def log_missing(dataset: str, clips: Sequence[Clip], missing: Sequence[Clip], class_names: Sequence[str], source: str,
                log: Log, advice: str = "") -> None:
    """Report the listed clips a raw copy lacks, with the per-class counts that differ from ``source`` (the
    protocol's lists), before anything is written; nothing to report when none is missing."""
    if not missing:
        return
    table = class_table(split_counts([*clips, *missing]), split_counts(clips), class_names)
    log(f"{dataset}: the raw copy lacks {len(missing)} listed clip(s) (e.g. {missing[0].clip_id}); counts per class "
        f"that differ from {source}:\n{table}\nThey are skipped; the prepared copy is marked incomplete."
        + (f" {advice}" if advice else ""))


def class_table(expected: Counter, found: Counter, class_names: Sequence[str]) -> str:
    """A per-class 'protocol / found' table, one line per (protocol, split, class) whose counts differ."""
    keys = sorted(set(expected) | set(found))
    return "\n".join(f"  {proto} {split:5s} {class_names[c]:>16s}: protocol {expected[k]:6d}, found {found[k]:6d}"
                     for k in keys for proto, split, c in [k] if expected[k] != found[k])


def check_out(out: Path, dataset: str) -> None:
    """Refuse an ``--out`` folder that holds anything but an earlier (or interrupted) preparation of ``dataset``."""
    if not out.is_dir():
        return
    manifest = out / "manifest.json"
    if manifest.is_file():
        found = json.loads(manifest.read_text(encoding="utf-8")).get("dataset")
        if found == dataset:
            return
        raise FileExistsError(f"polymodal prepare {dataset}: {out} holds the prepared dataset {found!r}; nothing was "
                              "changed. Choose another --out")
    others = sorted(p.name for p in out.iterdir() if p.name not in (".parts", ".assembling"))
    if others:
        raise FileExistsError(f"polymodal prepare {dataset}: {out} already holds other files ({', '.join(others[:3])}"
                              f"{', ...' if len(others) > 3 else ''}); nothing was changed. Choose an empty or new --out")


def workers() -> int:
    """Processes for preparation: ``$POLYMODAL_PREPARE_WORKERS`` or the CPU count (at most 8)."""
    env = os.environ.get("POLYMODAL_PREPARE_WORKERS")
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ValueError(f"POLYMODAL_PREPARE_WORKERS={env!r}; expected a positive integer")
        return int(env)
    return max(1, min(8, os.cpu_count() or 1))


class _Inline:
    """The ``map`` of a process pool, run in this process (one worker: no pool to start or to hang)."""

    def __enter__(self) -> _Inline:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def map(self, fn, items, chunksize: int = 1):  # noqa: ANN001, ANN201 - the Executor.map signature
        return map(fn, items)


def worker_pool(n: int) -> ProcessPoolExecutor | _Inline:
    """``n`` worker processes started with "spawn" (a forked child of a process that holds torch's or
    PyAV's threads can deadlock on a lock copied while held), or the calling process alone when ``n`` is 1."""
    import multiprocessing

    return _Inline() if n <= 1 else ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn"))


def prepare_clips(dataset: str, plan: Plan, out: Path, protocol: dict[str, Any], class_names: Sequence[str],
                  log: Log, settings: ClipSettings | None = None) -> dict[str, Any]:
    """Prepare every clip of ``plan`` into ``out`` (module docstring) and write the manifest; returns the report.

    The caller has checked the split against the raw copy (``plan.missing``, already logged)."""
    s = settings or ClipSettings()
    check_out(out, dataset)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    fingerprints = {c.clip_id: _fingerprint(c, s) for c in plan.clips}
    inputs = hashlib.sha256(json.dumps([protocol, sorted(fingerprints.items())], sort_keys=True).encode()).hexdigest()
    if manifest_path.is_file():
        old = json.loads(manifest_path.read_text(encoding="utf-8"))
        if old.get("inputs_sha256") == inputs and all((out / f"{a}.npy").is_file() for a in ARRAYS):
            log(f"{out}: already prepared from these files with these settings; nothing to do")
            return {**old["report"], "reused": True}
    parts = out / ".parts"
    parts.mkdir(exist_ok=True)
    todo = [(c, s, str(parts / f"{c.clip_id}.{fingerprints[c.clip_id]}.npz")) for c in plan.clips]
    done_before = sum(Path(p).is_file() for _, _, p in todo)
    todo = [t for t in todo if not Path(t[2]).is_file()]
    n = len(plan.clips)
    log(f"{dataset}: {n} clips; {done_before} already prepared in {parts} (resumed), {len(todo)} to decode "
        f"with {workers()} process(es)")
    skipped: dict[str, str] = {}
    start, step = time.perf_counter(), max(1, len(todo) // 20)
    if todo:
        with worker_pool(min(workers(), len(todo))) as pool:
            for i, (clip_id, reason) in enumerate(pool.map(_work, todo, chunksize=4), 1):
                if reason is not None:
                    skipped[clip_id] = reason
                if i % step == 0 or i == len(todo):
                    rate = i / max(time.perf_counter() - start, 1e-9)
                    log(f"  [{'#' * (20 * i // len(todo)):<20s}] {i}/{len(todo)} clips, {rate:.1f} clips/s, "
                        f"eta {(len(todo) - i) / rate:.0f} s")
    elapsed = time.perf_counter() - start
    kept = [c for c in plan.clips if c.clip_id not in skipped]
    if not kept:
        raise ValueError(f"polymodal prepare {dataset}: no clip could be prepared; e.g. {next(iter(skipped.items()))}")
    asm = out / ".assembling"
    if asm.exists():
        shutil.rmtree(asm)
    asm.mkdir()
    offsets = np.zeros(len(kept) + 1, dtype=np.int64)
    for i, c in enumerate(kept):
        with np.load(parts / f"{c.clip_id}.{fingerprints[c.clip_id]}.npz") as z:
            offsets[i + 1] = offsets[i] + z["audio"].shape[0]
    audio = np.lib.format.open_memmap(asm / "audio.npy", "w+", np.int16, (int(offsets[-1]),))
    frames = np.lib.format.open_memmap(asm / "frames.npy", "w+", np.uint8, (len(kept), s.frames, 3, s.size, s.size))
    times = np.zeros((len(kept), s.frames), dtype=np.float32)
    repeated = 0
    for i, c in enumerate(kept):
        with np.load(parts / f"{c.clip_id}.{fingerprints[c.clip_id]}.npz") as z:
            audio[offsets[i]:offsets[i + 1]] = z["audio"]
            frames[i] = z["frames"]
            times[i] = z["frame_times"]
        repeated += int(np.any(np.diff(times[i]) <= 0))
    audio.flush()
    frames.flush()
    del audio, frames
    labels = np.array([c.label for c in kept], dtype=np.int64)
    np.save(asm / "audio_offsets.npy", offsets)
    np.save(asm / "frame_times.npy", times)
    np.save(asm / "labels.npy", labels)
    (asm / "clips.json").write_text(json.dumps([[c.clip_id, c.label, c.splits] for c in kept]), encoding="utf-8")
    expected, found = split_counts([*plan.clips, *plan.missing]), split_counts(kept)
    counts = {proto: {sp: {class_names[k]: found[(proto, sp, k)] for k in range(len(class_names))}
                      for sp in sorted({k[1] for k in expected if k[0] == proto})} for proto in sorted({k[0] for k in expected})}
    report = {
        "dataset": dataset, "out": str(out), "clips": len(kept), "protocol_clips": sum(expected.values()),
        "missing": len(plan.missing), "skipped": len(skipped), "clips_with_repeated_frames": repeated,
        "seconds": round(elapsed, 1), "clips_per_second": round(len(todo) / elapsed, 2) if todo and elapsed else None,
    }
    manifest = {
        "dataset": dataset, "layout": LAYOUT_VERSION, "protocol": protocol, "settings": asdict(s),
        "counts": counts, "complete": not plan.missing and not skipped,
        "missing": [{"clip": c.clip_id, "class": class_names[c.label], "splits": c.splits} for c in plan.missing],
        "skipped": [{"clip": cid, "reason": r} for cid, r in sorted(skipped.items())],
        "arrays_sha256": {a: sha256_file(asm / f"{a}.npy") for a in ARRAYS}, "inputs_sha256": inputs, "report": report,
    }
    if not manifest["complete"]:
        manifest["differences"] = class_table(expected, found, class_names)
    (asm / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    names = [*(f"{a}.npy" for a in ARRAYS), "clips.json", "manifest.json"]
    (asm / "SHA256SUMS").write_text("".join(f"{sha256_file(asm / f)}  ./{f}\n" for f in names), encoding="utf-8")
    for f in (*names, "SHA256SUMS"):
        os.replace(asm / f, out / f)
    asm.rmdir()
    shutil.rmtree(parts)
    for cid, reason in sorted(skipped.items()):
        log(f"  skipped {cid}: {reason}")
    if not manifest["complete"]:
        log(f"{dataset}: the prepared copy differs from the protocol ({len(plan.missing)} missing, {len(skipped)} "
            f"skipped):\n{manifest['differences']}\nThe dataset refuses to load it unless data.options."
            "allow_incomplete is true (and then says so in every run's provenance)")
    log(f"{dataset}: {len(kept)} clips written to {out} in {elapsed:.1f} s")
    return report


def load_prepared(dataset: str, folder: Path, hint: str) -> tuple[dict[str, Any], list[list], dict[str, np.ndarray]]:
    """The manifest, clip list and memory-mapped arrays of a prepared folder; FileNotFoundError says how to make it."""
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{dataset} dataset: the prepared data is absent: {manifest_path} does not exist. "
                                f"{hint}")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if manifest.get("layout") != LAYOUT_VERSION:
        raise ValueError(f"{dataset} dataset: {folder} was prepared with layout {manifest.get('layout')!r}, this "
                         f"version reads {LAYOUT_VERSION!r}; run `polymodal prepare` again")
    clips = json.loads((folder / "clips.json").read_text(encoding="utf-8"))
    arrays = {a: np.load(folder / f"{a}.npy", mmap_mode="r") for a in ARRAYS}
    if len(arrays["labels"]) != len(clips) or arrays["frames"].shape[0] != len(clips):
        raise ValueError(f"{dataset} dataset: {folder} is inconsistent ({len(clips)} clips, "
                         f"{arrays['frames'].shape[0]} frame rows); run `polymodal prepare` again")
    return manifest, clips, arrays


def crop_flip_resize(x: torch.Tensor, rng: random.Random, size: int, augment: bool) -> torch.Tensor:
    """(N, C, S, S) images -> (N, C, size, size): with ``augment`` one RandomResizedCrop box (scale 0.08-1, ratio
    3/4-4/3) and one horizontal flip for all N (the frames of a clip move together); resized (bilinear,
    antialiased) when the size differs."""
    full = x.shape[-1]
    if augment:
        for _ in range(10):
            area = full * full * rng.uniform(0.08, 1.0)
            ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
            w, h = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
            if 0 < w <= full and 0 < h <= full:
                top, left = rng.randint(0, full - h), rng.randint(0, full - w)
                x = x[..., top:top + h, left:left + w]
                break
        if rng.random() < 0.5:
            x = x.flip(-1)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x


def check_cache_option(name: str, cache_features: bool) -> None:
    """The common option ``cache_features``: prepared datasets are always read from their memory-mapped arrays."""
    if not cache_features:
        raise ValueError(f"{name} dataset: data.cache_features=false asks to decode the media on every access, but "
                         "this dataset is read from the arrays `polymodal prepare` wrote (decoding is what it does "
                         "once); drop the key or set it to true")


def prepared_folder(root: str | None, folder: str) -> Path:
    """``root`` itself when it holds a prepared manifest, else ``root/folder`` (root defaults to $POLYMODAL_DATA)."""
    from polymodal.paths import default_data_root

    base = Path(root).expanduser() if root else default_data_root()
    return base if (base / "manifest.json").is_file() else base / folder


def carve_validation(rows: np.ndarray, labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split the training rows into (train, val), ``fraction`` of each class to validation (at least one when a
    class has two or more rows)."""
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(labels[rows]):
        r = rows[labels[rows] == c]
        k = int(round(fraction * len(r)))
        k = max(k, 1) if len(r) >= 2 else 0
        val.extend(rng.permutation(r)[:k].tolist())
    val_rows = np.array(sorted(val), dtype=np.int64)
    return np.setdiff1d(rows, val_rows), val_rows


class AVClips(MultimodalDataset):
    """One split of a prepared audio-visual clip dataset (module docstring).

    The published lists have train and test only; validation is ``val_fraction`` of each class of the training
    list (seeded by ``val_seed``), so model selection never sees the test list.
    """

    def __init__(self, name: str, folder: Path, split: str, class_names: Sequence[str], hint: str,
                 protocol: str, val_fraction: float = 0.1, val_seed: int = 0, audio_seconds: float = 5.0,
                 tile_seconds: float = 10.0, frame_size: int | None = None, augment: bool | None = None,
                 allow_incomplete: bool = False) -> None:
        if split not in ("train", "val", "test"):
            raise ValueError(f"{name} dataset: split {split!r}; expected train, val or test")
        if not 0.0 < float(val_fraction) < 1.0:
            raise ValueError(f"{name} dataset: data.options.val_fraction={val_fraction}; expected a number in (0, 1)")
        manifest, clips, self.arrays = load_prepared(name, folder, hint)
        if not manifest["complete"] and not allow_incomplete:
            raise ValueError(f"{name} dataset: {folder} differs from the published protocol ({len(manifest['missing'])}"
                             f" clips missing, {len(manifest['skipped'])} skipped):\n{manifest.get('differences', '')}\n"
                             "Restore the clips and prepare again, or set data.options.allow_incomplete=true to train "
                             "on it anyway (the difference is then recorded in the run's provenance)")
        if protocol not in manifest["counts"]:
            raise ValueError(f"{name} dataset: data.options.protocol={protocol!r}; {folder} was prepared with the "
                             f"split lists of {sorted(manifest['counts'])}")
        labels = np.asarray(self.arrays["labels"])
        listed = np.array([c[2].get(protocol, "") for c in clips])
        if split == "test" or (listed == "val").any():  # a protocol with its own validation list uses it
            rows = np.flatnonzero(listed == split)
        else:
            train, val = carve_validation(np.flatnonzero(listed == "train"), labels, float(val_fraction), int(val_seed))
            rows = train if split == "train" else val
        if not len(rows):
            raise ValueError(f"{name} dataset: the {split} split of {folder} is empty")
        s = manifest["settings"]
        self.name, self.split, self.rows, self.clip_ids = name, split, rows, [clips[i][0] for i in rows]
        self.labels = labels[rows].copy()
        self.class_names, self.num_outputs = tuple(class_names), len(class_names)
        self.sample_rate = int(s["sample_rate"])
        self.window, self.tile = int(audio_seconds * self.sample_rate), int(tile_seconds * self.sample_rate)
        if not 0 < self.window <= self.tile:
            raise ValueError(f"{name} dataset: audio_seconds={audio_seconds} and tile_seconds={tile_seconds}; "
                             "expected 0 < audio_seconds <= tile_seconds")
        self.size = int(frame_size or s["size"])
        if not 8 <= self.size <= int(s["size"]):
            raise ValueError(f"{name} dataset: frame_size={frame_size}; expected 8 to the prepared size {s['size']}")
        self.augment = split == "train" if augment is None else bool(augment)
        self.schema = (
            Modality("audio", "audio", (self.window,), sample_rate=self.sample_rate, representation="waveform",
                     extra={"tiled_to_s": tile_seconds, "crop_s": audio_seconds}),
            Modality("video", "video", (int(s["frames"]), 3, self.size, self.size), representation="pixels",
                     extra={"fps": s["fps"]}),
        )
        self.provenance = {"dataset": name, "folder": str(folder), "split": split, "size": len(rows),
                           "split_protocol": protocol,
                           "manifest": {k: manifest[k] for k in ("protocol", "settings", "counts", "complete",
                                                                 "arrays_sha256")},
                           "skipped": len(manifest["skipped"]), "missing": len(manifest["missing"]),
                           "validation": {"fraction": float(val_fraction), "seed": int(val_seed),
                                          "from": "the published training list, per class"},
                           "audio_seconds": audio_seconds, "tile_seconds": tile_seconds, "frame_size": self.size,
                           "augment": self.augment}

    def __len__(self) -> int:
        return len(self.rows)

    def _audio(self, row: int, rng: random.Random) -> np.ndarray:
        off = self.arrays["audio_offsets"]
        wave = np.asarray(self.arrays["audio"][off[row]:off[row + 1]], dtype=np.float32) / 32767.0
        tiled = np.tile(wave, -(-self.tile // len(wave)))
        start = rng.randrange(len(tiled) - self.window + 1) if self.augment else 0
        return tiled[start:start + self.window]

    def _frames(self, row: int, rng: random.Random) -> torch.Tensor:
        x = torch.from_numpy(np.array(self.arrays["frames"][row], dtype=np.float32) / 255.0)  # (T, 3, S, S)
        return crop_flip_resize(x, rng, self.size, self.augment)

    def __getitem__(self, i: int) -> Sample:
        i = range(len(self))[i]
        row = int(self.rows[i])
        rng = random.Random(torch.randint(0, 2**31 - 1, ()).item()) if self.augment else random.Random(0)
        return {"inputs": {"audio": torch.from_numpy(self._audio(row, rng)), "video": self._frames(row, rng)},
                "label": int(self.labels[i]), "index": int(i)}


__all__ = ["AVClips", "ClipSettings", "Clip", "Plan", "SkipClip", "carve_validation", "check_cache_option", "check_out", "class_table", "crop_flip_resize", "sha256_file", "split_counts", "load_prepared", "prepared_folder",
           "prepare_clip", "prepare_clips", "read_audio", "read_frames", "workers"]
