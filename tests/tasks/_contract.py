"""What every registered task must do, checked on its tiny variant (``Task.example_outputs``): used by the
TASKS-parametrised test and by the toy task's test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from polymodal.tasks import TASKS, Task, get_task, read_predictions, to_predictions, write_predictions


def _as_tensors(out) -> tuple[torch.Tensor | dict[str, torch.Tensor], torch.Tensor]:
    """The model-side view of collected outputs: the logits (or the task's other columns) and the targets."""
    output = {k: torch.from_numpy(v) for k, v in out.columns.items()} if out.columns else torch.from_numpy(out.logits)
    return output, torch.from_numpy(out.label)


def check_task_contract(task: Task, tmp_path: Path) -> None:
    assert task.name in TASKS and get_task(task.name) == task
    assert task != task.name  # a task is not its name: code asks the task, it does not compare names
    assert TASKS.get(task.name).summary, f"task {task.name} has no docstring summary"
    assert task.monitor and task.mode in ("max", "min")
    modalities = ["a", "b"]
    out = task.example_outputs(n=24, modalities=modalities)
    assert out.label.dtype == np.dtype(task.label_dtype)
    # the labels of the example pass the task's own label check (what datasets are held to)
    task.check_labels(out.label, out.logits.shape[1] if out.logits.shape[1] else len(np.unique(out.label)), "example")
    alone = task.modalities_alone(modalities)

    # metrics over the whole split: the monitor, a loss, n, and per-modality keys for every modality
    metrics = task.metrics(out, modalities)
    assert metrics["n"] == 24 and np.isfinite(metrics["loss"]) and np.isfinite(metrics[task.monitor])
    if alone:
        for m in modalities:
            assert any(k.startswith(f"{m}_") for k in metrics), (task.name, m, sorted(metrics))
    # ... and the same numbers from the predictions object the report reads
    pred = task.predictions(out, ())
    assert pred.task == task.name
    summary = task.summarize(pred)
    assert summary[task.monitor] == metrics[task.monitor]

    # a per-modality metric is taken over the rows where the modality is present: the absent rows' outputs
    # do not change it
    if alone:
        scrambled = task.example_outputs(n=24, modalities=modalities)
        rows = ~scrambled.present["a"]
        scrambled.per_modality["a"][rows] = scrambled.per_modality["a"][rows][::-1] * 3 + 1
        key = next(k for k in metrics if k.startswith("a_"))
        assert task.metrics(scrambled, modalities)[key] == metrics[key]

    # the selection rule follows the mode; ties keep the earlier epoch
    better, worse = (0.9, 0.1) if task.mode == "max" else (0.1, 0.9)
    assert task.is_improvement(better, worse) and not task.is_improvement(worse, better)
    assert task.is_improvement(worse, None) and not task.is_improvement(better, better)
    assert task.selection == f"val {task.monitor}"

    # the loss: a finite scalar with a gradient; with no row selected, a zero still connected to the output
    output, target = _as_tensors(out)
    leaves = [output] if isinstance(output, torch.Tensor) else list(output.values())
    for t in leaves:
        t.requires_grad_(True)
    loss = task.loss(output, target)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert all(t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0 for t in leaves)
    none = task.loss(output, target, rows=torch.zeros(len(target), dtype=torch.bool))
    assert none.item() == 0.0 and none.requires_grad

    # the predictions file round-trips, names its task, gives the same metrics back, and keeps the extras
    out.extras = {"probe.score": np.arange(len(out.index), dtype=np.float32)}
    pred = to_predictions(out, ())
    path = write_predictions(pred, tmp_path / "predictions_test.npz")
    with np.load(path) as z:
        assert str(z["task"]) == task.name
    back = read_predictions(path)
    assert type(back) is type(pred)
    assert task.summarize(back) == summary
    np.testing.assert_array_equal(back.index, out.index)
    np.testing.assert_array_equal(back.extras["probe.score"], out.extras["probe.score"])

    # the report: a results table, a section about the test predictions, its figures as files
    table = task.results_table({"val": metrics, "test": metrics})
    assert table[0].startswith("| metric") and len(table) > 3
    section = task.report_section(back, tmp_path)
    assert any(line.startswith("## ") for line in section)
    for path, alt in task.figures(back, tmp_path / "figures").values():
        assert path.is_file() and path.stat().st_size > 0 and alt
