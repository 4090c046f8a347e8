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

Splits come from a ``split`` column (train/val/test; empty cells are assigned), else a seeded split
stratified by label, grouped by ``splits.group`` when given, optionally k-fold (``splits.folds``,
``splits.fold``). Everything the model needs to read new rows the same way (class names, image size,
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
from polymodal.data.io import MediaError, read_audio, read_image, read_text, read_video
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
    seconds: float | None = Field(None, gt=0)  # clip length; default: the longest training file, at most 30 s
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
    bad_files: Literal["error", "skip", "drop"] = "error"
    cache_features: bool = True  # keep decoded inputs (and log-mels) in memory after the first read
    splits: SplitOptions = Field(default_factory=SplitOptions)
    audio: AudioOptions = Field(default_factory=AudioOptions)
    image: ImageOptions = Field(default_factory=ImageOptions)
    video: VideoOptions = Field(default_factory=VideoOptions)
    timeseries: TimeseriesOptions = Field(default_factory=TimeseriesOptions)
    text: TextOptions = Field(default_factory=TextOptions)

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


def read_table(source: Any) -> tuple[dict[str, list[Any]], str, Path | None]:
    """(columns -> cells, a name for messages, the folder relative paths default to)."""
    import pandas as pd

    if isinstance(source, pd.DataFrame):
        df, name, folder = source, "the data frame", None
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"manifest {path} does not exist; pass a CSV, Parquet or JSON Lines file (or a data frame)")
        suffix = path.suffix.lower()
        try:
            if suffix in (".csv", ".tsv"):
                df = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=False)
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
    table = {str(c): [_cell(v) for v in df[c].tolist()] for c in df.columns}
    return table, name, folder


def _is_number(v: Any) -> bool:
    if isinstance(v, int | float):
        return True
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


def infer_kind(values: Sequence[Any]) -> str:
    """The kind of a column from its non-empty cells (see the module docstring)."""
    cells = [v for v in values if v is not None]
    if not cells:
        return "ignore"
    if all(isinstance(v, str) for v in cells):
        kinds = set()
        for v in cells:
            ext = os.path.splitext(v.lower())[1]
            kinds.add(next((k for k, exts in FILE_EXTENSIONS.items() if ext in exts), None))
        if None not in kinds and len(kinds) == 1:
            return kinds.pop()
    if all(_is_number(v) for v in cells):
        return "numeric"
    words = np.mean([len(str(v).split()) for v in cells])
    distinct = len(set(map(str, cells)))
    return "text" if words >= 3 or distinct > max(20, len(cells) // 2) else "categorical"


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
        self.table, self.source, folder = read_table(table)
        self.source = name or self.source
        root = self.options.root
        self.root = Path(root).expanduser() if root else (folder or Path.cwd())
        self.report = ValidationReport(self.source)
        self.schema_for: dict[str, Modality] = {}
        self._readers: dict[str, tuple[Any, str, bool]] = {}
        self._image_norm: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # (C, 1, 1) train mean and std
        self.sha256 = _sha256(self.source)  # of the table file; None for a data frame or a folder
        self.n = len(next(iter(self.table.values())))
        self.fitted = state is not None
        if state is not None:
            self._load_state(dict(state))
        else:
            self._infer_layout()
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
        kinds: dict[str, str] = {}
        for col, cells in self.table.items():
            if col in reserved:
                continue
            given = opt.schema_.get(col)
            if given is not None and given not in COLUMN_KINDS:
                raise ManifestError(f"schema: column {col!r} has kind {given!r}; allowed kinds: {', '.join(COLUMN_KINDS)}")
            kinds[col] = given or infer_kind(cells)
            if given is None and kinds[col] == "ignore":
                self.report.add("empty_column", "warning", col, "every cell is empty: the column is ignored", count=self.n)
            if given is None and kinds[col] in ("text", "categorical") and _looks_like_id(cells):
                kinds[col] = "ignore"
                self.report.add("id_column", "info", col, "every cell is a different single word, like an identifier: the column "
                                f"is ignored (set id={col} to name predictions by it, or schema: {{{col}: text}} to use it)",
                                [c for c in cells if c is not None][:3], count=self.n)
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
        needed = sorted({c for m in self.modality_specs for c in m["columns"]} - set(self.table))
        if needed:
            raise ManifestError(f"manifest {self.source} lacks the columns {needed} that the model was trained with; "
                                "add them (empty cells are fine: the modality is then missing)")

    def state(self) -> dict[str, Any]:
        """Everything needed to read new rows as this manifest read its training rows (JSON-able)."""
        return {"version": STATE_VERSION, "label": self.label, "task": self.task, "class_names": list(self.class_names),
                "columns": self.kinds, "modalities": self.modality_specs, "stats": self.stats,
                "options": self.options.model_dump(mode="json", by_alias=True)}

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
                    unknown.append(f"row {r + 1}: {t!r}")
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
            bad = [f"row {r + 1}: {v!r}" for r, v in enumerate(cells) if v is not None and not _is_number(v)]
            if bad:
                self.report.add("bad_target", "error", self.label, "regression targets must be numbers", bad, count=len(bad))
            self.y = np.array([float(v) if v is not None and _is_number(v) else np.nan for v in cells], dtype=np.float32)
        if not self.fitted and not self.has_label.all():
            rows = [f"row {r + 1}" for r in np.flatnonzero(~self.has_label)]
            self.report.add("missing_label", "warning", self.label, "rows without a label are left out of training and evaluation "
                            "(predict them with Predictor.predict)", rows, count=len(rows))

    def _assign_splits(self) -> None:
        if self.fitted:
            self.split = np.full(self.n, "predict", dtype=object)
            return
        opt = self.options.splits
        keep = self.has_label.copy()
        given = None
        if opt.column in self.table:
            raw = [str(v).lower() if v is not None else "" for v in self.table[opt.column]]
            bad = [f"row {r + 1}: {v!r}" for r, v in enumerate(raw) if v not in ("", "train", "val", "test")]
            if bad:
                self.report.add("bad_split", "error", opt.column, "split values must be train, val or test (or empty to assign)",
                                bad, count=len(bad))
                raw = [v if v in ("train", "val", "test") else "" for v in raw]
            given = np.array(raw, dtype=object)
        groups = None
        if opt.group:
            g = self.table[opt.group]
            empty = [f"row {r + 1}" for r, v in enumerate(g) if v is None and keep[r]]
            if empty:
                self.report.add("missing_group", "error", opt.group, "every row needs a group value when splits.group is set", empty,
                                count=len(empty))
            groups = np.array([str(v) for v in g], dtype=object)
        split = np.array([""] * self.n, dtype=object)
        idx = np.flatnonzero(keep)
        if len(idx):
            res = assign_splits(self.y[idx], task=self.task, groups=None if groups is None else groups[idx],
                                given=None if given is None else given[idx], val=opt.val, test=opt.test,
                                seed=opt.seed, folds=opt.folds, fold=opt.fold)
            split[idx] = res.split
            for note in res.notes:
                self.report.add("split", "warning", self.label, note, count=len(idx))
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
        if not self.fitted and len(self.rows["train"]) == 0:
            self.report.add("empty_split", "error", "", "the train split is empty", count=0)
        kept = np.zeros(self.n, dtype=bool)
        for rows in self.rows.values():
            kept[rows] = True
        nothing = [f"row {r + 1}" for r in np.flatnonzero(kept & ~np.any([p for p in self.present.values()], axis=0))]
        if nothing:
            self.report.add("empty_row", "error", "", "rows with no modality present (all file, text and tabular cells empty or "
                            "skipped); remove them", nothing, count=len(nothing))

    def _bad_file(self, spec: dict, rows: list[tuple[int, str]], check: str, what: str) -> None:
        if not rows:
            return
        mode = self.options.bad_files
        action = {"error": "set bad_files=skip (treat as a missing modality) or bad_files=drop (drop the row) to go on",
                  "skip": "the modality is missing for these rows (bad_files=skip)",
                  "drop": "these rows are dropped (bad_files=drop)"}[mode]
        self.report.add(check, "error" if mode == "error" else "info", spec["columns"][0], f"{what}; {action}",
                        [f"row {r + 1}: {msg}" for r, msg in rows], count=len(rows))
        if mode == "drop":
            self.dropped[[r for r, _ in rows]] = True

    def _files(self, spec: dict) -> list[tuple[int, Path]]:
        col = spec["columns"][0]
        out = []
        for r, cell in enumerate(self.table[col]):
            if cell is None or (self.split[r] == "" and not self.fitted):
                continue
            out.append((r, self.path(str(cell))))
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
            except MediaError as e:
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
            longest = max(n / rate for r, (rate, n) in info.items() if train[r])
            seconds = opt.seconds or min(30.0, longest)
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
        longer = sum(1 for rate, n in info.values() if n * sr / rate > st["samples"] + 1)
        if longer:
            self.report.add("cropped", "info", spec["columns"][0], f"clips longer than {st['samples'] / sr:g} s cropped (audio.seconds)",
                            count=longer)

        def read(p: Path) -> np.ndarray:
            x, _ = read_audio(p, sample_rate=sr, resample=True)
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

        def parse(p: Path) -> np.ndarray:
            from polymodal.data.io import check_file

            p = check_file(p, "time-series file")
            try:
                if p.suffix.lower() == ".npy":
                    x = np.load(p, allow_pickle=False)
                else:
                    lines = p.read_text().strip().splitlines()
                    first = lines[0].split(",") if lines else []
                    skip = 1 if first and not all(_is_number(v) for v in first) else 0
                    x = np.loadtxt(p, delimiter=",", skiprows=skip, ndmin=2, dtype=np.float64)
            except (ValueError, OSError, UnicodeDecodeError) as e:
                raise MediaError(f"cannot read time series {p}: {e}; expected a .npy array or a CSV of numbers") from e
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
        if not self.fitted:
            numeric, categorical = [], []
            for c in cols:
                cells = self.table[c]
                if self.kinds[c] == "numeric":
                    bad = [f"row {r + 1}: {v!r}" for r, v in enumerate(cells) if v is not None and not _is_number(v)]
                    if bad:
                        self.report.add("bad_number", "error", c, "cells that are not numbers in a numeric column (or set the column's "
                                        "kind to categorical in the schema)", bad, count=len(bad))
                        continue
                    vals = np.array([float(cells[r]) for r in np.flatnonzero(train) if cells[r] is not None])
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
        active = self.split != "" if not self.fitted else np.ones(self.n, dtype=bool)
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
                if v is None or not _is_number(v):
                    vec[k + 1] = 1.0  # indicator: the value was missing (imputed with the train mean -> 0 after scaling)
                    imputed[num["column"]] += 1
                else:
                    vec[k] = (float(v) - num["mean"]) / num["std"]
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
                seen.setdefault(str(self.path(str(cell)).resolve()), set()).add(self.split[r])
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
        return [str(int(r)) for r in rows]

    def dataset(self, split: str) -> ManifestDataset:
        """The rows of ``split`` ("train", "val", "test"; "predict" for a manifest read with a state)."""
        if split not in self.rows:
            raise ValueError(f"split {split!r}; expected one of {list(self.rows)}")
        rows = self.rows[split]
        if split != "predict":
            rows = rows[self.has_label[rows]]
        return ManifestDataset(self, split, rows)

    def splits_csv(self) -> str:
        """``row,id,split`` for every row (empty split: no label; dropped rows say so)."""
        ids = self.row_ids(np.arange(self.n))
        lines = ["row,id,split"]
        for r in range(self.n):
            s = "dropped" if self.dropped[r] else str(self.split[r])
            lines.append(f"{r + 1},{_csv(ids[r])},{s}")
        return "\n".join(lines) + "\n"


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
        return {"data_state.json": json.dumps(m.state(), indent=1), "splits.csv": m.splits_csv(),
                "data_check.md": m.report.to_markdown()}


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
    data = yaml.safe_load(p.read_text()) or {}
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
        _CACHE[key] = from_manifest(p, label=opts.pop("label", None), root=opts.pop("root", None),
                                    schema=opts.pop("schema", None), **opts)
    return _CACHE[key]


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
