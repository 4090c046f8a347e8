"""Cross-modal generation: a conditional VAE that draws handwritten digits (28 x 28 MNIST images) from a
spoken digit or from text (docs/align_translate.md, "Generation").

- **Conditions.** ``audio``: the embedding of a spoken digit, the penultimate layer (max over time of a
  small 1-D CNN over the log-mel) of an audio digit classifier trained on the FSDD clips of the AV-digits
  train split (best epoch on the val split). ``text``: a digit character, one-hot. Each condition goes
  through its own small MLP into one condition vector ``c`` the CVAE shares.
- **The CVAE** (Kingma et al., 2014; Sohn et al., 2015): encoder q(z | x, c) and decoder p(x | z, c), MLPs on
  the 784 pixels, Bernoulli pixels, standard normal prior. Trained on the MNIST rows of the AV-digits train
  pool (t10k rows 0-5999) by the ELBO (binary cross-entropy summed over pixels + KL), each image once with
  its text condition and once with the audio embedding of a training recording of its digit drawn at random
  (the AV-digits pairing: within the class), every epoch a new draw.
- **Sampling.** z ~ N(0, temperature^2 I), the decoder's pixel probabilities are the image (the Bernoulli
  mean, not a binary draw); seeded by a ``torch.Generator``, so a seed gives the same images.

The registered factory :func:`cvae` (``GENERATORS``) builds the model; :func:`fit_generator` trains the
audio encoder and the CVAE and writes a generator run folder (``RunPaths.generator`` and
``RunPaths.generator_weights``); :func:`load_generator` reads one back, :meth:`GeneratorRun.generate`
draws images and :func:`save_grid` writes them as a PNG.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from polymodal.registry import Registry
from polymodal.runpaths import RunPaths

GENERATORS: Registry[nn.Module] = Registry("generator")
"""Conditional image generators, built as ``factory(conditions={modality: width}, **kw)``."""

CONDITIONS = ("audio", "text")  # the modalities a generator run is conditioned on
IMAGE_SIZE = 28
PIXELS = IMAGE_SIZE * IMAGE_SIZE
DIGITS = 10
MAX_TEXT = 64  # characters of a text condition
MAX_AUDIO_SECONDS = 2.0  # an audio condition is one spoken digit; the model hears its first second
KIND = "generator"  # what a generator run folder's marker file says it is
VERSION = 1


class AudioDigitNet(nn.Module):
    """Log-mel (B, n_mels, frames) -> embedding (B, dim) -> digit logits (B, 10).

    The log-mel is standardised per mel band with the training clips' statistics (``mean``, ``std``,
    buffers kept with the weights), then Conv1d-BN-ReLU-MaxPool twice and Conv1d-ReLU; the embedding is
    the maximum over time, the logits a linear layer on it (after dropout while training).
    """

    def __init__(self, n_mels: int = 40, dim: int = 64, channels: int = 64, dropout: float = 0.2) -> None:
        super().__init__()
        self.n_mels, self.dim, self.channels = n_mels, dim, channels
        self.trunk = nn.Sequential(
            nn.Conv1d(n_mels, channels, 5, padding=2), nn.BatchNorm1d(channels), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(channels, channels, 5, padding=2), nn.BatchNorm1d(channels), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(channels, dim, 3, padding=1), nn.ReLU())
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(dim, DIGITS)
        self.register_buffer("mean", torch.zeros(n_mels))
        self.register_buffer("std", torch.ones(n_mels))

    def _check(self, mel: Tensor) -> None:
        if mel.dim() != 3 or mel.shape[1] != self.n_mels or mel.shape[2] < 4:
            raise ValueError(f"audio encoder: log-mel of shape {tuple(mel.shape)}; expected (B, {self.n_mels}, frames) "
                             "with at least 4 frames (the AV-digits log-mel: 40 bands, 20 ms hop)")

    def embed(self, mel: Tensor) -> Tensor:
        self._check(mel)
        x = (mel.float() - self.mean[:, None]) / self.std[:, None]
        return self.trunk(x).amax(dim=-1)

    def forward(self, mel: Tensor) -> Tensor:
        return self.head(self.drop(self.embed(mel)))


class CVAE(nn.Module):
    """Conditional VAE on 28 x 28 images (see the module docstring). ``conditions`` maps each condition
    modality to the width of its input (audio: the embedding width, text: 10)."""

    def __init__(self, conditions: Mapping[str, int], latent: int = 16, hidden: int = 512, cond: int = 64) -> None:
        super().__init__()
        if not conditions:
            raise ValueError("a CVAE needs at least one condition modality (e.g. conditions={'text': 10})")
        for key, value in (("latent", latent), ("hidden", hidden), ("cond", cond), *conditions.items()):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"CVAE {key}={value!r}; expected an integer >= 1")
        self.widths = dict(conditions)
        self.latent = latent
        self.cond = nn.ModuleDict({m: nn.Sequential(nn.Linear(w, cond), nn.ReLU(), nn.Linear(cond, cond))
                                   for m, w in conditions.items()})
        self.enc = nn.Sequential(nn.Linear(PIXELS + cond, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.mu = nn.Linear(hidden, latent)
        self.logvar = nn.Linear(hidden, latent)
        self.dec = nn.Sequential(nn.Linear(latent + cond, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, PIXELS))

    def condition(self, modality: str, x: Tensor) -> Tensor:
        """The condition vector (B, cond) of ``x`` (B, width of ``modality``)."""
        if modality not in self.cond:
            raise ValueError(f"unknown condition modality {modality!r}; this generator takes {sorted(self.cond)}")
        if x.dim() != 2 or x.shape[1] != self.widths[modality]:
            raise ValueError(f"{modality} condition of shape {tuple(x.shape)}; expected (B, {self.widths[modality]})")
        return self.cond[modality](x.float())

    def encode(self, image: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        if image.dim() != 4 or tuple(image.shape[1:]) != (1, IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"images of shape {tuple(image.shape)}; expected (B, 1, {IMAGE_SIZE}, {IMAGE_SIZE}) in [0, 1]")
        h = self.enc(torch.cat([image.flatten(1).float(), c], 1))
        return self.mu(h), self.logvar(h).clamp(-12.0, 8.0)

    def decode(self, z: Tensor, c: Tensor) -> Tensor:
        """Pixel logits (B, 1, 28, 28)."""
        return self.dec(torch.cat([z, c], 1)).view(-1, 1, IMAGE_SIZE, IMAGE_SIZE)

    def forward(self, image: Tensor, modality: str, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Reconstruction logits, mean and log-variance of q(z | image, condition)."""
        c = self.condition(modality, x)
        mu, logvar = self.encode(image, c)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        return self.decode(z, c), mu, logvar

    def loss(self, image: Tensor, modality: str, x: Tensor) -> Tensor:
        """Negative ELBO, nats per image: Bernoulli reconstruction (summed over pixels) + KL(q || N(0, I))."""
        logits, mu, logvar = self(image, modality, x)
        rec = F.binary_cross_entropy_with_logits(logits, image.float(), reduction="none").flatten(1).sum(1)
        kl = 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).sum(1)
        return (rec + kl).mean()

    @torch.no_grad()
    def sample(self, modality: str, x: Tensor, n: int, generator: torch.Generator | None = None,
               temperature: float = 1.0) -> Tensor:
        """(B, n, 1, 28, 28) pixel probabilities: ``n`` draws of z for each of the B conditions."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n={n!r}: expected the number of samples per condition, an integer >= 1")
        if not (isinstance(temperature, int | float) and math.isfinite(temperature) and temperature >= 0):
            raise ValueError(f"temperature={temperature!r}: expected a number >= 0 (1: the prior)")
        c = self.condition(modality, x)
        z = torch.randn(len(c) * n, self.latent, generator=generator) * temperature
        return torch.sigmoid(self.decode(z.to(c.dtype), c.repeat_interleave(n, 0))).view(len(c), n, 1, IMAGE_SIZE,
                                                                                          IMAGE_SIZE)


@GENERATORS.register("cvae", tiny={"latent": 2, "hidden": 16, "cond": 8})
def cvae(conditions: Mapping[str, int] | None = None, latent: int = 16, hidden: int = 512, cond: int = 64) -> CVAE:
    """Conditional VAE (MLP encoder and decoder, Bernoulli pixels) drawing 28 x 28 digit images from a
    condition vector per modality (default: a 64-d audio embedding and a one-hot text digit)."""
    return CVAE(dict(conditions or {"audio": 64, "text": DIGITS}), latent=latent, hidden=hidden, cond=cond)


# ----------------------------------------------------------------------------- conditions


def text_digits(text: str) -> np.ndarray:
    """The digits (L,) int64 of a text condition: 1 to ``MAX_TEXT`` characters 0-9 (spaces ignored)."""
    if not isinstance(text, str):
        raise ValueError(f"text condition {text!r}: expected a string of digits such as '4821'")
    chars = text.replace(" ", "")
    if not chars:
        raise ValueError("text condition is empty: give 1 to 64 digits, e.g. text:4821")
    if len(chars) > MAX_TEXT:
        raise ValueError(f"text condition of {len(chars)} characters; at most {MAX_TEXT} digits (one image per "
                         "character): shorten it or split it into several calls")
    bad = sorted({ch for ch in chars if ch not in "0123456789"})
    if bad:
        raise ValueError(f"text condition {text!r} holds characters {bad}; only the digits 0-9 can be drawn")
    return np.array([int(ch) for ch in chars], dtype=np.int64)


def one_hot(digits: np.ndarray | Sequence[int]) -> Tensor:
    return F.one_hot(torch.as_tensor(np.asarray(digits), dtype=torch.long), DIGITS).float()


def clip_logmel(wave: np.ndarray) -> Tensor:
    """(1, 40, 51) AV-digits log-mel of a mono 8 kHz waveform: its first second, zero-padded to one second
    (what the AV-digits clips are)."""
    from polymodal.data.datasets.avdigits import AVDIGITS_LOGMEL, CLIP_SAMPLES
    from polymodal.data.transforms import LogMel

    x = np.zeros(CLIP_SAMPLES, dtype=np.float32)
    w = np.asarray(wave, dtype=np.float32)[:CLIP_SAMPLES]
    x[: len(w)] = w
    with torch.no_grad():
        return LogMel(AVDIGITS_LOGMEL)(torch.from_numpy(x)[None])


def read_audio_condition(path: str | os.PathLike) -> Tensor:
    """The log-mel (1, 40, 51) of a spoken digit in an audio file (resampled to 8 kHz, mono): one digit, at
    most ``MAX_AUDIO_SECONDS`` long, not silent."""
    from polymodal.data.datasets.avdigits import SAMPLE_RATE
    from polymodal.data.io.audio import read_audio

    wave, sr = read_audio(path, sample_rate=SAMPLE_RATE, resample=True)
    seconds = len(wave) / sr
    if seconds > MAX_AUDIO_SECONDS:
        raise ValueError(f"audio condition {path}: {seconds:.2f} s long; the generator takes one spoken digit of at "
                         f"most {MAX_AUDIO_SECONDS:g} s (it hears the first second): cut the file to the digit")
    if not np.any(np.abs(wave) > 1e-4):
        raise ValueError(f"audio condition {path} is silent (every sample below 1e-4); record the spoken digit again")
    return clip_logmel(wave)


def parse_condition(spec: str) -> tuple[str, str]:
    """``"audio:FILE"`` or ``"text:STRING"`` -> (modality, value)."""
    modality, sep, value = str(spec).partition(":")
    if not sep:
        raise ValueError(f"condition {spec!r}: expected MODALITY:VALUE, audio:FILE.wav or text:DIGITS (e.g. text:4821)")
    if modality not in CONDITIONS:
        raise ValueError(f"condition {spec!r}: unknown modality {modality!r}; a generator is conditioned on "
                         f"{' or '.join(CONDITIONS)} (audio:FILE.wav, text:DIGITS)")
    if not value:
        raise ValueError(f"condition {spec!r} is empty: give an audio file (audio:FILE.wav) or digits (text:4821)")
    return modality, value


# ----------------------------------------------------------------------------- a generator run


@dataclass
class GeneratorConfig:
    """How :func:`fit_generator` trains. ``images``: a seeded subset of the training images (None: all
    6,000); ``clips``: a seeded subset of the training recordings (None: all 2,400)."""

    seed: int = 0
    epochs: int = 30
    audio_epochs: int = 15
    batch_size: int = 128
    lr: float = 1e-3
    latent: int = 16
    hidden: int = 512
    cond: int = 64
    embed_dim: int = 64
    images: int | None = None
    clips: int | None = None

    def check(self) -> None:
        for key in ("epochs", "audio_epochs", "batch_size", "latent", "hidden", "cond", "embed_dim"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"generator option {key}={value!r}; expected an integer >= 1")
        for key, most in (("images", 6000), ("clips", 2400)):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 20 <= value <= most):
                raise ValueError(f"generator option {key}={value!r}; expected None (all) or an integer in [20, {most}]")
        if not (isinstance(self.lr, int | float) and self.lr > 0):
            raise ValueError(f"generator option lr={self.lr!r}; expected a positive number")


@dataclass
class GeneratorRun:
    """A trained generator: the CVAE, the audio encoder whose embedding conditions it, what they were
    trained with and how well (``info``), and the folder it was read from or written to."""

    cvae: CVAE
    audio: AudioDigitNet
    info: dict[str, Any] = field(default_factory=dict)
    root: Path | None = None

    def condition_inputs(self, modality: str, value: str | os.PathLike | Tensor | np.ndarray | Sequence[int]
                         ) -> tuple[Tensor, np.ndarray]:
        """The CVAE input (B, width) of a condition and the digit each row stands for (-1: unknown, audio):
        ``text`` a string of digits (one row per character; at most ``MAX_TEXT``) or digits as integers (any
        number); ``audio`` an audio file (one row) or log-mels (B, 40, frames)."""
        if modality == "text":
            if isinstance(value, str):
                digits = text_digits(value)
            else:
                digits = np.asarray(value).reshape(-1)
                integers = np.issubdtype(digits.dtype, np.integer)
                if len(digits) == 0 or not integers or not ((digits >= 0) & (digits < DIGITS)).all():
                    raise ValueError(f"text condition given as numbers {digits[:8].tolist()}...: expected integers 0-9")
            return one_hot(digits), digits.astype(np.int64)
        if modality == "audio":
            mel = value if isinstance(value, Tensor) else torch.as_tensor(value) if isinstance(value, np.ndarray) \
                else read_audio_condition(value)
            with torch.no_grad():
                emb = self.audio.eval().embed(mel)
            return emb, np.full(len(emb), -1, dtype=np.int64)
        raise ValueError(f"unknown condition modality {modality!r}; a generator is conditioned on "
                         f"{' or '.join(CONDITIONS)}")

    def generate(self, modality: str, value: str | os.PathLike | Tensor | np.ndarray | Sequence[int], n: int = 8,
                 seed: int = 0, temperature: float = 1.0) -> np.ndarray:
        """(B, n, 1, 28, 28) float32 images in [0, 1]: ``n`` samples for each condition row (text: one row per
        character), seeded: the same seed gives the same images."""
        x, _ = self.condition_inputs(modality, value)
        g = torch.Generator().manual_seed(int(seed))
        return self.cvae.eval().sample(modality, x, n, g, temperature).numpy()

    def save(self, root: str | os.PathLike) -> Path:
        """Write the run folder: the marker / settings file and the weights (safetensors)."""
        from safetensors.torch import save_file

        paths = RunPaths(root)
        paths.root.mkdir(parents=True, exist_ok=True)
        tensors = {f"cvae.{k}": v.detach().contiguous() for k, v in self.cvae.state_dict().items()}
        tensors |= {f"audio.{k}": v.detach().contiguous() for k, v in self.audio.state_dict().items()}
        tmp = paths.generator_weights.with_name(paths.generator_weights.name + ".tmp")
        save_file(tensors, str(tmp))
        os.replace(tmp, paths.generator_weights)
        doc = {"kind": KIND, "version": VERSION, **self.info}
        tmp = paths.generator.with_name(paths.generator.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
        os.replace(tmp, paths.generator)  # written last: it marks a complete generator run
        self.root = paths.root
        return paths.root


def load_generator(run_dir: str | os.PathLike) -> GeneratorRun:
    """Read a generator run folder written by :func:`fit_generator` (clear errors for a missing folder, a run
    of another kind and a damaged one)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    paths = RunPaths(run_dir)
    if not paths.root.is_dir():
        raise FileNotFoundError(f"generator run {paths.root} does not exist; train one with "
                                f"`polymodal generate {paths.root} --train`")
    if not paths.generator.is_file():
        other = (f" (it is a training run of `polymodal train`: it holds {paths.config.name})" if paths.config.is_file()
                 else "")
        raise ValueError(f"{paths.root} is not a generator run: it lacks {paths.generator.name}{other}; "
                         f"`polymodal generate` needs a folder written by `polymodal generate RUN_DIR --train`")
    try:
        doc = json.loads(paths.generator.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{paths.generator} is not valid JSON ({e}); train the generator again") from None
    if not isinstance(doc, dict) or doc.get("kind") != KIND:
        kind = doc.get("kind") if isinstance(doc, dict) else None
        raise ValueError(f"{paths.generator} does not describe a generator run (kind {kind!r}, "
                         f"expected {KIND!r})")
    if doc.get("version") != VERSION:
        raise ValueError(f"{paths.generator}: generator run version {doc.get('version')!r}; this polymodal reads "
                         f"version {VERSION}: train the generator again")
    model = doc.get("model", {})
    try:
        tensors = load_file(str(paths.generator_weights))
    except (FileNotFoundError, SafetensorError, OSError) as e:
        raise ValueError(f"cannot read the generator weights {paths.generator_weights}: {e}; "
                         "train the generator again") from None
    cv = GENERATORS.create(model.get("name", "cvae"), conditions=model["conditions"], latent=model["latent"],
                           hidden=model["hidden"], cond=model["cond"])
    audio = AudioDigitNet(n_mels=model["n_mels"], dim=model["conditions"]["audio"], channels=model.get("audio_channels", 64))
    try:
        cv.load_state_dict({k[5:]: v for k, v in tensors.items() if k.startswith("cvae.")})
        audio.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("audio.")})
    except RuntimeError as e:
        raise ValueError(f"the weights {paths.generator_weights} do not fit the model {paths.generator.name} "
                         f"describes ({' '.join(str(e).split())[:300]}); train the generator again") from None
    return GeneratorRun(cv.eval(), audio.eval(), {k: v for k, v in doc.items() if k not in ("kind", "version")}, paths.root)


# ----------------------------------------------------------------------------- training


@dataclass
class AudioData:
    """Log-mels (N, 40, 51) and digits (N,) of the AV-digits clips of each split."""

    mel: dict[str, Tensor]
    digit: dict[str, Tensor]


def audio_data() -> AudioData:
    from polymodal.data.datasets.avdigits import AVDigits

    data = {s: AVDigits("avdigits", s) for s in ("train", "val", "test")}
    return AudioData({s: d.tensor("audio").float() for s, d in data.items()},
                     {s: torch.from_numpy(np.asarray(d.audio_digits)).long() for s, d in data.items()})


def image_pool(split: str) -> tuple[Tensor, Tensor]:
    """The MNIST images (N, 1, 28, 28) in [0, 1] and digits (N,) of an AV-digits split's pool."""
    from polymodal.data.datasets.avdigits import IMAGE_POOLS, load_artifact

    art = load_artifact()
    lo, hi = IMAGE_POOLS[split]
    return (torch.from_numpy(art.images[lo:hi].astype(np.float32) / 255.0)[:, None],
            torch.from_numpy(art.image_labels[lo:hi].astype(np.int64)))


def _subset(n: int, keep: int | None, seed: int) -> Tensor:
    if keep is None or keep >= n:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:keep].sort().values


def train_audio_encoder(data: AudioData, cfg: GeneratorConfig, log: Callable[[str], None] = lambda s: None
                        ) -> tuple[AudioDigitNet, dict[str, float]]:
    """The audio digit classifier on the train clips (``cfg.clips`` of them), best epoch on val accuracy;
    its val and test accuracies."""
    torch.manual_seed(cfg.seed)
    keep = _subset(len(data.mel["train"]), cfg.clips, cfg.seed)
    x, y = data.mel["train"][keep], data.digit["train"][keep]
    net = AudioDigitNet(n_mels=x.shape[1], dim=cfg.embed_dim)
    net.mean.copy_(x.mean(dim=(0, 2)))
    net.std.copy_(x.std(dim=(0, 2)) + 1e-5)
    opt = torch.optim.Adam(net.parameters(), 2e-3, weight_decay=1e-4)
    g = torch.Generator().manual_seed(cfg.seed)

    def accuracy(split: str) -> float:
        with torch.no_grad():
            return float((net.eval()(data.mel[split]).argmax(1) == data.digit[split]).float().mean())

    best, state = -1.0, None
    for epoch in range(cfg.audio_epochs):
        net.train()
        for idx in torch.randperm(len(x), generator=g).split(64):
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        acc = accuracy("val")
        log(f"audio encoder epoch {epoch}: val accuracy {100 * acc:.1f} %")
        if acc > best:
            best, state = acc, {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict(state)  # type: ignore[arg-type]
    return net.eval(), {"val_acc": best, "test_acc": accuracy("test")}


def train_cvae(images: Tensor, digits: Tensor, audio_emb: Tensor, audio_digit: Tensor, cfg: GeneratorConfig,
               val: tuple[Tensor, Tensor, Tensor, Tensor] | None = None,
               log: Callable[[str], None] = lambda s: None) -> tuple[CVAE, dict[str, Any]]:
    """The CVAE on ``images`` (N, 1, 28, 28) of ``digits``: each image once with its text condition and once
    with the embedding of a random recording of its digit (rows of ``audio_emb`` of ``audio_digit``), drawn
    anew every epoch. Returns the model and its history (loss per epoch, training samples per second)."""
    torch.manual_seed(cfg.seed)
    model = GENERATORS.create("cvae", conditions={"audio": int(audio_emb.shape[1]), "text": DIGITS},
                              latent=cfg.latent, hidden=cfg.hidden, cond=cfg.cond)
    missing = sorted(set(range(DIGITS)) - set(audio_digit.tolist()))
    if missing:
        raise ValueError(f"no recording of digit(s) {missing} among the training clips; use more clips")
    opt = torch.optim.Adam(model.parameters(), cfg.lr)
    g = torch.Generator().manual_seed(cfg.seed)
    by_digit = [torch.nonzero(audio_digit == d).flatten() for d in range(DIGITS)]

    def paired(y: Tensor, gen: torch.Generator) -> Tensor:
        pick = torch.empty(len(y), dtype=torch.long)
        for d in range(DIGITS):
            rows = torch.nonzero(y == d).flatten()
            if len(rows):
                pick[rows] = by_digit[d][torch.randint(len(by_digit[d]), (len(rows),), generator=gen)]
        return pick

    history: dict[str, Any] = {"train_loss": [], "val_loss": []}
    seen, seconds = 0, 0.0
    for epoch in range(cfg.epochs):
        model.train()
        total, count = 0.0, 0
        t0 = time.perf_counter()
        for idx in torch.randperm(len(images), generator=g).split(cfg.batch_size):
            x, y = images[idx], digits[idx]
            emb = audio_emb[paired(y, g)]
            loss = 0.5 * (model.loss(x, "text", one_hot(y.numpy())) + model.loss(x, "audio", emb))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        seconds += time.perf_counter() - t0
        seen += 2 * count  # every image is learned from twice, once per condition
        history["train_loss"].append(total / count)
        if val is not None:
            history["val_loss"].append(cvae_val_loss(model, *val, seed=cfg.seed))
        log(f"cvae epoch {epoch}: train loss {total / count:.1f} nats/image"
            + (f", val {history['val_loss'][-1]:.1f}" if val is not None else ""))
    history["samples_per_sec"] = seen / seconds if seconds > 0 else float("nan")
    return model.eval(), history


def cvae_val_loss(model: CVAE, images: Tensor, digits: Tensor, audio_emb: Tensor, audio_digit: Tensor,
                  seed: int = 0) -> float:
    """Mean negative ELBO (nats per image) of the validation images, each with its text condition and the
    embedding of a validation recording of its digit (a seeded draw)."""
    g = torch.Generator().manual_seed(seed)
    by_digit = [torch.nonzero(audio_digit == d).flatten() for d in range(DIGITS)]
    pick = torch.stack([by_digit[int(d)][torch.randint(len(by_digit[int(d)]), (1,), generator=g)[0]] for d in digits])
    state = torch.get_rng_state()
    torch.manual_seed(seed)
    with torch.no_grad():
        model.eval()
        out = 0.5 * (float(model.loss(images, "text", one_hot(digits.numpy()))) + float(model.loss(images, "audio",
                                                                                                      audio_emb[pick])))
    torch.set_rng_state(state)
    return out


def fit_generator(out_dir: str | os.PathLike | None = None, config: GeneratorConfig | None = None,
                  log: Callable[[str], None] = lambda s: None, audio: AudioData | None = None) -> GeneratorRun:
    """Train the audio encoder (FSDD clips of the AV-digits train split) and the CVAE (MNIST rows of the train
    pool), and write the run folder to ``out_dir`` when given. Nothing of the val or test splits is trained
    on (val picks the audio encoder's epoch)."""
    cfg = config or GeneratorConfig()
    cfg.check()
    if out_dir is not None:
        paths = RunPaths(out_dir)
        if paths.root.exists() and any(paths.root.iterdir()):
            raise FileExistsError(f"{paths.root} exists and is not empty; give a new folder for the generator run")
    data = audio if audio is not None else audio_data()
    t0 = time.perf_counter()
    enc, audio_metrics = train_audio_encoder(data, cfg, log)
    with torch.no_grad():
        emb = {s: enc.embed(m) for s, m in data.mel.items()}
    images, digits = image_pool("train")
    keep = _subset(len(images), cfg.images, cfg.seed + 1)
    vi, vd = image_pool("val")
    clips = _subset(len(data.mel["train"]), cfg.clips, cfg.seed)
    model, history = train_cvae(images[keep], digits[keep], emb["train"][clips], data.digit["train"][clips], cfg,
                                val=(vi[:1000], vd[:1000], emb["val"], data.digit["val"]), log=log)
    info = {
        "model": {"name": "cvae", "conditions": dict(model.widths), "latent": cfg.latent, "hidden": cfg.hidden,
                  "cond": cfg.cond, "n_mels": enc.n_mels, "audio_channels": enc.channels},
        "config": asdict(cfg),
        "audio_encoder": audio_metrics,
        "history": history,
        "seconds": time.perf_counter() - t0,
        "data": {"images": "MNIST t10k rows of the AV-digits train pool (0-5999)", "train_images": int(len(keep)),
                 "audio": "FSDD clips of the AV-digits train split (recordings 10-49)", "train_clips": int(len(clips))},
    }
    run = GeneratorRun(model, enc, info)
    if out_dir is not None:
        run.save(out_dir)
    return run


# ----------------------------------------------------------------------------- pictures


def grid_image(images: np.ndarray, pad: int = 2, scale: int = 2) -> np.ndarray:
    """(R, C, 1, 28, 28) or (R, C, 28, 28) images in [0, 1] -> one uint8 picture (R rows x C columns)."""
    a = np.asarray(images, dtype=np.float32)
    if a.ndim == 5 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim != 4 or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"a grid takes images of shape (rows, columns, [1,] H, W); got {np.shape(images)}")
    r, c, h, w = a.shape
    out = np.ones((r * (h + pad) + pad, c * (w + pad) + pad), dtype=np.float32)
    for i in range(r):
        for j in range(c):
            out[pad + i * (h + pad): pad + i * (h + pad) + h, pad + j * (w + pad): pad + j * (w + pad) + w] = a[i, j]
    pic = (255 * (1.0 - np.clip(out, 0, 1))).round().astype(np.uint8)  # dark ink on white
    return pic.repeat(scale, 0).repeat(scale, 1) if scale > 1 else pic


def save_grid(images: np.ndarray, path: str | os.PathLike, pad: int = 2, scale: int = 2) -> Path:
    """Write :func:`grid_image` as a PNG (Pillow); returns the path."""
    from PIL import Image

    p = Path(path)
    if p.suffix.lower() != ".png":
        raise ValueError(f"--out {p}: sample grids are written as PNG; give a path ending in .png")
    p.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid_image(images, pad, scale)).save(p, optimize=True)
    return p


__all__ = ["CONDITIONS", "CVAE", "GENERATORS", "MAX_AUDIO_SECONDS", "MAX_TEXT", "AudioData", "AudioDigitNet",
           "GeneratorConfig", "GeneratorRun", "audio_data", "clip_logmel", "cvae", "fit_generator", "grid_image",
           "image_pool", "load_generator", "one_hot", "parse_condition", "read_audio_condition", "save_grid",
           "text_digits", "train_audio_encoder", "train_cvae"]
