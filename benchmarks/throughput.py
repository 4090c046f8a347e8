"""Speed of light: training samples per second of polymodal's engine against a bare PyTorch loop.

For each model (the default small CNNs at width 64, and the ResNet-18 configuration of
``configs/avdigits_mla_resnet18.yaml``) and each strategy (``joint``, ``mla``), on avdigits-hard with
batch 64 and the same torch thread count:

- engine: ``polymodal.engine.train`` for 2 epochs of ``--steps`` batches; the samples per second of the
  second epoch's training steps as the engine logs them (evaluation excluded);
- bare: the same model (``polymodal.models.build_model``) and optimiser in a plain loop over a plain
  ``torch.utils.data.DataLoader`` of the same dataset: forward, cross-entropy, backward, step; for MLA
  one such step per modality with only that modality's encoder and the shared head (no HGM: the bare
  loop is the lower bound of MLA's own computation). No Fabric, no checks, no logging.

The ratio engine / bare is the engine's efficiency (target: at least 0.95). Options that might move the
bare loop's speed are measured on the default model with MLA: channels_last memory format, bf16 autocast
and torch.compile (each alone); and the engine with DataLoader workers.

    python benchmarks/throughput.py [--steps 30] [--threads 2] [--repeats 3]

Writes benchmarks/results/throughput.md and .json. Seconds are wall-clock on whatever else the machine
runs: compare rows of one run, not across runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from polymodal.bench.results import ResultRow, write_results
from polymodal.config import RunConfig, load_config
from polymodal.data.base import build_dataset
from polymodal.engine import train
from polymodal.models import build_model

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MODELS = {"default": None, "resnet18": str(ROOT / "configs" / "avdigits_mla_resnet18.yaml")}


def _config(model: str, strategy: str, steps: int, threads: int, out: Path, extra: list[str]) -> RunConfig:
    fusion = ["model.fusion=shared_head"] if strategy == "mla" else ["model.fusion=late"]
    if strategy != "mla":  # the ResNet-18 config's strategy.args are MLA's
        fusion.append("strategy.args={}")
    return load_config(MODELS[model], [
        f"strategy.name={strategy}", *fusion, "trainer.max_epochs=2", f"trainer.max_steps_per_epoch={steps}",
        "trainer.patience=null", "trainer.progress=false", f"trainer.num_threads={threads}", f"out_dir={out}",
        f"name={model}-{strategy}-{len(list(out.iterdir()))}", *extra,
    ])


def engine_rate(model: str, strategy: str, steps: int, threads: int, out: Path, extra: list[str] = ()) -> float:
    res = train(_config(model, strategy, steps, threads, out, list(extra)))
    records = [json.loads(line) for line in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r.get("type") == "epoch"]
    return float(epochs[-1]["samples_per_sec"])


def bare_rate(cfg: RunConfig, steps: int, *, channels_last: bool = False, bf16: bool = False,
              compile_model: bool = False) -> float:
    torch.manual_seed(cfg.seed)
    ds = build_dataset(cfg.data.dataset, "train", **{**cfg.data.options, "cache_features": cfg.data.cache_features})
    model = build_model(ds.schema, ds.num_outputs, fusion=cfg.model.fusion, fusion_args=cfg.model.fusion_args,
                        encoders=cfg.model.encoders, width=cfg.model.width)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    o = cfg.optim
    params = [p for p in model.parameters() if p.requires_grad]
    opt = (torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay) if o.name == "sgd"
           else torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay))
    forward: Callable = torch.compile(model) if compile_model else model
    loader = DataLoader(ds, batch_size=cfg.data.batch_size, shuffle=True, collate_fn=ds.collate_fn(),
                        generator=torch.Generator().manual_seed(0))
    mla = cfg.strategy.name == "mla"

    def one_step(batch) -> None:
        if channels_last:
            for k, v in batch.inputs.items():
                if v.dim() == 4:
                    batch.inputs[k] = v.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            if mla:
                for m in model.modalities:
                    loss = F.cross_entropy(forward(batch, modalities=[m]).per_modality[m].float(), batch.label)
                    loss.backward()
                    opt.step()
                    opt.zero_grad(set_to_none=True)
                return
            loss = F.cross_entropy(forward(batch).logits.float(), batch.label)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    model.train()
    it = iter(loader)
    for _ in range(3):  # warm-up (and compilation)
        one_step(next(it))
    batches = [next(it) for _ in range(steps)]
    t0 = time.perf_counter()
    n = 0
    for b in batches:
        one_step(b)
        n += b.size
    return n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=30, help="timed batches per measurement")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3, help="alternating engine/bare measurements per row")
    p.add_argument("--models", default="default,resnet18")
    p.add_argument("--options", action=argparse.BooleanOptionalAction, default=True,
                   help="also measure channels_last, bf16 autocast, torch.compile and DataLoader workers")
    p.add_argument("--out", default=str(HERE / "results"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows: list[ResultRow] = []
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for model in args.models.split(","):
            steps = args.steps if model == "default" else max(4, args.steps // 3)
            for strategy in ("joint", "mla"):
                cfg = _config(model, strategy, steps, args.threads, out, [])
                eng, bare = [], []
                for _ in range(args.repeats):  # alternate, so that drift of the machine hits both
                    eng.append(engine_rate(model, strategy, steps, args.threads, out))
                    bare.append(bare_rate(cfg, steps))
                ratio = [e / b for e, b in zip(eng, bare, strict=True)]
                variant = f"{model}, engine"
                rows += [ResultRow(strategy, "avdigits-hard", "samples_per_sec", eng, variant=variant),
                         ResultRow(strategy, "avdigits-hard", "samples_per_sec", bare, variant=f"{model}, bare loop"),
                         ResultRow(strategy, "avdigits-hard", "efficiency", ratio, variant=f"{model}, engine / bare")]
                lines.append(f"{model} {strategy}: engine {sum(eng) / len(eng):.0f}, bare {sum(bare) / len(bare):.0f} "
                             f"samples/s, efficiency {sum(ratio) / len(ratio):.3f}")
                print(lines[-1], flush=True)
        if args.options:
            cfg = _config("default", "mla", args.steps, args.threads, out, [])
            for name, kwargs in (("channels_last", {"channels_last": True}), ("bf16 autocast", {"bf16": True}),
                                 ("torch.compile", {"compile_model": True})):
                try:
                    vals = [bare_rate(cfg, args.steps, **kwargs) for _ in range(args.repeats)]
                except Exception as e:  # noqa: BLE001 - an option that does not run here is reported, not fatal
                    lines.append(f"option {name}: failed ({type(e).__name__}: {str(e).splitlines()[0][:120]})")
                    print(lines[-1], flush=True)
                    continue
                rows.append(ResultRow("mla", "avdigits-hard", "samples_per_sec", vals, variant=f"default, bare loop, {name}"))
                print(f"option {name}: {sum(vals) / len(vals):.0f} samples/s", flush=True)
            vals = [engine_rate("default", "mla", args.steps, args.threads, out, ["data.num_workers=1"])
                    for _ in range(args.repeats)]
            rows.append(ResultRow("mla", "avdigits-hard", "samples_per_sec", vals, variant="default, engine, 1 DataLoader worker"))
    command = "python benchmarks/throughput.py " + " ".join(argv if argv is not None else sys.argv[1:])
    _, md = write_results(
        "throughput", rows, command=command.strip(), out_dir=args.out, title="Training throughput: engine vs bare loop",
        protocol=(f"avdigits-hard train split, batch 64, {args.threads} torch threads, training steps only; engine: "
                  f"samples/s of the 2nd epoch of --steps batches as logged; bare loop: the same model and optimiser, "
                  f"plain DataLoader, forward/backward/step only (MLA: one step per modality, no HGM); "
                  f"{args.repeats} alternating repeats per row; ResNet-18 rows use a third of the steps"),
        notes="\n".join(f"- {line}" for line in lines),
    )
    print(md.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
