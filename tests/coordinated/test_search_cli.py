"""`polymodal index add/remove/info` and `polymodal search` through the real CLI entry point, on real FSDD
recordings (audio-logmel) and real photos plus a video of them (label bridge)."""

import shutil

import pytest

from polymodal.cli import main
from polymodal.coordinated.bridge import sample_photos
from polymodal.encoders.pretrained import is_available
from polymodal.paths import default_data_root

from .test_media import write_clip


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_index_and_search_audio_from_the_cli(tmp_path, raw_data, capsys):
    audio = tmp_path / "audio"
    audio.mkdir()
    for name in ("3_theo_1.wav", "3_theo_2.wav", "5_jackson_7.wav", "8_nicolas_0.wav", "0_george_9.wav"):
        shutil.copy(raw_data / "fsdd" / "recordings" / name, audio / name)
    ix = tmp_path / "ix"
    code, out, err = run(capsys, "index", "add", audio, "--index", ix)
    assert code == 1 and "pass --model" in err
    code, out, err = run(capsys, "index", "add", audio, "--index", ix, "--model", "audio-logmel", "--fps", "0")
    assert code == 1 and "--fps 0.0: the video frame sampling rate must be a positive number" in err
    assert not ix.exists()  # nothing created by a refused command
    code, out, err = run(capsys, "index", "add", audio, "--index", ix, "--model", "audio-logmel")
    assert code == 0, err
    assert "5 added, 0 copied (same content), 0 replaced, 0 unchanged, 0 skipped, 0 pruned (gone from disk); " \
           "5 vectors written" in out
    assert "5 files, 5 vectors (flat)" in out
    code, out, _ = run(capsys, "index", "add", audio, "--index", ix)  # the index keeps its model
    assert code == 0 and "0 added" in out and "5 unchanged" in out

    code, out, err = run(capsys, "search", "--index", ix, "--audio", audio / "5_jackson_7.wav", "-k", "3")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 3 and lines[0].endswith("5_jackson_7.wav") and lines[0].split()[0] == "1.0000"

    code, _, err = run(capsys, "search", "--index", ix, "a spoken three")
    assert code == 1 and "embeds audio, not text" in err
    code, _, err = run(capsys, "search", "--index", ix, "words", "--audio", audio / "3_theo_1.wav")
    assert code == 1 and "exactly one query" in err
    code, _, err = run(capsys, "search", "--index", ix, "--audio", audio / "3_theo_1.wav", "--model", "efficientnet-lite0")
    if is_available():
        assert code == 1 and "was built with model 'audio-logmel@v1'" in err

    code, out, _ = run(capsys, "index", "remove", audio / "3_theo_1.wav", "--index", ix)
    assert code == 0 and "1 file(s) removed" in out and "4 files, 4 vectors" in out
    code, out, _ = run(capsys, "index", "info", "--index", ix)
    assert code == 0 and "audio-logmel@v1" in out and "audio 4" in out and str(audio.resolve()) in out
    code, _, err = run(capsys, "index", "remove", audio / "3_theo_1.wav", "--index", ix)
    assert code == 1 and "is not in the index" in err


@pytest.mark.skipif(not (is_available() and (default_data_root() / "imagenet_classes.txt").is_file()),
                    reason="needs the pretrained extra and imagenet_classes.txt")
def test_text_search_over_photos_and_video(tmp_path, capsys):
    photos = sample_photos(tmp_path / "media")
    write_clip(tmp_path / "media" / "clip.mp4", photos[:2])  # china 0-2 s, flower 2-4 s
    ix = tmp_path / "ix"
    code, out, err = run(capsys, "index", "add", tmp_path / "media", "--index", ix, "--model", "label-bridge", "--fps", "1")
    assert code == 0, err
    assert "4 added" in out and "7 vectors written" in out  # 3 photos + 4 frames
    code, out, err = run(capsys, "search", "--index", ix, "a flower", "-k", "4")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].endswith("flower.jpg")
    assert sorted(line.split()[-1] for line in lines[1:3]) == ["t=2.00s", "t=3.00s"]  # the flower part of the clip
    code, out, _ = run(capsys, "search", "--index", ix, "a palace", "-k", "1")
    assert out.split()[1].endswith("china.jpg")


def test_an_index_folder_that_holds_other_files_is_refused(tmp_path, raw_data, capsys):
    """--index equal to the media folder, or a file dropped into an index: refused, and no file is deleted."""
    media = tmp_path / "holiday"
    media.mkdir()
    for name, src in (("shard-holiday.wav", "1_theo_1.wav"), ("ivf-beach.wav", "2_theo_2.wav"),
                      ("manifest.json.tmp-notes.txt", None), ("dinner.wav", "3_theo_3.wav")):
        if src:
            shutil.copy(raw_data / "fsdd" / "recordings" / src, media / name)
        else:
            (media / name).write_text("my notes")
    before = sorted(p.name for p in media.iterdir())
    code, _, err = run(capsys, "index", "add", media, "--index", media, "--model", "audio-logmel")
    assert code == 1 and "is not empty (dinner.wav, ivf-beach.wav, manifest.json.tmp-notes.txt, shard-holiday.wav)" in err
    assert sorted(p.name for p in media.iterdir()) == before

    ix = tmp_path / "ix"
    code, _, err = run(capsys, "index", "add", media, "--index", ix, "--model", "audio-logmel")
    assert code == 0, err
    for name in ("shard-holiday.wav", "shard-000009.npy", "ivf-000002.faiss"):  # the user's, whatever the name
        shutil.copy(media / "dinner.wav", ix / name)
    code, _, err = run(capsys, "index", "remove", media / "dinner.wav", "--index", ix)
    assert code == 1 and "holds files the index did not write" in err and "shard-holiday.wav" in err
    code, _, err = run(capsys, "index", "add", media, "--index", ix)
    assert code == 1 and "Nothing was changed" in err
    assert {"shard-holiday.wav", "shard-000009.npy", "ivf-000002.faiss"} <= {p.name for p in ix.iterdir()}
    code, out, _ = run(capsys, "search", "--index", ix, "--audio", media / "dinner.wav", "-k", "1")
    assert code == 0 and out.split()[1] == str((media / "dinner.wav").resolve())  # reading still works


def test_a_re_add_prunes_files_deleted_from_disk(tmp_path, raw_data, capsys):
    audio = tmp_path / "audio"
    (audio / "sub").mkdir(parents=True)
    names = ("1_theo_1.wav", "2_theo_2.wav", "sub/3_theo_3.wav", "sub/4_theo_4.wav")
    for name in names:
        shutil.copy(raw_data / "fsdd" / "recordings" / name.split("/")[-1], audio / name)
    other = tmp_path / "other.wav"
    shutil.copy(raw_data / "fsdd" / "recordings" / "5_theo_5.wav", other)
    ix = tmp_path / "ix"
    assert run(capsys, "index", "add", audio, other, "--index", ix, "--model", "audio-logmel")[0] == 0
    (audio / "2_theo_2.wav").unlink()
    shutil.rmtree(audio / "sub")
    other.unlink()  # outside the folder added again: left alone
    code, out, err = run(capsys, "index", "add", audio, "--index", ix)
    assert code == 0, err
    assert "1 unchanged, 0 skipped, 3 pruned (gone from disk)" in out and "2 files, 2 vectors" in out
    code, out, _ = run(capsys, "search", "--index", ix, "--audio", audio / "1_theo_1.wav", "-k", "10")
    assert sorted(line.split()[1] for line in out.splitlines()) == sorted(
        [str((audio / "1_theo_1.wav").resolve()), str(other.resolve())])


def test_a_symlink_loop_is_skipped_with_its_reason(tmp_path, raw_data, capsys):
    audio = tmp_path / "audio"
    audio.mkdir()
    shutil.copy(raw_data / "fsdd" / "recordings" / "1_theo_1.wav", audio / "ok.wav")
    (audio / "self.wav").symlink_to("self.wav")
    (audio / "a.wav").symlink_to("b.wav")
    (audio / "b.wav").symlink_to("a.wav")
    (audio / "dangling.wav").symlink_to(tmp_path / "nowhere.wav")
    ix = tmp_path / "ix"
    code, out, err = run(capsys, "index", "add", audio, "--index", ix, "--model", "audio-logmel")
    assert code == 0, err
    assert "1 added" in out and "4 skipped" in out
    for name in ("self.wav", "a.wav", "b.wav"):
        assert f"skipped {audio / name}: a symbolic link loop" in err
    assert f"skipped {audio / 'dangling.wav'}: a symbolic link to nothing" in err
    code, _, err = run(capsys, "index", "add", audio / "self.wav", "--index", ix)  # named directly: skipped too
    assert code == 0 and "a symbolic link loop" in err
