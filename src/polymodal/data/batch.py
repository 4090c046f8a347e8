"""The Batch: modality-keyed tensors, a presence mask per modality, labels.

A missing modality is a first-class state: its slot is zero-filled, its
``present`` entry is False and no code reads it as data. Fusions combine
with ``torch.where`` on the mask (never by multiplying: 0 * NaN is NaN) and
NaN checks look only at present slots.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import numpy as np
import torch
from torch import Tensor

from polymodal.data.schema import Modality


class Sample(TypedDict):
    """What a dataset's ``__getitem__`` returns. ``inputs[m]`` is None when m is missing."""

    inputs: dict[str, Tensor | None]
    label: Any  # int class id, or float target for regression
    index: int  # position in the dataset (used to de-duplicate distributed evaluation)


@dataclass
class Batch:
    inputs: dict[str, Tensor]  # name -> (B, *shape); zeros where absent
    present: dict[str, Tensor]  # name -> BoolTensor (B,)
    label: Tensor  # (B,) int64 class ids, or (B,) / (B, K) float targets
    index: Tensor  # (B,) int64 dataset positions

    @property
    def size(self) -> int:
        return int(self.label.shape[0])

    @property
    def modalities(self) -> list[str]:
        return list(self.inputs)

    def to(self, device: torch.device | str) -> Batch:
        return Batch(
            inputs={k: v.to(device, non_blocking=True) for k, v in self.inputs.items()},
            present={k: v.to(device, non_blocking=True) for k, v in self.present.items()},
            label=self.label.to(device, non_blocking=True),
            index=self.index.to(device, non_blocking=True),
        )

    def select(self, rows: Tensor) -> Batch:
        """Sub-batch with the given row indices or boolean row mask."""
        return Batch(
            inputs={k: v[rows] for k, v in self.inputs.items()},
            present={k: v[rows] for k, v in self.present.items()},
            label=self.label[rows],
            index=self.index[rows],
        )

    def with_absent(self, names: Sequence[str]) -> Batch:
        """Copy in which the named modalities are marked absent (slots zeroed)."""
        inputs, present = dict(self.inputs), dict(self.present)
        for name in names:
            inputs[name] = torch.zeros_like(inputs[name])
            present[name] = torch.zeros_like(present[name])
        return Batch(inputs, present, self.label, self.index)

    def validate(self, schema: Sequence[Modality] | None = None) -> None:
        """Raise ValueError naming the tensor at fault: shape mismatch or NaN/inf in a present slot."""
        for name, x in self.inputs.items():
            mask = self.present.get(name)
            if mask is None:
                raise ValueError(f"batch has input {name!r} but no presence mask for it")
            if mask.shape != (x.shape[0],):
                raise ValueError(
                    f"presence mask of {name!r} has shape {tuple(mask.shape)}; expected ({x.shape[0]},)"
                )
            if schema is not None:
                spec = {m.name: m for m in schema}.get(name)
                if spec is not None and tuple(x.shape[1:]) != tuple(spec.shape):
                    raise ValueError(
                        f"input {name!r} has per-sample shape {tuple(x.shape[1:])}; the dataset schema "
                        f"declares {tuple(spec.shape)} (check the dataset's transforms)"
                    )
            if x.is_floating_point() and bool(mask.any()):
                if bool(torch.isfinite(x).all()):  # the common case: no copy of the present rows needed
                    continue
                bad = ~torch.isfinite(x[mask].reshape(int(mask.sum()), -1)).all(dim=1)
                if bool(bad.any()):
                    rows = torch.nonzero(mask).flatten()[bad].tolist()
                    idx = self.index[rows].tolist()
                    raise ValueError(
                        f"input {name!r} has NaN/inf in present slot(s) at batch rows {rows[:5]} "
                        f"(dataset indices {idx[:5]}); fix the source data or mark the modality absent"
                    )


def collate(samples: Sequence[Sample], schema: Sequence[Modality]) -> Batch:
    """Stack samples into a Batch; a None input becomes a zero slot with present=False."""
    if not samples:
        raise ValueError("cannot collate an empty list of samples")
    inputs: dict[str, Tensor] = {}
    present: dict[str, Tensor] = {}
    for mod in schema:
        xs = [s["inputs"].get(mod.name) for s in samples]
        ref = next((x for x in xs if x is not None), None)
        if ref is None:
            dtype = torch.long if mod.kind == "text" else torch.float32
            ref = torch.zeros(mod.shape, dtype=dtype)
        for s, x in zip(samples, xs, strict=True):
            if x is not None and x.shape != ref.shape:
                raise ValueError(
                    f"sample {s['index']} has {mod.name!r} of shape {tuple(x.shape)}; other samples in the "
                    f"batch have {tuple(ref.shape)} (give every sample the same shape, e.g. pad or resize)"
                )
        zero = torch.zeros_like(ref)
        inputs[mod.name] = torch.stack([zero if x is None else x for x in xs])
        present[mod.name] = torch.tensor([x is not None for x in xs], dtype=torch.bool)
    label = collate_labels([s["label"] for s in samples])
    index = torch.as_tensor([s["index"] for s in samples], dtype=torch.long)
    return Batch(inputs, present, label, index)


def collate_labels(labels: Sequence[Any]) -> Tensor:
    """Stack per-sample labels: int class ids -> (B,) int64; float targets (a number, or a sequence /
    array of K numbers each) -> (B,) / (B, K) float32."""
    first = labels[0]
    if isinstance(first, Tensor):
        label = torch.stack([torch.as_tensor(y) for y in labels])
    elif isinstance(first, np.ndarray):
        label = torch.from_numpy(np.stack([np.asarray(y) for y in labels]))
    else:
        label = torch.as_tensor(labels)
    if label.is_floating_point():
        label = label.to(torch.float32)
    return label


class Collate:
    """Picklable collate_fn bound to a schema (DataLoader workers need picklable callables)."""

    def __init__(self, schema: Sequence[Modality]) -> None:
        self.schema = tuple(schema)

    def __call__(self, samples: Sequence[Sample]) -> Batch:
        return collate(samples, self.schema)


def present_any(present: Mapping[str, Tensor]) -> Tensor:
    """(B,) True where at least one modality is present."""
    masks = list(present.values())
    out = masks[0].clone()
    for m in masks[1:]:
        out |= m
    return out
