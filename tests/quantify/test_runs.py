"""polymodal quantify on small real runs: the probe reproduces the engine's evaluation, the report's numbers
hold their defining identities (Shapley efficiency, EMAP of an additive model, robustness curves that start
at the clean result), every task and a three-modality and a manifest run are quantified, and bad input gets
a clear message."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

import polymodal
from polymodal.cli import main
from polymodal.quantify import Probe, QuantifyError
from polymodal.quantify.interactions import emap_logits
from polymodal.quantify.probe import check_labels

SHORT = ["trainer.progress=false", "trainer.num_threads=1", "trainer.patience=null", "model.width=16"]
FAST = ["--levels", "3", "--emap-partners", "32", "--clusters", "5"]


def _train(out: Path, name: str, *args: str) -> Path:
    assert main(["train", *args, *SHORT, f"out_dir={out}", f"name={name}"]) == 0
    return out / name


@pytest.fixture(scope="module")
def joint_run(tmp_path_factory) -> Path:
    """Joint training of late fusion (the sum of per-modality heads) on AV-digits, 2 epochs on 600 pairs."""
    return _train(tmp_path_factory.mktemp("q"), "joint", "data.dataset=avdigits", "strategy.name=joint",
                  "model.fusion=late", "data.split_options.train.pairs=600", "trainer.max_epochs=2")


def test_the_probe_reproduces_the_engines_evaluation(joint_run):
    run = polymodal.load_run(joint_run)
    probe = Probe.from_run(run, "test")
    test = run.results["test"]
    full = probe.metrics(probe.logits())
    assert full["fused_acc"] == pytest.approx(test["fused_acc"], abs=1e-9)
    assert full["loss"] == pytest.approx(test["loss"], rel=1e-4)
    for m in ("audio", "image"):  # the engine's unimodal accuracy: every other modality marked absent
        assert probe.metrics(probe.logits([m]))["fused_acc"] == pytest.approx(test[f"{m}_acc"], abs=1e-9)
    # the empty coalition is one constant prediction for every row
    empty = probe.logits([])
    assert torch.equal(empty, probe.constant.expand_as(empty))


def test_the_report_and_its_identities(joint_run, capsys):
    assert main(["quantify", str(joint_run), *FAST]) == 0
    printed = capsys.readouterr().out
    assert "Shapley values (fused_acc, exact)" in printed and "report:" in printed
    for name in ("quantify.md", "quantify.html", "quantify.json", "quantify_test.npz"):
        assert (joint_run / name).is_file(), name
    md = (joint_run / "quantify.md").read_text()
    for section in ("Every subset of modalities", "Shapley values", "partial information decomposition", "EMAP",
                    "Perceptual score", "Imbalance over training", "Robustness", "Complexity", "Representation geometry"):
        assert section in md, section
    figures = sorted(p.name for p in (joint_run / "quantify_figures").glob("*.png"))
    assert figures == ["geometry.png", "imbalance.png", "pid.png", "robustness.png", "shapley.png", "subsets.png"]
    html = (joint_run / "quantify.html").read_text()
    assert html.count("data:image/png;base64,") == 6 and "<table>" in html

    d = json.loads((joint_run / "quantify.json").read_text())
    results = json.loads((joint_run / "results.json").read_text())["test"]
    subsets = d["subset_scores"]
    assert set(subsets) == {"", "audio", "image", "audio+image"}
    assert subsets["audio+image"] == pytest.approx(results["fused_acc"], abs=1e-9)
    sv = d["shapley"]
    assert sv["method"] == "exact"
    assert sum(sv["phi"].values()) == pytest.approx(subsets["audio+image"] - subsets[""], abs=1e-9)
    # two players: phi_a = (v(a) - v(0) + v(ab) - v(b)) / 2
    assert sv["phi"]["audio"] == pytest.approx((subsets["audio"] - subsets[""] + subsets["audio+image"] - subsets["image"]) / 2)
    assert sum(d["deciding"].values()) == pytest.approx(1.0)
    # robustness: at zero noise and at missing rate 0 the curves start at the clean result
    for m in ("audio", "image"):
        assert d["noise"][m]["values"][0] == pytest.approx(results["fused_acc"], abs=1e-9)
        assert d["missing"][m]["values"][0] == pytest.approx(results["fused_acc"], abs=1e-9)
        other = "image" if m == "audio" else "audio"
        assert d["missing"][m]["values"][-1] == pytest.approx(subsets[other], abs=1e-9)  # rate 1: the other alone
        assert d["noise"][m]["effective"] is not None
    pid = d["pid"]["audio+image"]
    assert pid["redundancy"] + pid["unique1"] + pid["unique2"] + pid["synergy"] == pytest.approx(pid["mi_joint"], abs=1e-6)
    assert d["complexity"]["params"]["total"] == sum(v for k, v in d["complexity"]["params"].items() if k != "total")
    assert d["complexity"]["flops_per_sample"] > 0 and d["complexity"]["peak_bytes"] > 0
    assert len(d["imbalance"]["epochs"]) == 2 and set(d["imbalance"]["grad_ratio"]) == {"audio", "image"}

    # per-sample Shapley values travel as extras of a predictions file, and sum to v_i(full) - v_i(empty)
    from polymodal.tasks import read_predictions

    pred = read_predictions(joint_run / "quantify_test.npz")
    phi = pred.extras["shapley.audio"] + pred.extras["shapley.image"]
    run = polymodal.load_run(joint_run)
    probe = Probe.from_run(run, "test")
    gap = probe.sample_values(probe.logits()) - probe.sample_values(probe.logits([]))
    np.testing.assert_allclose(phi, gap[probe.order.numpy()], atol=1e-5)
    assert np.array_equal(pred.index, np.sort(probe.index.numpy()))


def test_emap_of_an_additive_model_is_the_model(joint_run):
    """Late fusion sums per-modality logits: the model is additive, so its EMAP projection is itself."""
    probe = Probe.from_run(polymodal.load_run(joint_run), "test")
    full = probe.logits()
    for partners in (16, 300):
        torch.testing.assert_close(emap_logits(probe, partners=partners), full, atol=1e-4, rtol=1e-4)
    q = polymodal.quantify(joint_run, sections=["emap", "perceptual"], emap_partners=40, perceptual_permutations=2)
    assert q.emap is not None and q.emap.gap == pytest.approx(0.0, abs=1e-9)
    assert set(q.perceptual.drop) == {"audio", "image"}


def test_a_three_modality_run_has_three_shapley_values(tmp_path, capsys):
    run_dir = _train(tmp_path, "three", "data.dataset=avdigits-3view", "strategy.name=joint", "model.fusion=late",
                     "data.split_options.train.pairs=300", "trainer.max_epochs=1")
    capsys.readouterr()
    # the command shows the three values and the PID of every pair
    assert main(["quantify", str(run_dir), "--sections", "subsets,shapley,pid", "--clusters", "4"]) == 0
    printed = capsys.readouterr().out
    shown = re.search(r"Shapley values \(fused_acc, exact\): audio ([-+.\d]+), image ([-+.\d]+), image2 ([-+.\d]+)",
                      printed)
    assert shown is not None, printed
    assert printed.count("PID ") == 3 and "report:" in printed
    d = json.loads((run_dir / "quantify.json").read_text())
    for m, value in zip(("audio", "image", "image2"), shown.groups(), strict=True):
        assert float(value) == pytest.approx(d["shapley"]["phi"][m], abs=5e-5)
    q = polymodal.quantify(run_dir, sections=["subsets", "shapley", "pid"], pid_clusters=4)
    assert q.modalities == ["audio", "image", "image2"] and len(q.subsets) == 8
    assert set(q.shapley["phi"]) == {"audio", "image", "image2"} and q.shapley["method"] == "exact"
    assert q.shapley["sum"] == pytest.approx(q.shapley["full_minus_empty"], abs=1e-9)
    assert set(q.pid) == {"audio+image", "audio+image2", "image+image2"}


@pytest.mark.parametrize("task", ["regression", "multilabel", "survival"])
def test_every_task_is_quantified_with_its_own_metric(tmp_path, task):
    run_dir = _train(tmp_path, task, "data.dataset=synthetic", f"data.options.task={task}", "strategy.name=joint",
                     "model.fusion=late", "trainer.max_epochs=2", "model.width=8")
    run = polymodal.load_run(run_dir)
    q = polymodal.quantify(run, sections=["subsets", "shapley", "pid", "emap", "robustness"], levels=3,
                           emap_partners=16, pid_clusters=3)
    monitor = run.task.monitor
    assert q.monitor == monitor and all(monitor in m for m in q.subsets.values())
    assert q.score == (monitor if run.task.mode == "max" else f"-{monitor}")
    assert q.subsets["a+b"][monitor] == pytest.approx(run.results["test"][monitor], rel=1e-5, abs=1e-6)
    assert q.shapley["sum"] == pytest.approx(q.shapley["full_minus_empty"], abs=1e-9)
    assert q.noise["a"].values[0] == pytest.approx(q.subset_scores["a+b"], abs=1e-9)
    assert q.pid and q.emap is not None


def test_a_manifest_run_with_a_tabular_modality(tmp_path, capsys):
    from polymodal.datasets import example_manifest

    manifest = example_manifest(tmp_path / "example")
    run_dir = _train(tmp_path, "table", f"data.manifest={manifest}", "data.label=digit", "data.options.id=id",
                     "strategy.name=joint", "model.fusion=late", "trainer.max_epochs=1", "model.width=8")
    q = polymodal.quantify(run_dir, sections=["subsets", "shapley", "robustness"], levels=3)
    kinds = {m.name: m.kind for m in q._probe.dataset.schema}
    assert "tabular" in kinds.values() and "text" in kinds.values()
    assert set(q.shapley["phi"]) == set(kinds) and set(q.noise) == set(kinds)
    for curve in q.noise.values():
        assert curve.values[0] == pytest.approx(q.subset_scores["+".join(q.modalities)], abs=1e-9)
    # and through the command, which shows one Shapley value per modality
    capsys.readouterr()
    assert main(["quantify", str(run_dir), "--sections", "subsets,shapley,robustness", "--levels", "3"]) == 0
    printed = capsys.readouterr().out
    assert "Shapley values (fused_acc, exact): " in printed
    assert all(f"{m} {q.shapley['phi'][m]:+.4f}" in printed for m in q.modalities), printed
    assert (run_dir / "quantify.md").is_file()


def test_bad_input_gets_a_clear_message(joint_run, tmp_path, capsys):
    # a folder without the best checkpoint
    broken = tmp_path / "no-ckpt"
    shutil.copytree(joint_run, broken)
    (broken / "checkpoints" / "best" / "model.safetensors").unlink()
    assert main(["quantify", str(broken)]) == 1
    assert "no best checkpoint" in capsys.readouterr().err
    # a run of another version whose checkpoint does not fit the model its config describes today
    other = tmp_path / "other-version"
    shutil.copytree(joint_run, other)
    cfg = yaml.safe_load((other / "config.yaml").read_text())
    cfg["model"]["width"] = 24
    (other / "config.yaml").write_text(yaml.safe_dump(cfg))
    prov = json.loads((other / "provenance.json").read_text())
    prov["versions"]["polymodal"] = "0.0.9"
    (other / "provenance.json").write_text(json.dumps(prov))
    with pytest.raises(QuantifyError, match=r"written by polymodal 0\.0\.9"):
        polymodal.quantify(other)
    # a split without labels
    with pytest.raises(QuantifyError, match="2 of 3 rows without a label"):
        check_labels(SimpleNamespace(labels=np.zeros(3), has_label=np.array([True, False, False])), "test")
    # unknown sections
    with pytest.raises(ValueError, match="unknown sections"):
        polymodal.quantify(joint_run, sections=["shapely"])


def test_a_fusion_that_cannot_drop_a_modality_is_named():
    from polymodal.data.base import build_dataset
    from polymodal.engine.data import make_eval_loader
    from polymodal.fusion.base import FusionOutput
    from polymodal.models import build_model
    from polymodal.registries import STRATEGIES

    ds = build_dataset("synthetic", "test")
    model = build_model(ds.schema, ds.num_outputs, fusion="late", width=8)

    class NeedsAll(torch.nn.Module):
        input_level = "pooled"

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, features, present):
            if not all(bool(p.all()) for p in present.values()):
                raise ValueError("every modality must be present")
            out = self.inner(features, present)
            return FusionOutput(out.logits, None)

    model.fusion = NeedsAll(model.fusion)
    strategy = STRATEGIES.create("joint")
    strategy.setup(model, ds)
    probe = Probe.from_loader(model, strategy, "classification", ds, make_eval_loader(ds, batch_size=16))
    assert probe.logits().shape == (len(ds), ds.num_outputs)
    with pytest.raises(QuantifyError, match="cannot predict with b absent.*NeedsAll.*can drop a modality"):
        probe.logits(["a"])
