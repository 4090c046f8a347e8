"""Learned structure: the relation head discovers a rule it is not told (XOR of two binary concepts)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from polymodal.reasoning import RelationFusion, as_table, best_permutation, table_agreement


def xor_data(n: int, seed: int):
    protos = torch.randn(2, 2, 6, generator=torch.Generator().manual_seed(123)) * 2  # (modality, value, dim)
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randint(0, 2, (n,), generator=g), torch.randint(0, 2, (n,), generator=g)
    feats = {"a": protos[0][a] + torch.randn(n, 6, generator=g), "b": protos[1][b] + torch.randn(n, 6, generator=g)}
    return feats, a, b, a ^ b


@pytest.mark.parametrize("rank", [None, 2])
def test_relation_head_recovers_xor(rank):
    torch.manual_seed(0)
    feats, a, b, y = xor_data(512, seed=0)
    present = {m: torch.ones(512, dtype=torch.bool) for m in feats}
    fusion = RelationFusion({"a": 6, "b": 6}, 2, concepts=2, rank=rank)
    opt = torch.optim.Adam(fusion.parameters(), lr=0.05)
    for _ in range(300):
        loss = torch.nn.functional.cross_entropy(fusion(feats, present).logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    test, ta, tb, ty = xor_data(512, seed=1)  # held-out samples of the same concepts
    with torch.no_grad():
        acc = float((fusion(test, present).logits.argmax(1) == ty).float().mean())
        probs = fusion.concept_probs(test, present)
    assert acc > 0.95
    perms = [best_permutation(probs["a.concept"].argmax(1).numpy(), ta.numpy(), 2),
             best_permutation(probs["b.concept"].argmax(1).numpy(), tb.numpy(), 2)]
    true = as_table("xor", [2, 2], 2)
    assert table_agreement(fusion.relation_table().detach(), true, perms) == 1.0
    # a wrong alignment of one concept turns XOR into XNOR: agreement 0, so the check can fail
    assert table_agreement(fusion.relation_table().detach(), true, [perms[0], 1 - perms[1]]) == 0.0


def test_low_rank_table_shape_and_rows_are_distributions():
    fusion = RelationFusion({"a": 3, "b": 3, "c": 3}, 4, concepts={"a": 5, "b": 3, "c": 2}, rank=3)
    table = fusion.relation_table()
    assert table.shape == (5, 3, 2, 4)
    torch.testing.assert_close(table.sum(-1), torch.ones(5, 3, 2))
    assert sum(p.numel() for n, p in fusion.named_parameters() if not n.startswith("heads")) == 3 * (5 + 3 + 2 + 4)
    with pytest.raises(ValueError, match="rank=0"):
        RelationFusion({"a": 3}, 2, rank=0)


def test_alignment_helpers():
    true = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9] * 3)
    assert list(best_permutation((true + 3) % 10, true, 10)) == [(v + 3) % 10 for v in range(10)]
    from polymodal.reasoning import best_shift

    a, b = true, true[::-1].copy()
    assert best_shift((a + 4) % 10, a, (b - 4) % 10, b) == 4
