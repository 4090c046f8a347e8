"""`polymodal serve`: the page escapes queries, audio hits play, only indexed files inside the indexed
folders are served (traversal, encoded traversal, absolute paths, symlinks out are refused); and, in
headless Chromium against a real `polymodal serve` process, a text query shows the expected thumbnails
(the screenshot in docs/search.md is taken here)."""

import http.client
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from polymodal.coordinated.bridge import LabelBridgeEmbedder, sample_photos
from polymodal.coordinated.embedders import load_embedder
from polymodal.coordinated.index import Index
from polymodal.coordinated.serve import make_server
from polymodal.encoders.pretrained import is_available
from polymodal.paths import default_data_root

from .test_media import write_clip

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)

# (request path, expected status): each must be refused
ATTACKS = [
    ("/file/0/../secret.wav", 403),
    ("/file/0/%2e%2e/secret.wav", 403),
    ("/file/0/%2E%2E/%2E%2E/etc/passwd", 403),
    ("/file/0/%252e%252e/secret.wav", 403),  # double encoding
    ("/file/0/..%2fsecret.wav", 403),
    ("/file/0/%2F" + "etc%2Fpasswd", 403),  # an absolute path smuggled in one segment
    ("/file/0//etc/passwd", 403),
    ("/thumb/0/..%5c..%5csecret.wav", 403),  # backslashes
    ("/file/0/link.wav", 403),  # a symlink inside the folder that leads out of it
    ("/file/0/notes.txt", 404),  # inside the folder but not indexed
    ("/file/7/a.wav", 404),
    ("/file/x/a.wav", 404),
    ("/etc/passwd", 404),
]


def request(base: str, path: str, headers: dict | None = None) -> tuple[int, bytes, str]:
    host, port = base.split("//")[1].rstrip("/").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("GET", path, headers=headers or {})  # sent as given: no normalisation of .. or %2e
        resp = conn.getresponse()
        return resp.status, resp.read(), resp.getheader("Content-Type") or ""
    finally:
        conn.close()


@pytest.fixture
def audio_server(tmp_path, raw_data):
    media = tmp_path / "media"
    media.mkdir()
    for name in ("a.wav", "b.wav", "c.wav"):
        shutil.copy(raw_data / "fsdd" / "recordings" / {"a.wav": "1_theo_1.wav", "b.wav": "1_theo_2.wav",
                                                        "c.wav": "6_lucas_0.wav"}[name], media / name)
    shutil.copy(raw_data / "fsdd" / "recordings" / "9_george_9.wav", tmp_path / "secret.wav")
    os.symlink(tmp_path / "secret.wav", media / "link.wav")
    (media / "notes.txt").write_text("not indexed by an audio model")
    model = load_embedder("audio-logmel")
    index = Index.create(tmp_path / "ix", model.model_id, model.dim, model_spec="audio-logmel")
    index.add([media], model)
    server = make_server(index, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", index, media
    server.shutdown()
    server.server_close()


def test_page_escapes_plays_audio_and_refuses_traversal(audio_server, tmp_path):
    base, index, media = audio_server
    status, body, ctype = request(base, "/?q=%3Cscript%3Ealert(1)%3C/script%3E")
    page = body.decode()
    assert status == 200 and ctype.startswith("text/html")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>" not in page
    assert "does not embed text" in page

    row = index._by_path[str((media / "b.wav").resolve())][0]
    status, body, _ = request(base, f"/?like={row}")
    page = body.decode()
    players = re.findall(r"<audio controls preload='none' src='([^']+)'>", page)
    assert status == 200 and players[0] == "/file/0/b.wav" and set(players) >= {"/file/0/a.wav", "/file/0/c.wav"}
    assert "outside the indexed folders" in page  # the symlinked file is listed but never linked
    status, body, ctype = request(base, "/file/0/a.wav")
    assert status == 200 and body == (media / "a.wav").read_bytes() and ctype.startswith("audio/")
    status, body, _ = request(base, "/file/0/a.wav", {"Range": "bytes=4-11"})  # players seek with ranges
    assert status == 206 and body == (media / "a.wav").read_bytes()[4:12]

    for path, expected in ATTACKS:
        status, body, _ = request(base, path)
        assert status == expected, (path, status)
        assert b"RIFF" not in body and b"root:" not in body


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (apt-get install chromium)")
@pytest.mark.skipif(not (is_available() and (default_data_root() / "imagenet_classes.txt").is_file()),
                    reason="needs the pretrained extra and imagenet_classes.txt")
def test_browser_search_shows_the_expected_thumbnails(tmp_path):
    media = tmp_path / "photos"
    photos = sample_photos(media)
    write_clip(media / "clip.mp4", photos[:2])  # china 0-2 s, flower 2-4 s
    # The server loads its model while this process embeds the media; it re-opens the index on change.
    index = Index.create(tmp_path / "ix", LabelBridgeEmbedder.model_id_for(), 1000, model_spec="label-bridge")
    proc = subprocess.Popen([sys.executable, "-m", "polymodal", "serve", "--index", str(tmp_path / "ix"), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        index.add([media], load_embedder("label-bridge"))
        line = proc.stdout.readline()  # printed once the model is loaded and the port is bound
        match = re.search(r"serving (http://127\.0\.0\.1:\d+/)", line)
        assert match, f"serve did not start: {line!r} {proc.stderr.read() if proc.poll() is not None else ''}"
        base = match.group(1)

        shot = tmp_path / "search.png"
        cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1180,760", "--dump-dom",
               f"--screenshot={shot}", base + "?q=a+flower"]
        dom = subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=True).stdout
        figures = re.findall(r'<figure class="hit (\w+)" data-path="([^"]+)">', dom)
        assert figures[0] == ("image", str((media / "flower.jpg").resolve())) and len(figures) == 7
        assert '<img class="thumb" src="/thumb/0/flower.jpg"' in dom
        assert re.search(r'src="/thumb/0/clip\.mp4\?t=2".*?clip\.mp4 · t = 2\.00 s', dom)  # the flower part of the video
        status, body, ctype = request(base, "/thumb/0/clip.mp4?t=2")
        assert status == 200 and ctype == "image/jpeg" and body[:2] == b"\xff\xd8"
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
        (REPO / "docs" / "images").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, REPO / "docs" / "images" / "search.png")  # the picture docs/search.md shows

        status, body, _ = request(base, "/?q=%3Cimg+src%3Dx+onerror%3Dalert(1)%3E")
        assert status == 200 and b"&lt;img src=x onerror=alert(1)&gt;" in body and b'<img src="x"' not in body
        for path, expected in ATTACKS[:8]:
            assert request(base, path)[0] == expected, path
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def raw_request(base: str, data: bytes, wait: float = 10) -> bytes:
    port = int(base.rstrip("/").rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def test_only_this_servers_host_names_are_answered(audio_server, tmp_path):
    """DNS rebinding: a page of another site that resolves its name to 127.0.0.1 sends its own Host."""
    base, index, media = audio_server
    port = int(base.rstrip("/").rsplit(":", 1)[1])
    for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1:{port + 1}", "127.0.0.1.evil.example",
                 f"localhost:{port}@evil", "[::1]"):
        for path in ("/", "/?like=0", "/file/0/a.wav"):
            status, body, _ = request(base, path, {"Host": host})
            assert status == 403 and b"RIFF" not in body and b"figure" not in body, (host, path, status)
    assert b"403" in raw_request(base, b"GET /file/0/a.wav HTTP/1.0\r\n\r\n").split(b"\r\n")[0]  # no Host at all
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", "LOCALHOST.", "127.0.0.1"):
        assert request(base, "/file/0/a.wav", {"Host": host})[0] == 200, host

    server = make_server(index, 0, allowed_hosts=["media.lan"])  # a name given on purpose
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        other = f"http://127.0.0.1:{server.server_address[1]}/"
        assert request(other, "/?like=0", {"Host": f"media.lan:{server.server_address[1]}"})[0] == 200
        assert request(other, "/?like=0", {"Host": "evil.example"})[0] == 403
    finally:
        server.shutdown()
        server.server_close()


def test_out_of_range_parameters_are_400(audio_server):
    base, index, media = audio_server
    for query in ("like=-999999", "like=-1", f"like={len(index.meta)}", "like=x", "k=0", "k=201", "k=many",
                  "like=0&modality=smell"):
        status, body, _ = request(base, f"/?{query}")
        assert status == 400 and b"figure" not in body, (query, status)
    for query in ("t=-1", "t=nan", "t=inf"):
        assert request(base, f"/thumb/0/a.wav?{query}")[0] == 400, query
    row = index._by_path[str((media / "c.wav").resolve())][0]
    index.remove([media / "c.wav"])
    status, body, _ = request(base, f"/?like={row}")
    assert status == 404 and b"removed" in body
    assert request(base, "/?like=0&k=200")[0] == 200


def test_connections_are_queued_not_dropped_and_silent_clients_time_out(audio_server):
    """A burst of connections is queued by the kernel (a backlog of 5 dropped them: clients retried after
    1, 3, 7 s), and a connection that sends nothing is closed after the timeout instead of holding a thread."""
    base, index, media = audio_server
    server = make_server(index, 0, timeout=1)  # not serving yet: every connection waits in the backlog
    port = server.server_address[1]
    socks = []
    try:
        for _ in range(150):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            socks.append(s)
        time.sleep(0.5)
        _, writable, _ = select.select([], socks, [], 0)
        connected = [s for s in writable if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0]
        assert len(connected) == 150, f"{len(connected)} of 150 connections completed in 0.5 s"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        for s in socks[:20]:  # the queued connections are served once the server runs
            s.setblocking(True)
            s.settimeout(10)
            s.sendall(f"GET /?like=0 HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            assert s.recv(12) == b"HTTP/1.0 200"
        silent = socks[20]
        silent.setblocking(True)
        silent.settimeout(10)
        t = time.monotonic()
        assert silent.recv(100) == b"" and time.monotonic() - t < 5  # closed by the server after ~1 s
    finally:
        for s in socks:
            s.close()
        server.shutdown()
        server.server_close()


def test_the_page_filters_by_modality_links_home_and_names_its_model(tmp_path, raw_data, audio_server):
    base, index, media = audio_server
    status, body, _ = request(base, "/")
    page = body.decode()
    assert status == 200 and '<h1><a href="/">polymodal search</a></h1>' in page
    assert "Searching 4 audio files with audio-logmel: log-mel band statistics (128-d), training-free" in page
    assert "figure.hit audio {{" not in page and "figure.hit audio { display: block; width: 100%" in page
    page = request(base, "/?like=0&q=a+spoken+one")[1].decode()  # text typed on a "similar" page: the text wins
    assert "Results for &ldquo;a spoken one&rdquo;" in page and "does not embed text" in page

    class TwoKinds:  # audio and text in one space: text rows all close to each other
        model_id, dim, modalities = "two-kinds@test", 8, ("audio", "text")

        def embed(self, modality, items):
            rng = np.random.default_rng(len(items))
            x = 0.3 * rng.standard_normal((len(items), 8)).astype(np.float32)
            x[:, 0 if modality == "text" else 1] += 3
            return x / np.linalg.norm(x, axis=1, keepdims=True)

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for i, name in enumerate(("1_theo_1.wav", "2_theo_2.wav", "3_theo_3.wav")):
        shutil.copy(raw_data / "fsdd" / "recordings" / name, mixed / f"a{i}.wav")
    for i in range(3):
        (mixed / f"note{i}.txt").write_text(f"note number {i}")
    ix = Index.create(tmp_path / "mixed.index", TwoKinds.model_id, 8)
    ix.add([mixed], TwoKinds())
    server = make_server(ix, 0, preload=False)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        other = f"http://127.0.0.1:{server.server_address[1]}/"
        row = ix._by_path[str((mixed / "note0.txt").resolve())][0]
        kinds = re.findall(r"<figure class='hit (\w+)'", request(other, f"/?like={row}")[1].decode())
        assert kinds[:3] == ["text"] * 3  # text ranks every text file first
        page = request(other, f"/?like={row}&modality=audio")[1].decode()
        assert re.findall(r"<figure class='hit (\w+)'", page) == ["audio"] * 3
        assert "<option value='audio' selected>audio only</option>" in page and "(audio only)" in page
        assert f"/?like={ix._by_path[str((mixed / 'a0.wav').resolve())][0]}&amp;modality=audio" in page
        assert "3 audio files, 3 text files" in page
        assert f"<input type='hidden' name='like' value='{row}'>" in page  # the menu filters this page again
        hits = ix.search(ix.vectors[row], k=10, model_id=TwoKinds.model_id, modalities=["audio"])[0]
        assert [h.modality for h in hits] == ["audio"] * 3
        exact = sorted((float(ix.vectors[row] @ ix.vectors[h.row]) for h in hits), reverse=True)
        assert [h.score for h in hits] == pytest.approx(exact, abs=1e-6)
    finally:
        server.shutdown()
        server.server_close()
