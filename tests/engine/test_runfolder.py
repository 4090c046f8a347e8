"""One writer per run folder (run.lock), and no folder left behind by a failed start."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from polymodal.engine import train
from polymodal.engine.runfolder import LOCK_FILE, RunLocked, read_lock, remove_unfinished_run, run_folder

from ._helpers import tiny_config

TINY_CLI = ["data.dataset=synthetic", "strategy.name=joint", "trainer.progress=false", "trainer.num_threads=1",
            "trainer.patience=null", "model.width=8", "data.batch_size=16", "data.eval_batch_size=64"]
# ~200 steps per epoch: a run that holds its lock for a few seconds
LONG = ["data.split_options={train: {size: 3200}}", "trainer.max_epochs=4"]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _cli(out_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "polymodal", "train", *TINY_CLI, f"out_dir={out_dir}", *args]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write_lock(run_dir: Path, **info) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    info = {"host": socket.gethostname(), "started": "2026-01-01T00:00:00+00:00", "time": time.time(),
            "command": ["polymodal", "train"], **info}
    (run_dir / LOCK_FILE).write_text(json.dumps(info))


@pytest.mark.slow
def test_two_trainings_with_one_name_started_together(tmp_path):
    procs = {seed: subprocess.Popen(_cli(tmp_path, "name=same", f"seed={seed}", *LONG), env=_env(),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for seed in (1, 2)}
    outs = {seed: p.communicate(timeout=600) for seed, p in procs.items()}
    codes = {seed: p.returncode for seed, p in procs.items()}
    winners = [s for s, c in codes.items() if c == 0]
    assert len(winners) == 1, (codes, outs)
    winner, loser = winners[0], 3 - winners[0]
    err = outs[loser][1]
    assert codes[loser] == 1
    assert "is being written by another process" in err and f"PID {procs[winner].pid} " in err, err
    assert f"host {socket.gethostname()}" in err and "Traceback" not in err
    run = tmp_path / "same"
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["seed"] == winner  # the folder is the winner's alone
    assert json.loads((run / "provenance.json").read_text())["seed"] == winner
    assert json.loads((run / "results.json").read_text())["epochs_run"] == 4
    assert not (run / LOCK_FILE).exists()


@pytest.mark.slow
def test_killed_run_leaves_a_stale_lock_that_resume_takes_over(tmp_path):
    proc = subprocess.Popen(_cli(tmp_path, "name=killed", *LONG), env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = tmp_path / "killed" / "metrics.jsonl"
    deadline = time.monotonic() + 300
    try:
        while not (metrics.is_file() and '"type": "epoch"' in metrics.read_text()):
            assert proc.poll() is None, "training ended before it could be killed"
            assert time.monotonic() < deadline, "no epoch within 300 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    lock = read_lock(tmp_path / "killed")
    assert lock is not None and lock["pid"] == proc.pid and lock["host"] == socket.gethostname()

    done = subprocess.run(_cli(tmp_path, "name=killed", *LONG, "--resume"), env=_env(), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert f"locked by PID {proc.pid} " in done.stderr and "no longer runs" in done.stderr
    assert json.loads((tmp_path / "killed" / "results.json").read_text())["epochs_run"] == 4
    assert not (tmp_path / "killed" / LOCK_FILE).exists()


def test_a_live_lock_refuses_and_names_its_holder(tmp_path):
    cfg = tiny_config(tmp_path, "trainer.max_epochs=1")
    _write_lock(cfg.run_dir, pid=os.getppid(), started="2026-02-03T04:05:06+00:00")  # a live process
    with pytest.raises(RunLocked, match=rf"PID {os.getppid()} on host .* since 2026-02-03T04:05:06") as e:
        train(cfg)
    assert f"delete {cfg.run_dir / LOCK_FILE}" in str(e.value) and "name=..." in str(e.value)
    assert not (cfg.run_dir / "config.yaml").exists()  # nothing written into the other writer's folder
    assert read_lock(cfg.run_dir)["pid"] == os.getppid()  # its lock is left alone


def test_a_lock_from_another_host_is_never_taken_over(tmp_path):
    cfg = tiny_config(tmp_path, "trainer.max_epochs=1")
    _write_lock(cfg.run_dir, pid=_dead_pid(), host="some-other-host")
    with pytest.raises(RunLocked, match="on host some-other-host .*another host: its PID cannot be checked"):
        train(cfg)


def test_a_stale_lock_is_reported_and_taken_over(tmp_path, capsys):
    cfg = tiny_config(tmp_path, "trainer.max_epochs=1")
    dead = _dead_pid()
    _write_lock(cfg.run_dir, pid=dead)
    result = train(cfg)
    assert result.epochs_run == 1
    assert f"locked by PID {dead} " in capsys.readouterr().err
    assert not (cfg.run_dir / LOCK_FILE).exists()


def test_a_reused_pid_that_started_after_the_lock_does_not_hold_it(tmp_path):
    cfg = tiny_config(tmp_path, "trainer.max_epochs=1")
    # our parent process runs, but it started long before this lock's time: not the holder
    _write_lock(cfg.run_dir, pid=os.getppid(), time=0.0)
    assert train(cfg).epochs_run == 1


def test_lock_is_released_on_error_and_reentrant(tmp_path, test_components):
    from ._helpers import Interrupted, Interruptible

    cfg = tiny_config(tmp_path, "trainer.max_epochs=2", "strategy.name=test-interruptible")
    Interruptible.at = (1, 0)
    try:
        with pytest.raises(Interrupted):
            train(cfg)
    finally:
        Interruptible.at = None
    assert not (cfg.run_dir / LOCK_FILE).exists()  # released on the error
    assert (cfg.run_dir / "checkpoints" / "last").is_dir()  # a started run is kept
    with run_folder(cfg.run_dir) as held:  # the same process may train inside its own lock
        assert read_lock(cfg.run_dir)["pid"] == os.getpid()
        train(cfg, resume=True)
        assert (cfg.run_dir / LOCK_FILE).exists() and held is not None
    assert not (cfg.run_dir / LOCK_FILE).exists()


def test_a_failed_start_leaves_no_folder(tmp_path):
    cfg = tiny_config(tmp_path, "trainer.max_epochs=1", "strategy.name=mla", "model.fusion=late")
    with pytest.raises(ValueError, match="model.fusion=shared_head"):
        train(cfg)
    assert not cfg.run_dir.exists()
    bad_data = tiny_config(tmp_path, "trainer.max_epochs=1", "name=empty", "data.split_options={val: {size: 0}}")
    with pytest.raises(ValueError, match="is empty"):
        train(bad_data)
    assert not bad_data.run_dir.exists()
    assert not any(tmp_path.iterdir())


def test_a_failed_start_never_removes_an_existing_folder(tmp_path):
    cfg = tiny_config(tmp_path, "trainer.max_epochs=1", "strategy.name=mla", "model.fusion=late")
    cfg.run_dir.mkdir(parents=True)
    (cfg.run_dir / "notes.txt").write_text("mine")
    with pytest.raises(ValueError):
        train(cfg)
    assert (cfg.run_dir / "notes.txt").read_text() == "mine" and not (cfg.run_dir / LOCK_FILE).exists()


def test_predictor_fit_that_fails_before_training_leaves_no_folder(tmp_path):
    import pandas as pd

    from polymodal import Predictor

    table = tmp_path / "t.csv"
    pd.DataFrame({"x": [0.1, 0.2, 0.3] * 10, "y": ["a", "b", "c"] * 10}).to_csv(table, index=False)
    schema = tmp_path / "schema.yaml"
    schema.write_text("x: !!python/object:os.system numeric\n")
    run = tmp_path / "runs" / "p"
    with pytest.raises(Exception, match="tag"):
        Predictor(label="y", path=run, schema=schema).fit(table, max_epochs=1)
    assert not run.exists()
    with pytest.raises(Exception, match="no_such_column"):
        Predictor(label="no_such_column", path=run).fit(table, max_epochs=1)
    assert not run.exists()


def test_predictor_fit_refuses_a_folder_another_process_writes(tmp_path):
    import pandas as pd

    from polymodal import Predictor

    run = tmp_path / "p"
    _write_lock(run, pid=os.getppid())
    with pytest.raises(RunLocked, match=f"PID {os.getppid()} "):
        Predictor(label="y", path=run).fit(pd.DataFrame({"x": [1.0, 2.0], "y": ["a", "b"]}), max_epochs=1)
    assert sorted(p.name for p in run.iterdir()) == [LOCK_FILE]


def test_bench_does_not_remove_a_run_another_process_writes(tmp_path):
    from polymodal.bench.runner import Job, run_jobs

    run = tmp_path / "job"
    _write_lock(run, pid=os.getppid())
    (run / "metrics.jsonl").write_text("")
    with pytest.raises(RunLocked, match=f"PID {os.getppid()} "):
        run_jobs([Job("job", tuple(TINY_CLI))], tmp_path, processes=1, log=lambda *_: None)
    assert sorted(p.name for p in run.iterdir()) == ["metrics.jsonl", LOCK_FILE]
    _write_lock(run, pid=_dead_pid())  # a killed run: removed and restarted
    remove_unfinished_run(run)
    assert not run.exists()


def test_resume_of_a_run_that_does_not_exist_is_an_error(tmp_path):
    cfg = tiny_config(tmp_path, "trainer.max_epochs=1", "name=nothere")
    with pytest.raises(FileNotFoundError, match="nothing to resume.*drop --resume"):
        train(cfg, resume=True)
    assert not cfg.run_dir.exists()
