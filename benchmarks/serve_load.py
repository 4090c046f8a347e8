"""Load on `polymodal serve`: latency and errors of the search page under 1, 10, 50 and 200 concurrent clients.

A real `polymodal serve` process on 127.0.0.1 (loopback only: the script refuses any other address) serves
an index of real spoken digits (FSDD recordings from ``$POLYMODAL_DATA``, the training-free audio-logmel
model). At each concurrency level C, C client threads each open a new connection per request (as a
browser tab does) and ask for ``/?like=ROW`` pages, a search by an indexed recording's vector with its
24 hits rendered, for random rows, ``--per-client`` requests each (at least ``--min-requests`` in all),
with a ``--timeout`` per request. A level stops issuing requests after ``--level-seconds`` whatever is
left, so the whole run is bounded in time. Recorded per level and repeat: p50 and p95 latency of the
answered requests, requests per second, errors (timeouts, refused or reset connections, statuses other
than 200) and the kernel's listen-queue overflows during the level (``ListenOverflows`` of
``/proc/net/netstat``: connections dropped because the server's accept backlog was full; machine-wide,
so other programs' drops would count too).

    python benchmarks/serve_load.py [--label after] [--repeats 3]

Writes benchmarks/results/serve_load.md and .json; rows of another ``--label`` already in the JSON are
kept, so the table compares the server before and after a change measured with the same protocol.
Client threads share the machine (and Python's GIL) with the server: latencies include the client's
own scheduling, and a machine with more cores would show lower numbers; compare labels, not machines.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from polymodal.paths import default_data_root
from polymodal.report.table import markdown_table

LEVELS = (1, 10, 50, 200)
HOST = "127.0.0.1"


def listen_overflows() -> int | None:
    """The kernel's count of connections dropped because a listen queue was full (None where not readable)."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return None
    for head, values in zip(lines[::2], lines[1::2], strict=False):
        if head.startswith("TcpExt:"):
            table = dict(zip(head.split()[1:], values.split()[1:], strict=True))
            return int(table.get("ListenOverflows", 0))
    return None


def build_index(folder: Path, files: int) -> Path:
    """An audio-logmel index of ``files`` real FSDD recordings, written under ``folder``."""
    source = default_data_root() / "fsdd" / "recordings"
    names = sorted(source.glob("*.wav"))[:files]
    if len(names) < files:
        raise SystemExit(f"{source} holds {len(names)} recordings; need {files} (set POLYMODAL_DATA)")
    media = folder / "media"
    media.mkdir()
    for p in names:
        shutil.copyfile(p, media / p.name)
    ix = folder / "ix"
    subprocess.run([sys.executable, "-m", "polymodal", "index", "add", str(media), "--index", str(ix),
                    "--model", "audio-logmel"], check=True, capture_output=True)
    return ix


def start_server(ix: Path) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-m", "polymodal", "serve", "--index", str(ix), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    match = re.search(r"serving http://([\d.]+):(\d+)/", line)
    if not match:
        proc.kill()
        raise SystemExit(f"polymodal serve did not start: {line!r} {proc.stderr.read()}")
    if match.group(1) != HOST:
        proc.kill()
        raise SystemExit(f"the server bound {match.group(1)}; this load test runs on loopback ({HOST}) only")
    return proc, int(match.group(2))


def one_request(port: int, path: str, timeout: float) -> tuple[float, str]:
    """(seconds, outcome): outcome 'ok', 'timeout', 'refused', 'reset' or 'status NNN'."""
    t = time.perf_counter()
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        outcome = "ok" if resp.status == 200 else f"status {resp.status}"
    except TimeoutError:
        outcome = "timeout"
    except ConnectionRefusedError:
        outcome = "refused"
    except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
        outcome = "reset"
    except OSError as e:
        outcome = f"error {type(e).__name__}"
    finally:
        conn.close()
    return time.perf_counter() - t, outcome


def run_level(port: int, clients: int, per_client: int, rows: int, timeout: float, level_seconds: float,
              seed: int) -> dict:
    results: list[tuple[float, str]] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + level_seconds
    start = threading.Barrier(clients + 1)

    def client(i: int) -> None:
        rng = random.Random(seed * 10_000 + i)
        start.wait()
        for _ in range(per_client):
            if time.perf_counter() > deadline:
                return
            res = one_request(port, f"/?like={rng.randrange(rows)}", timeout)
            with lock:
                results.append(res)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    before = listen_overflows()
    t0 = time.perf_counter()
    start.wait()
    for t in threads:
        t.join(level_seconds + timeout + 5)
    wall = time.perf_counter() - t0
    after = listen_overflows()
    ok = sorted(s for s, outcome in results if outcome == "ok")
    errors: dict[str, int] = {}
    for _, outcome in results:
        if outcome != "ok":
            errors[outcome] = errors.get(outcome, 0) + 1
    q = statistics.quantiles(ok, n=20) if len(ok) >= 2 else [float("nan")] * 19
    return {"clients": clients, "requests": len(results), "ok": len(ok), "errors": errors,
            "p50_ms": 1000 * statistics.median(ok) if ok else float("nan"), "p95_ms": 1000 * q[18],
            "rps": len(ok) / wall, "wall_s": wall,
            "listen_overflows": None if before is None or after is None else after - before}


def summarise(rows: list[dict]) -> list[dict]:
    """Mean and std over repeats per (label, clients)."""
    out = []
    for key in sorted({(r["label"], r["clients"]) for r in rows}, key=lambda k: (k[0] != "before", k)):
        group = [r for r in rows if (r["label"], r["clients"]) == key]

        def ms(name: str, g: list[dict] = group) -> str:
            vals = [r[name] for r in g]
            return f"{statistics.mean(vals):,.0f} +- {statistics.stdev(vals):,.0f}" if len(vals) > 1 else f"{vals[0]:,.0f}"

        errors = [sum(r["errors"].values()) for r in group]
        kinds = sorted({k for r in group for k in r["errors"]})
        drops = [r["listen_overflows"] for r in group if r["listen_overflows"] is not None]
        out.append({"label": key[0], "clients": key[1], "repeats": len(group),
                    "requests": sum(r["requests"] for r in group), "p50": ms("p50_ms"), "p95": ms("p95_ms"),
                    "rps": ms("rps"), "errors": f"{sum(errors)} ({', '.join(kinds)})" if kinds else "0",
                    "errors_per_repeat": f"{min(errors)}-{max(errors)}" if errors else "-",
                    "drops": sum(drops) if drops else "n/a"})
    return out


def write(doc: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "serve_load.json").write_text(json.dumps(doc, indent=2) + "\n")
    table = summarise(doc["rows"])
    body = [[t["label"], t["clients"], t["repeats"], t["requests"], t["p50"], t["p95"], t["rps"], t["errors"],
             t["errors_per_repeat"], t["drops"]] for t in table]
    header = ["server", "concurrent clients", "repeats", "requests", "p50 (ms)", "p95 (ms)", "answered / s",
              "errors (kinds)", "errors per repeat", "listen-queue drops"]
    labels = "\n".join(f"- **{k}**: {v}" for k, v in doc["labels"].items())
    lines = ["# Load on `polymodal serve`", "", f"Protocol: {doc['protocol']}", "",
             *markdown_table(header, body, "lrrrrrrlrr"), "", "Servers measured:", "", labels, "",
             "Reading the table:", "",
             "- p50 / p95 are taken over the answered requests of each repeat and shown as mean +- std over the "
             "repeats; errors are counted separately (a timed-out request has no latency, so a server that "
             "drops requests can show a low p50).",
             "- answered / s is the throughput of the level; once every client waits on the server, latency grows "
             "with the queue (200 clients at ~250 answers per second wait ~0.8 s each), but every request is "
             "answered.",
             "- A listen-queue drop is a connection the kernel refused because the server's accept backlog was "
             "full; the client retries it after 1 s, 3 s, 7 s..., which is what turns a 30 ms page into seconds.",
             "- Clients and server share the machine's cores and the clients are Python threads: the numbers "
             "show how the server degrades with concurrency on one small machine, not its capacity on a bigger "
             "one. The page is meant for one person's browser on 127.0.0.1, not for serving the public.",
             f"- Machine: {os.cpu_count()} CPU cores shared with other jobs during the runs.", ""]
    (out / "serve_load.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--label", default="after", help="name of the server version measured (rows of other labels are kept)")
    p.add_argument("--describe", default="", help="what the labelled server is (kept in the results)")
    p.add_argument("--levels", default=",".join(map(str, LEVELS)))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--per-client", type=int, default=5)
    p.add_argument("--min-requests", type=int, default=50)
    p.add_argument("--files", type=int, default=300, help="FSDD recordings in the index")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds before a request counts as timed out")
    p.add_argument("--level-seconds", type=float, default=60.0, help="a level issues no new request after this")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    p.add_argument("--render", action="store_true", help="rewrite the Markdown from OUT/serve_load.json alone")
    ns = p.parse_args(argv)
    if ns.render:
        write(json.loads((ns.out / "serve_load.json").read_text()), ns.out)
        return 0
    levels = [int(c) for c in ns.levels.split(",")]
    path = ns.out / "serve_load.json"
    doc = json.loads(path.read_text()) if path.is_file() else {"rows": [], "labels": {}}
    doc["rows"] = [r for r in doc["rows"] if r["label"] != ns.label]
    doc["protocol"] = (
        f"a `polymodal serve` process on {HOST} over an audio-logmel index of {ns.files} real FSDD recordings; "
        f"at each level C client threads each send {ns.per_client} requests (at least {ns.min_requests} in all) "
        f"for `/?like=ROW` pages of random rows, one new connection per request, timeout {ns.timeout:g} s, no new "
        f"request after {ns.level_seconds:g} s; {ns.repeats} repeats per level, a fresh server per repeat")
    with tempfile.TemporaryDirectory() as tmp:
        ix = build_index(Path(tmp), ns.files)
        for repeat in range(ns.repeats):
            for clients in levels:
                proc, port = start_server(ix)
                try:
                    per_client = max(ns.per_client, -(-ns.min_requests // clients))
                    row = run_level(port, clients, per_client, ns.files, ns.timeout, ns.level_seconds,
                                    seed=repeat * 1000 + clients)
                finally:
                    proc.terminate()
                    try:
                        proc.wait(10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                row.update(label=ns.label, repeat=repeat)
                doc["rows"].append(row)
                print(f"{ns.label} C={clients} repeat {repeat}: p50 {row['p50_ms']:.0f} ms, p95 {row['p95_ms']:.0f} ms, "
                      f"{row['ok']}/{row['requests']} ok, errors {row['errors']}, drops {row['listen_overflows']}",
                      file=sys.stderr, flush=True)
    doc["labels"][ns.label] = ns.describe or ns.label
    write(doc, ns.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
