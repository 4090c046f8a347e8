"""Concept labels from your own table: one manifest column per concept (``concept_columns``)."""

from __future__ import annotations

import pytest
import torch

from polymodal.data.datasets.manifest import from_manifest
from polymodal.models import build_model
from polymodal.reasoning import ConceptBottleneckStrategy

from ..data._byod import write_csv, write_digits


def test_concept_columns_of_a_manifest_supervise_the_concepts(tmp_path):
    rows = write_digits(tmp_path, per_class=3)
    for i, r in enumerate(rows):
        r["digit_audio"] = r["digit"]
        r["digit_image"] = "" if i % 5 == 0 else r["digit"]  # a few rows without the image concept
    path = write_csv(tmp_path / "digits.csv", rows, ["sample", "audio", "image", "digit", "digit_audio", "digit_image"])
    manifest = from_manifest(path, label="digit", schema={"digit_audio": "ignore", "digit_image": "ignore"})
    train = manifest.dataset("train")
    assert set(train.modalities) == {"audio", "image"}
    model = build_model(train.schema, train.num_outputs, fusion="concept_bottleneck", width=8,
                        fusion_args={"concepts": {"audio": {"digit": 10}, "image": {"digit": 10}}})
    strategy = ConceptBottleneckStrategy(mode="independent",
                                         concept_columns={"audio.digit": "digit_audio", "image": "digit_image"})
    strategy.setup(model, train)
    labels = strategy.labels
    assert set(labels) == {"audio.digit", "image.digit"}
    expected = torch.tensor([int(train.labels[i]) for i in range(len(train))])  # class ids are the digits 0..9
    assert train.class_names == tuple(str(d) for d in range(10))
    assert torch.equal(labels["audio.digit"], expected)
    known = labels["image.digit"] >= 0
    assert 0 < int((~known).sum()) < len(train) and torch.equal(labels["image.digit"][known], expected[known])

    bad = ConceptBottleneckStrategy(concept_columns={"audio.digit": "digit_audoi"})
    with pytest.raises(ValueError, match="concept column 'digit_audoi' is not in the manifest"):
        bad.setup(model, train)
    with pytest.raises(ValueError, match="'speech.digit' is not a concept of the model"):
        ConceptBottleneckStrategy(concept_columns={"speech.digit": "digit_audio"}).setup(model, train)
