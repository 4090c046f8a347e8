"""The gradient-preserving gather: two CPU processes (gloo) give the single-process gradient."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from polymodal.coordinated.distributed import gather_no_grad, gather_with_grad
from polymodal.coordinated.losses import CLIPLoss, SigLIPLoss

SIZES = (5, 3)  # rows per process: unequal on purpose (a last, smaller batch)


def _towers(seed: int = 0) -> tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(seed)
    return torch.nn.Linear(6, 4), torch.nn.Linear(7, 4), torch.nn.ModuleList([CLIPLoss(), SigLIPLoss()])


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(sum(SIZES), 6, generator=g), torch.randn(sum(SIZES), 7, generator=g)


def _loss(ta, tb, objectives, xa, xb, gather):
    a, b = F.normalize(ta(xa), dim=1), F.normalize(tb(xb), dim=1)
    a, b = gather(a), gather(b)
    return objectives[0](a, b) + objectives[1](a, b)


def _grads(*modules) -> list[torch.Tensor]:
    return [p.grad.clone() for m in modules for p in m.parameters()]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        ta, tb, obj = _towers()
        xa, xb = _data()
        lo = sum(SIZES[:rank])
        sl = slice(lo, lo + SIZES[rank])
        loss = _loss(ta, tb, obj, xa[sl], xb[sl], gather_with_grad)
        loss.backward()
        grads = _grads(ta, tb, obj)
        for g in grads:  # what DDP does with parameter gradients: the mean over processes
            dist.all_reduce(g)
            g /= world
        labels = gather_no_grad(torch.arange(SIZES[rank]) + 100 * rank)
        torch.save({"loss": loss.detach(), "grads": grads, "labels": labels}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_gathered_loss_gradient_equals_single_process_gradient(tmp_path):
    # fork: the workers need nothing the parent has not imported (spawn would re-import torch twice)
    mp.start_processes(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True, start_method="fork")
    ta, tb, obj = _towers()
    xa, xb = _data()
    loss = _loss(ta, tb, obj, xa, xb, lambda x: x)
    loss.backward()
    reference = _grads(ta, tb, obj)
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        torch.testing.assert_close(got["loss"], loss.detach(), rtol=1e-5, atol=1e-6)
        assert len(got["grads"]) == len(reference)
        for g, r in zip(got["grads"], reference, strict=True):
            torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-6)
        assert got["labels"].tolist() == [0, 1, 2, 3, 4, 100, 101, 102]
    # the check has teeth: without the gather (local negatives only) the gradient differs
    ta2, tb2, obj2 = _towers()
    local = sum(_loss(ta2, tb2, obj2, xa[s], xb[s], lambda x: x) for s in (slice(0, 5), slice(5, 8))) / 2
    local.backward()
    assert any(not torch.allclose(g, r, atol=1e-4) for g, r in zip(_grads(ta2, tb2, obj2), reference, strict=True))


def test_single_process_gather_is_identity():
    x = torch.randn(3, 2, requires_grad=True)
    assert gather_with_grad(x) is x
