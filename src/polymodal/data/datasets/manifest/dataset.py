"""The rows of one split of a manifest as a :class:`MultimodalDataset`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np

from polymodal.data.base import MultimodalDataset
from polymodal.data.batch import Sample
from polymodal.runpaths import DATA_CHECK_FILE, DATA_STATE_FILE, SPLITS_FILE

if TYPE_CHECKING:
    from polymodal.data.datasets.manifest.core import Manifest


class ManifestDataset(MultimodalDataset):
    """The rows of one split of a :class:`Manifest`."""

    name = "manifest"

    def __init__(self, manifest: Manifest, split: str, rows: np.ndarray) -> None:
        self.manifest, self.split, self.rows = manifest, split, np.asarray(rows, dtype=np.int64)
        self.schema = manifest.schema
        self.task = manifest.task  # type: ignore[assignment]
        self.class_names = manifest.class_names
        task = manifest.task_object
        self.num_outputs = task.num_outputs_for(manifest.class_names, manifest.y)
        self.labels = task.fill_missing(manifest.y[self.rows])
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
        y = self.labels[i]
        return {"inputs": inputs, "label": y.tolist() if np.ndim(y) else y.item(), "index": i}

    def row_ids(self) -> list[str]:
        return self.manifest.row_ids(self.rows)

    def run_files(self) -> dict[str, str]:
        """Files a run keeps beside its checkpoints: the fitted state, the split of every row, the check."""
        m = self.manifest
        files = {DATA_STATE_FILE: json.dumps(m.state(), indent=1), SPLITS_FILE: m.splits_csv(),
                 DATA_CHECK_FILE: m.report.to_markdown()}
        if m.options.stored_splits:  # a resumed run: the split of every row stays as stored
            del files[SPLITS_FILE]
        return files
