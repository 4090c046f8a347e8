"""MLA against its reference implementation: same data, same recipe, one machine, one run.

The reference is the official MLA code (github ``Cecile-hi/Multimodal-Learning-with-Alternating-Unimodal-
Adaptation``) in a checkout the user already has; this script never downloads it. It imports the
reference's own classes from that folder: ``models.backbone.resnet18`` (the audio and visual ResNet-18),
``models.fusion_modules.ConcatFusion`` (the shared head ``fc_out``), ``utils.utils.weight_init``,
``utils.utils.setup_seed`` and ``utils.utils.GSPlugin`` (head gradient modification, called as its training
loop calls it). Its ``AVClassifier`` and ``main.py`` cannot be imported without timm, transformers and the
CREMA-D file lists, so the script assembles ``AVClassifier`` in its ``gs_flag`` configuration from those
classes (same construction order, same forward: pooled audio map, the visual map pooled over frames) and
drives it with a loop that follows ``main.py``'s ``train_epoch`` (``gs_flag``: one step for audio, one for the
image, each with the full head; gradients zeroed between the two steps and deleted after the batch, as
``optimizer.zero_grad()`` did in the torch 1.8.1 that the reference pins) and ``valid`` (fixed rule
0.55 * audio logits + 0.45 * image logits).

Data: polymodal's ``avdigits-hard`` arrays, exported as the reference would store them
(``AVDigits('avdigits-hard', split, cache_features=False)``: waveforms x 32768 rounded to int16, images
x 255 rounded to uint8, labels, row index). Reference inputs: log(|STFT| + 1e-7) of the waveform / 32768
(n_fft 256, hop 128, Hann, centred with zero padding as librosa.stft), grey image / 255 normalised with
mean 0.449, std 0.226 and replicated to 3 channels. Recipe: SGD lr 1e-3, momentum 0.9, weight decay 1e-4,
StepLR(70, 0.1), batch 64, 15 epochs; selection of the epoch on validation (fixed rule), test reported.

Beside it, polymodal's configurations (``--variant NAME=CONFIG[;key=value...]``), trained by the engine on
the same split with the same seeds. Writes ``benchmarks/results/reference_mla.md`` and ``.json``: fused
accuracy (each implementation's own rule and the fixed 0.55/0.45 rule), per-modality accuracy, training
samples/s, and the crossed paired bootstrap interval of each polymodal variant minus the reference.

``--steps N`` runs the controlled comparison instead (``reference_mla_steps.md`` / ``.json``): polymodal
variants start from the reference's initial weights and see the same batches in the same order; per
step the losses, per-modality gradient norms and parameter-update norms are compared.

    python benchmarks/reference_mla.py PATH_TO_REFERENCE_CHECKOUT [--seeds 0,1,2] [--epochs 15] [--threads 2]
    python benchmarks/reference_mla.py PATH_TO_REFERENCE_CHECKOUT --steps 50
    python benchmarks/reference_mla.py --recompute benchmarks/results/reference_mla.json
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from polymodal.bench.compare import paired_by_seed
from polymodal.bench.results import ResultRow, write_results
from polymodal.bench.tables import decode_correct, encode_correct

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATASET = "avdigits-hard"
SPLITS = ("train", "val", "test")
FIXED = {"audio": 0.55, "image": 0.45}  # the reference's av_alpha
IMAGE_MEAN, IMAGE_STD = 0.449, 0.226
STFT = {"n_fft": 256, "hop_length": 128, "eps": 1e-7}
RECIPE = {"lr": 1e-3, "momentum": 0.9, "weight_decay": 1e-4, "step_size": 70, "gamma": 0.1, "batch_size": 64}
DEFAULT_VARIANTS = (
    "paper-recipe=configs/avdigits_mla_resnet18_paper.yaml",
    "reference-settings=configs/avdigits_mla_reference.yaml",
    "recommended=configs/avdigits_mla_resnet18.yaml",
)
REFERENCE_FILES = ("models/backbone.py", "models/fusion_modules.py", "utils/utils.py")


# ----------------------------------------------------------------------------- data


def export_split(split: str) -> dict[str, np.ndarray]:
    """The split's arrays as the reference stores them: ``waveform`` int16 (N, 8000), ``image`` uint8
    (N, 28, 28), ``label`` int64 (N,), ``index`` int64 (N,) (the row of the split)."""
    from polymodal.data.datasets.avdigits import AVDigits

    ds = AVDigits(DATASET, split, cache_features=False)
    wav = ds.tensor("audio").numpy().astype(np.float64)
    img = ds.tensor("image").numpy().astype(np.float64)[:, 0]
    return {
        "waveform": np.clip(np.round(wav * 32768), -32768, 32767).astype(np.int16),
        "image": np.clip(np.round(img * 255), 0, 255).astype(np.uint8),
        "label": np.asarray(ds.labels, dtype=np.int64),
        "index": np.arange(len(ds), dtype=np.int64),
    }


def export_arrays() -> dict[str, dict[str, np.ndarray]]:
    return {split: export_split(split) for split in SPLITS}


def save_arrays(arrays: dict[str, dict[str, np.ndarray]], folder: Path) -> list[Path]:
    """``folder/avdigits-hard_<split>.npz`` per split (the files a user hands the reference's own loader)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for split, arr in arrays.items():
        path = folder / f"{DATASET}_{split}.npz"
        np.savez(path, **arr)
        paths.append(path)
    return paths


def reference_spectrogram(waveform: np.ndarray | Tensor) -> Tensor:
    """int16 waveforms (N, samples) -> float32 log(|STFT| + 1e-7) (N, 129, frames), the reference's
    ``data/extract_spec.py`` front end (librosa.stft: Hann, centred, zero padding) on waveform / 32768."""
    wav = torch.as_tensor(np.asarray(waveform), dtype=torch.float32) / 32768.0
    spec = torch.stft(wav, STFT["n_fft"], STFT["hop_length"], window=torch.hann_window(STFT["n_fft"]), center=True,
                      pad_mode="constant", return_complex=True)
    return torch.log(spec.abs() + STFT["eps"])


def reference_image(image: np.ndarray | Tensor) -> Tensor:
    """uint8 grey images (N, H, W) -> (N, 3, 1, H, W): /255, normalised with 0.449 / 0.226, replicated to 3
    channels, one frame (the visual network's (B, C, T, H, W) input)."""
    x = (torch.as_tensor(np.asarray(image), dtype=torch.float32) / 255.0 - IMAGE_MEAN) / IMAGE_STD
    return x[:, None, None].expand(-1, 3, 1, -1, -1).contiguous()


def polymodal_inputs(arr: dict[str, np.ndarray]) -> tuple[Tensor, Tensor]:
    """The exported arrays as polymodal's dataset serves them: waveform / 32768 (N, samples), image / 255
    (N, 1, H, W)."""
    wav = torch.as_tensor(arr["waveform"], dtype=torch.float32) / 32768.0
    img = torch.as_tensor(arr["image"], dtype=torch.float32)[:, None] / 255.0
    return wav, img


# ----------------------------------------------------------------------------- the reference


def load_reference(path: str | Path) -> SimpleNamespace:
    """The reference's classes from a checkout at ``path``: resnet18, ConcatFusion, weight_init, setup_seed,
    GSPlugin. Raises SystemExit with a clear message when the folder is not such a checkout."""
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise SystemExit(
            f"reference checkout {root} does not exist: clone github.com/Cecile-hi/Multimodal-Learning-with-"
            f"Alternating-Unimodal-Adaptation and pass its folder")
    missing = [f for f in REFERENCE_FILES if not (root / f).is_file()]
    if missing:
        raise SystemExit(f"{root} is not a checkout of the MLA reference code: it lacks {', '.join(missing)}")
    sys.path.insert(0, str(root))
    try:
        backbone = importlib.import_module("models.backbone")
        fusion = importlib.import_module("models.fusion_modules")
        utils = importlib.import_module("utils.utils")
    except ImportError as exc:
        raise SystemExit(f"could not import the reference code from {root}: {exc}") from None
    finally:
        sys.path.remove(str(root))
    return SimpleNamespace(resnet18=backbone.resnet18, ConcatFusion=fusion.ConcatFusion,
                           weight_init=utils.weight_init, setup_seed=utils.setup_seed, GSPlugin=utils.GSPlugin, root=root)


class ReferenceAV(nn.Module):
    """The reference's ``AVClassifier`` with ``gs_flag`` (models/basic_model.py), built from its classes in
    its order: ``fusion_module`` = ConcatFusion(512, classes) (its ``fc_out`` is MLA's shared head), then
    ``audio_net`` and ``visual_net`` = resnet18('audio' / 'visual'). forward -> pooled (a, v)."""

    def __init__(self, ref: SimpleNamespace, num_classes: int = 10) -> None:
        super().__init__()
        self.fusion_module = ref.ConcatFusion(input_dim=512, output_dim=num_classes)
        self.audio_net = ref.resnet18(modality="audio")
        self.visual_net = ref.resnet18(modality="visual")

    def forward(self, audio: Tensor, visual: Tensor) -> tuple[Tensor, Tensor]:
        a = self.audio_net(audio)
        v = self.visual_net(visual)
        (_, c, h, w) = v.size()
        b = a.size()[0]
        v = v.view(b, -1, c, h, w).permute(0, 2, 1, 3, 4)
        a = torch.flatten(F.adaptive_avg_pool2d(a, 1), 1)
        v = torch.flatten(F.adaptive_avg_pool3d(v, 1), 1)
        return a, v


def build_reference(ref: SimpleNamespace, seed: int) -> ReferenceAV:
    """``setup_seed(seed)``, the classifier, ``model.apply(weight_init)`` (main.py's order)."""
    ref.setup_seed(seed)
    model = ReferenceAV(ref)
    model.apply(ref.weight_init)
    return model


def reference_optimizer(model: nn.Module) -> tuple[torch.optim.Optimizer, Any]:
    opt = torch.optim.SGD(model.parameters(), lr=RECIPE["lr"], momentum=RECIPE["momentum"],
                          weight_decay=RECIPE["weight_decay"])
    return opt, torch.optim.lr_scheduler.StepLR(opt, RECIPE["step_size"], RECIPE["gamma"])


def gs_plugin(ref: SimpleNamespace) -> Any:
    """The reference's GSPlugin without its CUDA-only constructor (it allocates P as torch.cuda.FloatTensor):
    P = I (512 x 512) on the CPU, exp_count 0, exactly what __init__ sets."""
    gs = ref.GSPlugin.__new__(ref.GSPlugin)
    gs.Pl = torch.eye(512)
    gs.exp_count = 0
    return gs


class StepRecord:
    """One batch of a training curve: per-modality loss, encoder gradient norm, encoder update norm."""

    def __init__(self, loss: dict[str, float], grad_norm: dict[str, float], update_norm: dict[str, float]) -> None:
        self.loss, self.grad_norm, self.update_norm = loss, grad_norm, update_norm


def _norm(tensors: list[Tensor]) -> float:
    return float(torch.sqrt(sum((t.double() ** 2).sum() for t in tensors))) if tensors else 0.0


def reference_batch(model: ReferenceAV, gs: Any, opt: torch.optim.Optimizer, spec: Tensor, image: Tensor,
                    label: Tensor, step: int, n_batches: int, record: bool = False) -> StepRecord | None:
    """One batch of main.py's train_epoch with gs_flag (torch 1.8.1 semantics of optimizer.zero_grad())."""
    crit = nn.CrossEntropyLoss()
    fc = model.fusion_module.fc_out
    nets = {"audio": model.audio_net, "image": model.visual_net}
    before = {m: [p.detach().clone() for p in n.parameters()] for m, n in nets.items()} if record else {}
    opt.zero_grad(set_to_none=False)
    a, v = model(spec.unsqueeze(1).float(), image.float())
    losses, gnorms = {}, {}
    for m, feat in (("audio", a), ("image", v)):
        out = fc(feat)
        loss = crit(out, label)
        loss.backward()
        gs.before_update(fc, feat, step, n_batches, gs.exp_count)  # a no-op in the reference: see docs/methods.md
        if record:
            losses[m] = float(loss.detach())
            gnorms[m] = _norm([p.grad for p in nets[m].parameters() if p.grad is not None])
        opt.step()
        opt.zero_grad(set_to_none=False)
        gs.exp_count += 1
    for p in model.parameters():
        p.grad = None  # `del p.grad`
    if not record:
        return None
    upd = {m: _norm([p.detach() - q for p, q in zip(n.parameters(), before[m], strict=True)]) for m, n in nets.items()}
    return StepRecord(losses, gnorms, upd)


@torch.no_grad()
def reference_predict(model: ReferenceAV, spec: Tensor, image: Tensor, batch: int = 64) -> dict[str, Tensor]:
    """Per-modality logits and the fixed-rule fused logits (valid() with gs_flag, not dynamic)."""
    model.eval()
    outs: dict[str, list[Tensor]] = {"audio": [], "image": []}
    for k in range(0, len(spec), batch):
        a, v = model(spec[k:k + batch].unsqueeze(1).float(), image[k:k + batch].float())
        outs["audio"].append(model.fusion_module.fc_out(a))
        outs["image"].append(model.fusion_module.fc_out(v))
    logits = {m: torch.cat(x) for m, x in outs.items()}
    logits["fused"] = FIXED["audio"] * logits["audio"] + FIXED["image"] * logits["image"]
    return logits


def train_reference(ref: SimpleNamespace, arrays: dict[str, dict[str, np.ndarray]], seed: int, epochs: int,
                    log=print) -> dict[str, Any]:
    """Train the reference on the exported arrays; the epoch with the best validation accuracy (fixed
    rule; ties -> earlier) is reported on test. Returns a run record."""
    feats = {s: (reference_spectrogram(a["waveform"]), reference_image(a["image"]), torch.as_tensor(a["label"]))
             for s, a in arrays.items()}
    model = build_reference(ref, seed)
    opt, sched = reference_optimizer(model)
    gs = gs_plugin(ref)
    spec, image, label = feats["train"]
    n = len(label)
    n_batches = math.ceil(n / RECIPE["batch_size"])
    best: dict[str, Any] | None = None
    train_time = 0.0
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(n)  # DataLoader(shuffle=True) draws from the global generator seeded by setup_seed
        t0 = time.perf_counter()
        for step in range(n_batches):
            rows = order[step * RECIPE["batch_size"]:(step + 1) * RECIPE["batch_size"]]
            reference_batch(model, gs, opt, spec[rows], image[rows], label[rows], step, n_batches)
        train_time += time.perf_counter() - t0
        sched.step()
        scores = {}
        for split in ("val", "test"):
            logits = reference_predict(model, feats[split][0], feats[split][1])
            y = feats[split][2]
            scores[split] = {m: (lg.argmax(1) == y).numpy() for m, lg in logits.items()}
        val = float(scores["val"]["fused"].mean())
        log(f"  reference seed {seed} epoch {epoch + 1}: val {100 * val:.1f} test {100 * scores['test']['fused'].mean():.1f} "
            f"(audio {100 * scores['test']['audio'].mean():.1f}, image {100 * scores['test']['image'].mean():.1f})")
        if best is None or val > best["val_fused_acc"]:
            best = {"epoch": epoch + 1, "val_fused_acc": val, "test": scores["test"]}
    assert best is not None
    t = best["test"]
    return {"implementation": "reference", "variant": "reference", "seed": seed, "epochs": epochs,
            "best_epoch": best["epoch"], "val_fused_acc": best["val_fused_acc"],
            "samples_per_sec": n * epochs / train_time,
            "test_correct": encode_correct(t["fused"]), "test_correct_fixed": encode_correct(t["fused"]),
            "test_correct_audio": encode_correct(t["audio"]), "test_correct_image": encode_correct(t["image"])}


# ----------------------------------------------------------------------------- polymodal


def parse_variant(text: str) -> tuple[str, str, list[str]]:
    """``NAME=CONFIG[;key=value...]`` -> (name, config path, overrides)."""
    name, sep, rest = text.partition("=")
    if not sep or not name or not rest:
        raise SystemExit(f"--variant {text!r}: expected NAME=CONFIG[;key=value...], e.g. recommended=configs/avdigits_mla_resnet18.yaml")
    config, *overrides = rest.split(";")
    path = Path(config)
    if not path.is_absolute():
        path = ROOT / path
    if not path.is_file():
        raise SystemExit(f"--variant {name}: config {path} does not exist")
    return name, str(path), [o for o in overrides if o]


def train_polymodal(name: str, config: str, overrides: list[str], seed: int, epochs: int, threads: int,
                    runs_dir: Path) -> dict[str, Any]:
    """Train one polymodal configuration with the engine; read its stored test predictions back."""
    from polymodal.config import load_config
    from polymodal.engine import train
    from polymodal.engine.runfolder import predictions_file

    run = f"{name}-seed{seed}"
    cfg = load_config(config, [*overrides, f"seed={seed}", f"trainer.max_epochs={epochs}", f"trainer.num_threads={threads}",
                               "trainer.progress=false", f"out_dir={runs_dir}", f"name={run}"])
    result = train(cfg)
    with np.load(predictions_file(runs_dir / run, "test")) as z:
        order = np.argsort(z["index"])  # dataset order, as the reference's test rows (pairing per sample)
        y, probs = z["y_true"][order], z["probs"][order]
        per = {m: z[f"probs_{m}"][order] for m in ("audio", "image")}
    fixed = sum(w * np.log(np.clip(per[m], 1e-30, None)) for m, w in FIXED.items())  # log p = logits - const per row
    times = [1.0 / r["samples_per_sec"] for r in result.history]  # seconds per training sample, per epoch
    # every test-time rule re-applied to the selected model's stored per-modality probabilities (calibrated:
    # temperatures fitted on this run's validation split), checked against the run's own stored predictions
    from fusion_rules import rescore, trained_rule
    rules = rescore(runs_dir / run, *trained_rule(runs_dir / run))
    return {"implementation": "polymodal", "variant": name, "config": str(Path(config).relative_to(ROOT)) if
            Path(config).is_relative_to(ROOT) else config, "overrides": overrides, "seed": seed, "epochs": epochs,
            "best_epoch": result.best_epoch, "val_fused_acc": float(result.val_metrics["fused_acc"]),
            "samples_per_sec": len(times) / sum(times),
            "test_correct": encode_correct(probs.argmax(1) == y), "test_correct_fixed": encode_correct(fixed.argmax(1) == y),
            "test_correct_audio": encode_correct(per["audio"].argmax(1) == y),
            "test_correct_image": encode_correct(per["image"].argmax(1) == y),
            "test_correct_calibrated": encode_correct(rules["calibrated"]["test"]),
            "val_acc_calibrated": float(rules["calibrated"]["val"].mean())}


# ----------------------------------------------------------------------------- tables


def _acc(text: str, where: str) -> float:
    return float(decode_correct(text, where).mean())


def tables(records: list[dict[str, Any]]) -> tuple[list[ResultRow], list[dict[str, Any]], str]:
    """Rows per (implementation, variant), paired differences of each polymodal variant against the reference."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault(r["variant"], []).append(r)
    rows: list[ResultRow] = []
    for variant, recs in groups.items():
        recs = sorted(recs, key=lambda r: r["seed"])
        method = "mla-reference" if variant == "reference" else "mla"
        cells = {
            "fused_acc": [_acc(r["test_correct"], variant) for r in recs],
            "fused_acc@fixed": [_acc(r["test_correct_fixed"], variant) for r in recs],
            "audio_acc": [_acc(r["test_correct_audio"], variant) for r in recs],
            "image_acc": [_acc(r["test_correct_image"], variant) for r in recs],
            "val_fused_acc": [r["val_fused_acc"] for r in recs],
            "epoch": [r["best_epoch"] for r in recs],
            "samples_per_sec": [r["samples_per_sec"] for r in recs],
        }
        if all("test_correct_calibrated" in r for r in recs):
            cells["fused_acc@calibrated"] = [_acc(r["test_correct_calibrated"], variant) for r in recs]
        rows += [ResultRow(method, DATASET, metric, values, variant=variant) for metric, values in cells.items()]
    differences: list[dict[str, Any]] = []
    ref = {r["seed"]: r for r in groups.get("reference", [])}
    lines = []
    for variant, recs in groups.items():
        if variant == "reference" or not ref:
            continue
        for key, label in (("test_correct", "own rule"), ("test_correct_fixed", "fixed 0.55/0.45"),
                           ("test_correct_calibrated", "calibrated")):
            if not all(key in r for r in recs):
                continue
            a = {r["seed"]: decode_correct(r[key], variant) for r in recs}
            b = {s: decode_correct(r["test_correct_fixed"], "reference") for s, r in ref.items()}
            d = paired_by_seed(a, b)
            if d is None:
                continue
            differences.append({"variant": variant, "rule": label, "minus": "reference (fixed 0.55/0.45)", **d})
            lines.append(f"- {variant} ({label}) - reference: {100 * d['mean']:+.1f} points "
                         f"[{100 * d['ci95'][0]:+.1f}, {100 * d['ci95'][1]:+.1f}] ({d['n_seeds']} seeds)")
        sp = [r["samples_per_sec"] for r in recs]
        rs = [r["samples_per_sec"] for r in ref.values()]
        lines.append(f"- {variant} samples/s / reference samples/s: {np.mean(sp) / np.mean(rs):.2f}x")
    notes = NOTES + ("\n" + "\n".join(lines) if lines else "")
    return rows, differences, notes


NOTES = """\
method `mla-reference`: the official code's classes driven by its own training loop (see the script's
docstring); `mla`: polymodal's engine with the named configuration. fused_acc: test accuracy of each
implementation's own test-time rule (the reference: the fixed 0.55 audio / 0.45 image rule on logits;
polymodal: its configuration's rule); fused_acc@fixed: the 0.55/0.45 rule on both (for polymodal computed
from its stored per-modality probabilities: log-probabilities differ from logits by a constant per row, so
the argmax is the same); fused_acc@calibrated (polymodal only): MLA's default `calibrated` rule re-applied
to the same selected model (per-modality temperatures fitted on the run's validation split, log-probabilities
summed; benchmarks/fusion_rules.py); audio_acc / image_acc: each branch alone through the shared head;
val_fused_acc: the validation accuracy that selected the epoch; epoch: the selected epoch; samples_per_sec:
training samples per second (training steps only, evaluation excluded). Differences: crossed paired
bootstrap (seed s of polymodal with seed s of the reference, the same 300 test samples), 95 % interval,
against the reference's fixed rule."""


def write(records: list[dict[str, Any]], protocol: str, command: str, out_dir: Path, name: str = "reference_mla"
          ) -> tuple[Path, Path]:
    rows, differences, notes = tables(records)
    js, md = write_results(name, rows, protocol=protocol, command=command, out_dir=out_dir,
                           title="MLA against its reference code", notes=notes)
    doc = json.loads(js.read_text())
    doc.update({"differences": differences, "runs": records})
    js.write_text(json.dumps(doc, indent=2) + "\n")
    return js, md


def recompute(path: Path, out_dir: Path) -> tuple[Path, Path]:
    """Rebuild the table of a JSON written by this script from its per-run records."""
    doc = json.loads(path.read_text())
    runs = doc.get("runs")
    speed = [r for r in doc.get("rows", []) if r.get("metric") == "samples_per_sec"]
    if not runs and speed and any(r.get("variant") == "reference" for r in speed):  # written by --speed
        times = {r["variant"]: [RECIPE["batch_size"] / v for v in r["values"]] for r in speed}
        return write_speed(times, doc["protocol"], doc["command"], out_dir, path.stem)
    if not runs or "test_correct_fixed" not in runs[0]:
        raise SystemExit(f"{path} was not written by benchmarks/reference_mla.py (no per-run records)")
    if "steps" in runs[0]:
        return write_steps(runs, doc["protocol"], doc["command"], out_dir, path.stem)
    return write(runs, doc["protocol"], doc["command"], out_dir, path.stem)


# ----------------------------------------------------------------------------- controlled comparison


def copy_reference_weights(ref_model: ReferenceAV, model: nn.Module) -> None:
    """Load the reference's initial weights into a polymodal MLA model (ResNet-18 towers + shared head).

    Both ResNets list their tensors in the same order (stem conv, BN, then each block's conv1, bn1, conv2,
    bn2, projection); tensors are matched by position and shape. A polymodal image tower with a 1-channel
    stem receives the reference's 3-channel stem kernel summed over channels: on a grey image replicated to
    3 channels the two compute the same map."""
    pairs = {"audio": (ref_model.audio_net, model.encoders["audio"].backbone),
             "image": (ref_model.visual_net, model.encoders["image"].backbone)}
    for m, (src, dst) in pairs.items():
        s_items = list(src.state_dict().items())
        d_state = dst.state_dict()
        d_keys = [k for k in d_state if not k.startswith("fc.")]
        if len(s_items) != len(d_keys):
            raise ValueError(f"{m}: the reference tower has {len(s_items)} tensors, polymodal's {len(d_keys)}")
        new = {}
        for (sk, sv), dk in zip(s_items, d_keys, strict=True):
            dv = d_state[dk]
            if sv.shape != dv.shape:
                if sv.dim() == 4 and dv.dim() == 4 and dv.shape[1] == 1 and sv.shape[1] == 3:
                    sv = sv.sum(dim=1, keepdim=True)
                else:
                    raise ValueError(f"{m}: reference {sk} {tuple(sv.shape)} does not fit polymodal {dk} {tuple(dv.shape)}")
            new[dk] = sv.clone()
        dst.load_state_dict(new)
    head = model.fusion.head
    head.weight.data.copy_(ref_model.fusion_module.fc_out.weight.data)
    head.bias.data.copy_(ref_model.fusion_module.fc_out.bias.data)


def polymodal_steps(config: str, overrides: list[str], ref_model: ReferenceAV | None, seed: int,
                    batches: list[tuple[Tensor, Tensor, Tensor]], n_batches: int) -> list[StepRecord]:
    """Polymodal's MLA step (the engine's strategy and optimiser) on the given batches, from the reference's
    initial weights when ``ref_model`` is given (else from polymodal's own initialisation with ``seed``)."""
    from polymodal.config import load_config
    from polymodal.data.batch import Batch
    from polymodal.data.datasets.avdigits import AVDigits
    from polymodal.engine.build import build_run_model, build_strategy
    from polymodal.engine.optim import build_optimizer
    from polymodal.strategies.base import StepContext

    cfg = load_config(config, [*overrides, f"seed={seed}"])
    ds = AVDigits(DATASET, "val", cache_features=False)
    torch.manual_seed(seed)
    strategy = build_strategy(cfg)
    model = build_run_model(cfg, ds, strategy)
    if ref_model is not None:
        copy_reference_weights(ref_model, model)
    strategy.setup(model, ds)
    opt = build_optimizer(cfg.optim, [p for p in model.parameters() if p.requires_grad])

    def step(params=None, set_to_none=True, now=False):
        opt.step()
        opt.zero_grad(set_to_none=set_to_none)
        return True

    nets = {m: model.encoders[m] for m in ("audio", "image")}
    out = []
    model.train()
    for i, (wav, img, label) in enumerate(batches):
        before = {m: [p.detach().clone() for p in n.parameters()] for m, n in nets.items()}
        batch = Batch(inputs={"audio": wav, "image": img}, label=label,
                      present={"audio": torch.ones(len(label), dtype=torch.bool), "image": torch.ones(len(label), dtype=torch.bool)},
                      index=torch.arange(len(label)))
        ctx = StepContext(epoch=0, batch_idx=i, batches_per_epoch=n_batches, optimizer=opt,
                          backward=lambda loss: loss.backward(), step=step,
                          zero_grad=lambda s: opt.zero_grad(set_to_none=s), all_reduce_mean=lambda t: t)
        logs = strategy.training_step(model, batch, ctx)
        upd = {m: _norm([p.detach() - q for p, q in zip(n.parameters(), before[m], strict=True)]) for m, n in nets.items()}
        out.append(StepRecord({m: float(logs[f"loss/{m}"]) for m in nets},
                              {m: float(logs[f"grad_norm/{m}"]) for m in nets}, upd))
    return out


# cumulative: each variant removes one more difference from the paper recipe; the last is the reference's settings
STEP_VARIANTS: tuple[tuple[str, list[str]], ...] = (
    ("paper recipe (polymodal before this comparison)", []),
    ("+ no per-sample standardisation of the spectrogram", ["model.encoders.audio.standardize=false"]),
    ("+ STFT zero padding (librosa) instead of reflection", ["model.encoders.audio.stft.pad_mode=constant"]),
    ("+ image normalised (0.449 / 0.226), 3 channels", ["model.encoders.image.normalize=[0.449,0.226]",
                                                         "model.encoders.image.replicate=3"]),
    ("+ HGM off (it never runs in the reference)", ["strategy.args.hgm=false"]),
    ("+ gradients zeroed between the steps of a batch", ["strategy.args.grad_mode=reference"]),
)  # the head's initialisation is not a row: the copied weights replace it (the training runs compare it)


def compare_steps(ref: SimpleNamespace, arrays: dict[str, dict[str, np.ndarray]], steps: int, seed: int,
                  config: str, log=print) -> list[dict[str, Any]]:
    """Per-step curves of the reference and of each cumulative polymodal variant, same weights, same batches."""
    tr = arrays["train"]
    n = len(tr["label"])
    n_batches = math.ceil(n / RECIPE["batch_size"])
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=g)
    spec, image = reference_spectrogram(tr["waveform"]), reference_image(tr["image"])
    wav, img = polymodal_inputs(tr)
    label = torch.as_tensor(tr["label"])
    rows = [order[(k % n_batches) * 64:((k % n_batches) + 1) * 64] for k in range(steps)]
    init = build_reference(ref, seed)
    state0 = {k: v.clone() for k, v in init.state_dict().items()}
    model = build_reference(ref, seed)
    opt, _ = reference_optimizer(model)
    gs = gs_plugin(ref)
    t0 = time.perf_counter()
    ref_curve = [reference_batch(model, gs, opt, spec[r], image[r], label[r], k % n_batches, n_batches, record=True)
                 for k, r in enumerate(rows)]
    log(f"reference: {steps} steps in {time.perf_counter() - t0:.0f} s")
    records = [{"variant": "reference", "steps": [vars(s) for s in ref_curve], "overrides": [], "test_correct_fixed": ""}]
    overrides: list[str] = []
    for name, more in STEP_VARIANTS:
        overrides = [*overrides, *more]
        init.load_state_dict(state0)
        t0 = time.perf_counter()
        curve = polymodal_steps(config, overrides, init, seed, [(wav[r], img[r], label[r]) for r in rows], n_batches)
        log(f"{name}: {time.perf_counter() - t0:.0f} s; " + summary_text(ref_curve, curve))
        records.append({"variant": name, "steps": [vars(s) for s in curve], "overrides": list(overrides),
                        "test_correct_fixed": ""})
    return records


def curve_stats(ref: list[dict[str, Any]] | list[StepRecord], pm: list[dict[str, Any]] | list[StepRecord]) -> dict[str, float]:
    """Largest |loss difference| per modality over the steps, and the mean ratio polymodal / reference of the
    per-modality gradient norms and update norms."""
    def get(s, k):
        return s[k] if isinstance(s, dict) else getattr(s, k)
    out: dict[str, float] = {}
    for m in ("audio", "image"):
        out[f"max_loss_diff_{m}"] = max(abs(get(a, "loss")[m] - get(b, "loss")[m]) for a, b in zip(ref, pm, strict=True))
        out[f"last_loss_{m}"] = float(np.mean([get(b, "loss")[m] for b in pm[-10:]]))
        out[f"grad_ratio_{m}"] = float(np.mean([get(b, "grad_norm")[m] / max(get(a, "grad_norm")[m], 1e-12)
                                                for a, b in zip(ref, pm, strict=True)]))
        out[f"update_ratio_{m}"] = float(np.mean([get(b, "update_norm")[m] / max(get(a, "update_norm")[m], 1e-12)
                                                  for a, b in zip(ref, pm, strict=True)]))
    return out


def summary_text(ref: list, pm: list) -> str:
    s = curve_stats(ref, pm)
    return ", ".join(f"{k} {v:.3g}" for k, v in s.items())


def steps_markdown(records: list[dict[str, Any]], protocol: str, command: str) -> str:
    ref = next(r for r in records if r["variant"] == "reference")["steps"]
    k = min(10, len(ref))
    last = {m: float(np.mean([s["loss"][m] for s in ref[-10:]])) for m in ("audio", "image")}
    lines = ["# MLA against its reference code: the first training steps", "", f"Protocol: {protocol}", "",
             f"Command: `{command}`", "",
             f"Reference: mean loss of the last {k} steps audio {last['audio']:.3f}, image {last['image']:.3f}.", "",
             "| polymodal variant (cumulative) | max abs loss diff audio | max abs loss diff image | "
             f"last-{k} loss audio | last-{k} loss image | grad norm ratio audio | grad norm ratio image | "
             "update ratio audio | update ratio image |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in records:
        if r["variant"] == "reference":
            continue
        s = curve_stats(ref, r["steps"])
        lines.append(f"| {r['variant']} | {s['max_loss_diff_audio']:.2e} | {s['max_loss_diff_image']:.2e} | "
                     f"{s['last_loss_audio']:.3f} | {s['last_loss_image']:.3f} | {s['grad_ratio_audio']:.3f} | "
                     f"{s['grad_ratio_image']:.3f} | {s['update_ratio_audio']:.3f} | {s['update_ratio_image']:.3f} |")
    lines += ["", STEPS_NOTES]
    return "\n".join(lines) + "\n"


STEPS_NOTES = """\
Each polymodal variant starts from the reference's initial weights (its weight_init, copied tensor by
tensor) and sees the same batches in the same order; each row removes one more difference from the row
above it. max abs loss diff: the largest difference of the per-modality training loss over the steps;
grad norm ratio: mean over steps of polymodal's encoder gradient norm at its modality's step divided by the
reference's; update ratio: the same for the norm of the encoder's parameter change over the batch. A row
whose loss differences are at float rounding and whose ratios are 1.000 computes the reference's steps; with
the spectrogram fed unstandardised, rounding differences of the STFT on near-silent frames (the two compute
it in batches of different sizes) are magnified by the log, so "float rounding" there is about 1e-4 of the
audio loss. A row that changes only the initialisation changes nothing here: the copied weights replace it."""


def write_steps(records: list[dict[str, Any]], protocol: str, command: str, out_dir: Path, name: str = "reference_mla_steps"
                ) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    js, md = out_dir / f"{name}.json", out_dir / f"{name}.md"
    js.write_text(json.dumps({"protocol": protocol, "command": command, "rows": [], "runs": records}, indent=2) + "\n")
    md.write_text(steps_markdown(records, protocol, command))
    return js, md


# ----------------------------------------------------------------------------- speed


def speed_compare(ref: SimpleNamespace, arrays: dict[str, dict[str, np.ndarray]], steps: int, config: str,
                  warmup: int = 2) -> dict[str, list[float]]:
    """Seconds per training batch (both modalities' steps) of the reference and of polymodal's MLA step with
    ``config`` in contiguous and in channels_last memory format, interleaved batch by batch on the same
    data so that the load of the machine hits all three alike. Inputs are ready in memory for all (the
    reference reads precomputed spectrograms from disk; polymodal's config reads its feature cache)."""
    from polymodal.config import load_config
    from polymodal.engine.build import build_datasets, build_run_model, build_strategy
    from polymodal.engine.optim import build_optimizer
    from polymodal.strategies.base import StepContext

    tr = arrays["train"]
    n_batches = math.ceil(len(tr["label"]) / RECIPE["batch_size"])
    order = torch.randperm(len(tr["label"]), generator=torch.Generator().manual_seed(0))
    rows = [order[k * 64:(k + 1) * 64] for k in range(warmup + steps)]
    spec, image, label = reference_spectrogram(tr["waveform"]), reference_image(tr["image"]), torch.as_tensor(tr["label"])
    model = build_reference(ref, 0)
    opt, _ = reference_optimizer(model)
    gs = gs_plugin(ref)
    impls: dict[str, Any] = {"reference": lambda k: reference_batch(model, gs, opt, spec[rows[k]], image[rows[k]],
                                                                    label[rows[k]], k, n_batches)}
    ds = None
    for fmt in ("contiguous", "channels_last"):
        cfg = load_config(config, [f"trainer.channels_last={'true' if fmt == 'channels_last' else 'false'}"])
        ds = ds or build_datasets(cfg, ["train"])["train"]
        torch.manual_seed(0)
        strategy = build_strategy(cfg)
        pm = build_run_model(cfg, ds, strategy)
        strategy.setup(pm, ds)
        popt = build_optimizer(cfg.optim, [p for p in pm.parameters() if p.requires_grad])
        collate = ds.collate_fn()
        batches = [collate([ds[int(i)] for i in r]) for r in rows]

        def step(params=None, set_to_none=True, now=False, _o=popt):
            _o.step()
            _o.zero_grad(set_to_none=set_to_none)
            return True

        def run(k, _pm=pm, _st=strategy, _b=batches, _o=popt, _step=step):
            _pm.train()
            ctx = StepContext(epoch=0, batch_idx=k, batches_per_epoch=n_batches, optimizer=_o,
                              backward=lambda loss: loss.backward(), step=_step,
                              zero_grad=lambda sn: _o.zero_grad(set_to_none=sn), all_reduce_mean=lambda t: t)
            _st.training_step(_pm, _b[k], ctx)

        impls[f"polymodal, {fmt}"] = run
    times: dict[str, list[float]] = {name: [] for name in impls}
    for k in range(warmup + steps):
        for name, fn in impls.items():
            t0 = time.perf_counter()
            fn(k)
            if k >= warmup:
                times[name].append(time.perf_counter() - t0)
    return times


def write_speed(times: dict[str, list[float]], protocol: str, command: str, out_dir: Path, name: str = "reference_mla_speed"
                ) -> tuple[Path, Path]:
    bs = RECIPE["batch_size"]
    rows = [ResultRow("mla-reference" if impl == "reference" else "mla", DATASET, "samples_per_sec",
                      [bs / t for t in ts], variant=impl) for impl, ts in times.items()]
    ref_t = times["reference"]
    lines = []
    for impl, ts in times.items():
        if impl == "reference":
            continue
        ratio = [r / t for r, t in zip(ref_t, ts, strict=True)]  # batch k of both: paired
        rows.append(ResultRow("mla", DATASET, "efficiency", ratio, variant=f"{impl} / reference"))
        lines.append(f"- {impl}: {np.median(ratio):.2f}x the reference's samples/s (median of the per-batch ratios)")
    notes = ("samples_per_sec: 64 / seconds of one batch's training (the audio step and the image step), one value per "
             "timed batch; efficiency: the reference's seconds for batch k over polymodal's, one value per batch. "
             "Training steps only: no data loading, evaluation or logging (the engine adds those; "
             "benchmarks/results/throughput.md has the engine's own efficiency).\n" + "\n".join(lines))
    return write_results(name, rows, protocol=protocol, command=command, out_dir=out_dir,
                         title="MLA against its reference code: training speed", notes=notes)


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("reference", nargs="?", help="folder of a checkout of the official MLA code")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--variant", action="append", help="NAME=CONFIG[;key=value...] (repeatable; default: "
                   + ", ".join(DEFAULT_VARIANTS) + ")")
    p.add_argument("--skip-reference", action="store_true", help="train only the polymodal variants")
    p.add_argument("--steps", type=int, help="run the controlled comparison of the first STEPS steps instead")
    p.add_argument("--speed", type=int, metavar="BATCHES", help="time BATCHES training batches of the reference and of "
                   "--speed-config, interleaved (reference_mla_speed.md)")
    p.add_argument("--speed-config", default="configs/avdigits_mla_resnet18.yaml")
    p.add_argument("--steps-config", default="configs/avdigits_mla_resnet18_paper.yaml",
                   help="the polymodal configuration the controlled comparison starts from")
    p.add_argument("--export", metavar="DIR", help="also write the exported arrays as DIR/avdigits-hard_<split>.npz")
    p.add_argument("--runs-dir", help="where polymodal's run folders go (default: a temporary folder)")
    p.add_argument("--name", default=None, help="results name (default reference_mla / reference_mla_steps)")
    p.add_argument("--out", default=str(HERE / "results"))
    p.add_argument("--recompute", metavar="NAME.json", help="rebuild the table from a JSON written by this script")
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.recompute:
        js, md = recompute(Path(args.recompute), out)
        print(md.read_text())
        return 0
    if not args.reference:
        p.error("give the folder of a checkout of the MLA reference code (or --recompute NAME.json)")
    ref = load_reference(args.reference)
    torch.set_num_threads(args.threads)
    command = "python benchmarks/reference_mla.py REFERENCE " + " ".join(argv if argv is not None else sys.argv[2:])
    arrays = export_arrays()
    if args.export:
        for path in save_arrays(arrays, Path(args.export)):
            print(f"wrote {path}")
    if args.speed:
        _, config, _ = parse_variant(f"speed={args.speed_config}")
        times = speed_compare(ref, arrays, args.speed, config)
        protocol = (f"{DATASET} train split, {args.speed} timed batches of 64 after 2 warm-up batches, interleaved batch by "
                    f"batch (reference, polymodal contiguous, polymodal channels_last), {args.threads} torch threads, "
                    f"one process; polymodal: MLA's training_step with {Path(config).relative_to(ROOT)}")
        js, md = write_speed(times, protocol, command.strip(), out, args.name or "reference_mla_speed")
        print(md.read_text())
        return 0
    if args.steps:
        _, config, extra = parse_variant(f"steps={args.steps_config}")
        seed = int(args.seeds.split(",")[0])
        records = compare_steps(ref, arrays, args.steps, seed, config)
        protocol = (f"{DATASET} train split, the first {args.steps} batches of 64 of one seeded shuffle (seed {seed}), "
                    f"{args.threads} torch threads; reference: the official code's classes, its weight_init and its "
                    f"training step; polymodal: MLA's training_step with the engine's optimiser from "
                    f"{Path(config).relative_to(ROOT)} plus the overrides of each row")
        js, md = write_steps(records, protocol, command.strip(), out, args.name or "reference_mla_steps")
        print(md.read_text())
        return 0
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    variants = [parse_variant(v) for v in (args.variant or DEFAULT_VARIANTS)]
    runs_dir = Path(args.runs_dir) if args.runs_dir else Path(tempfile.mkdtemp(prefix="reference_mla_"))
    records: list[dict[str, Any]] = []
    protocol = (f"{DATASET} (train 2,400 / val 300 / test 300), seeds {','.join(map(str, seeds))}, {args.epochs} epochs, "
                f"batch 64, SGD lr 1e-3 momentum 0.9 weight decay 1e-4, selection of the epoch on validation, "
                f"{args.threads} torch threads, one process, runs in sequence on one machine")
    for seed in seeds:
        jobs: list[tuple[str, str, list[str]] | None] = ([] if args.skip_reference else [None]) + variants
        for job in jobs:
            t0 = time.perf_counter()
            if job is None:
                records.append(train_reference(ref, arrays, seed, args.epochs))
            else:
                records.append(train_polymodal(*job, seed, args.epochs, args.threads, runs_dir))
            print(f"{records[-1]['variant']} seed {seed}: {time.perf_counter() - t0:.0f} s", flush=True)
            write(records, protocol, command.strip(), out, args.name or "reference_mla")  # partial results survive
    print((out / f"{args.name or 'reference_mla'}.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
