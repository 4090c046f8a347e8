"""A trained contrastive run as the search side's Embedder: raw media embed exactly as the dataset served them."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from polymodal.coordinated.embedders import Embedder, load_embedder
from polymodal.coordinated.run_embedder import load_run_embedder
from polymodal.data.base import build_dataset
from polymodal.engine import train

from .test_contrastive import run_config


@pytest.fixture(scope="module")
def named_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("named")
    cfg = run_config(tmp, "named", dataset="avdigits-named", pairing="all_pairs")
    cfg.trainer.max_epochs = 1
    train(cfg)
    return tmp / "named"


@pytest.mark.slow
def test_run_embedder_matches_the_dataset_pipeline(named_run, raw_data):
    emb = load_embedder(str(named_run))
    assert isinstance(emb, Embedder) and emb.modalities == ("image", "audio", "text") and emb.dim == 8
    assert emb.model_id.startswith("polymodal-run:named@")
    ds = build_dataset("avdigits-named", "test", persist_features=False)
    rows = [0, 31, 95, 200]
    batch = ds.collate_fn()([ds[i] for i in rows])
    with torch.no_grad():
        want = {m: emb.strategy.predict(emb.model, batch.with_absent([o for o in ds.modalities if o != m])).per_modality[m]
                for m in ds.modalities}
    images = [Image.fromarray(np.round(ds.tensor("image")[int(ds.rows[i])][0].numpy() * 255).astype(np.uint8)) for i in rows]
    np.testing.assert_allclose(emb.embed("image", images), want["image"].numpy(), atol=1e-5)
    waves = [sf.read(raw_data / "fsdd" / "recordings" / ds.files[i], dtype="float32") for i in rows]
    np.testing.assert_allclose(emb.embed("audio", waves), want["audio"].numpy(), atol=1e-4)
    np.testing.assert_allclose(emb.embed("text", [ds.phrases[i] for i in rows]), want["text"].numpy(), atol=1e-5)
    # resampling: the same clip at 16 kHz lands close to its 8 kHz embedding
    wave, sr = waves[0]
    up = np.interp(np.arange(2 * len(wave)) / 16000, np.arange(len(wave)) / 8000, wave).astype(np.float32)
    assert float(emb.embed("audio", [(up, 16000)])[0] @ emb.embed("audio", [(wave, sr)])[0]) > 0.9
    with pytest.raises(TypeError, match="image items must be PIL"):
        emb.embed("image", [np.zeros((28, 28))])


def test_not_a_run_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.yaml does not exist"):
        load_run_embedder(tmp_path)
