"""``polymodal align``: which span of a spoken digit string's audio belongs to which digit position of its
handwritten row (or of a known text), read off a trained run (docs/align_translate.md, "polymodal align").

The audio side is a speech-to-text run (``polymodal train configs/digitstrings_ctc.yaml``: ``model.fusion=ctc``
on the audio alone): its per-frame posteriors over the 10 digits and the CTC blank. The positions are the
digits of a handwritten row read by a handwriting run (``configs/digitstrings_ctc_image.yaml``: each 28-pixel
cell's digit posterior is the mean over its column tokens of their digit posteriors, renormalised), or the
one-hot digits of a given text. Two rules align them: ``ctc`` (forced alignment through the CTC topology,
blanks allowed between digits: :func:`polymodal.alignment.forced.ctc_forced_align`) and ``dtw`` (DTW on the
cost ``(1 - blank_t) * -log(d_t . q_k)``, optionally inside a Sakoe-Chiba band; frames with a blank posterior
above 1/2 count as blank).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polymodal.alignment.forced import BLANK, boundaries_of, ctc_forced_align, min_frames, segments_of
from polymodal.runpaths import RunPaths

METHODS = ("ctc", "dtw")
DIGITS = 10
MODALITIES = ("image", "text")  # what the audio is aligned to
EPS = 1e-6


@dataclass
class Alignment:
    """One string's alignment: ``labels`` (T,) the position of each audio frame (-1: blank), ``segments_ms``
    (L, 2) each position's span [start, stop) in ms, ``boundaries_ms`` (L - 1,) the cut between positions k
    and k + 1, ``digits`` the digit each position reads (the argmax of its posterior)."""

    digits: str
    labels: np.ndarray
    frame_ms: float
    segments_ms: np.ndarray
    boundaries_ms: np.ndarray
    method: str
    duration_ms: float
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        spans = []
        for k, (start, stop) in enumerate(self.segments_ms):
            held = np.flatnonzero(self.labels == k)
            spans.append({"position": k + 1, "digit": self.digits[k], "start_ms": round(float(start), 1),
                          "end_ms": round(float(stop), 1),
                          "frames": [int(held[0]), int(held[-1])] if len(held) else None})
        return {"digits": self.digits, "method": self.method, "frame_ms": self.frame_ms,
                "duration_ms": round(self.duration_ms, 1), "positions": spans,
                "boundaries_ms": [round(float(b), 1) for b in self.boundaries_ms],
                "frame_labels": self.labels.tolist(), **self.extra}

    def table(self) -> str:
        lines = [f"{len(self.digits)} positions ({self.digits}) over {self.duration_ms / 1000:.2f} s of audio "
                 f"({len(self.labels)} frames of {self.frame_ms:.0f} ms), method {self.method}:",
                 "position  digit  start_ms  end_ms  frames"]
        for row in self.to_dict()["positions"]:
            frames = "none" if row["frames"] is None else f"{row['frames'][0]}-{row['frames'][1]}"
            lines.append(f"{row['position']:>8}  {row['digit']:>5}  {row['start_ms']:>8.0f}  {row['end_ms']:>6.0f}  {frames}")
        lines.append("boundaries (ms): " + ", ".join(f"{b:.0f}" for b in self.boundaries_ms))
        return "\n".join(lines)


@dataclass
class CTCRun:
    """A trained ``ctc`` run of one modality: its model (eval mode) and that modality."""

    model: Any
    modality: Any
    run_dir: Path

    def posteriors(self, x: torch.Tensor) -> tuple[np.ndarray, int]:
        """(T, K + 1) per-frame posteriors (the K tokens, then the blank) of the frames that exist, for one input
        ``x`` (*the modality's shape), and the number of frames the model gives (padding included)."""
        from polymodal.data.batch import Batch
        from polymodal.tasks.sequence import EXTRA

        name = self.modality.name
        batch = Batch({name: x[None]}, {name: torch.ones(1, dtype=torch.bool)}, torch.zeros(1, dtype=torch.long),
                      torch.arange(1))
        with torch.no_grad():
            e = self.model(batch).extras[EXTRA][0]
        exists = e[:, -1] > 0.5
        return torch.softmax(e[:, :-1].double(), dim=-1)[exists].numpy(), int(e.shape[0])


def load_ctc_run(run_dir: str | os.PathLike, kind: str, option: str) -> CTCRun:
    """A ``ctc`` run reading the ``kind`` modality (audio or image) alone; clear errors for a folder that is not
    a run, a generator run, a run of another fusion and a run of another modality. ``option`` names where the
    run was given (for the messages)."""
    from polymodal.engine.runfolder import load_run

    config = "configs/digitstrings_ctc.yaml" if kind == "audio" else "configs/digitstrings_ctc_image.yaml"
    paths = RunPaths(run_dir)
    what = "a speech-to-text run" if kind == "audio" else "a handwriting-to-text run"
    if paths.generator.is_file():
        raise ValueError(f"{option} {paths.root} is a generator run (`polymodal generate`); `polymodal align` needs {what} "
                         f"here: `polymodal train {config}`")
    if not paths.config.is_file():
        raise FileNotFoundError(f"{option} {paths.root} is not a training run folder (it lacks {paths.config.name}); "
                                f"`polymodal align` needs {what} here: `polymodal train {config}`")
    run = load_run(paths.root)
    fusion = (run.config.get("model") or {}).get("fusion")
    if fusion != "ctc":
        raise ValueError(f"{option} {paths.root} is a run with model.fusion={fusion!r}, which gives no per-frame digit "
                         f"posteriors; `polymodal align` needs {what} (model.fusion=ctc, e.g. {config})")
    model, _, train = run.trained("best")
    mods = list(train.schema)
    if len(mods) != 1 or mods[0].kind != kind:
        hint = ("give the speech run first and the handwriting run as --image-run" if kind == "audio" else
                "--image-run takes a handwriting run; the speech run goes first")
        raise ValueError(f"{option} {paths.root} reads {[m.name for m in mods]}; here `polymodal align` needs a ctc run of "
                         f"the {kind} modality alone (data.options.modalities=[{kind}]): {hint}")
    if kind == "audio" and mods[0].representation not in ("logmel", "waveform"):
        raise ValueError(f"{option} {paths.root}: audio served as {mods[0].representation!r}; expected log-mel or waveform")
    return CTCRun(model, mods[0], paths.root)


# ----------------------------------------------------------------------------- inputs


def read_audio_file(path: str | os.PathLike, run: CTCRun) -> tuple[torch.Tensor, float]:
    """The run's input for an audio file (resampled to the run's rate, mono, zero-padded to the strings' 7.9 s)
    and the recording's duration in ms; refuses an empty, silent or over-long file."""
    from polymodal.data.datasets.digitstrings import read_string_audio

    rate = int(run.modality.sample_rate)
    x, n = read_string_audio(path, rate, "align")
    return audio_input(torch.from_numpy(x), run), 1000.0 * n / rate


def audio_input(wave: torch.Tensor, run: CTCRun) -> torch.Tensor:
    """A zero-padded waveform (MAX_SAMPLES,) as the run's audio input (log-mel when the run reads log-mel)."""
    if run.modality.representation != "logmel":
        return wave
    from polymodal.data.transforms import LogMel, LogMelConfig

    with torch.no_grad():
        return LogMel(LogMelConfig(**run.modality.extra["logmel"]))(wave[None])[0]


def read_row_file(path: str | os.PathLike) -> np.ndarray:
    """A handwritten row as (28, W) float32 in [0, 1] (white ink on black, as MNIST); refuses a picture of the
    wrong shape and a row without ink."""
    from PIL import Image, UnidentifiedImageError

    from polymodal.data.datasets.digitstrings import IMAGE_SIZE, MAX_DIGITS

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"image file {p} does not exist; give the row of handwritten digits as a PNG")
    try:
        with Image.open(p) as im:
            row = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"image file {p} cannot be read as a picture ({e}); give a grey-scale PNG") from None
    return check_row(row, str(p), IMAGE_SIZE, MAX_DIGITS)


def check_row(row: np.ndarray, name: str, size: int = 28, max_digits: int = 7) -> np.ndarray:
    """``row`` as (size, W) when it is a row of 1 to ``max_digits`` cells of ``size`` pixels ((size, W) or
    (1, size, W)) with some ink; a clear error naming ``name`` and the expected shape otherwise."""
    h, w = row.shape[-2:] if row.ndim >= 2 else (None, None)
    if row.ndim not in (2, 3) or (row.ndim == 3 and row.shape[0] != 1) or h != size or w % size or not 0 < w <= size * max_digits:
        raise ValueError(f"image row {name} has shape {row.shape}; expected ({size}, W) with W a multiple of {size} up "
                         f"to {size * max_digits} ({max_digits} digits of {size} x {size} pixels side by side, as the "
                         f"digitstrings rows)")
    row = row.reshape(size, w)
    if not (row > 0.05).any():
        raise ValueError(f"image row {name} is empty (no ink: every pixel below 0.05); white digits on black are expected")
    return row


def row_positions(row: np.ndarray, size: int = 28) -> int:
    """Digits in a row: the 28-pixel cells up to the last one with ink."""
    cells = (row.reshape(size, -1, size) > 0.05).any(axis=(0, 2))
    return int(np.flatnonzero(cells)[-1]) + 1


def image_positions(row: np.ndarray, run: CTCRun) -> np.ndarray:
    """(L, 10) digit posteriors of a row's positions from a handwriting ctc run: the mean over each cell's column
    tokens of their digit posteriors, renormalised over the digits."""
    from polymodal.data.datasets.digitstrings import IMAGE_SIZE

    length = row_positions(row, IMAGE_SIZE)
    full = np.zeros(tuple(run.modality.shape), dtype=np.float32)  # (1, 28, 196)
    full[0, :, : row.shape[1]] = row
    p, tokens = run.posteriors(torch.from_numpy(full))
    per_cell = tokens * IMAGE_SIZE / full.shape[-1]
    q = np.zeros((length, DIGITS))
    for k in range(length):
        lo, hi = int(round(k * per_cell)), int(round((k + 1) * per_cell))
        cell = p[lo:min(hi, len(p)), :DIGITS]
        q[k] = cell.mean(0) if len(cell) else 1.0 / DIGITS
    return q / q.sum(1, keepdims=True).clip(1e-30)


def text_positions(text: str) -> np.ndarray:
    """(L, 10) one-hot positions of a digit string; refuses an empty or over-long text or a non-digit."""
    from polymodal.data.datasets.digitstrings import MAX_DIGITS

    if not text:
        raise ValueError("the text to align to is empty: give the digits of the string, e.g. --to text:4821")
    if len(text) > MAX_DIGITS:
        raise ValueError(f"the text {text!r} has {len(text)} digits; digit strings hold at most {MAX_DIGITS}")
    if not text.isascii() or not text.isdigit():
        raise ValueError(f"the text {text!r} holds characters other than the digits 0-9")
    return np.eye(DIGITS)[[int(c) for c in text]]


def parse_target(spec: str) -> tuple[str, str]:
    """``image:ROW.png`` / ``text:DIGITS`` -> (modality, value); a bare ``image`` / ``text`` gives an empty value
    (a dataset sample's own row or digits)."""
    modality, _, value = str(spec).partition(":")
    if modality not in MODALITIES:
        raise ValueError(f"--to {spec!r}: unknown modality {modality!r}; the audio is aligned to an image row "
                         f"(image:ROW.png) or a text (text:DIGITS)")
    return modality, value


# ----------------------------------------------------------------------------- aligning


def align_posteriors(frames: np.ndarray, positions: np.ndarray, frame_ms: float, duration_ms: float,
                     method: str = "ctc", radius: int | None = None, shift: float = 0.0) -> Alignment:
    """Align per-frame posteriors (T, 11) to position posteriors (L, 10) with ``method`` (``ctc`` or ``dtw``);
    ``shift`` moves every boundary later by that many frames (a run whose spikes sit early in the digits)."""
    from polymodal.alignment.dtw import assignment, dtw

    if method not in METHODS:
        raise ValueError(f"alignment method {method!r}; expected one of {METHODS}")
    if radius is not None and method != "dtw":
        raise ValueError("--radius (a Sakoe-Chiba band) goes with --method dtw; the ctc method has no band")
    length = len(positions)
    if len(frames) < min_frames(positions):
        raise ValueError(f"the audio gives {len(frames)} frame(s) of {frame_ms:.0f} ms, too few for {length} digit "
                         f"positions ({min_frames(positions)} needed): the recording is too short for the row")
    if method == "ctc":
        labels, _ = ctc_forced_align(frames, positions)
    else:
        blank = frames[:, -1]
        d = frames[:, :DIGITS] / frames[:, :DIGITS].sum(1, keepdims=True).clip(1e-30)
        cost = (1 - blank)[:, None] * -np.log(d @ positions.T + EPS)
        labels = assignment(dtw(cost, radius)[1], len(frames))
        labels = np.where(blank > 0.5, BLANK, labels)
    if not (np.isfinite(shift) and abs(shift) <= len(frames)):
        raise ValueError(f"boundary shift {shift} frames: expected a number of frames within the recording's {len(frames)}")
    cuts = np.clip(boundaries_of(labels, length) + shift, 0.0, float(len(labels)))
    end = min(duration_ms / frame_ms, float(len(labels)))
    segments = segments_of(labels, length, end=end, shift=shift)
    digits = "".join(str(int(d)) for d in positions.argmax(1))
    return Alignment(digits, labels, frame_ms, segments * frame_ms, cuts * frame_ms, method, duration_ms)


def frame_ms_of(run: CTCRun, frames: int) -> float:
    """Milliseconds per output frame of a speech run: the strings' log-mel frames (20 ms) over its frames."""
    from polymodal.data.datasets.digitstrings import FRAME_MS, HOP, MAX_SAMPLES

    return FRAME_MS * round((MAX_SAMPLES // HOP + 1) / frames, 3)


def align_audio(run: CTCRun, audio: torch.Tensor, duration_ms: float, positions: np.ndarray, method: str = "ctc",
                radius: int | None = None, shift: float = 0.0) -> Alignment:
    """Align the run's audio input (one string) to the (L, 10) positions."""
    frames, total = run.posteriors(audio)
    return align_posteriors(frames, positions, frame_ms_of(run, total), duration_ms, method, radius, shift)


def truth_errors(alignment: Alignment, boundaries: np.ndarray, sample_rate: int) -> dict[str, Any]:
    """A dataset sample's true digit spans (ms) and the boundary errors of ``alignment`` against them."""
    from polymodal.alignment.metrics import boundary_errors

    onsets = np.round(alignment.boundaries_ms * sample_rate / 1000.0).astype(np.int64)
    err = boundary_errors(onsets, boundaries, 1, sample_rate)
    scale = 1000.0 / sample_rate
    return {"true_segments_ms": [[round(float(a) * scale, 1), round(float(b) * scale, 1)] for a, b in boundaries],
            "boundary_error_ms": [round(float(e), 1) for e in err["to_gap"]],
            "mean_boundary_error_ms": round(float(err["to_gap"].mean()), 1) if len(onsets) else 0.0}


__all__ = ["METHODS", "Alignment", "CTCRun", "align_audio", "align_posteriors", "audio_input", "check_row",
           "frame_ms_of", "image_positions", "load_ctc_run", "parse_target", "read_audio_file", "read_row_file",
           "row_positions", "text_positions", "truth_errors"]
