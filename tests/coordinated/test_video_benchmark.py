"""benchmarks/coordinated.py's test videos: the digit orders it scores against are those in the files."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np

from .._benchmarks import load_benchmark


def _seconds(path: Path, fps: int) -> list[np.ndarray]:
    """The first frame of every second of a video, as grey pixels."""
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="gray").astype(np.float32) for f in container.decode(video=0)]
    return frames[::fps]


def test_orders_describe_the_files_when_the_videos_already_exist(tmp_path):
    bench = load_benchmark("coordinated")
    first = bench.make_videos(tmp_path, 3, fps=2)
    mtimes = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.mp4")}
    again = bench.make_videos(tmp_path, 3, fps=2)  # the files exist: reused, not rewritten
    assert again == first and json.loads((tmp_path / "orders.json").read_text()) == first
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.mp4")} == mtimes
    fresh = bench.make_videos(tmp_path / "fresh", 3, fps=2)
    assert fresh == first
    for v in range(3):  # the same digit images at the same seconds in both folders
        for a, b in zip(_seconds(tmp_path / f"digits_{v:02d}.mp4", 2), _seconds(tmp_path / "fresh" / f"digits_{v:02d}.mp4", 2),
                        strict=True):
            assert np.abs(a - b).mean() < 2.0
    # a stale orders.json (videos written from other draws) makes them be written again
    (tmp_path / "orders.json").write_text(json.dumps([[9, 8, 7, 6, 5, 4, 3, 2, 1, 0]] * 3))
    assert bench.make_videos(tmp_path, 3, fps=2) == first
    assert all(p.stat().st_mtime_ns != mtimes[p.name] for p in tmp_path.glob("*.mp4"))
