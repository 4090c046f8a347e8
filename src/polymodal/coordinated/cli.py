"""``polymodal index / search / serve``: build a media index, query it, browse it (docs/search.md).

    polymodal index add PATHS... --index DIR --model RUN_OR_TOWER [--fps 1.0]
    polymodal index remove PATHS... --index DIR
    polymodal index info --index DIR
    polymodal index check --index DIR [--repair]
    polymodal search --index DIR "query text" | --image q.jpg | --audio q.wav [-k 10]
    polymodal serve --index DIR [--port 0]

Registered on the main parser by ``polymodal.cli``; nothing heavy is imported until a command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

COMMANDS = ("index", "search", "serve")


def add_parsers(sub: Any) -> None:
    """Add the ``index``, ``search`` and ``serve`` sub-commands to the main parser's sub-parsers."""
    ix = sub.add_parser("index", help="build or change a searchable index of media files (docs/search.md)")
    ixs = ix.add_subparsers(dest="index_command", required=True, metavar="ACTION")
    add = ixs.add_parser("add", help="embed media files and folders and add them to an index (created if absent)")
    add.add_argument("paths", nargs="+", type=Path, help="image, audio, video or text files, or folders holding them")
    add.add_argument("--index", required=True, type=Path, help="index folder")
    add.add_argument("--model", default=None,
                     help="a trained coordinated run folder or a tower: efficientnet-lite0, minilm, label-bridge, "
                          "audio-logmel (required for a new index; an existing index keeps its own)")
    add.add_argument("--fps", type=float, default=1.0, help="video frames embedded per second (default 1.0)")
    add.add_argument("--commit-every", type=int, default=64, help="files per commit (default 64)")
    add.add_argument("--ivf-threshold", type=int, default=None,
                     help="live vectors past which search may become approximate; new index only (default 50000)")
    add.add_argument("--ann", choices=("auto", "ivf", "hnsw", "exact"), default=None,
                     help="approximate search past the threshold: auto (default) measures IVF and HNSW on the index's "
                          "own vectors and keeps exact search unless one reaches recall@10 0.9 at 2x its speed; "
                          "new index only")
    add.add_argument("--strict", action="store_true", help="stop at the first unreadable file instead of skipping it")
    rm = ixs.add_parser("remove", help="remove files (or every file under folders) from an index")
    rm.add_argument("paths", nargs="+", type=Path)
    rm.add_argument("--index", required=True, type=Path)
    info = ixs.add_parser("info", help="what an index holds")
    info.add_argument("--index", required=True, type=Path)
    ck = ixs.add_parser("check", help="verify every file of an index against its checksums; --repair re-embeds damaged parts")
    ck.add_argument("--index", required=True, type=Path)
    ck.add_argument("--repair", action="store_true",
                    help="give up damaged files and embed the media files they held again (with the index's model)")
    ck.add_argument("--model", default=None, help="embedding model for --repair (default: the one the index was built with)")
    ck.add_argument("--fps", type=float, default=1.0, help="video frames embedded per second by --repair (default 1.0)")

    se = sub.add_parser("search", help="search an index with text, an image or an audio clip")
    se.add_argument("query", nargs="?", default=None, help="query text")
    se.add_argument("--index", required=True, type=Path)
    se.add_argument("--image", type=Path, default=None, help="query by an image file")
    se.add_argument("--audio", type=Path, default=None, help="query by an audio file")
    se.add_argument("-k", type=int, default=10, help="results to print (default 10)")
    se.add_argument("--model", default=None, help="embedding model (default: the one the index was built with)")

    sv = sub.add_parser("serve", help="a search page for an index on 127.0.0.1")
    sv.add_argument("--index", required=True, type=Path)
    sv.add_argument("--port", type=int, default=8765, help="TCP port on 127.0.0.1 (0: any free port; default 8765)")
    sv.add_argument("--model", default=None, help="embedding model (default: the one the index was built with)")
    sv.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                    help="answer requests whose Host header is NAME too (default: only 127.0.0.1 and localhost, so "
                         "that other sites cannot read the page through DNS rebinding); repeatable")


def run(ns: argparse.Namespace) -> int:
    """Run a parsed ``index`` / ``search`` / ``serve`` command; returns the exit code."""
    if ns.command == "index":
        return {"add": _cmd_add, "remove": _cmd_remove, "info": _cmd_info, "check": _cmd_check}[ns.index_command](ns)
    if ns.command == "search":
        return _cmd_search(ns)
    if ns.command == "serve":
        return _cmd_serve(ns)
    raise ValueError(f"unknown command {ns.command!r}")


def index_embedder(index: Any, model: str | None) -> Any:
    """The embedder of an index: ``model`` if given, else the spec it was built with; checked against its model id."""
    from polymodal.coordinated.embedders import load_embedder

    spec = model or index.manifest.get("model_spec")
    if not spec:
        raise ValueError(f"index {index.root} does not record the model it was built with; pass --model")
    embedder = load_embedder(spec)
    index.check_model(embedder.model_id)
    return embedder


def _progress() -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("embedding"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    TextColumn("{task.description}"), console=Console(stderr=True), transient=False)


def _cmd_add(ns: argparse.Namespace) -> int:
    from polymodal.coordinated.embedders import load_embedder
    from polymodal.coordinated.index import DEFAULT_IVF_THRESHOLD, MANIFEST, Index

    if not ns.fps > 0:  # before an index is created
        raise ValueError(f"--fps {ns.fps}: the video frame sampling rate must be a positive number of frames per second")
    if (ns.index / MANIFEST).is_file():
        index = Index.open(ns.index)
        for flag, value in (("--ivf-threshold", ns.ivf_threshold), ("--ann", ns.ann)):
            if value is not None:
                raise ValueError(f"{flag} applies to a new index; {ns.index} exists already")
        embedder = index_embedder(index, ns.model)
    else:
        if ns.model is None:
            raise ValueError(f"{ns.index} holds no index yet: pass --model (a run folder or a tower name) to create it")
        embedder = load_embedder(ns.model)
        spec = str(Path(ns.model).resolve()) if Path(ns.model).is_dir() else ns.model
        index = Index.create(ns.index, embedder.model_id, embedder.dim, model_spec=spec,
                             ivf_threshold=ns.ivf_threshold or DEFAULT_IVF_THRESHOLD, ann=ns.ann or "auto")
    with _progress() as bar:
        task = bar.add_task("", total=None)

        def tick(done: int, total: int, path: str) -> None:
            bar.update(task, completed=done, total=total, description=Path(path).name)

        report = index.add(ns.paths, embedder, fps=ns.fps, commit_every=ns.commit_every, progress=tick,
                           on_error="raise" if ns.strict else "skip")
    for path, why in report.skipped:
        print(f"skipped {path}: {why}", file=sys.stderr)
    print(f"{len(report.added)} added, {len(report.copied)} copied (same content), {len(report.replaced)} replaced, "
          f"{len(report.unchanged)} unchanged, {len(report.skipped)} skipped, {len(report.pruned)} pruned (gone from disk)"
          f"{f', {len(report.repaired)} repaired (duplicate rows removed)' if report.repaired else ''}; "
          f"{report.rows} vectors written; "
          f"index {index.root}: {len(index.paths)} files, {len(index)} vectors ({index.kind})")
    return 0


def _cmd_remove(ns: argparse.Namespace) -> int:
    from polymodal.coordinated.index import Index

    index = Index.open(ns.index)
    removed = index.remove(ns.paths)
    print(f"{len(removed)} file(s) removed; index {index.root}: {len(index.paths)} files, {len(index)} vectors")
    return 0


def _cmd_info(ns: argparse.Namespace) -> int:
    from collections import Counter

    from polymodal.coordinated.index import Index

    index = Index.open(ns.index)
    kinds = Counter(m["modality"] for _, m in index.live_rows())
    print(f"index {index.root}\n  model   {index.model_id} (--model {index.manifest.get('model_spec')})\n"
          f"  files   {len(index.paths)}\n  vectors {len(index)} ({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))})\n"
          f"  search  {describe_search(index)}\n  roots   {', '.join(index.roots)}")
    return 0


def _cmd_check(ns: argparse.Namespace) -> int:
    from polymodal.coordinated.index import VERSION, Index

    index = Index.open(ns.index, damaged="keep")
    m = index.manifest
    how = ("SHA-256 of every file, shapes, finite unit vectors" if m["version"] >= VERSION else
           "shapes and finite unit vectors only: this index was written before checksums existed (format version "
           f"{m['version']}), so reordered rows cannot be detected; --repair or its next add records them")
    print(f"index {index.root}: {len(m['shards'])} shard(s), {len(index.meta)} rows, "
          f"{'an ANN file, ' if m.get('ann') else ''}checked ({how})")
    for d in index.damaged:
        held = (f"{len(d.paths)} file(s)" if d.paths else f"{d.rows} vector(s) of unknown files") if d.shard is not None else "the ANN index"
        print(f"  damaged {d.file}: {d.why}; it held {held}")
    missing = [p for p in index.paths if not Path(p).exists()]
    if missing:
        print(f"  {len(missing)} indexed file(s) no longer exist ({missing[0]} first): adding their folders again "
              "prunes them, `polymodal index remove` removes them")
    if not ns.repair:
        if index.damaged:
            print(f"{len(index.damaged)} damaged file(s): `polymodal index check --index {ns.index} --repair` gives "
                  "them up and embeds the files they held again", file=sys.stderr)
            return 1
        print("ok: no damaged file")
        return 0
    if not ns.fps > 0:
        raise ValueError(f"--fps {ns.fps}: the video frame sampling rate must be a positive number of frames per second")
    embedder = index_embedder(index, ns.model)
    report = index.repair(embedder, fps=ns.fps)
    print(f"repaired: {len(report.damaged)} damaged file(s) given up, {len(report.reembedded)} file(s) embedded again, "
          f"{len(report.gone)} no longer on disk, {report.lost_rows} vector(s) of unknown files lost"
          f"{', checksums recorded' if report.upgraded else ''}; index {index.root}: {len(index.paths)} files, "
          f"{len(index)} vectors ({index.kind})")
    if report.lost_rows:
        print(f"{report.lost_rows} vector(s) came from files whose metadata was damaged: add their folders again",
              file=sys.stderr)
    return 0


def describe_search(index: Any) -> str:
    """How the index searches, and why (what the choice of index kind measured), in words."""
    m = index.manifest
    ann, choice = m["ann"], m.get("ann_choice")
    tried = (choice or {}).get("tried", [])
    if ann:
        how = (f"IVF ({ann.get('nlist')} cells, {ann.get('nprobe') or m.get('nprobe') or 'default'} probed)"
               if ann.get("kind", "ivf") == "ivf" else f"HNSW graph (M {ann.get('m')}, efSearch {ann.get('ef_search')})")
        if tried:
            t = tried[-1]
            how += (f"; chosen at {choice['decided_at']:,} vectors, where it found {100 * t['recall_at_10']:.1f} % of "
                    f"the 10 nearest neighbours of {choice['probe_queries']} of them at {t['speedup']:.1f}x exact speed")
        return how
    if m.get("ann_kind") == "exact":
        return "exact (always: --ann exact)"
    if choice and choice["chosen"]["kind"] == "flat":
        best = {}
        for t in tried:
            if t["kind"] not in best or t["recall_at_10"] > best[t["kind"]]["recall_at_10"]:
                best[t["kind"]] = t
        found = ", ".join(f"{k} {t['recall_at_10']:.2f} at {t['speedup']:.1f}x" for k, t in best.items())
        return (f"exact: at {choice['decided_at']:,} vectors no approximate index reached recall@10 "
                f"{choice['min_recall']} at {choice['min_speedup']:g}x exact speed (best: {found})")
    return f"exact (until {m['ivf_threshold']:,} vectors)"


def format_hit(hit: Any) -> str:
    """``score  path  [t=SECONDS]`` for one hit."""
    at = f"  t={hit.timestamp:.2f}s" if hit.timestamp is not None else ""
    return f"{hit.score:8.4f}  {hit.path}{at}"


def _cmd_search(ns: argparse.Namespace) -> int:
    from polymodal.coordinated.index import Index
    from polymodal.coordinated.media import load_audio, load_image

    given = [name for name, v in (("query text", ns.query), ("--image", ns.image), ("--audio", ns.audio)) if v is not None]
    if len(given) != 1:
        raise ValueError(f"give exactly one query: text, --image FILE or --audio FILE; got {given or 'none'}")
    if ns.k < 1:
        raise ValueError(f"-k {ns.k}: expected at least 1 result")
    index = Index.open(ns.index)
    embedder = index_embedder(index, ns.model)
    if ns.query is not None:
        modality, item = "text", ns.query
    elif ns.image is not None:
        modality, item = "image", load_image(ns.image)
    else:
        modality, item = "audio", load_audio(ns.audio)
    hits = index.search_items(embedder, modality, [item], k=ns.k)[0]
    if not hits:
        print(f"the index {index.root} is empty", file=sys.stderr)
    for hit in hits:
        print(format_hit(hit))
    return 0


def _cmd_serve(ns: argparse.Namespace) -> int:
    from polymodal.coordinated.index import Index
    from polymodal.coordinated.serve import serve

    if not 0 <= ns.port <= 65535:
        raise ValueError(f"--port {ns.port}: expected 0 (any free port) to 65535")
    index = Index.open(ns.index)
    serve(index, port=ns.port, model=ns.model, allowed_hosts=ns.allow_host)
    return 0
