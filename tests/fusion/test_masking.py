"""The masked helpers every fusion builds on: absent slots never reach the output or the gradients."""

import pytest
import torch

from polymodal.fusion.masking import masked_softmax, masked_sum, mean_over_present, presence_mask, zero_absent


def _present() -> dict[str, torch.Tensor]:
    return {"a": torch.tensor([True, True, False, False]), "b": torch.tensor([True, False, True, False])}


def test_zero_absent_any_rank_and_fill_values():
    p = _present()["a"]
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0], [float("nan"), 1.0], [float("inf"), 0.0]], requires_grad=True)
    out = zero_absent(x, p)
    assert out.tolist() == [[1.0, 2.0], [3.0, 4.0], [0.0, 0.0], [0.0, 0.0]]
    out.sum().backward()
    assert x.grad.tolist() == [[1.0, 1.0], [1.0, 1.0], [0.0, 0.0], [0.0, 0.0]]  # no NaN from the absent rows
    assert zero_absent(x.detach(), p, fill=1.0)[2:].tolist() == [[1.0, 1.0], [1.0, 1.0]]
    learned = torch.tensor([7.0, 8.0])
    assert zero_absent(x.detach(), p, fill=learned)[3].tolist() == [7.0, 8.0]
    seq = torch.full((4, 3, 2), float("nan"))
    seq[:2] = 1.0
    assert zero_absent(seq, p).sum().item() == 12.0
    with pytest.raises(ValueError, match=r"presence mask of shape \(3,\) does not match features of shape \(4, 2\)"):
        zero_absent(x, p[:3])


def test_presence_mask_follows_the_given_order():
    present = _present()
    assert presence_mask(present, ["b", "a"]).tolist() == [[True, True], [False, True], [True, False], [False, False]]


def test_masked_softmax_over_present_entries_only():
    scores = torch.tensor([[1.0, 2.0, 3.0], [1.0, float("nan"), 3.0], [5.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, True], [True, False, True], [False, False, False]])
    w = masked_softmax(scores, mask)
    assert torch.allclose(w[0], torch.softmax(scores[0], dim=0))
    e1, e3 = torch.exp(torch.tensor(1.0)), torch.exp(torch.tensor(3.0))
    assert torch.allclose(w[1], torch.tensor([e1 / (e1 + e3), 0.0, e3 / (e1 + e3)]))
    assert w[2].tolist() == [0.0, 0.0, 0.0]  # nothing present: all weights 0, no NaN
    half = masked_softmax(scores.half(), mask)
    assert torch.isfinite(half).all() and half.dtype == torch.float16


def test_masked_sum_matches_a_loop_and_ignores_nan_in_absent_entries():
    g = torch.Generator().manual_seed(0)
    stacked = torch.randn(4, 2, 3, generator=g)
    weights = torch.rand(4, 2, generator=g)
    mask = presence_mask(_present(), ["a", "b"])
    stacked[~mask] = float("nan")
    got = masked_sum(stacked, mask, weights)
    for i in range(4):
        ref = torch.zeros(3)
        for j in range(2):
            if mask[i, j]:
                ref = ref + weights[i, j] * stacked[i, j]
        assert torch.allclose(got[i], ref), i
    assert torch.allclose(masked_sum(stacked, mask)[0], stacked[0, 0] + stacked[0, 1])


def test_mean_over_present_rows():
    present = _present()
    a = torch.tensor([[2.0], [4.0], [float("nan")], [float("inf")]])
    b = torch.tensor([[6.0], [float("nan")], [3.0], [float("nan")]])
    got = mean_over_present([a, b], [present["a"], present["b"]])
    assert got.tolist() == [[4.0], [4.0], [3.0], [0.0]]
    with pytest.raises(ValueError, match="one presence mask per value"):
        mean_over_present([a, b], [present["a"]])
