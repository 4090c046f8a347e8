"""digitstrings: the strings are the concatenation of the artifact's clips and images, boundaries included,
under the AV-digits splits (no recording or image of one split in another's strings), seeded."""

import numpy as np
import pytest

from polymodal.data.base import build_dataset
from polymodal.data.datasets.avdigits import IMAGE_POOLS, RECORDINGS, load_artifact
from polymodal.data.datasets.digitstrings import HOP, MAX_DIGITS, MIN_DIGITS, PAD, DigitStrings
from polymodal.tasks import get_task


@pytest.fixture(scope="module")
def splits():
    return {s: DigitStrings(s, strings=40, cache_features=False) for s in ("train", "val", "test")}


def test_audio_and_image_are_the_concatenation_and_the_boundaries_match(splits):
    art = load_artifact()
    ds = splits["test"]
    wave, image = ds.tensor("audio").numpy(), ds.tensor("image").numpy()
    for i in range(len(ds)):
        n = int(ds.lengths[i])
        assert MIN_DIGITS <= n <= MAX_DIGITS and ds.texts[i] == "".join(map(str, ds.labels[i, :n]))
        assert (ds.labels[i, n:] == PAD).all() and (ds.boundaries[i, n:] == PAD).all()
        for k in range(n):
            start, end = ds.boundaries[i, k]
            clip = ds.clips[i, k]
            assert art.digits[clip] == ds.labels[i, k] == art.image_labels[ds.image_rows[i, k]]
            assert end - start == art.lengths[clip]
            np.testing.assert_array_equal(wave[i, start:end], (art.clips[clip, : end - start] / 32768.0).astype(np.float32))
            np.testing.assert_array_equal(image[i, 0, :, 28 * k : 28 * k + 28], (art.images[ds.image_rows[i, k]] / 255.0).astype(np.float32))
            if k:  # a silence of 50-150 ms between two digits
                gap = start - ds.boundaries[i, k - 1, 1]
                assert 400 <= gap <= 1200 and not wave[i, ds.boundaries[i, k - 1, 1] : start].any()
        assert ds.audio_samples[i] == ds.boundaries[i, n - 1, 1] and not wave[i, ds.audio_samples[i]:].any()
        assert not image[i, 0, :, 28 * n :].any()
        frames = ds.digit_frames(i)
        assert frames[0] == 0 and frames[-1] == n - 1 and sorted(set(frames) - {PAD}) == list(range(n))
        assert all(ds.boundaries[i, frames[t], 0] <= t * HOP < ds.boundaries[i, frames[t], 1]
                   for t in range(len(frames)) if frames[t] != PAD)


def test_no_recording_or_image_is_shared_between_splits(splits):
    art = load_artifact()
    files = {s: {f for fs in ds.files for f in fs} for s, ds in splits.items()}
    rows = {s: set(ds.image_rows[ds.image_rows != PAD].tolist()) for s, ds in splits.items()}
    for a, b in (("train", "test"), ("train", "val"), ("val", "test")):
        assert not files[a] & files[b] and not rows[a] & rows[b]
    for s, ds in splits.items():
        recording = {int(f.rsplit("_", 1)[1].removesuffix(".wav")) for f in files[s]}
        assert recording <= set(RECORDINGS[s])
        lo, hi = IMAGE_POOLS[s]
        assert all(lo <= r < hi for r in rows[s])
        assert {art.files[c] for c in ds.clips[ds.clips != PAD]} == files[s]


def test_the_strings_are_seeded_and_served_as_sequence_targets():
    a, b = DigitStrings("val", strings=5, cache_features=False), DigitStrings("val", strings=5, cache_features=False)
    assert a.texts == b.texts and a.files == b.files
    ds = build_dataset("digitstrings", "val", strings=5)
    assert ds.texts == a.texts and ds.schema[0].representation == "logmel" and ds.schema[0].shape[0] == 40
    get_task(ds.task).check_labels(ds.labels, ds.num_outputs)
    with pytest.raises(ValueError, match="strings"):
        DigitStrings("val", strings=0)
    with pytest.raises(TypeError, match="unknown option"):
        build_dataset("digitstrings", "val", string=5)
