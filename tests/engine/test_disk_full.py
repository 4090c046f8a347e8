"""A full disk while a checkpoint is written: a clear message, earlier checkpoints intact, resume works."""

import errno
import json
import os

import pytest

import polymodal.engine.checkpoint as checkpoint_module
from polymodal.cli import main
from polymodal.engine import load_checkpoint, train
from polymodal.engine.loop import CheckpointWriteError
from polymodal.engine.runfolder import LOCK_FILE

from ._helpers import tiny_config

SETTINGS = ["trainer.max_epochs=3", "optim.name=sgd", "optim.scheduler=step", "optim.step_size=1"]


def _fill_disk_at(monkeypatch, call: int) -> None:
    """The ``call``-th tensor file written from now on fails with ENOSPC (two files per checkpoint:
    model and optimizer; epoch 1 writes best and last, so call 5 is epoch 2's first checkpoint)."""
    real, calls = checkpoint_module.save_file, {"n": 0}

    def save_file(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == call:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(*args, **kwargs)

    monkeypatch.setattr(checkpoint_module, "save_file", save_file)


def _outcome(run_dir):
    results = json.loads((run_dir / "results.json").read_text())
    return {k: results[k] for k in ("val", "test", "best_epoch", "epochs_run", "stopped_reason")}


@pytest.mark.parametrize("call", [5, 6])  # epoch 2: the first or the second tensor file of its checkpoint
def test_disk_full_mid_run_then_resume(tmp_path, monkeypatch, call):
    ref = train(tiny_config(tmp_path / "ref", *SETTINGS))
    cfg = tiny_config(tmp_path / "full", *SETTINGS)
    _fill_disk_at(monkeypatch, call)
    with pytest.raises(CheckpointWriteError) as e:
        train(cfg)
    msg = str(e.value)
    assert e.value.errno == errno.ENOSPC
    assert "after epoch 2: the disk is full (errno 28)" in msg and "/checkpoints/" in msg
    assert "intact: best (epoch 1), last (epoch 1)" in msg or "intact: best (epoch 2), last (epoch 1)" in msg
    assert "--resume" in msg and f"name={cfg.run_dir.name}" in msg
    ckpts = cfg.run_dir / "checkpoints"
    assert load_checkpoint(ckpts / "last").state["epoch"] == 1  # the earlier checkpoint, intact
    assert sorted(p.name for p in ckpts.iterdir()) == ["best", "last"]  # no half-written folder left
    assert not (cfg.run_dir / LOCK_FILE).exists() and not (cfg.run_dir / "results.json").exists()

    monkeypatch.undo()
    resumed = train(cfg, resume=True)
    assert resumed.epochs_run == 3
    assert _outcome(cfg.run_dir) == _outcome(ref.run_dir)


def test_disk_full_through_the_cli(tmp_path, monkeypatch, capsys):
    from ._helpers import TINY

    args = ["train", *TINY, f"out_dir={tmp_path}", "name=cli", *SETTINGS]
    _fill_disk_at(monkeypatch, 5)
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: could not write") and "the disk is full" in err and "Traceback" not in err
    monkeypatch.undo()
    assert main([*args, "--resume"]) == 0
