"""The exact program layer: equal to a naive enumeration, missing modalities marginalised, gradients exact."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from polymodal.reasoning import (
    RULES,
    ProgramFusion,
    RelationFusion,
    Rule,
    as_table,
    contract,
    log_contract,
    parse_concepts,
)
from polymodal.reasoning.fusion import LOG_ZERO


def naive(probs: list[torch.Tensor], fn, num_classes: int) -> torch.Tensor:
    """p(y) by looping over every row and every combination of concept values."""
    out = torch.zeros(probs[0].shape[0], num_classes, dtype=probs[0].dtype)
    for b in range(probs[0].shape[0]):
        for v in itertools.product(*(range(p.shape[1]) for p in probs)):
            w = torch.ones((), dtype=probs[0].dtype)
            for p, vi in zip(probs, v, strict=True):
                w = w * p[b, vi]
            out[b, fn(*v)] += w
    return out


def random_probs(b: int, sizes: list[int], seed: int = 0, dtype=torch.float64) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, v, generator=g, dtype=dtype).mul(2).softmax(-1) for v in sizes]


@pytest.mark.parametrize(
    ("rule", "sizes", "classes", "fn"),
    [
        ("sum_mod10", [10, 10], 10, lambda a, b: (a + b) % 10),
        ("compare", [10, 10], 3, lambda a, b: (a > b) - (a < b) + 1),
        ("xor", [2, 2, 2], 2, lambda *v: sum(v) % 2),
        ("max", [10, 10, 10], 10, max),
    ],
)
def test_contract_equals_naive_enumeration(rule, sizes, classes, fn):
    probs = random_probs(4, sizes)
    table = as_table(rule, sizes, classes).double()
    torch.testing.assert_close(contract(probs, table), naive(probs, fn, classes), rtol=1e-12, atol=1e-12)


def fusion_sum(hidden: int = 0) -> ProgramFusion:
    torch.manual_seed(0)
    return ProgramFusion({"audio": 5, "image": 7}, 10, rule="sum_mod10", hidden=hidden).double()


@pytest.mark.parametrize("missing", [None, "audio", "image"])
def test_program_fusion_equals_enumeration_with_a_missing_modality(missing):
    fusion = fusion_sum()
    feats = {"audio": torch.randn(6, 5, dtype=torch.float64), "image": torch.randn(6, 7, dtype=torch.float64)}
    present = {m: torch.ones(6, dtype=torch.bool) for m in feats}
    if missing is not None:
        present[missing][[1, 4]] = False
        feats[missing][[1, 4]] = float("nan")  # never read
    out = fusion(feats, present).logits.exp()
    probs = fusion.concept_probs(feats, present)
    uniform = torch.full((10,), 0.1, dtype=torch.float64)
    expected = []
    for b in range(6):
        rows = [probs[k][b] if bool(present[k.split(".")[0]][b]) else uniform for k in ("audio.concept", "image.concept")]
        expected.append(naive([r[None] for r in rows], lambda a, c: (a + c) % 10, 10)[0])
    torch.testing.assert_close(out, torch.stack(expected), rtol=1e-10, atol=1e-12)
    if missing is not None:  # sum mod 10 with one digit unknown (uniform) is uniform
        torch.testing.assert_close(out[[1, 4]], torch.full((2, 10), 0.1, dtype=torch.float64))
        assert not torch.allclose(out[0], torch.full((10,), 0.1, dtype=torch.float64))


def test_program_gradient_matches_finite_differences():
    probs = [p.requires_grad_(True) for p in random_probs(3, [4, 5, 3], seed=1)]
    table = as_table(lambda a, b, c: (a * b + c) % 6, [4, 5, 3], 6).double()
    assert torch.autograd.gradcheck(lambda *p: contract(list(p), table), probs)
    fusion = fusion_sum(hidden=3)
    feats = {"audio": torch.randn(3, 5, dtype=torch.float64, requires_grad=True),
             "image": torch.randn(3, 7, dtype=torch.float64, requires_grad=True)}
    present = {"audio": torch.tensor([True, False, True]), "image": torch.tensor([True, True, True])}
    assert torch.autograd.gradcheck(lambda a, i: fusion({"audio": a, "image": i}, present).logits, (feats["audio"], feats["image"]))


def test_one_hot_concepts_give_the_rule():
    fusion = fusion_sum()
    a, b = torch.arange(10).repeat(10), torch.arange(10).repeat_interleave(10)
    probs = {"audio.concept": torch.nn.functional.one_hot(a, 10).double(), "image.concept": torch.nn.functional.one_hot(b, 10).double()}
    present = {"audio": torch.ones(100, dtype=torch.bool), "image": torch.ones(100, dtype=torch.bool)}
    assert torch.equal(fusion.reason(probs, present).argmax(1), (a + b) % 10)


def test_rules_from_names_callables_and_tables_agree():
    named = as_table("compare", [10, 10], 3)
    by_callable = as_table(lambda a, b: (a > b) - (a < b) + 1, [10, 10], 3)
    classes = torch.tensor([[(a > b) - (a < b) + 1 for b in range(10)] for a in range(10)])
    assert torch.equal(named, by_callable) and torch.equal(named, as_table(classes, [10, 10], 3))
    assert torch.equal(as_table("sum_mod", [5, 5], 5, {"n": 5})[2, 4], torch.eye(5)[1])
    assert RULES.create("xor").table(3).shape == (2, 2, 2, 2)
    soft = torch.full((2, 2, 2), 0.5)
    assert torch.equal(as_table(soft, [2, 2], 2), soft)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rule": None}, "needs a rule"),
        ({"rule": "sum_mod1O"}, "close matches: sum_mod10"),
        ({"rule": "compare"}, "the rule has 3 classes but the dataset has 10 outputs"),
        ({"rule": "sum_mod10", "concepts": {"audio": 10}}, "missing: ['image']"),
        ({"rule": "sum_mod10", "concepts": {"audio": 10, "image": 4}}, "model's concepts have sizes (10, 4)"),
        ({"rule": "sum_mod10", "rule_args": {"n": 3}}, "rule_args {'n': 3} do not fit rule 'sum_mod10'"),
        ({"rule": [[0, 1], [1, 0]]}, "expected integer classes of shape (10, 10)"),
        ({"rule": lambda a, b: a + b}, "sent concept values (1, 9) to 10"),
    ],
)
def test_bad_rules_are_explained(kwargs, message):
    with pytest.raises(ValueError) as err:
        ProgramFusion({"audio": 4, "image": 4}, 10, **kwargs)
    assert message in str(err.value)


def test_rule_arity_and_concept_names():
    with pytest.raises(ValueError, match="takes 2 concepts; the model has 3"):
        Rule("compare", lambda a, b: 0, 10, 3, 2).table(3)
    concepts = parse_concepts({"audio": {"digit": 10, "loud": 2}, "image": 10}, ["audio", "image"])
    assert [c.key for c in concepts] == ["audio.digit", "audio.loud", "image.concept"]
    fusion = ProgramFusion({"audio": 4, "image": 4}, 2, rule=lambda d, loud, i: int(d == i) ^ loud,
                           concepts={"audio": {"digit": 10, "loud": 2}, "image": {"digit": 10}})
    assert fusion.table.shape == (10, 2, 10, 2)
    out = fusion({"audio": torch.randn(3, 4), "image": torch.randn(3, 4)}, {m: torch.ones(3, dtype=torch.bool) for m in ("audio", "image")})
    torch.testing.assert_close(out.logits.exp().sum(1), torch.ones(3))


def confident_sum_fusion(gap: float, dtype=torch.float32) -> tuple[ProgramFusion, dict, dict]:
    """A sum-mod-10 program whose concept logits are ``gap`` at the one-hot input digit, 0 elsewhere."""
    fusion = ProgramFusion({"audio": 10, "image": 10}, 10, rule="sum_mod10").to(dtype)
    with torch.no_grad():
        for head in fusion.heads.values():  # logits = gap * one-hot after the division by the temperature
            head.weight.copy_(torch.eye(10) * gap * fusion.temperature)
            head.bias.zero_()
    feats = {"audio": torch.eye(10, dtype=dtype)[[3]].requires_grad_(True),
             "image": torch.eye(10, dtype=dtype)[[5]].requires_grad_(True)}
    present = {m: torch.ones(1, dtype=torch.bool) for m in feats}
    return fusion, feats, present


def test_two_confident_wrong_digits_keep_an_exact_loss_and_a_gradient():
    """Read 3 and 5 (sum 8) at a logit gap of 100 when the label is 3: p(3) = 2 e^-100 (+ 8 e^-200), below
    float32's range once multiplied out; the log-space contraction keeps -log p(3) = 100 - log 2 and the
    gradient that moves either digit (the probability-space product clamped at 1e-37 gave 85.2 and 0)."""
    fusion, feats, present = confident_sum_fusion(100.0)
    loss = torch.nn.functional.cross_entropy(fusion(feats, present).logits, torch.tensor([3]))
    assert float(loss.detach()) == pytest.approx(100 - math.log(2), rel=1e-5)
    loss.backward()
    # d loss / d (audio concept logits) = p(a) - p(a | y = 3): +1/2 at the read digit 3, -1/2 at 8 (8 + 5 = 13);
    # the logits are (W x + b) / temperature, so that is the bias gradient times the temperature
    expected = torch.zeros(10)
    expected[3], expected[8] = 0.5, -0.5
    torch.testing.assert_close(fusion.heads["audio"].bias.grad * fusion.temperature, expected, atol=1e-5, rtol=1e-4)
    expected[8], expected[0] = 0.0, -0.5  # image: 5 -> 0 (3 + 0 = 3)
    expected[3], expected[5] = 0.0, 0.5
    torch.testing.assert_close(fusion.heads["image"].bias.grad * fusion.temperature, expected, atol=1e-5, rtol=1e-4)
    assert all(bool(torch.isfinite(x.grad).all()) and float(x.grad.abs().sum()) > 0 for x in feats.values())


def test_log_space_equals_probability_space_where_nothing_underflows():
    for fusion in (fusion_sum(hidden=3),
                   ProgramFusion({"audio": 5, "image": 7}, 3, rule="compare").double(),
                   RelationFusion({"audio": 5, "image": 7}, 4, concepts={"audio": 3, "image": 6}, rank=2).double()):
        g = torch.Generator().manual_seed(2)
        feats = {"audio": torch.randn(8, 5, generator=g, dtype=torch.float64),
                 "image": torch.randn(8, 7, generator=g, dtype=torch.float64)}
        present = {"audio": torch.tensor([True] * 6 + [False] * 2), "image": torch.tensor([True, False] + [True] * 6)}
        probs = fusion.concept_probs(feats, present)
        q = [torch.where(present[c.modality][:, None], probs[c.key], torch.full_like(probs[c.key], 1 / c.num_values))
             for c in fusion.concepts]
        table = fusion.table if isinstance(fusion, ProgramFusion) else fusion.relation_table()
        p = contract(q, table.double())
        assert float(p.detach().min()) > 1e-30  # nothing near the float's limits
        torch.testing.assert_close(fusion(feats, present).logits, p.log(), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(log_contract([x.log() for x in q], table.double().log()), p.log(), rtol=1e-12, atol=1e-12)


def test_unreachable_classes_get_a_finite_floor_and_no_nan_gradient():
    """Class 2 of this rule is never produced: its logit is LOG_ZERO, finite, and neither it nor the one-hot
    concepts of an intervention (log 0 = -inf) put NaN into the gradient."""
    fusion = ProgramFusion({"audio": 4, "image": 4}, 3, rule=lambda a, b: int(a == b), concepts=3)
    feats = {"audio": torch.randn(5, 4), "image": torch.randn(5, 4)}
    present = {m: torch.ones(5, dtype=torch.bool) for m in feats}
    logits = fusion(feats, present).logits
    assert torch.equal(logits[:, 2], torch.full((5,), LOG_ZERO)) and bool((logits[:, :2] > LOG_ZERO).all())
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 0, 1, 2])).backward()
    assert all(torch.isfinite(p.grad).all() for p in fusion.parameters())
    onehot = {"audio.concept": torch.eye(3)[[0, 1, 2, 0, 1]], "image.concept": torch.eye(3)[[0, 2, 2, 1, 1]]}
    out = fusion.reason(onehot, present)
    assert torch.equal(out.argmax(1), torch.tensor([1, 0, 1, 0, 1])) and torch.equal(out[:, 2], torch.full((5,), LOG_ZERO))
    z = {k: torch.randn(5, 3, requires_grad=True) for k in onehot}
    certain = {"audio.concept": z["audio.concept"], "image.concept": torch.where(onehot["image.concept"] > 0, 0.0, -math.inf)}
    fusion.label_logits(certain, present)[:, :2].sum().backward()
    assert torch.isfinite(z["audio.concept"].grad).all()
