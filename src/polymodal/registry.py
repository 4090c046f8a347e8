"""One small registry used by every component kind (datasets, encoders, fusions, strategies).

Each entry is a factory (a class or a builder function) plus a ``tiny`` dict of
keyword arguments that builds a small variant for tests, timm style::

    FUSIONS = Registry("fusion")

    @FUSIONS.register("late", tiny={})
    class LateFusion(nn.Module): ...

    FUSIONS.create("late", in_dims={...}, num_outputs=10)

A registry fills itself: the first time it is read (a name looked up, listed or iterated), every module of
the package that registers a component is imported (:func:`load_components`), so its
content never depends on what happened to be imported before, and a new component is found without an
import line anywhere. Writing (``register``) never triggers that.
"""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Generic, TypeVar

T = TypeVar("T")

CORE = ("data", "encoders", "fusion", "inference", "strategies", "tasks")
"""The core component packages (imported first, in this order); every other subpackage of ``polymodal`` that
registers a component is a challenge package (``coordinated``, ``reasoning``, ...)."""

_REGISTERS = re.compile(r"^\s*@?[A-Z][A-Z0-9_]*\.register\(", re.MULTILINE)
_STATE = {"loaded": False, "loading": False}


@cache
def component_modules() -> tuple[str, ...]:
    """The dotted names of the package's modules that register a component: core packages first, then the
    challenge packages, each in path order."""
    root = Path(__file__).resolve().parent
    found: list[tuple[int, str, str]] = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root)
        if rel.parts[0] in ("registry.py", "registries.py") or "__pycache__" in rel.parts:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if not _REGISTERS.search(_code(text)):
            continue
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        rank = CORE.index(parts[0]) if parts[0] in CORE else len(CORE)
        found.append((rank, rel.as_posix(), ".".join(["polymodal", *parts])))
    return tuple(name for _, _, name in sorted(found))


def _code(text: str) -> str:
    """The source without its docstrings' example lines (a docstring may show a registration)."""
    return re.sub(r'("""|\'\'\')(.*?)\1', "", text, flags=re.DOTALL)


def challenge_packages() -> tuple[str, ...]:
    """The subpackages of ``polymodal`` outside :data:`CORE` that register components."""
    return tuple(dict.fromkeys(m.split(".")[1] for m in component_modules() if m.split(".")[1] not in CORE))


def load_components() -> None:
    """Import every module of :func:`component_modules` once per process (re-entrant: a registry read while
    they are being imported sees what is registered so far)."""
    if _STATE["loaded"] or _STATE["loading"]:
        return
    _STATE["loading"] = True
    try:
        for name in component_modules():
            importlib.import_module(name)
        _STATE["loaded"] = True
    finally:
        _STATE["loading"] = False


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    factory: Callable[..., T]
    tiny: dict[str, Any] = field(default_factory=dict)  # kwargs of the tiny variant used by tests
    summary: str = ""  # first line of the factory's docstring unless given


class Registry(Generic[T]):
    """Name -> factory mapping with did-you-mean errors."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def _filled(self) -> dict[str, Entry[T]]:
        """The entries, once every component module has been imported (re-entrant: a lookup made while the
        modules are being imported sees what is registered so far)."""
        load_components()
        return self._entries

    def register(
        self, name: str, *, tiny: dict[str, Any] | None = None, summary: str | None = None
    ) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            doc = (factory.__doc__ or "").strip().splitlines()
            self._entries[name] = Entry(name, factory, dict(tiny or {}), summary or (doc[0] if doc else ""))
            return factory

        return decorator

    def get(self, name: str) -> Entry[T]:
        entries = self._filled()
        try:
            return entries[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(entries), n=3, cutoff=0.5)
            hint = f"; close matches: {', '.join(close)}" if close else ""
            raise KeyError(
                f"unknown {self.kind} {name!r}{hint}; known: {', '.join(sorted(self._entries))} "
                f"(see `polymodal list {self.kind}s`)"
            ) from None

    def create(self, name: str, /, **kwargs: Any) -> T:
        return self.get(name).factory(**kwargs)

    def names(self) -> list[str]:
        return sorted(self._filled())

    def registered(self) -> tuple[str, ...]:
        """The names registered so far, in registration order, without importing any component module (for
        code that runs while the modules are imported)."""
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._filled()

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries[n] for n in self.names())

    def __len__(self) -> int:
        return len(self._filled())
