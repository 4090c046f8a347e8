"""Objectives that make the embeddings of several modalities agree (docs/coordinated.md).

Each objective is a plain function on embeddings plus an ``nn.Module`` that owns its learnable
parameters:

- :func:`clip_loss` / :class:`CLIPLoss`: symmetric InfoNCE (Radford et al. 2021). Logits are
  ``exp(s) * a @ b.T`` with a learnable log-scale ``s`` initialised to ``log(1 / 0.07)`` and clamped so
  that the scale never exceeds 100; the loss is the mean of the cross-entropies of the rows (a -> b)
  and of the columns (b -> a), the matching pair of each row being the positive.
- :func:`siglip_loss` / :class:`SigLIPLoss`: the pairwise sigmoid loss (Zhai et al. 2023), logits
  ``exp(t') * a @ b.T + bias`` with ``t' = log 10`` and ``bias = -10`` at initialisation; label +1 on
  the diagonal and -1 elsewhere; ``-(1/N) sum_ij log sigmoid(z_ij * logit_ij)``. ``init_bias="data"``
  starts the bias from the first training batch instead: ``b = -ln(N-1) - t * mean off-diagonal
  cosine``, the bias at which an average negative pair has odds ``1/(N-1)`` (docs/coordinated.md).
- :func:`cca_correlation` / :func:`dcca_loss` / :class:`DCCALoss`: deep CCA (Andrew et al. 2013): the
  negative sum of the top-k canonical correlations of two views, with ridge terms ``r1``, ``r2`` added
  to the views' covariances. :class:`DCCALoss` keeps the means and covariances that map embeddings into
  the canonical space at test time (:meth:`DCCALoss.project`): :meth:`DCCALoss.fit` sets them from the
  full training embeddings of the trained towers (linear CCA on the towers' outputs, as Andrew et al.
  do; the contrastive strategy calls it before every evaluation); running averages of per-batch
  statistics are kept during training as a fallback only.

More than two modalities are combined by :func:`modality_pairs`: every modality against one anchor
(ImageBind-style) or all pairs; :func:`pairwise_objective` averages a pair loss over those pairs.
In-batch negatives can come from every process of a distributed run: gather the embeddings first with
:func:`polymodal.coordinated.distributed.gather_with_grad`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

CLIP_INIT_SCALE = math.log(1 / 0.07)
CLIP_MAX_SCALE = 100.0
SIGLIP_INIT_SCALE = math.log(10.0)
SIGLIP_INIT_BIAS = -10.0
PAIRINGS = ("anchor", "all_pairs")


def _check_pair(a: Tensor, b: Tensor, name: str) -> None:
    if a.dim() != 2 or b.dim() != 2 or a.shape != b.shape:
        raise ValueError(
            f"{name}: expected two (N, D) embedding tensors of the same shape, one row per pair; "
            f"got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def clip_loss(a: Tensor, b: Tensor, log_scale: Tensor | float, max_scale: float = CLIP_MAX_SCALE) -> Tensor:
    """Symmetric InfoNCE of paired embeddings ``a``, ``b`` (N, D) (row i of each is a positive pair).

    logits = min(exp(log_scale), max_scale) * a @ b.T;
    loss = (CE(logits, arange(N)) + CE(logits.T, arange(N))) / 2, in nats.
    The embeddings are used as given (pass L2-normalised rows for cosine similarities).
    """
    _check_pair(a, b, "clip_loss")
    log_scale = torch.as_tensor(log_scale, dtype=a.dtype, device=a.device)
    scale = log_scale.clamp(max=math.log(max_scale)).exp()
    logits = scale * a @ b.T
    target = torch.arange(a.shape[0], device=a.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def siglip_loss(a: Tensor, b: Tensor, log_scale: Tensor | float, bias: Tensor | float) -> Tensor:
    """Pairwise sigmoid loss of paired embeddings ``a``, ``b`` (N, D).

    logit_ij = exp(log_scale) * a_i . b_j + bias, z_ij = +1 if i == j else -1;
    loss = -(1/N) sum_ij log sigmoid(z_ij * logit_ij)  (the paper's normalisation by the batch size).
    """
    _check_pair(a, b, "siglip_loss")
    log_scale = torch.as_tensor(log_scale, dtype=a.dtype, device=a.device)
    logits = log_scale.exp() * a @ b.T + bias
    z = 2 * torch.eye(a.shape[0], dtype=a.dtype, device=a.device) - 1
    return -F.logsigmoid(z * logits).sum() / a.shape[0]


def _inv_sqrt(cov: Tensor, eps: float) -> Tensor:
    """Inverse square root of a symmetric positive (semi-)definite matrix through its eigenvalues."""
    w, v = torch.linalg.eigh(cov)
    return v @ torch.diag(w.clamp(min=eps).rsqrt()) @ v.T


def _whitened_cross(
    cov11: Tensor, cov22: Tensor, cov12: Tensor, r1: float, r2: float, eps: float
) -> tuple[Tensor, Tensor, Tensor]:
    """T = (S11 + r1 I)^-1/2 S12 (S22 + r2 I)^-1/2 and the two inverse square roots."""
    eye1 = torch.eye(cov11.shape[0], dtype=cov11.dtype, device=cov11.device)
    eye2 = torch.eye(cov22.shape[0], dtype=cov22.dtype, device=cov22.device)
    w1, w2 = _inv_sqrt(cov11 + r1 * eye1, eps), _inv_sqrt(cov22 + r2 * eye2, eps)
    return w1 @ cov12 @ w2, w1, w2


def cca_correlation(
    h1: Tensor, h2: Tensor, k: int | None = None, r1: float = 1e-3, r2: float = 1e-3, eps: float = 1e-9
) -> Tensor:
    """Sum of the top-``k`` canonical correlations of two views ``h1`` (N, o1) and ``h2`` (N, o2).

    Andrew et al. 2013: with centred views, S12 = H1'H2 / (N-1), S11 = H1'H1 / (N-1) + r1 I,
    S22 = H2'H2 / (N-1) + r2 I, T = S11^-1/2 S12 S22^-1/2; the correlations are T's singular values
    (computed with Cholesky whitening, which has the same singular values and a stable gradient).
    ``k`` defaults to min(o1, o2) (the trace norm of T). Differentiable (computed in float64).
    """
    if h1.dim() != 2 or h2.dim() != 2 or h1.shape[0] != h2.shape[0]:
        raise ValueError(
            f"cca_correlation: expected (N, o1) and (N, o2) views with the same N; got {tuple(h1.shape)} and {tuple(h2.shape)}"
        )
    n = h1.shape[0]
    if n < 2:
        raise ValueError(f"cca_correlation: needs at least 2 rows to estimate covariances; got {n} (use a larger batch)")
    kmax = min(h1.shape[1], h2.shape[1])
    k = kmax if k is None else k
    if not 1 <= k <= kmax:
        raise ValueError(f"cca_correlation: k={k} must be in [1, {kmax}] (the smaller view width)")
    x1, x2 = h1.double() - h1.double().mean(0), h2.double() - h2.double().mean(0)
    eye1 = torch.eye(x1.shape[1], dtype=x1.dtype, device=x1.device)
    eye2 = torch.eye(x2.shape[1], dtype=x2.dtype, device=x2.device)
    # Whitening by Cholesky factors S = L L' instead of the symmetric S^-1/2: T = L1^-1 S12 L2^-T differs
    # from S11^-1/2 S12 S22^-1/2 by orthogonal factors only, so it has the same singular values, and its
    # gradient has no 1 / (lambda_i - lambda_j) terms (an eigendecomposition's backward is NaN when
    # eigenvalues coincide, as they do for the unused directions of an embedding).
    l1 = torch.linalg.cholesky(x1.T @ x1 / (n - 1) + r1 * eye1)
    l2 = torch.linalg.cholesky(x2.T @ x2 / (n - 1) + r2 * eye2)
    a = torch.linalg.solve_triangular(l1, x1.T @ x2 / (n - 1), upper=False)  # L1^-1 S12
    t = torch.linalg.solve_triangular(l2, a.T, upper=False).T  # L1^-1 S12 L2^-T
    # the top-k singular values of T: square roots of the top-k eigenvalues of T'T (eigenvalues alone
    # have a gradient that stays finite when they coincide)
    ev = torch.linalg.eigvalsh(t.T @ t).clamp(min=eps)
    return ev.flip(0)[:k].sqrt().sum().to(h1.dtype)


def dcca_loss(h1: Tensor, h2: Tensor, k: int | None = None, r1: float = 1e-3, r2: float = 1e-3) -> Tensor:
    """Deep CCA loss: minus :func:`cca_correlation` (maximising the top-k canonical correlations)."""
    return -cca_correlation(h1, h2, k, r1, r2)


class CLIPLoss(nn.Module):
    """:func:`clip_loss` with a learnable log-scale (init ``log(1/0.07)``, scale clamped at ``max_scale``).

    The parameter itself is clamped in place after each optimiser step by :meth:`clamp_` (as CLIP does),
    and the clamp inside the loss keeps the scale bounded between steps too.
    """

    name = "clip"

    def __init__(self, init_scale: float = CLIP_INIT_SCALE, max_scale: float = CLIP_MAX_SCALE) -> None:
        super().__init__()
        if max_scale <= 0:
            raise ValueError(f"CLIPLoss: max_scale must be positive; got {max_scale}")
        self.max_scale = float(max_scale)
        self.log_scale = nn.Parameter(torch.tensor(float(init_scale)))

    @property
    def scale(self) -> float:
        return float(self.log_scale.detach().clamp(max=math.log(self.max_scale)).exp())

    @torch.no_grad()
    def clamp_(self) -> None:
        """Keep the log-scale at or below ``log(max_scale)``."""
        self.log_scale.clamp_(max=math.log(self.max_scale))

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return clip_loss(a, b, self.log_scale, self.max_scale)


def siglip_data_bias(a: Tensor, b: Tensor, log_scale: Tensor | float) -> float:
    """The data-dependent SigLIP bias of a batch of paired embeddings ``a``, ``b`` (N, D), N >= 2:
    ``-ln(N-1) - exp(log_scale) * mean_{i != j} a_i . b_j``.

    At this bias a negative pair of average cosine has odds ``1/(N-1)`` (probability ``1/N``), so the N-1
    negatives of a row carry about as much probability mass as its positive would at even odds: the loss
    starts where positives and negatives pull with comparable strength, instead of at a fixed bias of -10.
    """
    _check_pair(a, b, "siglip_data_bias")
    n = a.shape[0]
    if n < 2:
        raise ValueError(f"siglip_data_bias: needs at least 2 pairs (off-diagonal cosines); got {n}")
    with torch.no_grad():
        sims = a.detach().double() @ b.detach().double().T
        off = (sims.sum() - sims.diagonal().sum()) / (n * (n - 1))
        t = float(torch.as_tensor(log_scale, dtype=torch.float64).exp())
    return float(-math.log(n - 1) - t * off)


class SigLIPLoss(nn.Module):
    """:func:`siglip_loss` with a learnable log-scale (init log 10) and bias (init -10, or ``"data"``).

    ``init_bias="data"``: the bias is set by :func:`siglip_data_bias` on the first training batch the
    module sees (the buffer ``bias_initialised`` records it, so a resumed run does not reset it).
    """

    name = "siglip"

    def __init__(self, init_scale: float = SIGLIP_INIT_SCALE, init_bias: float | str = SIGLIP_INIT_BIAS) -> None:
        super().__init__()
        data_bias = isinstance(init_bias, str)
        if data_bias and init_bias != "data":
            raise ValueError(f"SigLIPLoss: init_bias must be a number or 'data'; got {init_bias!r}")
        self.log_scale = nn.Parameter(torch.tensor(float(init_scale)))
        self.bias = nn.Parameter(torch.tensor(SIGLIP_INIT_BIAS if data_bias else float(init_bias)))
        self.data_bias = data_bias
        self.register_buffer("bias_initialised", torch.tensor(not data_bias))

    @property
    def scale(self) -> float:
        return float(self.log_scale.detach().exp())

    def clamp_(self) -> None:
        """Nothing to clamp (SigLIP's scale is unbounded); present for a uniform interface."""

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        if self.training and not bool(self.bias_initialised) and a.shape[0] >= 2:
            with torch.no_grad():
                self.bias.fill_(siglip_data_bias(a, b, self.log_scale))
                self.bias_initialised.fill_(True)
        return siglip_loss(a, b, self.log_scale, self.bias)


class DCCALoss(nn.Module):
    """:func:`dcca_loss` of two views, plus the means and covariances of both views.

    Deep CCA's loss is invariant to invertible linear maps of each view, so the raw outputs of two
    towers are not comparable by cosine similarity. :meth:`project` maps a view into the top-``k``
    canonical directions of the stored statistics, where matching pairs have correlated coordinates and
    a dot product compares the two views. :meth:`fit` sets the statistics from the full training
    embeddings of the trained towers (what the contrastive strategy does before every evaluation);
    during training the module also folds exponential moving averages (``momentum``) of per-batch
    statistics into them, a fallback for code that evaluates without refitting.
    """

    name = "dcca"

    def __init__(self, dim: int, k: int | None = None, r1: float = 1e-3, r2: float = 1e-3, momentum: float = 0.1) -> None:
        super().__init__()
        if k is not None and not 1 <= k <= dim:
            raise ValueError(f"DCCALoss: k={k} must be in [1, {dim}] (the embedding width)")
        if not 0 < momentum <= 1:
            raise ValueError(f"DCCALoss: momentum must be in (0, 1]; got {momentum}")
        self.dim, self.k, self.r1, self.r2, self.momentum = dim, k, r1, r2, momentum
        self.register_buffer("mean", torch.zeros(2, dim, dtype=torch.float64))
        self.register_buffer("cov", torch.eye(2 * dim, dtype=torch.float64))  # joint covariance of [h1, h2]
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def clamp_(self) -> None:
        """Nothing to clamp; present for a uniform interface."""

    @torch.no_grad()
    def fit(self, h1: Tensor, h2: Tensor) -> None:
        """Replace the statistics by the means and covariances of the full views ``h1``, ``h2`` (N, dim):
        linear CCA refitted on all training embeddings of the trained towers (Andrew et al. 2013)."""
        if h1.dim() != 2 or h1.shape != h2.shape or h1.shape[1] != self.dim:
            raise ValueError(f"DCCALoss.fit: expected two (N, {self.dim}) views of the same shape; "
                             f"got {tuple(h1.shape)} and {tuple(h2.shape)}")
        if h1.shape[0] < 2:
            raise ValueError(f"DCCALoss.fit: needs at least 2 paired rows; got {h1.shape[0]}")
        x = torch.cat([h1, h2], dim=1).double()
        mean = x.mean(0)
        xc = x - mean
        self.mean.copy_(mean.view(2, -1))
        self.cov.copy_(xc.T @ xc / (x.shape[0] - 1))
        self.updates += 1

    @torch.no_grad()
    def update(self, h1: Tensor, h2: Tensor) -> None:
        """Fold one batch's means and covariances into the running statistics (the first batch replaces them)."""
        x = torch.cat([h1, h2], dim=1).detach().double()
        mean = x.mean(0)
        xc = x - mean
        cov = xc.T @ xc / max(x.shape[0] - 1, 1)
        m = 1.0 if int(self.updates) == 0 else self.momentum
        self.mean.mul_(1 - m).add_(m * mean.view(2, -1))
        self.cov.mul_(1 - m).add_(m * cov)
        self.updates += 1

    def forward(self, h1: Tensor, h2: Tensor) -> Tensor:
        if self.training:
            self.update(h1, h2)
        return dcca_loss(h1, h2, self.k, self.r1, self.r2)

    def projections(self) -> tuple[Tensor, Tensor]:
        """(dim, k) maps of view 1 and view 2 into the canonical space: W1 U_k and W2 V_k, where
        T = W1 S12 W2 = U S V' from the stored statistics."""
        d = self.dim
        c = self.cov
        t, w1, w2 = _whitened_cross(c[:d, :d], c[d:, d:], c[:d, d:], self.r1, self.r2, 1e-9)
        u, _, vh = torch.linalg.svd(t)
        k = self.k or d
        return w1 @ u[:, :k], w2 @ vh.T[:, :k]

    def project(self, view: int, h: Tensor) -> Tensor:
        """Embeddings ``h`` (N, dim) of view 0 or 1 in the top-k canonical coordinates (N, k), centred."""
        if view not in (0, 1):
            raise ValueError(f"DCCALoss.project: view must be 0 or 1; got {view}")
        p = self.projections()[view]
        return ((h.double() - self.mean[view]) @ p).to(h.dtype)


def build_objective(name: str, dim: int, **kwargs: float | int | str | None) -> nn.Module:
    """The objective module ``name`` ("clip", "siglip" or "dcca") for embeddings of width ``dim``."""
    if name == "clip":
        return CLIPLoss(**kwargs)  # type: ignore[arg-type]
    if name == "siglip":
        return SigLIPLoss(**kwargs)  # type: ignore[arg-type]
    if name == "dcca":
        return DCCALoss(dim, **kwargs)  # type: ignore[arg-type]
    raise ValueError(f"unknown contrastive loss {name!r}; expected one of 'clip', 'siglip', 'dcca'")


def modality_pairs(modalities: Sequence[str], pairing: str = "anchor", anchor: str | None = None) -> list[tuple[str, str]]:
    """The (anchor-side, other) modality pairs an objective is applied to.

    pairing="anchor":    (anchor, m) for every other modality m (ImageBind: each modality is bound to
                         one anchor; ``anchor`` defaults to the first modality)
    pairing="all_pairs": every unordered pair, in the given order
    """
    mods = list(modalities)
    if len(mods) < 2:
        raise ValueError(f"a coordinated objective needs at least two modalities; got {mods}")
    if pairing == "all_pairs":
        return list(itertools.combinations(mods, 2))
    if pairing != "anchor":
        raise ValueError(f"pairing {pairing!r}; expected one of {PAIRINGS}")
    anchor = mods[0] if anchor is None else anchor
    if anchor not in mods:
        raise ValueError(f"anchor modality {anchor!r} is not one of the modalities {mods}")
    return [(anchor, m) for m in mods if m != anchor]


def pairwise_objective(
    embeddings: Mapping[str, Tensor],
    pairs: Sequence[tuple[str, str]],
    loss: Callable[[Tensor, Tensor], Tensor],
    present: Mapping[str, Tensor] | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Mean of ``loss(embeddings[a][rows], embeddings[b][rows])`` over ``pairs``; ``rows`` are the rows
    where both modalities are present (all rows when ``present`` is None). A pair with fewer than two
    such rows is skipped (no negatives); when every pair is skipped the result is a zero that still
    depends on the embeddings. Returns the mean and each pair's loss (``"a-b"`` -> detached scalar).
    """
    terms: list[Tensor] = []
    logs: dict[str, Tensor] = {}
    for a, b in pairs:
        ea, eb = embeddings[a], embeddings[b]
        if present is not None:
            rows = present[a] & present[b]
            if int(rows.sum()) < 2:
                continue
            if not bool(rows.all()):
                ea, eb = ea[rows], eb[rows]
        elif ea.shape[0] < 2:
            continue
        term = loss(ea, eb)
        terms.append(term)
        logs[f"{a}-{b}"] = term.detach()
    if not terms:
        return sum(e.sum() for e in embeddings.values()) * 0.0, logs  # type: ignore[return-value]
    return torch.stack(terms).mean(), logs


__all__ = [
    "CLIPLoss",
    "DCCALoss",
    "PAIRINGS",
    "SigLIPLoss",
    "build_objective",
    "cca_correlation",
    "clip_loss",
    "dcca_loss",
    "modality_pairs",
    "pairwise_objective",
    "siglip_data_bias",
    "siglip_loss",
]
