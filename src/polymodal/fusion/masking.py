"""Masked helpers for fusions: how an absent modality is kept out of the arithmetic, written once.

A missing modality has ``present == False`` and a slot of zeros that must never be read as data
(``fusion/base.py``): a fusion combines with ``torch.where`` on the mask, never by multiplying with it,
so that NaN or inf in an absent slot cannot reach the output or the gradients (0 * NaN is NaN). Every
fusion in this package builds on these helpers (docs/architecture.md, "A fusion"):

- :func:`zero_absent`: a modality's features (any shape ``(B, ...)``) on present rows, a fill value
  (0 by default, or a learned "missing" embedding, or the neutral 1 of a product) on absent ones;
- :func:`presence_mask`: the ``(B, M)`` mask of the modalities in a fixed order;
- :func:`masked_softmax`: a softmax over the present entries only, exactly 0 on absent ones (a row with
  nothing present gets all zeros);
- :func:`masked_sum`: ``sum_m w_m x_m`` over the present modalities of stacked ``(B, M, ...)`` values;
- :func:`mean_over_present`: the mean of per-modality tensors over the modalities present in each row
  (0 where none is).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor


def zero_absent(x: Tensor, present: Tensor, fill: float | Tensor = 0.0) -> Tensor:
    """``x`` (B, ...) on the rows where ``present`` (B,) is True, ``fill`` on the others.

    ``fill`` is a number or a tensor that broadcasts against ``x`` (e.g. a learned (D,) embedding).
    """
    if present.shape != x.shape[:1]:
        raise ValueError(
            f"presence mask of shape {tuple(present.shape)} does not match features of shape {tuple(x.shape)}; "
            f"expected a (B,) mask with B = {x.shape[0]}"
        )
    return torch.where(present.view(-1, *([1] * (x.dim() - 1))), x, fill)


def presence_mask(present: Mapping[str, Tensor], names: Sequence[str]) -> Tensor:
    """(B, M) bool: column j is ``present[names[j]]``."""
    return torch.stack([present[m] for m in names], dim=1)


def masked_softmax(scores: Tensor, mask: Tensor, dim: int = 1) -> Tensor:
    """Softmax of ``scores`` over ``dim`` restricted to the entries where ``mask`` is True; exactly 0 elsewhere.

    Masked entries are set to the dtype's lowest finite value before the softmax (not -inf, so that a
    row with nothing present gives no NaN) and to 0 after it: the weights of a row sum to 1 over its
    present entries, and to 0 when it has none.
    """
    scores = torch.where(mask, scores, torch.finfo(scores.dtype).min)
    return torch.where(mask, torch.softmax(scores, dim=dim), 0.0)


def masked_sum(stacked: Tensor, mask: Tensor, weights: Tensor | None = None) -> Tensor:
    """(B, M, ...) values, (B, M) mask, optional (B, M) weights -> (B, ...) = sum over the present m of
    ``weights[:, m] * stacked[:, m]`` (absent entries never enter, even as NaN)."""
    expand = mask.view(*mask.shape, *([1] * (stacked.dim() - 2)))
    if weights is not None:
        stacked = stacked * weights.view(*weights.shape, *([1] * (stacked.dim() - 2)))
    return torch.where(expand, stacked, 0.0).sum(dim=1)


def mean_over_present(values: Sequence[Tensor], present: Sequence[Tensor]) -> Tensor:
    """Mean of per-modality values (each (B, D)) over the modalities present in each row; 0 where none is.

    ``present[i]`` (B,) belongs to ``values[i]``. The values are added in the given order (a running
    sum, not a stacked reduction).
    """
    if len(values) != len(present) or not values:
        raise ValueError(f"mean_over_present takes one presence mask per value; got {len(values)} values "
                         f"and {len(present)} masks")
    total: Tensor | None = None
    count: Tensor | None = None
    for x, p in zip(values, present, strict=True):
        p = p[:, None]
        x = torch.where(p, x, 0.0)
        total = x if total is None else total + x
        count = p.to(x.dtype) if count is None else count + p.to(x.dtype)
    return total / count.clamp(min=1)


__all__ = ["masked_softmax", "masked_sum", "mean_over_present", "presence_mask", "zero_absent"]
