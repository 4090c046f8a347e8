"""In-batch negatives from every process: an all_gather that keeps the gradient (docs/coordinated.md).

A contrastive loss is better with more negatives. Under data parallelism each process holds only its
own slice of the batch; :func:`gather_with_grad` concatenates the slices of every process (rank order)
so that each process computes the loss over the whole global batch, and its backward pass sums the
gradients that all processes computed for each slice and hands every process the part of its own rows.

Why this gives the single-process gradient: every process computes the same loss ``L`` over the global
batch. The backward of the gather gives process ``r`` the sum over processes of ``dL/dx_r``, that is
``W * dL/dx_r`` for ``W`` processes; DDP then averages the parameter gradients over processes, which
divides by ``W`` again: the result is ``sum_r dL/dx_r dx_r/dtheta = dL/dtheta``, the gradient of the
loss on the concatenated batch in one process (tested with two processes on gloo).

Processes may hold different numbers of rows (a last, smaller batch): rows are padded to the largest
count for the collective and the padding is dropped again. Without an initialised process group, or
with one process, the gather is the identity.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        world, rank = _world()
        n = torch.tensor([x.shape[0]], device=x.device, dtype=torch.long)
        counts = [torch.zeros_like(n) for _ in range(world)]
        dist.all_gather(counts, n)
        sizes = [int(c) for c in counts]
        longest = max(sizes)
        padded = x.new_zeros((longest, *x.shape[1:]))
        padded[: x.shape[0]] = x
        parts = [torch.empty_like(padded) for _ in range(world)]
        dist.all_gather(parts, padded.contiguous())
        ctx.sizes, ctx.rank, ctx.longest = sizes, rank, longest
        return torch.cat([p[:s] for p, s in zip(parts, sizes, strict=True)])

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        sizes, rank, longest = ctx.sizes, ctx.rank, ctx.longest
        # every process's gradient w.r.t. every slice, summed over processes (all_reduce works on gloo,
        # reduce_scatter does not); then this process keeps the rows of its own slice
        stacked = grad.new_zeros((len(sizes), longest, *grad.shape[1:]))
        start = 0
        for r, s in enumerate(sizes):
            stacked[r, :s] = grad[start : start + s]
            start += s
        dist.all_reduce(stacked, op=dist.ReduceOp.SUM)
        return stacked[rank, : sizes[rank]]


def gather_with_grad(x: Tensor) -> Tensor:
    """``x`` (n_r, ...) of every process concatenated in rank order (sum_r n_r, ...), differentiable.

    The identity in a single process. See the module docstring for the gradient it gives.
    """
    world, _ = _world()
    if world == 1:
        return x
    return _GatherWithGrad.apply(x)


def gather_no_grad(x: Tensor) -> Tensor:
    """As :func:`gather_with_grad` but detached (labels, masks, or features that need no gradient)."""
    with torch.no_grad():
        return gather_with_grad(x.detach())


def world_size() -> int:
    """Number of processes of the initialised process group (1 without one)."""
    return _world()[0]


__all__ = ["gather_no_grad", "gather_with_grad", "world_size"]
