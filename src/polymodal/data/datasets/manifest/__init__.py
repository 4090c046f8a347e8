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

The package, one concern per module:

    table.py     reading the table (pandas: CSV, Parquet, JSON Lines, a DataFrame)
    options.py   ManifestOptions (the options of each column kind live beside its codec)
    kinds.py     the kind of a column, inferred from its cells
    layout.py    columns -> modalities, the task and the classes (or a saved state restored)
    splits.py    labels, the split of every row, the splits stored with a run
    checks.py    the data check: bad cells, duplicates, files and groups in two splits, empty splits
    loading.py   every cell read once through the codec of its column's kind
    codecs/      one codec per column kind, registered in CODECS
    core.py      Manifest;  dataset.py: ManifestDataset;  entry.py: from_manifest, the registered dataset
"""

from polymodal.data.datasets.manifest.codecs import CODECS, Codec, CodecOptions, ColumnContext
from polymodal.data.datasets.manifest.codecs.audio import AudioOptions
from polymodal.data.datasets.manifest.codecs.image import ImageOptions
from polymodal.data.datasets.manifest.codecs.text import TextOptions
from polymodal.data.datasets.manifest.codecs.timeseries import TimeseriesOptions
from polymodal.data.datasets.manifest.codecs.video import VideoOptions
from polymodal.data.datasets.manifest.core import Manifest
from polymodal.data.datasets.manifest.dataset import ManifestDataset
from polymodal.data.datasets.manifest.entry import (
    build_manifest,
    cached_manifest,
    from_manifest,
    schema_mapping,
)
from polymodal.data.datasets.manifest.entry import schema_mapping as _schema_mapping  # noqa: F401  (older name)
from polymodal.data.datasets.manifest.errors import ManifestError
from polymodal.data.datasets.manifest.kinds import (
    COLUMN_KINDS,
    FILE_EXTENSIONS,
    column_kinds,
    infer_kind,
    infer_kind_detail,
)
from polymodal.data.datasets.manifest.options import (
    STATE_VERSION,
    ManifestOptions,
    SplitOptions,
    parse_options,
)
from polymodal.data.datasets.manifest.table import TABLE_FORMATS, read_table

__all__ = [
    "CODECS",
    "COLUMN_KINDS",
    "FILE_EXTENSIONS",
    "STATE_VERSION",
    "TABLE_FORMATS",
    "AudioOptions",
    "Codec",
    "CodecOptions",
    "ColumnContext",
    "ImageOptions",
    "Manifest",
    "ManifestDataset",
    "ManifestError",
    "ManifestOptions",
    "SplitOptions",
    "TextOptions",
    "TimeseriesOptions",
    "VideoOptions",
    "build_manifest",
    "cached_manifest",
    "column_kinds",
    "from_manifest",
    "infer_kind",
    "infer_kind_detail",
    "parse_options",
    "read_table",
    "schema_mapping",
]
