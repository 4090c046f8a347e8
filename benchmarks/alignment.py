"""Alignment of spoken digit strings to their handwritten rows (docs/align_translate.md): which audio frame belongs to
which digit position of the image row, on ``digitstrings`` (FSDD + MNIST under the AV-digits splits).

Methods (each seed trains its own models; nothing is selected on test):

- ``uniform``: the string's frames cut into L equal parts (no model; the floor any method must beat).
- ``dtw-unimodal``: exact DTW between per-frame digit posteriors of an audio model trained on single AV-digits
  clips (train split; clip logit = log-sum-exp of the frame logits, best epoch on val clip accuracy) and the
  digit posteriors of an image model trained on single MNIST digits (train pool, rows 0-5999); cost
  -log(p_t . q_k + 1e-6). ``dtw-unimodal-band1``: the same inside a Sakoe-Chiba band of one digit position.
- ``softdtw``: the audio model of ``dtw-unimodal`` fine-tuned on digit strings (train split, string-level
  pairing only: no boundaries) with the soft-DTW (gamma 0.1) of the same cost against the image posteriors
  as its loss, best epoch on validation frame accuracy; aligned with exact DTW.
- ``attention``: cross-modal attention: each image position (its image posterior and position code) queries
  the audio frames (the unimodal audio model's hidden features and position codes); the attended audio alone
  must name the position's digit (cross-entropy on the string's digits; no boundaries), best epoch on
  validation frame accuracy. The map (L x T, softmax over frames) gives ``attention`` (a monotonic path by
  DTW over -log of the map) and ``attention-argmax`` (each frame to its most attending position; not
  monotonic, so no boundary error).
- ``ctc-forced``: CTC forced alignment. The speech-to-text run of ``configs/digitstrings_ctc.yaml`` (``polymodal
  train``, one per seed: ``--ctc-train-strings`` training strings of the train split with their digits as
  targets, no boundaries; ``--ctc-epochs`` epochs, best epoch on the validation strings' WER) gives per-frame
  posteriors over the 10 digits and the CTC blank (80 ms frames); they are aligned to the image posteriors of
  the string's positions through the CTC topology (``polymodal.alignment.ctc_forced_align``: blanks allowed
  between digits, Viterbi), and the boundary between two digits is the middle of the blank run between their
  spikes (what ``polymodal align`` prints). Unlike the methods above it learns from transcribed strings.
- ``ctc-forced-shift``: the same, every boundary moved later by an offset of 0, 0.5, 1 or 1.5 CTC frames (0 to
  120 ms), the one with the smallest mean boundary error on the validation strings (per seed): where a run's
  spikes sit inside the digits differs from run to run, so the middle of the blank run is not where the
  silence lies.

Metrics on the test strings: ``frame_acc`` (frames inside a recording aligned to its position, pooled over
strings), ``boundary_ms`` (distance of each predicted onset of digits 2..L to the silence before that digit,
0 inside it; mean over boundaries) and ``onset_ms`` (distance to the true onset). Mean +- std over seeds.

    python benchmarks/alignment.py [--seeds 0,1,2] [--train-strings 300] [--test-strings 150] [--epochs 3]
        [--ctc-train-strings 2000] [--ctc-epochs 15]

A seed's results are kept in benchmarks/runs/alignment/ (and the CTC runs in benchmarks/runs/alignment/ctc/);
``--reuse-committed`` takes the methods other than ``ctc-forced`` of a seed from the committed alignment.json
when it was run with the same settings (the code of those methods unchanged), and computes ``ctc-forced``
alone.

Writes benchmarks/results/alignment.md and alignment.json (``--render`` rebuilds the table from the JSON).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
RUNS = HERE / "runs" / "alignment"
NAME = "alignment"
METHODS = {
    "uniform": "equal split of the frames (no model)",
    "dtw-unimodal": "DTW on unimodal digit posteriors",
    "dtw-unimodal-band1": "DTW on unimodal posteriors, Sakoe-Chiba band of 1 position",
    "softdtw": "soft-DTW-trained audio embeddings, DTW",
    "attention": "cross-modal attention map, DTW over -log map",
    "attention-argmax": "cross-modal attention map, argmax per frame (not monotonic)",
    "ctc-forced": "speech CTC run, forced alignment to the image posteriors",
    "ctc-forced-shift": "the same, boundaries moved by an offset chosen on validation",
}
CTC_CONFIG = HERE.parent / "configs" / "digitstrings_ctc.yaml"
METRICS = {"frame_acc": "frame accuracy %", "boundary_ms": "boundary error to the silence (ms)",
           "onset_ms": "boundary error to the onset (ms)"}
GAMMA = 0.1
EPS = 1e-6


class FrameModel(nn.Module):
    """Log-mel (B, 40, T) -> hidden (B, T, 64) and logits (B, T, 11) of the 10 digits and silence; receptive
    field 17 frames (340 ms)."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Conv1d(40, 64, 5, padding=2), nn.ReLU(), nn.Conv1d(64, 64, 5, padding=4, dilation=2),
                                   nn.ReLU(), nn.Conv1d(64, 64, 5, padding=2), nn.ReLU())
        self.head = nn.Conv1d(64, 11, 1)  # the 10 digits, then silence

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.trunk(x)
        return h.transpose(1, 2), self.head(h).transpose(1, 2)


def image_model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 49, 64), nn.ReLU(), nn.Linear(64, 10))


def positions(length: int, dim: int) -> Tensor:
    from polymodal.fusion.attention import sinusoidal_positions

    return sinusoidal_positions(length, dim, torch.device("cpu"), torch.float32)


class PositionAttention(nn.Module):
    """Image positions query audio frames; the attended audio alone names each position's digit."""

    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.q, self.k, self.v = nn.Linear(10 + hidden, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)
        self.out = nn.Sequential(nn.ReLU(), nn.Linear(hidden, 10))
        self.hidden = hidden

    def forward(self, image_post: Tensor, audio_h: Tensor, frame_mask: Tensor) -> tuple[Tensor, Tensor]:
        """image_post (B, L, 10), audio_h (B, T, H), frame_mask (B, T) True on real frames ->
        digit logits (B, L, 10) and the attention map (B, L, T)."""
        b, length, _ = image_post.shape
        q = self.q(torch.cat([image_post, positions(length, self.hidden).expand(b, -1, -1)], -1))
        h = audio_h + positions(audio_h.shape[1], self.hidden)
        scores = q @ self.k(h).transpose(1, 2) / math.sqrt(self.hidden)
        att = torch.softmax(scores.masked_fill(~frame_mask[:, None, :], -1e9), dim=-1)
        return self.out(att @ self.v(h)), att


def log_mel_norm(x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    return (x - mean[None, :, None]) / std[None, :, None]


def train_image(seed: int, art: Any) -> nn.Module:
    """A digit classifier on MNIST t10k rows 0-5999 (the train pool), 3 epochs."""
    torch.manual_seed(seed)
    x = torch.from_numpy(art.images[:6000].astype(np.float32) / 255.0)[:, None]
    y = torch.from_numpy(art.image_labels[:6000])
    model = image_model()
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(3):
        for idx in torch.randperm(len(x), generator=g).split(128):
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def train_audio(seed: int, norm: tuple[Tensor, Tensor], epochs: int = 8) -> tuple[FrameModel, float]:
    """The unimodal audio model on single AV-digits clips (train split): the clip's digit from the log-sum-exp
    of the digit logits over its recording's frames, silence on the frames after the recording (the clip's
    zero padding); best epoch on val clip accuracy."""
    from polymodal.data.datasets.avdigits import AVDigits, load_artifact
    from polymodal.data.datasets.digitstrings import HOP

    art = load_artifact()
    where = {f: i for i, f in enumerate(art.files)}
    torch.manual_seed(seed)
    data = {s: AVDigits("avdigits", s) for s in ("train", "val")}
    x = {s: log_mel_norm(d.tensor("audio"), *norm) for s, d in data.items()}
    y = {s: torch.from_numpy(d.audio_digits) for s, d in data.items()}
    frames = x["train"].shape[2]
    speech = {s: torch.arange(frames)[None, :] * HOP < torch.tensor([int(art.lengths[where[f]]) for f in d.files])[:, None]
              for s, d in data.items()}

    def clip_logits(logits: Tensor, rows: Tensor) -> Tensor:
        return logits[..., :10].masked_fill(~rows[..., None], -1e9).logsumexp(1)

    model = FrameModel()
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    g = torch.Generator().manual_seed(seed)
    best, state = -1.0, None
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(x["train"]), generator=g).split(64):
            logits = model(x["train"][idx])[1]
            sp = speech["train"][idx]
            silence = logits[~sp]
            loss = nn.functional.cross_entropy(clip_logits(logits, sp), y["train"][idx])
            if len(silence):
                loss = loss + nn.functional.cross_entropy(silence, torch.full((len(silence),), 10))
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            logits = model.eval()(x["val"])[1]
            acc = float((clip_logits(logits, speech["val"]).argmax(1) == y["val"]).float().mean())
        if acc > best:
            best, state = acc, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(state)  # type: ignore[arg-type]
    return model.eval(), best


def image_posteriors(model: nn.Module, ds: Any) -> list[Tensor]:
    """Per string, (L, 10) digit posteriors of its image positions."""
    img = ds.tensor("image")
    crops = torch.cat([img[i, :, :, 28 * k : 28 * k + 28][None] for i in range(len(ds)) for k in range(int(ds.lengths[i]))])
    with torch.no_grad():
        post = torch.softmax(model(crops), -1)
    return list(post.split([int(n) for n in ds.lengths]))


def audio_outputs(model: FrameModel, ds: Any, norm: tuple[Tensor, Tensor], grad: bool = False,
                  rows: Tensor | None = None) -> tuple[list[Tensor], list[Tensor]]:
    """Per string, its frames' hidden features (T_i, 64) and posteriors (T_i, 11): the 10 digits, silence."""
    rows = torch.arange(len(ds)) if rows is None else rows
    x = log_mel_norm(ds.tensor("audio")[rows], *norm)
    with torch.set_grad_enabled(grad):
        h, logits = model(x)
    frames = [ds.frames(int(i)) for i in rows]
    return ([h[j, :t] for j, t in enumerate(frames)], [torch.softmax(logits[j, :t], -1) for j, t in enumerate(frames)])


def cost(p: Tensor, q: Tensor) -> Tensor:
    """(T, L) cost of frame posteriors ``p`` (T, 11) against position posteriors ``q`` (L, 10):
    (1 - s_t) * -log(d_t . q_k + 1e-6), with s_t the frame's silence probability (held fixed: no gradient)
    and d_t its digit posterior renormalised over the 10 digits. A silent frame fits every position."""
    s = p[:, 10:].detach()
    d = p[:, :10] / p[:, :10].sum(1, keepdim=True).clamp_min(1e-30)  # all-silence rows: d = 0, cost 0
    return (1 - s) * -torch.log(d @ q.T + EPS)


def score(ds: Any, assign: list[np.ndarray], monotonic: bool) -> dict[str, float | None]:
    """Pooled frame accuracy and mean boundary errors of per-string frame -> position assignments."""
    from polymodal.alignment import boundary_errors, predicted_onsets
    from polymodal.data.datasets.digitstrings import HOP, PAD, SAMPLE_RATE

    hits = total = 0
    gap, onset = [], []
    for i, a in enumerate(assign):
        truth = ds.digit_frames(i)
        keep = truth != PAD
        hits += int((a[keep] == truth[keep]).sum())
        total += int(keep.sum())
        if monotonic:
            n = int(ds.lengths[i])
            err = boundary_errors(predicted_onsets(a, n), ds.boundaries[i, :n], HOP, SAMPLE_RATE)
            gap += list(err["to_gap"])
            onset += list(err["to_onset"])
    return {"frame_acc": hits / total, "boundary_ms": float(np.mean(gap)) if monotonic else None,
            "onset_ms": float(np.mean(onset)) if monotonic else None}


def dtw_assign(costs: list[Tensor], radius: int | None = None) -> list[np.ndarray]:
    from polymodal.alignment import assignment, dtw

    return [assignment(dtw(c.detach().double(), radius)[1], c.shape[0]) for c in costs]


def finetune_softdtw(seed: int, base: FrameModel, train: Any, val: Any, q_train: list[Tensor], q_val: list[Tensor],
                     norm: tuple[Tensor, Tensor], epochs: int) -> tuple[FrameModel, float]:
    from polymodal.alignment import soft_dtw_batch

    torch.manual_seed(seed)
    model = FrameModel()
    model.load_state_dict(base.state_dict())
    opt = torch.optim.Adam(model.parameters(), 5e-4)
    g = torch.Generator().manual_seed(seed)
    best, state = score(val, dtw_assign([cost(p, q) for p, q in zip(audio_outputs(model, val, norm)[1], q_val,
                                                                       strict=True)]), True)["frame_acc"], None
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(train), generator=g).split(16):
            _, posts = audio_outputs(model, train, norm, grad=True, rows=idx)
            values = soft_dtw_batch([cost(p, q_train[int(i)]) for p, i in zip(posts, idx, strict=True)], GAMMA)
            loss = (values / torch.tensor([float(len(p)) for p in posts])).mean()  # per frame
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        acc = score(val, dtw_assign([cost(p, q) for p, q in zip(audio_outputs(model, val, norm)[1], q_val, strict=True)]),
                    True)["frame_acc"]
        if acc is not None and acc > best:
            best, state = acc, {k: v.clone() for k, v in model.state_dict().items()}
    if state is not None:
        model.load_state_dict(state)
    return model.eval(), float(best or 0.0)


def attention_maps(att_model: PositionAttention, audio: FrameModel, ds: Any, q: list[Tensor],
                   norm: tuple[Tensor, Tensor], rows: Tensor, grad: bool = False) -> tuple[Tensor, list[Tensor]]:
    """Digit logits (sum L, 10) and the per-string maps (L_i, T_i) of ``rows``."""
    x = log_mel_norm(ds.tensor("audio")[rows], *norm)
    with torch.set_grad_enabled(grad):
        h, _ = audio(x)
        lengths = [int(ds.lengths[int(i)]) for i in rows]
        post = torch.zeros(len(rows), max(lengths), 10)
        for j, i in enumerate(rows):
            post[j, : lengths[j]] = q[int(i)]
        frames = torch.tensor([ds.frames(int(i)) for i in rows])
        mask = torch.arange(h.shape[1])[None, :] < frames[:, None]
        logits, att = att_model(post, h, mask)
    flat = torch.cat([logits[j, :n] for j, n in enumerate(lengths)])
    return flat, [att[j, :n, : int(frames[j])] for j, n in enumerate(lengths)]


def attention_assign(maps: list[Tensor]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    dtw_a = dtw_assign([-torch.log(m.T + EPS) for m in maps])
    argmax = [m.argmax(0).numpy() for m in maps]
    return dtw_a, argmax


def train_attention(seed: int, base: FrameModel, train: Any, val: Any, q_train: list[Tensor], q_val: list[Tensor],
                    norm: tuple[Tensor, Tensor], epochs: int) -> tuple[PositionAttention, FrameModel, float]:
    torch.manual_seed(seed)
    audio = FrameModel()
    audio.load_state_dict(base.state_dict())
    att = PositionAttention()
    opt = torch.optim.Adam([*att.parameters(), *audio.parameters()], 1e-3)
    g = torch.Generator().manual_seed(seed)
    target = torch.from_numpy(train.labels)
    best, state = -1.0, None
    for _ in range(epochs):
        att.train()
        audio.train()
        for idx in torch.randperm(len(train), generator=g).split(32):
            logits, _ = attention_maps(att, audio, train, q_train, norm, idx, grad=True)
            y = target[idx]
            loss = nn.functional.cross_entropy(logits, y[y >= 0])
            opt.zero_grad()
            loss.backward()
            opt.step()
        att.eval()
        audio.eval()
        _, maps = attention_maps(att, audio, val, q_val, norm, torch.arange(len(val)))
        acc = score(val, attention_assign(maps)[0], True)["frame_acc"] or 0.0
        if acc > best:
            best = acc
            state = ({k: v.clone() for k, v in att.state_dict().items()}, {k: v.clone() for k, v in audio.state_dict().items()})
    att.load_state_dict(state[0])  # type: ignore[index]
    audio.load_state_dict(state[1])  # type: ignore[index]
    return att.eval(), audio.eval(), best


def run_seed(seed: int, train_strings: int, test_strings: int, epochs: int) -> dict[str, Any]:
    from polymodal.data.datasets.avdigits import load_artifact
    from polymodal.data.datasets.digitstrings import DigitStrings

    art = load_artifact()
    train = DigitStrings("train", strings=train_strings)
    val = DigitStrings("val", strings=test_strings)
    test = DigitStrings("test", strings=test_strings)
    frames = torch.cat([train.tensor("audio")[i, :, : train.frames(i)] for i in range(len(train))], 1)
    norm = (frames.mean(1), frames.std(1) + 1e-5)  # per mel band, over the training strings' frames
    t0 = time.perf_counter()
    img = train_image(seed, art)
    audio, audio_val_acc = train_audio(seed, norm)
    q = {name: image_posteriors(img, d) for name, d in (("train", train), ("val", val), ("test", test))}
    out: dict[str, dict[str, float | None]] = {}
    uniform = [np.minimum((np.arange(test.frames(i)) * int(test.lengths[i])) // test.frames(i), test.lengths[i] - 1)
               for i in range(len(test))]
    out["uniform"] = score(test, uniform, True)
    costs = [cost(p, qq) for p, qq in zip(audio_outputs(audio, test, norm)[1], q["test"], strict=True)]
    out["dtw-unimodal"] = score(test, dtw_assign(costs), True)
    out["dtw-unimodal-band1"] = score(test, dtw_assign(costs, 1), True)
    soft, soft_val = finetune_softdtw(seed, audio, train, val, q["train"], q["val"], norm, epochs)
    out["softdtw"] = score(test, dtw_assign([cost(p, qq) for p, qq in zip(audio_outputs(soft, test, norm)[1], q["test"],
                                                                           strict=True)]), True)
    att, att_audio, att_val = train_attention(seed, audio, train, val, q["train"], q["val"], norm, epochs)
    _, maps = attention_maps(att, att_audio, test, q["test"], norm, torch.arange(len(test)))
    dtw_a, argmax = attention_assign(maps)
    out["attention"] = score(test, dtw_a, True)
    out["attention-argmax"] = score(test, argmax, False)
    with torch.no_grad():
        crops = torch.from_numpy(art.images[8000:].astype(np.float32) / 255.0)[:, None]
        image_test_acc = float((img(crops).argmax(1).numpy() == art.image_labels[8000:]).mean())
    return {"seed": seed, "metrics": out, "seconds": time.perf_counter() - t0,
            "val": {"audio_clip_acc": audio_val_acc, "softdtw_frame_acc": soft_val, "attention_frame_acc": att_val},
            "image_test_acc": image_test_acc}


def ctc_run(seed: int, train_strings: int, epochs: int) -> Path:
    """Train (or reuse) the speech-to-text run of ``configs/digitstrings_ctc.yaml`` for ``seed`` with the engine
    of ``polymodal train``."""
    from polymodal.config import load_config
    from polymodal.engine import train
    from polymodal.runpaths import RunPaths

    runs = RUNS / "ctc"
    name = f"ctc-speech-seed{seed}-train{train_strings}-epochs{epochs}"
    if not RunPaths(runs / name).results.is_file():
        train(load_config(CTC_CONFIG, [f"seed={seed}", f"out_dir={runs}", f"name={name}", f"trainer.max_epochs={epochs}",
                                       f"data.split_options.train.strings={train_strings}", "trainer.progress=false",
                                       "trainer.num_threads=1"]))
    return runs / name


def ctc_boundaries_assign(boundaries_ms: np.ndarray, frames: int) -> np.ndarray:
    """(frames,) the position of each 20 ms log-mel frame (frame t at t * 20 ms) given the boundaries in ms."""
    from polymodal.data.datasets.digitstrings import FRAME_MS

    return np.searchsorted(np.asarray(boundaries_ms), np.arange(frames) * FRAME_MS, side="right")


SHIFTS = (0.0, 0.5, 1.0, 1.5)  # ctc-forced-shift: boundary offsets (CTC frames) tried on the validation strings


def run_ctc_forced(seed: int, test_strings: int, ctc_train_strings: int, ctc_epochs: int) -> dict[str, Any]:
    """The ``ctc-forced`` methods of one seed: its CTC run against the image posteriors of the seed's image model;
    ``ctc-forced-shift`` moves every boundary later by the offset of ``SHIFTS`` with the smallest mean boundary
    error on the validation strings."""
    from polymodal.alignment.align import frame_ms_of, load_ctc_run
    from polymodal.alignment.forced import boundaries_of, ctc_forced_align
    from polymodal.data.datasets.avdigits import load_artifact
    from polymodal.data.datasets.digitstrings import DigitStrings
    from polymodal.engine.runfolder import load_run

    t0 = time.perf_counter()
    run_dir = ctc_run(seed, ctc_train_strings, ctc_epochs)
    speech = load_ctc_run(run_dir, "audio", "the CTC run")
    img = train_image(seed, load_artifact())

    def cuts(ds: Any) -> tuple[list[np.ndarray], float]:
        q = image_posteriors(img, ds)
        out, frame_ms = [], 0.0
        for i in range(len(ds)):
            frames, total = speech.posteriors(ds.tensor("audio")[i])
            frame_ms = frame_ms_of(speech, total)
            labels, _ = ctc_forced_align(frames, q[i].double().numpy())
            out.append(boundaries_of(labels, len(q[i])))
        return out, frame_ms

    def scored(ds: Any, c: list[np.ndarray], frame_ms: float, shift: float) -> dict[str, float | None]:
        return score(ds, [ctc_boundaries_assign((b + shift) * frame_ms, ds.frames(i)) for i, b in enumerate(c)], True)

    val, test = DigitStrings("val", strings=test_strings), DigitStrings("test", strings=test_strings)
    (val_cuts, frame_ms), (test_cuts, _) = cuts(val), cuts(test)
    val_errors = {shift: scored(val, val_cuts, frame_ms, shift)["boundary_ms"] for shift in SHIFTS}
    shift = min(SHIFTS, key=lambda x: val_errors[x])  # type: ignore[arg-type, return-value]
    wer = load_run(run_dir).metrics["test"]["error_rate"]
    return {"metrics": {"ctc-forced": scored(test, test_cuts, frame_ms, 0.0),
                        "ctc-forced-shift": scored(test, test_cuts, frame_ms, shift)},
            "seconds": time.perf_counter() - t0, "ctc_test_wer": float(wer), "ctc_run": run_dir.name,
            "shift_frames": shift, "val_boundary_ms_per_shift": {str(k): v for k, v in val_errors.items()}}


def committed_seed(seed: int, command: str) -> dict[str, Any] | None:
    """A seed's record in the committed alignment.json when it was run with the same command settings."""
    path = RESULTS / f"{NAME}.json"
    if not path.is_file():
        return None
    doc = json.loads(path.read_text())
    if doc.get("command", "").split(" --ctc")[0] != command.split(" --ctc")[0]:
        return None
    return next((r for r in doc["runs"] if r["seed"] == seed), None)


def cached_seed(seed: int, train_strings: int, test_strings: int, epochs: int, ctc: tuple[int, int] = (2000, 15),
                reuse: str | None = None) -> dict[str, Any]:
    """One seed's results, reused from benchmarks/runs/alignment/ when the same settings were run (or, with
    ``reuse`` (the benchmark's command), from the committed JSON); ``ctc-forced`` is added when missing."""
    path = RUNS / f"seed{seed}-train{train_strings}-test{test_strings}-epochs{epochs}.json"
    if path.is_file():
        result = json.loads(path.read_text())
    else:
        result = (committed_seed(seed, reuse) if reuse else None) or run_seed(seed, train_strings, test_strings, epochs)
        if reuse and "reused" not in result:
            result = {**result, "reused": "methods other than ctc-forced from the committed alignment.json"}
    key = f"ctc-train{ctc[0]}-epochs{ctc[1]}-shifts{','.join(map(str, SHIFTS))}"
    if result.get("ctc", {}).get("settings") != key:
        extra = run_ctc_forced(seed, test_strings, *ctc)
        result["metrics"].update(extra.pop("metrics"))
        result["ctc"] = {"settings": key, **extra}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    return result


def aggregate(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for method in METHODS:
        for metric in METRICS:
            values = [r["metrics"][method][metric] for r in runs]
            if any(v is None for v in values):
                continue
            rows.append({"method": method, "dataset": "digitstrings", "metric": metric,
                         "mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                         "n": len(values), "values": values})
    return rows


def render(result: dict[str, Any]) -> str:
    """The markdown table of a results JSON (so the committed table is recomputable from its twin)."""
    cell = {(r["method"], r["metric"]): r for r in result["rows"]}

    def fmt(method: str, metric: str) -> str:
        r = cell.get((method, metric))
        if r is None:
            return "n/a"
        k = 100.0 if metric == "frame_acc" else 1.0
        return f"{k * r['mean']:.1f} +- {k * r['std']:.1f}"

    lines = ["# Alignment: spoken digit strings to their handwritten rows", "",
             f"Protocol: {result['protocol']}", "", f"Command: `{result['command']}`", "",
             "| method | " + " | ".join(METRICS.values()) + " |", "|---|" + "---:|" * len(METRICS)]
    lines += [f"| {method} ({label}) | " + " | ".join(fmt(method, m) for m in METRICS) + " |"
              for method, label in METHODS.items()]
    lines += ["", *result["notes"], ""]
    return "\n".join(lines)


def target_wording(mean: float, values: list[float], target: float = 50.0) -> str:
    """Whether the target is reached, on the mean and in each seed."""
    below = sum(v < target for v in values)
    if mean >= target:
        return f"NOT reached ({below} of {len(values)} seeds below it)"
    if below == len(values):
        return "reached in every seed"
    return f"reached on the mean only: {below} of {len(values)} seeds below it, so not robustly"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--train-strings", type=int, default=300)
    parser.add_argument("--test-strings", type=int, default=150)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--ctc-train-strings", type=int, default=2000, help="training strings of the ctc-forced run")
    parser.add_argument("--ctc-epochs", type=int, default=15, help="epochs of the ctc-forced run")
    parser.add_argument("--reuse-committed", action="store_true",
                        help="take the other methods of a seed from the committed JSON run with the same settings")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--render", action="store_true", help="rebuild the .md from the committed .json only")
    args = parser.parse_args(argv)
    if args.render:
        result = json.loads((RESULTS / f"{NAME}.json").read_text())
        (RESULTS / f"{NAME}.md").write_text(render(result))
        return
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    command = (f"python benchmarks/alignment.py --seeds {args.seeds} --train-strings {args.train_strings} "
               f"--test-strings {args.test_strings} --epochs {args.epochs} --ctc-train-strings {args.ctc_train_strings} "
               f"--ctc-epochs {args.ctc_epochs}")
    runs = [cached_seed(s, args.train_strings, args.test_strings, args.epochs, (args.ctc_train_strings, args.ctc_epochs),
                        command if args.reuse_committed else None) for s in seeds]
    reused = any("reused" in r for r in runs)
    best = min(METHODS, key=lambda m: statistics.fmean(r["metrics"][m]["boundary_ms"] or math.inf for r in runs))
    mean_best = statistics.fmean(r["metrics"][best]["boundary_ms"] for r in runs)
    floor = statistics.fmean(r["metrics"]["uniform"]["frame_acc"] for r in runs)
    beat = [m for m in METHODS if m != "uniform" and statistics.fmean(r["metrics"][m]["frame_acc"] for r in runs) > floor]
    result = {
        "protocol": (f"digitstrings, {args.train_strings} training strings, {args.test_strings} validation and "
                     f"{args.test_strings} test strings (AV-digits splits), seeds {args.seeds}: each seed trains "
                     f"every model; soft-DTW and attention {args.epochs} epochs, best epoch on validation frame "
                     f"accuracy; ctc-forced: a speech CTC run per seed (configs/digitstrings_ctc.yaml, "
                     f"{args.ctc_train_strings} training strings with their digits, {args.ctc_epochs} epochs, best "
                     f"epoch on the validation WER), ctc-forced-shift's boundary offset chosen per seed on the validation "
                     f"strings' boundary error; frames of 20 ms; {args.threads} torch thread(s)"
                     + ("; the methods other than ctc-forced were computed by an earlier run of this script with the "
                        "same settings and code for those methods (their per-seed records reused, marked 'reused' "
                        "in the JSON), ctc-forced was added to them" if reused else "")),
        "command": command + (" --reuse-committed" if reused else ""),
        "rows": aggregate(runs),
        "runs": runs,
        "notes": [
            f"Best mean boundary error: {best}, {mean_best:.1f} ms (per seed: "
            + ", ".join(f"{r['metrics'][best]['boundary_ms']:.1f}" for r in runs) + " ms). Target of the project, "
            "below 50 ms: " + target_wording(mean_best, [r["metrics"][best]["boundary_ms"] for r in runs]) + ".",
            ("Methods above the equal split's frame accuracy: " + (", ".join(beat) if beat else "none") + ". "
             + ("Of the methods that learn from string pairs alone (no transcripts), " + (
                 ", ".join(m for m in beat if not m.startswith("ctc-")) or "none") + " beat it"
                + ("" if [m for m in beat if not m.startswith("ctc-")] else
                   ": with recordings of similar length and short silences the equal split is a strong floor "
                   "(likely causes, not measured here: the per-frame posteriors of an audio model trained on whole "
                   "clips are reliable on few frames of each digit, and the attention model does not learn to "
                   "localise in 3 epochs on 300 strings)") + ".")),
            (f"ctc-forced learns from transcribed strings ({args.ctc_train_strings} training strings with their "
             f"digits as CTC targets, no boundaries; the other learned methods see {args.train_strings} strings "
             "paired with their image rows and no transcripts), so it answers whether a speech recogniser's "
             "per-frame posteriors place the boundaries, not whether the pairing alone teaches them. Its CTC runs' "
             "test WER (300 test strings): " + ", ".join(f"{100 * r['ctc']['ctc_test_wer']:.1f} %" for r in runs)
             + ". Its frames are 80 ms (the encoder's stride 4 over 20 ms log-mel frames), so a boundary in the "
             "middle of a blank run lies on a 40 ms grid."),
            ("ctc-forced-shift's offsets, chosen on the validation strings' boundary error (which uses their true "
             "boundaries, as the epoch selection of softdtw and attention uses their frame accuracy): "
             + ", ".join(f"seed {r['seed']}: {r['ctc']['shift_frames']:g} frame(s)" for r in runs)
             + ". This rule was added after ctc-forced's test numbers had been seen (the middle of the blank run "
             "was early in some runs); its offset is chosen on validation only."),
            "Frame accuracy counts the frames inside a digit's recording (the silences between digits are not "
            "scored); the boundary error is the distance from each predicted onset of digits 2..L to the silence "
            "before that digit (0 inside it), the onset error the distance to the digit's first sample.",
            "Image posteriors come from a digit classifier trained on MNIST t10k rows 0-5999 (test accuracy on "
            "rows 8000-9999 per seed in the JSON); every method aligns against them, so the table compares the "
            "audio side and the alignment rule, not the image model.",
            "What it cannot show: the strings are clean, read by the FSDD speakers (the test split holds other "
            "recordings of the same speakers), with silences of 50-150 ms of digital zeros between digits (a "
            "voice-activity detector would find them); continuous speech without pauses and unseen speakers are "
            "not measured. The equal split does not depend on the seed (std 0).",
        ],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{NAME}.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / f"{NAME}.md").write_text(render(result))
    print(render(result))


if __name__ == "__main__":
    main()
