"""The raw FSDD / MNIST files that tests/_rawdata.py writes from the shipped artifact are the real ones:
every recording's samples as shipped, its original length, 8 kHz 16-bit WAV, and byte-identical MNIST files
(checked against the real raw folder too when it is present)."""

import csv

import numpy as np
import soundfile as sf

from polymodal.data.datasets import avdigits as av
from polymodal.paths import default_data_root

from ._rawdata import FSDD_RECORDINGS, has_raw_data, write_raw_data


def test_raw_files_written_from_the_artifact(tmp_path):
    assert not has_raw_data(tmp_path)
    root = write_raw_data(tmp_path)
    assert has_raw_data(root)
    art = av.load_artifact()
    with (art.path / av.INDEX_FILE).open(newline="", encoding="utf-8") as f:
        source = [int(r["source_samples"]) for r in csv.DictReader(f)]
    folder = root / "fsdd" / "recordings"
    assert sorted(p.name for p in folder.glob("*.wav")) == list(art.files) and len(art.files) == FSDD_RECORDINGS
    longer = [i for i, n in enumerate(source) if n > av.CLIP_SAMPLES]
    for i in [*range(0, FSDD_RECORDINGS, 37), *longer]:
        path = folder / art.files[i]
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.subtype, info.format) == (av.SAMPLE_RATE, 1, "PCM_16", "WAV")
        x, _ = sf.read(path, dtype="int16")
        n = int(art.lengths[i])
        assert len(x) == source[i], art.files[i]
        np.testing.assert_array_equal(x[:n], art.clips[i, :n])
        assert not x[n:].any()  # only the recordings longer than 1 s have a (silent) tail
    assert len(longer) == 20
    for name in (av.MNIST_IMAGES, av.MNIST_LABELS):
        assert (root / "mnist" / name).read_bytes() == (art.path / name).read_bytes()

    real = default_data_root()
    if has_raw_data(real):  # the real recordings, where available: identical except the cut tails
        for i in range(0, FSDD_RECORDINGS, 101):
            if i in longer:
                continue
            ours, _ = sf.read(folder / art.files[i], dtype="int16")
            theirs, _ = sf.read(real / "fsdd" / "recordings" / art.files[i], dtype="int16")
            np.testing.assert_array_equal(ours, theirs)
        for name in (av.MNIST_IMAGES, av.MNIST_LABELS):
            assert (root / "mnist" / name).read_bytes() == (real / "mnist" / name).read_bytes()
