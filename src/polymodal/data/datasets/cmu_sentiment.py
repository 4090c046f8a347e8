"""CMU-MOSI and CMU-MOSEI: opinion-video segments scored for sentiment in [-3, 3], as pre-extracted text, audio
and vision feature sequences; the standard train / valid / test split. docs/datasets.md.

Raw layout accepted by ``polymodal prepare cmu-mosi --raw DIR`` (and ``cmu-mosei``): one pickle of the common
aligned (or unaligned) features, anywhere under DIR:

- MulT's ``mosi_data.pkl`` / ``mosei_senti_data.pkl`` (and ``*_noalign.pkl``): ``{'train': {'text', 'audio',
  'vision', 'labels', 'id'}, 'valid': ..., 'test': ...}``, features (segments, steps, dims), labels
  (segments, 1, 1);
- MMSA's ``aligned_50.pkl`` / ``unaligned_50.pkl``: the same splits with ``text``, ``audio``, ``vision``,
  ``regression_labels`` (segments,) and ``id`` (plus ``raw_text``, ``text_bert``, ... which are not read).

Feature sizes of the common releases (text / audio / vision per step): CMU-MOSI 300 (GloVe) or 768 (BERT) /
5 (COVAREP) / 20 (FACET); CMU-MOSEI 300 or 768 / 74 (COVAREP) / 35 (FACET); any consistent sizes are
accepted and recorded. Where a DIR holds several pickles, the aligned one of a known name is taken. The CMU
Multimodal SDK's ``.csd`` computational sequences (HDF5) are not read: align them with the SDK to the labels
and save that pickle (or use one of the pickles above).

Checks before anything is written: the three splits and their keys, every array's shape (3-D features with
the same segments as the labels, the same feature size in every split, one score per segment), and the split
sizes against the standard ones (logged per split). A segment whose label is not a finite number in [-3, 3],
or whose features are all zero or non-finite, is skipped and reported; other non-finite feature values
(COVAREP's -inf) are set to 0, as the common loaders do, and counted in the manifest.

Prepared layout (``OUT``): ``text.npy``, ``audio.npy``, ``vision.npy`` (N, steps, dims) float32, ``labels.npy``
(N,) float32 scores, ``splits.npy`` (N,) int8 (0 train, 1 valid, 2 test), ``items.json`` (segment ids),
``manifest.json`` (the source file and its SHA-256, shapes, counts per split and rounded score, skipped
segments, repaired values, SHA-256 of every array) and ``SHA256SUMS``, all memory-mapped at read time. A
rerun on the same pickle does nothing; an interrupted run starts over (one pass over one file).
"""

from __future__ import annotations

import inspect
import json
import os
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass
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

LAYOUT_VERSION = "cmu-sentiment-v1"
SPLITS = ("train", "valid", "test")
DATASET_SPLIT = {"train": "train", "val": "valid", "test": "test"}
MODALITIES = ("text", "audio", "vision")
LABEL_KEYS = ("regression_labels", "labels")  # MMSA's, MulT's
SCORE_CLASSES = tuple(str(k) for k in range(-3, 4))  # the Acc-7 classes: the score rounded to an integer
TARGETS = {"score": "sentiment", "binary": "classification", "7class": "classification"}
BINARY_CLASSES = ("negative", "non-negative")
BLOCK = 2048  # segments per block when checking and writing the features
FILES = ["text.npy", "audio.npy", "vision.npy", "labels.npy", "splits.npy", "items.json", "manifest.json"]


@dataclass(frozen=True)
class Release:
    """One of the two datasets: names, standard split sizes, the pickles of the common releases."""

    name: str
    title: str
    folder: str
    sizes: dict[str, int]
    known: tuple[str, ...]  # file names, the aligned ones first
    dims: str
    obtain: str


_OBTAIN = ("{title} is not downloaded by polymodal. Get the processed features of the CMU Multimodal SDK release "
           "(http://multicomp.cs.cmu.edu/resources/{page}/; code and download links at https://github.com/"
           "CMU-MultiComp-Lab/CMU-MultimodalSDK) as the aligned pickle of MulT (https://github.com/yaohungt/"
           "Multimodal-Transformer: {mult}) or of MMSA (https://github.com/thuiar/MMSA: aligned_50.pkl). The "
           "corpus is distributed for research use only (the terms are on its page) and the videos remain under "
           "their YouTube owners' terms. Then run `polymodal prepare {name} --raw DIR` with DIR holding that .pkl "
           "(the SDK's .csd files are not read)")
RELEASES = {
    "cmu-mosi": Release("cmu-mosi", "CMU-MOSI", "cmu_mosi", {"train": 1284, "valid": 229, "test": 686},
                        ("mosi_data.pkl", "aligned_50.pkl", "mosi_data_noalign.pkl", "unaligned_50.pkl"),
                        "text 300 (GloVe) or 768 (BERT), audio 5 (COVAREP), vision 20 (FACET)",
                        _OBTAIN.format(title="CMU-MOSI", page="cmu-mosi-dataset", mult="mosi_data.pkl",
                                       name="cmu-mosi")),
    "cmu-mosei": Release("cmu-mosei", "CMU-MOSEI", "cmu_mosei", {"train": 16326, "valid": 1871, "test": 4659},
                         ("mosei_senti_data.pkl", "aligned_50.pkl", "mosei_senti_data_noalign.pkl",
                          "unaligned_50.pkl"),
                         "text 300 (GloVe) or 768 (BERT), audio 74 (COVAREP), vision 35 (FACET)",
                         _OBTAIN.format(title="CMU-MOSEI", page="cmu-mosei-dataset", mult="mosei_senti_data.pkl",
                                        name="cmu-mosei")),
}


# ------------------------------------------------------------------------------------------- reading


class _ArraysOnly(pickle.Unpickler):
    """An unpickler that builds dicts, lists, strings, numbers and numpy arrays only: a pickle that asks for any
    other class (which could run code) is refused."""

    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict"), ("_codecs", "encode"),
               ("builtins", "bytearray"), ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "complex"),
               *((m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray") for n in ("_reconstruct", "scalar")),
               *((m, "_frombuffer") for m in ("numpy.core.numeric", "numpy._core.numeric"))}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED or (module == "numpy.dtypes" and name.endswith("DType")):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"the pickle asks for {module}.{name}, which is not a numpy array or a plain "
                                     "Python value")


def load_pickle(path: Path) -> Any:
    """The content of a features pickle (Python 3 pickles, or Python 2 ones read as latin-1), arrays only."""
    for encoding in ("ASCII", "latin1"):
        try:
            with path.open("rb") as f:
                return _ArraysOnly(f, encoding=encoding).load()
        except UnicodeDecodeError:
            continue
        except Exception as e:  # UnpicklingError, EOFError on a truncated file, ...
            raise ValueError(f"cannot read {path} as a features pickle ({type(e).__name__}: {e}); expected the "
                             "MulT / MMSA pickle of numpy arrays") from e
    raise ValueError(f"cannot decode the strings of {path} (neither ASCII nor latin-1)")


def find_pickle(raw: Path, release: Release) -> Path:
    """The features pickle under ``raw`` (module docstring); FileNotFoundError / ValueError say what to give."""
    found = sorted(p for p in raw.rglob("*.pkl") if p.is_file() and not p.name.startswith("._"))
    if not found:
        csd = sorted(p.name for p in raw.rglob("*.csd"))
        if csd:
            raise FileNotFoundError(
                f"polymodal prepare {release.name}: {raw} holds CMU Multimodal SDK computational sequences "
                f"({', '.join(csd[:3])}{', ...' if len(csd) > 3 else ''}) but no .pkl. polymodal does not read .csd "
                "files: align them to the labels with the SDK (mmdatasdk) and save the train / valid / test dict as "
                f"a pickle, or download the aligned pickle. {release.obtain}")
        raise FileNotFoundError(f"polymodal prepare {release.name}: {raw} holds no .pkl file (searched recursively). "
                                f"{release.obtain}")
    if len(found) == 1:
        return found[0]
    for name in release.known:
        named = [p for p in found if p.name == name]
        if len(named) == 1:
            return named[0]
    raise ValueError(f"polymodal prepare {release.name}: {raw} holds several .pkl files "
                     f"({', '.join(str(p.relative_to(raw)) for p in found[:5])}) and none of the known names "
                     f"{', '.join(release.known)} picks one; give a folder that holds only the one to prepare")


def _segment_ids(value: Any, n: int, split: str) -> list[str]:
    """Segment ids as strings (bytes decoded; an id of several parts, as MulT's rows of three, joined by '_');
    ``split-index`` when the pickle has none (or not one per segment)."""
    if value is None:
        return [f"{split}-{i}" for i in range(n)]

    def text(x: Any) -> str:
        return x.decode("utf-8", errors="replace") if isinstance(x, bytes) else str(x)

    rows = list(value)
    if len(rows) != n:
        return [f"{split}-{i}" for i in range(n)]
    return ["_".join(text(p) for p in np.ravel(np.asarray(r, dtype=object))) if np.ndim(r) else text(r) for r in rows]


def read_release(path: Path, release: Release) -> dict[str, dict[str, Any]]:
    """split -> {"text", "audio", "vision": (N, T, D) float32, "labels": (N,) float64, "ids": [N str], "label_key"},
    with every key and shape checked; ValueError names the file, split, key and shape and says what was expected."""
    data = load_pickle(path)
    where = f"{release.title}: {path}"
    if not isinstance(data, dict) or not all(s in data for s in SPLITS):
        keys = sorted(map(str, data)) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{where} holds {keys}; expected a dict with the splits {', '.join(SPLITS)} (the MulT / "
                         "MMSA features pickle)")
    out: dict[str, dict[str, Any]] = {}
    for split in SPLITS:
        d = data[split]
        if not isinstance(d, dict):
            raise ValueError(f"{where}: [{split!r}] is a {type(d).__name__}; expected a dict of arrays")
        label_key = next((k for k in LABEL_KEYS if k in d), None)
        absent = [k for k in MODALITIES if k not in d] + ([] if label_key else ["labels (or regression_labels)"])
        if absent:
            raise ValueError(f"{where}: [{split!r}] lacks {', '.join(absent)}; it holds {', '.join(sorted(map(str, d)))}. "
                             "Expected the keys text, audio, vision and labels (MulT) or regression_labels (MMSA)")
        split_out: dict[str, Any] = {}
        for m in MODALITIES:
            try:
                a = np.asarray(d[m], dtype=np.float32)
            except (TypeError, ValueError) as e:
                raise ValueError(f"{where}: [{split!r}][{m!r}] is not a numeric array ({e})") from e
            if a.ndim != 3:
                raise ValueError(f"{where}: [{split!r}][{m!r}] has shape {a.shape}; expected (segments, steps, "
                                 f"features), e.g. (N, 50, dims) with {release.dims}")
            split_out[m] = a
        try:
            y = np.asarray(d[label_key], dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: [{split!r}][{label_key!r}] is not a numeric array ({e})") from e
        if y.ndim == 0 or y.size != y.shape[0]:
            raise ValueError(f"{where}: [{split!r}][{label_key!r}] has shape {y.shape}; expected one sentiment "
                             "score per segment, (N,), (N, 1) or (N, 1, 1) (emotion or multi-label arrays are not "
                             "the sentiment score)")
        split_out["labels"] = y.reshape(-1)
        n = {k: len(v) for k, v in split_out.items()}
        if len(set(n.values())) != 1:
            raise ValueError(f"{where}: [{split!r}] arrays differ in their number of segments: {n}; they must pair "
                             "row by row")
        split_out["ids"] = _segment_ids(d.get("id"), n["labels"], split)
        split_out["label_key"] = label_key
        out[split] = split_out
    for m in MODALITIES:
        dims = {s: out[s][m].shape[2] for s in SPLITS}
        if len(set(dims.values())) != 1:
            raise ValueError(f"{where}: the {m} features have different sizes per split {dims}; expected one size")
    return out


# ------------------------------------------------------------------------------------------- preparing


def score_class(y: np.ndarray) -> np.ndarray:
    """Index into SCORE_CLASSES of each score: clipped to [-3, 3], rounded (numpy, halves to even)."""
    return (np.round(np.clip(y, -3.0, 3.0)) + 3).astype(np.int64)


def prepare_release(release: Release, raw: Path, out: Path | None, log: Log) -> dict[str, Any]:
    """Check a features pickle, compare its splits with the standard sizes, then write the prepared layout."""
    out = out if out is not None else default_data_root() / release.folder
    path = find_pickle(raw, release)
    digest = sha256_file(path)
    manifest_path = out / "manifest.json"
    if manifest_path.is_file():
        old = json.loads(manifest_path.read_text(encoding="utf-8"))
        if old.get("dataset") == release.name and old.get("inputs_sha256") == f"{LAYOUT_VERSION}:{digest}" and \
                all((out / f).is_file() for f in FILES):
            log(f"{out}: already prepared from this file; nothing to do")
            return {**old["report"], "reused": True}
    check_out(out, release.name)
    log(f"{release.name}: reading {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    data = read_release(path, release)
    other = [r for r in RELEASES.values() if r is not release and all(len(data[s]["labels"]) == r.sizes[s] for s in SPLITS)]
    if other:
        raise ValueError(f"polymodal prepare {release.name}: {path} has the split sizes of {other[0].title} "
                         f"({', '.join(f'{s} {other[0].sizes[s]}' for s in SPLITS)}); prepare it with `polymodal "
                         f"prepare {other[0].name}`")
    shapes = {m: list(data["train"][m].shape[1:]) for m in MODALITIES}
    skipped: dict[str, str] = {}
    keep: dict[str, np.ndarray] = {}
    repaired = {m: 0 for m in MODALITIES}
    for split in SPLITS:
        d = data[split]
        y = d["labels"]
        ok = np.isfinite(y) & (np.abs(y) <= 3.0 + 1e-6)
        empty = np.ones(len(y), dtype=bool)
        for m in MODALITIES:
            for k in range(0, len(y), BLOCK):
                block = d[m][k:k + BLOCK]
                empty[k:k + BLOCK] &= ~np.any(np.isfinite(block) & (block != 0), axis=(1, 2))
        for i in np.flatnonzero(~ok | empty):
            reason = (f"label {float(y[i])} is not a score in [-3, 3]" if not ok[i]
                      else "every feature of the segment is zero or not finite")
            skipped[f"{split}/{d['ids'][i]}"] = reason
        keep[split] = ok & ~empty
    found = {s: int(keep[s].sum()) for s in SPLITS}
    log(f"{release.name}: features text {shapes['text']}, audio {shapes['audio']}, vision {shapes['vision']} "
        "(steps, dims) per segment; segments per split, standard / found in the file / kept: "
        + "; ".join(f"{s} {release.sizes[s]} / {len(data[s]['labels'])} / {found[s]}" for s in SPLITS))
    differences = [f"  {s:5s}: standard {release.sizes[s]:6d}, found {found[s]:6d}" for s in SPLITS
                   if release.sizes[s] != found[s]]
    if differences:
        log(f"{release.name}: the split sizes differ from the standard split:\n" + "\n".join(differences)
            + "\nThe prepared copy is marked incomplete.")
    if not any(found.values()):
        raise ValueError(f"polymodal prepare {release.name}: no segment of {path} can be used; e.g. "
                         f"{next(iter(skipped.items()))}")
    asm = out / ".assembling"
    if asm.exists():
        shutil.rmtree(asm)
    asm.mkdir(parents=True)
    total = sum(found.values())
    for m in MODALITIES:
        dst = np.lib.format.open_memmap(asm / f"{m}.npy", "w+", np.float32, (total, *shapes[m]))
        row = 0
        for s in SPLITS:
            rows = np.flatnonzero(keep[s])
            for k in range(0, len(rows), BLOCK):
                block = data[s][m][rows[k:k + BLOCK]]
                repaired[m] += int(block.size - np.count_nonzero(np.isfinite(block)))
                dst[row:row + len(block)] = np.nan_to_num(block, nan=0.0, posinf=0.0, neginf=0.0)
                row += len(block)
        dst.flush()
        del dst
    labels = np.concatenate([data[s]["labels"][keep[s]] for s in SPLITS]).astype(np.float32)
    np.save(asm / "labels.npy", labels)
    np.save(asm / "splits.npy", np.repeat(np.arange(3, dtype=np.int8), [found[s] for s in SPLITS]))
    ids = [i for s in SPLITS for i, k in zip(data[s]["ids"], keep[s], strict=True) if k]
    (asm / "items.json").write_text(json.dumps(ids), encoding="utf-8")
    counts = {}
    for s in SPLITS:
        y = data[s]["labels"][keep[s]]
        bins = np.bincount(score_class(y), minlength=7) if len(y) else np.zeros(7, dtype=int)
        counts[s] = {"segments": int(len(y)), "negative": int(np.sum(y < 0)), "zero": int(np.sum(y == 0)),
                     "positive": int(np.sum(y > 0)), "rounded": dict(zip(SCORE_CLASSES, map(int, bins), strict=True))}
    report = {"dataset": release.name, "out": str(out), "segments": total, **{s: found[s] for s in SPLITS},
              "skipped": len(skipped), "non_finite_values_set_to_0": repaired}
    manifest: dict[str, Any] = {
        "dataset": release.name, "layout": LAYOUT_VERSION,
        "protocol": {"dataset": release.title, "split_source": {
            "file": path.name, "sha256": digest, "splits": "the file's own train / valid / test",
            "standard_sizes": release.sizes, "label_key": data["train"]["label_key"]},
            "raw": str(path.parent)},
        "settings": {"shapes": shapes, "dtype": "float32", "non_finite": "set to 0 (counted)",
                     "score_range": [-3.0, 3.0]},
        "counts": counts, "non_finite_values_set_to_0": repaired,
        "complete": not differences and not skipped,
        "skipped": [{"segment": k, "reason": r} for k, r in sorted(skipped.items())],
        "arrays_sha256": {f[:-4]: sha256_file(asm / f) for f in FILES if f.endswith(".npy")},
        "inputs_sha256": f"{LAYOUT_VERSION}:{digest}", "report": report,
    }
    if differences:
        manifest["differences"] = "\n".join(differences)
    (asm / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    (asm / "SHA256SUMS").write_text("".join(f"{sha256_file(asm / f)}  ./{f}\n" for f in FILES), encoding="utf-8")
    for f in (*FILES, "SHA256SUMS"):
        os.replace(asm / f, out / f)
    asm.rmdir()
    for k, r in sorted(skipped.items()):
        log(f"  skipped {k}: {r}")
    if any(repaired.values()):
        log(f"{release.name}: non-finite feature values set to 0: {repaired}")
    if not manifest["complete"]:
        log(f"{release.name}: the prepared copy differs from the standard split ({len(skipped)} skipped); the "
            "dataset refuses to load it unless data.options.allow_incomplete is true (and then says so in every "
            "run's provenance)")
    log(f"{release.name}: {total} segments written to {out}")
    return report


def _preparer(name: str) -> Callable[[Path, Path | None, Log], dict[str, Any]]:
    def prepare_fn(raw: Path, out: Path | None, log: Log) -> dict[str, Any]:
        return prepare_release(RELEASES[name], raw, out, log)

    prepare_fn.__doc__ = f"Check a {RELEASES[name].title} features pickle and write it in the prepared layout."
    return prepare_fn


for _name, _r in RELEASES.items():
    register_preparer(_name, obtain=_r.obtain)(_preparer(_name))


# ------------------------------------------------------------------------------------------- reading prepared


class CMUSentiment(MultimodalDataset):
    """One split of prepared CMU-MOSI / MOSEI: text, audio and vision feature sequences (T, D) and the sentiment
    score (``target="score"``, the ``sentiment`` task), or the class derived from it (``binary``: negative /
    non-negative; ``7class``: the score rounded to -3..3), for a classification run."""

    def __init__(self, release: Release, folder: Path, split: str, target: str = "score",
                 allow_incomplete: bool = False) -> None:
        name = release.name
        if split not in DATASET_SPLIT:
            raise ValueError(f"{name} dataset: split {split!r}; expected train, val or test")
        if target not in TARGETS:
            raise ValueError(f"{name} dataset: data.options.target={target!r}; expected one of {', '.join(TARGETS)}")
        hint = f"Run `polymodal prepare {name} --raw DIR` first (or set data.root to its --out folder). {release.obtain}"
        manifest_path = folder / "manifest.json"
        if not manifest_path.is_file():
            raise FileNotFoundError(f"{name} dataset: the prepared data is absent: {manifest_path} does not exist. {hint}")
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if manifest.get("layout") != LAYOUT_VERSION or manifest.get("dataset") != name:
            raise ValueError(f"{name} dataset: {folder} holds {manifest.get('dataset')!r} in layout "
                             f"{manifest.get('layout')!r}; this reads {name!r} in {LAYOUT_VERSION!r}: run `polymodal "
                             f"prepare {name}` again")
        if not manifest["complete"] and not allow_incomplete:
            raise ValueError(f"{name} dataset: {folder} differs from the standard split ({len(manifest['skipped'])} "
                             f"segments skipped):\n{manifest.get('differences', '')}\nPrepare the complete pickle, or "
                             "set data.options.allow_incomplete=true to use it anyway (the difference is then recorded "
                             "in the run's provenance)")
        splits = np.load(folder / "splits.npy")
        ids = json.loads((folder / "items.json").read_text(encoding="utf-8"))
        self.features = {m: np.load(folder / f"{m}.npy", mmap_mode="r") for m in MODALITIES}
        scores = np.load(folder / "labels.npy")
        if any(len(a) != len(scores) for a in (splits, ids, *self.features.values())):
            raise ValueError(f"{name} dataset: {folder} is inconsistent; run `polymodal prepare {name}` again")
        self.rows = np.flatnonzero(splits == SPLITS.index(DATASET_SPLIT[split]))
        if not len(self.rows):
            raise ValueError(f"{name} dataset: the {split} split of {folder} is empty")
        self.name, self.split, self.target, self.task = name, split, target, TARGETS[target]
        self.segment_ids = [ids[i] for i in self.rows]
        self.scores = scores[self.rows].astype(np.float32)
        if target == "score":
            self.labels, self.num_outputs, self.class_names = self.scores.copy(), 1, ()
        elif target == "binary":
            self.labels, self.num_outputs = (self.scores >= 0).astype(np.int64), 2
            self.class_names = BINARY_CLASSES
        else:
            self.labels, self.num_outputs, self.class_names = score_class(self.scores), 7, SCORE_CLASSES
        self.schema = tuple(Modality(m, "timeseries", tuple(int(x) for x in self.features[m].shape[1:]),
                                     representation="features", extra={"source": release.title})
                            for m in MODALITIES)
        self.provenance = {"dataset": name, "folder": str(folder), "split": split, "size": len(self.rows),
                           "split_protocol": f"standard ({DATASET_SPLIT[split]} of the features pickle)",
                           "target": target,
                           "manifest": {k: manifest[k] for k in ("protocol", "settings", "counts", "complete",
                                                                 "arrays_sha256", "non_finite_values_set_to_0")},
                           "skipped": len(manifest["skipped"])}

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> Sample:
        i = range(len(self))[i]
        row = int(self.rows[i])
        label = float(self.labels[i]) if self.target == "score" else int(self.labels[i])
        return {"inputs": {m: torch.from_numpy(np.array(self.features[m][row], dtype=np.float32)) for m in MODALITIES},
                "label": label, "index": int(i)}


@DATASETS.register("cmu-mosi", tiny={})
def cmu_mosi(split: str = "train", root: str | None = None, target: str = "score", allow_incomplete: bool = False,
             cache_features: bool = True) -> CMUSentiment:
    """CMU-MOSI (text, audio, vision features; sentiment in [-3, 3]), prepared by `polymodal prepare cmu-mosi`."""
    check_cache_option("cmu-mosi", cache_features)
    release = RELEASES["cmu-mosi"]
    return CMUSentiment(release, prepared_folder(root, release.folder), split, target, allow_incomplete)


@DATASETS.register("cmu-mosei", tiny={})
def cmu_mosei(split: str = "train", root: str | None = None, target: str = "score", allow_incomplete: bool = False,
              cache_features: bool = True) -> CMUSentiment:
    """CMU-MOSEI (text, audio, vision features; sentiment in [-3, 3]), prepared by `polymodal prepare cmu-mosei`."""
    check_cache_option("cmu-mosei", cache_features)
    release = RELEASES["cmu-mosei"]
    return CMUSentiment(release, prepared_folder(root, release.folder), split, target, allow_incomplete)


cmu_mosi.__signature__ = inspect.signature(cmu_mosi)  # type: ignore[attr-defined]
cmu_mosei.__signature__ = inspect.signature(cmu_mosei)  # type: ignore[attr-defined]

__all__ = ["RELEASES", "CMUSentiment", "Release", "cmu_mosei", "cmu_mosi", "find_pickle", "load_pickle",
           "prepare_release", "read_release", "score_class"]
