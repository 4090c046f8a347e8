"""The probe's passes over cached features equal each strategy's own prediction on the real model, with every
modality and with each modality alone, so that quantify measures what evaluation measures for every
strategy that predicts the label."""

from __future__ import annotations

import pytest
import torch

from polymodal.data.base import build_dataset
from polymodal.engine.data import make_eval_loader
from polymodal.models import build_model
from polymodal.quantify import Probe
from polymodal.quantify.shapley import exact_shapley
from polymodal.registries import STRATEGIES
from polymodal.tasks import DEFAULT_TASK, TASKS, get_task

from ..strategies._baselines import make_teacher_run


def _task_for(entry) -> str | None:
    for task in (DEFAULT_TASK, *TASKS.names()):
        capabilities = get_task(task).capabilities
        if entry.factory.provides in capabilities and entry.factory.requirements(entry.tiny) <= capabilities:
            return task
    return None


PREDICTING = [n for n in STRATEGIES.names() if STRATEGIES.get(n).factory.provides == "logits"]


@pytest.mark.parametrize("name", PREDICTING)
def test_the_probe_equals_the_strategys_prediction(name, tmp_path):
    entry = STRATEGIES.get(name)
    task = _task_for(entry)
    assert task is not None, name
    torch.manual_seed(0)
    ds = build_dataset("synthetic", "test", size=24, task=task, missing=0.2)
    model = build_model(ds.schema, ds.num_outputs, fusion=entry.factory.default_fusion, width=8)
    kwargs = dict(entry.tiny)
    if name == "umt":  # distils from finished unimodal runs: give it two (untrained) teachers
        teacher = build_model(ds.schema, ds.num_outputs, fusion="late", width=8)
        kwargs["teachers"] = {m: str(make_teacher_run(tmp_path / f"teacher-{m}", teacher)) for m in ds.modalities}
    strategy = STRATEGIES.create(name, **kwargs)
    strategy.setup(model, ds)
    batches = list(make_eval_loader(ds, batch_size=8))
    # as the engine does before every evaluation (MLA's calibrated rule fits its temperatures here)
    strategy.prepare_evaluation(model, lambda: batches, 1, val_batches=lambda: batches)
    model.eval()
    probe = Probe.from_loader(model, strategy, task, ds, make_eval_loader(ds, batch_size=8))
    with torch.no_grad():
        for keep in (["a", "b"], ["a"], ["b"]):
            absent = [m for m in ("a", "b") if m not in keep]
            expected = torch.cat([strategy.predict(model, b.with_absent(absent)).logits for b in batches])
            rows_present = torch.stack([probe.present[m] for m in keep]).any(0)
            got = probe.logits(keep)
            torch.testing.assert_close(got[rows_present], expected[rows_present], atol=1e-5, rtol=1e-5)
            assert torch.equal(got[~rows_present], probe.constant.expand(int((~rows_present).sum()), -1))
    sv = exact_shapley(probe.modalities, lambda s: probe.score(probe.logits(s)))
    assert sv.total() == pytest.approx(probe.score(probe.logits()) - probe.score(probe.logits([])), abs=1e-9)
