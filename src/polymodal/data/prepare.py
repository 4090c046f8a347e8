"""``polymodal prepare DATASET --raw DIR [--out DIR]``: put a user's own copy of a published dataset where
polymodal reads it, checked, and build its caches. One preparer per dataset that needs one, registered here
by the dataset's module (docs/utd_mhad.md for UTD-MHAD)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

Log = Callable[[str], None]
Preparer = Callable[[Path, Path | None, Log], dict[str, Any]]
PREPARERS: dict[str, Preparer] = {}
SOURCES: dict[str, str] = {}  # dataset -> where to obtain it and its license (said when --raw is not a folder)


def register_preparer(name: str, obtain: str | None = None) -> Callable[[Preparer], Preparer]:
    """Decorator: ``fn(raw, out, log) -> report`` prepares dataset ``name`` (out None = the default place);
    ``obtain`` says where to get the dataset and under what license."""

    def add(fn: Preparer) -> Preparer:
        PREPARERS[name] = fn
        if obtain:
            SOURCES[name] = obtain
        return fn

    return add


def prepare(dataset: str, raw: str | Path, out: str | Path | None = None, log: Log = print) -> dict[str, Any]:
    """Prepare ``dataset`` from the folder ``raw``; returns the preparer's report (counts, paths, checksums)."""
    import polymodal.data.datasets  # noqa: F401  (the dataset modules register their preparers)

    if dataset not in PREPARERS:
        raise ValueError(f"polymodal prepare: no preparer for dataset {dataset!r}; datasets with one: "
                         f"{', '.join(sorted(PREPARERS))}")
    raw_path = Path(raw).expanduser()
    if not raw_path.is_dir():
        raise FileNotFoundError(f"polymodal prepare {dataset}: --raw {raw_path} is not a folder; give the folder "
                                "holding your download (unpacked, or its zip files)"
                                + (f". {SOURCES[dataset]}" if dataset in SOURCES else ""))
    return PREPARERS[dataset](raw_path, Path(out).expanduser() if out is not None else None, log)


__all__ = ["PREPARERS", "SOURCES", "prepare", "register_preparer"]
