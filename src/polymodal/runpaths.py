"""Where every file of a run folder lives: the one place their names are spelled.

    paths = RunPaths(run_dir)
    paths.config, paths.results, paths.metrics, paths.predictions("test"), paths.model("best")

A training run writes one folder, ``out_dir/name`` (docs/architecture.md, "The run folder"). Code that
reads or writes a run file asks a :class:`RunPaths` for its path; no other module spells a run file's
name (``tests/test_layering.py`` fails on a literal elsewhere). The names are plain strings, so this
module imports nothing of polymodal and every layer may use it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CONFIG_FILE = "config.yaml"  # the resolved config, written last at the start: it marks a started run
PROVENANCE_FILE = "provenance.json"
METRICS_FILE = "metrics.jsonl"  # one record per epoch, plus events
RESULTS_FILE = "results.json"  # val and test metrics, best epoch, selection, task
REPORT_FILE = "report.md"
FIGURES_DIR = "figures"
LOGS_DIR = "logs"  # Fabric's CSV / TensorBoard loggers
LOCK_FILE = "run.lock"  # while a process writes into the folder
DATA_STATE_FILE = "data_state.json"  # a table dataset's fitted state
SPLITS_FILE = "splits.csv"  # a table dataset's split of every row
DATA_CHECK_FILE = "data_check.md"  # a table dataset's data check
TRAIN_TABLE_FILE = "train_table.parquet"  # the data frame a Predictor was fitted on
PREDICTIONS_FILE = "predictions_{split}.npz"
TASK_STATE_FILE = "task_state.npz"  # what the task fitted on a split after training (a threshold, a baseline)
CHECKPOINTS_DIR = "checkpoints"
CHECKPOINTS = ("best", "last")
STATE_FILE = "state.json"  # in a checkpoint folder: epoch, step, best metric, RNG states, ...
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
STRATEGY_FILE = "strategy.safetensors"
QUANTIFY_FILE = "quantify.md"  # `polymodal quantify`: what each modality contributes (docs/quantify.md)
QUANTIFY_HTML_FILE = "quantify.html"  # the same report as one HTML page with its figures inlined
QUANTIFY_JSON_FILE = "quantify.json"  # the report's numbers
QUANTIFY_DIR = "quantify_figures"  # the report's PNG figures
QUANTIFY_SAMPLES_FILE = "quantify_{split}.npz"  # per-sample attributions, as a predictions file with extras
GENERATOR_FILE = "generator.json"  # a generator run (`polymodal generate RUN --train`): what it is, how it was trained
GENERATOR_WEIGHTS_FILE = "generator.safetensors"  # its weights (the CVAE and the audio encoder)


@dataclass(frozen=True)
class RunPaths:
    """The paths of one run folder's files (nothing is read or created here)."""

    root: Path

    def __init__(self, root: str | os.PathLike) -> None:
        object.__setattr__(self, "root", Path(root))

    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def provenance(self) -> Path:
        return self.root / PROVENANCE_FILE

    @property
    def metrics(self) -> Path:
        return self.root / METRICS_FILE

    @property
    def results(self) -> Path:
        return self.root / RESULTS_FILE

    @property
    def report(self) -> Path:
        return self.root / REPORT_FILE

    @property
    def figures(self) -> Path:
        return self.root / FIGURES_DIR

    @property
    def logs(self) -> Path:
        return self.root / LOGS_DIR

    @property
    def lock(self) -> Path:
        return self.root / LOCK_FILE

    @property
    def data_state(self) -> Path:
        return self.root / DATA_STATE_FILE

    @property
    def splits(self) -> Path:
        return self.root / SPLITS_FILE

    @property
    def data_check(self) -> Path:
        return self.root / DATA_CHECK_FILE

    @property
    def train_table(self) -> Path:
        return self.root / TRAIN_TABLE_FILE

    @property
    def task_state(self) -> Path:
        return self.root / TASK_STATE_FILE

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINTS_DIR

    def predictions(self, split: str) -> Path:
        """``predictions_<split>.npz`` (written and read by ``polymodal.tasks.write_predictions`` /
        ``read_predictions`` only)."""
        return self.root / PREDICTIONS_FILE.format(split=split)

    def checkpoint(self, which: str = "best") -> Path:
        """``checkpoints/<which>``, ``which`` "best" or "last"."""
        if which not in CHECKPOINTS:
            raise ValueError(f"checkpoint {which!r}; expected 'best' or 'last'")
        return self.checkpoints / which

    def model(self, which: str = "best") -> Path:
        """The model weights of the ``best`` (or ``last``) checkpoint."""
        return self.checkpoint(which) / MODEL_FILE

    def state(self, which: str = "best") -> Path:
        """The training state of the ``best`` (or ``last``) checkpoint."""
        return self.checkpoint(which) / STATE_FILE

    @property
    def quantify_report(self) -> Path:
        return self.root / QUANTIFY_FILE

    @property
    def quantify_html(self) -> Path:
        return self.root / QUANTIFY_HTML_FILE

    @property
    def quantify_json(self) -> Path:
        return self.root / QUANTIFY_JSON_FILE

    @property
    def quantify_figures(self) -> Path:
        return self.root / QUANTIFY_DIR

    def quantify_samples(self, split: str) -> Path:
        """``quantify_<split>.npz``: the split's per-sample attributions (a predictions file with extras)."""
        return self.root / QUANTIFY_SAMPLES_FILE.format(split=split)

    @property
    def generator(self) -> Path:
        """A generator run's marker and settings (docs/align_translate.md, "Generation")."""
        return self.root / GENERATOR_FILE

    @property
    def generator_weights(self) -> Path:
        return self.root / GENERATOR_WEIGHTS_FILE

    def derived_files(self) -> tuple[str, ...]:
        """Names of the files rebuilt from the others (report, figures, logs, the quantification): left out
        of a copy that is evaluated again."""
        return (REPORT_FILE, FIGURES_DIR, LOGS_DIR, QUANTIFY_FILE, QUANTIFY_HTML_FILE, QUANTIFY_JSON_FILE, QUANTIFY_DIR,
                QUANTIFY_SAMPLES_FILE.format(split="*"))


def names() -> tuple[str, ...]:
    """Every name a run folder's files and folders may have (predictions files as their pattern)."""
    return (CONFIG_FILE, PROVENANCE_FILE, METRICS_FILE, RESULTS_FILE, REPORT_FILE, FIGURES_DIR, LOGS_DIR, LOCK_FILE,
            DATA_STATE_FILE, SPLITS_FILE, DATA_CHECK_FILE, TRAIN_TABLE_FILE, PREDICTIONS_FILE, TASK_STATE_FILE,
            CHECKPOINTS_DIR,
            STATE_FILE, MODEL_FILE, OPTIMIZER_FILE, STRATEGY_FILE, QUANTIFY_FILE, QUANTIFY_HTML_FILE, QUANTIFY_JSON_FILE,
            QUANTIFY_DIR, QUANTIFY_SAMPLES_FILE, GENERATOR_FILE, GENERATOR_WEIGHTS_FILE)


__all__ = ["CHECKPOINTS", "CHECKPOINTS_DIR", "CONFIG_FILE", "DATA_CHECK_FILE", "DATA_STATE_FILE", "FIGURES_DIR",
           "GENERATOR_FILE", "GENERATOR_WEIGHTS_FILE", "LOCK_FILE", "LOGS_DIR", "METRICS_FILE", "MODEL_FILE",
           "OPTIMIZER_FILE", "PREDICTIONS_FILE",
           "PROVENANCE_FILE", "QUANTIFY_DIR", "QUANTIFY_FILE", "QUANTIFY_HTML_FILE", "QUANTIFY_JSON_FILE",
           "QUANTIFY_SAMPLES_FILE", "REPORT_FILE", "RESULTS_FILE", "RunPaths", "SPLITS_FILE", "STATE_FILE",
           "STRATEGY_FILE", "TASK_STATE_FILE", "TRAIN_TABLE_FILE", "names"]
