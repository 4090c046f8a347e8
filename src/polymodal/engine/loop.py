"""The training loop on Lightning Fabric: ``train(cfg, resume=False) -> TrainResult``.

One run = one folder ``cfg.run_dir`` holding ``config.yaml``, ``provenance.json``, ``metrics.jsonl``,
``checkpoints/{best,last}``, ``logs/`` (Fabric loggers), ``predictions_{val,test}.npz`` and
``results.json``; while a process trains into it, ``run.lock`` names that process, and a second writer
is refused (:mod:`polymodal.engine.runfolder`). ``config.yaml`` and ``provenance.json`` are written only
once the data, the model and (on resume) the checkpoint have passed their checks, and a start that fails
before that leaves no folder behind. Epochs are selected on the dataset's task's validation metric
(:attr:`polymodal.tasks.Task.monitor`: the HIGHEST fused accuracy for classification, the LOWEST RMSE for
regression; ties keep the earlier epoch); early stopping counts the epochs without such an improvement.
``results.json`` names the criterion (``"selection"``).

Conventions: ``data.batch_size`` is per process (the global batch is ``batch_size * devices``);
strategies see 0-based epoch indices (``ctx.epoch``, ``on_epoch_start``) while the records count
finished epochs from 1. Every rank is seeded with ``cfg.seed``; only rank 0 writes files.
"""

from __future__ import annotations

import errno
import logging
import time
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
import yaml
from lightning_fabric import Fabric
from lightning_fabric.strategies import DDPStrategy

from polymodal.config import RunConfig, dump_config
from polymodal.data.batch import Batch
from polymodal.engine.build import (
    build_datasets,
    build_run_model,
    build_strategy,
    check_task,
    resolved_strategy_args,
)
from polymodal.engine.checkpoint import (
    CHECKPOINTS_DIR,
    Checkpoint,
    DamagedRunFile,
    check_training_state,
    checkpoint_dir,
    checkpoint_exists,
    load_checkpoint,
    load_model_state,
    model_file,
    save_checkpoint,
)
from polymodal.engine.data import make_eval_loader, make_loader
from polymodal.engine.evaluate import EvalOutputs, collect_outputs, compute_metrics, save_predictions
from polymodal.engine.logging import EpochProgress, MetricsLog, build_loggers, scalars
from polymodal.engine.optim import build_optimizer, build_scheduler
from polymodal.engine.results import (
    TrainingDiverged,
    TrainResult,
    provenance,
    write_provenance,
    write_results,
)
from polymodal.engine.runfolder import CONFIG_FILE, predictions_file, run_folder
from polymodal.engine.seeding import rng_state, seed_everything, set_rng_state
from polymodal.engine.step import NonFiniteLoss, Stepper
from polymodal.runpaths import RunPaths
from polymodal.tasks import Task, get_task, task_of, write_task_state

log = logging.getLogger(__name__)

def selection_name(task: str | Task) -> str:
    """What results.json records as ``"selection"`` (the task's :attr:`~polymodal.tasks.Task.selection`):
    ``"val fused_acc"`` or ``"val rmse"``."""
    return get_task(task).selection


def is_improvement(task: str | Task, value: float | None, best: float | None) -> bool:
    """Whether ``value`` beats ``best`` (None: nothing yet) under ``task``'s criterion; ties do not."""
    return get_task(task).is_improvement(value, best)


def make_fabric(cfg: RunConfig) -> Fabric:
    """Fabric from ``cfg.trainer``: DDP (``find_unused_parameters=True``, since alternating strategies
    leave parameters unused) whenever ``strategy`` is ddp/ddp_spawn or ``devices > 1``."""
    t = cfg.trainer
    if t.precision == "16-mixed" and t.accelerator == "cpu":
        warnings.warn("trainer.precision=16-mixed on CPU runs as bf16-mixed (Lightning Fabric's rule)", stacklevel=2)
    strategy: Any = "auto"
    if t.strategy != "auto" or t.devices > 1:
        strategy = DDPStrategy(start_method="spawn" if t.strategy == "ddp_spawn" else "popen",
                               find_unused_parameters=True)
    return Fabric(accelerator=t.accelerator, devices=t.devices, strategy=strategy, precision=t.precision,
                  loggers=build_loggers(cfg.run_dir, t.loggers))


def train(cfg: RunConfig, *, resume: bool = False) -> TrainResult:
    """Train ``cfg`` into ``cfg.run_dir`` and evaluate the best checkpoint on val and test.

    resume: continue from ``checkpoints/last`` (the same final metrics as an uninterrupted run);
            without it, a run folder that already holds checkpoints is an error.
    Raises :class:`TrainingDiverged` (with ``.result``) when the training loss becomes NaN/inf.
    ``trainer.strategy=ddp`` re-launches the current command line per rank (Fabric's rule): use it
    from a script or the CLI; ``ddp_spawn`` works from anywhere with a picklable config.
    """
    last, best = checkpoint_dir(cfg.run_dir, "last"), checkpoint_dir(cfg.run_dir, "best")
    if resume and not ((cfg.run_dir / CONFIG_FILE).is_file() or checkpoint_exists(last)):
        raise FileNotFoundError(
            f"nothing to resume: {cfg.run_dir} is not a run folder (no config.yaml, no checkpoint); check the run "
            f"name (name=..., out_dir=...), or drop --resume to start a new training"
        )
    with run_folder(cfg.run_dir):
        if not resume and (checkpoint_exists(last) or checkpoint_exists(best)):
            raise FileExistsError(
                f"run folder {cfg.run_dir} already holds checkpoints; use --resume or choose another name "
                f"(name=...)"
            )
        fabric = make_fabric(cfg)
        if cfg.trainer.strategy == "ddp_spawn":
            result = fabric.launch(_run, cfg, resume)
        else:
            fabric.launch()
            result = _run(fabric, cfg, resume)
    if result.stopped_reason == "nan_loss":
        raise TrainingDiverged(result.message, result)
    return result


class CheckpointWriteError(OSError):
    """A checkpoint (or another run file) could not be written, e.g. the disk is full; the checkpoints
    written before are intact and the run can be resumed once the cause is fixed."""

    def __str__(self) -> str:  # the message alone, without OSError's "[Errno 28]" prefix
        return str(self.strerror)


class _Run:
    """State of one training process (one rank)."""

    def __init__(self, fabric: Fabric, cfg: RunConfig, resume: bool = False) -> None:
        self.fabric, self.cfg = fabric, cfg
        self.run_dir: Path = cfg.run_dir
        self.ckpt_dir = self.run_dir / CHECKPOINTS_DIR
        self.rank0 = fabric.is_global_zero
        t = cfg.trainer
        seed_everything(cfg.seed, deterministic=t.deterministic, num_threads=t.num_threads)
        self.strategy = build_strategy(cfg)  # first: bad strategy arguments stop before any data is read
        self.datasets = build_datasets(cfg, use_stored_splits=resume)  # a resumed run keeps its rows' splits
        train_ds = self.datasets["train"]
        self.schema = train_ds.schema
        self.modalities = [m.name for m in self.schema]
        self.task = task_of(train_ds)
        check_task(cfg, train_ds, self.strategy)
        if cfg.model.fusion is None:  # record the strategy's choice in the run's resolved config
            self.cfg = cfg = cfg.model_copy(deep=True)
            cfg.model.fusion = self.strategy.default_fusion
        self.raw_model = build_run_model(cfg, train_ds, self.strategy)
        self.strategy.setup(self.raw_model, train_ds)
        self.raw_optimizer = build_optimizer(cfg.optim, self.raw_model.parameters())
        self.scheduler = build_scheduler(cfg.optim, self.raw_optimizer, t.max_epochs)
        self.model, self.optimizer = fabric.setup(self.raw_model, self.raw_optimizer)
        d, rank, world = cfg.data, fabric.global_rank, fabric.world_size
        # a strategy may draw the training rows with its own weights (co-learning: a share of labelled rows)
        own_weights = self.strategy.train_sample_weights(train_ds)
        origin = (f"strategy {cfg.strategy.name!r} ({self.strategy.sample_weights_key or 'its train_sample_weights'})")
        train_loader = make_loader(train_ds, batch_size=d.batch_size, seed=cfg.seed, shuffle=True,
                                   num_workers=d.num_workers, balanced=d.balanced_sampling,
                                   sample_weights=own_weights, weights_origin=origin, rank=rank, world_size=world)
        self.train_sampler = train_loader.sampler
        self.loaders = {"train": fabric.setup_dataloaders(train_loader, use_distributed_sampler=False)}
        for split in ("val", "test"):
            loader = make_eval_loader(self.datasets[split], batch_size=d.eval_batch_size, order=d.eval_order,
                                      fusion_rule=self.strategy.fusion_rule, num_workers=d.num_workers, rank=rank,
                                      world_size=world)
            self.loaders[split] = fabric.setup_dataloaders(loader, use_distributed_sampler=False)
        weights = self.task.class_weights(train_ds.labels, train_ds.num_outputs) if d.class_weights else None
        self.class_weights = None if weights is None else weights.to(fabric.device)
        self.extra = {"fabric": fabric}
        self.stepper = Stepper(fabric, self.model, self.optimizer, accumulate=cfg.optim.accumulate,
                               grad_clip=cfg.optim.grad_clip)
        self.log = MetricsLog(self.run_dir)
        self.state: dict[str, Any] = {"epoch": 0, "global_step": 0, "best_metric": None, "best_epoch": None,
                                      "bad_epochs": 0, "stopped_reason": None, "history": []}

    # -- start / resume -------------------------------------------------------------------------
    def start(self, resume: bool) -> None:
        """Load the checkpoint to resume (every check first), then write config.yaml, the dataset's run
        files and provenance.json: a resume that fails leaves the run's files as they were."""
        last = checkpoint_dir(self.run_dir, "last")
        if resume and checkpoint_exists(last):
            self._resume_from(last)
        elif resume:
            log.info("no checkpoint to resume in %s; starting from scratch", self.ckpt_dir)
        if self.rank0:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if resume:
                self._warn_config_changes()
            # what a dataset keeps with the run (a manifest: its fitted state, the split of every row, its check)
            for fname, text in getattr(self.datasets["train"], "run_files", dict)().items():
                (self.run_dir / fname).write_text(text)
            write_provenance(self.run_dir, provenance(self.datasets, {
                "seed": self.cfg.seed, "world_size": self.fabric.world_size, "resumed": resume,
                "precision": self.cfg.trainer.precision, "accelerator": self.cfg.trainer.accelerator,
                "strategy_args": resolved_strategy_args(self.cfg),
            }))
            (self.run_dir / CONFIG_FILE).write_text(dump_config(self.cfg))  # last: it marks a started run
        if self.rank0:
            self.log.reset()
            for record in self.state["history"]:
                self.log.append(record)
        self.fabric.barrier()

    def _resume_from(self, last: Path) -> None:
        ckpt = load_checkpoint(last, map_location=self.fabric.device)
        state_file = RunPaths(self.run_dir).state("last")
        check_training_state(ckpt.state, state_file)
        load_model_state(self.raw_model, ckpt.model, model_file(self.run_dir, "last"), self.run_dir / CONFIG_FILE)
        parts = [("optimizer", self.raw_optimizer, ckpt.optimizer, ckpt.optimizer is not None),
                 ("scheduler", self.scheduler, ckpt.scheduler, self.scheduler is not None and ckpt.scheduler is not None),
                 ("strategy", self.strategy, ckpt.strategy, True)]
        for name, target, value, present in parts:
            if not present:
                continue
            try:
                if name == "optimizer":  # torch accepts another optimiser's groups and fails at the first step
                    saved = {k for g in value["param_groups"] for k in g} - {"params"}
                    own = {k for g in target.state_dict()["param_groups"] for k in g} - {"params"}
                    if saved != own:
                        raise ValueError(f"it was written by another optimiser (its settings {sorted(saved - own)} "
                                         f"are not this optimiser's, {sorted(own - saved)} are missing)")
                target.load_state_dict(value)  # type: ignore[union-attr]
            except (ValueError, KeyError, TypeError, RuntimeError, AttributeError, IndexError) as e:
                raise DamagedRunFile(
                    state_file, f"its {name} state does not fit this run's {name} ({type(e).__name__}: {e})",
                    f"resume with the settings the run was trained with (optim.*, strategy.*; see {self.run_dir} "
                    f"/config.yaml), or train a new run (name=...)",
                ) from None
        rng = ckpt.state.pop("rng")
        self.state.update(ckpt.state)
        self.stepper.optimizer_steps = int(self.state["global_step"])
        try:
            set_rng_state(rng)  # last: nothing between here and the next epoch draws random numbers
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise DamagedRunFile(state_file, f"its 'rng' entry cannot be restored ({type(e).__name__}: {e})",
                                 "restore the file from a copy of the run, or train a new run (name=...)") from None
        log.info("resuming %s after epoch %d", self.run_dir, self.state["epoch"])

    def _warn_config_changes(self) -> None:
        path = self.run_dir / CONFIG_FILE
        if not path.is_file():
            return
        try:
            old = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError:
            old = None
        if not isinstance(old, dict):
            warnings.warn(f"resuming {self.run_dir}: its config.yaml cannot be read and is replaced by the settings "
                          "given now", stacklevel=3)
            return
        new = yaml.safe_load(dump_config(self.cfg))
        changed = [f"{s}.{k}" for s in new if isinstance(new[s], dict)
                   for k in new[s] if (old.get(s) or {}).get(k) != new[s][k]]
        changed += [k for k in new if not isinstance(new[k], dict) and old.get(k) != new[k]]
        if changed:
            note = ("; the optimiser and scheduler states (learning rate included) come from the checkpoint, so "
                    "optim.* changes take effect only in a new run" if any(c.startswith("optim.") for c in changed)
                    else "")
            warnings.warn(f"resuming {self.run_dir} with changed settings: {', '.join(changed)}{note}", stacklevel=3)

    # -- one epoch ------------------------------------------------------------------------------
    def train_epoch(self, epoch_idx: int) -> dict[str, Any]:
        cfg, fabric, model = self.cfg, self.fabric, self.model
        self.train_sampler.select_epoch(epoch_idx)
        self.strategy.on_epoch_start(model, epoch_idx)
        model.train()
        loader = self.loaders["train"]
        n_batches = len(loader)
        if cfg.trainer.max_steps_per_epoch is not None:
            n_batches = min(n_batches, cfg.trainer.max_steps_per_epoch)
        lr = float(self.optimizer.param_groups[0]["lr"])
        sums: dict[str, list[float]] = {}
        samples, t0 = 0, time.perf_counter()
        progress = EpochProgress(cfg.trainer.progress and self.rank0, epoch_idx + 1, cfg.trainer.max_epochs, n_batches)
        try:
            for batch_idx, batch in enumerate(loader):
                if batch_idx >= n_batches:
                    break
                batch.validate(self.schema)
                ctx = self.stepper.context(epoch_idx, batch_idx, n_batches, self.extra, self.class_weights)
                out = self.strategy.training_step(model, batch, ctx)
                for k, v in out.items():
                    if v is not None:
                        acc = sums.setdefault(k, [0.0, 0.0])
                        acc[0] += float(v)
                        acc[1] += 1.0
                samples += batch.size
                loss = sums.get("loss", [0.0, 1.0])
                progress.update(loss[0] / max(loss[1], 1.0), samples * fabric.world_size / (time.perf_counter() - t0))
            self.stepper.flush()
        finally:
            progress.close()
        train_time = time.perf_counter() - t0
        means = self._reduce_means(sums)
        record: dict[str, Any] = {"type": "epoch", "epoch": epoch_idx + 1}
        record.update({f"train/{k}": v for k, v in means.items()})
        record["lr"] = lr
        record["samples_per_sec"] = samples * fabric.world_size / max(train_time, 1e-9)
        return record

    def _reduce_means(self, sums: dict[str, list[float]]) -> dict[str, float]:
        """Per-key mean over the epoch's steps and over ranks (keys united across ranks)."""
        keys = sorted(sums)
        if self.fabric.world_size > 1:
            gathered: list[Any] = [None] * self.fabric.world_size
            torch.distributed.all_gather_object(gathered, keys)
            keys = sorted(set().union(*gathered))
            t = torch.tensor([sums.get(k, [0.0, 0.0]) for k in keys], dtype=torch.float64, device=self.fabric.device)
            t = self.fabric.all_reduce(t.reshape(-1, 2), reduce_op="sum")
            return {k: float(s / c) if c > 0 else float("nan") for k, (s, c) in zip(keys, t.tolist(), strict=True)}
        return {k: sums[k][0] / sums[k][1] for k in keys}

    def _train_batches(self) -> Iterable[Batch]:
        """The training split in dataset order, for Strategy.prepare_evaluation and a task fitted on the
        training split (built on first use)."""
        if "train_eval" not in self.loaders:
            d = self.cfg.data
            loader = make_eval_loader(self.datasets["train"], batch_size=d.eval_batch_size, order="dataset",
                                      num_workers=d.num_workers, rank=self.fabric.global_rank,
                                      world_size=self.fabric.world_size)
            self.loaders["train_eval"] = self.fabric.setup_dataloaders(loader, use_distributed_sampler=False)
        return self.loaders["train_eval"]

    def collect(self, split: str) -> EvalOutputs:
        """The model's outputs on ``split`` (the training split in dataset order); the strategy prepares first,
        offered the training and validation splits (never the test split)."""
        self.strategy.prepare_evaluation(self.model, self._train_batches, self.fabric.world_size,
                                         val_batches=lambda: self.loaders["val"])
        loader = self._train_batches() if split == "train" else self.loaders[split]
        return collect_outputs(self.fabric, self.model, self.strategy, loader, self.schema, task=self.task.name)

    def evaluate(self, split: str) -> tuple[EvalOutputs, dict[str, Any]]:
        out = self.collect(split)
        return out, compute_metrics(out, self.modalities)

    def snapshot(self) -> Checkpoint:
        state = dict(self.state, rng=rng_state())
        return Checkpoint(
            model=self.raw_model.state_dict(),
            optimizer=self.raw_optimizer.state_dict(),
            scheduler=self.scheduler.state_dict() if self.scheduler is not None else None,
            strategy=self.strategy.state_dict(),
            state=state,
        )

    # -- the whole run --------------------------------------------------------------------------
    def fit(self) -> tuple[str, str]:
        """Epoch loop; returns (stopped_reason, message)."""
        cfg, st = self.cfg, self.state
        patience = cfg.trainer.patience
        if st["stopped_reason"] == "early_stopping" and patience is not None and st["bad_epochs"] >= patience:
            return "early_stopping", ""
        for epoch_idx in range(st["epoch"], cfg.trainer.max_epochs):
            t0 = time.perf_counter()
            try:
                record = self.train_epoch(epoch_idx)
            except NonFiniteLoss as e:
                return "nan_loss", self._record_nan(epoch_idx, e)
            _, val = self.evaluate("val")
            record.update({f"val/{k}": v for k, v in val.items() if k != "n"})
            key = self.task.monitor
            improved = self.task.is_improvement(val[key], st["best_metric"])
            if improved:
                st.update(best_metric=val[key], best_epoch=epoch_idx + 1, bad_epochs=0)
            else:
                st["bad_epochs"] += 1
            if self.scheduler is not None:
                self.scheduler.step()
            stopped = "early_stopping" if patience is not None and st["bad_epochs"] >= patience else None
            record.update(step=self.stepper.optimizer_steps, best=improved,
                          sec_per_epoch=time.perf_counter() - t0)
            st.update(epoch=epoch_idx + 1, global_step=self.stepper.optimizer_steps, stopped_reason=stopped)
            st["history"] = [*st["history"], record]
            if self.rank0:
                self._write_epoch(record, improved, epoch_idx + 1)
            self.fabric.barrier()
            self._log_epoch(record)
            if stopped:
                return stopped, ""
        return "max_epochs", ""

    def _write_epoch(self, record: dict[str, Any], improved: bool, epoch: int) -> None:
        """Checkpoints (best when improved, then last) and the epoch's record; a write that fails (a full
        disk) stops the run with a message that says which checkpoints are intact and how to resume."""
        ckpt = self.snapshot()
        target = checkpoint_dir(self.run_dir, "best")
        try:
            if improved:
                save_checkpoint(target, ckpt)
            target = checkpoint_dir(self.run_dir, "last")
            save_checkpoint(target, ckpt)
            target = self.log.path
            self.log.append(record)
        except OSError as e:
            raise self._write_failed(target, epoch, e) from e
        self.fabric.log_dict(scalars(record), step=epoch)

    def _write_failed(self, target: Path, epoch: int, e: OSError) -> CheckpointWriteError:
        what = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded"}.get(
            e.errno or 0, f"{type(e).__name__}: {e.strerror or e}")
        intact = []
        for name in ("best", "last"):
            path = checkpoint_dir(self.run_dir, name)
            if checkpoint_exists(path):
                try:
                    intact.append(f"{name} (epoch {load_checkpoint(path).state.get('epoch')})")
                except (DamagedRunFile, OSError):
                    pass
        kept = (f"the checkpoints written before are intact: {', '.join(intact)}" if intact
                else "no checkpoint had been written yet")
        msg = (f"could not write {target} after epoch {epoch}: {what} (errno {e.errno}); {kept}. Free space "
               f"in {self.run_dir.parent} and continue with the same command plus --resume (name={self.run_dir.name}"
               f"{'' if self.run_dir.parent == Path('runs') else f' out_dir={self.run_dir.parent}'}); "
               "the epochs after the last checkpoint are trained again")
        log.error(msg)
        return CheckpointWriteError(e.errno or 0, msg)

    def _record_nan(self, epoch_idx: int, e: NonFiniteLoss) -> str:
        batch_idx = e.batch_idx
        msg = (
            f"training loss became {e.value} at epoch {epoch_idx + 1} (0-based index {epoch_idx}), batch "
            f"{batch_idx}, after {self.stepper.optimizer_steps} optimiser steps; nothing was stepped and the "
            f"checkpoints in {self.ckpt_dir} are those of the last finished epoch. Lower optim.lr (now "
            f"{self.cfg.optim.lr}) or set optim.grad_clip (e.g. optim.grad_clip=1.0) and start a new run "
            f"(name=...)"
        )
        if self.rank0:
            self.log.append({"type": "nan_loss", "stopped_reason": "nan_loss", "epoch": epoch_idx + 1,
                             "batch": batch_idx, "step": self.stepper.optimizer_steps, "value": e.value,
                             "message": msg})
        log.error(msg)
        return msg

    def _log_epoch(self, r: dict[str, Any]) -> None:
        what, fused_key = self.task.log_suffix, f"val/{self.task.monitor}"
        accs = {m: r.get(f"val/{m}_{what}") for m in self.modalities}
        per = ", ".join(f"{m} {'n/a' if a is None else format(a, '.4f')}" for m, a in accs.items())
        text = (f"epoch {r['epoch']}/{self.cfg.trainer.max_epochs}: train loss {r.get('train/loss', float('nan')):.4f}, "
                f"val loss {r['val/loss']:.4f}, val {what} {r[fused_key]:.4f} ({per}), "
                f"{r['sec_per_epoch']:.1f} s{' *' if r['best'] else ''}")
        log.info(text)
        if self.rank0 and self.cfg.trainer.progress:
            from rich.console import Console

            console = Console()
            if console.is_terminal:
                console.print(text)

    def finish(self, stopped: str, message: str) -> TrainResult:
        """Evaluate the best checkpoint on val and test, write predictions and results.json."""
        st, best = self.state, checkpoint_dir(self.run_dir, "best")
        val_metrics: dict[str, Any] = {}
        test_metrics: dict[str, Any] = {}
        if checkpoint_exists(best):
            ckpt = load_checkpoint(best, map_location=self.fabric.device)
            load_model_state(self.raw_model, ckpt.model, model_file(self.run_dir, "best"), self.run_dir / CONFIG_FILE)
            self.strategy.load_state_dict(ckpt.strategy)
            outputs = {split: self.collect(split) for split in ("val", "test")}
            fit_on = self.task.fit_on
            state = None
            if fit_on is not None:  # what the task fits on one split of the best checkpoint (a threshold, a baseline)
                state = self.task.fit_state(outputs[fit_on] if fit_on in outputs else self.collect(fit_on))
            for split, out in outputs.items():
                out.fitted = state
                (val_metrics if split == "val" else test_metrics).update(compute_metrics(out, self.modalities))
            if self.rank0:
                write_task_state(self.task, state, RunPaths(self.run_dir).task_state)
                for split, out in outputs.items():
                    save_predictions(predictions_file(self.run_dir, split), out, self.datasets[split].class_names)
        history = list(st["history"])
        result = TrainResult(run_dir=self.run_dir, best_epoch=st["best_epoch"], epochs_run=st["epoch"],
                             metrics=test_metrics, history=history, stopped_reason=stopped,  # type: ignore[arg-type]
                             val_metrics=val_metrics, message=message, task=self.task.name,
                             selection=self.task.selection)
        if self.rank0:
            times = [r["sec_per_epoch"] for r in history]
            write_results(result, sum(times) / len(times) if times else None)
            self.log.append({"type": "end", "stopped_reason": stopped, "best_epoch": st["best_epoch"],
                             "epochs_run": st["epoch"]})
            for logger in self.fabric.loggers:
                logger.finalize("success" if stopped != "nan_loss" else "failed")
            _write_report(self.run_dir)
        self.fabric.barrier()
        return result


def _write_report(run_dir: Path) -> None:
    """Call ``polymodal.report.write_report(run_dir)`` when the report package provides it."""
    try:
        from polymodal.report import write_report  # type: ignore[attr-defined]
    except ImportError:
        return
    try:
        write_report(run_dir)
    except Exception as e:  # a report failure must not lose a finished training run
        log.warning("could not write the report of %s: %s: %s", run_dir, type(e).__name__, e)


def _run(fabric: Fabric, cfg: RunConfig, resume: bool) -> TrainResult:
    run = _Run(fabric, cfg, resume)
    run.start(resume)
    stopped, message = run.fit()
    return run.finish(stopped, message)
