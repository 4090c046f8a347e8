"""Attention maps of the mult fusion (polymodal.alignment.attention_maps): rows sum to 1 with the null token over
the unmasked keys, padded keys and query rows get 0, and the map equals a naive softmax(QK^T / sqrt(d)) averaged
over heads for a one-layer model."""

from __future__ import annotations

import math

import pytest
import torch

from polymodal.alignment import attention_maps
from polymodal.data.batch import Batch
from polymodal.data.schema import Modality
from polymodal.models import build_model

SCHEMA = (Modality("text", "text", (9,), representation="tokens", extra={"vocab_size": 40}),
          Modality("nums", "timeseries", (6, 3)))


def _model(layers: int = 1):
    torch.manual_seed(0)
    return build_model(SCHEMA, 5, fusion="mult", fusion_args={"hidden": 8, "heads": 2, "layers": layers}, width=8,
                       encoders={"text": {"depth": 1, "heads": 2}}).eval()


def _batch():
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(1, 40, (3, 9), generator=g)
    tokens[0, 5:] = 0  # padding: 4 masked keys (and query rows) in sample 0
    tokens[2, 2:] = 0
    present = {"text": torch.ones(3, dtype=torch.bool), "nums": torch.tensor([True, True, False])}
    return Batch({"text": tokens, "nums": torch.randn(3, 6, 3, generator=g)}, present, torch.zeros(3, dtype=torch.long),
                 torch.arange(3))


def test_rows_sum_to_one_over_unmasked_keys_and_padding_gets_zero():
    model, batch = _model(layers=2), _batch()
    amap = attention_maps(model, batch, query="nums", key="text")
    assert amap.weights.shape == (3, 6, 9) and amap.layer == 1
    assert amap.key_mask[0].tolist() == [True] * 5 + [False] * 4
    assert torch.all(amap.weights[0, :, 5:] == 0) and torch.all(amap.weights[2] == 0)  # padded keys; absent query
    assert torch.all(amap.weights[0, :, :5] > 0)
    torch.testing.assert_close((amap.weights.sum(-1) + amap.null)[:2], torch.ones(2, 6))
    back = attention_maps(model, batch, query="text", key="nums")
    assert torch.all(back.weights[0, 5:] == 0) and torch.all(back.weights[:, :, :][2] == 0)  # padded queries; absent key
    torch.testing.assert_close((back.weights.sum(-1) + back.null)[1], torch.ones(9))
    assert [tuple(m.shape) for m in back.per_sample()] == [(5, 6), (9, 6), (2, 0)]
    with torch.no_grad():  # asking for the maps leaves the model's outputs alone
        torch.testing.assert_close(model(batch).logits, _model(layers=2)(batch).logits)
    assert all(not b.keep_weights and b.weights is None for b in model.fusion.blocks["nums"])


def test_map_equals_a_naive_softmax_of_scaled_dot_products():
    model, batch = _model(layers=1), _batch()
    fusion = model.fusion
    amap = attention_maps(model, batch, query="nums", key="text")
    with torch.no_grad():
        feats = {m: model.encode(m, batch.inputs[m], batch.present[m]) for m in fusion.names}
        tokens = {m: fusion._tokens(m, feats[m], batch.present[m]) for m in fusion.names}
        block = fusion.blocks["nums"][0]
        kv = torch.cat([fusion.null_token.expand(3, 1, -1), tokens["text"]], dim=1)
        q = block.norm_q(tokens["nums"])
        k = block.norm_kv(kv)
        hidden, heads = 8, 2
        wq, wk, _ = block.attn.in_proj_weight.split(hidden)
        bq, bk, _ = block.attn.in_proj_bias.split(hidden)
        qh = (q @ wq.T + bq).view(3, 6, heads, hidden // heads).transpose(1, 2)
        kh = (k @ wk.T + bk).view(3, 10, heads, hidden // heads).transpose(1, 2)
        scores = qh @ kh.transpose(-1, -2) / math.sqrt(hidden // heads)  # (B, heads, 6, 10)
        valid = torch.cat([torch.ones(3, 1, dtype=torch.bool), batch.inputs["text"] != 0], dim=1)
        naive = torch.softmax(scores.masked_fill(~valid[:, None, None, :], -math.inf), -1).mean(1)
    torch.testing.assert_close(amap.weights[:2], naive[:2, :, 1:])
    torch.testing.assert_close(amap.null[:2], naive[:2, :, 0])


def test_attention_maps_refuse_other_fusions_and_unknown_modalities():
    torch.manual_seed(0)
    concat = build_model(SCHEMA, 5, fusion="concat", width=8, encoders={"text": {"depth": 1, "heads": 2}})
    with pytest.raises(ValueError, match="model.fusion=mult"):
        attention_maps(concat, _batch(), "nums", "text")
    with pytest.raises(ValueError, match=r"key='video' is not a modality"):
        attention_maps(_model(), _batch(), "nums", "video")
    with pytest.raises(ValueError, match="not to itself"):
        attention_maps(_model(), _batch(), "nums", "nums")
    with pytest.raises(ValueError, match="layer 3"):
        attention_maps(_model(), _batch(), "nums", "text", layer=3)


def test_the_docs_attention_example_runs_and_gives_what_it_says(capsys):
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "align_translate.md").read_text()
    code = re.search(r"### Example: attention maps.*?```python\n(.*?)```", doc, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "docs/align_translate.md", "exec"), namespace)  # noqa: S102 - the documented example, verbatim
    amap = namespace["amap"]
    assert capsys.readouterr().out.startswith("(2, 6, 9) (6, 5)")
    torch.testing.assert_close(amap.weights.sum(-1) + amap.null, torch.ones(2, 6))
