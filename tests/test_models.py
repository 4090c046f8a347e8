"""Forward + backward of every registered encoder and fusion (tiny variants) inside a MultimodalModel,
with all modalities present, one missing in some rows, one absent from the whole batch, and NaN
planted in the slots of absent modalities (which must never be read)."""

import pytest
import torch

from polymodal.data.batch import Batch
from polymodal.data.schema import Modality
from polymodal.encoders.base import ENCODERS
from polymodal.fusion.base import FUSIONS
from polymodal.models import MultimodalModel, build_model

B = 6


def _modality(kind: str, name: str, representation: str = "") -> Modality:
    specs = {
        "audio": dict(shape=(1600,), sample_rate=8000, representation="waveform"),
        "audio-logmel": dict(shape=(40, 21), sample_rate=8000, representation="logmel"),
        "image": dict(shape=(1, 28, 28), representation="pixels"),
        "text": dict(shape=(12,), representation="tokens", extra={"vocab_size": 64}),
        "tabular": dict(shape=(5,), representation="features"),
        "timeseries": dict(shape=(20, 3), representation="features"),
        "video": dict(shape=(4, 3, 16, 16), representation="pixels"),
    }
    key = "audio-logmel" if representation == "logmel" else kind
    return Modality(name, kind, **specs[key])  # type: ignore[arg-type]


def _input(mod: Modality, gen: torch.Generator) -> torch.Tensor:
    if mod.kind == "text":
        return torch.randint(1, mod.extra["vocab_size"], (B, *mod.shape), generator=gen)
    if mod.kind in ("image", "video"):
        return torch.rand((B, *mod.shape), generator=gen)
    return torch.randn((B, *mod.shape), generator=gen)


def _batch(schema, gen, scenario: str) -> Batch:
    inputs = {m.name: _input(m, gen) for m in schema}
    present = {m.name: torch.ones(B, dtype=torch.bool) for m in schema}
    last = schema[-1].name
    if scenario == "some-missing":
        present[last][::2] = False
    elif scenario == "absent":
        present[last][:] = False
    for m in schema:  # absent slots hold garbage that must never be read
        x = inputs[m.name]
        if x.is_floating_point():
            x[~present[m.name]] = float("nan")
        else:
            x[~present[m.name]] = 10**9  # an out-of-vocabulary id would crash an embedding lookup
    return Batch(inputs, present, torch.randint(0, 3, (B,), generator=gen), torch.arange(B))


def _check_forward_backward(model: MultimodalModel, batch: Batch) -> None:
    out = model(batch)
    assert out.logits.shape == (B, 3)
    assert torch.isfinite(out.logits).all()
    if out.per_modality is not None:
        for m, logits in out.per_modality.items():
            rows = batch.present[m]
            assert logits.shape == (B, 3)
            assert torch.isfinite(logits[rows]).all()
    loss = torch.nn.functional.cross_entropy(out.logits, batch.label)
    loss.backward()
    for name, p in model.named_parameters():
        if p.grad is not None:
            assert torch.isfinite(p.grad).all(), name


def _available(entry) -> bool:
    check = getattr(entry.factory, "is_available", None)
    return check() if callable(check) else True


ENCODER_CASES = []
for entry in ENCODERS:
    kind = getattr(entry.factory, "kind", None) or entry.name.split("_")[0]
    ENCODER_CASES.append(pytest.param(entry.name, id=entry.name))


@pytest.mark.parametrize("scenario", ["all-present", "some-missing", "absent"])
@pytest.mark.parametrize("encoder", [e.name for e in ENCODERS])
def test_every_encoder_in_a_model(encoder, scenario):
    from polymodal.encoders import pretrained_available

    if not pretrained_available(encoder):
        pytest.skip(f"{encoder} needs the 'pretrained' extra")
    entry = ENCODERS.get(encoder)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    kind = encoder_kind(encoder)
    reps = ["waveform", "logmel"] if kind == "audio" else [""]
    for rep in reps:
        schema = (_modality("tabular", "t"), _modality(kind, "x", rep))
        model = build_model(
            schema, 3, fusion="late", encoders={"x": {"name": encoder, **entry.tiny}, "t": {"width": 8}}
        )
        _check_forward_backward(model, _batch(schema, gen, scenario))


def encoder_kind(name: str) -> str:
    from polymodal.encoders.base import encoder_kind as kind_of

    return kind_of(name)


SEQ_SCHEMA = (
    ("ts", "timeseries", "timeseries_cnn"),
    ("txt", "text", "text_transformer"),
    ("ts2", "timeseries", "timeseries_gru"),
)


@pytest.mark.parametrize("scenario", ["all-present", "some-missing", "absent"])
@pytest.mark.parametrize("n_modalities", [2, 3])
@pytest.mark.parametrize("fusion", [f.name for f in FUSIONS])
def test_every_fusion_in_a_model(fusion, n_modalities, scenario):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    spec = SEQ_SCHEMA[:n_modalities]
    schema = tuple(_modality(kind, name) for name, kind, _ in spec)
    encoders = {name: {"name": enc, **ENCODERS.get(enc).tiny} for name, _, enc in spec}
    model = build_model(schema, 3, fusion=fusion, fusion_args=FUSIONS.get(fusion).tiny, encoders=encoders)
    _check_forward_backward(model, _batch(schema, gen, scenario))


def test_absent_rows_do_not_change_present_rows():
    """A sample's prediction does not depend on which other rows of its batch miss a modality."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(2)
    schema = (_modality("tabular", "a"), _modality("timeseries", "b"))
    model = build_model(schema, 3, fusion="late", width=8).eval()
    full = _batch(schema, gen, "all-present")
    partial = Batch(dict(full.inputs), dict(full.present), full.label, full.index)
    partial.present = {**full.present, "b": torch.tensor([True, False] * (B // 2))}
    with torch.no_grad():
        a = model(full).logits
        b = model(partial).logits
    rows = partial.present["b"]
    assert torch.allclose(a[rows], b[rows], atol=1e-6)
    assert not torch.allclose(a[~rows], b[~rows])


def test_unknown_modality_in_encoder_config():
    schema = (_modality("tabular", "a"),)
    with pytest.raises(ValueError, match=r"model\.encoders names modalities \['zz'\]"):
        build_model(schema, 3, encoders={"zz": {}})


def test_encoder_of_wrong_kind():
    schema = (_modality("tabular", "a"),)
    with pytest.raises((ValueError, TypeError), match="tabular"):
        build_model(schema, 3, encoders={"a": {"name": "image_cnn"}})
