"""How a model combines its modalities: EMAP (Hessel & Lee, EMNLP 2020) and the perceptual score
(Gat et al., NeurIPS 2021), both through a :class:`~polymodal.quantify.probe.Probe`.

EMAP, the empirical multimodally-additive projection: the model's outputs f (logits) projected onto sums of
functions of one modality each, under the empirical distribution of the split,

    f_hat(x) = sum_m E_j[ f(x_m, x_{-m}^j) ] - (M - 1) * E_{i, j}[ f(x_m^i, x_{-m}^j) ]

where x_{-m}^j are the other modalities of partner sample j (for two modalities this is exactly Hessel &
Lee's formula; for more, the partners' other modalities travel together and the constant is the mean over
modalities of E_{i,j}). If the projection scores as well as the model, the model's predictions need no
cross-modal interaction; an additive model equals its projection. The expectations run over ``partners``
samples drawn once (all of them when the split is no larger): the same partners for every row and term, so
the projection stays exact for additive models.

Perceptual score of modality m: the task's monitor lost when m is permuted across the split's samples
(each sample gets another sample's m), averaged over ``permutations`` random permutations; also divided by
the model's own score (Gat et al.'s normalised form).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from polymodal.quantify.probe import Probe


def _partners(n: int, partners: int, seed: int) -> np.ndarray:
    if partners >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=partners, replace=False))


@torch.no_grad()
def emap_logits(probe: Probe, *, partners: int = 256, seed: int = 0, chunk: int = 4096) -> Tensor:
    """(N, C) the EMAP projection of the probe's fused outputs (rows in the probe's order); ``chunk``: rows of
    (sample, partner) pairs per pass."""
    js = torch.as_tensor(_partners(probe.n, partners, seed))
    k, n = len(js), probe.n
    own = torch.arange(n).repeat_interleave(k)  # (N K,) row i, k times
    other = js.repeat(n)  # (N K,) the partners, for every row
    terms = []
    for m in probe.modalities:
        source = {o: (own if o == m else other) for o in probe.modalities}
        out = probe.logits(source=source, chunk=chunk)  # (N K, C)
        terms.append(out.view(n, k, -1).mean(1))  # E_j f(x_m^i, x_{-m}^j)
    constant = torch.stack([t[js].mean(0) for t in terms]).mean(0)
    return sum(terms) - (len(terms) - 1) * constant  # type: ignore[return-value]


@dataclass
class Emap:
    """The model's metrics and its projection's; ``gap``: the monitor of the model minus the projection's
    (signed so that a positive gap is what the interactions add)."""

    model: dict[str, float | None]
    projection: dict[str, float | None]
    gap: float
    partners: int


def emap(probe: Probe, *, partners: int = 256, seed: int = 0) -> Emap:
    """EMAP of the probe's model: its metrics against the additive projection's."""
    full = probe.logits()
    proj = emap_logits(probe, partners=partners, seed=seed)
    return Emap(probe.metrics(full), probe.metrics(proj), probe.score(full) - probe.score(proj),
                min(partners, probe.n))


@dataclass
class PerceptualScore:
    """modality -> monitor lost when it is permuted (mean over permutations, its std), and the loss divided
    by the model's score (``normalised``)."""

    drop: dict[str, float]
    std: dict[str, float]
    normalised: dict[str, float | None]
    permutations: int


def perceptual_score(probe: Probe, *, permutations: int = 5, seed: int = 0) -> PerceptualScore:
    """Gat et al.'s perceptual score of every modality (see the module docstring)."""
    if permutations < 1:
        raise ValueError(f"permutations={permutations}; expected at least 1")
    rng = np.random.default_rng(seed)
    base = probe.score(probe.logits())
    drop, std, norm = {}, {}, {}
    for m in probe.modalities:
        lost = []
        for _ in range(permutations):
            perm = torch.as_tensor(rng.permutation(probe.n))
            out = probe.logits(source={m: perm})
            lost.append(base - probe.score(out))
        drop[m] = float(np.mean(lost))
        std[m] = float(np.std(lost, ddof=1)) if len(lost) > 1 else 0.0
        norm[m] = drop[m] / abs(base) if base != 0 else None
    return PerceptualScore(drop, std, norm, permutations)


__all__ = ["Emap", "PerceptualScore", "emap", "emap_logits", "perceptual_score"]
