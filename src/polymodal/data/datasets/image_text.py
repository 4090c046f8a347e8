"""Image + text datasets prepared once into memory-mapped arrays (UPMC Food-101, MVSA-Single; docs/datasets.md).

Preparation of one item: the image is read with Pillow (any mode, converted to RGB), resized to ``size`` x
``size`` (bicubic) and stored uint8; the text is stored as read (UTF-8, undecodable bytes replaced and counted).
An unreadable or empty image, or an empty text, skips the item (reported, never replaced).

Prepared layout (``OUT``): ``images.npy`` (N, 3, size, size) uint8, ``labels.npy`` (N,) int64, ``items.json``
(id, label, {protocol: split} per row), ``texts.json`` (the texts in row order), ``manifest.json`` (protocol:
split lists and their SHA-256, settings, counts per class and split, skipped and missing items, SHA-256 of the
arrays) and ``SHA256SUMS``. Items are prepared in shards of ``SHARD`` by worker processes; each finished
shard is kept in ``OUT/.parts`` so an interrupted run resumes where it stopped.

At read time the text is tokenised by polymodal's hashed-word tokenizer (no download; the published results
used BERT's WordPiece vocabulary, which polymodal does not fetch: say so beside any comparison), and training
images get a random resized crop (scale 0.08-1) and a horizontal flip.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polymodal.data.base import MultimodalDataset
from polymodal.data.batch import Sample
from polymodal.data.datasets.av_clips import (
    Log,
    carve_validation,
    check_out,
    class_table,
    crop_flip_resize,
    sha256_file,
    worker_pool,
    workers,
)
from polymodal.data.schema import Modality

LAYOUT_VERSION = "image-text-v1"
SHARD = 256


@dataclass
class Item:
    item_id: str
    label: int
    splits: dict[str, str]
    image: Path
    text: Path | str  # a file to read, or the text itself


@dataclass
class ItemPlan:
    items: list[Item]
    missing: list[Item] = field(default_factory=list)


def counts_of(items: Sequence[Item]) -> Any:
    from collections import Counter

    return Counter((proto, split, it.label) for it in items for proto, split in it.splits.items())


def _read_text(src: Path | str) -> tuple[str, bool]:
    if isinstance(src, str):
        return src, False
    data = src.read_bytes()
    try:
        return data.decode("utf-8-sig"), False
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="replace"), True


def _shard(args: tuple[list[Item], int, str]) -> tuple[list[str | None], int]:
    """Prepare one shard into its part file; returns per-item skip reasons (None = kept) and the texts repaired."""
    from PIL import Image

    items, size, part = args
    images = np.zeros((len(items), 3, size, size), dtype=np.uint8)
    texts, reasons, repaired = [], [], 0
    for i, it in enumerate(items):
        try:
            with Image.open(it.image) as im:
                im = im.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
                images[i] = np.asarray(im).transpose(2, 0, 1)
            text, bad = _read_text(it.text)
        except Exception as e:  # PIL.UnidentifiedImageError, OSError on truncated files, ...
            texts.append("")
            reasons.append(f"unreadable ({type(e).__name__}: {e})")
            continue
        repaired += bad
        texts.append(text)
        reasons.append("empty text" if not text.strip() else None)
    tmp = f"{part}.{os.getpid()}.tmp.npz"
    np.savez(tmp, images=images, texts=np.array(json.dumps(texts)), reasons=np.array(json.dumps(reasons)),
             repaired=np.array(repaired))
    os.replace(tmp, part)
    return reasons, repaired


def prepare_items(dataset: str, plan: ItemPlan, out: Path, protocol: dict[str, Any], class_names: Sequence[str],
                  log: Log, size: int = 224) -> dict[str, Any]:
    """Prepare every item of ``plan`` into ``out`` (module docstring); returns the report."""
    check_out(out, dataset)
    out.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(json.dumps([LAYOUT_VERSION, size, protocol, [
        (it.item_id, str(it.image), it.image.stat().st_size, it.image.stat().st_mtime_ns) for it in plan.items]],
        sort_keys=True, default=str).encode()).hexdigest()
    manifest_path = out / "manifest.json"
    if manifest_path.is_file() and json.loads(manifest_path.read_text(encoding="utf-8")).get("inputs_sha256") == key:
        log(f"{out}: already prepared from these files with these settings; nothing to do")
        return {**json.loads(manifest_path.read_text(encoding="utf-8"))["report"], "reused": True}
    parts = out / ".parts"
    parts.mkdir(exist_ok=True)
    shards = [plan.items[k:k + SHARD] for k in range(0, len(plan.items), SHARD)]
    names = [str(parts / f"shard{j:05d}.{key[:12]}.npz") for j in range(len(shards))]
    todo = [(s, size, n) for s, n in zip(shards, names, strict=True) if not Path(n).is_file()]
    log(f"{dataset}: {len(plan.items)} items in {len(shards)} shards; {len(shards) - len(todo)} already prepared "
        f"(resumed), {len(todo)} to do with {workers()} process(es)")
    start = time.perf_counter()
    if todo:
        with worker_pool(min(workers(), len(todo))) as pool:
            for i, _ in enumerate(pool.map(_shard, todo), 1):
                done = min(len(plan.items), (len(shards) - len(todo) + i) * SHARD)
                log(f"  [{'#' * (20 * i // len(todo)):<20s}] {done}/{len(plan.items)} items, "
                    f"{i * SHARD / max(time.perf_counter() - start, 1e-9):.0f} items/s")
    elapsed = time.perf_counter() - start
    keep: list[tuple[int, int]] = []  # (shard, row)
    texts: list[str] = []
    skipped: dict[str, str] = {}
    repaired = 0
    for j, n in enumerate(names):
        with np.load(n) as z:
            reasons, shard_texts = json.loads(str(z["reasons"])), json.loads(str(z["texts"]))
            repaired += int(z["repaired"])
        for r, (reason, text) in enumerate(zip(reasons, shard_texts, strict=True)):
            if reason is None:
                keep.append((j, r))
                texts.append(text)
            else:
                skipped[shards[j][r].item_id] = reason
    if not keep:
        raise ValueError(f"polymodal prepare {dataset}: no item could be prepared; e.g. {next(iter(skipped.items()))}")
    asm = out / ".assembling"
    if asm.exists():
        shutil.rmtree(asm)
    asm.mkdir()
    images = np.lib.format.open_memmap(asm / "images.npy", "w+", np.uint8, (len(keep), 3, size, size))
    row = 0
    for j, n in enumerate(names):
        rows = [r for jj, r in keep if jj == j]
        if rows:
            with np.load(n) as z:
                images[row:row + len(rows)] = z["images"][rows]
            row += len(rows)
    images.flush()
    del images
    kept = [shards[j][r] for j, r in keep]
    np.save(asm / "labels.npy", np.array([it.label for it in kept], dtype=np.int64))
    (asm / "items.json").write_text(json.dumps([[it.item_id, it.label, it.splits] for it in kept]), encoding="utf-8")
    (asm / "texts.json").write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
    expected, found = counts_of([*plan.items, *plan.missing]), counts_of(kept)
    report = {"dataset": dataset, "out": str(out), "items": len(kept), "protocol_items": sum(expected.values()),
              "missing": len(plan.missing), "skipped": len(skipped), "texts_with_undecodable_bytes": repaired,
              "seconds": round(elapsed, 1)}
    manifest = {
        "dataset": dataset, "layout": LAYOUT_VERSION, "protocol": protocol, "settings": {"size": size},
        "counts": {proto: {sp: {class_names[k]: found[(proto, sp, k)] for k in range(len(class_names))}
                           for sp in ("train", "test")} for proto in sorted({k[0] for k in expected})},
        "complete": not plan.missing and not skipped,
        "missing": [{"item": it.item_id, "class": class_names[it.label], "splits": it.splits} for it in plan.missing],
        "skipped": [{"item": k, "reason": r} for k, r in sorted(skipped.items())],
        "arrays_sha256": {a: sha256_file(asm / f"{a}.npy") for a in ("images", "labels")}, "inputs_sha256": key,
        "report": report,
    }
    if not manifest["complete"]:
        manifest["differences"] = class_table(expected, found, class_names)
    (asm / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    files = ["images.npy", "labels.npy", "items.json", "texts.json", "manifest.json"]
    (asm / "SHA256SUMS").write_text("".join(f"{sha256_file(asm / f)}  ./{f}\n" for f in files), encoding="utf-8")
    for f in (*files, "SHA256SUMS"):
        os.replace(asm / f, out / f)
    asm.rmdir()
    shutil.rmtree(parts)
    for k, r in sorted(skipped.items()):
        log(f"  skipped {k}: {r}")
    if not manifest["complete"]:
        log(f"{dataset}: the prepared copy differs from the protocol ({len(plan.missing)} missing, {len(skipped)} "
            f"skipped):\n{manifest['differences']}\nThe dataset refuses to load it unless data.options."
            "allow_incomplete is true (and then says so in every run's provenance)")
    log(f"{dataset}: {len(kept)} items written to {out} in {elapsed:.1f} s")
    return report


class ImageText(MultimodalDataset):
    """One split of a prepared image + text dataset (module docstring); validation is ``val_fraction`` of each
    class of the published training list (seeded), never the test list."""

    def __init__(self, name: str, folder: Path, split: str, class_names: Sequence[str], hint: str, protocol: str,
                 val_fraction: float = 0.1, val_seed: int = 0, image_size: int | None = None,
                 max_length: int = 64, vocab_size: int = 30000, augment: bool | None = None,
                 allow_incomplete: bool = False) -> None:
        from polymodal.data.text import HashingWordTokenizer

        if split not in ("train", "val", "test"):
            raise ValueError(f"{name} dataset: split {split!r}; expected train, val or test")
        if not 0.0 < float(val_fraction) < 1.0:
            raise ValueError(f"{name} dataset: data.options.val_fraction={val_fraction}; expected a number in (0, 1)")
        manifest_path = folder / "manifest.json"
        if not manifest_path.is_file():
            raise FileNotFoundError(f"{name} dataset: the prepared data is absent: {manifest_path} does not exist. {hint}")
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if manifest.get("layout") != LAYOUT_VERSION:
            raise ValueError(f"{name} dataset: {folder} has layout {manifest.get('layout')!r}, this version reads "
                             f"{LAYOUT_VERSION!r}; run `polymodal prepare` again")
        if not manifest["complete"] and not allow_incomplete:
            raise ValueError(f"{name} dataset: {folder} differs from the published protocol ({len(manifest['missing'])}"
                             f" items missing, {len(manifest['skipped'])} skipped):\n{manifest.get('differences', '')}\n"
                             "Restore the files and prepare again, or set data.options.allow_incomplete=true to train "
                             "on it anyway (the difference is then recorded in the run's provenance)")
        if protocol not in manifest["counts"]:
            raise ValueError(f"{name} dataset: data.options.protocol={protocol!r}; {folder} has {sorted(manifest['counts'])}")
        items = json.loads((folder / "items.json").read_text(encoding="utf-8"))
        self.texts = json.loads((folder / "texts.json").read_text(encoding="utf-8"))
        self.images = np.load(folder / "images.npy", mmap_mode="r")
        labels = np.load(folder / "labels.npy")
        listed = np.array([it[2].get(protocol, "") for it in items])
        if split == "test":
            rows = np.flatnonzero(listed == "test")
        else:
            train, val = carve_validation(np.flatnonzero(listed == "train"), labels, float(val_fraction), int(val_seed))
            rows = train if split == "train" else val
        if not len(rows):
            raise ValueError(f"{name} dataset: the {split} split of {folder} is empty")
        stored = int(manifest["settings"]["size"])
        self.size = int(image_size or stored)
        if not 8 <= self.size <= stored:
            raise ValueError(f"{name} dataset: image_size={image_size}; expected 8 to the prepared size {stored}")
        self.tokenizer = HashingWordTokenizer(int(vocab_size), int(max_length))
        self.name, self.split, self.rows, self.item_ids = name, split, rows, [items[i][0] for i in rows]
        self.labels = labels[rows].copy()
        self.class_names, self.num_outputs = tuple(class_names), len(class_names)
        self.augment = split == "train" if augment is None else bool(augment)
        self.schema = (
            Modality("image", "image", (3, self.size, self.size), representation="pixels"),
            Modality("text", "text", (int(max_length),), representation="tokens",
                     extra={"vocab_size": int(vocab_size), "tokenizer": "hashing"}),
        )
        self.provenance = {"dataset": name, "folder": str(folder), "split": split, "size": len(rows),
                           "split_protocol": protocol,
                           "manifest": {k: manifest[k] for k in ("protocol", "settings", "counts", "complete",
                                                                 "arrays_sha256")},
                           "skipped": len(manifest["skipped"]), "missing": len(manifest["missing"]),
                           "validation": {"fraction": float(val_fraction), "seed": int(val_seed)},
                           "tokenizer": {"name": "hashing", "vocab_size": int(vocab_size), "max_length": int(max_length)},
                           "image_size": self.size, "augment": self.augment}

    def __len__(self) -> int:
        return len(self.rows)

    def _image(self, row: int, rng: random.Random) -> torch.Tensor:
        x = torch.from_numpy(np.array(self.images[row], dtype=np.float32) / 255.0)[None]  # (1, 3, S, S)
        return crop_flip_resize(x, rng, self.size, self.augment)[0]

    def __getitem__(self, i: int) -> Sample:
        i = range(len(self))[i]
        row = int(self.rows[i])
        rng = random.Random(torch.randint(0, 2**31 - 1, ()).item()) if self.augment else random.Random(0)
        return {"inputs": {"image": self._image(row, rng), "text": self.tokenizer.encode(self.texts[row])},
                "label": int(self.labels[i]), "index": int(i)}


__all__ = ["ImageText", "Item", "ItemPlan", "counts_of", "prepare_items"]
