"""Fusion-specific behaviour, each numeric trick checked against a naive reference."""

from __future__ import annotations

import itertools

import pytest
import torch

from polymodal.fusion import FUSIONS
from polymodal.fusion.attention import MulTFusion
from polymodal.fusion.bilinear import BilinearFusion
from polymodal.fusion.concat import ConcatFusion
from polymodal.fusion.early import EarlyFusion
from polymodal.fusion.film import FiLMFusion
from polymodal.fusion.gated import GatedFusion
from polymodal.fusion.late import LateFusion
from polymodal.fusion.shared_head import SharedHeadFusion
from polymodal.fusion.tensor import LowRankFusion, TensorFusion

B, C = 5, 3


def rand_features(dims: dict[str, int], seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {m: torch.randn(B, d, generator=gen) for m, d in dims.items()}


def masks(**rows_absent: list[int]) -> dict[str, torch.Tensor]:
    out = {}
    for m, rows in rows_absent.items():
        p = torch.ones(B, dtype=torch.bool)
        p[rows] = False
        out[m] = p
    return out


# ---- late -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sum", "mean"])
def test_late_fuses_present_per_modality_logits(mode: str) -> None:
    torch.manual_seed(0)
    fusion = LateFusion({"a": 4, "b": 6, "c": 5}, C, mode=mode)
    feats = rand_features({"a": 4, "b": 6, "c": 5})
    present = masks(a=[0], b=[0, 2], c=[3])
    out = fusion(feats, present)
    for row in range(B):
        logits = [out.per_modality[m][row] for m in feats if present[m][row]]
        expected = torch.zeros(C) if not logits else torch.stack(logits).sum(0)
        if mode == "mean" and logits:
            expected = expected / len(logits)
        torch.testing.assert_close(out.logits[row], expected)


def test_late_learned_weights_are_a_softmax_over_present_and_nan_safe() -> None:
    torch.manual_seed(0)
    fusion = LateFusion({"a": 4, "b": 6}, C, mode="learned")
    with torch.no_grad():
        fusion.weight_logits.copy_(torch.tensor([0.3, -0.2]))
    feats = rand_features({"a": 4, "b": 6})
    present = masks(a=[1], b=[2])
    feats["b"][2] = float("nan")
    feats["a"][1] = float("inf")
    out = fusion(feats, present)
    w = torch.softmax(torch.tensor([0.3, -0.2]), 0)
    torch.testing.assert_close(out.logits[0], w[0] * out.per_modality["a"][0] + w[1] * out.per_modality["b"][0])
    torch.testing.assert_close(out.logits[1], out.per_modality["b"][1])  # only b present: weight 1
    torch.testing.assert_close(out.logits[2], out.per_modality["a"][2])
    out.logits.sum().backward()
    assert torch.isfinite(fusion.weight_logits.grad).all()
    assert torch.isfinite(fusion.heads["a"].weight.grad).all()


# ---- shared head ------------------------------------------------------------------------------------


def test_shared_head_uses_one_weight_for_all_modalities() -> None:
    torch.manual_seed(0)
    fusion = SharedHeadFusion({"a": 6, "b": 6, "c": 6}, C)
    assert [n for n, _ in fusion.named_parameters()] == ["head.weight", "head.bias"]
    feats = rand_features({"a": 6, "b": 6, "c": 6})
    present = masks(a=[], b=[1], c=[])
    out = fusion(feats, present)
    for m, x in feats.items():
        expected = x @ fusion.head.weight.T + fusion.head.bias
        expected[~present[m]] = fusion.head.bias
        torch.testing.assert_close(out.per_modality[m], expected)
    torch.testing.assert_close(out.logits[1], out.per_modality["a"][1] + out.per_modality["c"][1])
    fusion.zero_grad()
    out.per_modality["a"].sum().backward()  # only modality a's logits: still the one shared weight moves
    assert fusion.head.weight.grad.abs().sum() > 0


def test_shared_head_rejects_unequal_widths() -> None:
    with pytest.raises(ValueError, match=r"all feature widths must be equal.*'a': 6, 'b': 8.*set model\.width"):
        FUSIONS.create("shared_head", in_dims={"a": 6, "b": 8}, num_outputs=C)


def test_shared_head_mean_divides_by_number_present() -> None:
    torch.manual_seed(0)
    fusion = SharedHeadFusion({"a": 4, "b": 4}, C, mode="mean")
    feats = rand_features({"a": 4, "b": 4})
    present = masks(a=[0], b=[])
    out = fusion(feats, present)
    torch.testing.assert_close(out.logits[0], out.per_modality["b"][0])
    torch.testing.assert_close(out.logits[1], (out.per_modality["a"][1] + out.per_modality["b"][1]) / 2)


# ---- TFN and LMF -------------------------------------------------------------------------------------


def test_tfn_matches_explicit_outer_product_and_ignores_absent_garbage() -> None:
    torch.manual_seed(0)
    dims = {"a": 4, "b": 6, "c": 5}
    fusion = TensorFusion(dims, C, proj_dim=3, hidden=8).eval()
    feats = rand_features(dims)
    present = masks(a=[], b=[1, 3], c=[3])
    with torch.no_grad():
        zhat = {}
        for m in dims:  # naive: [1; W z + b] when present, [1, 0, 0, 0] when absent
            z = feats[m] @ fusion.proj[m].weight.T + fusion.proj[m].bias
            z[~present[m]] = 0.0
            zhat[m] = torch.cat([torch.ones(B, 1), z], dim=1)
        outer = torch.einsum("bi,bj,bk->bijk", zhat["a"], zhat["b"], zhat["c"]).reshape(B, -1)
        expected = fusion.mlp(outer)
        garbage = {m: x.clone() for m, x in feats.items()}
        garbage["b"][[1, 3]] = 1e6
        garbage["c"][3] = float("nan")
        torch.testing.assert_close(fusion(garbage, present).logits, expected)


def test_tfn_rejects_a_product_too_large() -> None:
    with pytest.raises(ValueError, match="lower fusion.proj_dim or use 'lmf'"):
        TensorFusion({m: 4 for m in "abcde"}, C, proj_dim=32)


def naive_lmf(fusion: LowRankFusion, feats: dict[str, torch.Tensor], present: dict[str, torch.Tensor]) -> torch.Tensor:
    """Explicit tensor fusion: build the full weight tensor from the factors, contract the full outer product."""
    names = list(fusion.factors)
    zhat = []
    for m in names:
        z = feats[m].clone()
        z[~present[m]] = 0.0
        zhat.append(torch.cat([torch.ones(B, 1), z], dim=1))
    rank = fusion.rank_weights.shape[0]
    weight = 0
    for i in range(rank):  # sum_i w_i * W_a[i] (x) W_b[i] (x) W_c[i], shared output axis
        weight = weight + fusion.rank_weights[i] * torch.einsum(
            "ic,jc,kc->ijkc", *(fusion.factors[m][i] for m in names)
        )
    outer = torch.einsum("bi,bj,bk->bijk", *zhat)
    return torch.einsum("bijk,ijkc->bc", outer, weight) + fusion.bias


def test_lmf_matches_naive_tensor_fusion_of_its_factors() -> None:
    torch.manual_seed(0)
    dims = {"a": 3, "b": 4, "c": 2}
    fusion = LowRankFusion(dims, C, rank=4)
    feats = rand_features(dims)
    present = masks(a=[2], b=[0, 2], c=[4])
    with torch.no_grad():
        torch.testing.assert_close(fusion(feats, present).logits, naive_lmf(fusion, feats, present))


def test_lmf_at_full_rank_reproduces_any_tensor_fusion_weight() -> None:
    """Rank (D_a + 1)(D_b + 1) is enough to express an arbitrary tensor-fusion weight W (D_a+1, D_b+1, C)."""
    torch.manual_seed(0)
    dims = {"a": 2, "b": 3}
    na, nb = dims["a"] + 1, dims["b"] + 1
    fusion = LowRankFusion(dims, C, rank=na * nb)
    target = torch.randn(na, nb, C)
    with torch.no_grad():
        fusion.rank_weights.fill_(1.0)
        fusion.factors["a"].zero_()
        fusion.factors["b"].zero_()
        for i, (j, k) in enumerate(itertools.product(range(na), range(nb))):
            fusion.factors["a"][i, j, :] = 1.0
            fusion.factors["b"][i, k, :] = target[j, k]
        feats = rand_features(dims)
        present = masks(a=[1], b=[3])
        zhat = []
        for m in dims:
            z = torch.where(present[m][:, None], feats[m], 0.0)
            zhat.append(torch.cat([torch.ones(B, 1), z], dim=1))
        expected = torch.einsum("bi,bj,ijc->bc", zhat[0], zhat[1], target) + fusion.bias
        torch.testing.assert_close(fusion(feats, present).logits, expected)


# ---- bilinear, gated, FiLM, concat, early ---------------------------------------------------------------


def test_bilinear_matches_naive_loop() -> None:
    torch.manual_seed(0)
    dims = {"a": 3, "b": 4, "c": 2}
    fusion = BilinearFusion(dims, C, hidden=4, rank=3).eval()
    feats = rand_features(dims)
    present = masks(a=[], b=[1], c=[1, 2])
    joint = fusion.joint(feats, present)
    with torch.no_grad():
        for row, i in itertools.product(range(B), range(4)):
            total = 0.0
            for j in range(3):
                prod = 1.0
                for m in dims:
                    if present[m][row]:
                        lin = fusion.proj[m]
                        prod *= torch.tanh(feats[m][row] @ lin.weight[i * 3 + j] + lin.bias[i * 3 + j])
                total += prod
            torch.testing.assert_close(joint[row, i], torch.as_tensor(total, dtype=joint.dtype))


def test_gated_weights_renormalise_over_present_modalities() -> None:
    torch.manual_seed(0)
    dims = {"a": 3, "b": 4, "c": 2}
    fusion = GatedFusion(dims, C, hidden=4)
    feats = rand_features(dims)
    present = masks(a=[0], b=[0, 1], c=[0, 2])
    g = fusion.gate_weights(feats, present)  # (B, M)
    mask = torch.stack([present[m] for m in dims], dim=1)
    assert torch.equal(g[~mask], torch.zeros_like(g[~mask]))
    torch.testing.assert_close(g[1:].sum(1), torch.ones(B - 1))
    assert g[0].sum() == 0  # nothing present
    torch.testing.assert_close(g[1, [0, 2]].sum(), torch.tensor(1.0))


def test_film_is_identity_modulation_without_another_present_modality() -> None:
    torch.manual_seed(0)
    dims = {"a": 3, "b": 4}
    fusion = FiLMFusion(dims, C, hidden=6)
    feats = rand_features(dims)
    present = masks(a=[0], b=[1])  # rows 0 and 1 have a single modality
    with torch.no_grad():
        before = fusion(feats, present).logits
        for p in fusion.generators.parameters():
            p.add_(torch.randn_like(p))
        after = fusion(feats, present).logits
    torch.testing.assert_close(after[:2], before[:2])
    assert not torch.allclose(after[2:], before[2:])


def test_concat_uses_learned_missing_embedding_and_presence_bit() -> None:
    torch.manual_seed(0)
    dims = {"a": 3, "b": 2}
    fusion = ConcatFusion(dims, C, hidden=None)
    with torch.no_grad():
        fusion.missing["b"].copy_(torch.tensor([0.5, -1.5]))
    feats = rand_features(dims)
    present = masks(a=[], b=[2])
    feats["b"][2] = float("nan")
    out = fusion(feats, present).logits
    joint = torch.cat([feats["a"][2], torch.tensor([0.5, -1.5, 1.0, 0.0])])
    torch.testing.assert_close(out[2], fusion.net(joint))


def test_early_presence_bits_tell_absent_from_zero_features() -> None:
    torch.manual_seed(0)
    dims = {"a": 3, "b": 2}
    fusion = EarlyFusion(dims, C, hidden=8).eval()
    feats = rand_features(dims)
    feats["b"][:] = 0.0
    with torch.no_grad():
        zero_present = fusion(feats, masks(a=[], b=[])).logits
        absent = fusion(feats, masks(a=[], b=list(range(B)))).logits
    assert not torch.allclose(zero_present, absent)


def test_early_rejects_features_of_the_wrong_width() -> None:
    fusion = EarlyFusion({"a": 3, "b": 2}, C, hidden=8)
    feats = {"a": torch.zeros(B, 3), "b": torch.zeros(B, 5)}
    with pytest.raises(ValueError, match=r"'b' have shape \(5, 5\); expected \(B, 2\)"):
        fusion(feats, masks(a=[], b=[]))


# ---- MulT ---------------------------------------------------------------------------------------------


def seq_features(dims: dict[str, int], lengths: dict[str, int]) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {m: torch.randn(B, lengths[m], d, generator=gen) for m, d in dims.items()}


def test_mult_absent_target_is_excluded_from_pooling() -> None:
    torch.manual_seed(0)
    dims = {"a": 3, "b": 4}
    fusion = MulTFusion(dims, C, hidden=8, heads=2, layers=1).eval()
    feats = seq_features(dims, {"a": 2, "b": 5})
    present = masks(a=[], b=[0, 3])
    with torch.no_grad():
        before = fusion(feats, present).logits
        for p in fusion.blocks["b"].parameters():  # b's own cross-modal stack only matters where b is present
            p.add_(torch.randn_like(p))
        after = fusion(feats, present).logits
    torch.testing.assert_close(after[[0, 3]], before[[0, 3]])
    assert not torch.allclose(after[[1, 2, 4]], before[[1, 2, 4]])


def test_mult_single_modality_uses_self_attention() -> None:
    """With one modality the target's keys are the null token plus its own tokens (absent rows masked)."""
    torch.manual_seed(0)
    fusion = MulTFusion({"a": 3}, C, hidden=8, heads=2, layers=1).eval()
    feats = seq_features({"a": 3}, {"a": 4})
    present = masks(a=[1])
    seen = {}
    block = fusion.blocks["a"][0]
    original = block.forward

    def spy(x, source, key_padding_mask):
        seen["x"], seen["source"], seen["mask"] = x, source, key_padding_mask
        return original(x, source, key_padding_mask)

    block.forward = spy
    with torch.no_grad():
        out = fusion(feats, present)
    assert torch.isfinite(out.logits).all()
    assert seen["source"].shape == (B, 1 + 4, 8)
    torch.testing.assert_close(seen["source"][:, 1:], seen["x"])  # keys are the target's own tokens
    assert not seen["mask"][:, 0].any()  # the null token is always attendable
    assert torch.equal(seen["mask"][:, 1:], (~present["a"])[:, None].expand(B, 4))


def test_mult_rejects_pooled_features_and_bad_heads() -> None:
    fusion = MulTFusion({"a": 3}, C, hidden=8, heads=2)
    with pytest.raises(ValueError, match=r"sequence features \(B, T, 3\) for 'a'; got shape \(5, 3\)"):
        fusion({"a": torch.zeros(B, 3)}, masks(a=[]))
    with pytest.raises(ValueError, match="hidden=10 is not divisible by heads=4"):
        MulTFusion({"a": 3}, C, hidden=10, heads=4)


# ---- every fusion learns --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FUSIONS.names())
def test_fusion_fits_a_small_task(name: str) -> None:
    """Labels depend on both modalities; 80 Adam steps must cut the training loss by more than half."""
    torch.manual_seed(0)
    entry = FUSIONS.get(name)
    dims = {"a": 4, "b": 4}
    fusion = entry.factory(in_dims=dims, num_outputs=2, **entry.tiny)
    n = 32
    gen = torch.Generator().manual_seed(0)
    shape = (n, 3, 4) if fusion.input_level == "sequence" else (n, 4)
    feats = {m: torch.randn(shape, generator=gen) for m in dims}
    label = ((feats["a"][..., 0].mean(-1) if feats["a"].dim() == 3 else feats["a"][:, 0])
             + (feats["b"][..., 1].mean(-1) if feats["b"].dim() == 3 else feats["b"][:, 1]) > 0).long()
    present = {m: torch.ones(n, dtype=torch.bool) for m in dims}
    opt = torch.optim.Adam(fusion.parameters(), lr=2e-2)
    losses = []
    for _ in range(80):
        loss = torch.nn.functional.cross_entropy(fusion(feats, present).logits, label)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], f"{name}: loss {losses[0]:.3f} -> {losses[-1]:.3f}"
