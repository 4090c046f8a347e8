"""``polymodal generate``: train a digit generator, or draw handwritten digits from a spoken digit or from text
(docs/align_translate.md, "Generation"); ``polymodal translate``: transcribe a spoken digit string with a
speech-to-text run (docs/align_translate.md, "Speech and handwriting to text").

    polymodal generate RUN_DIR --train [--epochs 30] [--seed 0]
    polymodal generate RUN_DIR --condition audio:FILE.wav|text:DIGITS [--n 8] [--out grid.png] [--seed 0]
    polymodal translate RUN_DIR --audio FILE.wav

Registered on the main parser by ``polymodal.cli``; nothing heavy is imported until a command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

COMMANDS = ("generate", "translate")
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


def run(ns: argparse.Namespace) -> int:
    """Run a parsed ``generate`` / ``translate`` command; returns the exit code."""
    if ns.command == "generate":
        return _cmd_train(ns) if ns.train else _cmd_generate(ns)
    if ns.command == "translate":
        return _cmd_translate(ns)
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


__all__ = ["COMMANDS", "add_parsers", "run"]
