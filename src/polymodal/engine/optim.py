"""Optimiser and learning-rate scheduler from :class:`polymodal.config.OptimConfig`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from polymodal.config import OptimConfig

Scheduler = torch.optim.lr_scheduler.LRScheduler


def build_optimizer(cfg: OptimConfig, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    """SGD (with ``momentum``), Adam or AdamW with ``weight_decay`` on every parameter but scalars.

    Scalar (0-dimensional) parameters, such as a contrastive objective's temperature and bias, go into a
    second group without weight decay, as open_clip excludes its ``logit_scale``: decay would pull a
    learnable temperature towards 0 (scale 1) and a bias towards 0 regardless of the data. A model without
    scalar parameters gets one group, as before. A strategy that updates part of the model per step (MLA)
    clears the other gradients to None, which the optimisers skip entirely.
    """
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters; check model.encoders and model.fusion")
    decay = [p for p in params if p.dim() > 0]
    scalars = [p for p in params if p.dim() == 0]
    groups: list[dict[str, Any]] = [{"params": decay}] if decay else []
    if scalars:
        groups.append({"params": scalars, "weight_decay": 0.0})
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.name == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"optim.name {cfg.name!r}; expected 'sgd', 'adam' or 'adamw'")


def build_scheduler(cfg: OptimConfig, optimizer: torch.optim.Optimizer, max_epochs: int) -> Scheduler | None:
    """None, StepLR(``step_size``, ``gamma``) or cosine annealing over ``max_epochs``; stepped once per epoch."""
    if cfg.scheduler == "none":
        return None
    if cfg.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max_epochs)
    raise ValueError(f"optim.scheduler {cfg.scheduler!r}; expected 'none', 'step' or 'cosine'")
