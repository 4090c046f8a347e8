"""Checkpoints: safetensors for tensors, JSON for everything else, written atomically.

Layout of one checkpoint folder (``run_dir/checkpoints/best`` or ``.../last``)::

    model.safetensors      the model's state_dict
    optimizer.safetensors  every tensor of the optimiser state (names = their path in the state dict)
    strategy.safetensors   the strategy's tensors, when it has any
    state.json             epoch, global step, best metric, patience counter, stopped reason, RNG states,
                           and the non-tensor structure of the optimiser, scheduler and strategy states

Nested states are stored by :func:`to_tree`: tensors are replaced by ``{"__tensor__": name}`` and
kept in a flat ``name -> Tensor`` dict; tuples and dicts with non-string keys are tagged so that
:func:`from_tree` gives back the exact Python structure. A checkpoint is written into a temporary
folder and renamed into place; a kill at any moment leaves either the old or the new checkpoint, and a
write that fails (a full disk) removes its temporary folder and leaves the old checkpoint as it was.

Reading is strict: a file that cannot be parsed, a ``state.json`` of the wrong structure, model weights
that are NaN or infinite, or weights that do not fit the model the run's ``config.yaml`` describes raise
:class:`DamagedRunFile`, whose message names the file, what is wrong with it and what to do.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from polymodal.runpaths import (  # noqa: F401  (CHECKPOINTS_DIR: re-exported)
    CHECKPOINTS_DIR,
    MODEL_FILE,
    OPTIMIZER_FILE,
    STATE_FILE,
    STRATEGY_FILE,
    RunPaths,
)


def checkpoint_dir(run_dir: str | os.PathLike, which: str = "best") -> Path:
    """``run_dir/checkpoints/<which>``: the one place a run's checkpoint folders are named."""
    return RunPaths(run_dir).checkpoint(which)


def model_file(run_dir: str | os.PathLike, which: str = "best") -> Path:
    """The model weights of a run's ``best`` (or ``last``) checkpoint."""
    return RunPaths(run_dir).model(which)


TRAINING_STATE_KEYS: dict[str, tuple[type, ...]] = {
    "epoch": (int,), "global_step": (int,), "best_metric": (int, float, type(None)),
    "best_epoch": (int, type(None)), "bad_epochs": (int,), "stopped_reason": (str, type(None)),
    "history": (list,), "rng": (dict,),
}
"""what ``state.json`` must hold to resume a run: key -> accepted types"""


class DamagedRunFile(ValueError):
    """A run file that cannot be used: unreadable, of the wrong structure, non-finite, or not fitting the
    model; ``path`` is the file."""

    def __init__(self, path: str | os.PathLike, problem: str, fix: str) -> None:
        super().__init__(f"{path}: {problem}; {fix}")
        self.path = Path(path)


def _fix_for(path: Path) -> str:
    """What to do about a damaged file in checkpoint folder ``path.parent``."""
    ckpt = path.parent.name.lstrip(".").removesuffix(".old")
    run = path.parent.parent.parent
    if ckpt == "last":
        return (f"this checkpoint cannot be resumed; restore {path.name} from a copy of the run, or train again "
                f"under a new name (name=...); the best checkpoint ({RunPaths(run).checkpoint('best')}) can still be "
                f"evaluated if it is intact")
    return (f"restore {path.name} from a copy of the run (Predictor.save makes one), or train the run again "
            f"under a new name (name=...)")


def to_tree(obj: Any, tensors: dict[str, Tensor], prefix: str) -> Any:
    """JSON-able copy of ``obj``; its tensors go into ``tensors`` under dotted names from ``prefix``."""
    if isinstance(obj, Tensor):
        tensors[prefix] = obj.detach().cpu().clone().contiguous()
        return {"__tensor__": prefix}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: to_tree(v, tensors, f"{prefix}.{k}") for k, v in obj.items()}
        return {"__items__": [[to_tree(k, tensors, f"{prefix}.k{i}"), to_tree(v, tensors, f"{prefix}.{k}")]
                              for i, (k, v) in enumerate(obj.items())]}
    if isinstance(obj, tuple):
        return {"__tuple__": [to_tree(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [to_tree(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return obj.item()
    raise TypeError(
        f"checkpoint state at {prefix!r} holds a {type(obj).__name__}; only tensors, numbers, strings, None, "
        f"lists, tuples and dicts can be saved (convert it in the component's state_dict)"
    )


def from_tree(tree: Any, tensors: dict[str, Tensor]) -> Any:
    """Inverse of :func:`to_tree`."""
    if isinstance(tree, dict):
        if set(tree) == {"__tensor__"}:
            return tensors[tree["__tensor__"]]
        if set(tree) == {"__tuple__"}:
            return tuple(from_tree(v, tensors) for v in tree["__tuple__"])
        if set(tree) == {"__items__"}:
            return {from_tree(k, tensors): from_tree(v, tensors) for k, v in tree["__items__"]}
        return {k: from_tree(v, tensors) for k, v in tree.items()}
    if isinstance(tree, list):
        return [from_tree(v, tensors) for v in tree]
    return tree


@dataclass
class Checkpoint:
    """Everything one checkpoint holds, as live Python objects."""

    model: dict[str, Tensor]
    optimizer: dict[str, Any] | None = None
    scheduler: dict[str, Any] | None = None
    strategy: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)  # epoch, global_step, best, rng, ...


def _write_json(path: Path, obj: Any) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())


def save_checkpoint(path: str | os.PathLike, ckpt: Checkpoint) -> Path:
    """Write ``ckpt`` into folder ``path`` atomically (tmp folder + rename); returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    old = path.with_name(f".{path.name}.old")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        _write_into(tmp, ckpt)
    except BaseException:  # a full disk, a kill: the previous checkpoint at ``path`` stays as it was
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.exists():
        if old.exists():
            shutil.rmtree(old)
        os.replace(path, old)
    os.replace(tmp, path)
    if old.exists():
        shutil.rmtree(old)
    return path


def _write_into(tmp: Path, ckpt: Checkpoint) -> None:
    model = {k: v.detach().cpu().clone().contiguous() for k, v in ckpt.model.items()}
    save_file(model, str(tmp / MODEL_FILE))
    opt_tensors: dict[str, Tensor] = {}
    optimizer = to_tree(ckpt.optimizer, opt_tensors, "optimizer")
    scheduler = to_tree(ckpt.scheduler, opt_tensors, "scheduler")
    if ckpt.optimizer is not None:
        save_file(opt_tensors, str(tmp / OPTIMIZER_FILE))
    strat_tensors: dict[str, Tensor] = {}
    strategy = to_tree(ckpt.strategy, strat_tensors, "strategy")
    if strat_tensors:
        save_file(strat_tensors, str(tmp / STRATEGY_FILE))
    state = dict(ckpt.state, optimizer=optimizer, scheduler=scheduler, strategy=strategy)
    _write_json(tmp / STATE_FILE, state)


def checkpoint_exists(path: str | os.PathLike) -> bool:
    """True when a complete checkpoint is at ``path`` (or survives as its backup from an interrupted swap)."""
    return _locate(Path(path)) is not None


def _locate(path: Path) -> Path | None:
    for candidate in (path, path.with_name(f".{path.name}.old")):
        if (candidate / STATE_FILE).is_file() and (candidate / MODEL_FILE).is_file():
            return candidate
    return None


def load_checkpoint(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint folder written by :func:`save_checkpoint`."""
    path = Path(path)
    found = _locate(path)
    if found is None:
        raise FileNotFoundError(
            f"no checkpoint at {path} (expected {STATE_FILE} and {MODEL_FILE}); train the run first "
            f"or check the run folder name"
        )
    device = str(map_location)
    state = _read_state(found / STATE_FILE)
    model = _read_tensors(found / MODEL_FILE, device)
    check_finite(model, found / MODEL_FILE)
    opt_tensors = _read_tensors(found / OPTIMIZER_FILE, device) if (found / OPTIMIZER_FILE).is_file() else {}
    strat_tensors = _read_tensors(found / STRATEGY_FILE, device) if (found / STRATEGY_FILE).is_file() else {}
    parts = {}
    for key, tensors, file in (("optimizer", opt_tensors, OPTIMIZER_FILE), ("scheduler", opt_tensors, OPTIMIZER_FILE),
                               ("strategy", strat_tensors, STRATEGY_FILE)):
        try:
            parts[key] = from_tree(state.pop(key, None), tensors)
        except (KeyError, TypeError, ValueError) as e:
            raise DamagedRunFile(found / STATE_FILE, f"its {key!r} entry names a tensor that {file} does not hold "
                                 f"({type(e).__name__}: {e}); the two files do not belong together",
                                 _fix_for(found / STATE_FILE)) from None
    return Checkpoint(model=model, optimizer=parts["optimizer"], scheduler=parts["scheduler"],
                      strategy=parts["strategy"] or {}, state=state)


def _read_state(path: Path) -> dict[str, Any]:
    try:
        state = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DamagedRunFile(path, f"not valid JSON ({e})", _fix_for(path)) from None
    if not isinstance(state, dict):
        raise DamagedRunFile(path, f"holds a JSON {type(state).__name__}, expected an object (epoch, global_step, "
                             "optimizer, ...)", _fix_for(path))
    return state


def _read_tensors(path: Path, device: str) -> dict[str, Tensor]:
    try:
        return load_file(str(path), device=device)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        size = path.stat().st_size if path.is_file() else 0
        raise DamagedRunFile(path, f"not a readable safetensors file ({size} bytes; {e}): it is truncated or was "
                             "replaced", _fix_for(path)) from None


def check_finite(tensors: dict[str, Tensor], path: str | os.PathLike) -> None:
    """Raise :class:`DamagedRunFile` naming every floating-point tensor of ``path`` that holds NaN or inf."""
    bad = []
    for name, t in tensors.items():
        if t.is_floating_point() or t.is_complex():
            finite = torch.isfinite(t)
            if not bool(finite.all()):
                n_nan, n_inf = int(torch.isnan(t).sum()), int(torch.isinf(t).sum())
                bad.append(f"{name} ({n_nan} NaN, {n_inf} inf of {t.numel()})")
    if bad:
        shown = ", ".join(bad[:10]) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
        raise DamagedRunFile(path, f"{len(bad)} of its {len(tensors)} tensors hold NaN or infinite weights: {shown}; "
                             "a model with such weights predicts nothing meaningful",
                             "train the run again under a new name (name=...), with a lower optim.lr or "
                             "optim.grad_clip=1.0 if its training diverged, or restore the file from a copy")


def check_training_state(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Raise :class:`DamagedRunFile` when ``state`` (read from ``path``) lacks what resuming needs."""
    problems = []
    for key, types in TRAINING_STATE_KEYS.items():
        if key not in state:
            problems.append(f"{key!r} is missing")
        elif not isinstance(state[key], types) or (int in types and isinstance(state[key], bool)):
            problems.append(f"{key!r} is a {type(state[key]).__name__}, expected "
                            f"{' or '.join(t.__name__ for t in types)}")
    if not problems and (state["epoch"] < 0 or len(state["history"]) != state["epoch"]):
        problems.append(f"'epoch' is {state['epoch']} but 'history' holds {len(state['history'])} epochs")
    if problems:
        raise DamagedRunFile(path, "cannot be resumed: " + "; ".join(problems), _fix_for(Path(path)))


def load_model_state(model: nn.Module, weights: dict[str, Tensor], path: str | os.PathLike,
                     config: str | os.PathLike | None = None) -> None:
    """``model.load_state_dict(weights)``; when they do not fit, :class:`DamagedRunFile` names the tensors
    (missing, unexpected, shape file vs model) and the run configuration that built ``model``."""
    own = model.state_dict()
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    shapes = [f"{k} (file {tuple(weights[k].shape)}, model {tuple(own[k].shape)})" for k in own
              if k in weights and tuple(weights[k].shape) != tuple(own[k].shape)]
    if not (missing or unexpected or shapes):
        try:
            model.load_state_dict(weights)
            return
        except RuntimeError as e:  # a strict check this one did not foresee
            shapes = [str(e).splitlines()[-1].strip()]

    def cap(items: list[str]) -> str:
        return ", ".join(items[:5]) + (f" and {len(items) - 5} more" if len(items) > 5 else "")

    found = []
    if shapes:
        found.append(f"{len(shapes)} tensors of another shape: {cap(shapes)}")
    if missing:
        found.append(f"{len(missing)} tensors the model needs are missing: {cap(missing)}")
    if unexpected:
        found.append(f"{len(unexpected)} tensors the model does not have: {cap(unexpected)}")
    cfg = f" that {config} describes" if config is not None else ""
    raise DamagedRunFile(
        path, f"its weights do not fit the model{cfg}: " + "; ".join(found),
        "the run was trained with other settings (another dataset, number of classes, fusion or encoder) than "
        f"{config or 'the configuration'} now holds, or the file belongs to another run: restore the run's own "
        "config.yaml (its settings are also recorded in provenance.json), or train a new run with these settings",
    ) from None
