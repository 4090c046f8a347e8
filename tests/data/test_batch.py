import pytest
import torch

from polymodal.data.batch import Batch, collate, present_any
from polymodal.data.schema import Modality

SCHEMA = (Modality("audio", "audio", (16,), sample_rate=8000), Modality("image", "image", (1, 4, 4)))


def _sample(i, audio=True, image=True):
    return {
        "inputs": {
            "audio": torch.full((16,), float(i)) if audio else None,
            "image": torch.full((1, 4, 4), float(i)) if image else None,
        },
        "label": i % 3,
        "index": i,
    }


def test_collate_zero_fills_missing_and_sets_mask():
    b = collate([_sample(1), _sample(2, audio=False), _sample(3, image=False)], SCHEMA)
    assert b.inputs["audio"].shape == (3, 16) and b.inputs["image"].shape == (3, 1, 4, 4)
    assert b.present["audio"].tolist() == [True, False, True]
    assert b.present["image"].tolist() == [True, True, False]
    assert torch.all(b.inputs["audio"][1] == 0) and torch.all(b.inputs["image"][2] == 0)
    assert b.label.tolist() == [1, 2, 0] and b.index.tolist() == [1, 2, 3]
    assert present_any(b.present).all()
    b.validate(SCHEMA)


def test_collate_all_missing_uses_schema_shape():
    b = collate([_sample(0, audio=False), _sample(1, audio=False)], SCHEMA)
    assert b.inputs["audio"].shape == (2, 16) and not b.present["audio"].any()


def test_collate_shape_mismatch_names_sample():
    s = _sample(7)
    s["inputs"]["audio"] = torch.zeros(15)
    with pytest.raises(ValueError, match=r"sample 7 has 'audio' of shape \(15,\)"):
        collate([_sample(1), s], SCHEMA)


def test_validate_nan_only_in_present_slots():
    b = collate([_sample(1), _sample(2, audio=False)], SCHEMA)
    b.inputs["audio"][1] = float("nan")  # absent slot: never read
    b.validate(SCHEMA)
    b.inputs["image"][0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"input 'image' has NaN/inf in present slot\(s\) at batch rows \[0\] \(dataset indices \[1\]\)"):
        b.validate(SCHEMA)


def test_validate_schema_shape_and_mask():
    b = collate([_sample(1)], SCHEMA)
    wrong = Batch({"audio": torch.zeros(1, 8), "image": b.inputs["image"]}, b.present, b.label, b.index)
    with pytest.raises(ValueError, match=r"input 'audio' has per-sample shape \(8,\); the dataset schema declares \(16,\)"):
        wrong.validate(SCHEMA)
    with pytest.raises(ValueError, match="no presence mask"):
        Batch(b.inputs, {"audio": b.present["audio"]}, b.label, b.index).validate()


def test_select_and_with_absent():
    b = collate([_sample(i) for i in range(4)], SCHEMA)
    s = b.select(torch.tensor([True, False, True, False]))
    assert s.index.tolist() == [0, 2]
    a = b.with_absent(["image"])
    assert not a.present["image"].any() and torch.all(a.inputs["image"] == 0)
    assert b.present["image"].all()  # original untouched


def test_schema_rejects_bad_kind_and_audio_without_rate():
    with pytest.raises(ValueError, match="kind 'smell'"):
        Modality("x", "smell", (1,))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs a sample_rate"):
        Modality("a", "audio", (10,))
