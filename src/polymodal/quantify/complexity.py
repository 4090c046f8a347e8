"""What a model costs in inference: parameters per component, FLOPs per sample
(``torch.utils.flop_counter.FlopCounterMode``: matrix products and convolutions, counted as 2 per
multiply-add), latency per batch (median of timed repeats after a warm-up) and the peak memory of the tensors
a batch's forward pass allocates (weights excluded), tracked by a ``TorchDispatchMode`` that adds every
output's storage and subtracts it when freed, so the figure is the same on every machine; on a GPU
``torch.cuda.max_memory_allocated`` is reported beside it."""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode


@dataclass
class Complexity:
    """params: component -> parameter count (``encoder.<m>``, ``fusion``, ``total``); flops_per_sample;
    latency_ms: median milliseconds per batch of ``batch_size``; peak_bytes: peak tensor memory of one batch."""

    params: dict[str, int]
    flops_per_sample: float | None
    latency_ms: float
    batch_size: int
    peak_bytes: int
    device: str


class _PeakMemory(TorchDispatchMode):
    """Live bytes of the storages created under the mode, and their peak."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._seen: set[int] = set()

    def _free(self, key: int, size: int) -> None:
        self.live -= size
        self._seen.discard(key)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and not t.is_meta:
                st = t.untyped_storage()
                key = st.data_ptr()
                if key and key not in self._seen:
                    size = st.nbytes()
                    self._seen.add(key)
                    self.live += size
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(st, self._free, key, size)
        return out


def count_params(model: Any) -> dict[str, int]:
    """Parameters of each encoder, of the fusion and in total."""
    out = {f"encoder.{m}": sum(p.numel() for p in enc.parameters()) for m, enc in model.encoders.items()}
    out["fusion"] = sum(p.numel() for p in model.fusion.parameters())
    out["total"] = sum(p.numel() for p in model.parameters())
    return out


@torch.no_grad()
def complexity(model: Any, strategy: Any, batch: Any, *, repeats: int = 5) -> Complexity:
    """The costs of ``strategy.predict(model, batch)`` (a real batch of the split)."""
    model.eval()
    n = batch.size
    flops: float | None
    try:
        counter = FlopCounterMode(display=False)
        with counter:
            strategy.predict(model, batch)
        flops = counter.get_total_flops() / n
    except Exception:  # noqa: BLE001 - an operator the counter cannot trace leaves the figure out, not the report
        flops = None
    mode = _PeakMemory()
    with mode:
        strategy.predict(model, batch)
    strategy.predict(model, batch)  # warm-up
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        strategy.predict(model, batch)
        times.append(time.perf_counter() - t0)
    device = str(next(model.parameters()).device)
    return Complexity(count_params(model), flops, float(np.median(times) * 1000), n, int(mode.peak), device)


__all__ = ["Complexity", "complexity", "count_params"]
