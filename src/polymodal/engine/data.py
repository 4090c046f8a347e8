"""Data loading for the engine: epoch-seeded sampling, balanced sampling (the task's weights), a strategy's own
sampling weights (:meth:`polymodal.strategies.base.Strategy.train_sample_weights`), distributed sharding.

The order of samples is a pure function of ``(seed, epoch)`` so that a resumed run sees exactly
the batches an uninterrupted run would have seen. Under ``world_size`` processes every rank draws
the same global order, pads it to a multiple of ``world_size`` by repeating its start (as
``DistributedSampler`` does) and takes every ``world_size``-th index from its ``rank``: the union of
the ranks' i-th batches (each of ``data.batch_size`` samples: batch size is PER PROCESS) is the
i-th batch of a single process with ``world_size`` times that batch size.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Sampler

from polymodal.data.base import MultimodalDataset
from polymodal.tasks import task_of
from polymodal.tasks.classification import (  # noqa: F401  (re-exported: class weights are the task's)
    balanced_sample_weights,
    class_counts,
    inverse_frequency_weights,
)


class EpochSampler(Sampler[int]):
    """Indices for one rank, re-drawn every epoch from ``torch.Generator().manual_seed(seed * 1000 + epoch)``.

    shuffle:        a random permutation (else dataset order)
    sample_weights: (N,) if given, draw N indices WITH replacement in proportion to them
                    (``WeightedRandomSampler``'s rule) instead of a permutation
    """

    def __init__(
        self,
        num_samples: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        sample_weights: torch.Tensor | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if num_samples < 1:
            raise ValueError("cannot sample from an empty dataset (check the dataset split and its options)")
        if sample_weights is not None and sample_weights.shape != (num_samples,):
            raise ValueError(f"sample_weights has shape {tuple(sample_weights.shape)}; expected ({num_samples},)")
        self.num_samples, self.seed, self.shuffle = num_samples, seed, shuffle
        self.sample_weights = sample_weights
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def select_epoch(self, epoch: int) -> None:
        """Draw the order of 0-based ``epoch``. (Deliberately not ``set_epoch``: Fabric's loaders call
        ``set_epoch`` with their own iteration count, which restarts at 0 in a resumed process.)"""
        self.epoch = epoch

    def global_order(self) -> list[int]:
        """This epoch's indices for all ranks together, before padding."""
        g = torch.Generator().manual_seed(self.seed * 1000 + self.epoch)
        if self.sample_weights is not None:
            return torch.multinomial(self.sample_weights, self.num_samples, replacement=True, generator=g).tolist()
        if self.shuffle:
            return torch.randperm(self.num_samples, generator=g).tolist()
        return list(range(self.num_samples))

    def __iter__(self) -> Iterator[int]:
        order = self.global_order()
        total = len(self) * self.world_size
        while len(order) < total:  # pad by repeating the start (DistributedSampler's rule)
            order += order[: total - len(order)]
        return iter(order[self.rank : total : self.world_size])

    def __len__(self) -> int:
        return -(-self.num_samples // self.world_size)


def check_sample_weights(weights: torch.Tensor, num_samples: int, origin: str) -> torch.Tensor:
    """``weights`` as a float64 (N,) tensor of finite, non-negative per-row weights with a positive sum, or a
    ValueError naming ``origin`` (what set them) and what was expected."""
    if not isinstance(weights, torch.Tensor):
        raise ValueError(f"{origin}: expected a tensor of per-row sampling weights; got {type(weights).__name__}")
    if weights.shape != (num_samples,):
        raise ValueError(f"{origin}: sampling weights of shape {tuple(weights.shape)}; expected ({num_samples},), "
                         "one per row of the training split")
    w = weights.detach().to(torch.float64).cpu()
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()) or not float(w.sum()) > 0:
        raise ValueError(f"{origin}: sampling weights must be finite, >= 0 and not all zero")
    return w


def make_loader(
    dataset: MultimodalDataset,
    *,
    batch_size: int,
    seed: int,
    shuffle: bool,
    num_workers: int = 0,
    balanced: bool = False,
    sample_weights: torch.Tensor | None = None,
    weights_origin: str = "the strategy's sampling weights",
    rank: int = 0,
    world_size: int = 1,
) -> DataLoader:
    """DataLoader with an :class:`EpochSampler` and the dataset's collate function (yields ``Batch``).

    balanced:       ``data.balanced_sampling``: rows drawn with the task's weights (every class equally often)
    sample_weights: (N,) per-row weights of the training split set by the strategy
                    (:meth:`~polymodal.strategies.base.Strategy.train_sample_weights`): N draws per epoch with
                    replacement, in proportion to them, a pure function of ``(seed, epoch)``. The two set the
                    same sampler, so asking for both is a ValueError (``weights_origin`` names the strategy's
                    setting in it) rather than a silent choice of one.
    """
    weights = None
    if sample_weights is not None:
        if balanced:
            raise ValueError(
                f"data.balanced_sampling=true and {weights_origin} both set the training sampler's per-row "
                "weights; set data.balanced_sampling=false or turn the strategy's weights off"
            )
        weights = check_sample_weights(sample_weights, len(dataset), weights_origin)
    elif balanced:
        weights = task_of(dataset).sample_weights(dataset.labels, dataset.num_outputs)
    sampler = EpochSampler(
        len(dataset), seed=seed, shuffle=shuffle, sample_weights=weights, rank=rank, world_size=world_size
    )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        collate_fn=dataset.collate_fn(),
        num_workers=num_workers,
        drop_last=False,
    )


EVAL_ORDER_SEED = 0  # the one random order of an evaluation split, the same for every run and seed


def make_eval_loader(
    dataset: MultimodalDataset,
    *,
    batch_size: int,
    order: str = "auto",
    fusion_rule: str = "model",
    num_workers: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> DataLoader:
    """The evaluation loader of a split (``data.eval_order``).

    ``auto``: a batch-level test-time rule (``fusion_rule`` in ``BATCH_LEVEL_RULES``, e.g. entropy-batch)
    sees the split in one fixed random order (seed ``EVAL_ORDER_SEED``), so that its batches are not made
    of two or three classes by a class-sorted dataset; every other rule sees the dataset order (per-sample
    rules give the same predictions in any order). ``dataset`` / ``shuffled`` force one of the two.
    Outputs are sorted back by dataset index, so predictions files do not depend on the order.
    """
    from polymodal.inference.rules import BATCH_LEVEL_RULES

    if order not in ("auto", "dataset", "shuffled"):
        raise ValueError(f"data.eval_order={order!r}; expected auto, dataset or shuffled")
    shuffle = order == "shuffled" or (order == "auto" and fusion_rule in BATCH_LEVEL_RULES)
    return make_loader(dataset, batch_size=batch_size, seed=EVAL_ORDER_SEED, shuffle=shuffle,
                       num_workers=num_workers, rank=rank, world_size=world_size)
