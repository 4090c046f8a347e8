"""One small registry used by every component kind (datasets, encoders, fusions, strategies).

Each entry is a factory (a class or a builder function) plus a ``tiny`` dict of
keyword arguments that builds a small variant for tests, timm style::

    FUSIONS = Registry("fusion")

    @FUSIONS.register("late", tiny={})
    class LateFusion(nn.Module): ...

    FUSIONS.create("late", in_dims={...}, num_outputs=10)
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


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
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self._entries), n=3, cutoff=0.5)
            hint = f"; close matches: {', '.join(close)}" if close else ""
            raise KeyError(
                f"unknown {self.kind} {name!r}{hint}; known: {', '.join(sorted(self._entries))} "
                f"(see `polymodal list {self.kind}s`)"
            ) from None

    def create(self, name: str, /, **kwargs: Any) -> T:
        return self.get(name).factory(**kwargs)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries[n] for n in self.names())

    def __len__(self) -> int:
        return len(self._entries)
