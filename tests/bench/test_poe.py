import numpy as np
import pytest
from scipy.special import log_softmax, softmax

from polymodal.bench.poe import fit_temperature, product_of_experts
from polymodal.report.metrics import Predictions


def _expert(g, y, num_classes, signal, temperature):
    """z / temperature with z = signal * onehot(y) + N(0, 1) noise."""
    z = signal * np.eye(num_classes)[y] + g.normal(size=(len(y), num_classes))
    return z / temperature


def test_fit_temperature_recovers_the_distortion():
    g = np.random.default_rng(0)
    y = g.integers(0, 5, 20000)
    calibrated = 2.0 * np.eye(5)[y] + g.normal(size=(len(y), 5))  # log-odds of the true Gaussian posterior are 2*z
    true_logits = 2.0 * calibrated
    t = fit_temperature(true_logits * 3.0, y)  # three times over-confident
    assert t == pytest.approx(3.0, rel=0.05)


def test_product_of_experts_beats_each_expert_and_ignores_absent_modalities():
    g = np.random.default_rng(1)
    c = 10

    def split(n):
        y = g.integers(0, c, n)
        a = _expert(g, y, c, 1.5, 0.5)  # over-confident
        b = _expert(g, y, c, 1.5, 3.0)  # under-confident
        present_b = g.random(n) < 0.5
        return Predictions(y_true=y, probs=softmax(a + b, axis=1),
                           per_modality={"a": softmax(a, axis=1), "b": softmax(b, axis=1)},
                           present={"a": np.ones(n, bool), "b": present_b})

    val, test = split(4000), split(4000)
    fused, temps = product_of_experts(val, test)
    # z = s * onehot + N(0, 1) has the calibrated logits s * z, so logits z / t need the temperature 1 / (s t)
    assert temps["a"] == pytest.approx(1 / (1.5 * 0.5), rel=0.1) and temps["b"] == pytest.approx(1 / (1.5 * 3.0), rel=0.1)
    acc = (fused.argmax(1) == test.y_true).mean()
    acc_a = (test.per_modality["a"].argmax(1) == test.y_true).mean()
    both = test.present["b"]
    acc_fused_both = (fused[both].argmax(1) == test.y_true[both]).mean()
    acc_b = (test.per_modality["b"][both].argmax(1) == test.y_true[both]).mean()
    assert acc_fused_both > max(acc_a, acc_b) + 0.05
    # rows without b are a alone: the same ranking as a's own probabilities
    alone = ~both
    np.testing.assert_array_equal(fused[alone].argmax(1), test.per_modality["a"][alone].argmax(1))
    expected = log_softmax(np.log(test.per_modality["a"][alone]) / temps["a"], axis=1)
    np.testing.assert_allclose(fused[alone], expected, atol=1e-6)
    assert acc > acc_a


def test_product_of_experts_needs_per_modality_probabilities():
    p = Predictions(y_true=np.zeros(3, int), probs=np.full((3, 2), 0.5))
    with pytest.raises(ValueError, match="probs_<modality>"):
        product_of_experts(p, p)
