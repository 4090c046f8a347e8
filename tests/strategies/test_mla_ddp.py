"""Under DDP, MLA all-reduces the batch-mean feature before each HGM update, so the projector P stays
identical on every rank even though each rank sees different samples."""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from polymodal.data.base import build_dataset
from polymodal.models import build_model
from polymodal.strategies.base import StepContext
from polymodal.strategies.mla import MLA


def _worker(rank: int, world: int, init_file: str, out_dir: str, reduce: bool) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.manual_seed(0)  # the same initial weights on both ranks
    ds = build_dataset("synthetic", "train", size=64)
    model = build_model(ds.schema, ds.num_outputs, fusion="shared_head", width=8)
    mla = MLA()
    mla.setup(model, ds)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def all_reduce_mean(t):
        t = t.detach().clone()
        dist.all_reduce(t)
        return t / world

    def step(params=None, set_to_none=True):
        for p in model.parameters():  # average gradients like DDP does
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= world
        opt.step()
        opt.zero_grad(set_to_none=set_to_none)
        return True

    for b in range(3):
        rows = list(range(rank * 8 + b * 16, rank * 8 + b * 16 + 8))  # different samples on each rank
        batch = ds.collate_fn()([ds[i] for i in rows])
        ctx = StepContext(epoch=0, batch_idx=b, batches_per_epoch=3, optimizer=opt, backward=lambda loss: loss.backward(),
                          step=step, zero_grad=lambda s: opt.zero_grad(set_to_none=s),
                          all_reduce_mean=all_reduce_mean if reduce else (lambda t: t), world_size=world if reduce else 1)
        mla.training_step(model, batch, ctx)
    torch.save(mla.projector.P, os.path.join(out_dir, f"P{rank}.pt"))
    dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize("reduce", [True, False])
def test_projector_identical_on_both_ranks_only_with_all_reduce(tmp_path, reduce):
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path), reduce), nprocs=2, join=True)
    p0, p1 = torch.load(tmp_path / "P0.pt"), torch.load(tmp_path / "P1.pt")
    if reduce:
        assert torch.equal(p0, p1)
    else:
        assert not torch.allclose(p0, p1)  # without the all-reduce each rank's P drifts apart
