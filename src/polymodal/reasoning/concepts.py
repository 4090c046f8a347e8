"""Named concepts of each modality, and where their labels come from.

A concept is a categorical variable (binary = 2 values) that one modality predicts, e.g. the digit
the audio speaks. A model's concepts are given as ``concepts`` in the fusion's arguments:

    None or an int n        one concept per modality, named "concept", with n values (default 10)
    {"audio": 10, ...}      one concept per modality with that many values
    {"audio": {"digit": 10, "loud": 2}, "image": {"digit": 10}}   named concepts per modality

Every modality of the model must appear. Concepts are ordered by modality (the model's order) and then
as given; a rule sees their values in that order. Each concept's key is ``"<modality>.<name>"``.

Concept labels (for supervision and evaluation) come from the dataset: a dataset may carry
``concept_labels`` (modality -> {name: (N,) int array}, -1 = unknown), as the AV-digits variants do;
a manifest dataset names a table column per concept instead (``concept_columns``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class Concept:
    modality: str
    name: str
    num_values: int

    @property
    def key(self) -> str:
        return f"{self.modality}.{self.name}"


def _size(where: str, n: Any) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or n < 2:
        raise ValueError(f"{where}={n!r}: expected an integer >= 2 (the number of values of the concept)")
    return n


def parse_concepts(spec: Any, modalities: Sequence[str], default: int = 10) -> list[Concept]:
    """The model's concepts from ``model.fusion_args.concepts`` (see the module docstring)."""
    where = "model.fusion_args.concepts"
    if spec is None:
        spec = default
    if isinstance(spec, int) and not isinstance(spec, bool):
        n = _size(where, spec)
        return [Concept(m, "concept", n) for m in modalities]
    if not isinstance(spec, Mapping):
        raise ValueError(f"{where}={spec!r}: expected an int or a mapping modality -> int or {{name: int}}")
    unknown = sorted(set(spec) - set(modalities))
    missing = [m for m in modalities if m not in spec]
    if unknown or missing:
        raise ValueError(
            f"{where} names modalities {sorted(spec)}; the model has {list(modalities)} "
            f"(unknown: {unknown}, missing: {missing}): give every modality its concepts"
        )
    out: list[Concept] = []
    for m in modalities:
        s = spec[m]
        if isinstance(s, Mapping):
            if not s:
                raise ValueError(f"{where}.{m} is empty; give at least one concept, e.g. {{'digit': 10}}")
            for name, n in s.items():
                if not isinstance(name, str) or not name or "." in name:
                    raise ValueError(f"{where}.{m}: concept name {name!r} must be a non-empty string without '.'")
                out.append(Concept(m, name, _size(f"{where}.{m}.{name}", n)))
        else:
            out.append(Concept(m, "concept", _size(f"{where}.{m}", s)))
    return out


def _column_values(dataset: Any, column: str, concept: Concept) -> np.ndarray:
    manifest = getattr(dataset, "manifest", None)
    table = getattr(manifest, "table", None)
    if table is None or not hasattr(dataset, "rows"):
        raise ValueError(
            f"concept_columns names column {column!r}, but the dataset {getattr(dataset, 'name', '')!r} is not a "
            "manifest table; concept columns work with data.manifest datasets"
        )
    if column not in table:
        raise ValueError(f"concept column {column!r} is not in the manifest; its columns are {sorted(table)}")
    out = np.full(len(dataset.rows), -1, dtype=np.int64)
    for i, r in enumerate(dataset.rows):
        v = table[column][int(r)]
        if v is None or (isinstance(v, float) and np.isnan(v)) or v == "":
            continue
        try:
            iv = int(float(v))
        except (TypeError, ValueError):
            iv = None
        if iv is None or iv != float(v) or not 0 <= iv < concept.num_values:
            raise ValueError(
                f"concept column {column!r}, row {int(r)}: value {v!r}; expected an integer in "
                f"[0, {concept.num_values}) (the values of concept {concept.key}) or an empty cell"
            )
        out[i] = iv
    return out


def concept_labels_for(
    dataset: Any, concepts: Sequence[Concept], columns: Mapping[str, str] | None = None
) -> dict[str, torch.Tensor] | None:
    """concept key -> LongTensor (N,) of the dataset's concept labels (-1 = unknown), or None if it has none.

    columns: concept key (or modality, when it has one concept) -> manifest column; otherwise the
             dataset's own ``concept_labels`` are used, matched by name (or by modality when both the
             model and the dataset give the modality exactly one concept).
    """
    if columns:
        by_key = {c.key: c for c in concepts}
        by_mod = {c.modality: c for c in concepts if sum(d.modality == c.modality for d in concepts) == 1}
        out: dict[str, torch.Tensor] = {}
        for k, col in columns.items():
            c = by_key.get(k) or by_mod.get(k)
            if c is None:
                raise ValueError(f"strategy.args.concept_columns: {k!r} is not a concept of the model; its concepts are {sorted(by_key)}")
            out[c.key] = torch.from_numpy(_column_values(dataset, col, c))
        return out
    own = getattr(dataset, "concept_labels", None)
    if not own:
        return None
    out = {}
    for c in concepts:
        labels = own.get(c.modality, {})
        if c.name in labels:
            arr = labels[c.name]
        elif len(labels) == 1 and sum(d.modality == c.modality for d in concepts) == 1:
            arr = next(iter(labels.values()))
        else:
            continue
        arr = np.asarray(arr, dtype=np.int64)
        if arr.size and arr.max() >= c.num_values:
            raise ValueError(
                f"the dataset's concept labels of {c.key} reach {arr.max()}, but the model's concept has "
                f"{c.num_values} values; set model.fusion_args.concepts to at least {arr.max() + 1}"
            )
        out[c.key] = torch.from_numpy(arr)
    return out or None
