"""Coordinated-representation review fixes: SigLIP starting point, no decay on scalars, deep CCA refit
on the full training embeddings, and `polymodal eval` / `train` on a contrastive run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from polymodal.cli import main
from polymodal.config import OptimConfig
from polymodal.coordinated.losses import DCCALoss, SigLIPLoss, siglip_data_bias
from polymodal.coordinated.strategy import ContrastiveStrategy
from polymodal.engine import train
from polymodal.engine.optim import build_optimizer
from polymodal.tasks import read_predictions

from .test_contrastive import _setup, run_config


def _unit(n: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=-1)


def test_siglip_data_bias_formula_and_first_batch():
    a, b = _unit(16, 8, 0), _unit(16, 8, 1)
    sims = a.double() @ b.double().T
    off = (sims.sum() - sims.diagonal().sum()) / (16 * 15)
    expected = -math.log(15) - 10.0 * float(off)
    assert siglip_data_bias(a, b, math.log(10.0)) == pytest.approx(expected, rel=1e-9)
    loss = SigLIPLoss(init_bias="data")
    assert not bool(loss.bias_initialised)
    loss.eval()
    loss(a, b)  # evaluation never sets it
    assert not bool(loss.bias_initialised)
    loss.train()
    loss(a, b)
    assert float(loss.bias.detach()) == pytest.approx(expected, rel=1e-6) and bool(loss.bias_initialised)
    loss(_unit(16, 8, 2), _unit(16, 8, 3))  # only the first batch sets it
    assert float(loss.bias.detach()) == pytest.approx(expected, rel=1e-6)
    # the start it gives: a negative pair of average cosine has odds 1/(N-1) (probability 1/N)
    p = torch.sigmoid(torch.tensor(10.0 * float(off) + expected, dtype=torch.float64))
    assert float(p) == pytest.approx(1 / 16, rel=1e-9)
    with pytest.raises(ValueError, match="init_bias"):
        SigLIPLoss(init_bias="median")


def test_strategy_passes_init_scale_and_bias_to_the_objective():
    _, model, _, _ = _setup("siglip", init_scale=math.log(5.0), init_bias=-3.0)
    assert float(model.objective.log_scale.detach()) == pytest.approx(math.log(5.0))
    assert float(model.objective.bias.detach()) == pytest.approx(-3.0)
    _, model, strategy, batch = _setup("siglip", init_bias="data")
    assert not bool(model.objective.bias_initialised)
    for bad, match in [({"loss": "clip", "init_bias": -5.0}, "siglip only"),
                       ({"loss": "dcca", "init_scale": 1.0}, "no temperature"),
                       ({"loss": "siglip", "init_bias": "zero"}, "'data'")]:
        with pytest.raises(ValueError, match=match):
            ContrastiveStrategy(**bad)


def test_scalar_parameters_get_no_weight_decay():
    model = nn.Module()
    model.weight = nn.Parameter(torch.ones(3, 2))
    model.log_scale = nn.Parameter(torch.tensor(2.0))
    opt = build_optimizer(OptimConfig(name="adamw", lr=0.1, weight_decay=0.5), model.parameters())
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()  # zero gradients: only weight decay moves a parameter
    assert float(model.log_scale) == 2.0
    assert float(model.weight[0, 0]) == pytest.approx(1 - 0.1 * 0.5)
    # a model without scalars keeps one group (checkpoints of such runs resume as before)
    plain = nn.Linear(2, 2)
    assert len(build_optimizer(OptimConfig(name="sgd", lr=0.1), plain.parameters()).param_groups) == 1


def test_dcca_fit_sets_full_statistics():
    h1, h2 = torch.randn(50, 4, dtype=torch.float64), torch.randn(50, 4, dtype=torch.float64)
    loss = DCCALoss(4, k=2)
    loss.fit(h1, h2)
    x = torch.cat([h1, h2], 1).numpy()
    np.testing.assert_allclose(loss.cov.numpy(), np.cov(x, rowvar=False), rtol=1e-10)
    np.testing.assert_allclose(loss.mean.numpy().reshape(-1), x.mean(0), rtol=1e-10)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        loss.fit(h1[:, :3], h2[:, :3])


def test_dcca_run_is_evaluated_with_the_cca_of_its_full_training_embeddings(tmp_path):
    cfg = run_config(tmp_path, "dcca", loss="dcca", k=4)
    train(cfg)
    from polymodal.engine.runfolder import load_run

    run = load_run(tmp_path / "dcca")
    model, ds = run.model(), run.datasets(["train"])["train"]
    model.eval()
    batch = ds.collate_fn()([ds[i] for i in range(len(ds))])
    with torch.no_grad():
        out = model(batch)
    expected = DCCALoss(8, k=4)
    expected.fit(out.per_modality["audio"].double(), out.per_modality["image"].double())
    # the stored (selected) checkpoint holds the full-training-set statistics, not a moving average
    np.testing.assert_allclose(model.objective.cov.numpy(), expected.cov.numpy(), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(model.objective.mean.numpy(), expected.mean.numpy(), rtol=1e-6, atol=1e-9)
    assert read_predictions(tmp_path / "dcca" / "predictions_test.npz").embeddings["audio"].shape == (60, 4)


def test_cli_eval_and_train_print_contrastive_metrics(tmp_path, capsys):
    cfg = run_config(tmp_path, "clip")
    cfg_file = tmp_path / "clip.yaml"
    assert main(["train", str(cfg_file), f"out_dir={tmp_path}", "name=clip-cli"]) == 0
    printed = capsys.readouterr().out
    assert "audio_to_image_R1" in printed and "on 60 rows" in printed
    assert main(["eval", str(tmp_path / "clip-cli"), "--split", "test"]) == 0
    printed = capsys.readouterr().out
    assert "test metrics" in printed and "audio_to_image_R1" in printed and "image_to_audio_mAP" in printed
    assert cfg.strategy.name == "contrastive"


def test_unseen_class_groups_train_their_own_runs_at_one_budget(tmp_path, monkeypatch):
    from .._benchmarks import load_benchmark

    bench = load_benchmark("coordinated")
    asked: list[tuple[str, list[str], int]] = []

    def fake_train(runs, name, overrides, epochs):
        asked.append((name, list(overrides), epochs))
        return None  # nothing trained: the table is written with no seeds

    monkeypatch.setattr(bench, "train_run", fake_train)
    monkeypatch.setattr(bench, "RESULTS", tmp_path)
    monkeypatch.setattr(bench, "write", lambda *a, **k: None)
    bench.part_unseen(tmp_path, [0, 1], 7)
    names = [a[0] for a in asked]
    assert len(names) == 4 and len(set(names)) == 4
    assert {a[2] for a in asked} == {7}  # one budget for both groups
    retrieval = {f"retrieval-{o}-e7-s{s}" for o in bench.VARIANTS for s in (0, 1)}
    assert not set(names) & retrieval and all(n.startswith("unseen-") and "-e7-" in n for n in names)
    # the group trained on all ten digits has no class restriction; the other is restricted in train and val
    full = [a for a in asked if "all10" in a[0]]
    assert full and all(not any("classes" in o for o in a[1]) for a in full)


def test_retrieval_curves_and_convergence_recompute_from_the_json(tmp_path):
    import json
    from pathlib import Path

    from .._benchmarks import load_benchmark

    bench = load_benchmark("coordinated")
    doc = json.loads((Path(bench.RESULTS) / "retrieval_avdigits.json").read_text())
    if not all("curve" in r for r in doc["runs"]):
        pytest.skip("retrieval_avdigits.json predates per-run learning curves")
    assert bench.convergence(doc["runs"]) == pytest.approx(doc["convergence"])
    png = bench.plot_curves(doc["runs"], tmp_path / "curves.png")
    assert png.stat().st_size > 10_000
    for r in doc["runs"]:  # every run trained its whole budget (early stopping off)
        assert r["curve"]["epoch"] == list(range(1, len(r["curve"]["epoch"]) + 1))
    assert len({len(r["curve"]["epoch"]) for r in doc["runs"]}) == 1
    # the plateau probe's table is rebuilt from its JSON records
    shown = "\n".join(bench.probe_table(doc["plateau_probe"]))
    assert doc["plateau_probe"] and shown in (Path(bench.RESULTS) / "retrieval_avdigits.md").read_text()
