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
