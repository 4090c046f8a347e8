"""The :class:`Manifest`: a table read, checked, split and fitted (see the package docstring)."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from polymodal.data.datasets.manifest import content, layout, loading, splits
from polymodal.data.datasets.manifest.options import STATE_VERSION, ManifestOptions, parse_options
from polymodal.data.datasets.manifest.table import read_table_info, report_table_info
from polymodal.data.schema import Modality
from polymodal.data.validation import ValidationReport
from polymodal.tasks import Task, get_task

if TYPE_CHECKING:
    from polymodal.data.datasets.manifest.codecs import Codec
    from polymodal.data.datasets.manifest.dataset import ManifestDataset


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
        self.table, self.source, folder, info = read_table_info(table, self.options.delimiter)
        self.source = name or self.source
        root = self.options.root
        self.root = Path(root).expanduser() if root else (folder or Path.cwd())
        self.report = ValidationReport(self.source)
        self.nested = list(info["nested"])
        report_table_info(self.report, info, len(next(iter(self.table.values()))))  # separator, decimal commas
        self.schema_for: dict[str, Modality] = {}
        self.codecs: dict[str, Codec] = {}  # modality -> its codec (not for tabular modalities)
        self.sha256 = _sha256(self.source)  # of the table file; None for a data frame or a folder
        self.n = len(next(iter(self.table.values())))
        self.row_number = np.arange(1, self.n + 1)  # of each row in the table as given (rows may be put in stored order)
        self.fitted = state is not None
        self.kinds: dict[str, str]
        self.modality_specs: list[dict[str, Any]]
        self.label: str
        self.task: str
        self.class_names: tuple[str, ...]
        self.stats: dict[str, dict[str, Any]]
        layout.join_label_columns(self)  # label=[time, event]: one column of tuples
        if state is not None:
            layout.load_state(self, dict(state))
        else:
            layout.infer_layout(self)
        # hashes of every row's label and input cells as values (content.py), and without the label; the text
        # hashes runs stored before are kept to find their rows too
        cols = self._content_columns()
        self.keys, self.input_keys = content.row_keys(self, cols), content.row_keys(self, cols[1:])
        self.text_keys = content.row_keys(self, cols, by_value=False)
        self.text_input_keys = content.row_keys(self, cols[1:], by_value=False)
        self.stored_split: np.ndarray | None = None
        if not self.fitted and self.options.stored_splits:
            splits.match_stored_splits(self, Path(self.options.stored_splits))
        splits.read_labels(self)
        splits.assign_splits(self)
        loading.load_all(self)
        self.report.raise_for_errors()

    @property
    def task_object(self) -> Task:
        """The :class:`~polymodal.tasks.Task` named by ``task`` (classes or targets, how labels are read)."""
        return get_task(self.task)

    def _content_columns(self) -> list[str]:
        """The columns whose cells make a row what it is for this run: the label and every input column."""
        return [self.label, *[c for m in self.modality_specs for c in m["columns"]]]

    def state(self) -> dict[str, Any]:
        """Everything needed to read new rows as this manifest read its training rows (JSON-able)."""
        return {"version": STATE_VERSION, "label": self.label, "task": self.task, "class_names": list(self.class_names),
                "columns": self.kinds, "modalities": self.modality_specs, "stats": self.stats,
                "options": self.options.model_dump(mode="json", by_alias=True,
                                                   exclude={"stored_splits", "allow_changed_table"})}

    def path(self, cell: str) -> Path:
        """The file a path cell names (relative paths resolve against ``root``)."""
        p = Path(cell).expanduser()
        return p if p.is_absolute() else self.root / p

    def item(self, name: str, row: int) -> torch.Tensor | None:
        """The model input of modality ``name`` for table row ``row`` (None when missing)."""
        if not self.present[name][row]:
            return None
        x = self.data[name][row]
        codec = self.codecs.get(name)
        if codec is None:  # tabular: always kept
            return torch.from_numpy(np.asarray(x, dtype=np.float32))
        if x is None:  # not cached: read again
            x = codec.reread(codec.source(self.table[codec.column][row]))
        return codec.to_tensor(x)

    @property
    def schema(self) -> tuple[Modality, ...]:
        return tuple(self.schema_for[m["name"]] for m in self.modality_specs)

    def row_ids(self, rows: np.ndarray) -> list[str]:
        """The id of each row (the ``id`` column, else the row number from 0)."""
        col = self.options.id
        if col and col in self.table:
            return [str(self.table[col][r]) for r in rows]
        return [str(int(self.row_number[r]) - 1) for r in rows]

    def dataset(self, split: str) -> ManifestDataset:
        """The rows of ``split`` ("train", "val", "test"; "predict" for a manifest read with a state)."""
        from polymodal.data.datasets.manifest.dataset import ManifestDataset

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
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["row", "id", "split", "content", "inputs"])
        for r in range(self.n):
            s = "dropped" if self.dropped[r] else str(self.split[r])
            w.writerow([self.row_number[r], ids[r], s, self.keys[r], self.input_keys[r]])
        return out.getvalue()


def _sha256(source: str) -> str | None:
    p = Path(source)
    if not p.is_file():
        return None
    return hashlib.sha256(p.read_bytes()).hexdigest()
