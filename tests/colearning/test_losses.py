"""The co-learning losses against naive references, and the label budget."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from polymodal.colearning import balanced_cross_entropy, distillation_loss, labelled_mask, pseudo_labels


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0, 10.0])
def test_distillation_loss_equals_a_naive_kl_with_t_squared_scaling(temperature):
    torch.manual_seed(0)
    student, teacher = torch.randn(7, 5) * 3, torch.randn(7, 5) * 3
    total = 0.0
    for s_row, t_row in zip(student.double().numpy(), teacher.double().numpy(), strict=True):
        p = _softmax(t_row / temperature)
        q = _softmax(s_row / temperature)
        total += sum(p[c] * math.log(p[c] / q[c]) for c in range(5))
    naive = temperature**2 * total / 7
    assert float(distillation_loss(student, teacher, temperature)) == pytest.approx(naive, rel=1e-5)


def test_distillation_gradient_scale_does_not_vanish_with_temperature():
    """Hinton et al.'s reason for T^2: the soft targets' gradient stays of the same order as T grows."""
    torch.manual_seed(1)
    teacher = torch.randn(64, 10) * 4
    norms = []
    for t in (2.0, 8.0):
        student = torch.randn(64, 10, generator=torch.Generator().manual_seed(2)).requires_grad_(True)
        distillation_loss(student, teacher, t).backward()
        norms.append(float(student.grad.norm()))
    assert 0.2 < norms[1] / norms[0] < 5  # without T^2 the ratio would be about (2 / 8)^2 = 1 / 16


def test_distillation_is_zero_for_equal_logits_and_checks_shapes():
    x = torch.randn(3, 4)
    assert float(distillation_loss(x, x.clone(), 3.0)) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match=r"same \(B, C\) shape"):
        distillation_loss(torch.randn(3, 4), torch.randn(3, 5))
    with pytest.raises(ValueError, match="temperature"):
        distillation_loss(x, x, 0.0)


def test_pseudo_labels_are_only_taken_at_or_above_the_threshold():
    logits = torch.log(torch.tensor([[0.95, 0.05], [0.6, 0.4], [0.1, 0.9], [0.5, 0.5]]))
    label, taken, confidence = pseudo_labels(logits, 0.9)
    assert taken.tolist() == [True, False, True, False]
    assert label[taken].tolist() == [0, 1]
    assert torch.allclose(confidence, torch.tensor([0.95, 0.6, 0.9, 0.5]), atol=1e-6)
    assert not pseudo_labels(logits, 1.01)[1].any()  # above 1 nothing is taken
    assert pseudo_labels(logits, 0.0)[1].all()


def test_balanced_cross_entropy_weights_every_class_equally():
    torch.manual_seed(0)
    logits, target = torch.randn(6, 3), torch.tensor([0, 0, 0, 0, 2, 2])
    ce = torch.nn.functional.cross_entropy(logits, target, reduction="none")
    naive = (ce[:4].mean() + ce[4:].mean()) / 2
    assert float(balanced_cross_entropy(logits, target)) == pytest.approx(float(naive), rel=1e-6)
    empty = balanced_cross_entropy(logits[:0], target[:0])
    assert float(empty) == 0.0


def test_label_budget_is_stratified_seeded_and_complete_at_one():
    labels = np.repeat(np.arange(10), [30, 25, 20, 40, 35, 30, 30, 20, 40, 30])
    mask = labelled_mask(labels, 0.1, seed=3)
    assert mask.sum() == sum(max(1, round(0.1 * n)) for n in np.bincount(labels))
    assert set(labels[mask]) == set(range(10))  # every class keeps a label
    np.testing.assert_array_equal(mask, labelled_mask(labels, 0.1, seed=3))
    assert not np.array_equal(mask, labelled_mask(labels, 0.1, seed=4))
    assert labelled_mask(labels, 0.01, seed=0).sum() == 10  # at least one per class
    assert labelled_mask(labels, 1.0).all()


@pytest.mark.parametrize("bad", [0, 0.0, -0.1, 1.5, float("nan"), "half", True])
def test_label_budget_refuses_a_bad_fraction(bad):
    with pytest.raises(ValueError, match=r"label_fraction.*\(0, 1\]"):
        labelled_mask(np.arange(4), bad)


def test_label_budget_needs_class_ids():
    with pytest.raises(ValueError, match="single-label classification"):
        labelled_mask(np.zeros((4, 2), dtype=np.float32), 0.5)
