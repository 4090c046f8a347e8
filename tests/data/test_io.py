"""Media readers on real files written here: good files read back, broken ones fail naming the file."""

from __future__ import annotations

import re

import av
import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from polymodal.data.io import MediaError, MediaNotFoundError, read_audio, read_image, read_text, read_video
from polymodal.data.io.audio import parse_wav_header
from polymodal.data.io.video import sample_indices


def _name(path) -> str:
    return re.escape(path.name)


@pytest.fixture
def tone() -> np.ndarray:
    t = np.arange(4000) / 8000
    return (0.5 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)  # 0.5 s at 8 kHz


# ----------------------------------------------------------------------------------------- audio
@pytest.mark.parametrize("fmt", ["WAV", "FLAC"])
def test_audio_round_trip(tmp_path, tone, fmt):
    path = tmp_path / f"tone.{fmt.lower()}"
    sf.write(path, tone, 8000, format=fmt, subtype="PCM_16")
    x, sr = read_audio(path, sample_rate=8000)
    assert sr == 8000 and x.dtype == np.float32 and x.shape == (4000,)
    np.testing.assert_array_equal(x, tone / 32768.0)  # int16 / 32768 exactly


def test_audio_stereo_mono_and_channels(tmp_path, tone):
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([tone, tone // 2], axis=1), 8000, subtype="PCM_16")
    both, _ = read_audio(path, mono=False)
    assert both.shape == (4000, 2)
    mono, _ = read_audio(path)
    np.testing.assert_allclose(mono, both.mean(axis=1), atol=1e-7)


def test_audio_header_is_parsed(tmp_path, tone):
    path = tmp_path / "tone.wav"
    sf.write(path, tone, 8000, subtype="PCM_16")
    h = parse_wav_header(path)
    assert (h.channels, h.sample_rate, h.block_align, h.data_bytes) == (1, 8000, 2, 8000)
    assert h.data_offset + h.data_bytes == path.stat().st_size


def test_audio_missing_file(tmp_path):
    path = tmp_path / "nope.wav"
    with pytest.raises(MediaNotFoundError, match=_name(path)):
        read_audio(path)
    with pytest.raises(FileNotFoundError):  # also a FileNotFoundError for callers that catch that
        read_audio(path)


def test_audio_corrupt_bytes(tmp_path):
    path = tmp_path / "noise.wav"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    with pytest.raises(MediaError, match=f"cannot decode audio file .*{_name(path)}"):
        read_audio(path)


def test_audio_truncated_wav_is_rejected(tmp_path, tone):
    path = tmp_path / "cut.wav"
    sf.write(path, tone, 8000, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert len(sf.read(path)[0]) < len(tone)  # soundfile alone reads it silently
    with pytest.raises(MediaError, match=f"{_name(path)} is truncated: .*4000 frames"):
        read_audio(path)


def test_audio_truncated_flac_is_rejected(tmp_path, tone):
    path = tmp_path / "cut.flac"
    sf.write(path, np.tile(tone, 4), 8000, format="FLAC", subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match=_name(path)):
        read_audio(path)


def test_audio_header_only_wav_is_empty(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, dtype=np.int16), 8000, subtype="PCM_16")
    with pytest.raises(MediaError, match=f"{_name(path)} is empty"):
        read_audio(path)


def test_audio_header_cut_before_data_chunk(tmp_path, tone):
    path = tmp_path / "stub.wav"
    sf.write(path, tone, 8000, subtype="PCM_16")
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(MediaError, match=_name(path)):
        read_audio(path)


def test_audio_wrong_sample_rate(tmp_path, tone):
    path = tmp_path / "tone16k.wav"
    sf.write(path, tone, 16000, subtype="PCM_16")
    with pytest.raises(MediaError, match=f"{_name(path)}: expected 8000 Hz, got 16000 Hz; resample the file"):
        read_audio(path, sample_rate=8000)


def test_audio_resample_keeps_the_tone(tmp_path, tone):
    path = tmp_path / "tone8k.wav"
    sf.write(path, tone, 8000, subtype="PCM_16")
    x, sr = read_audio(path, sample_rate=16000, resample=True)
    assert sr == 16000 and x.shape == (8000,)
    spectrum = np.abs(np.fft.rfft(x[2000:6000]))
    assert np.argmax(spectrum) * 16000 / 4000 == pytest.approx(440, abs=4)  # 440 Hz is still the peak


# ----------------------------------------------------------------------------------------- image
def test_image_png_and_jpg(tmp_path):
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (12, 20), dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "g.png")
    np.testing.assert_array_equal(read_image(tmp_path / "g.png", size=(12, 20)), grey)
    rgb = np.zeros((16, 24, 3), dtype=np.uint8)
    rgb[..., 0] = 200  # flat red survives JPEG almost exactly
    Image.fromarray(rgb).save(tmp_path / "c.jpg", quality=95)
    x = read_image(tmp_path / "c.jpg", mode="RGB")
    assert x.shape == (16, 24, 3) and x.dtype == np.uint8
    assert np.abs(x.astype(int) - rgb).max() <= 3
    assert read_image(tmp_path / "c.jpg").shape == (16, 24)  # grey by default


def test_image_size_mismatch_and_resize(tmp_path):
    path = tmp_path / "g.png"
    Image.fromarray(np.zeros((12, 20), dtype=np.uint8)).save(path)
    with pytest.raises(MediaError, match=f"{_name(path)} is 12x20 .* expected 28x28"):
        read_image(path, size=(28, 28))
    assert read_image(path, size=(28, 28), resize=True).shape == (28, 28)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_image_unreadable(tmp_path, damage):
    path = tmp_path / "bad.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)).save(path)
    data = path.read_bytes()
    path.write_bytes(b"not an image at all" if damage == "garbage" else data[: len(data) // 2])
    with pytest.raises(MediaError, match=f"cannot read image .*{_name(path)}"):
        read_image(path)


def test_image_missing(tmp_path):
    with pytest.raises(MediaNotFoundError, match="x.png"):
        read_image(tmp_path / "x.png")


# ----------------------------------------------------------------------------------------- video
def _write_video(path, frames: np.ndarray, codec: str = "mpeg4") -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=10)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_video_uniform_sampling(tmp_path):
    levels = np.arange(10) * 25  # frame i is a flat grey of 25 * i
    frames = np.repeat(levels.astype(np.uint8)[:, None, None, None], 3, axis=3) * np.ones((1, 32, 48, 3), np.uint8)
    path = tmp_path / "ramp.mp4"
    _write_video(path, frames)
    clip = read_video(path, num_frames=4)
    assert clip.shape == (4, 32, 48, 3) and clip.dtype == np.uint8
    expected = levels[sample_indices(10, 4)]  # frames 1, 3, 6, 8
    np.testing.assert_allclose(clip.reshape(4, -1).mean(axis=1), expected, atol=4)
    small = read_video(path, num_frames=3, size=(16, 24), mode="L")
    assert small.shape == (3, 16, 24, 1)


def test_sample_indices_cover_the_clip():
    assert sample_indices(10, 4).tolist() == [1, 3, 6, 8]
    assert sample_indices(2, 4).tolist() == [0, 0, 1, 1]  # short clips repeat frames


def test_video_errors(tmp_path):
    with pytest.raises(MediaNotFoundError, match="none.mp4"):
        read_video(tmp_path / "none.mp4", num_frames=2)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 100 + b"garbage" * 50)
    with pytest.raises(MediaError, match=f"cannot decode video file .*{_name(junk)}"):
        read_video(junk, num_frames=2)
    with pytest.raises(ValueError, match="num_frames must be >= 1"):
        read_video(junk, num_frames=0)


def test_video_without_frames_or_stream(tmp_path):
    empty = tmp_path / "empty.avi"  # a video stream with zero frames
    with av.open(str(empty), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width = stream.height = 32
        container.start_encoding()
    with pytest.raises(MediaError, match=f"{_name(empty)} has a video stream with 0 frames"):
        read_video(empty, num_frames=2)
    sound = tmp_path / "sound.mp4"  # audio only
    with av.open(str(sound), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    with pytest.raises(MediaError, match=f"{_name(sound)} has no video stream"):
        read_video(sound, num_frames=2)


# ------------------------------------------------------------------------------------------ text
def test_text_round_trip_and_bom(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("héllo\nwörld ✓", encoding="utf-8")
    assert read_text(path) == "héllo\nwörld ✓"
    path.write_bytes(b"\xef\xbb\xbfbom")
    assert read_text(path) == "bom"


def test_text_not_utf8(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("ok\ncafé".encode("latin-1"))
    with pytest.raises(MediaError, match=f"{_name(path)} is not valid UTF-8: byte 6 \\(line 2\\)"):
        read_text(path)
    with pytest.raises(MediaNotFoundError, match="gone.txt"):
        read_text(tmp_path / "gone.txt")
