"""The ways in: :func:`from_manifest` (Python), :func:`cached_manifest` (one read per run) and the
``manifest`` dataset of the registry (configs: ``data.name=manifest``)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from polymodal.data.base import DATASETS
from polymodal.data.datasets.manifest.core import Manifest
from polymodal.data.datasets.manifest.dataset import ManifestDataset
from polymodal.data.datasets.manifest.errors import ManifestError
from polymodal.data.datasets.manifest.kinds import column_kinds

_CACHE: dict[str, Manifest] = {}


def schema_mapping(schema: Mapping[str, str] | str | os.PathLike | None) -> dict[str, str]:
    """The ``schema`` option (column -> kind) from a mapping or a YAML file of one."""
    if schema is None:
        return {}
    if isinstance(schema, Mapping):
        return {str(k): str(v) for k, v in schema.items()}
    p = Path(schema)
    if not p.is_file():
        raise FileNotFoundError(f"schema file {p} does not exist; pass a mapping column -> kind or a YAML file of one")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ManifestError(f"schema file {p} is not a plain YAML mapping column -> kind ({', '.join(column_kinds())}): "
                            f"{e}; write it as lines such as `notes: text` (tags such as !!python/... are not read)") from None
    if not isinstance(data, dict):
        raise ManifestError(f"schema file {p} must hold a mapping column -> kind ({', '.join(column_kinds())})")
    return {str(k): str(v) for k, v in data.items()}


def from_manifest(
    source: Any,
    label: str | None = None,
    root: str | os.PathLike | None = None,
    schema: Mapping[str, str] | str | os.PathLike | None = None,
    **options: Any,
) -> Manifest:
    """Read, check and split a manifest (see the package docstring); ``options`` are :class:`ManifestOptions`
    keys (``splits={"group": "patient"}``, ``image={"size": [64, 64]}``, ``bad_files="skip"``, ...)."""
    opts = {**options, "label": label, "root": str(root) if root is not None else options.get("root"),
            "schema": schema_mapping(schema or options.pop("schema", None))}
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
        m = from_manifest(p, label=opts.pop("label", None), root=opts.pop("root", None),
                          schema=opts.pop("schema", None), **opts)
        print_check(m)
        _CACHE[key] = m
    return _CACHE[key]


def print_check(m: Manifest) -> None:
    """Print the data check before training (every column's kind, what was changed); when the run's
    stored splits are used, only what is not information."""
    if m.options.stored_splits:
        for p in m.report.problems:
            if p.severity != "info":
                print(f"{p.severity}: {p.check}: {p.detail}", file=sys.stderr)
        return
    print(m.report.to_markdown(), file=sys.stderr)


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
