"""Speed of CREMA-D-style preparation: clips per second of `polymodal prepare` on generated clips of realistic size.

Clips as in the CREMA-D release: FLV1 video of 480 x 360 at 30 fps (with pixel noise, so the codec works as on
camera footage) and a 16 kHz 16-bit mono .wav, lengths drawn uniformly from 2-3 s (seeded). Each setting
prepares the same clips from scratch into a new folder (decode, 3 frames at 1 fps resized to 224 x 224,
audio resampled and stored, assembly of the memory-mapped arrays, checksums), once per repeat; the number
is clips / wall-clock seconds of the whole `prepare_clips` call. Writes benchmarks/results/prepare_speed.md and
.json.

    python benchmarks/prepare_speed.py [--clips 24] [--repeats 3] [--workers 1,2]

What it shows: the throughput of the decoding pipeline on this machine's cores, and how it scales with worker
processes. What it cannot show: the speed on the real release (its files are read from disk, some clips are
longer, the codec settings differ), nor anything about the accuracy of models trained on the result.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from polymodal.bench.results import ResultRow, write_results
from polymodal.data.datasets.av_clips import Clip, Plan, prepare_clips
from polymodal.data.datasets.cremad import CLASSES
from polymodal.data.datasets.fake_av import write_video, write_wav

HERE = Path(__file__).resolve().parent


TITLE = "Speed of CREMA-D-style preparation"


def notes(rows: list[ResultRow]) -> str:
    """The note under the table, computed from the rows alone (so the table is rebuilt from the JSON)."""
    best = max(rows, key=lambda row: row.mean)
    return (f"Best: {best.mean:.1f} clips/s ({best.variant}); at that rate the 7442 CREMA-D clips take about "
            f"{7442 / best.mean / 60:.0f} min on this machine. With a load average above the core count, other jobs "
            "took most of the CPU: these are lower bounds, and the spread between repeats reflects the load.")


def make_clips(folder: Path, n: int, seed: int = 0) -> list[Clip]:
    rng = np.random.default_rng(seed)
    clips = []
    for i in range(n):
        seconds = float(rng.uniform(2.0, 3.0))
        clip_id = f"{1001 + i}_IEO_{CLASSES[i % 6]}_XX"
        write_video(folder / "VideoFlash" / f"{clip_id}.flv", seconds, "flv", size=(360, 480), noise=8.0)
        write_wav(folder / "AudioWAV" / f"{clip_id}.wav", seconds, 16000)
        clips.append(Clip(clip_id, i % 6, {"bench": "train" if i % 4 else "test"},
                          folder / "VideoFlash" / f"{clip_id}.flv", folder / "AudioWAV" / f"{clip_id}.wav"))
    return clips


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=24)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workers", default="1,2", help="comma-separated process counts")
    p.add_argument("--out", default=str(HERE / "results"))
    args = p.parse_args(argv)
    counts = [int(w) for w in args.workers.split(",")]
    load = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory(prefix="prepare-speed-") as tmp:
        clips = make_clips(Path(tmp) / "raw", args.clips)
        seconds = {w: [] for w in counts}
        for r in range(args.repeats):
            for w in counts:  # alternated, so that drift of the machine hits every setting
                os.environ["POLYMODAL_PREPARE_WORKERS"] = str(w)
                out = Path(tmp) / f"out-{w}-{r}"
                t0 = time.perf_counter()
                prepare_clips("cremad-bench", Plan(clips), out, {"bench": True}, CLASSES, lambda _: None)
                seconds[w].append(time.perf_counter() - t0)
                shutil.rmtree(out)
        for w in counts:
            rows.append(ResultRow("prepare", "cremad-style", "samples_per_sec", [args.clips / s for s in seconds[w]],
                                  variant=f"{w}-process" + ("es" if w > 1 else "")))
    command = "python benchmarks/prepare_speed.py " + " ".join(argv if argv is not None else sys.argv[1:])
    _, md_path = write_results(
        "prepare_speed", rows, command=command.strip(), out_dir=args.out, title=TITLE,
        protocol=f"{args.clips} generated clips (FLV1 480x360 30 fps with pixel noise + 16 kHz mono wav, 2-3 s), "
                 f"prepared from scratch (3 frames at 1 fps to 224x224, audio to int16, memory-mapped assembly, "
                 f"checksums); samples_per_sec = clips per wall-clock second; {args.repeats} repeats per setting, "
                 f"alternated; {os.cpu_count()} CPU core(s), 1-minute load average {load:.1f} at the start (other jobs "
                 "on the machine take their share)",
        notes=notes(rows),
    )
    print(md_path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
