"""The MulT-style attention fusion ignores padding positions of sequence features."""

import torch

from polymodal.data.batch import Batch
from polymodal.data.schema import Modality
from polymodal.models import build_model


def _model():
    torch.manual_seed(0)
    schema = (Modality("text", "text", (12,), representation="tokens", extra={"vocab_size": 40}),
              Modality("nums", "timeseries", (10, 3)))
    model = build_model(schema, 5, fusion="mult", fusion_args={"hidden": 16, "heads": 2, "layers": 2}, width=16,
                        encoders={"text": {"depth": 1, "heads": 2}})
    return model.eval()


def _batch(tokens: torch.Tensor, nums: torch.Tensor) -> Batch:
    b = tokens.shape[0]
    return Batch(inputs={"text": tokens, "nums": nums},
                 present={"text": torch.ones(b, dtype=torch.bool), "nums": torch.ones(b, dtype=torch.bool)},
                 label=torch.zeros(b, dtype=torch.long), index=torch.arange(b))


def test_appending_padding_tokens_does_not_change_the_logits():
    model = _model()
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(1, 40, (3, 8), generator=g)
    tokens[0, 5:] = 0  # a shorter text
    nums = torch.randn(3, 10, 3, generator=g)
    padded = torch.cat([tokens, torch.zeros(3, 4, dtype=torch.long)], dim=1)  # 4 more padding positions
    with torch.no_grad():
        short = model(_batch(tokens, nums)).logits
        long = model(_batch(padded, nums)).logits
    torch.testing.assert_close(long, short, atol=1e-5, rtol=1e-5)
    # and a real token does change them (the check is not vacuous)
    changed = padded.clone()
    changed[0, 5] = 7
    with torch.no_grad():
        assert not torch.allclose(model(_batch(changed, nums)).logits[0], short[0], atol=1e-4)


def test_fusion_without_a_mask_still_accepts_sequences_of_any_length():
    model = _model()
    fusion = model.fusion
    feats = {"text": torch.randn(2, 6, 16), "nums": torch.randn(2, 1, 16)}
    present = {"text": torch.tensor([True, False]), "nums": torch.tensor([True, True])}
    out = fusion(feats, present)
    assert out.logits.shape == (2, 5) and torch.isfinite(out.logits).all()
