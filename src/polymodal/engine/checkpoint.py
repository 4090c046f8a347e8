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
folder and renamed into place; a kill at any moment leaves either the old or the new checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

STATE_FILE = "state.json"
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
STRATEGY_FILE = "strategy.safetensors"


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
    if path.exists():
        if old.exists():
            shutil.rmtree(old)
        os.replace(path, old)
    os.replace(tmp, path)
    if old.exists():
        shutil.rmtree(old)
    return path


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
    state = json.loads((found / STATE_FILE).read_text())
    model = load_file(str(found / MODEL_FILE), device=device)
    opt_tensors = load_file(str(found / OPTIMIZER_FILE), device=device) if (found / OPTIMIZER_FILE).is_file() else {}
    strat_tensors = load_file(str(found / STRATEGY_FILE), device=device) if (found / STRATEGY_FILE).is_file() else {}
    optimizer = from_tree(state.pop("optimizer", None), opt_tensors)
    scheduler = from_tree(state.pop("scheduler", None), opt_tensors)
    strategy = from_tree(state.pop("strategy", {}), strat_tensors) or {}
    return Checkpoint(model=model, optimizer=optimizer, scheduler=scheduler, strategy=strategy, state=state)
