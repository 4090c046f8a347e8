"""Speech and handwriting to text: the ctc fusion's emissions and frame mask, the audio_frames encoder and the
image encoder's column tokens, the digitstrings modalities option, a tiny CTC run trained by `polymodal train`
(joint strategy, the sequence task's CTC) and transcribing an audio file from it with `polymodal translate`."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from polymodal.cli import main
from polymodal.data.base import build_dataset
from polymodal.data.schema import Modality
from polymodal.encoders import build_encoder
from polymodal.fusion import FUSIONS
from polymodal.tasks import get_task
from polymodal.tasks.outputs import ModelOutput
from polymodal.tasks.sequence import EXTRA, ctc, greedy_decode


def test_ctc_fusion_gives_emissions_with_the_frame_mask_and_pooled_token_logits():
    torch.manual_seed(0)
    fusion = FUSIONS.create("ctc", in_dims={"audio": 6, "image": 4}, num_outputs=3, hidden=8).eval()
    feats = {"audio": torch.randn(4, 7, 6), "image": torch.randn(4, 5, 4)}
    present = {"audio": torch.tensor([True, True, False, True]), "image": torch.tensor([True, False, True, True])}
    mask = {"audio": torch.tensor([[True] * 7, [True] * 4 + [False] * 3, [True] * 7, [True] * 7])}
    out = fusion(feats, present, sequence_mask=mask)
    e = out.extras[EXTRA]
    assert e.shape == (4, 7, 3 + 2) and out.logits.shape == (4, 3)
    assert e[0, :, -1].tolist() == [1.0] * 7 and e[1, :, -1].tolist() == [1.0] * 4 + [0.0] * 3
    assert e[2, :, -1].sum() == 0 and torch.equal(out.logits[2], torch.zeros(3))  # the source is absent: no frames
    expected = e[1, :4, :3].logsumexp(0)
    torch.testing.assert_close(out.logits[1], expected)
    # the image (context) changes the emissions of a row where it is present
    alone = fusion(feats, {**present, "image": torch.zeros(4, dtype=torch.bool)}, sequence_mask=mask).extras[EXTRA]
    assert not torch.allclose(alone[0], e[0]) and torch.allclose(alone[1], e[1])
    with pytest.raises(ValueError, match=r"source='text' is not a modality.*model.fusion_args.source"):
        FUSIONS.create("ctc", in_dims={"audio": 6}, num_outputs=3, source="text")
    with pytest.raises(ValueError, match=r"takes sequence features \(B, T, 6\)"):
        fusion({"audio": torch.randn(4, 6), "image": feats["image"]}, present)


def test_the_sequence_task_trains_on_the_emissions_and_says_which_fusion_gives_them():
    task = get_task("sequence")
    e = torch.randn(2, 6, 5)
    e[..., -1] = 1.0
    out = ModelOutput(torch.zeros(2, 3), None, {}, {EXTRA: e})
    target = torch.tensor([[0, 1], [2, -1]])
    assert torch.equal(task.loss(task.loss_input(out), target), ctc(e, target))
    with pytest.raises(ValueError, match="model.fusion=ctc"):
        task.loss_input(ModelOutput(torch.zeros(2, 3), None, {}, {}))
    assert torch.equal(get_task("classification").loss_input(out), out.logits)


def test_audio_frames_keeps_every_mel_band_per_frame_and_images_read_by_columns():
    mod = Modality("audio", "audio", (40, 396), sample_rate=8000, representation="logmel")
    enc = build_encoder("audio_frames", mod, width=16, channels=8, stride=4)
    seq = enc.sequence(torch.randn(2, 40, 396) - 8)
    assert seq.shape == (2, 99, 16)
    img = Modality("image", "image", (1, 28, 196), representation="pixels")
    cols = build_encoder("image_cnn", img, width=8, channels=(4, 8), tokens="columns").eval()
    x = torch.rand(2, 1, 28, 196)
    assert cols.sequence(x).shape == (2, 49, 8)
    x2 = x.clone()
    x2[:, :, :, 100:] = 0.0  # a change right of column 100 leaves the first columns' tokens alone
    torch.testing.assert_close(cols.sequence(x2)[:, :20], cols.sequence(x)[:, :20])
    assert build_encoder("image_cnn", img, width=8, channels=(4, 8)).sequence(x).shape == (2, 7 * 49, 8)
    with pytest.raises(ValueError, match="tokens='rows'"):
        build_encoder("image_cnn", img, tokens="rows")


def test_the_padding_after_a_string_is_masked_out_of_the_frames():
    ds = build_dataset("digitstrings", "val", strings=4)
    enc = build_encoder("audio_frames", ds.schema[0], width=8, channels=8, stride=4)
    mask = enc.sequence_mask(ds.tensor("audio"))
    assert mask.shape == (4, 99)
    for i in range(4):  # up to the output frame of the last log-mel frame whose window touches the recording
        t = ds.frames(i)  # frames centred inside the recording; the next one's window may still touch it
        assert (t - 1) // 4 + 1 <= int(mask[i].sum()) <= t // 4 + 1 and bool(mask[i, 0])
    waves = build_dataset("digitstrings", "val", strings=4, cache_features=False)
    raw = build_encoder("audio_frames", waves.schema[0], width=8, channels=8, stride=4)
    assert torch.equal(raw.sequence_mask(waves.tensor("audio")), mask)  # the same from the waveform
    silent = enc.sequence_mask(torch.full((1, 40, 396), -13.8155))
    assert silent.sum() == 1  # nothing loud: the first frame is kept
    img = build_dataset("digitstrings", "val", strings=4, modalities=["image"])
    cols = build_encoder("image_cnn", img.schema[0], width=8, channels=(4, 8), tokens="columns")
    cmask = cols.sequence_mask(img.tensor("image"))
    assert cmask.shape == (4, cols.sequence(img.tensor("image")).shape[1])
    for i in range(4):  # 7 tokens per 28-pixel digit: the last digit's ink ends within its last 7 tokens
        assert 7 * int(img.lengths[i]) - 7 < int(cmask[i].sum()) <= 7 * int(img.lengths[i])
    assert build_encoder("image_cnn", img.schema[0], width=8, channels=(4, 8)).sequence_mask(img.tensor("image")) is None


def test_digitstrings_serves_the_modalities_asked_for():
    ds = build_dataset("digitstrings", "val", strings=3, modalities=["image"])
    assert [m.name for m in ds.schema] == ["image"] and set(ds[0]["inputs"]) == {"image"}
    assert ds.tensor("audio").shape[0] == 3  # the other side is still there as ground truth
    with pytest.raises(ValueError, match=r"modalities=\['video'\].*\['audio', 'image'\]"):
        build_dataset("digitstrings", "val", strings=3, modalities=["video"])
    short = build_dataset("digitstrings", "val", strings=20, digits=[1, 2])
    assert set(short.lengths.tolist()) <= {1, 2} and short.provenance["digits"] == [1, 2]
    default = build_dataset("digitstrings", "val", strings=3)
    assert default.texts == build_dataset("digitstrings", "val", strings=3, digits=[3, 7]).texts  # the recipe holds
    with pytest.raises(ValueError, match=r"digits=\[0, 7\].*1 <= shortest <= longest <= 7"):
        build_dataset("digitstrings", "val", strings=3, digits=[0, 7])


def _wav(path, wave):
    sf.write(path, wave.astype(np.float32), 8000, subtype="PCM_16")
    return path


def test_a_ctc_run_trains_through_the_engine_and_transcribes_a_file(tmp_path, capsys):
    code = main(["train", "configs/digitstrings_ctc.yaml", f"out_dir={tmp_path}", "name=ctc", "data.options.strings=6",
                 "trainer.max_epochs=1", "trainer.progress=false", "model.fusion_args.hidden=8", "model.width=8",
                 "model.encoders.audio.channels=8"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "error_rate" in out and (tmp_path / "ctc" / "report.md").read_text().count("Test transcriptions") == 1
    ds = build_dataset("digitstrings", "test", strings=2, cache_features=False)
    n = int(ds.audio_samples[0])
    wav = _wav(tmp_path / "string.wav", ds.tensor("audio")[0, :n].numpy())
    code = main(["translate", str(tmp_path / "ctc"), "--audio", str(wav)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert set(out.strip()) <= set("0123456789")  # an untrained model may decode nothing
    from polymodal.translation.speech import load_transcriber

    tr = load_transcriber(tmp_path / "ctc")
    x = build_dataset("digitstrings", "test", strings=2).tensor("audio")
    with torch.no_grad():
        e = tr.model.eval()(_batch(x)).extras[EXTRA]
    assert tr.transcribe_inputs(x)[0] == "".join(map(str, greedy_decode(e)[0]))
    too_long = _wav(tmp_path / "long.wav", np.full(8000 * 9, 0.1))
    code = main(["translate", str(tmp_path / "ctc"), "--audio", str(too_long)])
    assert code == 1 and "at most 7.90 s" in capsys.readouterr().err
    silent = _wav(tmp_path / "silent.wav", np.zeros(8000))
    code = main(["translate", str(tmp_path / "ctc"), "--audio", str(silent)])
    assert code == 1 and "is silent" in capsys.readouterr().err


def _batch(x):
    from polymodal.data.batch import Batch

    b = len(x)
    return Batch({"audio": x}, {"audio": torch.ones(b, dtype=torch.bool)}, torch.zeros(b, dtype=torch.long),
                 torch.arange(b))


def test_translate_refuses_a_run_without_ctc(tmp_path, capsys):
    run = tmp_path / "clf"
    run.mkdir()
    (run / "config.yaml").write_text("name: clf\ndata:\n  dataset: avdigits\nmodel:\n  fusion: late\n")
    wav = _wav(tmp_path / "s.wav", 0.2 * np.sin(np.arange(8000) / 5.0))
    code = main(["translate", str(run), "--audio", str(wav)])
    err = capsys.readouterr().err
    assert code == 1 and "model.fusion='late'" in err and "gives no transcription" in err
