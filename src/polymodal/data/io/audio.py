"""Audio files through soundfile (WAV, FLAC, OGG, ...), with the checks soundfile does not make.

soundfile reads a truncated WAV silently (half a file gives half the frames) and a header-only
file as 0 frames. :func:`read_audio` parses the RIFF header itself, compares the frames it promises
with the frames present, and rejects truncated and empty files.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from polymodal.data.io import MediaError, check_file


@dataclass(frozen=True)
class WavHeader:
    """What a RIFF/WAVE header declares. ``data_bytes`` is None when the writer left it unset."""

    channels: int
    sample_rate: int  # Hz
    block_align: int  # bytes per frame (all channels)
    data_offset: int  # byte position of the first sample
    data_bytes: int | None  # size of the data chunk as declared in the header


def parse_wav_header(path: str | os.PathLike) -> WavHeader | None:
    """Parse the RIFF chunks of a WAV file up to its ``data`` chunk.

    Returns None for files that are not RIFF/WAVE (FLAC, OGG, RF64, ...), whose headers soundfile
    checks itself. Raises MediaError when a RIFF file ends before its ``fmt `` or ``data`` chunk.
    """
    p = Path(path)
    size = p.stat().st_size
    with p.open("rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
            return None
        endian = "<" if head[:4] == b"RIFF" else ">"
        fmt: tuple[int, int, int] | None = None
        pos = 12
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                missing = "'fmt ' chunk" if fmt is None else "'data' chunk"
                raise MediaError(
                    f"WAV file {p} ends after {size} bytes before its {missing}; the file is truncated or "
                    "damaged: re-copy or re-export it"
                )
            cid, csize = chunk[:4], struct.unpack(endian + "I", chunk[4:])[0]
            if cid == b"fmt ":
                body = f.read(min(csize, 16))
                if len(body) < 16:
                    raise MediaError(f"WAV file {p} has a short 'fmt ' chunk ({len(body)} bytes); re-export it")
                _, channels, rate, _, block_align, _ = struct.unpack(endian + "HHIIHH", body)
                fmt = (channels, rate, block_align)
                f.seek(pos + 8)
            elif cid == b"data":
                if fmt is None:
                    raise MediaError(f"WAV file {p} has its 'data' chunk before its 'fmt ' chunk; re-export it")
                declared = None if csize in (0, 0xFFFFFFFF) else csize  # streaming writers leave it unset
                return WavHeader(fmt[0], fmt[1], fmt[2], pos + 8, declared)
            pos += 8 + csize + (csize & 1)  # chunks are word aligned
            f.seek(pos)


def _expected_frames(p: Path, header: WavHeader | None) -> int | None:
    """Frames the header promises; raise if the file holds fewer bytes than it declares."""
    if header is None or header.data_bytes is None or header.block_align <= 0:
        return None
    present = max(0, p.stat().st_size - header.data_offset)
    want = header.data_bytes // header.block_align
    if present < header.data_bytes:
        have = present // header.block_align
        raise MediaError(
            f"WAV file {p} is truncated: its header promises {header.data_bytes} bytes of audio ({want} frames, "
            f"{want / max(header.sample_rate, 1):.3f} s) but the file holds {present} bytes ({have} frames); "
            "the copy or download was cut short: re-copy or re-export the file"
        )
    return want


def resample_audio(x: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Polyphase resampling along axis 0 (scipy's ``resample_poly``, anti-aliased). float32 out."""
    from scipy.signal import resample_poly  # scipy ships with scikit-learn, a dependency

    g = math.gcd(int(orig_sr), int(target_sr))
    return resample_poly(x, target_sr // g, orig_sr // g, axis=0).astype(np.float32)


def read_audio(
    path: str | os.PathLike,
    *,
    sample_rate: int | None = None,
    mono: bool = True,
    resample: bool = False,
    max_frames: int | None = None,
    max_seconds: float | None = None,
) -> tuple[np.ndarray, int]:
    """Read an audio file as float32.

    Returns ``(x, sr)``: ``x`` has shape (samples,) when ``mono`` (channels averaged), else
    (samples, channels); integer PCM is scaled to [-1, 1) (int16 ``v`` becomes ``v / 32768``
    exactly); ``sr`` is in Hz. With ``sample_rate`` given, a file at another rate raises unless
    ``resample`` is True, in which case it is resampled (polyphase) and ``sr == sample_rate``.

    ``max_frames`` (frames of the file) or ``max_seconds`` decode only the start of a long file: a 2-hour
    recording whose first 2 s are needed costs 2 s of decoding and memory. The header is still checked
    against the file size, so a truncated file is refused either way.

    Raises MediaNotFoundError (missing file) or MediaError (unreadable, truncated, empty, wrong rate).
    """
    p = check_file(path, "audio file")
    header = parse_wav_header(p)
    expected = _expected_frames(p, header)
    try:
        with sf.SoundFile(p) as f:
            sr, declared = f.samplerate, f.frames
            limit = max_frames
            if max_seconds is not None:
                limit = min(limit or declared, max(1, int(math.ceil(max_seconds * sr))))
            if limit is not None and limit < declared:
                x = f.read(limit, dtype="float32", always_2d=True)  # (samples, channels)
                expected = limit if expected is None else min(expected, limit)
                declared = limit
            else:
                x = f.read(dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, EOFError) as exc:
        raise MediaError(
            f"cannot decode audio file {p}: {exc}; the file is damaged or not in a format soundfile reads "
            "(WAV, FLAC, OGG, ...): re-export it"
        ) from exc
    expected = declared if expected is None else expected
    if len(x) == 0:
        raise MediaError(
            f"audio file {p} is empty (0 frames, header only); expected at least one sample: re-export it or "
            "drop it from the dataset"
        )
    if len(x) < expected:
        raise MediaError(
            f"audio file {p} is truncated: its header promises {expected} frames but only {len(x)} could be "
            "read; re-copy or re-export the file"
        )
    if sample_rate is not None and sr != sample_rate:
        if not resample:
            raise MediaError(
                f"audio file {p}: expected {sample_rate} Hz, got {sr} Hz; resample the file or set the sample "
                "rate option to match (or read with resample=True)"
            )
        x, sr = resample_audio(x, sr, sample_rate), sample_rate
    return (x.mean(axis=1, dtype=np.float32) if mono else x), int(sr)
