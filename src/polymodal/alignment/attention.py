"""Attention maps of the registered cross-modal attention fusion (``mult``, ``polymodal/fusion/attention.py``):
per sample, how much each token of one modality attends to each token of another, averaged over heads, with
the padding masked (docs/align_translate.md, "Attention maps").

In ``mult`` each target modality's tokens query, in every layer, one learned null token followed by the tokens
of every other modality; the map of ``query`` over ``key`` is the slice of ``key``'s tokens. The row of a data
position sums to 1 together with the null token's share (``null``) and the other sources' slices (none in a
two-modality model); a padded or absent key gets 0; a padded query row is set to 0.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass
class AttentionMap:
    """``weights`` (B, T_q, T_k): the attention of ``query``'s tokens over ``key``'s tokens (mean over heads) in
    ``layer``; ``null`` (B, T_q) the null token's share; ``query_mask`` (B, T_q) and ``key_mask`` (B, T_k) True on
    the data positions of a present modality."""

    query: str
    key: str
    layer: int
    weights: Tensor
    null: Tensor
    query_mask: Tensor
    key_mask: Tensor

    def per_sample(self) -> list[Tensor]:
        """Each sample's map over its data positions only: (L_i, T_i)."""
        return [w[q][:, k] for w, q, k in zip(self.weights, self.query_mask, self.key_mask, strict=True)]


@contextmanager
def _keep_weights(blocks: Any) -> Iterator[None]:
    for block in blocks:
        block.keep_weights = True
    try:
        yield
    finally:
        for block in blocks:
            block.keep_weights = False
            block.weights = None


def _valid(model: Any, batch: Any, name: str, length: int) -> Tensor:
    present = batch.present[name].to(torch.bool)
    keep = present[:, None].expand(len(present), length)
    mask = model.encoders[name].sequence_mask(batch.inputs[name])
    return keep & mask.to(torch.bool) if mask is not None else keep


def attention_maps(model: Any, batch: Any, query: str, key: str, layer: int = -1) -> AttentionMap:
    """Run ``model`` (a model whose fusion is ``mult``) on ``batch`` without gradients and return the attention of
    ``query``'s tokens over ``key``'s tokens in ``layer`` (default: the last), averaged over heads. A model of one
    modality attends to itself: ``query == key``."""
    from polymodal.fusion.attention import MulTFusion

    fusion = getattr(model, "fusion", None)
    if not isinstance(fusion, MulTFusion):
        raise ValueError(f"attention maps come from the mult fusion (model.fusion=mult); this model's fusion is "
                         f"{type(fusion).__name__}")
    names = fusion.names
    for role, m in (("query", query), ("key", key)):
        if m not in names:
            raise ValueError(f"attention map {role}={m!r} is not a modality of the model ({names})")
    sources = [n for n in names if n != query] or [query]
    if key not in sources:
        raise ValueError(f"in mult, {query!r} attends to {sources}, not to itself; choose another key modality")
    blocks = fusion.blocks[query]
    if not -len(blocks) <= layer < len(blocks):
        raise ValueError(f"layer {layer}: the mult fusion has {len(blocks)} layer(s)")
    with _keep_weights(blocks), torch.no_grad():
        features = {m: model.encode(m, batch.inputs[m], batch.present[m]) for m in names}
        model(batch)
        weights = blocks[layer].weights  # (B, T_q, 1 + sum T_n)
    if weights is None:
        raise RuntimeError("the mult fusion's attention block kept no weights; was its forward replaced?")
    lengths = {n: features[n].shape[1] for n in sources}
    start = 1 + sum(lengths[n] for n in sources[: sources.index(key)])
    q_mask = _valid(model, batch, query, weights.shape[1])
    k_mask = _valid(model, batch, key, lengths[key])
    rows = q_mask[..., None].to(weights.dtype)
    w = weights[:, :, start : start + lengths[key]] * rows
    return AttentionMap(query, key, layer % len(blocks), w, weights[:, :, 0] * rows[..., 0], q_mask, k_mask)


__all__ = ["AttentionMap", "attention_maps"]
