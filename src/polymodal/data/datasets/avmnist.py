"""AV-MNIST as released by MultiBench (Liang et al., NeurIPS 2021 datasets track): MNIST digits paired with
spoken-digit spectrograms (FSDD), 60000 training / 10000 test pairs. docs/datasets.md.

Raw layout accepted by ``polymodal prepare av-mnist --raw DIR`` (MultiBench's ``avmnist`` folder, at DIR or one
level below): ``image/train_data.npy`` (N, 784), ``image/test_data.npy``, ``audio/train_data.npy`` (N, 112, 112),
``audio/test_data.npy``, ``train_labels.npy``, ``test_labels.npy`` (digits 0-9). Every array's shape, length,
finiteness and value range (0-255) is checked before anything is written.

Prepared layout (``OUT``): ``image.npy`` (N, 1, 28, 28) and ``audio.npy`` (N, 112, 112), both float16 in [0, 1]
(MultiBench divides by 255), ``labels.npy``, ``splits.npy`` (0 train, 1 test), ``manifest.json`` and
``SHA256SUMS``. The protocol is MultiBench's: validation is the last 5000 training pairs.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polymodal.data.base import DATASETS, MultimodalDataset
from polymodal.data.batch import Sample
from polymodal.data.datasets.av_clips import check_cache_option, check_out, prepared_folder, sha256_file
from polymodal.data.prepare import Log, register_preparer
from polymodal.data.schema import Modality
from polymodal.paths import default_data_root

NAME = "av-mnist"
FOLDER = "av_mnist"
LAYOUT_VERSION = "av-mnist-v1"
VAL_SIZE = 5000
FILES = {("image", "train"): "image/train_data.npy", ("image", "test"): "image/test_data.npy",
         ("audio", "train"): "audio/train_data.npy", ("audio", "test"): "audio/test_data.npy",
         ("labels", "train"): "train_labels.npy", ("labels", "test"): "test_labels.npy"}
SHAPES = {"image": (784,), "audio": (112, 112), "labels": ()}
OBTAIN = ("AV-MNIST is not downloaded by polymodal. Get MultiBench's avmnist folder (https://github.com/pliang279/"
          "MultiBench, data links in its README); MNIST is CC BY-SA 3.0 and the Free Spoken Digit Dataset CC BY-SA "
          "4.0. Then run `polymodal prepare av-mnist --raw DIR` with DIR holding image/, audio/ and the label files")


def release_folder(raw: Path) -> Path:
    for cand in (raw, *sorted(p for p in raw.iterdir() if p.is_dir())):
        if all((cand / f).is_file() for f in FILES.values()):
            return cand
    raise FileNotFoundError(f"polymodal prepare av-mnist: {raw} does not hold {', '.join(FILES.values())} (at its top "
                            f"or one level below). {OBTAIN}")


def check_arrays(root: Path) -> dict[tuple[str, str], np.ndarray]:
    """Every release array, memory-mapped and checked (shape, length, finite, range); ValueError names the file."""
    arrays = {}
    for key, rel in FILES.items():
        path = root / rel
        try:
            a = np.load(path, mmap_mode="r")
        except Exception as e:  # ValueError / OSError on a damaged .npy
            raise ValueError(f"AV-MNIST: cannot read {path} as a .npy array ({type(e).__name__}: {e})") from e
        if a.shape[1:] != SHAPES[key[0]]:
            raise ValueError(f"AV-MNIST: {path} has shape {a.shape}; expected (N, {', '.join(map(str, SHAPES[key[0]]))})"
                             .replace(", )", ")"))
        arrays[key] = a
    for split in ("train", "test"):
        n = {m: len(arrays[(m, split)]) for m in SHAPES}
        if len(set(n.values())) != 1:
            raise ValueError(f"AV-MNIST: the {split} arrays differ in length: {n}; they must pair row by row")
        labels = np.asarray(arrays[("labels", split)])
        if not np.issubdtype(labels.dtype, np.integer) and not np.all(labels == np.round(labels)):
            raise ValueError(f"AV-MNIST: {root / FILES[('labels', split)]} holds non-integer labels")
        if labels.min() < 0 or labels.max() > 9:
            raise ValueError(f"AV-MNIST: {root / FILES[('labels', split)]} holds labels {labels.min()}..{labels.max()}; "
                             "expected digits 0-9")
        for m in ("image", "audio"):
            a = arrays[(m, split)]
            for k in range(0, len(a), 10000):
                block = np.asarray(a[k:k + 10000], dtype=np.float32)
                if not np.isfinite(block).all() or block.min() < 0 or block.max() > 255:
                    raise ValueError(f"AV-MNIST: {root / FILES[(m, split)]} holds values outside 0-255 or not finite "
                                     f"(rows {k}-{k + len(block) - 1})")
    return arrays


@register_preparer(NAME, obtain=OBTAIN)
def prepare_avmnist(raw: Path, out: Path | None, log: Log) -> dict[str, Any]:
    """Check MultiBench's AV-MNIST arrays, then write them in the prepared layout (module docstring)."""
    out = out if out is not None else default_data_root() / FOLDER
    root = release_folder(raw)
    arrays = check_arrays(root)
    n = {s: len(arrays[("labels", s)]) for s in ("train", "test")}
    log(f"{root}: {n['train']} training and {n['test']} test pairs, every array checked")
    check_out(out, NAME)
    asm = out / ".assembling"
    if asm.exists():
        shutil.rmtree(asm)
    asm.mkdir(parents=True)
    total = n["train"] + n["test"]
    for m, shape in (("image", (1, 28, 28)), ("audio", (112, 112))):
        dst = np.lib.format.open_memmap(asm / f"{m}.npy", "w+", np.float16, (total, *shape))
        row = 0
        for s in ("train", "test"):
            src = arrays[(m, s)]
            for k in range(0, len(src), 10000):
                block = np.asarray(src[k:k + 10000], dtype=np.float32) / 255.0
                dst[row:row + len(block)] = block.reshape(len(block), *shape)
                row += len(block)
        dst.flush()
        del dst
    labels = np.concatenate([np.asarray(arrays[("labels", s)]).astype(np.int64).reshape(-1) for s in ("train", "test")])
    np.save(asm / "labels.npy", labels)
    np.save(asm / "splits.npy", np.repeat(np.array([0, 1], dtype=np.int8), [n["train"], n["test"]]))
    counts = {s: np.bincount(labels[: n["train"]] if s == "train" else labels[n["train"]:], minlength=10).tolist()
              for s in ("train", "test")}
    manifest = {"dataset": NAME, "layout": LAYOUT_VERSION,
                "protocol": {"dataset": "AV-MNIST (MultiBench)", "split_source": "MultiBench's train / test arrays; "
                             f"validation = the last {VAL_SIZE} training pairs", "raw": str(root),
                             "raw_sha256": {rel: sha256_file(root / rel) for rel in FILES.values()}},
                "settings": {"scale": "value / 255", "dtype": "float16"}, "counts": counts, "complete": True}
    (asm / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    files = ["image.npy", "audio.npy", "labels.npy", "splits.npy", "manifest.json"]
    (asm / "SHA256SUMS").write_text("".join(f"{sha256_file(asm / f)}  ./{f}\n" for f in files), encoding="utf-8")
    for f in (*files, "SHA256SUMS"):
        os.replace(asm / f, out / f)
    asm.rmdir()
    log(f"av-mnist: {total} pairs written to {out}")
    return {"dataset": NAME, "out": str(out), "train": n["train"], "test": n["test"], "counts": counts}


HINT = f"Run `polymodal prepare av-mnist --raw DIR` first (or set data.root to its --out folder). {OBTAIN}"


class AVMNIST(MultimodalDataset):
    """One split of prepared AV-MNIST: image (1, 28, 28) and audio spectrogram (112, 112), both in [0, 1]."""

    def __init__(self, split: str = "train", root: str | None = None) -> None:
        if split not in ("train", "val", "test"):
            raise ValueError(f"av-mnist dataset: split {split!r}; expected train, val or test")
        folder = prepared_folder(root, FOLDER)
        if not (folder / "manifest.json").is_file():
            raise FileNotFoundError(f"av-mnist dataset: the prepared data is absent: {folder / 'manifest.json'} does "
                                    f"not exist. {HINT}")
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        if manifest.get("layout") != LAYOUT_VERSION:
            raise ValueError(f"av-mnist dataset: {folder} has layout {manifest.get('layout')!r}; prepare it again")
        splits = np.load(folder / "splits.npy")
        train = np.flatnonzero(splits == 0)
        if len(train) <= VAL_SIZE:
            raise ValueError(f"av-mnist dataset: {folder} has {len(train)} training pairs; MultiBench's validation "
                             f"takes the last {VAL_SIZE}, so more are needed")
        self.rows = {"train": train[:-VAL_SIZE], "val": train[-VAL_SIZE:], "test": np.flatnonzero(splits == 1)}[split]
        self.image = np.load(folder / "image.npy", mmap_mode="r")
        self.audio = np.load(folder / "audio.npy", mmap_mode="r")
        self.labels = np.load(folder / "labels.npy")[self.rows]
        self.name, self.split, self.num_outputs = NAME, split, 10
        self.class_names = tuple(str(d) for d in range(10))
        self.schema = (Modality("image", "image", (1, 28, 28), representation="pixels"),
                       Modality("audio", "audio", (112, 112), sample_rate=8000, representation="logmel",
                                extra={"spectrogram": "MultiBench's 112 x 112 spectrogram, scaled to [0, 1]"}))
        self.provenance = {"dataset": NAME, "folder": str(folder), "split": split, "size": len(self.rows),
                           "manifest": {k: manifest[k] for k in ("protocol", "settings", "counts")}}

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> Sample:
        i = range(len(self))[i]
        row = int(self.rows[i])
        return {"inputs": {"image": torch.from_numpy(np.array(self.image[row], dtype=np.float32)),
                           "audio": torch.from_numpy(np.array(self.audio[row], dtype=np.float32))},
                "label": int(self.labels[i]), "index": int(i)}


@DATASETS.register(NAME, tiny={})
def av_mnist(split: str = "train", root: str | None = None, cache_features: bool = True) -> AVMNIST:
    """AV-MNIST (MultiBench): MNIST image + spoken-digit spectrogram, prepared by `polymodal prepare av-mnist`."""
    check_cache_option(NAME, cache_features)
    return AVMNIST(split, root)



__all__ = ["AVMNIST", "av_mnist", "check_arrays", "prepare_avmnist"]
