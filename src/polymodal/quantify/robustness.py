"""Robustness curves: the task's monitor as one modality is corrupted with increasing noise, or goes missing
in a growing share of the samples, through a :class:`~polymodal.quantify.probe.Probe`.

Noise levels t run from 0 (clean) to 1 in equal steps; each modality kind has its corruption, registered in
:data:`CORRUPTIONS` (``@CORRUPTIONS.register("<kind>")``; docs/quantify.md states each choice):

    audio       white noise at a signal-to-noise ratio of 30 - 40 t dB (20, 10, 0, -10 dB at t = 0.25 ... 1),
                the power measured per clip; on cached log-mel inputs the noise is added in the mel power
                domain with the same power in every mel bin and frame
    image, video, timeseries, tabular
                Gaussian noise of standard deviation 2 t times the modality's standard deviation over the split
    text        a share t of the (non-padding) tokens replaced by tokens drawn uniformly from the vocabulary

Missing rates r run from 0 to 1: a share r of the samples that have the modality lose it (presence mask).

MultiBench's summaries (Liang et al., NeurIPS 2021 datasets track): *relative robustness* is the area under
the curve of the monitor against the noise level (trapezoids over t in [0, 1]); *effective robustness* is
the sum over levels of the model's monitor minus a late-fusion baseline's shifted by the clean gap,
sum_t f(t) - (lf(t) + f(0) - lf(0)). The baseline here is the late fusion of the model's own unimodal
paths: the mean of the outputs of each modality alone (corrupted the same way), so the number says whether
the model's way of combining modalities degrades more gracefully than averaging its branches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch
from torch import Tensor

from polymodal.data.schema import Modality
from polymodal.quantify.probe import Probe
from polymodal.registry import Registry

Corruption = Callable[..., Tensor]
CORRUPTIONS: Registry[Tensor] = Registry("corruption")
"""modality kind -> ``corrupt(x, present, level, modality, scale, rng) -> x'`` (x: a batch of the modality's
inputs; level in [0, 1], 0 returns x unchanged; scale: the modality's standard deviation over the split)."""

LOGMEL_EPS = 1e-6  # the log-mel front end's eps (polymodal.data.transforms.LogMelConfig)


def _gaussian(x: Tensor, level: float, scale: float, rng: np.random.Generator) -> Tensor:
    if level <= 0:
        return x
    noise = torch.from_numpy(rng.standard_normal(tuple(x.shape))).to(x.dtype)
    return x + 2.0 * level * scale * noise


def snr_db(level: float) -> float:
    """The audio corruption's signal-to-noise ratio at noise level ``level`` > 0, in dB."""
    return 30.0 - 40.0 * level


@CORRUPTIONS.register("audio", tiny={"level": 0.5})
def corrupt_audio(x: Tensor, present: Tensor | None = None, level: float = 0.5, modality: Modality | None = None,
                  scale: float = 1.0, rng: np.random.Generator | None = None) -> Tensor:
    """White noise at 30 - 40 t dB SNR per clip (waveforms, or in the mel power domain of cached log-mel)."""
    if level <= 0:
        return x
    rng = rng or np.random.default_rng(0)
    ratio = 10 ** (snr_db(level) / 10)
    logmel = modality is not None and modality.representation == "logmel"
    if logmel:  # (B, n_mels, frames) log(mel power + eps)
        power = (x.exp() - LOGMEL_EPS).clamp_min(0)
        noise = power.flatten(1).mean(1).view(-1, *([1] * (x.dim() - 1))) / ratio
        return torch.log(power + noise + LOGMEL_EPS)
    p = (x.double() ** 2).flatten(1).mean(1).clamp_min(1e-12)
    g = torch.from_numpy(rng.standard_normal(tuple(x.shape)))
    return (x.double() + g * torch.sqrt(p / ratio).view(-1, *([1] * (x.dim() - 1)))).to(x.dtype)


def _register_gaussian(kind: str) -> None:
    def corrupt(x: Tensor, present: Tensor | None = None, level: float = 0.5, modality: Modality | None = None,
                scale: float = 1.0, rng: np.random.Generator | None = None) -> Tensor:
        return _gaussian(x, level, scale, rng or np.random.default_rng(0))

    corrupt.__doc__ = f"Gaussian noise of 2 t times the {kind} modality's standard deviation over the split."
    corrupt.__name__ = f"corrupt_{kind}"
    CORRUPTIONS.register(kind, tiny={"level": 0.5})(corrupt)


for _kind in ("image", "video", "timeseries", "tabular"):
    _register_gaussian(_kind)


@CORRUPTIONS.register("text", tiny={"level": 0.5})
def corrupt_text(x: Tensor, present: Tensor | None = None, level: float = 0.5, modality: Modality | None = None,
                 scale: float = 1.0, rng: np.random.Generator | None = None) -> Tensor:
    """A share t of the non-padding tokens replaced by tokens drawn uniformly from the vocabulary."""
    if level <= 0:
        return x
    rng = rng or np.random.default_rng(0)
    vocab = int((modality.extra.get("vocab_size") if modality is not None else None) or int(x.max()) + 1)
    hit = torch.from_numpy(rng.random(tuple(x.shape)) < level) & (x != 0)
    new = torch.from_numpy(rng.integers(1, max(vocab, 2), size=tuple(x.shape))).to(x.dtype)
    return torch.where(hit, new, x)


@dataclass
class Curve:
    """The monitor at each level of one modality's corruption (or missing rate); ``baseline``: the late
    fusion of the model's unimodal paths at the same levels (noise curves only)."""

    levels: list[float]
    values: list[float]
    baseline: list[float] = field(default_factory=list)

    @property
    def relative(self) -> float:
        """Area under the curve over levels in [0, 1] (MultiBench's relative robustness)."""
        return _area(self.levels, self.values)

    @property
    def effective(self) -> float | None:
        """sum_t f(t) - (lf(t) + f(0) - lf(0)) against the baseline (MultiBench's effective robustness)."""
        if not self.baseline:
            return None
        f, lf = np.asarray(self.values), np.asarray(self.baseline)
        return float(np.sum(f - (lf + f[0] - lf[0])))


def _area(levels: list[float], values: list[float]) -> float:
    x, y = np.asarray(levels, dtype=np.float64), np.asarray(values, dtype=np.float64)
    span = x[-1] - x[0] if len(x) > 1 else 1.0
    return float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(x)) / (span if span > 0 else 1.0)) if len(x) > 1 else float(y[0])


def levels_of(n: int) -> list[float]:
    """``n`` equally spaced levels from 0 to 1."""
    if n < 2:
        raise ValueError(f"robustness curves need at least 2 levels; got {n}")
    return [i / (n - 1) for i in range(n)]


def _scale(probe: Probe, m: str, seed: int = 0) -> float:
    """The standard deviation of modality ``m``'s inputs over the split's present rows (256 rows drawn with
    ``seed`` when the split is larger)."""
    ds = probe.dataset
    rows = np.arange(len(ds))
    if len(ds) > 256:
        rows = np.sort(np.random.default_rng(seed).choice(len(ds), size=256, replace=False))
    batch = ds.collate_fn()([ds[int(i)] for i in rows])
    x = batch.inputs[m][batch.present[m]]
    return float(x.float().std()) if x.numel() > 1 else 1.0


def _late_fusion(probe: Probe, feats: dict[str, Tensor]) -> Tensor:
    outs = [probe.logits([m], features=feats) for m in probe.modalities]
    return torch.stack(outs).mean(0)


def _apply(corrupt: Corruption, x: Tensor, present: Tensor, rng: np.random.Generator, *, level: float,
           modality: Modality, scale: float) -> Tensor:
    return corrupt(x, present, level=level, modality=modality, scale=scale, rng=rng)


def noise_curves(probe: Probe, levels: int = 5, seed: int = 0) -> dict[str, Curve]:
    """modality -> :class:`Curve` of the monitor as that modality's inputs are corrupted."""
    grid = levels_of(levels)
    schema = {mod.name: mod for mod in probe.dataset.schema}
    out = {}
    for m in probe.modalities:
        mod = schema[m]
        corrupt = CORRUPTIONS.get(mod.kind).factory
        scale = _scale(probe, m, seed)
        values, base = [], []
        for t in grid:
            if t == 0:
                feats = {m: probe.features[m]}
            else:
                transform = partial(_apply, corrupt, level=t, modality=mod, scale=scale)
                feats = {m: probe.encode(m, transform, seed=seed + int(round(1000 * t)))}
            values.append(probe.score(probe.logits(features=feats)))
            base.append(probe.score(_late_fusion(probe, feats)))
        out[m] = Curve(grid, values, base)
    return out


def missing_curves(probe: Probe, levels: int = 5, seed: int = 0) -> dict[str, Curve]:
    """modality -> :class:`Curve` of the monitor as a growing share of the samples lose that modality."""
    grid = levels_of(levels)
    out = {}
    for k, m in enumerate(probe.modalities):
        rng = np.random.default_rng(seed + k)
        u = torch.from_numpy(rng.random(probe.n))
        values = []
        for r in grid:
            drop = u < r if r < 1 else torch.ones(probe.n, dtype=torch.bool)
            values.append(probe.score(probe.logits(present={m: probe.present[m] & ~drop})))
        out[m] = Curve(grid, values)
    return out


def sign_note(probe: Probe) -> str:
    """How the curves' values read: the task's monitor, or minus it for a metric where lower is better."""
    mon = probe.task.monitor
    return mon if probe.task.mode == "max" else f"-{mon}"


__all__ = ["CORRUPTIONS", "Curve", "levels_of", "missing_curves", "noise_curves", "sign_note", "snr_db"]
