"""``polymodal prepare utd-mhad --raw DIR [--out DIR]``: a user's download of UTD-MHAD, checked and put in place.

DIR may hold the release's folders (``Depth/``, ``Skeleton/``, ``Inertial/`` and optionally ``RGB/``, at DIR or
one level below) or its zip files (any zip whose members are named ``a{action}_s{subject}_t{trial}_{kind}.mat``;
members are matched by file name, whatever folder they sit in). Every depth, skeleton and inertial file is
read and checked (variable, shape, dtype, finite values) before anything is written; the RGB videos
(``*_color.avi``) are counted and ignored. The files are copied into OUT (default ``$POLYMODAL_DATA/utd_mhad``)
with a ``SHA256SUMS`` list, and the memory-mapped feature cache is built. A file already in OUT with other
bytes than the download's stops the command (nothing is overwritten); delete it first to replace it.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from polymodal.data.datasets.utd_mhad.features import Preprocessing, prepared_cache
from polymodal.data.datasets.utd_mhad.release import ACTIONS, EXPECTED_SEQUENCES, KINDS, NAME, read, scan
from polymodal.data.prepare import Log, register_preparer
from polymodal.paths import default_data_root

FOLDERS = {k.suffix: k.folder for k in KINDS.values()}
SUFFIX_KIND = {k.suffix: name for name, k in KINDS.items()}


def _release_folder(raw: Path) -> Path | None:
    for cand in (raw, *sorted(p for p in raw.iterdir() if p.is_dir())):
        if all((cand / k.folder).is_dir() for k in KINDS.values()):
            return cand
    return None


def _unzip(raw: Path, dest: Path, log: Log) -> tuple[int, int]:
    """Extract the release's .mat members of every zip in ``raw`` into ``dest``'s three folders; returns
    (files extracted, members ignored)."""
    extracted = ignored = 0
    for z in sorted(raw.glob("*.zip")):
        try:
            archive = zipfile.ZipFile(z)
        except zipfile.BadZipFile as e:
            raise ValueError(f"polymodal prepare utd-mhad: {z} is not a readable zip file ({e}); download it again") from e
        with archive:
            for info in archive.infolist():
                name = Path(info.filename).name
                m = NAME.match(name)
                if info.is_dir() or m is None or m.group(4) not in FOLDERS:
                    ignored += not info.is_dir()
                    continue
                target = dest / FOLDERS[m.group(4)] / name
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.exists():
                    raise ValueError(f"polymodal prepare utd-mhad: {name} appears twice in the zip files of {raw} "
                                     f"(again in {z}); keep one copy")
                with archive.open(info) as src, target.open("wb") as dst:
                    shutil.copyfileobj(src, dst)
                extracted += 1
        log(f"{z.name}: {extracted} release files so far, {ignored} other members ignored")
    return extracted, ignored


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@register_preparer("utd-mhad")
def prepare_utd_mhad(raw: Path, out: Path | None, log: Log) -> dict[str, Any]:
    """Check a UTD-MHAD download, copy it into ``out`` (default ``$POLYMODAL_DATA/utd_mhad``), build the cache."""
    out = out if out is not None else default_data_root() / "utd_mhad"
    with tempfile.TemporaryDirectory(prefix="utd-mhad-") as tmp:
        source = _release_folder(raw)
        ignored = 0
        if source is None:
            extracted, ignored = _unzip(raw, Path(tmp), log)
            if not extracted:
                raise FileNotFoundError(
                    f"polymodal prepare utd-mhad: {raw} holds neither the folders Depth/, Skeleton/, Inertial/ (at "
                    "its top or one level below) nor zip files with a{action}_s{subject}_t{trial}_{kind}.mat "
                    "members; point --raw at the unpacked or zipped download of the UTD-MHAD release")
            source = Path(tmp)
        else:
            rgb = source / "RGB"
            ignored = sum(1 for _ in rgb.iterdir()) if rgb.is_dir() else 0
        ids = scan(source)
        log(f"{source}: {len(ids)} sequences; checking every file")
        plan: list[tuple[Path, Path, str]] = []
        for sid in ids:
            for kind in KINDS:
                src, dst = sid.path(source, kind), sid.path(out, kind)
                data = src.read_bytes()
                read(src, kind, data)  # variable, shape, dtype, finite values
                plan.append((src, dst, hashlib.sha256(data).hexdigest()))
        clashes = [str(dst) for _, dst, digest in plan if dst.exists() and _digest(dst) != digest]
        if clashes:
            raise FileExistsError(f"polymodal prepare utd-mhad: {len(clashes)} file(s) in {out} differ from the "
                                  f"download, e.g. {clashes[0]}; nothing was changed. Delete them (or choose "
                                  "another --out) to prepare this download")
        copied = 0
        for src, dst, _ in plan:
            if src.resolve() != dst.resolve() and not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
                copied += 1
        sums = sorted(f"{digest}  ./{dst.relative_to(out).as_posix()}" for _, dst, digest in plan)
        (out / "SHA256SUMS").write_text("\n".join(sums) + "\n", encoding="utf-8")
    log(f"{out}: {copied} files copied, {len(plan) - copied} already in place; building the feature cache")
    step = max(1, len(ids) // 10)

    def progress(i: int, n: int) -> None:
        if i % step == 0 or i == n:
            log(f"  cache {i}/{n}")

    cache = prepared_cache(out, Preprocessing(), progress=progress)
    actions, subjects = sorted({s.action for s in ids}), sorted({s.subject for s in ids})
    report = {"dataset": "utd-mhad", "out": str(out), "sequences": len(ids), "actions": len(actions),
              "subjects": len(subjects), "copied": copied, "ignored_other_files": ignored, "cache": str(cache.path)}
    if len(ids) != EXPECTED_SEQUENCES or len(actions) != len(ACTIONS) or len(subjects) != 8:
        report["warning"] = (f"the release has {EXPECTED_SEQUENCES} sequences of {len(ACTIONS)} actions by 8 subjects; "
                             f"this copy has {len(ids)} of {len(actions)} by {len(subjects)}")
    return report


__all__ = ["prepare_utd_mhad"]
