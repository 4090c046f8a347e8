import numpy as np
import pytest
import torch

from polymodal.data.datasets.synthetic import SyntheticDataset
from polymodal.engine.data import (
    EpochSampler,
    balanced_sample_weights,
    class_counts,
    inverse_frequency_weights,
    make_loader,
)


def test_order_is_a_pure_function_of_seed_and_epoch():
    a, b = EpochSampler(50, seed=3), EpochSampler(50, seed=3)
    a.select_epoch(4)
    b.select_epoch(4)
    assert list(a) == list(b) and sorted(a) == list(range(50))
    b.select_epoch(5)
    assert list(a) != list(b)
    c = EpochSampler(50, seed=4)
    c.select_epoch(4)
    assert list(c) != list(a)
    assert list(EpochSampler(5, shuffle=False)) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("n", [10, 11])
def test_ranks_split_the_single_process_order(n):
    single = EpochSampler(n, seed=1)
    single.select_epoch(2)
    ranks = [EpochSampler(n, seed=1, rank=r, world_size=2) for r in range(2)]
    for r in ranks:
        r.select_epoch(2)
    parts = [list(r) for r in ranks]
    assert len(parts[0]) == len(parts[1]) == -(-n // 2)
    order = list(single)
    interleaved = [i for pair in zip(*parts, strict=True) for i in pair]
    assert interleaved[:n] == order  # padding repeats the start of the order
    assert interleaved[n:] == order[: len(interleaved) - n]


def test_inverse_frequency_class_weights():
    labels = np.array([0, 0, 0, 1, 2, 2])
    w = inverse_frequency_weights(labels, 4)
    # N / (C * n_c); a class with no sample gets 0
    torch.testing.assert_close(w, torch.tensor([6 / 12, 6 / 4, 6 / 8, 0.0]))
    torch.testing.assert_close(inverse_frequency_weights(np.arange(8) % 4, 4), torch.ones(4))
    with pytest.raises(ValueError, match="declares 2 classes"):
        class_counts(np.array([0, 1, 2]), 2)


def test_balanced_sampling_draws_classes_equally():
    labels = np.array([0] * 90 + [1] * 10)
    weights = balanced_sample_weights(labels, 2)
    assert weights[0] == pytest.approx(1 / 90) and weights[-1] == pytest.approx(1 / 10)
    sampler = EpochSampler(100, seed=0, sample_weights=weights)
    drawn = []
    for epoch in range(20):
        sampler.select_epoch(epoch)
        drawn += list(sampler)
    share = float(np.mean(labels[drawn] == 1))
    assert 0.45 < share < 0.55  # 10 % of the data, half of the draws
    unbalanced = EpochSampler(100, seed=0)
    assert float(np.mean(labels[list(unbalanced)] == 1)) == pytest.approx(0.1)


def test_loader_yields_batches_in_sampler_order():
    ds = SyntheticDataset("val", size=20)
    loader = make_loader(ds, batch_size=8, seed=0, shuffle=False)
    batches = list(loader)
    assert [b.size for b in batches] == [8, 8, 4]
    assert torch.cat([b.index for b in batches]).tolist() == list(range(20))


def test_a_strategy_s_sample_weights_drive_the_sampler_and_conflict_with_balanced_sampling():
    ds = SyntheticDataset("train", size=40)
    weights = torch.zeros(40, dtype=torch.float64)
    weights[:4] = 1.0  # only the first four rows may be drawn
    loader = make_loader(ds, batch_size=8, seed=2, shuffle=True, sample_weights=weights)
    loader.sampler.select_epoch(3)
    drawn = torch.cat([b.index for b in loader]).tolist()
    assert len(drawn) == 40 and set(drawn) <= {0, 1, 2, 3}  # N draws per epoch, with replacement
    again = make_loader(ds, batch_size=8, seed=2, shuffle=True, sample_weights=weights)
    again.sampler.select_epoch(3)
    assert torch.cat([b.index for b in again]).tolist() == drawn  # a pure function of (seed, epoch)
    with pytest.raises(ValueError, match=r"data.balanced_sampling=true and strategy 'x' \(strategy.args.k\)"):
        make_loader(ds, batch_size=8, seed=0, shuffle=True, balanced=True, sample_weights=weights,
                    weights_origin="strategy 'x' (strategy.args.k)")
    for bad, match in [(torch.ones(39), r"shape \(39,\); expected \(40,\)"), (-weights, "finite, >= 0"),
                       (torch.zeros(40), "not all zero"), (torch.full((40,), float("nan")), "finite")]:
        with pytest.raises(ValueError, match=match):
            make_loader(ds, batch_size=8, seed=0, shuffle=True, sample_weights=bad)
