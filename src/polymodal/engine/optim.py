"""Optimiser and learning-rate scheduler from :class:`polymodal.config.OptimConfig`."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from polymodal.config import OptimConfig

Scheduler = torch.optim.lr_scheduler.LRScheduler


def build_optimizer(cfg: OptimConfig, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    """SGD (with ``momentum``), Adam or AdamW, all with ``weight_decay`` on every parameter.

    One parameter group; a strategy that updates part of the model per step (MLA) clears the other
    gradients to None, which the optimisers skip entirely.
    """
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters; check model.encoders and model.fusion")
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
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
