import numpy as np
import pytest
import torch
from lightning_fabric import Fabric

from polymodal.data.datasets.synthetic import SyntheticDataset
from polymodal.engine.data import make_loader
from polymodal.engine.evaluate import collect_outputs, compute_metrics, load_predictions, save_predictions
from polymodal.models import build_model
from polymodal.strategies.joint import Joint


class NeedsAll(Joint):
    """A strategy whose prediction cannot run with a modality absent."""

    def predict(self, model, batch):
        if not all(bool(p.all()) for p in batch.present.values()):
            raise ValueError("this fusion needs every modality")
        return model(batch)


def _setup(missing=0.0):
    torch.manual_seed(0)
    ds = SyntheticDataset("test", size=21, missing=missing)
    model = build_model(ds.schema, 4, fusion="late", width=8)
    fabric = Fabric(accelerator="cpu", devices=1)
    loader = fabric.setup_dataloaders(make_loader(ds, batch_size=8, seed=0, shuffle=False),
                                      use_distributed_sampler=False)
    return ds, fabric, fabric.setup_module(model), loader


def test_outputs_match_a_naive_loop_and_metrics():
    ds, fabric, model, loader = _setup(missing=0.3)
    out = collect_outputs(fabric, model, Joint(), loader, ds.schema)
    np.testing.assert_array_equal(out.index, np.arange(21))
    assert out.logits.shape == (21, 4) and set(out.per_modality) == {"a", "b"}
    model.eval()
    with torch.no_grad():
        for i in (0, 7, 20):
            batch = ds.collate_fn()([ds[i]])
            np.testing.assert_allclose(out.logits[i], model(batch).logits[0].numpy(), atol=1e-5)
            alone = model(batch.with_absent(["b"])).logits[0].numpy()
            np.testing.assert_allclose(out.per_modality["a"][i], alone, atol=1e-5)
    metrics = compute_metrics(out, ["a", "b"])
    rows = out.present["a"]
    assert metrics["a_acc"] == pytest.approx(float((out.per_modality["a"][rows].argmax(1) == out.label[rows]).mean()))
    assert metrics["fused_acc"] == pytest.approx(float((out.logits.argmax(1) == out.label).mean()))
    assert metrics["loss"] == pytest.approx(
        float(torch.nn.functional.cross_entropy(torch.from_numpy(out.logits), torch.from_numpy(out.label))))
    assert metrics["n"] == 21 and not rows.all()


def test_fusion_that_cannot_run_alone_reports_none(tmp_path):
    ds, fabric, model, loader = _setup()
    out = collect_outputs(fabric, model, NeedsAll(), loader, ds.schema)
    assert out.per_modality == {}
    metrics = compute_metrics(out, ["a", "b"])
    assert metrics["a_acc"] is None and metrics["b_acc"] is None and metrics["fused_acc"] is not None
    save_predictions(tmp_path / "p.npz", out, ds.class_names)
    preds = load_predictions(tmp_path / "p.npz")
    assert preds.per_modality == {} and preds.class_names == ds.class_names


def test_predictions_file_round_trip(tmp_path):
    ds, fabric, model, loader = _setup(missing=0.3)
    out = collect_outputs(fabric, model, Joint(), loader, ds.schema)
    save_predictions(tmp_path / "p.npz", out, ds.class_names)
    preds = load_predictions(tmp_path / "p.npz")
    np.testing.assert_allclose(preds.probs.sum(1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(preds.y_true, out.label)
    assert set(preds.per_modality) == {"a", "b"}
    with np.load(tmp_path / "p.npz") as z:
        np.testing.assert_array_equal(z["present_a"], out.present["a"])
