"""trainer.channels_last: the same training in channels_last memory format."""

import json

import pytest
import torch

from polymodal.config import load_config
from polymodal.engine import train

SHORT = ["data.dataset=avdigits-hard", "strategy.name=mla", "model.fusion=shared_head", "model.width=8",
         "trainer.max_epochs=1", "trainer.max_steps_per_epoch=4", "trainer.progress=false", "trainer.num_threads=1",
         "trainer.patience=null"]


@pytest.mark.slow
def test_channels_last_trains_to_the_same_numbers(tmp_path):
    runs = {}
    for flag in ("false", "true"):
        res = train(load_config(None, [*SHORT, f"trainer.channels_last={flag}", f"out_dir={tmp_path}", f"name=cl-{flag}"]))
        runs[flag] = json.loads((res.run_dir / "results.json").read_text())
    for split in ("val", "test"):
        assert runs["true"][split]["loss"] == pytest.approx(runs["false"][split]["loss"], rel=1e-3)
        assert abs(runs["true"][split]["fused_acc"] - runs["false"][split]["fused_acc"]) <= 2 / 300


def test_the_model_keeps_its_conv_weights_channels_last():
    from polymodal.data.base import build_dataset
    from polymodal.engine.build import build_run_model, build_strategy

    cfg = load_config(None, [*SHORT, "trainer.channels_last=true"])
    ds = build_dataset("avdigits-hard", "val")
    model = build_run_model(cfg, ds, build_strategy(cfg))
    convs = [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert model.channels_last


def test_resnet18_towers_give_the_same_outputs_and_gradients_in_channels_last():
    from polymodal.data.batch import Batch
    from polymodal.data.schema import Modality
    from polymodal.models import build_model

    schema = (Modality("audio", "audio", (129, 63), 8000, "stft", extra={"stft": {"n_fft": 256, "hop_length": 128,
                                                                                "eps": 1e-7, "pad_mode": "reflect"}}),
              Modality("image", "image", (1, 28, 28), representation="pixels"))
    enc = {"audio": {"name": "audio_resnet18", "stem": "standard", "front": "stft", "standardize": False},
           "image": {"name": "image_resnet18", "stem": "standard", "normalize": [0.449, 0.226], "replicate": 3}}
    torch.manual_seed(0)
    plain = build_model(schema, 10, fusion="shared_head", encoders=enc, width=32)
    fast = build_model(schema, 10, fusion="shared_head", encoders=enc, width=32)
    fast.load_state_dict(plain.state_dict())
    fast.use_channels_last()
    g = torch.Generator().manual_seed(1)
    batch = Batch(inputs={"audio": torch.randn(6, 129, 63, generator=g) - 5, "image": torch.rand(6, 1, 28, 28, generator=g)},
                  present={"audio": torch.ones(6, dtype=torch.bool), "image": torch.ones(6, dtype=torch.bool)},
                  label=torch.arange(6), index=torch.arange(6))
    outs = []
    for model in (plain, fast):
        model.train()
        out = model(batch)
        torch.nn.functional.cross_entropy(out.logits, batch.label).backward()
        outs.append((out.logits.detach(), [p.grad.detach().contiguous() for p in model.parameters()]))
    assert torch.allclose(outs[0][0], outs[1][0], atol=1e-4, rtol=1e-4)
    for a, b in zip(outs[0][1], outs[1][1], strict=True):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-3)


def test_a_one_channel_stem_still_gives_channels_last_activations():
    """A (16, 1, 3, 3) kernel counts as contiguous in both formats; only explicit channels_last strides make
    the convolution's output, and so every later layer, channels_last (else the pooling runs ~3x slower)."""
    from polymodal.engine.build import build_datasets, build_run_model, build_strategy

    cfg = load_config(None, [*SHORT, "trainer.channels_last=true"])
    train_ds = build_datasets(cfg)["train"]
    model = build_run_model(cfg, train_ds, build_strategy(cfg)).use_channels_last()
    seen = []
    pools = [m for m in model.modules() if isinstance(m, torch.nn.MaxPool2d)]
    hooks = [m.register_forward_pre_hook(lambda _m, args: seen.append(args[0])) for m in pools]
    batch = train_ds.collate_fn()([train_ds[i] for i in range(4)])
    model(batch)
    for h in hooks:
        h.remove()
    assert pools and seen
    assert all(x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous() for x in seen)
