"""Generated media in the formats of the audio-visual releases, for the tests of ``polymodal prepare`` and
benchmarks/prepare_speed.py: real .wav written with soundfile, real .flv / .mp4 written with PyAV. Frame i of
every video has the grey level 3 * i (mod 256) plus, with ``noise``, seeded pixel noise (realistic encoding
cost), so a prepared frame names the time it was taken at."""

from __future__ import annotations

from pathlib import Path

import numpy as np

FPS = 30
SIZE = (48, 64)  # (H, W)


def write_video(path: Path, seconds: float, codec: str, audio_rate: int | None = None, tone_hz: float = 440.0,
                size: tuple[int, int] = SIZE, fps: int = FPS, noise: float = 0.0) -> None:
    """A clip of ``seconds`` at ``fps``, frame i grey level 3 * i (+ noise of std ``noise``); with ``audio_rate``
    also a sine audio track (AAC, stereo)."""
    import av

    rng = np.random.default_rng(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        v = c.add_stream(codec, rate=fps)
        v.width, v.height, v.pix_fmt = size[1], size[0], "yuv420p"
        a = None
        if audio_rate is not None:
            a = c.add_stream("aac", rate=audio_rate)
            a.layout = "stereo"
        for i in range(int(round(seconds * fps))):
            img = np.full((*size, 3), (3 * i) % 256, np.uint8)
            if noise:
                img = np.clip(img + rng.normal(0, noise, img.shape), 0, 255).astype(np.uint8)
            for p in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in v.encode():
            c.mux(p)
        if a is not None:
            n = int(seconds * audio_rate)
            t = np.arange(n) / audio_rate
            wave = (0.5 * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32)
            step = 1024
            for k in range(0, n, step):
                chunk = np.stack([wave[k:k + step], wave[k:k + step]])  # planar stereo
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout="stereo")
                frame.sample_rate = audio_rate
                for p in a.encode(frame):
                    c.mux(p)
            for p in a.encode():
                c.mux(p)


def write_wav(path: Path, seconds: float, rate: int, tone_hz: float = 440.0) -> None:
    """A 16-bit PCM sine of ``seconds`` at ``rate`` Hz, amplitude 0.5."""
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    sf.write(str(path), (0.5 * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32), rate, subtype="PCM_16")
