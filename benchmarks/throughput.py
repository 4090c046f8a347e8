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

The ratio engine / bare is the engine's efficiency (target: at least 0.95), per memory format
(``--formats``: contiguous and channels_last, the engine's ``trainer.channels_last``). Options that might
move the bare loop's speed are measured on the default model with MLA: bf16 autocast and torch.compile
(each alone); and the engine with DataLoader workers. With ``--reference PATH`` (a checkout of the official
MLA code, see benchmarks/reference_mla.py) the reference's own training step on the same batches is timed
beside polymodal's ResNet-18 MLA rows (ratio polymodal / reference: target at least 1.5).

    python benchmarks/throughput.py [--steps 30] [--threads 2] [--repeats 3] [--reference PATH]

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
from typing import Any

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


def reference_rate(ref: Any, steps: int) -> float:
    """Samples/s of the reference code's MLA training step (benchmarks/reference_mla.py) on ``steps`` batches
    of 64 of the avdigits-hard train split, after 3 warm-up batches. Its spectrograms are computed before
    the clock starts: the reference reads them from files written once by its data/extract_spec.py."""
    rm = _reference_module()
    arr = rm.export_split("train")
    model = rm.build_reference(ref, 0)
    opt, _ = rm.reference_optimizer(model)
    gs = rm.gs_plugin(ref)
    order = torch.randperm(len(arr["label"]), generator=torch.Generator().manual_seed(0))[:(3 + steps) * 64].numpy()
    spec, img = rm.reference_spectrogram(arr["waveform"][order]), rm.reference_image(arr["image"][order])
    label = torch.as_tensor(arr["label"][order])
    model.train()
    for k in range(3):
        sl = slice(k * 64, (k + 1) * 64)
        rm.reference_batch(model, gs, opt, spec[sl], img[sl], label[sl], k, 38)
    t0 = time.perf_counter()
    for k in range(3, 3 + steps):
        sl = slice(k * 64, (k + 1) * 64)
        rm.reference_batch(model, gs, opt, spec[sl], img[sl], label[sl], k, 38)
    return steps * 64 / (time.perf_counter() - t0)


def _reference_module() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("benchmark_reference_mla", HERE / "reference_mla.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
    p.add_argument("--strategies", default="joint,mla")
    p.add_argument("--resnet18-strategies", default=None, help="strategies of the ResNet-18 rows (default: --strategies)")
    p.add_argument("--formats", default="contiguous,channels_last", help="memory formats of the engine/bare rows")
    p.add_argument("--reference", metavar="PATH", help="a checkout of the official MLA code: time its training step too")
    p.add_argument("--options", action=argparse.BooleanOptionalAction, default=True,
                   help="also measure bf16 autocast, torch.compile and DataLoader workers")
    p.add_argument("--out", default=str(HERE / "results"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    ref = _reference_module().load_reference(args.reference) if args.reference else None
    rows: list[ResultRow] = []
    lines = []
    rates: dict[tuple[str, str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for model in args.models.split(","):
            steps = args.steps if model == "default" else max(4, args.steps // 3)
            chosen = args.resnet18_strategies if model == "resnet18" and args.resnet18_strategies else args.strategies
            for strategy in chosen.split(","):
                timed_ref = ref is not None and model == "resnet18" and strategy == "mla"
                eng: dict[str, list[float]] = {f: [] for f in args.formats.split(",")}
                bare: dict[str, list[float]] = {f: [] for f in eng}
                refs: list[float] = []
                for _ in range(args.repeats):  # alternate, so that drift of the machine hits every row alike
                    for fmt in eng:
                        extra = [f"trainer.channels_last={'true' if fmt == 'channels_last' else 'false'}"]
                        cfg = _config(model, strategy, steps, args.threads, out, extra)
                        eng[fmt].append(engine_rate(model, strategy, steps, args.threads, out, extra))
                        bare[fmt].append(bare_rate(cfg, steps, channels_last=fmt == "channels_last"))
                    if timed_ref:
                        refs.append(reference_rate(ref, steps))
                for fmt in eng:
                    ratio = [e / b for e, b in zip(eng[fmt], bare[fmt], strict=True)]
                    suffix = "" if fmt == "contiguous" else f", {fmt}"
                    rows += [ResultRow(strategy, "avdigits-hard", "samples_per_sec", eng[fmt], variant=f"{model}, engine{suffix}"),
                             ResultRow(strategy, "avdigits-hard", "samples_per_sec", bare[fmt], variant=f"{model}, bare loop{suffix}"),
                             ResultRow(strategy, "avdigits-hard", "efficiency", ratio, variant=f"{model}, engine / bare{suffix}")]
                    rates[(model, strategy, fmt)] = eng[fmt]
                    lines.append(f"{model} {strategy} {fmt}: engine {sum(eng[fmt]) / len(eng[fmt]):.1f}, bare "
                                 f"{sum(bare[fmt]) / len(bare[fmt]):.1f} samples/s, efficiency {sum(ratio) / len(ratio):.3f}")
                    print(lines[-1], flush=True)
                if "channels_last" in eng and "contiguous" in eng:
                    speedup = [c / d for c, d in zip(eng["channels_last"], eng["contiguous"], strict=True)]
                    rows.append(ResultRow(strategy, "avdigits-hard", "efficiency", speedup,
                                          variant=f"{model}, engine channels_last / contiguous"))
                    lines.append(f"{model} {strategy}: engine channels_last / contiguous {sum(speedup) / len(speedup):.2f}x")
                if timed_ref:
                    rows.append(ResultRow("mla-reference", "avdigits-hard", "samples_per_sec", refs,
                                          variant="resnet18, reference code"))
                    for fmt in eng:
                        r = [e / x for e, x in zip(eng[fmt], refs, strict=True)]
                        rows.append(ResultRow("mla", "avdigits-hard", "efficiency", r,
                                              variant=f"resnet18, engine{'' if fmt == 'contiguous' else ', ' + fmt} / reference code"))
                        lines.append(f"resnet18 mla {fmt}: engine / reference code {sum(r) / len(r):.2f}x "
                                     f"(reference {sum(refs) / len(refs):.1f} samples/s)")
                    print(lines[-1], flush=True)
        if args.options:
            cfg = _config("default", "mla", args.steps, args.threads, out, [])
            for name, kwargs in (("bf16 autocast", {"bf16": True}), ("torch.compile", {"compile_model": True})):
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
                  f"samples/s of the 2nd epoch of --steps batches as logged; bare loop: the same model, optimiser and "
                  f"memory format, plain DataLoader, forward/backward/step only (MLA: one step per modality, no HGM); "
                  f"reference code: the official MLA code's training step on the same data (features precomputed); "
                  f"{args.repeats} alternating repeats per row; ResNet-18 rows use a third of the steps"),
        notes="\n".join(f"- {line}" for line in lines),
    )
    print(md.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
