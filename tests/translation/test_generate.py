"""The conditional VAE (every registered generator's tiny variant): shapes, the loss falls on a tiny set, the
condition changes the picture, seeded draws repeat; conditions and run folders fail with clear errors; sample
grids are PNG files of the right size."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from polymodal.translation.generate import (
    CVAE,
    GENERATORS,
    MAX_TEXT,
    AudioData,
    AudioDigitNet,
    GeneratorConfig,
    GeneratorRun,
    grid_image,
    load_generator,
    one_hot,
    parse_condition,
    save_grid,
    text_digits,
    train_cvae,
)

CONDITIONS = {"audio": 6, "text": 10}


def _tiny(name: str) -> CVAE:
    entry = GENERATORS.get(name)
    return entry.factory(conditions=CONDITIONS, **entry.tiny)


def _digits_set(n: int = 40, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Hand-made 'digits': a bright vertical bar whose column is the digit, plus noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 10
    x = torch.rand(n, 1, 28, 28, generator=g) * 0.1
    for i, d in enumerate(y.tolist()):
        x[i, 0, 4:24, 2 + 2 * d: 4 + 2 * d] = 1.0
    return x, y


@pytest.mark.parametrize("name", GENERATORS.names())
def test_shapes_of_every_generator(name):
    torch.manual_seed(0)
    model = _tiny(name)
    x, y = _digits_set(8)
    logits, mu, logvar = model(x, "text", one_hot(y.numpy()))
    assert logits.shape == (8, 1, 28, 28) and mu.shape == logvar.shape == (8, model.latent)
    samples = model.sample("audio", torch.randn(3, 6), n=4)
    assert samples.shape == (3, 4, 1, 28, 28) and (samples >= 0).all() and (samples <= 1).all()
    assert torch.isfinite(model.loss(x, "audio", torch.randn(8, 6)))


@pytest.mark.parametrize("name", GENERATORS.names())
def test_the_loss_falls_on_a_tiny_set(name):
    torch.manual_seed(0)
    model = _tiny(name)
    x, y = _digits_set(40)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    c = one_hot(y.numpy())

    def mean_loss() -> float:
        torch.manual_seed(1)
        with torch.no_grad():
            return float(model.loss(x, "text", c))

    before = mean_loss()
    for _ in range(60):
        loss = model.loss(x, "text", c)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert mean_loss() < 0.8 * before


def test_training_through_train_cvae_learns_to_follow_the_condition():
    """Trained on the hand-made bars, the text condition decides where the bar is drawn."""
    x, y = _digits_set(200)
    emb = torch.eye(10)[torch.arange(30) % 10] + 0.01 * torch.randn(30, 10)
    cfg = GeneratorConfig(epochs=40, batch_size=50, lr=5e-3, latent=2, hidden=64, cond=16)
    model, history = train_cvae(x, y, emb, torch.arange(30) % 10, cfg)
    assert history["train_loss"][-1] < history["train_loss"][0] and history["samples_per_sec"] > 0
    s = model.sample("text", one_hot([2, 7]), n=6, generator=torch.Generator().manual_seed(0))
    cols = s[:, :, 0, 4:24].mean(dim=(1, 2))  # (2, 28) mean brightness per column
    assert int(cols[0].argmax()) in (6, 7) and int(cols[1].argmax()) in (16, 17)
    a = model.sample("audio", emb[[2, 7]], n=6, generator=torch.Generator().manual_seed(0))
    cols = a[:, :, 0, 4:24].mean(dim=(1, 2))
    assert int(cols[0].argmax()) in (6, 7) and int(cols[1].argmax()) in (16, 17)


def test_the_condition_changes_the_output_and_the_seed_repeats_it():
    torch.manual_seed(0)
    model = _tiny("cvae").eval()
    c = one_hot([3, 8])
    a = model.sample("text", c, 5, torch.Generator().manual_seed(7))
    b = model.sample("text", c, 5, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)  # same seed, same images
    other = model.sample("text", c, 5, torch.Generator().manual_seed(8))
    assert not torch.equal(a, other)  # another seed, other images
    assert (a[0] - a[1]).abs().max() > 1e-4  # digit 3 and digit 8 with the same latent draws differ
    z = torch.zeros(1, model.latent)
    assert not torch.allclose(model.decode(z, model.condition("text", one_hot([3]))),
                              model.decode(z, model.condition("text", one_hot([8]))))


def test_bad_inputs_name_what_was_expected():
    model = _tiny("cvae")
    with pytest.raises(ValueError, match=r"unknown condition modality 'video'.*\['audio', 'text'\]"):
        model.condition("video", torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"text condition of shape \(2, 9\); expected \(B, 10\)"):
        model.condition("text", torch.zeros(2, 9))
    with pytest.raises(ValueError, match=r"images of shape \(2, 28, 28\); expected \(B, 1, 28, 28\)"):
        model.loss(torch.zeros(2, 28, 28), "text", one_hot([1, 2]))
    with pytest.raises(ValueError, match="n=0"):
        model.sample("text", one_hot([1]), 0)
    with pytest.raises(ValueError, match="latent=0; expected an integer >= 1"):
        GENERATORS.create("cvae", conditions={"x": 1}, latent=0)
    with pytest.raises(ValueError, match="at least one condition"):
        CVAE({})
    with pytest.raises(ValueError, match="log-mel of shape"):
        AudioDigitNet().embed(torch.zeros(2, 30, 51))


def test_text_and_condition_strings():
    assert text_digits("48 21").tolist() == [4, 8, 2, 1]
    with pytest.raises(ValueError, match="empty"):
        text_digits(" ")
    with pytest.raises(ValueError, match=f"at most {MAX_TEXT} digits"):
        text_digits("1" * (MAX_TEXT + 1))
    with pytest.raises(ValueError, match=r"characters \['a', 'x'\]; only the digits 0-9"):
        text_digits("4a2x")
    assert parse_condition("text:4821") == ("text", "4821")
    assert parse_condition("audio:C:/a.wav") == ("audio", "C:/a.wav")
    with pytest.raises(ValueError, match="unknown modality 'video'"):
        parse_condition("video:clip.mp4")
    with pytest.raises(ValueError, match="expected MODALITY:VALUE"):
        parse_condition("4821")
    with pytest.raises(ValueError, match="is empty"):
        parse_condition("text:")


def _saved_run(tmp_path, name="gen") -> GeneratorRun:
    torch.manual_seed(0)
    cv = GENERATORS.create("cvae", conditions={"audio": 8, "text": 10}, latent=2, hidden=16, cond=8)
    audio = AudioDigitNet(dim=8, channels=8)
    info = {"model": {"name": "cvae", "conditions": {"audio": 8, "text": 10}, "latent": 2, "hidden": 16, "cond": 8,
                      "n_mels": 40, "audio_channels": 8}}
    run = GeneratorRun(cv.eval(), audio.eval(), info)
    run.save(tmp_path / name)
    return run


def test_a_run_folder_round_trips_and_generates_the_same_images(tmp_path):
    run = _saved_run(tmp_path)
    back = load_generator(tmp_path / "gen")
    a = run.generate("text", "307", n=3, seed=5)
    b = back.generate("text", "307", n=3, seed=5)
    assert a.shape == (3, 3, 1, 28, 28) and np.array_equal(a, b)
    mel = torch.randn(2, 40, 51) - 8
    assert np.array_equal(run.generate("audio", mel, n=2, seed=1), back.generate("audio", mel, n=2, seed=1))


def test_run_folders_of_another_kind_or_damaged_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist.*--train"):
        load_generator(tmp_path / "nothing")
    other = tmp_path / "train-run"
    other.mkdir()
    (other / "config.yaml").write_text("name: x\n")
    with pytest.raises(ValueError, match=r"is not a generator run.*training run of `polymodal train`"):
        load_generator(other)
    _saved_run(tmp_path)
    marker = tmp_path / "gen" / "generator.json"
    doc = json.loads(marker.read_text())
    marker.write_text(json.dumps({**doc, "kind": "index"}))
    with pytest.raises(ValueError, match="does not describe a generator run"):
        load_generator(tmp_path / "gen")
    marker.write_text(json.dumps({**doc, "model": {**doc["model"], "hidden": 32}}))
    with pytest.raises(ValueError, match="do not fit the model"):
        load_generator(tmp_path / "gen")


def test_sample_grids_are_pngs_of_the_right_size(tmp_path):
    from PIL import Image

    images = np.zeros((2, 3, 1, 28, 28), np.float32)
    images[1, 2] = 1.0
    pic = grid_image(images, pad=2, scale=1)
    assert pic.shape == (2 * 30 + 2, 3 * 30 + 2) and pic.dtype == np.uint8
    assert pic[32 + 5, 62 + 5] == 0 and pic[2 + 5, 2 + 5] == 255  # ink is dark on white
    path = save_grid(images, tmp_path / "grid.png")
    assert Image.open(path).size == ((3 * 30 + 2) * 2, (2 * 30 + 2) * 2)
    with pytest.raises(ValueError, match="PNG"):
        save_grid(images, tmp_path / "grid.jpg")
    with pytest.raises(ValueError, match="rows, columns"):
        grid_image(np.zeros((28, 28)))


def test_generator_options_are_checked():
    with pytest.raises(ValueError, match="epochs=0"):
        GeneratorConfig(epochs=0).check()
    with pytest.raises(ValueError, match=r"images=5.*\[20, 6000\]"):
        GeneratorConfig(images=5).check()
    assert isinstance(AudioData({}, {}), AudioData)
