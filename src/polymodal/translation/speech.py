"""Speech to text with a trained CTC run (docs/align_translate.md, "Speech and handwriting to text"): a run of
``polymodal train`` on ``digitstrings`` with ``model.fusion=ctc`` and the audio modality alone, read back to
transcribe an audio file of a spoken digit string (greedy CTC decoding)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from polymodal.runpaths import RunPaths


@dataclass
class Transcriber:
    """A speech-to-text model: its run's model (eval mode), the audio modality it reads and the token names."""

    model: Any
    modality: Any
    class_names: tuple[str, ...]
    run_dir: Path

    def transcribe_inputs(self, audio: torch.Tensor) -> list[str]:
        """The decoded strings of a batch of audio inputs (B, *the modality's shape)."""
        from polymodal.data.batch import Batch
        from polymodal.tasks.sequence import EXTRA, greedy_decode

        b = len(audio)
        name = self.modality.name
        batch = Batch({name: audio}, {name: torch.ones(b, dtype=torch.bool)}, torch.zeros(b, dtype=torch.long),
                      torch.arange(b))
        with torch.no_grad():
            out = self.model(batch)
        names = list(self.class_names)
        return ["".join(names[t] if t < len(names) else str(t) for t in seq) for seq in greedy_decode(out.extras[EXTRA])]

    def transcribe_file(self, path: str | os.PathLike) -> str:
        """The digit string spoken in an audio file (resampled to the run's rate, mono)."""
        from polymodal.data.datasets.digitstrings import read_string_audio

        x, _ = read_string_audio(path, int(self.modality.sample_rate), "transcribe")
        audio = torch.from_numpy(x)[None]
        if self.modality.representation == "logmel":
            from polymodal.data.transforms import LogMel, LogMelConfig

            with torch.no_grad():
                audio = LogMel(LogMelConfig(**self.modality.extra["logmel"]))(audio)
        return self.transcribe_inputs(audio)[0]


def load_transcriber(run_dir: str | os.PathLike) -> Transcriber:
    """The speech-to-text model of a finished run (clear errors for a folder that is not a run, a run of another
    kind, and a run that reads something other than audio alone)."""
    from polymodal.engine.runfolder import load_run

    paths = RunPaths(run_dir)
    if paths.generator.is_file():
        raise ValueError(f"{paths.root} is a generator run (`polymodal generate`); `polymodal translate` needs a "
                         "speech-to-text run: `polymodal train configs/digitstrings_ctc.yaml`")
    if not paths.config.is_file():
        raise FileNotFoundError(f"{paths.root} is not a training run folder (it lacks {paths.config.name}); "
                                "`polymodal translate` needs a run of `polymodal train configs/digitstrings_ctc.yaml`")
    run = load_run(paths.root)
    fusion = (run.config.get("model") or {}).get("fusion")
    if fusion != "ctc":
        raise ValueError(f"{paths.root} is a run with model.fusion={fusion!r}, which gives no transcription; "
                         "`polymodal translate` needs a speech-to-text run (model.fusion=ctc, e.g. "
                         "configs/digitstrings_ctc.yaml)")
    model, _, train = run.trained("best")
    mods = list(train.schema)
    if len(mods) != 1 or mods[0].kind != "audio":
        raise ValueError(f"{paths.root} reads {[m.name for m in mods]}; `polymodal translate --audio` needs a model of "
                         "the audio modality alone (data.options.modalities=[audio])")
    if mods[0].representation not in ("logmel", "waveform"):
        raise ValueError(f"{paths.root}: audio served as {mods[0].representation!r}; expected log-mel or waveform")
    return Transcriber(model, mods[0], tuple(getattr(train, "class_names", ())), paths.root)


__all__ = ["Transcriber", "load_transcriber"]
