"""Every registered fusion (tiny variant) x {1, 2, 3 modalities} x {missing-modality patterns}.

Absent slots are filled with NaN / inf: outputs and gradients must stay finite, absent slots must
get zero gradient, and the outputs must equal those computed with zeros in the absent slots.
"""

from __future__ import annotations

import pytest
import torch

from polymodal.fusion import FUSIONS, Fusion

DIMS = {"a": 5, "b": 7, "c": 6}  # feature width (or low-level width) per modality
LENGTHS = {"a": 3, "b": 5, "c": 4}  # sequence length per modality, for sequence-level fusions
B, C = 6, 3
SCENARIOS = ("all_present", "missing_in_some_rows", "absent_from_batch")


def build(name: str, n_modalities: int) -> tuple[Fusion, dict[str, int]]:
    """Tiny fusion over the first n modalities; equal widths if the fusion demands them."""
    entry = FUSIONS.get(name)
    dims = dict(list(DIMS.items())[:n_modalities])
    try:
        return entry.factory(in_dims=dims, num_outputs=C, **entry.tiny), dims
    except ValueError as err:
        if "model.width" not in str(err):
            raise
        dims = {m: 6 for m in dims}
        return entry.factory(in_dims=dims, num_outputs=C, **entry.tiny), dims


def make_features(fusion: Fusion, dims: dict[str, int], seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    if fusion.input_level == "sequence":
        return {m: torch.randn(B, LENGTHS[m], d, generator=gen) for m, d in dims.items()}
    return {m: torch.randn(B, d, generator=gen) for m, d in dims.items()}


def make_present(names: list[str], scenario: str) -> dict[str, torch.Tensor]:
    present = {m: torch.ones(B, dtype=torch.bool) for m in names}
    last = names[-1]
    if scenario == "missing_in_some_rows":
        present[last][[0, 2]] = False
        for m in names:  # row 1 has nothing present
            present[m][1] = False
    elif scenario == "absent_from_batch":
        present[last][:] = False
    return present


def fill_absent(features: dict[str, torch.Tensor], present: dict[str, torch.Tensor], garbage: bool):
    """Absent slots -> NaN / +inf / -inf (garbage) or zeros; returns leaf tensors that require grad."""
    out = {}
    for m, x in features.items():
        mask = present[m].view(-1, *([1] * (x.dim() - 1)))
        if garbage:
            fill = torch.full_like(x, float("nan"))
            fill.view(-1)[::3] = float("inf")
            fill.view(-1)[1::3] = -float("inf")
        else:
            fill = torch.zeros_like(x)
        out[m] = torch.where(mask, x, fill).requires_grad_(True)
    return out


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("n_modalities", [1, 2, 3])
@pytest.mark.parametrize("name", FUSIONS.names())
def test_fusion_forward_backward_with_missing(name: str, n_modalities: int, scenario: str) -> None:
    torch.manual_seed(0)
    fusion, dims = build(name, n_modalities)
    names = list(dims)
    present = make_present(names, scenario)
    clean = make_features(fusion, dims)
    feats = fill_absent(clean, present, garbage=True)

    fusion.train()
    out = fusion(feats, present)
    assert out.logits.shape == (B, C)
    assert torch.isfinite(out.logits).all(), f"{name}: non-finite logits with garbage in absent slots"
    if fusion.yields_per_modality:
        assert out.per_modality is not None and list(out.per_modality) == names
        for m, logits in out.per_modality.items():
            assert logits.shape == (B, C), m
            assert torch.isfinite(logits).all(), m
    else:
        assert out.per_modality is None

    loss = out.logits.square().sum()
    if out.per_modality is not None:
        loss = loss + sum(v.square().sum() for v in out.per_modality.values())
    loss.backward()
    for m, x in feats.items():
        assert x.grad is not None and torch.isfinite(x.grad).all(), f"{name}: bad gradient for {m}"
        absent_grad = x.grad[~present[m]]
        assert torch.equal(absent_grad, torch.zeros_like(absent_grad)), f"{name}: absent {m} got gradient"
        if bool(present[m].any()):  # present data does reach the output
            assert x.grad[present[m]].abs().sum() > 0, f"{name}: present {m} got no gradient"
    grads = [p.grad for p in fusion.parameters() if p.grad is not None]
    assert grads, f"{name}: no parameter received a gradient"
    assert all(torch.isfinite(g).all() for g in grads), f"{name}: non-finite parameter gradient"

    fusion.eval()
    with torch.no_grad():
        garbage_out = fusion(feats, present)
        zeros_out = fusion(fill_absent(clean, present, garbage=False), present)
    torch.testing.assert_close(garbage_out.logits, zeros_out.logits, rtol=0, atol=0)
    if garbage_out.per_modality is not None:
        for m in names:
            torch.testing.assert_close(garbage_out.per_modality[m], zeros_out.per_modality[m], rtol=0, atol=0)


@pytest.mark.parametrize("name", FUSIONS.names())
def test_fusion_batch_with_nothing_present_is_finite(name: str) -> None:
    torch.manual_seed(0)
    fusion, dims = build(name, 2)
    present = {m: torch.zeros(B, dtype=torch.bool) for m in dims}
    feats = fill_absent(make_features(fusion, dims), present, garbage=True)
    out = fusion(feats, present)
    assert out.logits.shape == (B, C) and torch.isfinite(out.logits).all()
    out.logits.sum().backward()
    for x in feats.values():
        assert torch.equal(x.grad, torch.zeros_like(x.grad))


@pytest.mark.parametrize("name", FUSIONS.names())
def test_fusion_rows_are_independent(name: str) -> None:
    """A row's logits do not depend on the other rows of the batch (no leakage across samples)."""
    torch.manual_seed(0)
    fusion, dims = build(name, 3)
    fusion.eval()
    present = make_present(list(dims), "missing_in_some_rows")
    feats = make_features(fusion, dims)
    with torch.no_grad():
        full = fusion(feats, present).logits
        for row in (0, 1, 3):
            one = fusion({m: x[row : row + 1] for m, x in feats.items()}, {m: p[row : row + 1] for m, p in present.items()})
            torch.testing.assert_close(one.logits[0], full[row], rtol=1e-5, atol=1e-5)
