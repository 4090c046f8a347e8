"""MultimodalModel = encoders + fusion, and the builder that wires them from a schema."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from polymodal.data.batch import Batch
from polymodal.data.schema import Modality
from polymodal.encoders.base import Encoder, build_encoder, default_encoder_spec
from polymodal.fusion.base import FUSIONS, Fusion, FusionOutput
from polymodal.tasks.outputs import ModelOutput  # noqa: F401  (what the model gives; re-exported here)

# (features, presence) -> (features, presence), between the encoders and the fusion
FeatureTransform = Callable[[dict[str, Tensor], dict[str, Tensor]], tuple[dict[str, Tensor], dict[str, Tensor]]]


class MultimodalModel(nn.Module):
    """Encoders (one per modality, fixed order) followed by a fusion.

    Encoders run only on the rows where their modality is present; absent rows get zero
    features (never read by the fusion, which sees the presence mask).
    """

    def __init__(self, encoders: Mapping[str, Encoder], fusion: Fusion, num_outputs: int) -> None:
        super().__init__()
        self.modalities: list[str] = list(encoders)
        self.encoders = nn.ModuleDict(dict(encoders))
        self.fusion = fusion
        self.num_outputs = num_outputs
        self._feature_shapes: dict[tuple, tuple[int, ...]] = {}
        self.channels_last = False

    def use_channels_last(self) -> MultimodalModel:
        """Keep 4-D weights and inputs in channels_last memory format (faster CNNs on CPU); the values
        are unchanged, only their layout in memory. Other tensors (a Conv3d's 5-D weights, linear layers)
        keep theirs: ``Module.to(memory_format=...)`` would refuse a 5-D weight."""
        self.channels_last = True
        with torch.no_grad():
            for t in (*self.parameters(), *self.buffers()):
                if t.dim() == 4:  # explicit channels_last strides: a 1-channel kernel is "contiguous" in both
                    # formats, and only these strides make its convolution's output channels_last
                    t.data = torch.empty_like(t.data, memory_format=torch.channels_last).copy_(t.data)
        return self

    def feature_dim(self, name: str) -> int:
        enc = self.encoders[name]
        return enc.low_level_dim if self.fusion.input_level == "low_level" else enc.out_dim

    def encode(self, name: str, x: Tensor, present: Tensor | None = None) -> Tensor:
        """Features of modality ``name`` at the fusion's input level; zeros on absent rows."""
        enc = self.encoders[name]
        level = self.fusion.input_level
        fn = {"pooled": enc.forward, "sequence": enc.sequence, "low_level": enc.low_level}[level]
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        if present is None or bool(present.all()):
            return fn(x)
        rows = torch.nonzero(present).flatten()
        if rows.numel() == 0:
            return self._absent_features(name, x)
        out = fn(x[rows])
        full = out.new_zeros((x.shape[0], *out.shape[1:]))
        return full.index_copy(0, rows, out)

    def _absent_features(self, name: str, x: Tensor) -> Tensor:
        """Zero features for a modality absent from every row; its slot (maybe NaN) is never read."""
        key = (name, self.fusion.input_level, tuple(x.shape[1:]))
        shape = self._feature_shapes.get(key)
        if shape is None:
            enc = self.encoders[name]
            level = self.fusion.input_level
            fn = {"pooled": enc.forward, "sequence": enc.sequence, "low_level": enc.low_level}[level]
            was_training = enc.training
            enc.eval()
            with torch.no_grad():
                shape = tuple(fn(torch.zeros_like(x[:1])).shape[1:])
            enc.train(was_training)
            self._feature_shapes[key] = shape
        param = next(self.parameters())
        return torch.zeros((x.shape[0], *shape), dtype=param.dtype, device=x.device)

    def forward(self, batch: Batch, modalities: Sequence[str] | None = None,
                transform: FeatureTransform | None = None) -> ModelOutput:
        """Encode the present rows, fuse. ``modalities``: the others are treated as absent. ``transform``:
        ``(features, present) -> (features, present)`` applied between the encoders and the fusion (e.g. the
        ``imagine`` strategy fills an absent modality's features from the present ones); the output's
        ``features`` are the transformed ones."""
        names = list(modalities) if modalities is not None else self.modalities
        present = {m: batch.present[m] for m in self.modalities}
        if modalities is not None:  # others are treated as absent
            present = {m: (p if m in names else torch.zeros_like(p)) for m, p in present.items()}
        feats: dict[str, Tensor] = {}
        for m in self.modalities:
            if m in names:
                feats[m] = self.encode(m, batch.inputs[m], present[m])
            else:
                feats[m] = self._absent_features(m, batch.inputs[m])
        if transform is not None:
            feats, present = transform(feats, present)
        if getattr(self.fusion, "uses_sequence_mask", False):  # padding positions are never data
            masks = {m: mask for m in self.modalities
                     if (mask := self.encoders[m].sequence_mask(batch.inputs[m])) is not None}
            out: FusionOutput = self.fusion(feats, present, sequence_mask=masks)
        else:
            out = self.fusion(feats, present)
        return ModelOutput(out.logits, out.per_modality, feats, dict(out.extras or {}))


def build_model(
    schema: Sequence[Modality],
    num_outputs: int,
    *,
    fusion: str = "late",
    fusion_args: Mapping[str, Any] | None = None,
    encoders: Mapping[str, Mapping[str, Any]] | None = None,
    width: int | None = None,
) -> MultimodalModel:
    """Wire encoders and a fusion for a dataset schema.

    encoders: per-modality ``{"name": <registry name>, **kwargs}``; a modality not listed (or listed
              without a name) gets :func:`polymodal.encoders.base.default_encoder_spec`: the dataset's
              recommended encoder for it, else the default of its kind (``DEFAULT_ENCODER``).
    width:    feature width given to every encoder that does not set its own (MLA's shared head
              needs all encoders to produce the same width).
    """
    import polymodal.encoders  # noqa: F401  (fill the registries)
    import polymodal.fusion  # noqa: F401

    encoders = dict(encoders or {})
    unknown = set(encoders) - {m.name for m in schema}
    if unknown:
        raise ValueError(
            f"model.encoders names modalities {sorted(unknown)} that the dataset does not have; "
            f"its modalities are {[m.name for m in schema]}"
        )
    built: dict[str, Encoder] = {}
    for mod in schema:
        spec = dict(encoders.get(mod.name, {}))
        if "name" not in spec:  # the dataset's recommendation or the kind's default, the config's kwargs on top
            spec = {**default_encoder_spec(mod), **spec}
        name = spec.pop("name")
        if width is not None:
            spec.setdefault("width", width)
        built[mod.name] = build_encoder(name, mod, **spec)
    level = getattr(FUSIONS.get(fusion).factory, "input_level", "pooled")
    in_dims = {m: (e.low_level_dim if level == "low_level" else e.out_dim) for m, e in built.items()}
    fuser = FUSIONS.create(fusion, in_dims=in_dims, num_outputs=num_outputs, **dict(fusion_args or {}))
    return MultimodalModel(built, fuser, num_outputs)
