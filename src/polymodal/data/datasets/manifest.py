"""Datasets from a table: one row per sample, columns pointing at files, text, numbers and a label.

    from polymodal.datasets import from_manifest
    data = from_manifest("patients.csv", label="diagnosis")      # CSV, Parquet, JSON Lines or a DataFrame
    train, val = data.dataset("train"), data.dataset("val")       # MultimodalDatasets
    print(data.report.to_markdown())                               # what the check found

Column kinds are inferred and can be given (``schema={"xray": "image", "notes": "text"}`` or a YAML
file with that mapping):

- a column whose cells end in a known extension is a file column: audio (wav flac ogg mp3), image
  (jpg jpeg png webp bmp), video (mp4 avi mkv flv mov webm), time series (npy csv; rows are time steps
  and columns channels, ``timeseries.layout="channel_major"`` for the other layout) or text (txt);
  each file column is one modality named after the column, so two cameras are two modalities;
- a column of numbers is ``numeric``, a column of few distinct short strings ``categorical``, other
  strings inline ``text``; numeric and categorical columns form the ``tabular`` modality (or the
  named groups of ``tabular_groups``).

Relative paths resolve against ``root`` (default: the manifest's folder). An empty file or text cell is
a missing modality for that row. An empty numeric cell is imputed with the training mean and flagged
by an indicator feature; a tabular modality is missing only when all its cells are empty.

A column's kind is the kind of the majority of its cells: a cell that does not fit (a typo in an
extension, a word or ``nan`` in a column of numbers) is an ``odd_cell`` / ``bad_number`` row of the check
and follows ``bad_files``; the check lists every column's kind (``column_kind``), ignored ones included.

Splits come from a ``split`` column (train/val/test; empty cells are assigned; a split the column does not
give is carved out of its train rows), else a seeded split stratified by label, grouped by
``splits.group`` when given, optionally k-fold (``splits.folds``, ``splits.fold``). A run stores the split
of every row (``splits.csv``); evaluation and resume read it back (``stored_splits``, see
:mod:`polymodal.data.datasets.run_splits`) and refuse a table whose rows changed. Everything the model needs to read new rows the same way (class names, image size,
sample rate, normalisation statistics computed on the training split, category vocabularies) is the
manifest's :meth:`Manifest.state`, stored with a run as ``data_state.json``.

Before any training every file is read once and the check is reported as a table
(:class:`~polymodal.data.validation.ValidationReport`): missing or unreadable files (``bad_files``:
"error" stops, "skip" makes that modality missing for the row, "drop" drops the row), resampled audio
and resized images, classes too small for the split, and the same file or group in two splits. Errors
stop with the whole table; nothing is silently fixed.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
import re
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from polymodal.data.base import DATASETS, MultimodalDataset
from polymodal.data.batch import Sample
from polymodal.data.datasets import run_splits
from polymodal.data.io import MediaError, read_audio, read_image, read_text, read_video
from polymodal.data.io.array import read_npy
from polymodal.data.schema import Modality
from polymodal.data.splits import assign_splits
from polymodal.data.text import ByteTokenizer, HashingWordTokenizer
from polymodal.data.transforms import LogMel, LogMelConfig
from polymodal.data.validation import ValidationReport

FILE_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "audio": (".wav", ".flac", ".ogg", ".mp3"),
    "image": (".jpg", ".jpeg", ".png", ".webp", ".bmp"),
    "video": (".mp4", ".avi", ".mkv", ".flv", ".mov", ".webm"),
    "timeseries": (".npy", ".csv"),
    "text": (".txt",),
}
COLUMN_KINDS = ("audio", "image", "video", "timeseries", "text", "numeric", "categorical", "ignore")
TABLE_FORMATS = (".csv", ".tsv", ".parquet", ".pq", ".jsonl", ".ndjson", ".json")
STATE_VERSION = 1


class ManifestError(ValueError):
    """The table or its options are wrong (a column that does not exist, a kind that does not fit)."""


class _Opts(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AudioOptions(_Opts):
    sample_rate: int | None = Field(None, gt=0)  # Hz; default: the most common rate of the training files
    # clip length; default: the 95th percentile of the training clips' lengths, at most 30 s
    seconds: float | None = Field(None, gt=0)
    n_mels: int = Field(40, ge=8)


class ImageOptions(_Opts):
    size: tuple[int, int] | None = None  # (height, width); default: the most common training size
    mode: Literal["auto", "L", "RGB"] = "auto"  # auto: grey when every training image is grey
    normalize: bool = True  # standardise each channel with the train split's mean and std (else pixels in [0, 1])


class VideoOptions(_Opts):
    frames: int = Field(8, ge=1)
    size: tuple[int, int] = (64, 64)
    mode: Literal["RGB", "L"] = "RGB"


class TimeseriesOptions(_Opts):
    layout: Literal["time_major", "channel_major"] = "time_major"  # rows = time steps (or channels)
    length: int | None = Field(None, ge=1)  # default: the longest training series, at most 4096
    max_mb: float = Field(256.0, gt=0)  # a .npy file whose header asks for more is refused before it is read


class TextOptions(_Opts):
    tokenizer: Literal["hashing", "bytes"] = "hashing"
    max_length: int = Field(64, ge=1)
    vocab_size: int = Field(8192, ge=16)  # hashing tokenizer only


class SplitOptions(_Opts):
    column: str = "split"  # used when the table has it
    group: str | None = None  # rows sharing a value stay in one split
    val: float = Field(0.15, ge=0, lt=1)
    test: float = Field(0.15, ge=0, lt=1)
    seed: int = 0
    folds: int | None = Field(None, ge=2)  # k-fold over the non-test rows; `fold` is the val part
    fold: int = Field(0, ge=0)


class ManifestOptions(_Opts):
    label: str | None = None  # label column (required to train)
    task: Literal["auto", "classification", "regression"] = "auto"
    root: str | None = None  # folder relative paths resolve against; default: the manifest's folder
    schema_: dict[str, str] = Field(default_factory=dict, alias="schema")  # column -> kind override
    tabular_groups: dict[str, list[str]] = Field(default_factory=dict)  # modality name -> columns
    id: str | None = None  # column naming each row in predictions (default: the row number)
    bad_files: Literal["error", "skip", "drop"] = "error"  # also for odd cells and cells that are not numbers
    delimiter: str | None = None  # CSV column separator; default: detected from the header line
    cache_features: bool = True  # keep decoded inputs (and log-mels) in memory after the first read
    splits: SplitOptions = Field(default_factory=SplitOptions)
    audio: AudioOptions = Field(default_factory=AudioOptions)
    image: ImageOptions = Field(default_factory=ImageOptions)
    video: VideoOptions = Field(default_factory=VideoOptions)
    timeseries: TimeseriesOptions = Field(default_factory=TimeseriesOptions)
    text: TextOptions = Field(default_factory=TextOptions)
    # set by evaluation and resume (never stored with a run): a run's splits.csv, and whether rows that
    # changed since training may be left out (else a changed table is an error)
    stored_splits: str | None = None
    allow_changed_table: bool = False

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def parse_options(options: Mapping[str, Any], where: str = "manifest option") -> ManifestOptions:
    try:
        return ManifestOptions.model_validate(dict(options))
    except ValidationError as e:
        msgs = []
        for err in e.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(top level)"
            msgs.append(f"{where} {key}: {err['msg']} (got {err.get('input')!r})")
        keys = [f.alias or k for k, f in ManifestOptions.model_fields.items()]
        raise ManifestError("; ".join(msgs) + f". Allowed keys: {', '.join(keys)}") from None


# --------------------------------------------------------------------------- reading the table


def _cell(v: Any) -> Any:
    """None for an empty cell, else a str (stripped), float or int."""
    if v is None:
        return None
    if isinstance(v, float | np.floating):
        return None if math.isnan(float(v)) else float(v)
    if isinstance(v, bool | np.bool_):
        return int(v)
    if isinstance(v, int | np.integer):
        return int(v)
    s = str(v).strip()
    return s or None


def read_table(source: Any, delimiter: str | None = None) -> tuple[dict[str, list[Any]], str, Path | None]:
    """(columns -> cells, a name for messages, the folder relative paths default to)."""
    table, name, folder, _ = _read_table(source, delimiter)
    return table, name, folder


_DELIMITERS = (",", ";", "\t", "|")


def _sniff_delimiter(path: Path) -> str:
    """The separator of a CSV from its header line: a comma when it has one, else ; tab or |."""
    with path.open("r", encoding="utf-8-sig", errors="replace") as f:
        header = f.readline()
    if "," in header:
        return ","
    found = [d for d in _DELIMITERS[1:] if d in header]
    if len(found) == 1:
        return found[0]
    if len(header.strip().split()) > 1 or any(c in header for c in ":#"):
        raise ManifestError(f"manifest {path}: cannot tell the column separator of its header line {header.strip()[:80]!r}; "
                            "set it with the delimiter option (e.g. data.options.delimiter=';', or delimiter=';' in Python)")
    return ","


def _nested(v: Any) -> bool:
    return isinstance(v, list | tuple | dict | set | np.ndarray)


def _read_table(source: Any, delimiter: str | None = None) -> tuple[dict[str, list[Any]], str, Path | None, dict[str, Any]]:
    import pandas as pd

    info: dict[str, Any] = {"delimiter": None, "nested": []}
    if isinstance(source, pd.DataFrame):
        df, name, folder = source, "the data frame", None
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"manifest {path} does not exist; pass a CSV, Parquet or JSON Lines file (or a data frame)")
        suffix = path.suffix.lower()
        try:
            if suffix in (".csv", ".tsv"):
                sep = delimiter or ("\t" if suffix == ".tsv" else _sniff_delimiter(path))
                if sep != ("\t" if suffix == ".tsv" else ","):
                    info["delimiter"] = sep
                df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
            elif suffix in (".parquet", ".pq"):
                df = pd.read_parquet(path)
            elif suffix in (".jsonl", ".ndjson", ".json"):
                df = pd.read_json(path, lines=suffix != ".json", dtype=False)
            else:
                raise ManifestError(f"manifest {path}: unknown table format {suffix!r}; expected one of {', '.join(TABLE_FORMATS)}")
        except (ValueError, OSError, ImportError) as e:
            if isinstance(e, ManifestError):
                raise
            raise ManifestError(f"cannot read manifest {path}: {e}") from e
        name, folder = str(path), path.parent
    if len(df.columns) == 0 or len(df) == 0:
        raise ManifestError(f"manifest {name} has no rows or no columns; expected one row per sample with a header line")
    cols = [str(c) for c in df.columns]
    dup = [c for c, n in Counter(cols).items() if n > 1]
    if dup:
        raise ManifestError(f"manifest {name}: duplicate column names {dup}; every column needs its own name")
    if len(cols) == 1 and any(d in cols[0] for d in _DELIMITERS):
        raise ManifestError(f"manifest {name} has a single column named {cols[0]!r}: its separator is not a comma; "
                            "set it with the delimiter option (e.g. data.options.delimiter=';')")
    table = {}
    for c in df.columns:
        values = df[c].tolist()
        if any(_nested(v) for v in values):
            info["nested"].append(str(c))
            table[str(c)] = [None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in values]
        else:
            table[str(c)] = [_cell(v) for v in values]
    return table, name, folder, info


def _is_number(v: Any) -> bool:
    """Whether a cell reads as a number (``nan``, ``inf`` and ``1e999`` do; see :func:`_finite`)."""
    if isinstance(v, int | float):
        return True
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


def _finite(v: Any) -> float | None:
    """The cell as a finite float, or None (not a number, NaN, infinite, or too large for a float)."""
    try:
        x = float(v)
    except (TypeError, ValueError, OverflowError):
        return None
    return x if math.isfinite(x) else None


def _file_kind(cell: Any) -> str | None:
    if not isinstance(cell, str):
        return None
    ext = os.path.splitext(cell.lower())[1]
    return next((k for k, exts in FILE_EXTENSIONS.items() if ext in exts), None)


def infer_kind_detail(values: Sequence[Any]) -> tuple[str, str]:
    """(kind, why) of a column from its non-empty cells: the kind of the MAJORITY of the cells, so one odd
    cell (a typo in an extension, a word in a column of numbers) does not change the column's kind; the
    cells that do not fit are reported by the data check."""
    cells = [v for v in values if v is not None]
    if not cells:
        return "ignore", "every cell is empty"
    n = len(cells)
    files = Counter(_file_kind(v) for v in cells)
    files.pop(None, None)
    if files:
        kind, k = files.most_common(1)[0]
        if 2 * k > n:
            return kind, f"{k} of {n} cells end in {'/'.join(FILE_EXTENSIONS[kind])}"
    k = sum(1 for v in cells if _is_number(v))
    if 2 * k > n:
        return "numeric", f"{k} of {n} cells are numbers"
    words = np.mean([len(str(v).split()) for v in cells])
    distinct = len(set(map(str, cells)))
    if words >= 3 or distinct > max(20, n // 2):
        return "text", f"{distinct} distinct values of {words:.1f} words on average"
    return "categorical", f"{distinct} distinct short values"


def infer_kind(values: Sequence[Any]) -> str:
    """The kind of a column from its non-empty cells (see the module docstring and :func:`infer_kind_detail`)."""
    return infer_kind_detail(values)[0]


def _looks_like_id(values: Sequence[Any]) -> bool:
    cells = [str(v) for v in values if v is not None]
    if all(c.lower().endswith(FILE_EXTENSIONS["text"]) for c in cells):
        return False
    return len(cells) >= 10 and len(set(cells)) == len(cells) and not any(c.split()[1:] for c in cells)


def _modality_name(column: str) -> str:
    name = re.sub(r"\W+", "_", column).strip("_") or "column"
    return name if not name[0].isdigit() else f"m_{name}"


# --------------------------------------------------------------------------- the manifest


class Manifest:
    """A table of samples with inferred column kinds, checked files, splits and fitted preprocessing.

    table:   a CSV/Parquet/JSON Lines path or a pandas DataFrame
    options: :class:`ManifestOptions` (or a mapping of them)
    state:   the :meth:`state` of a fitted manifest: read new rows exactly as that one did (for prediction;
             the label may then be absent and every row is in the split "predict")
    """

    def __init__(self, table: Any, options: ManifestOptions | Mapping[str, Any] | None = None,
                 state: Mapping[str, Any] | None = None, name: str | None = None) -> None:
        self.options = options if isinstance(options, ManifestOptions) else parse_options(options or {})
        self.table, self.source, folder, info = _read_table(table, self.options.delimiter)
        self.source = name or self.source
        root = self.options.root
        self.root = Path(root).expanduser() if root else (folder or Path.cwd())
        self.report = ValidationReport(self.source)
        self.nested = list(info["nested"])
        if info["delimiter"]:
            self.report.add("delimiter", "info", "", f"columns separated by {info['delimiter']!r}, detected from the header "
                            "line (set the delimiter option to choose another)", count=len(self.table))
        self.schema_for: dict[str, Modality] = {}
        self._readers: dict[str, tuple[Any, str, bool]] = {}
        self._image_norm: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # (C, 1, 1) train mean and std
        self.sha256 = _sha256(self.source)  # of the table file; None for a data frame or a folder
        self.n = len(next(iter(self.table.values())))
        self.row_number = np.arange(1, self.n + 1)  # of each row in the table as given (rows may be put in stored order)
        self.fitted = state is not None
        if state is not None:
            self._load_state(dict(state))
        else:
            self._infer_layout()
        self.keys = run_splits.row_keys(self.table, self._content_columns(), self.n)
        self.input_keys = run_splits.row_keys(self.table, self._content_columns()[1:], self.n)  # without the label
        self.stored_split: np.ndarray | None = None
        if not self.fitted and self.options.stored_splits:
            self._match_stored_splits(Path(self.options.stored_splits))
        self._read_labels()
        self._assign_splits()
        self._load_all()
        self.report.raise_for_errors()

    # ---- layout: columns, modalities, task

    def _infer_layout(self) -> None:
        opt = self.options
        if opt.label is None:
            raise ManifestError(f"manifest {self.source}: no label column given; pass label=<column> (one of {list(self.table)})")
        self._check_columns([opt.label], "label")
        reserved = {opt.label, opt.splits.column, opt.splits.group, opt.id} - {None}
        if opt.splits.group:
            self._check_columns([opt.splits.group], "splits.group")
        if opt.id:
            self._check_columns([opt.id], "id")
        self._check_columns(list(opt.schema_), "schema")
        nested = [c for c in self.nested if c not in reserved and opt.schema_.get(c) != "ignore"]
        if nested:
            raise ManifestError(f"manifest {self.source}: columns {nested} hold lists or structs (Parquet list/struct "
                                "columns), not one value per cell; flatten them into one column per value, or set their "
                                f"kind to ignore (schema: {{{nested[0]}: ignore}})")
        kinds: dict[str, str] = {}
        for col, cells in self.table.items():
            if col in reserved:
                continue
            given = opt.schema_.get(col)
            if given is not None and given not in COLUMN_KINDS:
                raise ManifestError(f"schema: column {col!r} has kind {given!r}; allowed kinds: {', '.join(COLUMN_KINDS)}")
            kind, why = (given, "given in the schema") if given else infer_kind_detail(cells)
            kinds[col] = kind
            if given is None and kind == "ignore":
                self.report.add("empty_column", "warning", col, "every cell is empty: the column is ignored", count=self.n)
            if given is None and kind in ("text", "categorical") and _looks_like_id(cells):
                kinds[col] = "ignore"
                why = "every cell is a different single word, like an identifier"
                self.report.add("id_column", "info", col, "every cell is a different single word, like an identifier: the column "
                                f"is ignored (set id={col} to name predictions by it, or schema: {{{col}: text}} to use it)",
                                [c for c in cells if c is not None][:3], count=self.n)
            shown = "ignored" if kinds[col] == "ignore" else kinds[col]
            self.report.add("column_kind", "info", col, f"{shown} ({why})", count=sum(v is not None for v in cells))
        groups = {k: list(v) for k, v in opt.tabular_groups.items()}
        for g, cols in groups.items():
            self._check_columns(cols, f"tabular_groups.{g}")
            bad = [c for c in cols if kinds.get(c) not in ("numeric", "categorical")]
            if bad:
                raise ManifestError(f"tabular_groups.{g}: columns {bad} are {[kinds.get(c) for c in bad]}, not numeric or "
                                    "categorical; a tabular group holds numeric and categorical columns only")
        grouped = {c for cols in groups.values() for c in cols}
        rest = [c for c, k in kinds.items() if k in ("numeric", "categorical") and c not in grouped]
        if rest:
            groups = {"tabular": rest, **groups} if "tabular" not in groups else {**groups, "tabular_rest": rest}
        mods: list[dict[str, Any]] = []
        for col, k in kinds.items():
            if k in FILE_EXTENSIONS:
                mods.append({"name": _modality_name(col), "kind": k, "columns": [col]})
        mods += [{"name": g, "kind": "tabular", "columns": cols} for g, cols in groups.items()]
        names = [m["name"] for m in mods]
        clash = [n for n, c in Counter(names).items() if c > 1]
        if clash:
            raise ManifestError(f"manifest {self.source}: modality names {clash} come from more than one column; rename the columns")
        if not mods:
            raise ManifestError(f"manifest {self.source}: no input column besides the label; column kinds found: {kinds}")
        self.kinds, self.modality_specs = kinds, mods
        self.label = opt.label
        labels = [v for v in self.table[opt.label] if v is not None]
        task = opt.task
        if task == "auto":
            nums = all(_is_number(v) for v in labels)
            if not nums:
                task = "classification"
            else:
                vals = np.array([float(v) for v in labels])
                integral = bool(np.all(vals == np.round(vals)))
                task = "classification" if integral and len(np.unique(vals)) <= max(20, int(0.05 * len(vals))) else "regression"
        self.task = task
        if task == "classification":
            uniq = sorted({v for v in labels}, key=lambda v: (float(v), str(v)) if _is_number(v) else (math.inf, str(v)))
            self.class_names = tuple(_label_text(v) for v in uniq)
            if len(self.class_names) < 2:
                raise ManifestError(f"label column {opt.label!r} has {len(self.class_names)} class(es) {list(self.class_names)}; "
                                    "classification needs at least 2 (or set task=regression)")
        else:
            self.class_names = ()
        self.stats: dict[str, dict[str, Any]] = {}

    def _check_columns(self, cols: Sequence[str], key: str) -> None:
        for c in cols:
            if c not in self.table:
                close = difflib.get_close_matches(c, list(self.table), n=3, cutoff=0.5)
                hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
                raise ManifestError(f"{key}: column {c!r} is not in manifest {self.source}{hint}; its columns are {list(self.table)}")

    def _load_state(self, state: dict[str, Any]) -> None:
        if state.get("version") != STATE_VERSION:
            raise ManifestError(f"data state version {state.get('version')!r}; this polymodal reads version {STATE_VERSION}")
        self.kinds = dict(state["columns"])
        self.modality_specs = [dict(m) for m in state["modalities"]]
        self.label, self.task = state["label"], state["task"]
        self.class_names = tuple(state["class_names"])
        self.stats = {k: dict(v) for k, v in state["stats"].items()}
        used = {c for m in self.modality_specs for c in m["columns"]}
        nested = sorted(used & set(self.nested))
        if nested:
            raise ManifestError(f"manifest {self.source}: columns {nested} hold lists or structs, not one value per cell "
                                "as in the table the model was trained on; flatten them")
        needed = sorted(used - set(self.table))
        if needed:
            raise ManifestError(f"manifest {self.source} lacks the columns {needed} that the model was trained with; "
                                "add them (empty cells are fine: the modality is then missing)")

    def state(self) -> dict[str, Any]:
        """Everything needed to read new rows as this manifest read its training rows (JSON-able)."""
        return {"version": STATE_VERSION, "label": self.label, "task": self.task, "class_names": list(self.class_names),
                "columns": self.kinds, "modalities": self.modality_specs, "stats": self.stats,
                "options": self.options.model_dump(mode="json", by_alias=True,
                                                   exclude={"stored_splits", "allow_changed_table"})}

    # ---- labels and splits

    def _read_labels(self) -> None:
        cells = self.table.get(self.label) if self.label in self.table else [None] * self.n
        self.has_label = np.array([v is not None for v in cells])
        if self.task == "classification":
            index = {c: i for i, c in enumerate(self.class_names)}
            ids = []
            unknown = []
            for r, v in enumerate(cells):
                if v is None:
                    ids.append(-1)
                    continue
                t = _label_text(v)
                if t not in index:
                    unknown.append(f"row {self.row_number[r]}: {t!r}")
                    ids.append(-1)
                    self.has_label[r] = False
                else:
                    ids.append(index[t])
            if unknown:
                self.report.add("unknown_class", "warning", self.label,
                                f"labels the model was not trained on (known: {list(self.class_names)}); these rows are predicted but not scored",
                                unknown, count=len(unknown))
            self.y = np.array(ids, dtype=np.int64)
        else:
            bad = [f"row {self.row_number[r]}: {v!r}" for r, v in enumerate(cells) if v is not None and _finite(v) is None]
            if bad:
                self.report.add("bad_target", "error", self.label, "regression targets must be finite numbers (not words, NaN "
                                "or infinite values); fix them, or leave them empty to predict those rows", bad, count=len(bad))
            self.y = np.array([x if (x := None if v is None else _finite(v)) is not None else np.nan for v in cells],
                              dtype=np.float32)
        if not self.fitted and not self.has_label.all():
            rows = [f"row {self.row_number[r]}" for r in np.flatnonzero(~self.has_label)]
            self.report.add("missing_label", "warning", self.label, "rows without a label are left out of training and evaluation "
                            "(predict them with Predictor.predict)", rows, count=len(rows))

    def _content_columns(self) -> list[str]:
        """The columns whose cells make a row what it is for this run: the label and every input column."""
        return [self.label, *[c for m in self.modality_specs for c in m["columns"]]]

    def _assign_splits(self) -> None:
        if self.fitted:
            self.split = np.full(self.n, "predict", dtype=object)
            return
        if self.stored_split is not None:
            self.split = self.stored_split
            return
        opt = self.options.splits
        keep = self.has_label.copy()
        given = None
        if opt.column in self.table:
            raw = [str(v).lower() if v is not None else "" for v in self.table[opt.column]]
            bad = [f"row {self.row_number[r]}: {v!r}" for r, v in enumerate(raw) if v not in ("", "train", "val", "test")]
            if bad:
                self.report.add("bad_split", "error", opt.column, "split values must be train, val or test (or empty to assign)",
                                bad, count=len(bad))
                raw = [v if v in ("train", "val", "test") else "" for v in raw]
            given = np.array(raw, dtype=object)
        groups = None
        if opt.group:
            g = self.table[opt.group]
            empty = [f"row {self.row_number[r]}" for r, v in enumerate(g) if v is None and keep[r]]
            if empty:
                self.report.add("missing_group", "error", opt.group, "every row needs a group value when splits.group is set", empty,
                                count=len(empty))
            groups = np.array([str(v) for v in g], dtype=object)
        split = np.array([""] * self.n, dtype=object)
        idx = np.flatnonzero(keep)
        if len(idx):
            try:
                res = assign_splits(self.y[idx], task=self.task, groups=None if groups is None else groups[idx],
                                    given=None if given is None else given[idx], val=opt.val, test=opt.test,
                                    seed=opt.seed, folds=opt.folds, fold=opt.fold)
            except ValueError as e:
                raise ManifestError(f"manifest {self.source}: {e} (splits.* options)") from None
            split[idx] = res.split
            for note in res.notes:
                self.report.add("split", "warning", self.label, note, count=len(idx))
            for note in res.info:
                self.report.add("split", "info", opt.column if given is not None else self.label, note, count=len(idx))
        self._keep_duplicates_together(split, given)
        self.split = split
        if groups is not None:
            spans = {}
            for gv in np.unique(groups[idx]):
                where = sorted(set(split[idx][groups[idx] == gv]))
                if len(where) > 1:
                    spans[gv] = where
            if spans:
                self.report.add("group_leakage", "error", opt.group, "groups found in more than one split (their rows must share one "
                                "split; fix the split column or leave it empty to assign)",
                                [f"{g}: {'/'.join(w)}" for g, w in spans.items()], count=len(spans))
        if self.task == "classification" and len(idx):
            small = []
            for c, name in enumerate(self.class_names):
                counts = [int(((split == s) & (self.y == c)).sum()) for s in ("train", "val", "test")]
                if counts[0] < 2 or (counts[1] == 0 and (split == "val").any()) or (counts[2] == 0 and (split == "test").any()):
                    small.append(f"{name}: {'/'.join(map(str, counts))}")
            if small:
                self.report.add("small_class", "warning", self.label,
                                "classes too small for the split (rows in train/val/test shown): they cannot be both learnt "
                                "and scored; add samples or merge classes", small, count=len(small))

    def _match_stored_splits(self, path: Path) -> None:
        """Give every row the split stored with the run (``splits.csv``) and put the rows in the training
        table's order, so that statistics and batches are those of training; a changed table is an error
        unless ``allow_changed_table``."""
        stored = run_splits.read_splits_csv(path)
        ids = self.row_ids(np.arange(self.n)) if self.options.id and self.options.id in self.table else None
        m = run_splits.match_rows(stored, ids, self.keys)
        if not m.ok:
            what = run_splits.describe_changes(m, stored, ids)
            if not self.options.allow_changed_table:
                raise ManifestError(
                    f"manifest {self.source} changed since the run was trained: its rows no longer match the splits stored "
                    f"in {path} ({what}). Evaluating or resuming on it would put rows in other splits than in training "
                    "(training rows scored as test). Start a new run on the changed table (polymodal train ... "
                    "name=<a new name>), or pass --allow-changed-table (Predictor: allow_changed_table=True) to use only "
                    "the rows whose stored split is known")
            self.report.add("table_changed", "warning", "", f"the table changed since the run was trained ({what}); only the "
                            "rows whose stored split is known are used (allow_changed_table); statistics are refitted on "
                            "the remaining train rows", count=len(m.added) + len(m.removed) + len(m.changed))
        else:
            self.report.add("stored_split", "info", "", f"every row has the split stored with the run in {path.name} "
                            f"(rows matched by {m.by})", count=self.n)
        known = [r for r in range(self.n) if m.stored[r] is not None]
        perm = sorted(known, key=lambda r: stored[m.stored[r]].row) + [r for r in range(self.n) if m.stored[r] is None]
        split = np.array([""] * self.n, dtype=object)
        for i, r in enumerate(perm):
            j = m.stored[r]
            if j is not None and stored[j].split in ("train", "val", "test"):
                split[i] = stored[j].split
        self.table = {c: [cells[r] for r in perm] for c, cells in self.table.items()}
        self.keys = [self.keys[r] for r in perm]
        self.input_keys = [self.input_keys[r] for r in perm]
        self.row_number = self.row_number[perm]
        self.stored_split = split

    def _keep_duplicates_together(self, split: np.ndarray, given: np.ndarray | None) -> None:
        """Report rows whose label and input cells are all equal, and keep each set of copies in one split."""
        cols = [c for m in self.modality_specs for c in m["columns"]]
        where: dict[str, list[int]] = {}
        for r in range(self.n):
            if split[r] != "" and any(self.table[c][r] is not None for c in cols):
                where.setdefault(self.keys[r], []).append(r)
        dups = [rows for rows in where.values() if len(rows) > 1]
        if not dups:
            return
        for rows in dups:
            target = split[rows[0]]
            for r in rows[1:]:
                if given is None or given[r] == "":
                    split[r] = target
        self.report.add("duplicate_rows", "warning", "", "rows whose label and input cells are all equal: each set of copies "
                        "is kept in one split (unless the split column says otherwise); remove the copies if they are not "
                        "meant, as they weigh more in training and scoring",
                        [f"rows {', '.join(str(self.row_number[r]) for r in rows)}" for rows in dups], count=len(dups))

    # ---- files and values

    def path(self, cell: str) -> Path:
        p = Path(cell).expanduser()
        return p if p.is_absolute() else self.root / p

    def _load_all(self) -> None:
        self.data: dict[str, list[Any]] = {}
        self.present: dict[str, np.ndarray] = {}
        self.dropped = np.zeros(self.n, dtype=bool)
        train = (self.split == "train") if not self.fitted else np.zeros(self.n, dtype=bool)
        for spec in self.modality_specs:
            loader = getattr(self, f"_load_{spec['kind']}")
            loader(spec, train)
        if not self.fitted:
            self._check_file_leakage()
        self.rows = {s: np.flatnonzero((self.split == s) & ~self.dropped) for s in ("train", "val", "test", "predict")}
        if not self.fitted:
            self._check_empty_splits()
        kept = np.zeros(self.n, dtype=bool)
        for rows in self.rows.values():
            kept[rows] = True
        empty = np.flatnonzero(kept & ~np.any([p for p in self.present.values()], axis=0))
        nothing = [f"row {self.row_number[r]}" for r in empty]
        self.no_input = np.zeros(self.n, dtype=bool)
        if nothing and self.fitted:  # at prediction: the row gets an output marked as having no input
            self.no_input[empty] = True
            self.rows["predict"] = np.setdiff1d(self.rows["predict"], empty)
            self.report.add("empty_row", "warning", "", "rows with no modality present (all file, text and tabular cells empty "
                            "or skipped): nothing to predict from, their output rows are marked no_input", nothing,
                            count=len(nothing))
        elif nothing:
            self.report.add("empty_row", "error", "", "rows with no modality present (all file, text and tabular cells empty or "
                            "skipped); remove them", nothing, count=len(nothing))

    def _check_empty_splits(self) -> None:
        """An empty split is an error that names the option (or the split column) that fills it."""
        opt = self.options.splits
        col = opt.column if opt.column in self.table else None
        if len(self.rows["train"]) == 0:
            self.report.add("empty_split", "error", col or "", "the train split is empty: mark rows train in the split column, "
                            "or leave split cells empty to be assigned", count=0)
            return
        for part, frac in (("val", opt.val), ("test", opt.test)):
            if len(self.rows[part]) or self.options.stored_splits:
                continue
            if frac == 0:
                how = f"splits.{part}=0 asks for none: set splits.{part} > 0 (default 0.15)"
            else:
                how = f"too few rows to carve one out with splits.{part}={frac:g}: raise splits.{part} or add rows"
            given = f", or mark rows {part} in the column {col!r}" if col else ""
            self.report.add("empty_split", "error", col or "", f"the {part} split is empty ({how}{given}); models are "
                            "selected on val and scored on test", count=0)

    def _bad_file(self, spec: dict, rows: list[tuple[int, str]], check: str, what: str, column: str | None = None,
                  skip: tuple[str, str] = ("treat as a missing modality", "the modality is missing for these rows")) -> None:
        """Report ``rows`` (row, message) as ``check``; ``bad_files`` decides: error, skip (``skip``: what it does,
        what was done) or drop the rows."""
        if not rows:
            return
        mode = self.options.bad_files
        how = ("bad_files=skip (polymodal predict --bad-files skip)" if self.fitted else "bad_files=skip")
        action = {"error": f"set {how} ({skip[0]}) or bad_files=drop (drop the row) to go on",
                  "skip": f"{skip[1]} (bad_files=skip)",
                  "drop": "these rows are dropped (bad_files=drop)"}[mode]
        self.report.add(check, "error" if mode == "error" else "info", column or spec["columns"][0], f"{what}; {action}",
                        [f"row {self.row_number[r]}: {msg}" for r, msg in rows], count=len(rows))
        if mode == "drop":
            self.dropped[[r for r, _ in rows]] = True

    def _files(self, spec: dict) -> list[tuple[int, Path]]:
        """(row, path) of the column's cells in use; cells whose extension does not fit the column's kind are
        reported as ``odd_cell`` (and follow ``bad_files``)."""
        col, kind = spec["columns"][0], spec["kind"]
        exts = FILE_EXTENSIONS[kind]
        out, odd = [], []
        for r, cell in enumerate(self.table[col]):
            if cell is None or (self.split[r] == "" and not self.fitted):
                continue
            if not str(cell).lower().endswith(exts):
                odd.append((r, repr(cell)))
                continue
            out.append((r, self.path(str(cell))))
        self._bad_file(spec, odd, "odd_cell", f"cells that do not fit the column's kind {kind} (expected a path ending in "
                       f"{' '.join(exts)}, like the rest of the column: a typo, or another kind of value)")
        return out

    def _run(self, spec: dict, read, items: list[tuple[int, Any]]) -> dict[int, Any]:
        """Apply ``read`` to every (row, source); file errors become report rows, the rest propagate."""
        got: dict[int, Any] = {}
        missing, broken = [], []
        for r, src in items:
            try:
                got[r] = read(src)
            except FileNotFoundError:  # MediaNotFoundError: the file is not there
                missing.append((r, str(src)))
            except (MediaError, OSError) as e:  # OSError: permissions, a symbolic link loop, an I/O error
                broken.append((r, f"{src}: {e}"))
        self._bad_file(spec, missing, "missing_file", "files that do not exist")
        self._bad_file(spec, broken, "unreadable_file", "files that cannot be read")
        return got

    def _store(self, spec: dict, got: dict[int, Any]) -> None:
        name = spec["name"]
        present = np.zeros(self.n, dtype=bool)
        present[list(got)] = True
        self.present[name] = present
        self.data[name] = [got.get(r) for r in range(self.n)] if self.options.cache_features else [None] * self.n

    # audio ---------------------------------------------------------------

    def _load_audio(self, spec: dict, train: np.ndarray) -> None:
        import soundfile as sf

        name, opt = spec["name"], self.options.audio
        files = self._files(spec)
        info: dict[int, tuple[int, int]] = {}
        for r, p in files:
            try:
                i = sf.info(str(p))
                info[r] = (int(i.samplerate), int(i.frames))
            except Exception:  # noqa: BLE001 - the full read below reports the file with its error
                pass
        if not self.fitted:
            rates = Counter(sr for r, (sr, _) in info.items() if train[r])
            if not rates:
                raise ManifestError(f"audio column {spec['columns'][0]!r}: no readable file in the train split")
            sr = opt.sample_rate or rates.most_common(1)[0][0]
            lengths = np.array([n / rate for r, (rate, n) in info.items() if train[r]])
            seconds = opt.seconds or min(30.0, float(np.percentile(lengths, 95, method="lower")))
            samples = max(1, int(round(seconds * sr)))
            hop = max(1, int(round(0.02 * sr)))
            n_fft = 1 << max(6, int(math.ceil(math.log2(0.032 * sr))))
            self.stats[name] = {"sample_rate": sr, "samples": samples,
                                "logmel": asdict(LogMelConfig(sample_rate=sr, n_fft=n_fft, hop_length=hop, n_mels=opt.n_mels))}
        st = self.stats[name]
        sr = st["sample_rate"]
        other = Counter(rate for rate, _ in info.values() if rate != sr)
        if other:
            self.report.add("resampled", "info", spec["columns"][0],
                            f"files at {', '.join(f'{k} Hz' for k in sorted(other))} resampled to {sr} Hz (audio.sample_rate)",
                            count=sum(other.values()))
        clip = st["samples"] / sr
        over = np.array([n / rate - clip for rate, n in info.values() if n * sr / rate > st["samples"] + 1])
        if len(over):
            by = (f"by {_secs(over[0])} s" if len(over) == 1 else
                  f"by {_secs(over.min())} to {_secs(over.max())} s, median {_secs(float(np.median(over)))} s")
            why = ("audio.seconds" if self.options.audio.seconds else
                   "the 95th percentile of the training clips' lengths, at most 30 s; set audio.seconds to choose")
            self.report.add("cropped", "info", spec["columns"][0], f"{len(over)} of {len(info)} clips longer than {clip:g} s "
                            f"cropped to it ({by}); the clip length is {why}", count=len(over))

        def read(p: Path) -> np.ndarray:
            # decode only what the clip needs (plus a margin for the resampling filter)
            x, _ = read_audio(p, sample_rate=sr, resample=True, max_seconds=clip + 0.05)
            out = np.zeros(st["samples"], dtype=np.float32)
            out[: min(len(x), len(out))] = x[: len(out)]
            return out

        got = self._run(spec, read, files)
        cfg = LogMelConfig(**st["logmel"])
        if self.options.cache_features and got:
            front = LogMel(cfg)
            rows = sorted(got)
            with torch.no_grad():
                for i in range(0, len(rows), 256):
                    chunk = rows[i:i + 256]
                    mel = front(torch.from_numpy(np.stack([got[r] for r in chunk])))
                    for r, m in zip(chunk, mel, strict=True):
                        got[r] = m.numpy()
            shape = (cfg.n_mels, cfg.frames(st["samples"]))
            self.schema_for[name] = Modality(name, "audio", shape, sr, "logmel", extra={"logmel": st["logmel"]})
        else:
            self.schema_for[name] = Modality(name, "audio", (st["samples"],), sr, "waveform", extra={"logmel": st["logmel"]})
        self._store(spec, got)
        self._reader(name, read, spec)

    # image ---------------------------------------------------------------

    def _load_image(self, spec: dict, train: np.ndarray) -> None:
        from PIL import Image

        name, opt = spec["name"], self.options.image
        files = self._files(spec)
        heads: dict[int, tuple[tuple[int, int], str]] = {}
        for r, p in files:
            try:
                with Image.open(p) as im:
                    heads[r] = ((im.height, im.width), im.mode)
            except Exception:  # noqa: BLE001 - reported by the full read below, with the file
                pass
        if not self.fitted:
            sizes = Counter(s for r, (s, _) in heads.items() if train[r])
            if not sizes:
                raise ManifestError(f"image column {spec['columns'][0]!r}: no readable image in the train split")
            size = tuple(opt.size) if opt.size else sizes.most_common(1)[0][0]
            mode = opt.mode
            if mode == "auto":
                mode = "L" if all(m in ("L", "1", "LA", "I", "I;16") for r, (_, m) in heads.items() if train[r]) else "RGB"
            self.stats[name] = {"size": list(size), "mode": mode}
        st = self.stats[name]
        size, mode = tuple(st["size"]), st["mode"]
        other = Counter(s for s, _ in heads.values() if tuple(s) != size)
        if other:
            self.report.add("resized", "info", spec["columns"][0],
                            f"images of {len(other)} other size(s) (e.g. {'x'.join(map(str, other.most_common(1)[0][0]))}) resized to "
                            f"{size[0]}x{size[1]} (height x width; image.size)", count=sum(other.values()))

        def read(p: Path) -> np.ndarray:
            x = read_image(p, mode=mode, size=size, resize=True)
            return x[None] if x.ndim == 2 else np.ascontiguousarray(x.transpose(2, 0, 1))  # (C, H, W) uint8

        got = self._run(spec, read, files)
        if "mean" not in st and not self.options.image.normalize:
            st["mean"], st["std"] = [0.0] * (1 if mode == "L" else 3), [1.0] * (1 if mode == "L" else 3)
        if "mean" not in st:
            tr = [got[r] for r in got if train[r]]
            if not tr:
                raise ManifestError(f"image column {spec['columns'][0]!r}: no readable image in the train split")
            stack = np.stack(tr).astype(np.float64) / 255.0
            st["mean"] = stack.mean(axis=(0, 2, 3)).tolist()
            st["std"] = np.maximum(stack.std(axis=(0, 2, 3)), 1e-3).tolist()
        c = 1 if mode == "L" else 3
        self.schema_for[name] = Modality(name, "image", (c, *size), representation="pixels",
                                         extra={"mean": st["mean"], "std": st["std"]})
        self._image_norm[name] = (torch.tensor(st["mean"]).view(-1, 1, 1), torch.tensor(st["std"]).view(-1, 1, 1))
        self._store(spec, got)
        self._reader(name, read, spec)

    # video ---------------------------------------------------------------

    def _load_video(self, spec: dict, train: np.ndarray) -> None:
        name, opt = spec["name"], self.options.video
        if not self.fitted:
            self.stats[name] = {"frames": opt.frames, "size": list(opt.size), "mode": opt.mode}
        st = self.stats[name]

        def read(p: Path) -> np.ndarray:
            x = read_video(p, num_frames=st["frames"], size=tuple(st["size"]), mode=st["mode"])
            return np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # (T, C, H, W) uint8

        got = self._run(spec, read, self._files(spec))
        c = 3 if st["mode"] == "RGB" else 1
        self.schema_for[name] = Modality(name, "video", (st["frames"], c, *st["size"]), representation="pixels")
        self._store(spec, got)
        self._reader(name, read, spec)

    # time series ------------------------------------------------------------

    def _load_timeseries(self, spec: dict, train: np.ndarray) -> None:
        name, opt = spec["name"], self.options.timeseries
        layout = self.stats.get(name, {}).get("layout", opt.layout)
        max_mb = opt.max_mb

        def parse(p: Path) -> np.ndarray:
            from polymodal.data.io import check_file

            p = check_file(p, "time-series file")
            if p.suffix.lower() == ".npy":
                x = read_npy(p, max_bytes=int(max_mb * 2**20), limit_name="timeseries.max_mb")
            else:
                x = read_series_csv(p)
            return fit_layout(p, x)

        def read_series_csv(p: Path) -> np.ndarray:
            try:
                lines = p.read_text().strip().splitlines()
                first = lines[0].split(",") if lines else []
                skip = 1 if first and not all(_is_number(v) for v in first) else 0
                x = np.loadtxt(p, delimiter=",", skiprows=skip, ndmin=2, dtype=np.float64)
            except (ValueError, OSError, UnicodeDecodeError, IndexError) as e:
                raise MediaError(f"cannot read time series {p}: {e}; expected a .npy array or a CSV of numbers") from e
            return x

        def fit_layout(p: Path, x: np.ndarray) -> np.ndarray:
            with np.errstate(over="ignore"):
                x = np.asarray(x, dtype=np.float32)
            if x.ndim == 1:
                x = x[:, None]
            if x.ndim != 2 or x.size == 0:
                raise MediaError(f"time series {p} has shape {x.shape}; expected (time steps, channels) with at least one value")
            if layout == "channel_major":
                x = x.T
            if not np.isfinite(x).all():
                raise MediaError(f"time series {p} holds NaN or infinite values; fill or drop them")
            return x

        raw = self._run(spec, parse, self._files(spec))
        if not self.fitted:
            tr = [raw[r] for r in raw if train[r]]
            if not tr:
                raise ManifestError(f"time-series column {spec['columns'][0]!r}: no readable file in the train split")
            chans = Counter(x.shape[1] for x in tr)
            channels = chans.most_common(1)[0][0]
            length = opt.length or min(4096, max(len(x) for x in tr))
            cat = np.concatenate([x for x in tr if x.shape[1] == channels])
            self.stats[name] = {"layout": layout, "channels": int(channels), "length": int(length),
                                "mean": cat.mean(axis=0).tolist(), "std": np.maximum(cat.std(axis=0), 1e-6).tolist()}
        st = self.stats[name]
        wrong = [(r, f"{x.shape[1]} channels") for r, x in raw.items() if x.shape[1] != st["channels"]]
        if wrong:
            self._bad_file(spec, wrong, "bad_channels", f"series whose channel count is not {st['channels']} (check timeseries.layout)")
            for r, _ in wrong:
                raw.pop(r)
        mean, std = np.array(st["mean"], np.float32), np.array(st["std"], np.float32)
        other = sum(1 for x in raw.values() if len(x) != st["length"])
        if other:
            self.report.add("length", "info", spec["columns"][0], f"series padded with zeros or cropped to {st['length']} steps "
                            "(timeseries.length)", count=other)

        def fit(x: np.ndarray) -> np.ndarray:
            out = np.zeros((st["length"], st["channels"]), dtype=np.float32)
            x = (x[: st["length"]] - mean) / std
            out[: len(x)] = x
            return out

        got = {r: fit(x) for r, x in raw.items()}
        self.schema_for[name] = Modality(name, "timeseries", (st["length"], st["channels"]), representation="features")
        self._store(spec, got)
        self._reader(name, lambda p: fit(parse(p)), spec)

    # text ------------------------------------------------------------------

    def _tokenizer(self, st: dict[str, Any]):
        if st["tokenizer"] == "bytes":
            return ByteTokenizer(st["max_length"])
        return HashingWordTokenizer(st["vocab_size"], st["max_length"])

    def _load_text(self, spec: dict, train: np.ndarray) -> None:
        name, opt, col = spec["name"], self.options.text, spec["columns"][0]
        if not self.fitted:
            self.stats[name] = {"tokenizer": opt.tokenizer, "max_length": opt.max_length, "vocab_size": opt.vocab_size}
        st = self.stats[name]
        tok = self._tokenizer(st)
        items = [(r, v) for r, v in enumerate(self.table[col]) if v is not None and (self.fitted or self.split[r] != "")]

        def read(cell: Any) -> np.ndarray:
            s = str(cell)
            if s.lower().endswith(".txt"):
                s = read_text(self.path(s))
            return tok.encode(s).numpy()

        got = self._run(spec, read, items)
        self.schema_for[name] = Modality(name, "text", (st["max_length"],), representation="tokens",
                                         extra={"vocab_size": tok.vocab_size, "tokenizer": st["tokenizer"]})
        self._store(spec, got)
        self._reader(name, read, spec, inline=True)

    # tabular ---------------------------------------------------------------

    def _load_tabular(self, spec: dict, train: np.ndarray) -> None:
        name = spec["name"]
        cols = spec["columns"]
        active = self.split != "" if not self.fitted else np.ones(self.n, dtype=bool)
        numeric_cols = ([c for c in cols if self.kinds[c] == "numeric"] if not self.fitted
                        else [num["column"] for num in self.stats[name]["numeric"]])
        for c in numeric_cols:
            cells = self.table[c]
            bad = [(int(r), repr(cells[r])) for r in np.flatnonzero(active) if cells[r] is not None and _finite(cells[r]) is None]
            self._bad_file(spec, bad, "bad_number", "cells that are not finite numbers in a numeric column (words, NaN, "
                           "infinite or too large values; fix them, leave them empty to impute them, or set the column's kind "
                           "to categorical in the schema)", column=c,
                           skip=("treat the cell as empty: imputed", "these cells are treated as empty: imputed"))
        if not self.fitted:
            numeric, categorical = [], []
            for c in cols:
                cells = self.table[c]
                if self.kinds[c] == "numeric":
                    vals = np.array([x for x in (_finite(cells[r]) for r in np.flatnonzero(train) if cells[r] is not None)
                                     if x is not None])
                    mean = float(vals.mean()) if len(vals) else 0.0
                    std = float(vals.std()) if len(vals) > 1 and vals.std() > 0 else 1.0
                    numeric.append({"column": c, "mean": mean, "std": std})
                else:
                    vocab = sorted({str(cells[r]) for r in np.flatnonzero(train) if cells[r] is not None})
                    categorical.append({"column": c, "values": vocab})
            self.stats[name] = {"numeric": numeric, "categorical": categorical}
        st = self.stats[name]
        width = 2 * len(st["numeric"]) + sum(len(c["values"]) + 1 for c in st["categorical"])
        got: dict[int, np.ndarray] = {}
        imputed: Counter = Counter()
        unseen: dict[str, list[str]] = {}
        for r in np.flatnonzero(active):
            cells = [self.table[c][r] for c in cols]
            if all(v is None for v in cells):
                continue
            vec = np.zeros(width, dtype=np.float32)
            k = 0
            for num in st["numeric"]:
                v = self.table[num["column"]][r]
                x = None if v is None else _finite(v)
                if x is None:
                    vec[k + 1] = 1.0  # indicator: the value was missing (imputed with the train mean -> 0 after scaling)
                    imputed[num["column"]] += v is None  # cells that are not numbers are reported as bad_number
                else:
                    vec[k] = (x - num["mean"]) / num["std"]
                k += 2
            for cat in st["categorical"]:
                v = self.table[cat["column"]][r]
                vocab = cat["values"]
                if v is not None and str(v) in vocab:
                    vec[k + vocab.index(str(v))] = 1.0
                elif v is not None:
                    vec[k + len(vocab)] = 1.0  # a value not seen in training
                    unseen.setdefault(cat["column"], []).append(str(v))
                k += len(vocab) + 1
            got[int(r)] = vec
        for c, n in imputed.items():
            self.report.add("imputed", "info", c, "empty numeric cells imputed with the training mean, with a missing-value indicator",
                            count=n)
        for c, vals in unseen.items():
            self.report.add("unseen_category", "info", c, "values not seen in the train split, encoded as 'other'",
                            sorted(set(vals)), count=len(vals))
        self.schema_for[name] = Modality(name, "tabular", (width,), representation="features",
                                         extra={"columns": cols})
        self.present[name] = np.zeros(self.n, dtype=bool)
        self.present[name][list(got)] = True
        self.data[name] = [got.get(r) for r in range(self.n)]  # always kept: tiny

    # ---- shared

    def _reader(self, name: str, read, spec: dict, inline: bool = False) -> None:
        col = spec["columns"][0]
        self._readers[name] = (read, col, inline)

    def item(self, name: str, row: int) -> torch.Tensor | None:
        """The model input of modality ``name`` for table row ``row`` (None when missing)."""
        if not self.present[name][row]:
            return None
        x = self.data[name][row]
        if x is None:  # not cached: read again
            read, col, inline = self._readers[name]
            cell = self.table[col][row]
            x = read(cell if inline else self.path(str(cell)))
        mod = self.schema_for[name]
        if mod.kind == "image":
            mean, std = self._image_norm[name]
            return (torch.from_numpy(x).float().div_(255.0) - mean) / std
        if mod.kind == "video":
            return torch.from_numpy(x).float().div_(255.0)
        if mod.kind == "text":
            return torch.from_numpy(np.asarray(x, dtype=np.int64))
        return torch.from_numpy(np.asarray(x, dtype=np.float32))

    def _check_file_leakage(self) -> None:
        for spec in self.modality_specs:
            if spec["kind"] not in FILE_EXTENSIONS:
                continue
            col = spec["columns"][0]
            seen: dict[str, set[str]] = {}
            for r, cell in enumerate(self.table[col]):
                if cell is None or self.split[r] == "" or self.dropped[r]:
                    continue
                if spec["kind"] == "text" and not str(cell).lower().endswith(".txt"):
                    continue
                seen.setdefault(_resolved(self.path(str(cell))), set()).add(self.split[r])
            leaks = {p: s for p, s in seen.items() if len(s) > 1}
            if leaks:
                self.report.add("file_leakage", "error", col, "the same file is used in more than one split; each file may belong "
                                "to one split only (fix the split column, or use splits.group)",
                                [f"{p}: {'/'.join(sorted(s))}" for p, s in leaks.items()], count=len(leaks))

    @property
    def schema(self) -> tuple[Modality, ...]:
        return tuple(self.schema_for[m["name"]] for m in self.modality_specs)

    def row_ids(self, rows: np.ndarray) -> list[str]:
        col = self.options.id
        if col and col in self.table:
            return [str(self.table[col][r]) for r in rows]
        return [str(int(self.row_number[r]) - 1) for r in rows]

    def dataset(self, split: str) -> ManifestDataset:
        """The rows of ``split`` ("train", "val", "test"; "predict" for a manifest read with a state)."""
        if split not in self.rows:
            raise ValueError(f"split {split!r}; expected one of {list(self.rows)}")
        rows = self.rows[split]
        if split != "predict":
            rows = rows[self.has_label[rows]]
        return ManifestDataset(self, split, rows)

    def splits_csv(self) -> str:
        """``row,id,split,content,inputs`` for every row (empty split: no label; dropped rows say so; content: a
        hash of the row's label and input cells, which matches rows when the table is read again; inputs: the
        same without the label, which finds training rows in a table to predict)."""
        ids = self.row_ids(np.arange(self.n))
        lines = ["row,id,split,content,inputs"]
        for r in range(self.n):
            s = "dropped" if self.dropped[r] else str(self.split[r])
            lines.append(f"{self.row_number[r]},{_csv(ids[r])},{s},{self.keys[r]},{self.input_keys[r]}")
        return "\n".join(lines) + "\n"


def _secs(v: float) -> str:
    return f"{round(float(v), 2):g}"


def _resolved(p: Path) -> str:
    """The real path of ``p``; its absolute path when it cannot be resolved (a symbolic link loop)."""
    try:
        return str(p.resolve())
    except (OSError, RuntimeError):
        return str(p.absolute())


def _csv(s: str) -> str:
    return f'"{s.replace(chr(34), chr(34) * 2)}"' if any(c in s for c in ',"\n') else s


def _label_text(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, str) and _is_number(v) and float(v).is_integer() and "." in v:
        return str(int(float(v)))
    return str(v)


class ManifestDataset(MultimodalDataset):
    """The rows of one split of a :class:`Manifest`."""

    name = "manifest"

    def __init__(self, manifest: Manifest, split: str, rows: np.ndarray) -> None:
        self.manifest, self.split, self.rows = manifest, split, np.asarray(rows, dtype=np.int64)
        self.schema = manifest.schema
        self.task = manifest.task  # type: ignore[assignment]
        self.class_names = manifest.class_names
        self.num_outputs = len(manifest.class_names) if manifest.task == "classification" else 1
        y = manifest.y[self.rows]
        self.labels = np.where(y < 0, 0, y) if manifest.task == "classification" else np.nan_to_num(y)
        self.has_label = manifest.has_label[self.rows]
        self.provenance = {
            "manifest": manifest.source,
            "manifest_sha256": manifest.sha256,
            "rows": int(len(self.rows)),
            "split_counts": {s: int(len(r)) for s, r in manifest.rows.items() if len(r)},
            "problems": len(manifest.report.problems),
        }

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> Sample:
        i = range(len(self))[i]
        r = int(self.rows[i])
        inputs = {m.name: self.manifest.item(m.name, r) for m in self.schema}
        return {"inputs": inputs, "label": self.labels[i].item(), "index": i}

    def row_ids(self) -> list[str]:
        return self.manifest.row_ids(self.rows)

    def run_files(self) -> dict[str, str]:
        """Files a run keeps beside its checkpoints: the fitted state, the split of every row, the check."""
        m = self.manifest
        files = {"data_state.json": json.dumps(m.state(), indent=1), "splits.csv": m.splits_csv(),
                 "data_check.md": m.report.to_markdown()}
        if m.options.stored_splits:  # a resumed run: the split of every row stays as stored
            del files["splits.csv"]
        return files


def _sha256(source: str) -> str | None:
    p = Path(source)
    if not p.is_file():
        return None
    return hashlib.sha256(p.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- entry points

_CACHE: dict[str, Manifest] = {}


def _schema_mapping(schema: Mapping[str, str] | str | os.PathLike | None) -> dict[str, str]:
    if schema is None:
        return {}
    if isinstance(schema, Mapping):
        return {str(k): str(v) for k, v in schema.items()}
    p = Path(schema)
    if not p.is_file():
        raise FileNotFoundError(f"schema file {p} does not exist; pass a mapping column -> kind or a YAML file of one")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ManifestError(f"schema file {p} is not a plain YAML mapping column -> kind ({', '.join(COLUMN_KINDS)}): "
                            f"{e}; write it as lines such as `notes: text` (tags such as !!python/... are not read)") from None
    if not isinstance(data, dict):
        raise ManifestError(f"schema file {p} must hold a mapping column -> kind ({', '.join(COLUMN_KINDS)})")
    return {str(k): str(v) for k, v in data.items()}


def from_manifest(
    source: Any,
    label: str | None = None,
    root: str | os.PathLike | None = None,
    schema: Mapping[str, str] | str | os.PathLike | None = None,
    **options: Any,
) -> Manifest:
    """Read, check and split a manifest (see the module docstring); ``options`` are :class:`ManifestOptions`
    keys (``splits={"group": "patient"}``, ``image={"size": [64, 64]}``, ``bad_files="skip"``, ...)."""
    opts = {**options, "label": label, "root": str(root) if root is not None else options.get("root"),
            "schema": _schema_mapping(schema or options.pop("schema", None))}
    if isinstance(source, str | os.PathLike) and Path(source).is_dir():
        from polymodal.data.datasets.folder import folder_table

        table, base = folder_table(source)
        opts["root"] = opts["root"] or str(base)
        opts["label"] = opts["label"] or "label"
        opts.setdefault("id", "sample_id")
        return Manifest(table, opts, name=str(source))
    return Manifest(source, opts)


def cached_manifest(source: str | os.PathLike, options: Mapping[str, Any]) -> Manifest:
    """One :class:`Manifest` per (file, its size and mtime, options) in this process: the splits of a run
    share one read and one check."""
    p = Path(source).expanduser().resolve()
    if not p.exists():
        raise FileNotFoundError(f"data.manifest {p} does not exist; pass a CSV, Parquet or JSON Lines file or a dataset folder")
    stat = p.stat()
    key = json.dumps([str(p), stat.st_size, stat.st_mtime_ns, options], sort_keys=True, default=str)
    if key not in _CACHE:
        opts = dict(options)
        _CACHE.clear()  # keep only the latest table in memory
        m = from_manifest(p, label=opts.pop("label", None), root=opts.pop("root", None),
                          schema=opts.pop("schema", None), **opts)
        _print_check(m)
        _CACHE[key] = m
    return _CACHE[key]


def _print_check(m: Manifest) -> None:
    """Print the data check before training (every column's kind, what was changed); when the run's
    stored splits are used, only what is not information."""
    if m.options.stored_splits:
        for p in m.report.problems:
            if p.severity != "info":
                print(f"{p.severity}: {p.check}: {p.detail}", file=sys.stderr)
        return
    print(m.report.to_markdown(), file=sys.stderr)


@DATASETS.register("manifest", tiny={"manifest": "example"})
def build_manifest(split: str, manifest: str | None = None, root: str | None = None, cache_features: bool = True,
                   **options: Any) -> ManifestDataset:
    """A split of a table of samples (``data.manifest``; ``data.label`` names the label column).

    ``manifest="example"`` is the small example table shipped with polymodal (spoken and handwritten
    digits with a caption and two numbers per row)."""
    if not manifest:
        raise ManifestError("dataset 'manifest' needs data.manifest=<table file or dataset folder> and data.label=<column>")
    if manifest == "example":
        from polymodal.data.datasets.example import example_manifest

        manifest = str(example_manifest())
        options.setdefault("label", "digit")
        options.setdefault("id", "id")
    opts = {**options, "cache_features": cache_features}
    if root is not None:
        opts["root"] = root
    return cached_manifest(manifest, opts).dataset(split)
