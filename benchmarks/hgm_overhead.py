"""Cost of MLA's head gradient modification: seconds per training epoch with HGM on vs off.

avdigits-hard, bench profile model (audio_cnn + image_cnn, width 64, shared head), batch 64, AdamW;
the same batches for both settings, alternating on/off epochs so that drift of the machine hits both;
one torch thread. Writes benchmarks/results/hgm_overhead.md and .json.

    python benchmarks/hgm_overhead.py [--epochs 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from polymodal.bench.results import ResultRow, write_results
from polymodal.data.base import build_dataset
from polymodal.models import build_model
from polymodal.strategies.base import StepContext
from polymodal.strategies.mla import MLA

HERE = Path(__file__).resolve().parent


def epoch_seconds(hgm: bool, batches, ds, seed: int = 0) -> float:
    torch.manual_seed(seed)
    model = build_model(ds.schema, ds.num_outputs, fusion="shared_head", width=64)
    mla = MLA(hgm=hgm)
    mla.setup(model, ds)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)

    def step(params=None, set_to_none=True):
        opt.step()
        opt.zero_grad(set_to_none=set_to_none)
        return True

    t0 = time.perf_counter()
    for i, batch in enumerate(batches):
        ctx = StepContext(epoch=0, batch_idx=i, batches_per_epoch=len(batches), optimizer=opt,
                          backward=lambda loss: loss.backward(), step=step,
                          zero_grad=lambda s: opt.zero_grad(set_to_none=s), all_reduce_mean=lambda t: t)
        mla.training_step(model, batch, ctx)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(HERE / "results"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    ds = build_dataset("avdigits-hard", "train")
    collate = ds.collate_fn()
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0)).tolist()
    batches = [collate([ds[i] for i in order[k:k + 64]]) for k in range(0, len(order), 64)]
    epoch_seconds(True, batches[:3], ds)  # warm-up
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.epochs):
        for hgm in (False, True):
            times[hgm].append(epoch_seconds(hgm, batches, ds))
    rows = [ResultRow("mla", "avdigits-hard", "sec_per_epoch", times[True], variant="hgm"),
            ResultRow("mla", "avdigits-hard", "sec_per_epoch", times[False], variant="no-hgm")]
    overhead = rows[0].mean / rows[1].mean - 1
    command = "python benchmarks/hgm_overhead.py " + " ".join(argv if argv is not None else sys.argv[1:])
    json_path, md_path = write_results(
        "hgm_overhead", rows, command=command.strip(), out_dir=args.out, title="Cost of head gradient modification",
        protocol=f"avdigits-hard train split (2,400 samples, 38 batches of 64), MLA training steps only (no evaluation), "
                 f"bench-profile model, {args.threads} torch thread(s), {args.epochs} epochs per setting, alternated",
        notes=f"HGM overhead: {100 * overhead:+.1f} % seconds per epoch (target: at most +10 %).",
    )
    print(md_path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
