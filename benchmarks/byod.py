"""Bring-your-own-data round trip: avdigits-hard exported to files and read back through a manifest.

1. Exports every split of the registered ``avdigits-hard`` dataset as served (noisy audio, corrupted
   images) to files: 32-bit float WAV at 8 kHz (lossless) and 8-bit grey PNG (the [0, 1] pixels
   rounded to 1/255), plus ``manifest.csv`` (id, audio, image, split, digit).
2. Trains MLA on the manifest with the bench profile (default config) for each seed and compares its
   fused test accuracy with MLA on the registered dataset (read from ``balancing.json``, same profile,
   encoders and seeds): the difference should be within two seed standard deviations.
3. Measures data loading on the training split with caching on: the first read (building the
   dataset: decoding and log-mel) and the steady state (seconds to iterate one epoch of batches of 64
   after the first, model-free), for the registered dataset and for the manifest.

    python benchmarks/byod.py [--seeds 0,1,2] [--threads 1]

Writes benchmarks/results/byod.md and byod.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from PIL import Image

from polymodal.bench.results import ResultRow, write_results

HERE = Path(__file__).resolve().parent
WORK = HERE / "runs" / "byod"


def export(out: Path) -> Path:
    from polymodal.data.datasets.avdigits import AVDigits

    manifest = out / "manifest.csv"
    if manifest.is_file():
        return manifest
    lines = ["id,audio,image,split,digit"]
    for split in ("train", "val", "test"):
        ds = AVDigits("avdigits-hard", split, cache_features=False)
        audio, image = ds.tensor("audio").numpy(), ds.tensor("image").numpy()
        (out / split).mkdir(parents=True, exist_ok=True)
        for i in range(len(ds)):
            sid = f"{split}-{i:04d}"
            sf.write(out / split / f"{sid}.wav", audio[i], 8000, subtype="FLOAT")
            Image.fromarray((image[i, 0] * 255).round().astype(np.uint8), mode="L").save(out / split / f"{sid}.png")
            lines.append(f"{sid},{split}/{sid}.wav,{split}/{sid}.png,{split},{int(ds.labels[i])}")
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def loading(build, epochs: int = 3) -> tuple[float, list[float], int]:
    """(seconds to build the train split, seconds per later epoch of batches of 64, samples)."""
    from torch.utils.data import DataLoader

    t0 = time.perf_counter()
    ds = build()
    first = time.perf_counter() - t0
    loader = DataLoader(ds, batch_size=64, shuffle=True, collate_fn=ds.collate_fn(), generator=torch.Generator().manual_seed(0))
    times = []
    for _ in range(epochs):
        t = time.perf_counter()
        for _batch in loader:
            pass
        times.append(time.perf_counter() - t)
    return first, times[1:], len(ds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--threads", type=int, default=1)
    ns = ap.parse_args()
    torch.set_num_threads(ns.threads)
    seeds = [int(s) for s in ns.seeds.split(",")]
    manifest = export(WORK / "avdigits-hard-files")

    from polymodal.config import load_config
    from polymodal.data.base import build_dataset
    from polymodal.data.datasets.manifest import Manifest
    from polymodal.engine import train

    variants = {"manifest": [], "manifest-raw-pixels": ["data.options.image.normalize=false"]}
    accs: dict[str, dict[str, list[float]]] = {}
    for variant, extra in variants.items():
        acc = accs[variant] = {"fused_acc": [], "audio_acc": [], "image_acc": []}
        for seed in seeds:
            run = WORK / "runs" / f"{variant}-mla-seed{seed}"
            if not (run / "results.json").is_file():
                cfg = load_config(None, [f"data.manifest={manifest}", "data.label=digit", "data.options.id=id", f"seed={seed}",
                                         f"out_dir={run.parent}", f"name={run.name}", "trainer.progress=false",
                                         f"trainer.num_threads={ns.threads}", *extra])
                train(cfg)
            test = json.loads((run / "results.json").read_text())["test"]
            for k in acc:
                acc[k].append(float(test[k]))
    acc = accs["manifest"]
    balancing = json.loads((HERE / "results" / "balancing.json").read_text())
    registered = {r["metric"]: r["values"] for r in balancing["rows"]
                  if r["method"] == "mla" and r["dataset"] == "avdigits-hard" and "variant" not in r}
    reg_first, reg_steady, n = loading(lambda: build_dataset("avdigits-hard", "train"))
    man_first, man_steady, n2 = loading(lambda: Manifest(manifest, {"label": "digit", "id": "id"}).dataset("train"))
    rows = []
    for k in acc:
        rows.append(ResultRow("mla", "avdigits-hard", k, registered[k][: len(seeds)]))
        for variant, a in accs.items():
            rows.append(ResultRow("mla", "avdigits-hard", k, a[k], variant=variant))
    rows += [ResultRow("mla", "avdigits-hard", "sec_per_epoch", [reg_first], variant="first-read-registered"),
             ResultRow("mla", "avdigits-hard", "sec_per_epoch", [man_first], variant="first-read-manifest"),
             ResultRow("mla", "avdigits-hard", "sec_per_epoch", reg_steady, variant="loading-registered"),
             ResultRow("mla", "avdigits-hard", "sec_per_epoch", man_steady, variant="loading-manifest")]
    reg = registered["fused_acc"][: len(seeds)]
    lines = []
    for variant, a in accs.items():
        diff = statistics.mean(a["fused_acc"]) - statistics.mean(reg)
        two_std = 2 * max(statistics.stdev(a["fused_acc"]), statistics.stdev(reg))
        lines.append(f"Fused test accuracy, {variant} minus registered: {100 * diff:+.2f} points; two seed standard deviations: "
                     f"{100 * two_std:.2f} points ({'within' if abs(diff) <= two_std else 'NOT within'}).")
    notes = "\n".join([
        *lines,
        "",
        "The manifest's audio inputs equal the registered dataset's exactly (log-mel of the float WAV); its images differ by "
        "the PNG rounding (at most 1/510) and, by default, by the standardisation with the train split's mean and std "
        "(`manifest`); `manifest-raw-pixels` keeps pixels in [0, 1] as the registered dataset does (`image.normalize=false`).",
        "",
        f"Loading throughput of the train split ({n} samples; manifest {n2}), batches of 64, one process, cache on: "
        f"registered {n / statistics.mean(reg_steady):,.0f} samples/s, manifest {n2 / statistics.mean(man_steady):,.0f} samples/s "
        f"in the steady state (epochs 2-3); first read (building the split: decoding files, log-mel) "
        f"{reg_first:.1f} s registered (from the shipped artifact and the on-disk log-mel cache when warm) vs {man_first:.1f} s manifest.",
        "",
        "Rows without a variant: the registered dataset (MLA rows of balancing.json, same profile and seeds). "
        "`manifest*`: the same splits exported to WAV/PNG files and read through `data.manifest`. "
        "`first-read-*` rows hold the seconds to build the train split; `loading-*` the seconds per epoch of iterating it.",
    ])
    write_results("byod", rows, protocol=f"avdigits-hard, MLA, bench profile (default config), selection on val, test metrics, "
                  f"seeds {ns.seeds}, {ns.threads} torch thread(s)", command="python benchmarks/byod.py " + f"--seeds {ns.seeds}",
                  title="Bring your own data: avdigits-hard through a manifest", notes=notes)


if __name__ == "__main__":
    main()
