"""The persistent index on real FSDD recordings (training-free audio-logmel tower): add, persist, reload,
search, duplicate add, changed content, removal, a writer killed in the middle of an add, an interrupted
commit, model mismatch, and the exact -> IVF switch past the threshold."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from polymodal.cli import main
from polymodal.coordinated.embedders import load_embedder
from polymodal.coordinated.index import DamagedFileError, Index, IndexFormatError, ModelMismatchError

pytest.importorskip("faiss")


@pytest.fixture(scope="module")
def logmel():
    return load_embedder("audio-logmel")


def copy_recordings(raw_data: Path, dest: Path, n: int, speakers=("jackson", "theo", "nicolas")) -> list[Path]:
    """``n`` real FSDD recordings copied into ``dest`` (digits and speakers mixed), sorted."""
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        name = f"{i % 10}_{speakers[(i // 10) % len(speakers)]}_{i // (10 * len(speakers))}.wav"
        out.append(Path(shutil.copyfile(raw_data / "fsdd" / "recordings" / name, dest / name)))
    return sorted(out)


def as_version_1(ix: Path) -> None:
    """Rewrite an index's manifest as polymodal wrote it before checksums existed."""
    m = json.loads((ix / "manifest.json").read_text())
    m["version"] = 1
    for shard in m["shards"]:
        shard.pop("vectors_sha256"), shard.pop("meta_sha256")
    if m["ann"]:
        m["ann"].pop("sha256")
    m.pop("obsolete", None)
    (ix / "manifest.json").write_text(json.dumps(m))


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_add_persist_reload_search(tmp_path, raw_data, logmel):
    files = copy_recordings(raw_data, tmp_path / "audio", 24)
    (tmp_path / "audio" / "notes.csv").write_text("not media\n")
    index = Index.create(tmp_path / "ix", logmel.model_id, logmel.dim, model_spec="audio-logmel")
    report = index.add([tmp_path / "audio"], logmel, commit_every=10)
    assert len(report.added) == 24 and report.rows == 24
    assert [Path(p).name for p, _ in report.skipped] == ["notes.csv"]
    assert index.manifest["generation"] == 4  # create + 3 commits of 10, 10, 4 files

    again = Index.open(tmp_path / "ix")  # a fresh process's view
    assert len(again) == 24 and again.paths == [str(f.resolve()) for f in files]
    assert again.roots == [str((tmp_path / "audio").resolve())]
    np.testing.assert_array_equal(again.vectors, index.vectors)
    wave, sr = sf.read(files[7], dtype="float32")
    hits = again.search_items(logmel, "audio", [(wave, sr)], k=5)[0]
    assert len(hits) == 5 and hits[0].path == str(files[7].resolve())
    assert hits[0].score == pytest.approx(1.0, abs=1e-5) and hits[0].score > hits[1].score
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    row = again.meta[hits[0].row]
    assert row["hash"] == hashlib.sha256(files[7].read_bytes()).hexdigest()
    assert row["modality"] == "audio" and row["timestamp"] is None


def test_duplicate_add_changed_content_and_copies(tmp_path, raw_data, logmel):
    files = copy_recordings(raw_data, tmp_path / "audio", 6)
    index = Index.create(tmp_path / "ix", logmel.model_id, logmel.dim)
    index.add(files, logmel)
    gen, shards = index.manifest["generation"], sorted(p.name for p in (tmp_path / "ix").glob("shard-*"))

    calls = []

    class Counting:
        model_id, dim, modalities = logmel.model_id, logmel.dim, logmel.modalities

        def embed(self, modality, items):
            calls.append(len(items))
            return logmel.embed(modality, items)

    report = index.add(files, Counting())
    assert len(report.unchanged) == 6 and not report.added and calls == []
    assert index.manifest["generation"] == gen  # nothing written at all
    assert sorted(p.name for p in (tmp_path / "ix").glob("shard-*")) == shards

    copy = Path(shutil.copyfile(files[0], tmp_path / "audio" / "copy.wav"))
    report = index.add([copy], Counting())
    assert report.copied == [str(copy.resolve())] and calls == []  # same content: vectors reused
    assert len(index) == 7

    shutil.copyfile(raw_data / "fsdd" / "recordings" / "9_george_40.wav", files[1])  # new content, same path
    report = index.add([files[1]], Counting())
    assert report.replaced == [str(files[1].resolve())] and calls == [1]
    assert len(index) == 7 and len(index.meta) == 8  # the old row is removed, not overwritten
    assert index.meta[index._by_path[str(files[1].resolve())][0]]["hash"] == hashlib.sha256(files[1].read_bytes()).hexdigest()


def test_remove_by_path_and_folder(tmp_path, raw_data, logmel):
    a = copy_recordings(raw_data, tmp_path / "a", 4)
    b = copy_recordings(raw_data, tmp_path / "b", 3, speakers=("lucas",))
    index = Index.create(tmp_path / "ix", logmel.model_id, logmel.dim)
    index.add([tmp_path / "a", tmp_path / "b"], logmel)
    assert index.remove([a[0]]) == [str(a[0].resolve())]
    assert index.remove([tmp_path / "b"]) == sorted(str(p.resolve()) for p in b)
    reopened = Index.open(tmp_path / "ix")
    assert reopened.paths == [str(p.resolve()) for p in a[1:]] and len(reopened) == 3
    hits = reopened.search(reopened.vectors[0], k=10, model_id=logmel.model_id)[0]
    assert {h.path for h in hits} == set(reopened.paths)  # removed rows are never returned
    with pytest.raises(FileNotFoundError, match="is not in the index"):
        reopened.remove([tmp_path / "nowhere.wav"])
    assert reopened.add([a[0]], logmel).added == [str(a[0].resolve())]  # removed files can come back


def test_model_mismatch_is_refused(tmp_path, raw_data, logmel):
    files = copy_recordings(raw_data, tmp_path / "audio", 3)
    index = Index.create(tmp_path / "ix", logmel.model_id, logmel.dim, model_spec="audio-logmel")
    index.add(files, logmel)

    class Other:
        model_id, dim, modalities = "another-model@0123", logmel.dim, ("audio",)

        def embed(self, modality, items):
            return logmel.embed(modality, items)

    with pytest.raises(ModelMismatchError, match=r"built with model 'audio-logmel@v1' \(--model audio-logmel\)"):
        index.search(np.ones((1, logmel.dim), np.float32), model_id="another-model@0123")
    with pytest.raises(ModelMismatchError, match="another embedding space"):
        index.add([files[0]], Other())
    with pytest.raises(ModelMismatchError):
        Index.open_or_create(tmp_path / "ix", "another-model@0123", logmel.dim)
    with pytest.raises(ValueError, match=r"expected \(Q, 128\)"):
        index.search(np.ones((1, 7), np.float32), model_id=logmel.model_id)


def test_killed_add_leaves_a_loadable_index(tmp_path, raw_data, logmel):
    """SIGKILL a real `polymodal index add` after some commits: the index loads with whole commits only."""
    files = copy_recordings(raw_data, tmp_path / "audio", 150)
    ix = tmp_path / "ix"
    cmd = [sys.executable, "-m", "polymodal", "index", "add", str(tmp_path / "audio"), "--index", str(ix),
           "--model", "audio-logmel", "--commit-every", "5"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            m = ix / "manifest.json"
            if m.is_file() and json.loads(m.read_text())["generation"] >= 4:
                break
            time.sleep(0.02)
        time.sleep(0.05)  # land somewhere inside a later batch
        assert proc.poll() is None, f"the add finished before it could be killed: {proc.stderr.read().decode()}"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(10)

    index = Index.open(ix)
    n = len(index)
    assert 15 <= n < 150 and n % 5 == 0  # whole commits of 5 files, nothing half-written
    by_name = {Path(p).name: p for p in index.paths}
    sample = sorted(by_name)[:: max(1, n // 6)]
    fresh = logmel.embed("audio", [sf.read(tmp_path / "audio" / s, dtype="float32") for s in sample])
    for name, vec in zip(sample, fresh, strict=True):
        np.testing.assert_allclose(index.vectors[index._by_path[by_name[name]][0]], vec, atol=1e-5)

    report = index.add([tmp_path / "audio"], logmel)  # the next writer completes the job
    assert len(report.unchanged) == n and len(report.added) == 150 - n
    final = Index.open(ix)
    assert len(final) == 150 and final.paths == [str(f.resolve()) for f in files]
    named = {s["vectors"] for s in final.manifest["shards"]} | {s["meta"] for s in final.manifest["shards"]}
    leftovers = [p.name for p in ix.iterdir() if p.name not in named | {"manifest.json", "lock"}]
    assert leftovers == []  # temporaries and unreferenced shards of the killed writer are gone


def test_failed_manifest_rename_keeps_the_previous_state(tmp_path, raw_data, logmel, monkeypatch):
    files = copy_recordings(raw_data, tmp_path / "audio", 4)
    index = Index.create(tmp_path / "ix", logmel.model_id, logmel.dim)
    index.add(files[:2], logmel)
    real_replace = os.replace

    def crash_on_manifest(src, dst):
        if str(dst).endswith("manifest.json"):
            raise OSError("disk full (simulated)")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_manifest)
    with pytest.raises(OSError, match="simulated"):
        index.add(files[2:], logmel)
    monkeypatch.undo()
    reopened = Index.open(tmp_path / "ix")
    assert reopened.paths == [str(f.resolve()) for f in files[:2]]
    assert reopened.add(files, logmel).added == [str(f.resolve()) for f in files[2:]]


def test_ivf_past_the_threshold_and_back(tmp_path, raw_data, logmel):
    files = copy_recordings(raw_data, tmp_path / "audio", 300, speakers=("jackson", "theo", "nicolas", "george", "lucas"))
    index = Index.create(tmp_path / "ix", logmel.model_id, logmel.dim, ivf_threshold=256, nprobe=64)
    index.add([tmp_path / "audio"], logmel, commit_every=300)
    assert index.kind == "ivf" and index.manifest["ann"]["nlist"] == 64
    assert (tmp_path / "ix" / index.manifest["ann"]["file"]).is_file()
    reopened = Index.open(tmp_path / "ix")
    queries = reopened.vectors[::30]
    approx = reopened.search(queries, k=1, model_id=logmel.model_id)
    exact = np.argmax(queries @ reopened.vectors.T, axis=1)
    assert [h[0].row for h in approx] == list(exact)  # all 64 cells probed: IVF equals exact search

    reopened.remove(files[:60])  # 240 live < 256: back to exact search
    assert reopened.kind == "flat" and Index.open(tmp_path / "ix").kind == "flat"
    assert not list((tmp_path / "ix").glob("ivf-*"))


def test_open_names_what_is_wrong(tmp_path, raw_data, logmel):
    with pytest.raises(FileNotFoundError, match="holds no index .*polymodal index add"):
        Index.open(tmp_path / "nothing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_text("{not json")
    with pytest.raises(IndexFormatError, match="not valid JSON"):
        Index.open(tmp_path / "bad")
    (tmp_path / "bad" / "manifest.json").write_text('{"format": "something-else"}')
    with pytest.raises(IndexFormatError, match="not a polymodal index manifest"):
        Index.open(tmp_path / "bad")
    files = copy_recordings(raw_data, tmp_path / "audio", 3)
    index = Index.create(tmp_path / "ix", logmel.model_id, logmel.dim)
    index.add(files, logmel)
    shard = tmp_path / "ix" / index.manifest["shards"][0]["vectors"]
    np.save(shard, np.zeros((2, logmel.dim), np.float32))  # a shard that lost a row
    with pytest.raises(IndexFormatError, match=r"shard-000002.npy is damaged \(its SHA-256 differs"):
        Index.open(tmp_path / "ix")
    as_version_1(tmp_path / "ix")  # without checksums the shape is what tells
    with pytest.raises(IndexFormatError, match=r"shard-000002.npy is damaged \(it holds \(2, 128\) float32 vectors; "
                                               r"the manifest promises \(3, 128\) float32"):
        Index.open(tmp_path / "ix")


def test_a_second_writer_is_refused(tmp_path, raw_data, logmel):
    import fcntl

    files = copy_recordings(raw_data, tmp_path / "audio", 2)
    index = Index.create(tmp_path / "ix", logmel.model_id, logmel.dim)
    with open(tmp_path / "ix" / "lock", "a+") as held:  # what a writer in another process holds
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(RuntimeError, match="another process is writing"):
            index.add(files, logmel)
        assert len(Index.open(tmp_path / "ix")) == 0  # readers need no lock
    assert len(index.add(files, logmel).added) == 2


@pytest.mark.parametrize("commit_every", [1, 64])
def test_copies_of_a_file_get_one_row_each(tmp_path, raw_data, logmel, commit_every):
    """Five copies of one recording, some in one add (inside and across commits), some in a later add:
    every path holds exactly one row, and a search lists each copy once."""
    src = raw_data / "fsdd" / "recordings" / "4_theo_3.wav"
    media = tmp_path / "audio"
    media.mkdir()
    first = [Path(shutil.copyfile(src, media / f"copy{i}.wav")) for i in range(5)]
    index = Index.create(tmp_path / "ix", logmel.model_id, logmel.dim)
    report = index.add([media], logmel, commit_every=commit_every)
    assert len(report.added) == 1 and len(report.copied) == 4 and report.rows == 5
    later = [Path(shutil.copyfile(src, tmp_path / f"later{i}.wav")) for i in range(3)]
    report = index.add(later, logmel, commit_every=commit_every)
    assert len(report.copied) == 3 and report.rows == 3
    for ix in (index, Index.open(tmp_path / "ix")):
        assert len(ix) == 8 and len(ix.paths) == 8
        assert all(len(rows) == 1 for rows in ix._by_path.values())
        hits = ix.search(ix.vectors[0], k=20, model_id=logmel.model_id)[0]
        assert sorted(h.path for h in hits) == sorted(str(p.resolve()) for p in first + later)


def test_copies_of_a_video_keep_one_row_per_frame(tmp_path):
    """A copied multi-row file (a video's frames) is copied as the rows of one path, once per copy."""
    from PIL import Image

    from .test_media import write_clip

    class FrameEmbedder:  # any image model: one unit vector per frame
        model_id, dim, modalities = "frames@test", 8, ("image",)

        def embed(self, modality, items):
            x = np.stack([np.asarray(im.resize((2, 4)).convert("L"), np.float32).ravel() + 1 for im in items])
            return x / np.linalg.norm(x, axis=1, keepdims=True)

    pictures = []
    for i, colour in enumerate(((200, 30, 30), (30, 30, 200))):
        pictures.append(tmp_path / f"p{i}.png")
        Image.new("RGB", (32, 24), colour).save(pictures[-1])
    media = tmp_path / "v"
    media.mkdir()
    write_clip(media / "a.mp4", pictures)  # 4 s: frames at 0, 1, 2, 3 s
    for name in ("b.mp4", "c.mp4"):
        shutil.copyfile(media / "a.mp4", media / name)
    index = Index.create(tmp_path / "ix", "frames@test", 8)
    report = index.add([media], FrameEmbedder(), commit_every=1)
    assert report.copied == [str((media / n).resolve()) for n in ("b.mp4", "c.mp4")] and report.rows == 12
    times = {p: sorted(index.meta[r]["timestamp"] for r in rows) for p, rows in index._by_path.items()}
    assert len(times) == 3 and all(t == [0.0, 1.0, 2.0, 3.0] for t in times.values()), times


def test_rows_multiplied_by_an_older_version_are_removed_on_the_next_add(tmp_path, raw_data, logmel):
    (f,) = copy_recordings(raw_data, tmp_path / "audio", 1)
    index = Index.create(tmp_path / "ix", logmel.model_id, logmel.dim)
    index.add([f], logmel)
    row = index.meta[0]
    with index._locked():  # what copies used to leave: three more rows of the same path
        index._commit(np.repeat(index.vectors[:1], 3, axis=0), [dict(row)] * 3)
    assert len(index._by_path[row["path"]]) == 4
    bad = tmp_path / "audio" / "zz_truncated.wav"
    bad.write_bytes(f.read_bytes()[:30])
    report = index.add([f, bad], logmel, commit_every=1)  # a commit of removals only, then an unreadable file
    assert report.repaired == [row["path"]] and not report.unchanged and report.skipped[0][0] == str(bad.resolve())
    assert len(Index.open(tmp_path / "ix")._by_path[row["path"]]) == 1 and len(index) == 1


DAMAGES = {
    "empty": lambda v: b"",
    "nan": lambda v: np.full_like(v, np.nan),
    "reordered": lambda v: v[::-1].copy(),
    "truncated": lambda v: v,  # cut to half its bytes below
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_shard_is_named_checked_and_repaired(tmp_path, raw_data, logmel, capsys, damage):
    """A 0-byte, NaN, reordered or truncated shard: open names the file (no raw EOFError, no silent wrong
    results), `polymodal index check` lists it and exits 1, `--repair` embeds its files again."""
    files = copy_recordings(raw_data, tmp_path / "audio", 6)
    ix = tmp_path / "ix"
    index = Index.create(ix, logmel.model_id, logmel.dim, model_spec="audio-logmel")
    index.add(files, logmel, commit_every=3)
    name = index.manifest["shards"][1]["vectors"]
    path = ix / name
    v = np.load(path)
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        np.save(path, DAMAGES[damage](v))

    with pytest.raises(DamagedFileError, match=rf"{name} is damaged .*index check --index .* --repair") as err:
        Index.open(ix)
    assert err.value.file == name
    for argv in (("index", "info", "--index", ix), ("search", "--index", ix, "--audio", files[0]),
                 ("index", "add", files[0], "--index", ix)):
        code, out, err_text = cli(capsys, *argv)
        assert code == 1 and f"{name} is damaged" in err_text, (argv, err_text)

    code, out, err_text = cli(capsys, "index", "check", "--index", ix)
    assert code == 1 and f"damaged {name}" in out and "it held 3 file(s)" in out and "--repair" in err_text
    code, out, err_text = cli(capsys, "index", "check", "--index", ix, "--repair")
    assert code == 0, err_text
    assert "1 damaged file(s) given up, 3 file(s) embedded again" in out and "6 files, 6 vectors" in out
    assert not path.exists()  # the damaged file is gone with the shard that named it
    code, out, _ = cli(capsys, "index", "check", "--index", ix)
    assert code == 0 and "ok: no damaged file" in out

    repaired = Index.open(ix)
    fresh = logmel.embed("audio", [sf.read(f, dtype="float32") for f in files])
    for f, vec in zip(files, fresh, strict=True):
        (row,) = repaired._by_path[str(f.resolve())]
        np.testing.assert_allclose(repaired.vectors[row], vec, atol=1e-5)
        hit = repaired.search(vec, k=1, model_id=logmel.model_id)[0][0]
        assert hit.path == str(f.resolve()) and hit.score == pytest.approx(1.0, abs=1e-5)


def test_damaged_metadata_and_ann_files(tmp_path, raw_data, logmel, capsys):
    files = copy_recordings(raw_data, tmp_path / "audio", 300, speakers=("jackson", "theo", "nicolas", "george", "lucas"))
    ix = tmp_path / "ix"
    index = Index.create(ix, logmel.model_id, logmel.dim, model_spec="audio-logmel", ivf_threshold=256, nprobe=64)
    index.add(files[:290], logmel, commit_every=290)
    index.add(files[290:], logmel)
    assert index.kind == "ivf"
    meta, ann = index.manifest["shards"][1]["meta"], index.manifest["ann"]["file"]
    (ix / meta).write_text((ix / meta).read_text().replace("\"audio\"", "\"audi0\""))  # still valid JSON lines
    with open(ix / ann, "r+b") as f:
        f.seek(200)
        f.write(b"\0" * 64)
    code, out, _ = cli(capsys, "index", "check", "--index", ix)
    assert code == 1 and f"damaged {meta}" in out and "10 vector(s) of unknown files" in out and f"damaged {ann}" in out
    code, out, err = cli(capsys, "index", "check", "--index", ix, "--repair")
    assert code == 0 and "2 damaged file(s) given up" in out and "10 vector(s) of unknown files lost" in out
    assert "add their folders again" in err
    repaired = Index.open(ix)
    assert len(repaired) == 290 and repaired.kind == "ivf" and repaired.manifest["ann"]["file"] != ann
    report = repaired.add(files, logmel)  # adding the files again brings the lost ones back
    assert len(report.added) == 10 and len(repaired) == 300


def test_an_index_written_before_checksums_opens_and_is_upgraded(tmp_path, raw_data, logmel, capsys):
    files = copy_recordings(raw_data, tmp_path / "audio", 4)
    ix = tmp_path / "ix"
    index = Index.create(ix, logmel.model_id, logmel.dim, model_spec="audio-logmel")
    index.add(files[:3], logmel)
    as_version_1(ix)
    old = Index.open(ix)
    assert len(old) == 3
    code, out, _ = cli(capsys, "index", "check", "--index", ix)
    assert code == 0 and "written before checksums existed (format version 1)" in out
    old.add(files[3:], logmel)  # the next commit records the checksums of the shards as they are
    m = json.loads((ix / "manifest.json").read_text())
    assert m["version"] == 2 and all(s["vectors_sha256"] and s["meta_sha256"] for s in m["shards"])

    as_version_1(ix)
    path = ix / m["shards"][0]["vectors"]
    np.save(path, np.full((3, logmel.dim), np.nan, np.float32))  # NaN rows are caught without a checksum too
    with pytest.raises(DamagedFileError, match="3 of its 3 rows are not finite unit vectors"):
        Index.open(ix)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(n: int, dim: int, clusters: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    return unit(centres[rng.integers(0, clusters, n)] + 0.05 * rng.standard_normal((n, dim)))


def test_choose_ann_takes_ivf_for_clusters_and_stays_exact_when_nothing_is_accurate():
    from polymodal.coordinated.index import choose_ann

    x = clustered(20_000, 64, 100)
    index, info = choose_ann(x, np.arange(len(x), dtype=np.int64))
    assert info["chosen"]["kind"] == "ivf" and index is not None, info
    assert info["tried"][0]["recall_at_10"] >= 0.9

    u = unit(np.random.default_rng(1).uniform(-1, 1, (3_000, 256)))
    index, info = choose_ann(u, np.arange(len(u), dtype=np.int64), min_recall=1.01)  # nothing can reach it
    assert index is None and info["chosen"] == {"kind": "flat"}
    assert {t["kind"] for t in info["tried"]} == {"ivf", "hnsw"}  # both were measured before giving up


def test_hnsw_index_persists_adds_and_never_returns_removed_rows(tmp_path):
    """ann="hnsw": the graph is built past the threshold, saved with its checksum, reopened, brought up to
    date with rows added since, and removed rows (which a graph cannot drop) are filtered from every search."""
    x = clustered(1_200, 32, 40, seed=3)
    index = Index.create(tmp_path / "ix", "vectors@test", 32, ivf_threshold=256, ann="hnsw")
    meta = [{"path": f"/data/{i}.txt", "hash": f"h{i}", "modality": "text", "timestamp": None} for i in range(len(x))]
    with index._locked():
        index._commit(x[:1_000], meta[:1_000])
        index._maybe_retrain()
    assert index.kind == "hnsw" and index.manifest["ann"]["m"] == 32
    assert index.manifest["ann_choice"]["chosen"]["kind"] == "hnsw"
    assert list((tmp_path / "ix").glob("hnsw-*.faiss")) and not list((tmp_path / "ix").glob("ivf-*"))
    with index._locked():
        index._commit(x[1_000:], meta[1_000:], removed=range(0, 100))  # added after the graph, and removed
        index._maybe_retrain()
    again = Index.open(tmp_path / "ix")
    assert again.kind == "hnsw" and len(again) == 1_100
    hits = again.search(x[:200], k=5, model_id="vectors@test", ef_search=512)
    assert all(h.row >= 100 for row in hits for h in row)  # removed rows never come back
    exact = np.argsort(-(x[200:] @ x[100:].T), axis=1)[:, 0] + 100
    found = [h[0].row for h in again.search(x[200:], k=1, model_id="vectors@test", ef_search=512)]
    assert np.mean(np.asarray(found) == exact) > 0.98  # rows added after the build are found


def test_vectors_without_structure_stay_exact_and_info_says_why(tmp_path):
    """Uniform vectors defeat IVF (recall ~0.2 here) and a graph is not faster than exact search at the recall
    asked: the index stays exact instead of answering with a tenth of the true neighbours, and says so."""
    from polymodal.coordinated.cli import describe_search

    u = unit(np.random.default_rng(5).uniform(-1, 1, (3_000, 256)))
    index = Index.create(tmp_path / "ix", "vectors@test", 256, ivf_threshold=256)
    meta = [{"path": f"/data/{i}.txt", "hash": f"h{i}", "modality": "text", "timestamp": None} for i in range(len(u))]
    with index._locked():
        index._commit(u, meta)
        index._maybe_retrain()
    choice = index.manifest["ann_choice"]
    assert index.kind == "flat" and choice["chosen"] == {"kind": "flat"} and choice["decided_at"] == 3_000
    assert max(t["recall_at_10"] for t in choice["tried"] if t["kind"] == "ivf") < 0.9
    text = describe_search(Index.open(tmp_path / "ix"))
    assert text.startswith("exact: at 3,000 vectors no approximate index reached recall@10 0.9 at 2x") and "ivf 0." in text
    hits = index.search(u[:5], k=10, model_id="vectors@test")
    assert [[h.row for h in row] for row in hits] == np.argsort(-(u[:5] @ u.T), axis=1)[:, :10].tolist()
    generation = index.manifest["generation"]
    with index._locked():
        index._maybe_retrain()  # decided: not measured again before four-fold growth
    assert index.manifest["generation"] == generation


def test_a_create_killed_before_its_first_commit_can_be_created_again(tmp_path):
    (tmp_path / "ix").mkdir()
    (tmp_path / "ix" / "lock").touch()
    (tmp_path / "ix" / "manifest.json.tmp-4242").write_text("{half")
    index = Index.create(tmp_path / "ix", "vectors@test", 4)
    assert sorted(p.name for p in (tmp_path / "ix").iterdir()) == ["lock", "manifest.json"] and len(index) == 0
