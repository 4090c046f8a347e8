"""``polymodal generate``: train a digit generator, or draw handwritten digits from a spoken digit or from text
(docs/align_translate.md, "Generation"); ``polymodal translate``: transcribe a spoken digit string with a
speech-to-text run (docs/align_translate.md, "Speech and handwriting to text").

    polymodal generate RUN_DIR --train [--epochs 30] [--seed 0]
    polymodal generate RUN_DIR --condition audio:FILE.wav|text:DIGITS [--n 8] [--out grid.png] [--seed 0]
    polymodal translate RUN_DIR --audio FILE.wav
    polymodal align RUN_DIR --audio FILE.wav --to image:ROW.png --image-run IMAGE_RUN_DIR | --to text:DIGITS
    polymodal align RUN_DIR --split test --index I [--to image|text] [--image-run IMAGE_RUN_DIR]

``polymodal align`` (docs/align_translate.md, "polymodal align") prints which span of a spoken digit string
belongs to which digit position (:mod:`polymodal.alignment.align`).

Registered on the main parser by ``polymodal.cli``; nothing heavy is imported until a command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

COMMANDS = ("generate", "translate", "align")
MAX_SAMPLES_PER_CONDITION = 64


def add_parsers(sub: Any) -> None:
    """Add the ``generate`` and ``translate`` sub-commands to the main parser's sub-parsers."""
    ge = sub.add_parser("generate", help="train a digit-image generator, or draw digits from speech or text")
    ge.add_argument("run_dir", type=Path, help="the generator run folder (written by --train)")
    what = ge.add_mutually_exclusive_group(required=True)
    what.add_argument("--condition", default=None, metavar="audio:FILE.wav|text:DIGITS",
                      help="what to draw: a spoken digit (an audio file, one digit) or a string of digits (one image "
                           "per character)")
    what.add_argument("--train", action="store_true", help="train a generator into RUN_DIR (a new folder)")
    ge.add_argument("--n", type=int, default=8, help=f"samples per condition, 1 to {MAX_SAMPLES_PER_CONDITION} (default 8)")
    ge.add_argument("--out", type=Path, default=None, help="PNG of the samples (default: RUN_DIR/samples.png)")
    ge.add_argument("--seed", type=int, default=0, help="seed of the draw (with --train: of the training; default 0)")
    ge.add_argument("--temperature", type=float, default=1.0, help="scale of the latent draw (default 1: the prior)")
    ge.add_argument("--epochs", type=int, default=30, help="with --train: CVAE epochs (default 30)")

    tr = sub.add_parser("translate", help="transcribe a spoken digit string with a speech-to-text run")
    tr.add_argument("run_dir", type=Path, help="a run of `polymodal train` on digitstrings with model.fusion=ctc")
    tr.add_argument("--audio", required=True, type=Path, help="the spoken digit string (an audio file)")

    al = sub.add_parser("align", help="which span of a spoken digit string belongs to which digit of its row or text")
    al.add_argument("run_dir", type=Path, help="a speech-to-text run (`polymodal train configs/digitstrings_ctc.yaml`)")
    src = al.add_mutually_exclusive_group(required=True)
    src.add_argument("--audio", type=Path, default=None, help="the spoken digit string (an audio file)")
    src.add_argument("--split", default=None, choices=["train", "val", "test"],
                     help="align a digitstrings sample of this split instead (with --index), scored against its truth")
    al.add_argument("--index", type=int, default=None, help="with --split: the sample (0-based)")
    al.add_argument("--to", default=None, metavar="image:ROW.png|text:DIGITS",
                    help="what the audio is aligned to: a handwritten row (a PNG, 28 pixels high, a digit per 28 "
                         "columns; needs --image-run) or the digits of the string; with --split: image or text (the "
                         "sample's own row or digits; default image with --image-run, else text)")
    al.add_argument("--image-run", type=Path, default=None,
                    help="a handwriting-to-text run (configs/digitstrings_ctc_image.yaml) that reads the row's digits")
    al.add_argument("--method", default="ctc", choices=["ctc", "dtw"],
                    help="ctc: forced alignment, blanks between digits (default); dtw: DTW on the posteriors")
    al.add_argument("--radius", type=int, default=None, help="with --method dtw: Sakoe-Chiba band (digit positions)")
    al.add_argument("--shift", type=float, default=0.0,
                    help="move every boundary later by this many of the run's frames (default 0: the middle of the "
                         "blank run between two digits; benchmarks/results/alignment.md chose 0.5 to 1.5)")
    al.add_argument("--json", action="store_true", help="print the alignment as JSON")


def run(ns: argparse.Namespace) -> int:
    """Run a parsed ``generate`` / ``translate`` command; returns the exit code."""
    if ns.command == "generate":
        return _cmd_train(ns) if ns.train else _cmd_generate(ns)
    if ns.command == "translate":
        return _cmd_translate(ns)
    if ns.command == "align":
        return _cmd_align(ns)
    raise ValueError(f"unknown command {ns.command!r}")


def _cmd_train(ns: argparse.Namespace) -> int:
    from polymodal.translation.generate import GeneratorConfig, fit_generator

    if ns.out is not None:
        raise ValueError("--out goes with --condition (the picture of the samples), not with --train")
    run_ = fit_generator(ns.run_dir, GeneratorConfig(seed=ns.seed, epochs=ns.epochs), log=lambda s: print(s, flush=True))
    audio = run_.info["audio_encoder"]
    print(f"generator written to {ns.run_dir} (audio encoder: val accuracy {100 * audio['val_acc']:.1f} %, "
          f"test {100 * audio['test_acc']:.1f} %)")
    return 0


def _cmd_generate(ns: argparse.Namespace) -> int:
    from polymodal.translation.generate import load_generator, parse_condition, save_grid

    if isinstance(ns.n, bool) or not 1 <= ns.n <= MAX_SAMPLES_PER_CONDITION:
        raise ValueError(f"--n {ns.n}: expected 1 to {MAX_SAMPLES_PER_CONDITION} samples per condition")
    modality, value = parse_condition(ns.condition)  # before the run is read: a bad condition costs nothing
    out = ns.out if ns.out is not None else ns.run_dir / "samples.png"
    if out.suffix.lower() != ".png":
        raise ValueError(f"--out {out}: sample grids are written as PNG; give a path ending in .png")
    gen = load_generator(ns.run_dir)
    images = gen.generate(modality, value, n=ns.n, seed=ns.seed, temperature=ns.temperature)  # (L, n, 1, 28, 28)
    grid = images.transpose(1, 0, 2, 3, 4) if modality == "text" else images  # text: one row per sample
    save_grid(grid, out)
    what = f"{len(images)} character(s), {ns.n} sample(s) each" if modality == "text" else f"{ns.n} sample(s)"
    print(f"{what} written to {out}")
    return 0


def _cmd_translate(ns: argparse.Namespace) -> int:
    from polymodal.translation.speech import load_transcriber

    transcriber = load_transcriber(ns.run_dir)
    print(transcriber.transcribe_file(ns.audio))
    return 0


def _cmd_align(ns: argparse.Namespace) -> int:
    import json

    from polymodal.alignment import align as al

    if ns.split is None and ns.index is not None:
        raise ValueError("--index goes with --split (a digitstrings sample); with --audio give --to image:ROW.png or text:DIGITS")
    if ns.split is not None and ns.index is None:
        raise ValueError(f"--split {ns.split} needs --index I, the sample to align (0-based)")
    if ns.radius is not None and (ns.method != "dtw" or ns.radius < 0):
        raise ValueError(f"--radius {ns.radius}: a Sakoe-Chiba band (a non-negative number of digit positions) goes "
                         "with --method dtw")
    if ns.audio is not None and ns.to is None:
        raise ValueError("--audio needs --to: image:ROW.png (with --image-run) or text:DIGITS, what the audio is aligned to")
    modality, value = al.parse_target(ns.to or ("image" if ns.image_run is not None else "text"))
    if ns.audio is not None and not value:
        raise ValueError(f"--to {ns.to!r} is empty: give {'image:ROW.png' if modality == 'image' else 'text:DIGITS'}")
    if ns.split is not None and value:
        raise ValueError(f"--to {ns.to!r}: with --split the sample's own row or digits are aligned; give --to {modality}")
    if modality == "image" and ns.image_run is None:
        raise ValueError("aligning to an image row needs --image-run, a handwriting run that reads its digits "
                         "(`polymodal train configs/digitstrings_ctc_image.yaml`); or align to the digits: --to text:DIGITS")
    if modality == "text" and ns.image_run is not None:
        raise ValueError("--image-run reads an image row; it does not go with --to text")
    row = al.read_row_file(value) if modality == "image" and value else None  # a bad input costs no model load
    positions = al.text_positions(value) if modality == "text" and value else None
    speech = al.load_ctc_run(ns.run_dir, "audio", "RUN_DIR")
    reader = al.load_ctc_run(ns.image_run, "image", "--image-run") if ns.image_run is not None else None
    truth = None
    if ns.split is not None:
        from polymodal.data.base import build_dataset
        from polymodal.data.datasets.digitstrings import SAMPLE_RATE

        ds = build_dataset("digitstrings", ns.split, cache_features=speech.modality.representation == "logmel")
        if not 0 <= ns.index < len(ds):
            raise ValueError(f"--index {ns.index}: the {ns.split} split holds {len(ds)} strings (0 to {len(ds) - 1})")
        audio = ds.tensor("audio")[ns.index]
        duration = 1000.0 * int(ds.audio_samples[ns.index]) / SAMPLE_RATE
        n = int(ds.lengths[ns.index])
        if modality == "image":
            row = ds.tensor("image")[ns.index, 0].numpy()[:, : 28 * n]
        else:
            positions = al.text_positions(ds.texts[ns.index])
        truth = (ds.boundaries[ns.index, :n], SAMPLE_RATE, ds.texts[ns.index])
    else:
        audio, duration = al.read_audio_file(ns.audio, speech)
    if row is not None:
        positions = al.image_positions(row, reader)
    result = al.align_audio(speech, audio, duration, positions, ns.method, ns.radius, ns.shift)
    if truth is not None:
        result.extra.update({"text": truth[2], **al.truth_errors(result, truth[0], truth[1])})
    if ns.json:
        print(json.dumps(result.to_dict()))
        return 0
    print(result.table())
    if truth is not None:
        print(f"true digits {truth[2]}, true spans (ms): "
              + ", ".join(f"{a:.0f}-{b:.0f}" for a, b in result.extra["true_segments_ms"]))
        print(f"boundary error to the silence (ms): {', '.join(f'{e:.0f}' for e in result.extra['boundary_error_ms'])} "
              f"(mean {result.extra['mean_boundary_error_ms']:.1f})")
    return 0


__all__ = ["COMMANDS", "add_parsers", "run"]
