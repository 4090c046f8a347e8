"""Datasets from a folder tree: one folder per sample, one file per modality.

    root/<split>/<label>/<sample_id>/<modality>.<ext>     (split: train, val or test)
    root/<label>/<sample_id>/<modality>.<ext>             (no split level: a seeded split is made)

``<modality>`` names the modality, so ``front.jpg`` and ``side.jpg`` are two image modalities; a sample
folder without a file for a modality has that modality missing. The tree is turned into a table (the
columns ``sample_id``, ``label``, ``split`` and one path column per modality) and read as a manifest,
with the same kinds, checks, splits and options (:mod:`polymodal.data.datasets.manifest`).
"""

from __future__ import annotations

import os
from pathlib import Path

from polymodal.data.base import DATASETS
from polymodal.data.datasets.manifest import FILE_EXTENSIONS, ManifestDataset, ManifestError, cached_manifest

SPLIT_NAMES = ("train", "val", "test")


def _known() -> set[str]:
    """Every file extension of a registered column kind (a kind registered later counts too)."""
    return {ext for exts in FILE_EXTENSIONS.values() for ext in exts}


def _subdirs(p: Path) -> list[Path]:
    return sorted(d for d in p.iterdir() if d.is_dir() and not d.name.startswith("."))


def folder_table(root: str | os.PathLike):
    """The folder tree as a data frame (paths relative to ``root``) and ``root`` itself."""
    import pandas as pd

    base = Path(root).expanduser()
    if not base.is_dir():
        raise FileNotFoundError(f"dataset folder {base} does not exist")
    top = _subdirs(base)
    if not top:
        raise ManifestError(f"dataset folder {base} has no sub-folders; expected root/<split>/<label>/<sample_id>/<modality>.<ext>")
    with_split = all(d.name in SPLIT_NAMES for d in top)
    rows: list[dict[str, str]] = []
    unknown: list[str] = []
    loose: list[str] = []
    for split_dir in top if with_split else [base]:
        for label_dir in _subdirs(split_dir):
            for sample_dir in _subdirs(label_dir):
                row = {"sample_id": str(sample_dir.relative_to(base)), "label": label_dir.name}
                if with_split:
                    row["split"] = split_dir.name
                for f in sorted(sample_dir.iterdir()):
                    if f.name.startswith(".") or f.is_dir():
                        continue
                    if f.suffix.lower() not in _known():
                        unknown.append(str(f.relative_to(base)))
                        continue
                    if f.stem in row:
                        raise ManifestError(f"sample folder {sample_dir} has two files for modality {f.stem!r}; keep one file per modality")
                    row[f.stem] = str(f.relative_to(base))
                rows.append(row)
            loose += [str(f.relative_to(base)) for f in label_dir.iterdir() if f.is_file() and not f.name.startswith(".")]
    if unknown:
        raise ManifestError(f"dataset folder {base}: files of unknown type {unknown[:5]}{' ...' if len(unknown) > 5 else ''}; "
                            f"known extensions: {', '.join(sorted(_known()))}")
    if loose:
        raise ManifestError(f"dataset folder {base}: files directly in a label folder {loose[:5]}; put each sample's files in "
                            "its own folder: <label>/<sample_id>/<modality>.<ext>")
    if not rows:
        raise ManifestError(f"dataset folder {base} holds no sample folder; expected root/<split>/<label>/<sample_id>/<modality>.<ext>")
    columns = ["sample_id", "label", *(["split"] if with_split else [])]
    columns += sorted({k for r in rows for k in r} - set(columns))
    return pd.DataFrame([{c: r.get(c, "") for c in columns} for r in rows], columns=columns), base


@DATASETS.register("folder", tiny={"root": "example"})
def build_folder(split: str, root: str | None = None, cache_features: bool = True, **options) -> ManifestDataset:
    """A split of a dataset folder (``data.root``), see :mod:`polymodal.data.datasets.folder`."""
    if not root:
        raise ManifestError("dataset 'folder' needs data.root=<dataset folder>")
    if root == "example":
        from polymodal.data.datasets.example import example_folder

        root = str(example_folder())
    return cached_manifest(root, {**options, "cache_features": cache_features}).dataset(split)
