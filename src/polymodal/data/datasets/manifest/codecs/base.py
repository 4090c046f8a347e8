"""What every column kind of a manifest implements, and the registry of column kinds.

A codec turns the cells of one column into model inputs. The manifest reads every cell once, in these
steps (each a method a codec may override; the defaults do nothing):

1. ``probe(source)``: a cheap look at one file (its header) before anything is decoded;
2. ``setup(probes)``: on the train split only, the statistics that reading needs (a sample rate, an
   image size) from the probes of the training files and the codec's options;
3. ``describe(probes, ctx)``: what reading will change, as ``info`` rows of the data check;
4. ``read(source)``: one cell (a file path, or the cell itself for an ``inline`` kind) to an array;
5. ``fit(values)``: on the train split only, statistics of the decoded training cells (normalisation);
6. ``finish(got, ctx)``: the decoded arrays of every row to the arrays kept in memory.

``to_tensor(x)`` makes the model input of one kept array, and ``state`` (a JSON-able dict, saved in
``data_state.json`` by :meth:`state_dict` and restored by :meth:`load_state_dict`) is everything
fitted on the train split, so that new rows are read exactly as the training rows were.

A ``tabular`` codec (numeric, categorical) does not make a modality of its own: the columns of such
kinds form the tabular modality, each contributing ``width`` features per row through ``encode(cell)``.

A new column kind is one module in this package with a :class:`Codec` subclass registered with
``@CODECS.register("<kind>", tiny={...})`` (``tiny``: options of a small, fast variant) and imported in
``codecs/__init__.py`` (see docs/architecture.md, "A manifest column kind").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

from polymodal.data.schema import Modality
from polymodal.registry import Registry


class CodecOptions(BaseModel):
    """Options of one column kind (``ManifestOptions.<kind>``): unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class ColumnContext(Protocol):
    """What a codec may ask of the manifest reading its column (see ``manifest.loading``)."""

    column: str  # the column (for a tabular codec: its own column; else the modality's first column)
    fitted: bool  # read with a saved state (prediction): no statistics are fitted

    def info(self, check: str, detail: str, examples: Sequence[str] = (), count: int | None = None) -> None:
        """Add an ``info`` row of the data check for the column."""

    def bad(self, rows: list[tuple[int, str]], check: str, what: str, skip: tuple[str, str] | None = None) -> None:
        """Report cells (row, message) that cannot be used; the ``bad_files`` option decides what follows."""


class Codec:
    """How the cells of one column kind become model inputs (see the module docstring for the steps)."""

    kind: ClassVar[str] = ""  # the column kind: set by CODECS.register
    extensions: ClassVar[tuple[str, ...]] = ()  # a file kind: cells ending in these are its files (kind inference)
    inline: ClassVar[bool] = False  # cells may hold the value itself rather than a file path (text)
    tabular: ClassVar[bool] = False  # its columns join a tabular modality (``width`` features per column)
    Options: ClassVar[type[CodecOptions] | None] = None  # its options, ``ManifestOptions.<kind>`` for built-ins

    def __init__(self, name: str, column: str, options: CodecOptions | Mapping[str, Any] | None = None, *,
                 cache: bool = True, resolve: Callable[[str], Path] = Path) -> None:
        """``name``: the modality; ``column``: the column read; ``cache``: decoded arrays stay in memory
        (the manifest's ``cache_features``); ``resolve``: a path cell to the file it names."""
        self.name, self.column, self.cache, self.resolve = name, column, cache, resolve
        if self.Options is None:
            self.options: Any = None
        elif isinstance(options, self.Options):
            self.options = options
        else:
            self.options = self.Options.model_validate(dict(options or {}))
        self.state: dict[str, Any] = {}

    # ---- the reading steps
    def probe(self, source: Any) -> Any:
        """A cheap look at one file before decoding (None: nothing to look at)."""
        return None

    def setup(self, probes: list[Any]) -> None:
        """Statistics ``read`` needs, from the options and the probes of the training files."""

    def describe(self, probes: Mapping[int, Any], ctx: ColumnContext) -> None:
        """Report what reading changes (resampling, resizing) as info rows, from every row's probe."""

    def read(self, source: Any) -> Any:
        """One cell to an array: ``source`` is the file's path, or the cell for an ``inline`` kind. A file
        that cannot be used raises ``MediaError`` (or ``OSError``) naming it: the data check reports it and
        ``bad_files`` decides what follows; any other exception stops the reading."""
        raise NotImplementedError(f"column kind {self.kind!r} does not read cells")

    def fit(self, values: list[Any]) -> None:
        """Statistics of the decoded training cells (``read`` outputs of the train split)."""

    def finish(self, got: dict[int, Any], ctx: ColumnContext) -> dict[int, Any]:
        """The decoded arrays of every row (row -> ``read`` output) to the arrays kept in memory."""
        return got

    def reread(self, source: Any) -> Any:
        """The kept array of one cell read again (the manifest keeps none without ``cache_features``)."""
        return self.read(source)

    def to_tensor(self, x: Any) -> torch.Tensor:
        """The model input of one kept array."""
        return torch.from_numpy(np.asarray(x, dtype=np.float32))

    def modality(self) -> Modality:
        """The modality of the column (only for kinds that are not ``tabular``)."""
        raise NotImplementedError(f"column kind {self.kind!r} does not make a modality")

    # ---- tabular kinds
    width: int = 0  # features per row of a tabular kind, known once fitted

    def check(self, cells: Sequence[Any], rows: np.ndarray, ctx: ColumnContext) -> None:
        """Report the cells of ``rows`` that do not fit the kind (a tabular kind, before fitting)."""

    def encode(self, value: Any) -> np.ndarray:
        """A tabular kind: one cell (None when empty) to ``width`` float32 features."""
        raise NotImplementedError(f"column kind {self.kind!r} is not tabular")

    def report(self, ctx: ColumnContext) -> None:
        """A tabular kind: report what ``encode`` did (imputed, unseen values) once every row is encoded."""

    # ---- state
    def state_dict(self) -> dict[str, Any]:
        """Everything fitted on the train split, JSON-able (kept in ``data_state.json``)."""
        return self.state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Read new rows as the manifest that saved ``state`` read its training rows."""
        self.state = dict(state)

    def source(self, cell: Any) -> Any:
        """What ``read`` receives for a cell: the resolved path, or the cell itself for an inline kind."""
        return cell if self.inline else self.resolve(str(cell))


class CodecRegistry(Registry[type[Codec]]):
    """The column kinds: kind -> :class:`Codec` subclass, in registration order (which is the order
    in which file extensions are matched and kinds are listed in messages)."""

    def __init__(self) -> None:
        super().__init__("column kind")
        self.file_extensions: dict[str, tuple[str, ...]] = {}  # kind -> extensions, kept in sync

    def register(self, name: str, *, tiny: dict[str, Any] | None = None,
                 summary: str | None = None) -> Callable[[type[Codec]], type[Codec]]:
        add = super().register(name, tiny=tiny, summary=summary)

        def decorator(cls: type[Codec]) -> type[Codec]:
            if not (isinstance(cls, type) and issubclass(cls, Codec)):
                raise TypeError(f"column kind {name!r}: {cls!r} is not a Codec subclass")
            if name == "ignore":
                raise ValueError("column kind 'ignore' is reserved: it marks a column that is not read")
            taken = {e: k for k, exts in self.file_extensions.items() for e in exts}
            clash = sorted(e for e in cls.extensions if e in taken)
            if clash:
                raise ValueError(f"column kind {name!r}: extensions {clash} already belong to "
                                 f"{sorted({taken[e] for e in clash})}; a file extension names one kind")
            add(cls)
            cls.kind = name
            if cls.extensions:
                self.file_extensions[name] = tuple(e.lower() for e in cls.extensions)
            return cls

        return decorator

    def unregister(self, name: str) -> None:
        """Remove a kind (a plug-in that is unloaded, a test's own kind)."""
        self.get(name)
        del self._entries[name]
        self.file_extensions.pop(name, None)

    def kinds(self) -> tuple[str, ...]:
        """Every kind in registration order (every component module imported first)."""
        return tuple(self._filled())

    def tabular_kinds(self) -> tuple[str, ...]:
        """The kinds whose columns form the tabular modality, in the order their features come."""
        return tuple(k for k, e in self._filled().items() if e.factory.tabular)


CODECS = CodecRegistry()
