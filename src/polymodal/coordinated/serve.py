"""``polymodal serve``: a small search page for an index, on 127.0.0.1 only (docs/search.md).

Pages (server-rendered HTML, no JavaScript):

- ``/?q=TEXT&k=24``  text search (for a model that embeds text), thumbnails of the hits;
- ``/?like=ROW``     hits nearest to an indexed row (works for every model: audio, images, video);
- ``&modality=M``    only hits of one modality (image, audio, video, text);
- ``/file/R/PATH``   an indexed file, ``R`` the number of the indexed folder, ``PATH`` relative to it;
- ``/thumb/R/PATH?t=SECONDS``  a JPEG thumbnail of an image, or of a video's frame at ``t``.

Only files that are in the index *and* lie inside one of its folders are ever served: a path segment
that is ``..``, ``.``, empty, or holds a slash, backslash or NUL, also after URL-decoding (``%2e%2e``,
double encoding), is refused with 403, and so is a path whose real location (symlinks resolved) is
outside the folder; anything else that is not an indexed file is 404. The query text is HTML-escaped.

A request whose ``Host`` header is not a name of the bound address (``127.0.0.1:PORT`` or
``localhost:PORT``, plus names given as ``allowed_hosts``) is refused with 403, so that a web page of
another site cannot read results through DNS rebinding. Parameters out of range (``like`` beyond the
rows, ``k`` outside 1..200, a negative ``t``, an unknown modality) are 400.

The server is a :class:`ThreadingHTTPServer` with a listen backlog of :data:`BACKLOG` connections
(the standard library's default of 5 dropped connections under load, which clients retry only after
1, 3, 7 seconds) and a socket timeout per connection (:data:`TIMEOUT`), so that a client that stops
sending cannot hold a thread forever. ``benchmarks/results/serve_load.md`` measures it.
"""

from __future__ import annotations

import html
import io
import math
import mimetypes
import os
import re
import sys
import threading
from collections.abc import Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from polymodal.coordinated.index import MANIFEST, Hit, Index

THUMB_SIZE = 256
MAX_K = 200
BACKLOG = 1024  # pending connections the kernel queues (capped by net.core.somaxconn)
TIMEOUT = 30.0  # seconds a connection may stay silent before the server closes it
MODALITY_NAMES = ("image", "audio", "video", "text")
_UNITS = {"image": ("image", "images"), "audio": ("audio file", "audio files"), "video": ("video frame", "video frames"),
          "text": ("text file", "text files")}  # what one indexed row of each modality is


class Refused(Exception):
    """A request for a file that must not be served: ``status`` is 403 (outside) or 404 (not indexed)."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


def _decoded(segment: str) -> str:
    """A URL path segment decoded until it no longer changes (so that %252e%252e is seen as ..)."""
    for _ in range(4):
        nxt = unquote(segment)
        if nxt == segment:
            return segment
        segment = nxt
    raise Refused(403, "path segment encoded too many times")


class SearchApp:
    """What the request handler calls: resolves files safely, runs searches, renders pages."""

    def __init__(self, index: Index, model: str | None = None) -> None:
        self.index = index
        self.model = model
        self._embedder: Any = None
        self._lock = threading.Lock()
        self._stamp = self._manifest_stamp()

    # ------------------------------------------------------------ index and model

    def _manifest_stamp(self) -> float:
        try:
            return (self.index.root / MANIFEST).stat().st_mtime
        except OSError:
            return 0.0

    def refresh(self) -> None:
        """Re-open the index when another process committed to it since."""
        stamp = self._manifest_stamp()
        if stamp != self._stamp:
            with self._lock:
                self.index, self._stamp = Index.open(self.index.root), stamp

    def embedder(self) -> Any:
        """The index's embedding model, loaded once (checked against the index's model id)."""
        from polymodal.coordinated.cli import index_embedder

        with self._lock:
            if self._embedder is None:
                self._embedder = index_embedder(self.index, self.model)
            return self._embedder

    def embeds_text(self) -> bool:
        spec = self.model or self.index.manifest.get("model_spec") or ""
        from polymodal.coordinated.embedders import TOWERS

        if spec in TOWERS:
            return "text" in TOWERS[spec].modalities
        return "text" in self.embedder().modalities

    # ------------------------------------------------------------ files

    def url_of(self, path: str, kind: str = "file") -> str | None:
        """``/file/R/rel`` (or ``/thumb/...``) of an indexed path; None when it lies in no indexed folder."""
        for i, root in enumerate(self.index.roots):
            prefix = root.rstrip(os.sep) + os.sep
            if path.startswith(prefix):
                rel = Path(path[len(prefix):]).as_posix()
                return f"/{kind}/{i}/" + "/".join(quote(part, safe="") for part in rel.split("/"))
        return None

    def resolve(self, raw_path: str) -> Path:
        """The indexed file a ``/file/R/...`` or ``/thumb/R/...`` request path names; :class:`Refused` otherwise."""
        parts = raw_path.split("/")[2:]  # drop "" and "file" / "thumb"
        if len(parts) < 2:
            raise Refused(404, "expected /file/<folder number>/<path inside it>")
        segments = [_decoded(p) for p in parts]
        for seg in segments:
            if seg in ("", ".", "..") or any(c in seg for c in ("/", "\\", "\x00")):
                raise Refused(403, f"path segment {seg!r} is not allowed")
        root_no, rel = segments[0], segments[1:]
        roots = self.index.roots
        if not root_no.isdigit() or int(root_no) >= len(roots):
            raise Refused(404, f"no indexed folder number {root_no!r}")
        root = Path(os.path.realpath(roots[int(root_no)]))
        real = Path(os.path.realpath(root.joinpath(*rel)))
        if real != root and root not in real.parents:
            raise Refused(403, "the path leads outside the indexed folder")
        if not self.index.contains(real) or not real.is_file():
            raise Refused(404, "not an indexed file")
        return real

    def thumbnail(self, path: Path, t: float | None) -> bytes:
        """JPEG bytes of an image, or of the video frame nearest after ``t`` seconds, at most 256 px a side."""
        from PIL import Image

        from polymodal.coordinated.media import file_modality, load_image, video_frame_at

        modality = file_modality(path)
        if modality == "image":
            img = load_image(path)
        elif modality == "video":
            img = video_frame_at(path, t or 0.0)
        else:
            raise Refused(404, f"no thumbnail for {modality} files")
        img.thumbnail((THUMB_SIZE, THUMB_SIZE), Image.Resampling.BILINEAR)
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=85)
        return buf.getvalue()

    # ------------------------------------------------------------ search and pages

    def check_like(self, like: int) -> None:
        """:class:`Refused` (400 out of range, 404 removed) unless ``like`` is a live row of the index."""
        rows = len(self.index.meta)
        if not 0 <= like < rows:
            raise Refused(400, f"like={like}: expected a row number from 0 to {rows - 1}")
        if like in self.index.removed:
            raise Refused(404, f"row {like} was removed from the index")

    def search(self, query: str | None, like: int | None, k: int,
               modality: str | None = None) -> tuple[list[Hit], str | None]:
        """Hits of a text query, or else of an indexed row's vector, of one ``modality`` when given;
        (hits, message shown instead when there are none)."""
        index = self.index
        only = (modality,) if modality else None
        if like is not None:
            self.check_like(like)
        if not query and like is not None:
            return index.search(index.vectors[like], k, model_id=index.model_id, modalities=only)[0], None
        if not query:
            return [], None
        if not self.embeds_text():
            return [], (f"this index's model ({index.model_id}) does not embed text; open a result's "
                        "\"similar\" link to search by example")
        embedder = self.embedder()
        with self._lock:
            vec = embedder.embed("text", [query])
        return index.search(vec, k, model_id=embedder.model_id, modalities=only)[0], None

    def describe_model(self) -> str:
        """The index's model in words: what it is and what it is good for."""
        from polymodal.coordinated.embedders import TOWERS

        spec = self.model or self.index.manifest.get("model_spec") or ""
        if spec in TOWERS:
            return f"{spec}: {TOWERS[spec].summary}"
        if spec and Path(spec).is_dir():
            return f"a coordinated (CLIP-style) model trained with polymodal, from the run folder {Path(spec).name}"
        return "the model the index was built with"

    def page(self, query: str, like: int | None, k: int, modality: str | None = None) -> str:
        hits, message = self.search(query, like, k, modality)
        esc = html.escape
        cards = [self._card(h, k, modality) for h in hits]
        index = self.index
        per_kind = index.modality_counts()
        kinds = sorted(per_kind, key=MODALITY_NAMES.index)
        only = f" ({esc(modality)} only)" if modality else ""
        if query:
            heading = f"Results for &ldquo;{esc(query)}&rdquo;{only}"
        elif like is not None:
            heading = f"Nearest to {esc(Path(index.meta[like]['path']).name)}{only}"
        else:
            heading = f"{len(index.paths)} files indexed"
        body = "".join(cards) if cards else f"<p class='msg'>{esc(message or 'no results')}</p>" if (query or like is not None) else ""
        options = "".join(f"<option value='{m}'{' selected' if m == modality else ''}>{m} only</option>" for m in kinds)
        counts = ", ".join(f"{per_kind[m]:,} {_UNITS[m][per_kind[m] != 1]}" for m in kinds) or "nothing yet"
        return _PAGE.format(
            query=esc(query, quote=True), k=k, heading=heading, body=body, model=esc(index.model_id),
            about=esc(self.describe_model()), count=len(index), counts=esc(counts), kind=esc(index.kind),
            options=options, like=f"<input type='hidden' name='like' value='{like}'>" if like is not None else "",
        )

    def _card(self, hit: Hit, k: int = 24, modality: str | None = None) -> str:
        esc = html.escape
        url = self.url_of(hit.path)
        name = esc(Path(hit.path).name)
        at = f" &middot; t = {hit.timestamp:.2f} s" if hit.timestamp is not None else ""
        if url is None:
            media = "<div class='none'>outside the indexed folders</div>"
        elif hit.modality in ("image", "video"):
            thumb = self.url_of(hit.path, "thumb") + (f"?t={hit.timestamp:g}" if hit.timestamp is not None else "")
            frag = f"#t={hit.timestamp:g}" if hit.timestamp is not None else ""
            media = f"<a href='{esc(url + frag)}'><img class='thumb' src='{esc(thumb)}' alt='{name}'></a>"
        elif hit.modality == "audio":
            media = f"<audio controls preload='none' src='{esc(url)}'></audio>"
        else:
            media = f"<a href='{esc(url)}'>{name}</a>"
        similar = f"/?like={hit.row}" + (f"&amp;k={k}" if k != 24 else "") + (f"&amp;modality={modality}" if modality else "")
        return (f"<figure class='hit {esc(hit.modality)}' data-path='{esc(hit.path)}'>{media}<figcaption>{name}{at}"
                f"<br><span class='score'>{hit.score:.3f}</span> &middot; <a href='{similar}'>similar</a>"
                "</figcaption></figure>")


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>polymodal search</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
h1 a {{ color: inherit; text-decoration: none; }}
form input[type=text] {{ width: 28em; font-size: 1.1em; padding: .3em; }}
.about {{ color: #555; margin: .4em 0 1em; }}
.grid {{ display: flex; flex-wrap: wrap; gap: 1em; }}
figure.hit {{ margin: 0; width: 260px; box-sizing: border-box; overflow: hidden; }}
img.thumb {{ max-width: 256px; max-height: 256px; border: 1px solid #ccc; }}
figure.hit audio {{ display: block; width: 100%; max-width: 100%; box-sizing: border-box; }}
figcaption {{ font-size: .85em; word-break: break-all; }}
.score {{ color: #666; }} .msg {{ color: #a33; }} footer {{ margin-top: 2em; color: #888; font-size: .8em; }}
</style></head>
<body><h1><a href="/">polymodal search</a></h1>
<p class="about">Searching {counts} with {about}.</p>
<form method="get" action="/"><input type="text" name="q" value="{query}" placeholder="describe what you look for" autofocus>
<select name="modality" aria-label="kind of file"><option value="">all kinds</option>{options}</select>{like}
<input type="hidden" name="k" value="{k}"> <input type="submit" value="Search"></form>
<h2>{heading}</h2>
<div class="grid">{body}</div>
<footer>model {model} &middot; {count} vectors &middot; {kind} search</footer>
</body></html>
"""


def _host_name(header: str) -> tuple[str, int | None] | None:
    """(name, port) of a ``Host`` header (``name``, ``name:port``, ``[v6]:port``); None when malformed."""
    m = re.fullmatch(r"(\[[0-9a-fA-F:.]+\]|[^:\[\]]+)(?::(\d{1,5}))?", header.strip())
    if not m:
        return None
    return m.group(1).lower().rstrip("."), int(m.group(2)) if m.group(2) else None


def _whole(params: dict[str, list[str]], name: str, default: int | None) -> int | None:
    value = params.get(name, [None])[0]
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise Refused(400, f"{name}={value!r}: expected a whole number") from None


def make_handler(app: SearchApp, allowed_hosts: frozenset[str] = frozenset(), timeout: float = TIMEOUT,
                 ) -> type[BaseHTTPRequestHandler]:
    """The request handler class bound to ``app``: ``Host`` must be one of the bound address's names (or
    ``allowed_hosts``), and a connection silent for ``timeout`` seconds is closed."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "polymodal-search"

        def setup(self) -> None:
            self.timeout = timeout  # the socket timeout of this connection (read by StreamRequestHandler)
            super().setup()

        def _host_allowed(self) -> str | None:
            """None when the Host header names this server, else why not."""
            header = self.headers.get("Host")
            if header is None:
                return "no Host header; send the Host this server was opened with"
            parsed = _host_name(header)
            bound = self.server.server_address[1]
            names = {"127.0.0.1", "localhost", *allowed_hosts}
            if parsed is None or parsed[0] not in names or parsed[1] not in (None, bound):
                return (f"Host {header!r} is not this server (127.0.0.1:{bound} or localhost:{bound}); a page of "
                        "another site cannot use it. Start it with --allow-host NAME to accept another name")
            return None

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            pass  # quiet: the terminal shows the URL, not every request

        def _send(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _error(self, status: int, why: str) -> None:
            text = f"<!doctype html><title>{status}</title><p>{status} {html.escape(HTTPStatus(status).phrase)}: {html.escape(why)}</p>"
            self._send(status, text.encode(), "text/html; charset=utf-8")

        def _send_file(self, path: Path) -> None:
            """Stream a file in chunks; one byte range (``Range: bytes=a-b``) gives 206, so that players can seek."""
            size = path.stat().st_size
            start, end, status = 0, size - 1, 200
            rng = re.fullmatch(r"bytes=(\d*)-(\d*)", (self.headers.get("Range") or "").strip())
            if rng and size and (rng.group(1) or rng.group(2)):
                if rng.group(1):
                    start = int(rng.group(1))
                    end = min(int(rng.group(2)), size - 1) if rng.group(2) else size - 1
                else:  # the last N bytes
                    start = max(0, size - int(rng.group(2)))
                if start > end or start >= size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
            self.send_response(status)
            self.send_header("Content-Type", mimetypes.guess_type(path.name)[0] or "application/octet-stream")
            self.send_header("Content-Length", str(end - start + 1 if size else 0))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("X-Content-Type-Options", "nosniff")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            if self.command == "HEAD" or not size:
                return
            with open(path, "rb") as f:
                f.seek(start)
                left = end - start + 1
                while left > 0:
                    chunk = f.read(min(left, 1 << 16))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    left -= len(chunk)

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            params = parse_qs(url.query)
            try:
                why = self._host_allowed()
                if why is not None:
                    raise Refused(403, why)
                app.refresh()
                if url.path in ("/", "/index.html"):
                    query = params.get("q", [""])[0].strip()
                    k = _whole(params, "k", 24)
                    if not 1 <= k <= MAX_K:
                        raise Refused(400, f"k={k}: expected 1 to {MAX_K} results")
                    like_row = _whole(params, "like", None)
                    modality = params.get("modality", [""])[0] or None
                    if modality is not None and modality not in MODALITY_NAMES:
                        raise Refused(400, f"modality={modality!r}: expected one of {', '.join(MODALITY_NAMES)}")
                    self._send(200, app.page(query, like_row, k, modality).encode(), "text/html; charset=utf-8")
                elif url.path.startswith("/file/"):
                    self._send_file(app.resolve(url.path))
                elif url.path.startswith("/thumb/"):
                    path = app.resolve(url.path)
                    t = params.get("t", [None])[0]
                    try:
                        seconds = float(t) if t is not None else None
                    except ValueError:
                        raise Refused(400, "t must be a number of seconds") from None
                    if seconds is not None and not (math.isfinite(seconds) and seconds >= 0):
                        raise Refused(400, f"t={t}: expected a time in seconds from 0")
                    self._send(200, app.thumbnail(path, seconds), "image/jpeg")
                elif url.path == "/favicon.ico":
                    self._send(204, b"", "image/x-icon")
                else:
                    raise Refused(404, "no such page")
            except Refused as r:
                self._error(r.status, str(r))
            except Exception as exc:  # a bad file must not take the server down
                self._error(500, f"{type(exc).__name__}: {exc}")

    return Handler


class SearchServer(ThreadingHTTPServer):
    """The standard library's threading server with a real listen backlog and daemon request threads."""

    request_queue_size = BACKLOG
    daemon_threads = True
    allow_reuse_address = True


def make_server(index: Index, port: int = 0, model: str | None = None, *, preload: bool = True,
                allowed_hosts: Iterable[str] = (), timeout: float = TIMEOUT) -> SearchServer:
    """An HTTP server on 127.0.0.1:``port`` (0 = any free port) for ``index``; the model is loaded first when
    ``preload``. ``allowed_hosts``: more ``Host`` names to answer (a name that resolves to this machine)."""
    import faiss

    faiss.omp_set_num_threads(1)  # concurrency comes from the request threads, not from one search's threads
    names = frozenset(h.strip().lower().rstrip(".") for h in allowed_hosts if h.strip())
    app = SearchApp(index, model)
    if preload and app.embeds_text():
        app.embedder()
    return SearchServer(("127.0.0.1", port), make_handler(app, names, timeout))


def serve(index: Index, port: int = 0, model: str | None = None, allowed_hosts: Iterable[str] = ()) -> None:
    """Serve ``index`` until interrupted; prints ``serving <url>`` once the page answers."""
    server = make_server(index, port, model, allowed_hosts=allowed_hosts)
    host, bound = server.server_address[:2]
    print(f"serving http://{host}:{bound}/ (index {index.root}; Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        server.server_close()
