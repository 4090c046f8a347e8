"""IEMOCAP: dyadic sessions of ten actors, utterances labelled with emotions (audio + image + text); the MLA
split of four classes (3318 / 1107 utterances). docs/datasets.md.

Raw layout accepted by ``polymodal prepare iemocap --raw DIR`` (the licensed release, ``IEMOCAP_full_release``,
at DIR or one level below), for each session ``SessionK/`` (K = 1..5; a dialog is e.g. ``Ses01F_impro01``,
an utterance ``Ses01F_impro01_F000``):

    dialog/EmoEvaluation/{dialog}.txt        "[start - end]<TAB>{utterance}<TAB>{code}<TAB>[v, a, d]" per
                                             utterance (then the annotators' lines, which are not read)
    dialog/transcriptions/{dialog}.txt       "{utterance} [start-end]: text" per utterance
    dialog/avi/DivX/{dialog}.avi             the dialog's video (both actors in one frame)
    sentences/wav/{dialog}/{utterance}.wav   the utterance's audio, or when it is absent:
    dialog/wav/{dialog}.wav                  the dialog's audio, cut at the utterance's span

Files whose name starts with ``._`` (macOS metadata copied with the release) are ignored.

Protocol: the MLA lists (``mla/my_train_iemo.txt``, ``my_test_iemo.txt``; ``{utterance}.mp4 Label`` per line),
classes sorted as MLA sorts them: Angry, Happy, Neutral, Sad. The list's label is the protocol; each listed
label is checked against the utterance's categorical label in EmoEvaluation (ang -> Angry, hap and exc ->
Happy, neu -> Neutral, sad -> Sad) and disagreements are reported and counted in the manifest.

Preparation of one utterance:

- audio: the utterance's wav (or the span cut from the dialog's wav) read with soundfile, mixed to mono,
  resampled to 16 kHz (polyphase filter, when the file's rate differs) and stored int16. Shorter than 0.1 s: skipped.
- image: the frame on screen (the last frame whose timestamp is <= t) at the middle of the utterance's span,
  t = (start + end) / 2 with EmoEvaluation's times, in the dialog's video decoded with PyAV (one pass per
  dialog); the whole frame, resized to ``size`` x ``size`` RGB (area filter), stored uint8, with the time
  used. A middle more than 0.5 s after the video's last frame skips the utterance (no other frame stands in).
- text: the transcription's text as written (an empty one skips the utterance).

Prepared layout (``OUT``): ``audio.npy`` (every waveform concatenated, int16) with ``audio_offsets.npy``
(N + 1), ``images.npy`` (N, 3, size, size) uint8, ``frame_times.npy`` (N,) seconds into the dialog's video,
``labels.npy`` (N,) int64, ``items.json`` (utterance, label, {protocol: split} per row), ``texts.json``,
``manifest.json`` (the protocol: split lists and their SHA-256, settings, counts per class and split, missing
and skipped utterances with their reasons, SHA-256 of every array) and ``SHA256SUMS``. Every array is opened
memory-mapped.

Resumable: the utterances of one dialog are prepared together into ``OUT/.parts/{dialog}.{key}.npz``
(written atomically, keyed by the settings, the utterances and the source files' size and time); a rerun
redoes only the dialogs without a part. The arrays are written to ``OUT/.assembling`` and renamed into place.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
import random
import re
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polymodal.data.base import DATASETS, MultimodalDataset
from polymodal.data.batch import Sample
from polymodal.data.datasets.av_clips import (
    SkipClip,
    carve_validation,
    check_cache_option,
    check_out,
    class_table,
    crop_flip_resize,
    prepared_folder,
    sha256_file,
    worker_pool,
    workers,
)
from polymodal.data.datasets.published_splits import read_list
from polymodal.data.prepare import Log, register_preparer
from polymodal.data.schema import Modality
from polymodal.paths import default_data_root

NAME = "iemocap"
FOLDER = "iemocap"  # prepared data under $POLYMODAL_DATA
CLASSES = ("Angry", "Happy", "Neutral", "Sad")
LISTS = ("mla/my_train_iemo.txt", "mla/my_test_iemo.txt")
EMOTION_CODES = {"ang": "Angry", "hap": "Happy", "exc": "Happy", "neu": "Neutral", "sad": "Sad"}
LAYOUT_VERSION = "iemocap-v1"
ARRAYS = ("audio", "audio_offsets", "images", "frame_times", "labels")
SESSIONS = tuple(f"Session{k}" for k in range(1, 6))
OBTAIN = ("IEMOCAP is not downloaded by polymodal. Request the release (IEMOCAP_full_release) from SAIL, University "
          "of Southern California: https://sail.usc.edu/iemocap/iemocap_release.htm; it is licensed for research "
          "use only under the IEMOCAP license agreement, which forbids redistribution. Then run `polymodal prepare "
          "iemocap --raw DIR` with DIR holding Session1/ ... Session5/")

_EMO_LINE = re.compile(r"^\[\s*(\d+(?:\.\d+)?)\s*-\s*(\d+(?:\.\d+)?)\s*\]\s+(\S+)\s+(\S+)\s+\[")
_TRANSCRIPT_LINE = re.compile(r"^(\S+)\s+\[\s*(\d+(?:\.\d+)?)\s*-\s*(\d+(?:\.\d+)?)\s*\]:\s?(.*)$")
_UTTERANCE = re.compile(r"^Ses(\d\d)[FM]_\S+_[FM]\w*$")


@dataclass(frozen=True)
class UtteranceSettings:
    """How one utterance is turned into arrays (module docstring); recorded in the manifest."""

    sample_rate: int = 16000
    size: int = 224
    frame: str = "middle of the utterance's span"
    min_audio_s: float = 0.1  # shorter audio is "too short" and the utterance is skipped
    max_frame_gap_s: float = 0.5  # a middle further than this after the video's last frame skips the utterance


@dataclass
class Utterance:
    """One listed utterance with what it is made from (``absent``: why it cannot be, when files are missing)."""

    utt_id: str
    label: int
    splits: dict[str, str]
    dialog: str = ""
    start: float = 0.0
    end: float = 0.0
    text: str = ""
    video: Path | None = None
    audio: Path | None = None
    audio_is_dialog: bool = False  # ``audio`` is the dialog's wav, cut at [start, end]
    absent: str = ""


@dataclass
class UtterancePlan:
    """What the preparer checked before writing: the utterances found, and those the raw copy lacks."""

    items: list[Utterance]
    missing: list[Utterance] = field(default_factory=list)


def counts(items: Sequence[Utterance]) -> Counter:
    """Utterances per (protocol, split, label)."""
    return Counter((proto, split, u.label) for u in items for proto, split in u.splits.items())


def release_folder(raw: Path) -> Path:
    """The folder holding the SessionK/ folders (DIR or one level below); FileNotFoundError says where to get it."""
    for cand in (raw, *sorted(p for p in raw.iterdir() if p.is_dir())):
        if any((cand / s).is_dir() for s in SESSIONS):
            return cand
    raise FileNotFoundError(f"polymodal prepare iemocap: {raw} holds no Session1/ ... Session5/ folders (at its top "
                            f"or one level below). {OBTAIN}")


def _files(folder: Path, pattern: str) -> list[Path]:
    return sorted(p for p in folder.glob(pattern) if p.is_file() and not p.name.startswith("._"))


def read_evaluation(path: Path) -> dict[str, tuple[float, float, str]]:
    """utterance -> (start, end, categorical code) from one ``dialog/EmoEvaluation/{dialog}.txt``."""
    out: dict[str, tuple[float, float, str]] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.startswith("["):
            continue  # the header, blank lines and the annotators' lines
        m = _EMO_LINE.match(line)
        if m is None:
            raise ValueError(f"IEMOCAP: {path}, line {n}: {line!r}; expected '[start - end]<TAB>utterance<TAB>"
                             "code<TAB>[v, a, d]' as in the release's EmoEvaluation files")
        out[m.group(3)] = (float(m.group(1)), float(m.group(2)), m.group(4))
    return out


def read_transcription(path: Path) -> dict[str, str]:
    """utterance -> text from one ``dialog/transcriptions/{dialog}.txt`` (lines of other forms are not read)."""
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        m = _TRANSCRIPT_LINE.match(line.strip())
        if m is not None:
            out[m.group(1)] = m.group(4).strip()
    return out


def _session_of(utt_id: str) -> str | None:
    m = _UTTERANCE.match(utt_id)
    return f"Session{int(m.group(1))}" if m else None


def read_protocol() -> tuple[list[tuple[str, int, str]], dict[str, Any]]:
    """(utterance, label, split) of the MLA lists and the protocol record; ValueError names a bad line."""
    record: dict[str, Any] = {"classes": list(CLASSES), "lists": {}, "label_check": EMOTION_CODES}
    rows = []
    for split, rel in zip(("train", "test"), LISTS, strict=True):
        lines, digest = read_list(rel)
        record["lists"][rel] = {"protocol": "mla", "split": split, "rows": len(lines), "sha256": digest}
        for n, line in enumerate(lines, 1):
            parts = line.split()
            utt = parts[0].removesuffix(".mp4") if parts else ""
            if len(parts) != 2 or parts[1] not in CLASSES or _session_of(utt) is None:
                raise ValueError(f"IEMOCAP list {rel}, line {n}: {line!r}; expected 'SesNN..._F000.mp4 Label' with "
                                 f"Label one of {', '.join(CLASSES)}")
            rows.append((utt, CLASSES.index(parts[1]), split))
    return rows, record


def plan(raw: Path, log: Log) -> tuple[UtterancePlan, dict[str, Any]]:
    """The listed utterances found in ``raw`` and those missing (with why), the label check and the per-class
    comparison, all logged before anything is written."""
    root = release_folder(raw)
    sessions = [s for s in SESSIONS if (root / s).is_dir()]
    evaluations: dict[str, tuple[float, float, str]] = {}
    texts: dict[str, str] = {}
    videos: dict[str, Path] = {}
    for s in sessions:
        dialog = root / s / "dialog"
        if not (dialog / "EmoEvaluation").is_dir() or not (dialog / "transcriptions").is_dir():
            raise FileNotFoundError(
                f"polymodal prepare iemocap: {root / s} has no dialog/EmoEvaluation/ and dialog/transcriptions/ "
                "folders. Expected the release's layout: SessionK/dialog/EmoEvaluation/{dialog}.txt, "
                "SessionK/dialog/transcriptions/{dialog}.txt, SessionK/dialog/avi/DivX/{dialog}.avi and "
                f"SessionK/sentences/wav/{{dialog}}/{{utterance}}.wav (or SessionK/dialog/wav/{{dialog}}.wav). {OBTAIN}")
        for f in _files(dialog / "EmoEvaluation", "*.txt"):
            evaluations.update(read_evaluation(f))
        for f in _files(dialog / "transcriptions", "*.txt"):
            texts.update(read_transcription(f))
        for f in _files(dialog / "avi", "**/*.avi"):
            if f.stem not in videos or f.parent.name == "DivX":
                videos[f.stem] = f
    rows, record = read_protocol()
    items, missing, disagree = [], [], []
    from_dialog_wav = 0
    for utt, label, split in rows:
        session = _session_of(utt)
        dialog = utt.rsplit("_", 1)[0]
        u = Utterance(utt, label, {"mla": split}, dialog)
        if session not in sessions:
            u.absent = f"no {session}/ folder"
        elif utt not in evaluations:
            u.absent = f"not in {session}/dialog/EmoEvaluation/{dialog}.txt"
        elif utt not in texts:
            u.absent = f"no line in {session}/dialog/transcriptions/{dialog}.txt"
        elif dialog not in videos:
            u.absent = f"no {session}/dialog/avi/DivX/{dialog}.avi"
        else:
            sentence_wav = root / str(session) / "sentences" / "wav" / dialog / f"{utt}.wav"
            dialog_wav = root / str(session) / "dialog" / "wav" / f"{dialog}.wav"
            if sentence_wav.is_file():
                u.audio = sentence_wav
            elif dialog_wav.is_file():
                u.audio, u.audio_is_dialog = dialog_wav, True
            else:
                u.absent = f"neither {session}/sentences/wav/{dialog}/{utt}.wav nor {session}/dialog/wav/{dialog}.wav"
        if u.absent:
            missing.append(u)
            continue
        u.start, u.end, code = evaluations[utt]
        u.text, u.video = texts[utt], videos[dialog]
        from_dialog_wav += u.audio_is_dialog
        if EMOTION_CODES.get(code) != CLASSES[label]:
            disagree.append(f"{utt}: list {CLASSES[label]}, EmoEvaluation {code!r}")
        items.append(u)
    record["label_disagreements"] = len(disagree)
    record["audio_cut_from_dialog_wav"] = from_dialog_wav
    log(f"{root}: {len(items)} of the {len(rows)} listed utterances have their span, transcription, audio and "
        f"video; {len(missing)} missing ({len(sessions)} of 5 sessions present); {from_dialog_wav} cut from the "
        "dialog's wav")
    if disagree:
        log(f"iemocap: {len(disagree)} listed label(s) differ from EmoEvaluation's categorical label, e.g. "
            f"{disagree[0]}; the list's label is used (it is the published protocol)")
    if not items:
        raise FileNotFoundError(f"polymodal prepare iemocap: none of the {len(rows)} listed utterances has its "
                                f"EmoEvaluation span, transcription, audio and video under {root}. {OBTAIN}")
    if missing:
        why = Counter(re.sub(r"Ses\w+", "...", u.absent) for u in missing).most_common(3)
        log(f"iemocap: the raw copy lacks {len(missing)} listed utterance(s) (e.g. {missing[0].utt_id}: "
            f"{missing[0].absent}; most common: {'; '.join(f'{n} x {w}' for w, n in why)}); counts per class that "
            f"differ from the protocol:\n{class_table(counts([*items, *missing]), counts(items), CLASSES)}\n"
            "They are skipped; the prepared copy is marked incomplete.")
    return UtterancePlan(items, missing), {"dataset": "IEMOCAP", "split_source": record, "raw": str(root)}


# ----------------------------------------------------------------------------------------------- decoding


def frames_at(path: Path, targets: Sequence[float], s: UtteranceSettings) -> tuple[list[np.ndarray | None],
                                                                                    np.ndarray, float]:
    """The frame on screen at each time of ``targets`` (seconds) in one pass over the video: (3, size, size)
    uint8 arrays (None for a time more than ``max_frame_gap_s`` after the last frame), the times used and the
    last frame's time. A time before the first frame takes the first frame. SkipClip: unreadable video."""
    import av

    order = sorted(range(len(targets)), key=lambda i: targets[i])
    out: list[np.ndarray | None] = [None] * len(targets)
    used = np.full(len(targets), np.nan, dtype=np.float32)

    def grab(frame: Any) -> np.ndarray:
        return frame.reformat(width=s.size, height=s.size, format="rgb24", interpolation="AREA").to_ndarray() \
            .transpose(2, 0, 1)

    prev: Any = None
    prev_t = -math.inf
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise SkipClip("the dialog's video file has no video track")
            k = 0
            for frame in container.decode(container.streams.video[0]):
                t = float(frame.time) if frame.time is not None else prev_t + 1e-3
                while k < len(order) and t > targets[order[k]] + 1e-6:
                    src, src_t = (prev, prev_t) if prev is not None else (frame, t)
                    out[order[k]], used[order[k]] = grab(src), src_t
                    k += 1
                prev, prev_t = frame, t
                if k == len(order):
                    break
            if prev is None:
                raise SkipClip("the dialog's video track holds no frame")
            for i in order[k:]:
                if targets[i] - prev_t <= s.max_frame_gap_s:
                    out[i], used[i] = grab(prev), prev_t
    except SkipClip:
        raise
    except Exception as e:  # av.error.* on damaged containers
        raise SkipClip(f"unreadable video {path.name} ({type(e).__name__}: {e})") from e
    return out, used, prev_t


def utterance_audio(u: Utterance, sample_rate: int) -> np.ndarray:
    """Mono float32 waveform of an utterance at ``sample_rate`` Hz: its own wav, or its span of the dialog's wav
    (soundfile; resampled with a polyphase filter when the file's rate differs). SkipClip: unreadable."""
    import soundfile as sf

    if u.audio is None:
        raise SkipClip("no audio file")
    try:
        if u.audio_is_dialog:
            rate = int(sf.info(str(u.audio)).samplerate)
            data, _ = sf.read(str(u.audio), start=int(round(u.start * rate)), stop=int(round(u.end * rate)),
                              dtype="float32", always_2d=True)
        else:
            data, rate = sf.read(str(u.audio), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises RuntimeError / LibsndfileError on damaged files
        raise SkipClip(f"unreadable audio {u.audio.name} ({type(e).__name__}: {e})") from e
    wave = data.mean(axis=1)
    if wave.size and rate != sample_rate:
        from scipy.signal import resample_poly

        g = math.gcd(int(rate), sample_rate)
        wave = resample_poly(wave.astype(np.float64), sample_rate // g, int(rate) // g).astype(np.float32)
    return np.clip(wave, -1.0, 1.0)


def _dialog_work(args: tuple[str, list[Utterance], UtteranceSettings, str]) -> tuple[str, dict[str, str]]:
    """Prepare the utterances of one dialog into its part file (atomically); returns (dialog, skip reasons)."""
    dialog, utts, s, part = args
    reasons: dict[str, str] = {}
    middles = [(u.start + u.end) / 2 for u in utts]
    images = np.zeros((len(utts), 3, s.size, s.size), dtype=np.uint8)
    times = np.zeros(len(utts), dtype=np.float32)
    try:
        if utts[0].video is None:
            raise SkipClip("no video file")
        frames, used, last = frames_at(utts[0].video, middles, s)
    except SkipClip as e:
        frames, used, last = [None] * len(utts), times, -1.0
        reasons = {u.utt_id: str(e) for u in utts}
    waves = []
    for i, u in enumerate(utts):
        wave = np.zeros(0, dtype=np.int16)
        if u.utt_id not in reasons:
            try:
                w = utterance_audio(u, s.sample_rate)
                if frames[i] is None:
                    raise SkipClip(f"the utterance's middle ({middles[i]:.2f} s) is after the video's last frame "
                                   f"({last:.2f} s)")
                if w.size < s.min_audio_s * s.sample_rate:
                    raise SkipClip(f"audio too short ({w.size / s.sample_rate:.3f} s < {s.min_audio_s} s)")
                if not u.text.strip():
                    raise SkipClip("empty transcription")
                wave = np.round(w * 32767.0).astype(np.int16)
                images[i], times[i] = frames[i], used[i]
            except SkipClip as e:
                reasons[u.utt_id] = str(e)
        waves.append(wave)
    tmp = f"{part}.{os.getpid()}.tmp.npz"
    np.savez(tmp, audio=np.concatenate(waves), lengths=np.array([len(w) for w in waves], dtype=np.int64),
             images=images, frame_times=times, reasons=np.array(json.dumps(reasons)))
    os.replace(tmp, part)
    return dialog, reasons


def _fingerprint(dialog: str, utts: Sequence[Utterance], s: UtteranceSettings) -> str:
    parts = [json.dumps({"layout": LAYOUT_VERSION, **asdict(s)}, sort_keys=True), dialog]
    files = {p for u in utts for p in (u.video, u.audio) if p is not None}
    for p in sorted(files):
        st = p.stat()
        parts.append(f"{p.name}:{st.st_size}:{st.st_mtime_ns}")
    parts += [f"{u.utt_id}:{u.start}:{u.end}:{u.audio_is_dialog}:{u.text}" for u in utts]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def prepare_utterances(plan: UtterancePlan, out: Path, protocol: dict[str, Any], log: Log,
                       settings: UtteranceSettings | None = None) -> dict[str, Any]:
    """Prepare every utterance of ``plan`` into ``out`` (module docstring); returns the report."""
    s = settings or UtteranceSettings()
    check_out(out, NAME)
    out.mkdir(parents=True, exist_ok=True)
    by_dialog: dict[str, list[Utterance]] = defaultdict(list)
    for u in sorted(plan.items, key=lambda u: (u.dialog, u.utt_id)):
        by_dialog[u.dialog].append(u)
    keys = {d: _fingerprint(d, us, s) for d, us in by_dialog.items()}
    inputs = hashlib.sha256(json.dumps([protocol, sorted(keys.items()),
                                        [(u.utt_id, u.absent) for u in plan.missing]], sort_keys=True,
                                       default=str).encode()).hexdigest()
    manifest_path = out / "manifest.json"
    if manifest_path.is_file():
        old = json.loads(manifest_path.read_text(encoding="utf-8"))
        if old.get("inputs_sha256") == inputs and all((out / f"{a}.npy").is_file() for a in ARRAYS):
            log(f"{out}: already prepared from these files with these settings; nothing to do")
            return {**old["report"], "reused": True}
    parts = out / ".parts"
    parts.mkdir(exist_ok=True)
    names = {d: str(parts / f"{d}.{keys[d]}.npz") for d in by_dialog}
    todo = [(d, us, s, names[d]) for d, us in by_dialog.items() if not Path(names[d]).is_file()]
    log(f"{NAME}: {len(plan.items)} utterances of {len(by_dialog)} dialogs; {len(by_dialog) - len(todo)} dialogs "
        f"already prepared in {parts} (resumed), {len(todo)} to decode with {workers()} process(es)")
    start = time.perf_counter()
    if todo:
        with worker_pool(min(workers(), len(todo))) as pool:
            for i, (_, _) in enumerate(pool.map(_dialog_work, todo), 1):
                rate = i / max(time.perf_counter() - start, 1e-9)
                log(f"  [{'#' * (20 * i // len(todo)):<20s}] {i}/{len(todo)} dialogs, {rate:.2f} dialogs/s, "
                    f"eta {(len(todo) - i) / rate:.0f} s")
    elapsed = time.perf_counter() - start
    skipped: dict[str, str] = {}
    for d in by_dialog:
        with np.load(names[d]) as z:
            skipped.update(json.loads(str(z["reasons"])))
    kept = [u for us in by_dialog.values() for u in us if u.utt_id not in skipped]
    if not kept:
        raise ValueError(f"polymodal prepare {NAME}: no utterance could be prepared; e.g. {next(iter(skipped.items()))}")
    asm = out / ".assembling"
    if asm.exists():
        shutil.rmtree(asm)
    asm.mkdir()
    offsets = np.zeros(len(kept) + 1, dtype=np.int64)
    row = 0
    for d, us in by_dialog.items():
        with np.load(names[d]) as z:
            lengths = z["lengths"]
        for j, u in enumerate(us):
            if u.utt_id not in skipped:
                offsets[row + 1] = offsets[row] + lengths[j]
                row += 1
    audio = np.lib.format.open_memmap(asm / "audio.npy", "w+", np.int16, (int(offsets[-1]),))
    images = np.lib.format.open_memmap(asm / "images.npy", "w+", np.uint8, (len(kept), 3, s.size, s.size))
    times = np.zeros(len(kept), dtype=np.float32)
    row = 0
    for d, us in by_dialog.items():
        with np.load(names[d]) as z:
            starts = np.concatenate([[0], np.cumsum(z["lengths"])])
            for j, u in enumerate(us):
                if u.utt_id in skipped:
                    continue
                audio[offsets[row]:offsets[row + 1]] = z["audio"][starts[j]:starts[j + 1]]
                images[row], times[row] = z["images"][j], z["frame_times"][j]
                row += 1
    audio.flush()
    images.flush()
    del audio, images
    np.save(asm / "audio_offsets.npy", offsets)
    np.save(asm / "frame_times.npy", times)
    np.save(asm / "labels.npy", np.array([u.label for u in kept], dtype=np.int64))
    (asm / "items.json").write_text(json.dumps([[u.utt_id, u.label, u.splits] for u in kept]), encoding="utf-8")
    (asm / "texts.json").write_text(json.dumps([u.text for u in kept], ensure_ascii=False), encoding="utf-8")
    expected, found = counts([*plan.items, *plan.missing]), counts(kept)
    report = {"dataset": NAME, "out": str(out), "utterances": len(kept), "protocol_utterances": sum(expected.values()),
              "missing": len(plan.missing), "skipped": len(skipped),
              "label_disagreements": protocol["split_source"].get("label_disagreements", 0),
              "seconds": round(elapsed, 1)}
    manifest = {
        "dataset": NAME, "layout": LAYOUT_VERSION, "protocol": protocol, "settings": asdict(s),
        "counts": {"mla": {sp: {CLASSES[k]: found[("mla", sp, k)] for k in range(len(CLASSES))}
                           for sp in ("train", "test")}},
        "complete": not plan.missing and not skipped,
        "missing": [{"utterance": u.utt_id, "class": CLASSES[u.label], "splits": u.splits, "reason": u.absent}
                    for u in plan.missing],
        "skipped": [{"utterance": k, "reason": r} for k, r in sorted(skipped.items())],
        "arrays_sha256": {a: sha256_file(asm / f"{a}.npy") for a in ARRAYS}, "inputs_sha256": inputs,
        "report": report,
    }
    if not manifest["complete"]:
        manifest["differences"] = class_table(expected, found, CLASSES)
    (asm / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    files = [*(f"{a}.npy" for a in ARRAYS), "items.json", "texts.json", "manifest.json"]
    (asm / "SHA256SUMS").write_text("".join(f"{sha256_file(asm / f)}  ./{f}\n" for f in files), encoding="utf-8")
    for f in (*files, "SHA256SUMS"):
        os.replace(asm / f, out / f)
    asm.rmdir()
    shutil.rmtree(parts)
    for k, r in sorted(skipped.items()):
        log(f"  skipped {k}: {r}")
    if not manifest["complete"]:
        log(f"{NAME}: the prepared copy differs from the protocol ({len(plan.missing)} missing, {len(skipped)} "
            f"skipped):\n{manifest['differences']}\nThe dataset refuses to load it unless data.options."
            "allow_incomplete is true (and then says so in every run's provenance)")
    log(f"{NAME}: {len(kept)} utterances written to {out} in {elapsed:.1f} s")
    return report


@register_preparer(NAME, obtain=OBTAIN)
def prepare_iemocap(raw: Path, out: Path | None, log: Log) -> dict[str, Any]:
    """Check an IEMOCAP copy against the MLA lists and EmoEvaluation, then prepare it (module docstring)."""
    p, protocol = plan(raw, log)
    return prepare_utterances(p, out if out is not None else default_data_root() / FOLDER, protocol, log)


HINT = f"Run `polymodal prepare iemocap --raw DIR` first (or set data.root to its --out folder). {OBTAIN}"


class IEMOCAP(MultimodalDataset):
    """One split of prepared IEMOCAP (module docstring): audio waveform, one frame, transcription tokens.

    The MLA lists have train and test only; validation is ``val_fraction`` of each class of the training list
    (seeded by ``val_seed``), so model selection never sees the test list. Audio is the first
    ``audio_seconds`` of the utterance, zero-padded when shorter (the encoder computes 128 log-mel bands, 25 ms
    windows every 10 ms); training images get a random resized crop and a horizontal flip."""

    def __init__(self, folder: Path, split: str, val_fraction: float = 0.1, val_seed: int = 0,
                 audio_seconds: float = 10.0, image_size: int | None = None, max_length: int = 64,
                 vocab_size: int = 30000, augment: bool | None = None, allow_incomplete: bool = False) -> None:
        from polymodal.data.text import HashingWordTokenizer

        if split not in ("train", "val", "test"):
            raise ValueError(f"{NAME} dataset: split {split!r}; expected train, val or test")
        if not 0.0 < float(val_fraction) < 1.0:
            raise ValueError(f"{NAME} dataset: data.options.val_fraction={val_fraction}; expected a number in (0, 1)")
        manifest_path = folder / "manifest.json"
        if not manifest_path.is_file():
            raise FileNotFoundError(f"{NAME} dataset: the prepared data is absent: {manifest_path} does not exist. {HINT}")
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if manifest.get("layout") != LAYOUT_VERSION:
            raise ValueError(f"{NAME} dataset: {folder} has layout {manifest.get('layout')!r}, this version reads "
                             f"{LAYOUT_VERSION!r}; run `polymodal prepare {NAME}` again")
        if not manifest["complete"] and not allow_incomplete:
            raise ValueError(f"{NAME} dataset: {folder} differs from the published protocol ({len(manifest['missing'])}"
                             f" utterances missing, {len(manifest['skipped'])} skipped):\n"
                             f"{manifest.get('differences', '')}\nRestore the files and prepare again, or set "
                             "data.options.allow_incomplete=true to train on it anyway (the difference is then "
                             "recorded in the run's provenance)")
        items = json.loads((folder / "items.json").read_text(encoding="utf-8"))
        self.texts = json.loads((folder / "texts.json").read_text(encoding="utf-8"))
        self.arrays = {a: np.load(folder / f"{a}.npy", mmap_mode="r") for a in ARRAYS}
        labels = np.asarray(self.arrays["labels"])
        if len(labels) != len(items) or self.arrays["images"].shape[0] != len(items) or len(self.texts) != len(items):
            raise ValueError(f"{NAME} dataset: {folder} is inconsistent ({len(items)} items, "
                             f"{self.arrays['images'].shape[0]} images, {len(self.texts)} texts); run `polymodal "
                             f"prepare {NAME}` again")
        listed = np.array([it[2].get("mla", "") for it in items])
        if split == "test":
            rows = np.flatnonzero(listed == "test")
        else:
            train, val = carve_validation(np.flatnonzero(listed == "train"), labels, float(val_fraction), int(val_seed))
            rows = train if split == "train" else val
        if not len(rows):
            raise ValueError(f"{NAME} dataset: the {split} split of {folder} is empty")
        s = manifest["settings"]
        self.sample_rate = int(s["sample_rate"])
        self.window = int(round(float(audio_seconds) * self.sample_rate))
        if self.window < 1:
            raise ValueError(f"{NAME} dataset: audio_seconds={audio_seconds}; expected a positive number of seconds")
        stored = int(s["size"])
        self.size = int(image_size or stored)
        if not 8 <= self.size <= stored:
            raise ValueError(f"{NAME} dataset: image_size={image_size}; expected 8 to the prepared size {stored}")
        self.tokenizer = HashingWordTokenizer(int(vocab_size), int(max_length))
        self.name, self.split, self.rows, self.item_ids = NAME, split, rows, [items[i][0] for i in rows]
        self.labels = labels[rows].copy()
        self.class_names, self.num_outputs = CLASSES, len(CLASSES)
        self.augment = split == "train" if augment is None else bool(augment)
        logmel = {"n_fft": int(0.025 * self.sample_rate), "hop_length": int(0.010 * self.sample_rate), "n_mels": 128}
        self.schema = (
            Modality("audio", "audio", (self.window,), sample_rate=self.sample_rate, representation="waveform",
                     extra={"logmel": logmel, "crop_s": float(audio_seconds), "padding": "zeros"}),
            Modality("image", "image", (3, self.size, self.size), representation="pixels",
                     extra={"frame": s["frame"]}),
            Modality("text", "text", (int(max_length),), representation="tokens",
                     extra={"vocab_size": int(vocab_size), "tokenizer": "hashing"}),
        )
        self.provenance = {"dataset": NAME, "folder": str(folder), "split": split, "size": len(rows),
                           "split_protocol": "mla",
                           "manifest": {k: manifest[k] for k in ("protocol", "settings", "counts", "complete",
                                                                 "arrays_sha256")},
                           "skipped": len(manifest["skipped"]), "missing": len(manifest["missing"]),
                           "validation": {"fraction": float(val_fraction), "seed": int(val_seed),
                                          "from": "the published training list, per class"},
                           "tokenizer": {"name": "hashing", "vocab_size": int(vocab_size), "max_length": int(max_length)},
                           "audio_seconds": float(audio_seconds), "image_size": self.size, "augment": self.augment}

    def __len__(self) -> int:
        return len(self.rows)

    def _audio(self, row: int) -> torch.Tensor:
        off = self.arrays["audio_offsets"]
        start, stop = int(off[row]), int(off[row + 1])
        out = np.zeros(self.window, dtype=np.float32)
        n = min(stop - start, self.window)
        out[:n] = np.asarray(self.arrays["audio"][start:start + n], dtype=np.float32) / 32767.0
        return torch.from_numpy(out)

    def _image(self, row: int, rng: random.Random) -> torch.Tensor:
        x = torch.from_numpy(np.array(self.arrays["images"][row], dtype=np.float32) / 255.0)[None]  # (1, 3, S, S)
        return crop_flip_resize(x, rng, self.size, self.augment)[0]

    def __getitem__(self, i: int) -> Sample:
        i = range(len(self))[i]
        row = int(self.rows[i])
        rng = random.Random(torch.randint(0, 2**31 - 1, ()).item()) if self.augment else random.Random(0)
        return {"inputs": {"audio": self._audio(row), "image": self._image(row, rng),
                           "text": self.tokenizer.encode(self.texts[row])},
                "label": int(self.labels[i]), "index": int(i)}


@DATASETS.register(NAME, tiny={})
def iemocap(split: str = "train", root: str | None = None, val_fraction: float = 0.1, val_seed: int = 0,
            audio_seconds: float = 10.0, image_size: int | None = None, max_length: int = 64,
            vocab_size: int = 30000, augment: bool | None = None, allow_incomplete: bool = False,
            cache_features: bool = True) -> IEMOCAP:
    """IEMOCAP (audio + middle frame + transcription, 4 emotions), prepared by `polymodal prepare iemocap`; MLA split."""
    check_cache_option(NAME, cache_features)
    return IEMOCAP(prepared_folder(root, FOLDER), split, val_fraction, val_seed, audio_seconds, image_size,
                   max_length, vocab_size, augment, allow_incomplete)


iemocap.__signature__ = inspect.signature(iemocap)  # type: ignore[attr-defined]

__all__ = ["CLASSES", "EMOTION_CODES", "IEMOCAP", "LISTS", "Utterance", "UtterancePlan", "UtteranceSettings",
           "frames_at", "iemocap", "plan", "prepare_iemocap", "prepare_utterances", "read_evaluation",
           "read_protocol", "read_transcription", "release_folder", "utterance_audio"]
