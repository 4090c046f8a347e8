"""Modality schema: what each modality of a dataset is, travelling with the dataset."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["audio", "image", "text", "tabular", "timeseries", "video"]
KINDS: tuple[str, ...] = ("audio", "image", "text", "tabular", "timeseries", "video")


@dataclass(frozen=True)
class Modality:
    """One modality of a dataset.

    name:        key in ``Batch.inputs`` ("audio", "image", "image2", ...)
    kind:        one of KINDS; decides the default encoder
    shape:       shape of ONE sample's tensor, without the batch dimension:
                 audio (samples,) waveform or (n_mels, frames) log-mel when cached,
                 image (C, H, W), text (tokens,) int64 ids, tabular (features,),
                 timeseries (T, channels), video (frames, C, H, W)
    sample_rate: Hz for audio; None otherwise
    representation: "waveform" | "logmel" for audio, "pixels" for images, "tokens" for text,
                 "features" otherwise. Encoders read it to know what they receive.
    extra:       free-form metadata (vocabulary size for text, fps for video, ...)
    """

    name: str
    kind: Kind
    shape: tuple[int, ...]
    sample_rate: int | None = None
    representation: str = "raw"
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"modality {self.name!r}: kind {self.kind!r} is not one of {KINDS}")
        if self.kind == "audio" and self.sample_rate is None:
            raise ValueError(f"audio modality {self.name!r} needs a sample_rate (Hz)")
