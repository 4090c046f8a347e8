"""A persistent, incremental vector index over media files, on FAISS (docs/search.md, "The index format").

On disk an index is a folder::

    manifest.json          what the index holds: model id, dimension, shards, removed rows, ANN file
    shard-000001.npy       (rows, dim) float32 L2-normalised vectors, written once, never changed
    shard-000001.jsonl     one JSON line per row: path, content hash, modality, timestamp
    ivf-000007.faiss       the trained IVF index or HNSW graph (``hnsw-...``), past ``ivf_threshold`` live rows
    lock                   held (flock) by the one process that writes

The manifest records the SHA-256 of every file it names; opening checks them (:class:`DamagedFileError`
names a damaged file) and :meth:`Index.repair` re-embeds what a damaged shard held.

Row ids are row numbers across the shards in order. Adding writes a new shard; removing appends row
ids to ``removed`` in the manifest. Every write goes to a temporary file that is fsync'ed and renamed
into a name no manifest has used yet; the manifest is replaced last (atomic rename, then the folder is
fsync'ed). A process killed at any moment therefore leaves the previous manifest and every file it
names intact: the index loads as it was at the last commit, and the next writer deletes the leftovers.

Search is exact (``IndexFlatIP``: inner product = cosine on unit vectors) until the index holds
``ivf_threshold`` live rows; past it :func:`choose_ann` measures an ``IndexIVFFlat`` and an HNSW graph
on the index's own vectors and keeps the first that is accurate and fast enough, else search stays
exact; the choice is made again when the collection has grown four-fold. The vectors in the shards
stay the source of truth: the ANN file may lag behind the manifest (rows added since it was saved are
added on load).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "polymodal-index"
VERSION = 2  # 2: a SHA-256 per file; version 1 (no checksums) is read and upgraded by its next commit
READABLE_VERSIONS = (1, 2)
MANIFEST = "manifest.json"
DEFAULT_IVF_THRESHOLD = 50_000


class SearchIndexError(Exception):
    """Base class of the search index's own errors."""


class ModelMismatchError(SearchIndexError, ValueError):
    """Vectors of one embedding model offered to an index built with another."""


class IndexFormatError(SearchIndexError, ValueError):
    """A folder that is not a polymodal index, or one whose files do not agree with its manifest."""


class DamagedFileError(IndexFormatError):
    """A file of the index that does not hold what its manifest recorded (``file``: its name, ``why``)."""

    def __init__(self, root: Path, file: str, why: str) -> None:
        super().__init__(
            f"index {root}: {file} is damaged ({why}); `polymodal index check --index {root} --repair` "
            "re-embeds the files it held"
        )
        self.file, self.why = file, why


class IndexFolderError(SearchIndexError, ValueError):
    """An index folder that holds files the index did not write (it is refused rather than touched)."""


LOCK = "lock"
_TMP = re.compile(r"\.tmp-\d+$")


def _listing(names: Sequence[str], most: int = 5) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def ivf_params(n: int) -> tuple[int, int]:
    """(nlist, nprobe) for ``n`` vectors: nlist ~ 4 sqrt(n) rounded to a power of two, nprobe = nlist / 256 (>= 8).

    At 1e6 clustered vectors of width 256 this gives (4096, 16), which benchmarks/results/index_scaling.md
    measures against exact search.
    """
    nlist = 2 ** max(4, round(math.log2(4 * math.sqrt(max(n, 1)))))
    return nlist, max(8, nlist // 256)


def build_ivf(vectors: np.ndarray, ids: np.ndarray, nlist: int, *, train_size: int | None = None, seed: int = 0) -> Any:
    """A trained ``IndexIVFFlat`` (inner product) holding ``vectors`` under ``ids``.

    k-means is trained on at most ``train_size`` (default 64 * nlist) rows drawn with ``seed``.
    """
    import faiss

    n, dim = vectors.shape
    if n < nlist:
        raise ValueError(f"an IVF index with nlist={nlist} cells needs at least {nlist} vectors; got {n}")
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    take = min(n, train_size or 64 * nlist)
    sample = vectors if take == n else vectors[np.random.default_rng(seed).choice(n, take, replace=False)]
    index.cp.seed = seed
    index.cp.niter = 20
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids.astype(np.int64))
    return index


HNSW_M = 32  # graph degree of the HNSW index
HNSW_EF_CONSTRUCTION = 64  # candidates kept while inserting: build time against graph quality
EF_SEARCH_STEPS = (16, 32, 64, 128, 256, 512)  # efSearch values the choice tries, smallest first
NPROBE_STEPS = 3  # nprobe values the choice tries: the default, then doubled
MIN_RECALL = 0.9  # recall@10 an approximate index must reach on the index's own vectors to be used
MIN_SPEEDUP = 2.0  # and how much faster than exact search it must answer the same queries
PROBE_QUERIES = 256
ANN_KINDS = ("auto", "ivf", "hnsw", "exact")


def build_hnsw(vectors: np.ndarray, ids: np.ndarray, *, m: int = HNSW_M, ef_construction: int = HNSW_EF_CONSTRUCTION) -> Any:
    """An ``IndexHNSWFlat`` graph (inner product) holding ``vectors`` under ``ids`` (wrapped in ``IndexIDMap``)."""
    import faiss

    graph = faiss.IndexHNSWFlat(vectors.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    graph.hnsw.efConstruction = ef_construction
    index = faiss.IndexIDMap(graph)
    index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids.astype(np.int64))
    return index


def ann_kind(index: Any) -> str:
    """``ivf`` or ``hnsw``: what kind of FAISS index ``index`` is."""
    import faiss

    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap) else index
    return "hnsw" if isinstance(inner, faiss.IndexHNSW) else "ivf"


def search_params(index: Any, *, nprobe: int | None = None, ef_search: int | None = None, exclude: Any = None) -> Any:
    """FAISS search parameters for an IVF or HNSW index: nprobe / efSearch, and an ``IDSelector`` of ids to leave out."""
    import faiss

    if ann_kind(index) == "hnsw":
        params = faiss.SearchParametersHNSW()
        if ef_search:
            params.efSearch = int(ef_search)
    else:
        params = faiss.SearchParametersIVF()
        if nprobe:
            params.nprobe = int(nprobe)
    if exclude is not None:
        params.sel = exclude
    return params


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean recall@k of ``found`` against ``truth`` (rows of ids of equal width k)."""
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)]))


def choose_ann(vectors: np.ndarray, ids: np.ndarray, *, kind: str = "auto", nprobe: int | None = None,
               min_recall: float = MIN_RECALL, min_speedup: float = MIN_SPEEDUP, probe: int = PROBE_QUERIES,
               seed: int = 0, log: Callable[[str], None] | None = None) -> tuple[Any, dict[str, Any]]:
    """The approximate index that fits these vectors, or None (exact search), and what was measured.

    ``probe`` of the vectors are held out: each candidate is built on the others and searched with them,
    against their exact 10 nearest others (a vector searched in a structure that holds it is found too
    easily, a graph's neighbours are its own), and they are added to the chosen structure after. With ``kind="auto"`` IVF (``ivf_params``; nprobe doubled up to :data:`NPROBE_STEPS`
    times), then an HNSW graph (efSearch from :data:`EF_SEARCH_STEPS`). The first setting that reaches
    recall@10 >= ``min_recall`` and answers >= ``min_speedup`` times faster than exact search is taken.
    Data with structure (clusters) usually get IVF; data without (uniform-like) defeat IVF, and HNSW
    often too, and then stay exact: slower, never silently wrong. ``kind="ivf"`` or ``"hnsw"`` builds
    that kind whatever it measures (the smallest setting reaching ``min_recall``, else the largest
    tried); a fixed ``nprobe`` means IVF with that nprobe.
    """
    import faiss

    if kind not in ("auto", "ivf", "hnsw"):
        raise ValueError(f"index kind {kind!r}; expected auto, ivf or hnsw")
    k = 10
    n = len(ids)
    forced = kind != "auto" or nprobe is not None
    kinds = ["ivf"] if nprobe is not None else ["ivf", "hnsw"] if kind == "auto" else [kind]
    held = np.zeros(n, bool)
    held[np.random.default_rng(seed).choice(n, min(probe, n // 4), replace=False)] = True
    queries, base, base_ids = np.ascontiguousarray(vectors[held]), np.ascontiguousarray(vectors[~held]), ids[~held]
    t = time.perf_counter()
    _, truth_pos = faiss.knn(queries, base, k, metric=faiss.METRIC_INNER_PRODUCT)
    exact_s = time.perf_counter() - t
    truth = base_ids[truth_pos]
    info: dict[str, Any] = {"probe_queries": len(queries), "min_recall": min_recall, "min_speedup": min_speedup,
                            "exact_qps": round(len(queries) / exact_s, 1), "tried": [], "chosen": {"kind": "flat"}}
    for candidate in kinds:
        t = time.perf_counter()
        if candidate == "ivf":
            nlist, default = ivf_params(n)
            if len(base_ids) < nlist:
                continue
            index = build_ivf(base, base_ids, nlist, seed=seed)
            key, steps = "nprobe", [nprobe] if nprobe else [min(nlist, default * 2**i) for i in range(NPROBE_STEPS)]
        else:
            index = build_hnsw(base, base_ids)
            key, steps = "ef_search", list(EF_SEARCH_STEPS)
        info[f"{candidate}_build_s"] = round(time.perf_counter() - t, 1)
        for step in steps:
            t = time.perf_counter()
            _, found = index.search(queries, k, params=search_params(index, **{key: step}))
            speedup = exact_s / max(time.perf_counter() - t, 1e-9)
            recall = _recall(found, truth)
            info["tried"].append({"kind": candidate, key: step, "recall_at_10": round(recall, 4),
                                  "speedup": round(speedup, 2)})
            if log:
                log(f"{candidate} {key}={step}: recall@10 {recall:.3f} at {speedup:.1f}x exact")
            info["chosen"] = {"kind": candidate, key: step}
            if recall >= min_recall and (speedup >= min_speedup or forced):
                index.add_with_ids(queries, ids[held])  # the held-out vectors join the chosen structure
                return index, info
            if speedup < min_speedup and not forced:
                break  # a larger setting is only slower
        if forced:
            index.add_with_ids(queries, ids[held])
            return index, info
        info["chosen"] = {"kind": "flat"}
        del index
    return None, info


@dataclass(frozen=True)
class Hit:
    """One search result: the indexed file, its score (inner product of unit vectors) and where in it."""

    path: str
    score: float
    modality: str
    timestamp: float | None
    content_hash: str
    row: int


@dataclass
class AddReport:
    """What an :meth:`Index.add` did, file by file."""

    added: list[str] = field(default_factory=list)  # newly embedded files
    copied: list[str] = field(default_factory=list)  # same content already indexed under another path
    unchanged: list[str] = field(default_factory=list)  # same path, same content: nothing to do
    replaced: list[str] = field(default_factory=list)  # same path, new content: old rows removed
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    repaired: list[str] = field(default_factory=list)  # same content, but held extra copies of its rows: removed
    pruned: list[str] = field(default_factory=list)  # indexed under a folder added again, but gone from disk: removed
    rows: int = 0  # vectors written


def _named(manifest: dict[str, Any]) -> set[str]:
    """The files a manifest names: its shards and its ANN file."""
    names = {name for s in manifest["shards"] for name in (s["vectors"], s["meta"]) if name}
    if manifest.get("ann"):
        names.add(manifest["ann"]["file"])
    return names


def _root_of(given: Path) -> Path:
    """The folder a given path adds files from: itself, or the folder of a file (of the link, for a broken link)."""
    if given.is_dir():
        return given.resolve()
    try:
        return given.resolve(strict=True).parent
    except (RuntimeError, OSError):  # a symlink loop or a link to nothing: skipped, its folder is still listed
        return given.absolute().parent.resolve()


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durable(path: Path, data: bytes) -> str:
    """Write ``data`` to a temporary beside ``path``, fsync it, rename it to ``path``; returns its SHA-256 (hex)."""
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class Damage:
    """A damaged file found by :meth:`Index.open` with ``damaged="keep"``: which, why, and the rows it held."""

    file: str
    why: str
    shard: int | None  # position in the manifest's shards; None for the ANN file
    paths: list[str] = field(default_factory=list)  # live files whose rows it held (unknown when its metadata is lost)
    rows: int = 0  # live rows it held


@dataclass
class RepairReport:
    """What :meth:`Index.repair` did."""

    damaged: list[Damage] = field(default_factory=list)
    reembedded: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)  # files of a damaged shard that no longer exist
    lost_rows: int = 0  # live rows of shards whose metadata was damaged: their files are unknown
    upgraded: bool = False  # checksums recorded for an index written before they existed


class Index:
    """A folder of vectors and metadata with a FAISS search structure (see the module docstring).

    Open with :meth:`open` (existing) or :meth:`create`; :meth:`open_or_create` does either. Reading
    (search) needs no lock; :meth:`add` and :meth:`remove` hold the folder's lock while they write.
    """

    def __init__(self, root: Path, manifest: dict[str, Any], *, damaged: str = "raise") -> None:
        if damaged not in ("raise", "keep"):
            raise ValueError(f"damaged={damaged!r}; expected 'raise' or 'keep'")
        self.root = root
        self.manifest = manifest
        self._on_damage = damaged
        self._load()

    # ------------------------------------------------------------------ opening

    @classmethod
    def create(
        cls, root: str | os.PathLike, model_id: str, dim: int, *, model_spec: str | None = None,
        ivf_threshold: int = DEFAULT_IVF_THRESHOLD, nprobe: int | None = None, ann: str = "auto",
    ) -> Index:
        """A new empty index in ``root`` (created; it must not already hold an index).

        Past ``ivf_threshold`` live vectors search becomes approximate: ``ann="auto"`` measures IVF and
        HNSW on the index's own vectors and takes the first that is accurate and fast enough, else stays
        exact (:func:`choose_ann`); ``"ivf"`` or ``"hnsw"`` forces that kind, ``"exact"`` never leaves
        exact search. ``nprobe`` fixes IVF with that many cells probed.
        """
        if ann not in ANN_KINDS:
            raise ValueError(f"ann={ann!r}; expected one of {', '.join(ANN_KINDS)}")
        root = Path(root).expanduser().resolve()
        if (root / MANIFEST).exists():
            raise FileExistsError(f"{root} already holds an index; open it with Index.open")
        if root.exists() and not root.is_dir():
            raise NotADirectoryError(f"--index {root} is a file; an index is a folder of its own: give a new folder")
        foreign = sorted(p.name for p in root.iterdir()  # a create killed before its first commit leaves these
                         if p.name != LOCK and _TMP.sub("", p.name) != MANIFEST) if root.is_dir() else []
        if foreign:
            raise IndexFolderError(
                f"--index {root} is not empty ({_listing(foreign)}); an index needs a folder of its own, "
                "because it writes and deletes files there: give a new or empty folder (e.g. "
                f"{root.name}.index beside it)"
            )
        if dim < 1:
            raise ValueError(f"index dimension must be >= 1; got {dim}")
        if ivf_threshold < 256:
            raise ValueError(f"ivf_threshold={ivf_threshold}: an IVF index needs at least 256 vectors to train")
        root.mkdir(parents=True, exist_ok=True)
        manifest = {
            "format": FORMAT, "version": VERSION, "model_id": model_id, "model_spec": model_spec, "dim": int(dim),
            "generation": 0, "shards": [], "removed": [], "roots": [], "ivf_threshold": int(ivf_threshold),
            "nprobe": nprobe, "ann": None, "ann_kind": ann, "updated": time.time(),
        }
        index = cls(root, manifest)
        with index._locked():
            index._commit()
        return index

    @classmethod
    def open(cls, root: str | os.PathLike, *, damaged: str = "raise") -> Index:
        """The index in ``root`` as of its last complete commit, every file checked against its manifest.

        A damaged file (checksum, size, shape, NaN) raises :class:`DamagedFileError` naming it; with
        ``damaged="keep"`` the index opens without the damaged shards' rows, listed in :attr:`damaged`
        (what :meth:`repair` and ``polymodal index check`` use).
        """
        root = Path(root).expanduser().resolve()
        path = root / MANIFEST
        if not path.is_file():
            raise FileNotFoundError(
                f"{root} holds no index ({MANIFEST} missing); build one with `polymodal index add PATHS --index {root} "
                "--model MODEL`"
            )
        try:
            manifest = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise IndexFormatError(f"{path} is not valid JSON ({e}); the index is damaged") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise IndexFormatError(f"{path} is not a polymodal index manifest (no \"format\": \"{FORMAT}\")")
        if manifest.get("version") not in READABLE_VERSIONS:
            raise IndexFormatError(
                f"{path}: index format version {manifest.get('version')}; this polymodal reads versions "
                f"{', '.join(map(str, READABLE_VERSIONS))}: build the index again with this version"
            )
        return cls(root, manifest, damaged=damaged)

    @classmethod
    def open_or_create(cls, root: str | os.PathLike, model_id: str, dim: int, **kwargs: Any) -> Index:
        """Open the index in ``root``, or create it when absent; an existing one must have this model id."""
        if (Path(root).expanduser() / MANIFEST).is_file():
            index = cls.open(root)
            index.check_model(model_id)
            return index
        return cls.create(root, model_id, dim, **kwargs)

    def _load(self) -> None:
        m = self.manifest
        self.model_id: str = m["model_id"]
        self.dim: int = int(m["dim"])
        vecs, meta = [], []
        self.damaged: list[Damage] = []
        hidden: set[int] = set()  # rows of damaged shards (damaged="keep"): never returned, not committed
        committed_removed = set(m["removed"])
        for number, shard in enumerate(m["shards"]):
            start, n = len(meta), int(shard["rows"])
            if shard.get("lost"):  # rows a repair gave up (all of them removed): placeholders keep row ids stable
                vecs.append(np.zeros((n, self.dim), np.float32))
                meta.extend({"path": "", "hash": "", "modality": "lost", "timestamp": None} for _ in range(n))
                continue
            rows, meta_why = self._read_meta(shard)
            try:
                if meta_why is not None:
                    raise DamagedFileError(self.root, shard["meta"], meta_why)
                v = self._read_vectors(shard)
            except DamagedFileError as err:
                if self._on_damage == "raise":
                    raise
                paths = sorted({r["path"] for i, r in enumerate(rows or []) if start + i not in committed_removed})
                live = sum(1 for i in range(start, start + n) if i not in committed_removed)
                self.damaged.append(Damage(err.file, err.why, number, paths, live))
                v = np.zeros((n, self.dim), np.float32)
                rows = rows if rows is not None else [
                    {"path": "", "hash": "", "modality": "lost", "timestamp": None} for _ in range(n)]
                hidden.update(range(start, start + n))
            vecs.append(v)
            meta.extend(rows)
        self.vectors = np.concatenate(vecs) if vecs else np.zeros((0, self.dim), np.float32)
        self.meta: list[dict[str, Any]] = meta
        self.removed: set[int] = committed_removed | hidden
        self._by_path: dict[str, list[int]] = {}
        self._by_hash: dict[str, list[int]] = {}
        for i, row in enumerate(meta):
            if i not in self.removed:
                self._by_path.setdefault(row["path"], []).append(i)
                self._by_hash.setdefault(row["hash"], []).append(i)
        self._ann: Any = None  # built lazily by _search_structure
        self._flat_ids: np.ndarray | None = None
        self._exclude: Any = None  # (selector, what it holds) of removed rows a graph still holds
        self._counts: dict[str, int] | None = None
        self._by_modality: dict[tuple[str, ...], np.ndarray] = {}
        if self._on_damage == "keep" and m.get("ann"):  # otherwise checked when a search first reads it
            try:
                self._read_ann(m["ann"])
            except DamagedFileError as err:
                self.damaged.append(Damage(err.file, err.why, None))

    def _read_meta(self, shard: dict[str, Any]) -> tuple[list[dict[str, Any]] | None, str | None]:
        """(rows, None), or (None, why it is damaged) for a shard's metadata file."""
        path = self.root / shard["meta"]
        try:
            data = path.read_bytes()
        except OSError as e:
            return None, f"cannot read it: {e.strerror or e}"
        want = shard.get("meta_sha256")
        if want and hashlib.sha256(data).hexdigest() != want:  # what it says can no longer be trusted
            return None, f"its SHA-256 differs from the one recorded when it was written ({len(data)} bytes)"
        try:
            rows = [json.loads(line) for line in data.decode().splitlines() if line]
            if len(rows) != shard["rows"] or not all(isinstance(r, dict) and {"path", "hash", "modality"} <= r.keys()
                                                     for r in rows):
                raise ValueError(f"{len(rows)} metadata rows where the manifest promises {shard['rows']}")
        except (ValueError, UnicodeDecodeError) as e:
            return None, f"not the metadata the manifest promises: {e}"
        return rows, None

    def _read_vectors(self, shard: dict[str, Any]) -> np.ndarray:
        """A shard's vectors, checked against the manifest (checksum when recorded, shape, finite unit rows)."""
        name = shard["vectors"]
        path = self.root / name
        try:
            want = shard.get("vectors_sha256")
            same = not want or file_sha256(path) == want
            v = np.load(path, allow_pickle=False) if same else None
        except OSError as e:
            raise DamagedFileError(self.root, name, f"cannot read it: {e.strerror or e}") from None
        except (EOFError, ValueError) as e:
            raise DamagedFileError(self.root, name, f"not a NumPy array file: {e or type(e).__name__}") from None
        if v is None:
            raise DamagedFileError(self.root, name, f"its SHA-256 differs from the one recorded when it was written "
                                                    f"({path.stat().st_size} bytes)")
        if v.shape != (shard["rows"], self.dim) or v.dtype != np.float32:
            raise DamagedFileError(self.root, name, f"it holds {v.shape} {v.dtype} vectors; the manifest promises "
                                                    f"({shard['rows']}, {self.dim}) float32")
        norms = np.linalg.norm(v, axis=1) if len(v) else np.zeros(0)
        bad = ~(np.isfinite(norms) & ((np.abs(norms - 1) < 1e-3) | (norms == 0)))
        if bad.any():
            raise DamagedFileError(self.root, name, f"{int(bad.sum())} of its {len(v)} rows are not finite unit "
                                                    f"vectors (row {int(np.flatnonzero(bad)[0])} first)")
        return v

    # ------------------------------------------------------------------ facts

    def __len__(self) -> int:
        """Live vectors (removed rows not counted)."""
        return len(self.meta) - len(self.removed)

    @property
    def paths(self) -> list[str]:
        """Indexed files (resolved paths), sorted."""
        return sorted(self._by_path)

    @property
    def roots(self) -> list[str]:
        """Folders the indexed files were added from (files outside them are never served)."""
        return list(self.manifest["roots"])

    @property
    def kind(self) -> str:
        """``flat`` (exact), ``ivf`` or ``hnsw`` (approximate): what a search uses now."""
        return self.manifest["ann"].get("kind", "ivf") if self.manifest["ann"] else "flat"

    def contains(self, path: str | os.PathLike) -> bool:
        return str(Path(path).resolve()) in self._by_path

    def check_model(self, model_id: str) -> None:
        """Raise :class:`ModelMismatchError` unless ``model_id`` is the index's."""
        if model_id != self.model_id:
            spec = self.manifest.get("model_spec")
            raise ModelMismatchError(
                f"index {self.root} was built with model {self.model_id!r}"
                f"{f' (--model {spec})' if spec else ''}; vectors of {model_id!r} live in another embedding space "
                "and cannot be compared with it: search with the index's own model, or build a new index for this one"
            )

    # ------------------------------------------------------------------ writing

    def _refuse_if_damaged(self) -> None:
        if self.damaged:
            d = self.damaged[0]
            raise DamagedFileError(self.root, d.file, d.why)

    def repair(self, embedder: Any, *, fps: float = 1.0,
               progress: Callable[[int, int, str], None] | None = None) -> RepairReport:
        """Give up the damaged files of an index opened with ``damaged="keep"`` and re-embed the files they held.

        A damaged shard's rows are marked removed and the shard is recorded as lost (its files deleted);
        its files, known from its metadata, are embedded again with ``embedder`` (the index's model) when
        they still exist. A damaged ANN file is dropped and built again. An index written before checksums
        existed gets them recorded. The rows of a shard whose metadata is damaged cannot be traced to
        their files: :attr:`RepairReport.lost_rows` counts them (add their folders again).
        """
        self.check_model(embedder.model_id)
        report = RepairReport()
        with self._locked():
            report.damaged = list(self.damaged)
            lost = {d.shard: d.why for d in self.damaged if d.shard is not None}
            drop_ann = any(d.shard is None for d in self.damaged)
            committed = set(self.manifest["removed"])
            starts = np.cumsum([0] + [int(sh["rows"]) for sh in self.manifest["shards"]])
            rows = [r for number in lost for r in range(starts[number], starts[number + 1]) if r not in committed]
            report.lost_rows = sum(d.rows for d in self.damaged if d.shard is not None and not d.paths)
            report.upgraded = self.manifest["version"] < VERSION
            paths = sorted({p for d in self.damaged for p in d.paths})
            if lost or drop_ann or report.upgraded:
                self._commit(removed=rows, lost=lost, drop_ann=drop_ann)
            self.damaged = []
            report.gone = [p for p in paths if not Path(p).is_file()]
            if not paths or len(report.gone) == len(paths):
                self._maybe_retrain()
        todo = [p for p in paths if p not in report.gone]
        if todo:
            done = self.add(todo, embedder, fps=fps, progress=progress)
            report.reembedded = sorted(done.added + done.copied + done.replaced)
        return report

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """The folder's writer lock; the manifest is re-read under it so two writers never lose each other's rows."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / LOCK, "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RuntimeError(f"another process is writing to the index {self.root}; wait for it to finish") from None
            try:
                current = self.root / MANIFEST
                if current.is_file():
                    on_disk = json.loads(current.read_text())
                    if on_disk.get("generation") != self.manifest.get("generation"):
                        self.manifest = on_disk
                        self._load()
                self._collect_garbage()
                self._check_folder()
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _name(self, prefix: str, ext: str) -> str:
        return f"{prefix}-{self.manifest['generation'] + 1:06d}{ext}"

    def _commit(self, vectors: np.ndarray | None = None, meta: Sequence[dict[str, Any]] = (),
                removed: Iterable[int] = (), ann: Any = None, drop_ann: bool = False,
                trained_on: int | None = None, lost: dict[int, str] | None = None,
                choice: dict[str, Any] | None = None) -> None:
        """Write a new shard and/or removals and/or a new IVF file, then the manifest (atomically, last)."""
        import faiss

        m = dict(self.manifest)
        m["shards"] = list(m["shards"])
        for number, why in (lost or {}).items():
            m["shards"][number] = {"vectors": None, "meta": None, "rows": m["shards"][number]["rows"], "lost": why}
        m["shards"] = [self._with_checksums(s) for s in m["shards"]]  # an index of version 1 is upgraded
        if vectors is not None and len(vectors):
            vec_name, meta_name = self._name("shard", ".npy"), self._name("shard", ".jsonl")
            buf = io.BytesIO()
            np.save(buf, np.ascontiguousarray(vectors, np.float32))
            vec_sha = _write_durable(self.root / vec_name, buf.getvalue())
            text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in meta)
            meta_sha = _write_durable(self.root / meta_name, text.encode())
            m["shards"].append({"vectors": vec_name, "meta": meta_name, "rows": int(len(vectors)),
                                "vectors_sha256": vec_sha, "meta_sha256": meta_sha})
        m["removed"] = sorted(set(m["removed"]).union(int(r) for r in removed))
        if choice is not None:
            m["ann_choice"] = choice
        if ann is not None:
            kind = ann_kind(ann)
            ann_name = self._name(kind, ".faiss")
            data = faiss.serialize_index(ann).tobytes()
            if choice is not None:  # the setting the choice measured (nprobe or ef_search)
                setting = {k: v for k, v in choice["chosen"].items() if k != "kind"}
            else:  # the same structure saved again with the rows added since
                setting = {k: v for k, v in (self.manifest["ann"] or {}).items() if k in ("nprobe", "ef_search")}
            if kind == "ivf":
                setting["nlist"] = int(faiss.extract_index_ivf(ann).nlist)
            else:
                graph = faiss.downcast_index(ann.index)
                setting.update(m=int(graph.hnsw.nb_neighbors(1)), ef_construction=int(graph.hnsw.efConstruction))
            m["ann"] = {"file": ann_name, "kind": kind, **setting, "rows": sum(s["rows"] for s in m["shards"]),
                        "removed": len(m["removed"]), "trained_on": int(trained_on or ann.ntotal),
                        "sha256": _write_durable(self.root / ann_name, data)}
        elif drop_ann:
            m["ann"] = None
        elif m.get("ann") and not m["ann"].get("sha256"):
            m["ann"] = {**m["ann"], "sha256": file_sha256(self.root / m["ann"]["file"])}
        m["version"] = VERSION
        m["generation"] = self.manifest["generation"] + 1
        m["updated"] = time.time()
        # files the previous manifest named and this one does not (a replaced IVF file): deleted once this
        # commit is in, and named here so that a writer killed before deleting them leaves no orphan
        m["obsolete"] = sorted(_named(self.manifest) - _named(m))
        _write_durable(self.root / MANIFEST, (json.dumps(m, indent=1) + "\n").encode())
        _fsync_dir(self.root)
        self.manifest = m
        self._collect_garbage()
        self._apply(vectors, meta, m["removed"])
        if ann is not None or drop_ann:
            self._ann = ann
            self._flat_ids, self._exclude = None, None

    def _with_checksums(self, shard: dict[str, Any]) -> dict[str, Any]:
        """A shard entry with the SHA-256 of its files (computed now for a shard of version 1, read and checked
        when the index was opened)."""
        if shard.get("lost") or (shard.get("vectors_sha256") and shard.get("meta_sha256")):
            return shard
        return {**shard, "vectors_sha256": file_sha256(self.root / shard["vectors"]),
                "meta_sha256": file_sha256(self.root / shard["meta"])}

    def _apply(self, vectors: np.ndarray | None, meta: Sequence[dict[str, Any]], removed: list[int]) -> None:
        """Bring the in-memory state up to a commit without reading the shards back."""
        start = len(self.meta)
        if vectors is not None and len(vectors):
            self.vectors = np.concatenate([self.vectors, np.asarray(vectors, np.float32)])
            self.meta.extend(dict(r) for r in meta)
        gone = set(removed) - self.removed
        self.removed = set(removed)
        for r in gone:
            row = self.meta[r]
            for table, key in ((self._by_path, row["path"]), (self._by_hash, row["hash"])):
                table[key].remove(r)
                if not table[key]:
                    del table[key]
        for i in range(start, len(self.meta)):
            self._by_path.setdefault(self.meta[i]["path"], []).append(i)
            self._by_hash.setdefault(self.meta[i]["hash"], []).append(i)
        if len(self.meta) > start or gone:
            self._ann, self._flat_ids = None, None  # rebuilt (or brought up to date) on the next search
            self._counts, self._by_modality = None, {}

    def _disposable(self) -> set[str]:
        """Names the index may delete: files its manifest lists as obsolete, and the files the next commit
        writes (what a writer killed before its commit left), with the temporaries of both. Nothing else."""
        g = self.manifest["generation"] + 1
        return set(self.manifest.get("obsolete", [])) | {f"shard-{g:06d}.npy", f"shard-{g:06d}.jsonl", f"ivf-{g:06d}.faiss",
                                                          f"hnsw-{g:06d}.faiss"}

    def _collect_garbage(self) -> None:
        """Delete the leftovers of a killed writer and replaced files, all of them names the manifest implies
        (:meth:`_disposable`); a file the index did not write is never deleted, whatever its name."""
        named = _named(self.manifest)
        gone = self._disposable() - named
        for p in self.root.iterdir():
            base = _TMP.sub("", p.name)
            leftover = p.name in gone or (base != p.name and (base in gone or base in named or base == MANIFEST))
            if leftover and p.is_file() and not p.is_symlink():
                with contextlib.suppress(OSError):
                    p.unlink()

    def _check_folder(self) -> None:
        """Refuse to write to a folder holding anything the index did not write (see docs/search.md)."""
        ours = _named(self.manifest) | self._disposable() | {MANIFEST, LOCK}
        foreign = sorted(p.name for p in self.root.iterdir() if _TMP.sub("", p.name) not in ours)
        if foreign:
            raise IndexFolderError(
                f"the index folder {self.root} holds files the index did not write ({_listing(foreign)}); an index "
                "writes and deletes files in its folder, so it needs one of its own: move these files out, or build "
                "the index in another folder (--index). Nothing was changed."
            )

    def add(
        self, paths: Iterable[str | os.PathLike], embedder: Any, *, fps: float = 1.0, commit_every: int = 64,
        progress: Callable[[int, int, str], None] | None = None, on_error: str = "skip",
    ) -> AddReport:
        """Embed and add media files and folders; commit every ``commit_every`` files.

        A file already indexed with the same content is left alone; one whose content changed replaces
        its old rows; content already indexed under another path is copied without embedding again.
        Indexed files under a given folder that no longer exist are removed (``pruned``).
        Files whose modality the embedder does not cover, and (``on_error="skip"``) unreadable files,
        are skipped and reported. ``progress(done, total, path)`` is called after each file.
        """
        from polymodal.coordinated.embedders import check_embeddings
        from polymodal.coordinated.media import collect_media, content_hash, embed_modality, read_items
        from polymodal.data.io import MediaError

        if on_error not in ("skip", "raise"):
            raise ValueError(f"on_error={on_error!r}; expected 'skip' or 'raise'")
        if commit_every < 1:
            raise ValueError(f"commit_every={commit_every}; expected at least 1 file per commit")
        if not fps > 0:
            raise ValueError(f"--fps {fps}: the video frame sampling rate must be a positive number of frames per second")
        self.check_model(embedder.model_id)
        self._refuse_if_damaged()
        if int(embedder.dim) != self.dim:
            raise ModelMismatchError(f"embedder {embedder.model_id!r} gives {embedder.dim}-d vectors; the index holds {self.dim}-d")
        given = [Path(p).expanduser() for p in paths]
        files, others = collect_media(given)
        files = [f for f in files if not _inside(f.path, self.root)]  # the index's own files are never media
        report = AddReport(skipped=[(str(q), why) for q, why in others if not _inside(q, self.root)])
        roots = {str(_root_of(p)) for p in given}
        with self._locked():
            new_roots = sorted(set(self.manifest["roots"]) | roots)
            self.manifest = {**self.manifest, "roots": new_roots}  # written with the first commit
            pending_v: list[np.ndarray] = []
            pending_m: list[dict[str, Any]] = []
            pending_removed: list[int] = []
            pending_files = 0
            seen_hash: dict[str, tuple[np.ndarray, list[dict[str, Any]]]] = {}
            for path in self._gone_under([p for p in given if p.is_dir()]):
                pending_removed.extend(self._by_path[path])
                report.pruned.append(path)
            for done, media in enumerate(files, 1):
                path = str(media.path)
                try:
                    digest = content_hash(media.path)
                    old = self._by_path.get(path, [])
                    if old and self.meta[old[0]]["hash"] == digest:
                        extra = sorted(set(old) - set(self._distinct_rows(old)))
                        if extra:  # rows multiplied by an older polymodal's copies: keep one per frame
                            pending_removed.extend(extra)
                            pending_files += 1
                            report.repaired.append(path)
                        else:
                            report.unchanged.append(path)
                        continue
                    if embed_modality(media.modality) not in embedder.modalities:
                        report.skipped.append((path, f"{media.modality} files: model {self.model_id} does not embed them"))
                        continue
                    if digest in self._by_hash:  # the rows of one path holding this content, not of every copy
                        rows = self._distinct_rows(self._by_path[self.meta[self._by_hash[digest][0]]["path"]])
                        vecs, metas = self.vectors[rows], [dict(self.meta[r], path=path) for r in rows]
                        report.copied.append(path)
                    elif digest in seen_hash:
                        vecs, metas = seen_hash[digest][0], [dict(r, path=path) for r in seen_hash[digest][1]]
                        report.copied.append(path)
                    else:
                        items = read_items(media, fps)
                        vecs = check_embeddings(
                            embedder.embed(embed_modality(media.modality), [it.payload for it in items]),
                            len(items), self.dim, embedder.model_id,
                        )
                        metas = [{"path": path, "hash": digest, "modality": media.modality, "timestamp": it.timestamp}
                                 for it in items]
                        report.added.append(path)
                    seen_hash[digest] = (vecs, metas)
                    if old:
                        pending_removed.extend(old)
                        report.replaced.append(path)
                    pending_v.append(vecs)
                    pending_m.extend(metas)
                    pending_files += 1
                except (MediaError, OSError, ValueError) as exc:
                    if on_error == "raise":
                        raise
                    report.skipped.append((path, str(exc)))
                finally:
                    if progress is not None:
                        progress(done, len(files), path)
                if pending_files >= commit_every:
                    report.rows += sum(len(v) for v in pending_v)
                    self._commit(np.concatenate(pending_v) if pending_v else None, pending_m, pending_removed)
                    pending_v, pending_m, pending_removed, pending_files = [], [], [], 0
            if pending_v or pending_removed or self._committed_roots() != new_roots:
                report.rows += sum(len(v) for v in pending_v)
                self._commit(np.concatenate(pending_v) if pending_v else None, pending_m, pending_removed)
            self._maybe_retrain()
        return report

    def _gone_under(self, folders: list[Path]) -> list[str]:
        """Indexed files under ``folders`` that no longer exist on disk."""
        prefixes = tuple(str(f.resolve()).rstrip(os.sep) + os.sep for f in folders)
        return [p for p in sorted(self._by_path) if prefixes and p.startswith(prefixes) and not os.path.lexists(p)]

    def _distinct_rows(self, rows: list[int]) -> list[int]:
        """The first row of each time stamp among one path's rows (one per image / audio / text file, one per frame)."""
        seen: set[Any] = set()
        out = []
        for r in rows:
            t = self.meta[r].get("timestamp")
            if t not in seen:
                seen.add(t)
                out.append(r)
        return out

    def remove(self, paths: Iterable[str | os.PathLike]) -> list[str]:
        """Remove indexed files: each path is a file or a folder (every indexed file under it). Returns the removed paths.

        A path that matches nothing indexed is an error naming it (nothing is removed then).
        """
        targets = [Path(p).expanduser().resolve() for p in paths]
        self._refuse_if_damaged()
        with self._locked():
            hit: dict[str, list[int]] = {}
            for t in targets:
                prefix = str(t) + os.sep
                matched = {p: r for p, r in self._by_path.items() if p == str(t) or p.startswith(prefix)}
                if not matched:
                    raise FileNotFoundError(f"{t} is not in the index {self.root} (no indexed file is it or lies under it)")
                hit.update(matched)
            self._commit(removed=[r for rows in hit.values() for r in rows])
            self._maybe_retrain()
        return sorted(hit)

    def _committed_roots(self) -> list[str]:
        """The folders the manifest on disk lists (the in-memory manifest may hold new ones not yet committed)."""
        try:
            return list(json.loads((self.root / MANIFEST).read_text())["roots"])
        except (OSError, ValueError, KeyError):
            return []

    def _maybe_retrain(self) -> None:
        """Choose an approximate index past ``ivf_threshold`` live rows (again after four-fold growth, or for
        a graph once a quarter of its rows were removed); drop it below the threshold."""
        live = len(self)
        ann, choice = self.manifest["ann"], self.manifest.get("ann_choice")
        wanted = self.manifest.get("ann_kind", "auto")
        if live < self.manifest["ivf_threshold"] or wanted == "exact":
            if ann:
                self._commit(drop_ann=True)
            return
        chose_exact = not ann and choice is not None and choice["chosen"]["kind"] == "flat"
        basis = ann["trained_on"] if ann else choice["decided_at"] if chose_exact else None
        if basis and live <= 4 * basis:
            if not ann:
                return  # exact search was chosen for these vectors: decided again after four-fold growth
            if ann.get("kind") == "hnsw" and len(self.removed) - ann["removed"] > 0.25 * live:
                pass  # a graph cannot drop removed rows: built again
            elif self._ann_lag() > 0.1 * live:  # save the rows added since, so that loading stays fast
                self._commit(ann=self._search_structure(), trained_on=ann["trained_on"])
                return
            else:
                return
        ids = self._live_ids()
        index, info = choose_ann(self.vectors[ids], ids, kind="auto" if wanted == "auto" else wanted,
                                 nprobe=self.manifest.get("nprobe"))
        info["decided_at"] = live
        if index is None:
            self._commit(drop_ann=bool(ann), choice=info)
        else:
            self._commit(ann=index, trained_on=live, choice=info)

    def _ann_lag(self) -> int:
        ann = self.manifest["ann"]
        return len(self.meta) - ann["rows"] + len(self.removed) - ann["removed"] if ann else 0

    # ------------------------------------------------------------------ searching

    def _live_ids(self) -> np.ndarray:
        ids = np.arange(len(self.meta), dtype=np.int64)
        return ids if not self.removed else np.setdiff1d(ids, np.fromiter(self.removed, np.int64))

    def _search_structure(self) -> Any:
        """The FAISS index searches run on, built (or read and brought up to date) on first use."""
        import faiss

        if self._ann is not None:
            return self._ann
        ann = self.manifest["ann"]
        if ann is None:
            ids = self._live_ids()
            flat = faiss.IndexFlatIP(self.dim)
            flat.add(np.ascontiguousarray(self.vectors[ids]))
            self._ann, self._flat_ids = flat, ids
            return flat
        index = self._read_ann(ann)
        if ann["rows"] < len(self.meta):  # rows committed after the IVF file was saved
            new = np.arange(ann["rows"], len(self.meta), dtype=np.int64)
            new = new[~np.isin(new, np.fromiter(self.removed, np.int64, len(self.removed)))]
            index.add_with_ids(np.ascontiguousarray(self.vectors[new]), new)
        self._exclude = None
        if ann_kind(index) == "hnsw":  # a graph keeps removed rows: searches leave them out
            if self.removed:
                batch = faiss.IDSelectorBatch(np.asarray(sorted(self.removed), dtype=np.int64))
                self._exclude = (faiss.IDSelectorNot(batch), batch)  # the batch must outlive the selector
        elif len(self.removed) > ann["removed"]:  # rows removed since: removing an absent id is a no-op
            index.remove_ids(np.asarray(sorted(self.removed), dtype=np.int64))
        self._ann, self._flat_ids = index, None
        return index

    def _read_ann(self, ann: dict[str, Any]) -> Any:
        """The saved FAISS index, checked against its recorded SHA-256."""
        import faiss

        try:
            data = (self.root / ann["file"]).read_bytes()
        except OSError as e:
            raise DamagedFileError(self.root, ann["file"], f"cannot read it: {e.strerror or e}") from None
        if ann.get("sha256") and hashlib.sha256(data).hexdigest() != ann["sha256"]:
            raise DamagedFileError(self.root, ann["file"], "its SHA-256 differs from the one recorded when it was written")
        try:
            return faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        except RuntimeError as e:
            raise DamagedFileError(self.root, ann["file"], f"FAISS cannot read it: {str(e).splitlines()[0]}") from None

    def modality_counts(self) -> dict[str, int]:
        """Live rows per modality (``image``, ``audio``, ``video``, ``text``)."""
        if self._counts is None:
            counts: dict[str, int] = {}
            for _, m in self.live_rows():
                counts[m["modality"]] = counts.get(m["modality"], 0) + 1
            self._counts = counts
        return dict(self._counts)

    def _rows_of(self, modalities: tuple[str, ...]) -> np.ndarray:
        """Live row ids of the given modalities (cached until the next commit)."""
        key = tuple(sorted(modalities))
        if key not in self._by_modality:
            self._by_modality[key] = np.asarray(
                [i for i, m in self.live_rows() if m["modality"] in key], dtype=np.int64)
        return self._by_modality[key]

    def _search_among(self, q: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top ``k`` of each query among ``rows`` (in blocks, so that no copy of every vector is made)."""
        k = min(k, len(rows))
        best_s = np.full((len(q), 0), -np.inf, np.float32)
        best_i = np.zeros((len(q), 0), np.int64)
        for start in range(0, len(rows), 65_536):
            block = rows[start:start + 65_536]
            scores = q @ self.vectors[block].T
            s = np.concatenate([best_s, scores], axis=1)
            i = np.concatenate([best_i, np.broadcast_to(block, scores.shape)], axis=1)
            top = np.argpartition(-s, k - 1, axis=1)[:, :k] if s.shape[1] > k else np.argsort(-s, axis=1)
            best_s, best_i = np.take_along_axis(s, top, 1), np.take_along_axis(i, top, 1)
        order = np.argsort(-best_s, axis=1, kind="stable")
        return np.take_along_axis(best_s, order, 1), np.take_along_axis(best_i, order, 1)

    def search(self, queries: np.ndarray, k: int = 10, *, model_id: str, nprobe: int | None = None,
               ef_search: int | None = None, modalities: Sequence[str] | None = None) -> list[list[Hit]]:
        """The ``k`` best hits of each query row (``(Q, dim)`` unit vectors of the model ``model_id``).

        ``nprobe`` (IVF) or ``ef_search`` (HNSW) overrides the setting the index chose for this call.
        ``modalities`` keeps only hits of those modalities (``image``, ``audio``, ``video``, ``text``):
        such a search is exact among their rows, whatever the index's approximate structure.
        """

        self.check_model(model_id)
        q = np.asarray(queries, dtype=np.float32)
        if q.ndim == 1:
            q = q[None]
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ValueError(f"queries have shape {tuple(np.shape(queries))}; expected (Q, {self.dim})")
        if k < 1:
            raise ValueError(f"k={k}; expected at least 1 result")
        if len(self) == 0:
            return [[] for _ in range(len(q))]
        if modalities is not None:
            rows = self._rows_of(tuple(modalities))
            if not len(rows):
                return [[] for _ in range(len(q))]
            scores, found = self._search_among(q, rows, k)
            return [[self._hit(int(i), float(s)) for s, i in zip(srow, irow, strict=True)]
                    for srow, irow in zip(scores, found, strict=True)]
        index = self._search_structure()
        ann = self.manifest["ann"]
        if ann:
            params = search_params(
                index, nprobe=nprobe or ann.get("nprobe") or self.manifest.get("nprobe") or ivf_params(len(self))[1],
                ef_search=ef_search or ann.get("ef_search") or EF_SEARCH_STEPS[2],
                exclude=self._exclude[0] if self._exclude else None)
            scores, idx = index.search(np.ascontiguousarray(q), min(k, len(self)), params=params)
        else:
            scores, idx = index.search(np.ascontiguousarray(q), min(k, len(self)))
        out = []
        for srow, irow in zip(scores, idx, strict=True):
            hits = []
            for s, i in zip(srow, irow, strict=True):
                if i < 0:
                    continue
                hits.append(self._hit(int(self._flat_ids[i]) if self._flat_ids is not None else int(i), float(s)))
            out.append(hits)
        return out

    def _hit(self, row: int, score: float) -> Hit:
        m = self.meta[row]
        return Hit(m["path"], score, m["modality"], m.get("timestamp"), m["hash"], row)

    def search_items(self, embedder: Any, modality: str, items: Sequence[Any], k: int = 10) -> list[list[Hit]]:
        """Embed query items with ``embedder`` (checked against the index's model) and search."""
        self.check_model(embedder.model_id)
        return self.search(embedder.embed(modality, list(items)), k, model_id=embedder.model_id)

    def live_rows(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """(row id, metadata) of every live row."""
        for i, m in enumerate(self.meta):
            if i not in self.removed:
                yield i, m
