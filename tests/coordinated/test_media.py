"""Media collection for the search index on real files: folder walks, video frames and their timestamps
(a clip written with PyAV from two real photos), damaged files reported as skipped by the index."""

import shutil
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from polymodal.coordinated.bridge import sample_photos
from polymodal.coordinated.embedders import load_embedder
from polymodal.coordinated.index import Index
from polymodal.coordinated.media import collect, file_modality, read_items, video_frame_at, video_frames
from polymodal.data.io import MediaError


def write_clip(path: Path, photos: list[Path], seconds_each: int = 2, rate: int = 5, size=(160, 120)) -> list[np.ndarray]:
    """An H.264 clip showing each photo for ``seconds_each`` seconds; returns the frames shown (RGB arrays)."""
    shown = [np.asarray(Image.open(p).convert("RGB").resize(size)) for p in photos]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for img in shown:
            for _ in range(seconds_each * rate):
                out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(stream.encode())
    return shown


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return sample_photos(tmp_path_factory.mktemp("photos"))


def test_collect_walks_folders_and_reports_what_it_skips(tmp_path, photos, raw_data):
    media = tmp_path / "media"
    (media / "sub" / ".cache").mkdir(parents=True)
    shutil.copy(photos[0], media / "a.JPG")
    Image.open(photos[1]).resize((64, 48)).save(media / "sub" / "b.png")
    shutil.copy(raw_data / "fsdd" / "recordings" / "4_theo_2.wav", media / "sub" / "c.wav")
    (media / "d.txt").write_text("a note about flowers")
    (media / "e.csv").write_text("x\n1\n")
    (media / ".hidden.jpg").write_bytes((media / "a.JPG").read_bytes())
    shutil.copy(photos[0], media / "sub" / ".cache" / "f.jpg")
    found, skipped = collect([media])
    assert [(m.path.name, m.modality) for m in found] == [
        ("a.JPG", "image"), ("d.txt", "text"), ("b.png", "image"), ("c.wav", "audio"),
    ]
    assert [p.name for p in skipped] == ["e.csv"]
    found_again, _ = collect([media / "a.JPG", media])  # a file named twice is collected once
    assert len(found_again) == 4
    with pytest.raises(FileNotFoundError, match="nowhere: no such file or folder"):
        collect([media / "nowhere"])
    assert file_modality("x.MP4") == "video" and file_modality("x.flac") == "audio" and file_modality("x.gif") is None


def test_video_frames_at_a_rate_with_timestamps(tmp_path, photos):
    shown = write_clip(tmp_path / "clip.mp4", photos[:2])  # 0-2 s first photo, 2-4 s second photo
    frames = video_frames(tmp_path / "clip.mp4", fps=1.0)
    assert [t for t, _ in frames] == [0.0, 1.0, 2.0, 3.0]
    frames = video_frames(tmp_path / "clip.mp4", fps=2.5)  # every second frame of a 5 fps clip
    assert [t for t, _ in frames] == pytest.approx([0.4 * i for i in range(10)])

    def nearest(img) -> int:
        a = np.asarray(img, dtype=np.float32)
        return int(np.argmin([np.abs(a - s).mean() for s in shown]))

    assert [nearest(img) for _, img in video_frames(tmp_path / "clip.mp4", fps=1.0)] == [0, 0, 1, 1]
    assert nearest(video_frame_at(tmp_path / "clip.mp4", 2.5)) == 1 and nearest(video_frame_at(tmp_path / "clip.mp4", 99)) == 1
    items = read_items(collect([tmp_path / "clip.mp4"])[0][0], fps=0.5)
    assert [(i.modality, i.timestamp) for i in items] == [("video", 0.0), ("video", 2.0)]
    with pytest.raises(ValueError, match="--fps 0"):
        video_frames(tmp_path / "clip.mp4", fps=0)


def test_damaged_files_are_skipped_with_their_reason(tmp_path, raw_data):
    folder = tmp_path / "audio"
    folder.mkdir()
    good = shutil.copy(raw_data / "fsdd" / "recordings" / "1_lucas_3.wav", folder / "good.wav")
    data = Path(good).read_bytes()
    (folder / "truncated.wav").write_bytes(data[: len(data) // 2])
    (folder / "garbage.wav").write_bytes(b"RIFF not really a wave file")
    with pytest.raises(MediaError, match="truncated"):
        read_items(collect([folder / "truncated.wav"])[0][0])
    model = load_embedder("audio-logmel")
    index = Index.create(tmp_path / "ix", model.model_id, model.dim)
    report = index.add([folder], model)
    assert [Path(p).name for p in report.added] == ["good.wav"]
    reasons = {Path(p).name: why for p, why in report.skipped}
    assert set(reasons) == {"truncated.wav", "garbage.wav"} and "truncated" in reasons["truncated.wav"]
    with pytest.raises(MediaError):
        index.add([folder / "garbage.wav"], model, on_error="raise")
