"""Reading every cell of a manifest once, through the codec of each column's kind (``codecs/``).

Each modality that is not tabular is one column read by one codec (the steps are described in
``codecs/base.py``); the tabular modality gathers numeric and categorical columns (any ``tabular``
codec), each adding its features to the row's vector.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from polymodal.data.datasets.manifest import checks
from polymodal.data.datasets.manifest.codecs import CODECS, Codec
from polymodal.data.datasets.manifest.layout import TABULAR
from polymodal.data.datasets.manifest.options import codec_options
from polymodal.data.schema import Modality

if TYPE_CHECKING:
    from polymodal.data.datasets.manifest.core import Manifest


@dataclass
class Column:
    """The :class:`~polymodal.data.datasets.manifest.codecs.base.ColumnContext` of one column."""

    manifest: Manifest
    spec: dict
    column: str

    @property
    def fitted(self) -> bool:
        return self.manifest.fitted

    def info(self, check: str, detail: str, examples: Sequence[str] = (), count: int | None = None) -> None:
        self.manifest.report.add(check, "info", self.column, detail, examples, count=count)

    def bad(self, rows: list[tuple[int, str]], check: str, what: str, skip: tuple[str, str] | None = None) -> None:
        checks.bad_cells(self.manifest, self.spec, rows, check, what, column=self.column, skip=skip or checks.SKIP_FILE)


def make_codec(m: Manifest, kind: str, name: str, column: str) -> Codec:
    """The codec of column kind ``kind`` for ``column``, with the manifest's options for the kind."""
    cls = CODECS.get(kind).factory
    return cls(name, column, codec_options(m.options, kind), cache=m.options.cache_features, resolve=m.path)


def load_all(m: Manifest) -> None:
    """Read every modality (fitting on the train split unless the manifest is fitted), then check the
    table as a whole: files in two splits, empty splits, rows with no input."""
    m.data, m.present, m.codecs = {}, {}, {}
    m.dropped = np.zeros(m.n, dtype=bool)
    train = (m.split == "train") if not m.fitted else np.zeros(m.n, dtype=bool)
    for spec in m.modality_specs:
        if spec["kind"] == TABULAR:
            load_tabular(m, spec, train)
        else:
            load_column(m, spec, train)
    if not m.fitted:
        checks.file_leakage(m, m.codecs)
    m.rows = {s: np.flatnonzero((m.split == s) & ~m.dropped) for s in ("train", "val", "test", "predict")}
    if not m.fitted:
        checks.empty_splits(m)
    checks.empty_rows(m)


def _quiet_probe(codec: Codec, source: Any) -> Any:
    try:
        return codec.probe(source)
    except Exception:  # noqa: BLE001 - the full read reports the file with its error
        return None


def load_column(m: Manifest, spec: dict, train: np.ndarray) -> None:
    """One modality of one column: probe, set up, read, fit and finish through its codec."""
    name, col = spec["name"], spec["columns"][0]
    codec = make_codec(m, spec["kind"], name, col)
    ctx = Column(m, spec, col)
    if codec.inline:
        items = [(r, v) for r, v in enumerate(m.table[col]) if v is not None and (m.fitted or m.split[r] != "")]
    else:
        items = checks.file_cells(m, spec, codec)
    probes = {}
    if type(codec).probe is not Codec.probe:
        probes = {r: p for r, src in items if (p := _quiet_probe(codec, src)) is not None}
    if m.fitted:
        codec.load_state_dict(m.stats[name])
    else:
        codec.setup([p for r, p in probes.items() if train[r]])
    codec.describe(probes, ctx)
    got = checks.read_all(m, spec, codec.read, items)
    if not m.fitted:
        codec.fit([x for r, x in got.items() if train[r]])
    got = codec.finish(got, ctx)
    m.stats[name] = codec.state_dict()
    m.schema_for[name] = codec.modality()
    m.codecs[name] = codec
    present = np.zeros(m.n, dtype=bool)
    present[list(got)] = True
    m.present[name] = present
    m.data[name] = [got.get(r) for r in range(m.n)] if m.options.cache_features else [None] * m.n


def load_tabular(m: Manifest, spec: dict, train: np.ndarray) -> None:
    """The tabular modality: one vector per row of the features of its columns (tabular codecs, in
    registration order: numeric, then categorical); its state is ``{kind: [column state, ...]}``."""
    name, cols = spec["name"], spec["columns"]
    active = m.split != "" if not m.fitted else np.ones(m.n, dtype=bool)
    rows = np.flatnonzero(active)
    if m.fitted:
        parts = [(kind, st["column"], st) for kind, states in m.stats[name].items() for st in states]
    else:
        parts = [(kind, c, None) for kind in CODECS.tabular_kinds() for c in cols if m.kinds[c] == kind]
    codecs: list[Codec] = []
    for kind, c, st in parts:
        codec = make_codec(m, kind, name, c)
        if st is not None:
            codec.load_state_dict(st)
        codecs.append(codec)
    for codec in codecs:
        codec.check(m.table[codec.column], rows, Column(m, spec, codec.column))
    if not m.fitted:
        for codec in codecs:
            cells = m.table[codec.column]
            codec.fit([codec.read(cells[r]) for r in np.flatnonzero(train) if cells[r] is not None])
        m.stats[name] = {kind: [c.state_dict() for c in codecs if c.kind == kind] for kind in CODECS.tabular_kinds()}
    got: dict[int, np.ndarray] = {}
    for r in rows:
        if all(m.table[c][r] is None for c in cols):
            continue
        got[int(r)] = np.concatenate([c.encode(m.table[c.column][r]) for c in codecs]) if codecs else np.zeros(0, np.float32)
    for codec in codecs:
        codec.report(Column(m, spec, codec.column))
    width = sum(c.width for c in codecs)
    m.schema_for[name] = Modality(name, TABULAR, (width,), representation="features", extra={"columns": cols})
    m.present[name] = np.zeros(m.n, dtype=bool)
    m.present[name][list(got)] = True
    m.data[name] = [got.get(r) for r in range(m.n)]  # always kept: tiny
