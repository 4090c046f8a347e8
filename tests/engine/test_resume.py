import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from polymodal.engine import load_checkpoint, train

from ._helpers import Interrupted, Interruptible, tiny_config

TESTS_DIR = Path(__file__).resolve().parent.parent


def _outcome(run_dir: Path) -> dict:
    results = json.loads((run_dir / "results.json").read_text())
    return {k: results[k] for k in ("val", "test", "best_epoch", "epochs_run", "stopped_reason")}


def _timeless(history):
    return [{k: v for k, v in r.items() if k not in ("sec_per_epoch", "samples_per_sec")} for r in history]


# momentum SGD, dropout, a step schedule and balanced sampling: every piece of state must be restored
STATEFUL = ["trainer.max_epochs=3", "optim.name=sgd", "optim.scheduler=step", "optim.step_size=1",
            "optim.gamma=0.7", "data.balanced_sampling=true", "model.encoders.a.dropout=0.2"]


def test_interrupted_and_resumed_equals_uninterrupted(tmp_path, test_components):
    ref = train(tiny_config(tmp_path / "ref", "strategy.name=test-interruptible", *STATEFUL))
    cfg = tiny_config(tmp_path / "cut", "strategy.name=test-interruptible", *STATEFUL)
    Interruptible.at = (1, 3)  # crash in the middle of the second epoch
    try:
        with pytest.raises(Interrupted):
            train(cfg)
    finally:
        Interruptible.at = None
    assert load_checkpoint(cfg.run_dir / "checkpoints" / "last").state["epoch"] == 1
    assert not (cfg.run_dir / "results.json").exists()
    resumed = train(cfg, resume=True)
    assert resumed.metrics == ref.metrics and resumed.val_metrics == ref.val_metrics
    assert resumed.best_epoch == ref.best_epoch and resumed.epochs_run == 3
    assert _timeless(resumed.history) == _timeless(ref.history)
    assert _outcome(cfg.run_dir) == _outcome(ref.run_dir)
    epochs = [json.loads(x)["epoch"] for x in (cfg.run_dir / "metrics.jsonl").read_text().splitlines()
              if json.loads(x)["type"] == "epoch"]
    assert epochs == [1, 2, 3]

    # resuming a finished run trains nothing more and reports the same
    again = train(cfg, resume=True)
    assert again.metrics == ref.metrics and again.epochs_run == 3


def test_resume_with_more_epochs_continues(tmp_path):
    cfg = tiny_config(tmp_path, "trainer.max_epochs=2")
    train(cfg)
    longer = tiny_config(tmp_path, "trainer.max_epochs=3")
    with pytest.warns(UserWarning, match="trainer.max_epochs"):
        result = train(longer, resume=True)
    assert result.epochs_run == 3 and [r["epoch"] for r in result.history] == [1, 2, 3]


SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests_dir!r})
    from engine._helpers import register_test_components, tiny_config
    from polymodal.engine import train
    register_test_components()
    train(tiny_config({out_dir!r}, *{overrides!r}))
    """
)


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume(tmp_path, test_components):
    # 12 steps of ~0.05 s: an epoch lasts ~0.6 s, long enough to be killed in the middle of one
    overrides = [*STATEFUL, "data.batch_size=8", "strategy.name=test-slow-joint", "strategy.args={sleep: 0.05}"]
    ref = train(tiny_config(tmp_path / "ref", *overrides[:-2], "strategy.name=test-slow-joint",
                            "strategy.args={sleep: 0.0}"))
    out_dir = tmp_path / "killed"
    script = SCRIPT.format(tests_dir=str(TESTS_DIR), out_dir=str(out_dir), overrides=overrides)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    metrics = out_dir / "run" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    try:
        while not (metrics.is_file() and metrics.read_text().count('"type": "epoch"') >= 1):
            if proc.poll() is not None:
                pytest.fail(f"training process ended early:\n{proc.stdout.read().decode()}")
            if time.monotonic() > deadline:
                pytest.fail("training process wrote no epoch within 120 s")
            time.sleep(0.02)
        time.sleep(0.25)  # into the second epoch
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert metrics.read_text().count('"type": "epoch"') == 1, "the kill should land in the second epoch"
    assert not (out_dir / "run" / "results.json").exists()

    resumed = train(tiny_config(out_dir, *overrides), resume=True)
    assert resumed.metrics == ref.metrics and resumed.val_metrics == ref.val_metrics
    assert _outcome(out_dir / "run") == _outcome(ref.run_dir)
    assert _timeless(resumed.history) == _timeless(ref.history)
