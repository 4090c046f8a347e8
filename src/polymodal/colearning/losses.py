"""The losses of co-learning (docs/colearning.md): distillation with temperature, pseudo-labels, class balance."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def distillation_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 4.0) -> Tensor:
    """Hinton et al. (2015): ``T^2 * KL(softmax(t / T) || softmax(s / T))``, averaged over rows.

    The T^2 factor keeps the gradient's scale independent of T (the soft targets' gradients scale as 1 / T^2).
    The teacher's logits are used as given (detach them to keep the teacher out of the gradient). (B, C) both.
    """
    if student_logits.shape != teacher_logits.shape or student_logits.dim() != 2:
        raise ValueError(
            f"distillation_loss: expected student and teacher logits of the same (B, C) shape; got "
            f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}"
        )
    if not temperature > 0:
        raise ValueError(f"distillation temperature={temperature!r}; expected a number > 0")
    log_p_student = F.log_softmax(student_logits / temperature, dim=1)
    log_p_teacher = F.log_softmax(teacher_logits / temperature, dim=1)
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    return kl * temperature**2


def pseudo_labels(logits: Tensor, threshold: float) -> tuple[Tensor, Tensor, Tensor]:
    """A view's pseudo-labels: (label (B,), taken (B,) bool, confidence (B,)).

    confidence = the largest softmax probability, label = its class; a row is taken when its confidence is at
    least ``threshold`` (so a threshold above 1 takes nothing). No gradient flows through any of them.
    """
    with torch.no_grad():
        confidence, label = F.softmax(logits.detach().float(), dim=1).max(dim=1)
    return label, confidence >= threshold, confidence


def balanced_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """Class-balanced cross-entropy: the mean over the classes present in ``target`` of each class's mean
    cross-entropy, so that a class the teacher is confident about more often does not dominate (co-training's
    class balancing, Blum & Mitchell add examples in proportion to the class prior; with pseudo-labels taken
    per batch, equal class weight is the batch-level analogue). A zero that depends on ``logits`` when empty."""
    if target.numel() == 0:
        return logits.sum() * 0.0
    per_row = F.cross_entropy(logits, target, reduction="none")
    classes, inverse, counts = torch.unique(target, return_inverse=True, return_counts=True)
    weights = 1.0 / (counts[inverse].to(per_row.dtype) * len(classes))
    return (per_row * weights).sum()


__all__ = ["balanced_cross_entropy", "distillation_loss", "pseudo_labels"]
