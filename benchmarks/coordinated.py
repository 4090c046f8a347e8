"""Coordinated representations on AV-digits: retrieval, unseen classes, video search (docs/coordinated.md).

Three measurements, each writing ``benchmarks/results/NAME.md`` and its JSON twin:

- ``retrieval_avdigits``: CLIP vs SigLIP vs deep CCA towers (``configs/avdigits_clip.yaml``) on the clean
  AV-digits pairs, seeds 0, 1, 2: audio->image and image->audio R@1/5/10 and mAP (class-level relevance,
  test split), zero-shot accuracy of test images against audio class prototypes of the training split,
  5-shot prototypes, linear probes on frozen embeddings, the modality gap.
- ``unseen_classes``: CLIP towers trained (and selected) on digits 0-6 only; test digits 7-9 classified and
  retrieved through prototypes of the other modality, beside the seen digits and beside towers trained on
  every digit.
- ``video_search``: short real videos of test-split MNIST digits (one digit per second, written with PyAV),
  indexed frame by frame (2 frames per second) with a three-way (audio, image, text) CLIP run, queried
  by every FSDD test recording and by the digit names as text; timestamp hit rate at k = 1 and 5.

Runs are resumable: a run folder with ``results.json`` is reused. Small CNN towers, one process:

    nice python benchmarks/coordinated.py --part all
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "avdigits_clip.yaml"
RESULTS = ROOT / "benchmarks" / "results"
PARTS = {"retrieval_avdigits": "retrieval", "unseen_classes": "unseen", "video_search": "video"}
RUN_ARGS = ""  # the seeds / epochs / videos of this sitting, written into each results file's command
LOSSES = ("clip", "siglip", "dcca")
# the objectives of the retrieval table: name -> overrides (siglip-databias: SigLIP with the data-dependent
# bias start, strategy.args.init_bias=data; measured only when asked for with --objectives)
VARIANTS = {"clip": ["strategy.args.loss=clip"], "siglip": ["strategy.args.loss=siglip"],
            "dcca": ["strategy.args.loss=dcca", "strategy.args.k=10"],
            "siglip-databias": ["strategy.args.loss=siglip", "strategy.args.init_bias=data"]}
SEEN, UNSEEN = list(range(7)), [7, 8, 9]
ONLY_FINISHED = False  # --only-finished: tabulate the runs that exist, train nothing


# ----------------------------------------------------------------------------------------- training
def train_run(runs: Path, name: str, overrides: Sequence[str], epochs: int) -> Path | None:
    """Train ``configs/avdigits_clip.yaml`` with ``overrides`` into ``runs/name`` (reused when finished) for
    exactly ``epochs`` epochs (the cosine schedule spans them; early stopping off; the best epoch is still
    selected on validation); None with ``--only-finished`` when the run has not finished (the tables then
    count fewer seeds). Run names carry the budget, so runs of two budgets are never mixed."""
    from polymodal.config import load_config
    from polymodal.engine import train

    run = runs / name
    if (run / "results.json").is_file():
        return run
    if ONLY_FINISHED:
        return None
    if run.exists():
        import shutil

        shutil.rmtree(run)  # an unfinished run from an interrupted sitting: start it again
    cfg = load_config(CONFIG, [f"name={name}", f"out_dir={runs}", f"trainer.max_epochs={epochs}",
                               "trainer.patience=null",  # every run trains its whole budget (curves to the end)
                               "trainer.progress=false", "trainer.num_threads=1", *overrides])
    print(f"training {name} ...", flush=True)
    train(cfg)
    return run


def split_embeddings(embedder: Any, dataset: str, split: str) -> tuple[dict[str, np.ndarray], np.ndarray, Any]:
    """Every modality's embeddings of a whole split (all ten digits), its labels and the dataset."""
    from polymodal.data.base import build_dataset

    ds = build_dataset(dataset, split)
    return {m: embedder.embed_tensor(m, ds.tensor(m)) for m in ds.modalities}, ds.labels, ds


def stats(values: Sequence[float]) -> tuple[float, float]:
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def cell(values: Sequence[float], pct: bool = True) -> str:
    mean, std = stats(values)
    f = 100.0 if pct else 1.0
    digits = 1 if pct else 3
    return f"{f * mean:.{digits}f}" + (f" +- {f * std:.{digits}f}" if len(values) > 1 else "")


def write(name: str, title: str, protocol: str, rows: list[dict[str, Any]], tables: list[str], notes: str,
          extra: dict[str, Any] | None = None) -> None:
    """``NAME.json`` (rows: method, variant, dataset, metric, mean, std, n, values; plus ``extra``) and ``NAME.md``."""
    for r in rows:
        r["mean"], r["std"] = stats(r["values"])
        r["n"] = len(r["values"])
    RESULTS.mkdir(parents=True, exist_ok=True)
    command = f"python benchmarks/coordinated.py --part {PARTS[name]}{RUN_ARGS}"
    doc = {"protocol": protocol, "command": command, "rows": rows, **(extra or {})}
    (RESULTS / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n")
    md = [f"# {title}", "", f"Protocol: {protocol}", "", f"Command: `{command}`", "", *tables, "", notes.strip(), ""]
    (RESULTS / f"{name}.md").write_text("\n".join(md))
    print(f"wrote {RESULTS / name}.md / .json", flush=True)


# ----------------------------------------------------------------------------------------- retrieval
def evaluate_retrieval(run: Path) -> dict[str, float]:
    """The retrieval table's numbers of one run (kept in ``run/retrieval_eval.json`` and reused)."""
    cache = run / "retrieval_eval.json"
    if cache.is_file() and cache.stat().st_mtime >= (run / "results.json").stat().st_mtime:
        return json.loads(cache.read_text())
    out = _evaluate_retrieval(run)
    cache.write_text(json.dumps(out, indent=1))
    return out


def _evaluate_retrieval(run: Path) -> dict[str, float]:
    """From the run's own predictions files (embeddings of every validation and test pair, written by the
    engine with the best checkpoint): test retrieval; test images classified by prototypes of the
    validation recordings (other recordings of the same speakers: a support set disjoint from the
    queries); 5-shot prototypes; linear probes fitted on validation embeddings, scored on test."""
    from polymodal.coordinated.metrics import cross_modal_metrics
    from polymodal.coordinated.zeroshot import linear_probe, modality_gap, prototype_accuracy
    from polymodal.tasks import read_predictions

    val, test = (read_predictions(run / f"predictions_{split}.npz") for split in ("val", "test"))
    ev, yv, et, yt = val.embeddings, np.asarray(val.y_true), test.embeddings, np.asarray(test.y_true)
    out = cross_modal_metrics(et, yt)
    out["zeroshot_image_from_audio"] = prototype_accuracy(et["image"], yt, ev["audio"], yv)
    out["zeroshot_audio_from_image"] = prototype_accuracy(et["audio"], yt, ev["image"], yv)
    out["fewshot5_image_from_audio"] = float(np.mean([prototype_accuracy(et["image"], yt, ev["audio"], yv, shots=5, seed=s)
                                                      for s in range(5)]))
    out["probe_image"] = linear_probe(ev["image"], yv, et["image"], yt)
    out["probe_audio"] = linear_probe(ev["audio"], yv, et["audio"], yt)
    out["gap"] = modality_gap(et["audio"], et["image"])
    out["best_epoch"] = json.loads((run / "results.json").read_text())["best_epoch"]
    return out


HIT_DIRECTIONS = (("audio", "image"), ("image", "audio"))
BASELINE = "clip"  # the objective every other one is compared with


def query_hits(run: Path) -> dict[str, str]:
    """R@1's per-query hits of the run's test split, in dataset order (the same 300 queries for every seed
    and objective): direction -> "0110..." (1: the nearest item of the other modality has the query's digit).
    Checked against the R@1 of :func:`evaluate_retrieval`, so the intervals and the table use one number."""
    from polymodal.bench.tables import encode_correct
    from polymodal.coordinated.metrics import ranking
    from polymodal.tasks import read_predictions

    test = read_predictions(run / "predictions_test.npz")
    y, back = np.asarray(test.y_true), np.argsort(np.asarray(test.index))
    reported = evaluate_retrieval(run)
    out = {}
    for q, g in HIT_DIRECTIONS:
        hit = y[ranking(test.embeddings[q], test.embeddings[g])[:, 0]] == y
        if abs(hit.mean() - reported[f"{q}_to_{g}_R1"]) > 1e-9:
            raise RuntimeError(f"{run}: per-query hits give R@1 {hit.mean():.4f}, the table {reported[f'{q}_to_{g}_R1']:.4f}")
        out[f"{q}_to_{g}"] = encode_correct(hit[back])
    return out


def retrieval_differences(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """R@1 of :data:`BASELINE` minus each other objective, per direction, with the crossed paired bootstrap
    95 % interval of ``polymodal bench`` (one set of test queries per draw, shared by every seed and both
    objectives; seeds resampled), from the per-run records alone (``records``: objective, seed, hits)."""
    from polymodal.bench.compare import paired_by_seed
    from polymodal.bench.tables import decode_correct

    hits: dict[tuple[str, str], dict[int, np.ndarray]] = {}
    for r in records:
        for direction, text in r["hits"].items():
            hits.setdefault((r["objective"], direction), {})[int(r["seed"])] = decode_correct(text)
    out = []
    for other in [o for o in VARIANTS if o != BASELINE]:
        for q, g in HIT_DIRECTIONS:
            a, b = hits.get((BASELINE, f"{q}_to_{g}"), {}), hits.get((other, f"{q}_to_{g}"), {})
            d = paired_by_seed(a, b)
            if d is not None:
                out.append({"method": BASELINE, "baseline": other, "metric": f"{q}_to_{g}_R1", **d})
    return out


def differences_table(differences: Sequence[dict[str, Any]], records: Sequence[dict[str, Any]]) -> list[str]:
    """The Markdown lines of the differences section (what ``retrieval_avdigits.md`` shows), with the
    seed-to-seed spread of each objective's R@1 from the per-run ``records``."""
    from polymodal.bench.tables import decode_correct
    from polymodal.report.table import markdown_table

    body = [[f"{d['method']} - {d['baseline']}", d["metric"].replace("_to_", "->").replace("_R1", " R@1"),
             f"{100 * d['mean']:+.1f}", f"[{100 * d['ci95'][0]:+.1f}, {100 * d['ci95'][1]:+.1f}]", str(d["n_seeds"])]
            for d in differences]
    half = [50 * (d["ci95"][1] - d["ci95"][0]) for d in differences]
    spread = []
    for loss in VARIANTS:
        r1 = [100 * float(np.mean([decode_correct(t).mean() for t in r["hits"].values()])) for r in records if r["objective"] == loss]
        if len(r1) > 1:
            spread.append(f"{loss} {np.std(r1, ddof=1):.1f}")
    intro = ("Difference in R@1 (points), crossed paired bootstrap 95 % interval (each draw resamples one set of "
             "test queries shared by every seed and both objectives, and resamples seeds with replacement; "
             "recomputed from the per-run hits in the JSON by `retrieval_differences`). A typical interval's "
             f"half-width is {float(np.median(half)) if half else float('nan'):.1f} points. Seed-to-seed spread of R@1 "
             f"(std over seeds of the mean of both directions, points): {', '.join(spread)}.")
    return [intro, "", *markdown_table(["objectives", "direction", "difference", "95 % interval", "seeds"], body)]


RETRIEVAL_COLUMNS = [
    ("audio_to_image_R1", "a->i R@1"), ("audio_to_image_R5", "a->i R@5"), ("audio_to_image_R10", "a->i R@10"),
    ("audio_to_image_mAP", "a->i mAP"), ("image_to_audio_R1", "i->a R@1"), ("image_to_audio_R5", "i->a R@5"),
    ("image_to_audio_R10", "i->a R@10"), ("image_to_audio_mAP", "i->a mAP"),
]
TRANSFER_COLUMNS = [
    ("zeroshot_image_from_audio", "zero-shot image (audio prototypes)"), ("fewshot5_image_from_audio", "5-shot image"),
    ("zeroshot_audio_from_image", "zero-shot audio (image prototypes)"), ("probe_image", "probe image"),
    ("probe_audio", "probe audio"),
]


def run_curve(run: Path) -> dict[str, list[float]]:
    """The run's learning curves from its ``metrics.jsonl``: epoch, training loss, validation mean R@1."""
    from polymodal.engine.runfolder import load_run

    recs = [r for r in load_run(run).records if "val/mean_R1" in r]
    return {"epoch": [int(r["epoch"]) for r in recs], "train_loss": [float(r["train/loss"]) for r in recs],
            "val_mean_R1": [float(r["val/mean_R1"]) for r in recs]}


def plot_curves(records: Sequence[dict[str, Any]], path: Path) -> Path:
    """Validation mean R@1 and training loss per epoch of every run in ``records`` (one colour per
    objective, one line per seed), from the JSON's per-run curves alone."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    colours = dict(zip(VARIANTS, ("C0", "C1", "C2", "C3"), strict=True))
    seen: set[str] = set()
    for r in records:
        c, o = r["curve"], r["objective"]
        label = None if o in seen else o
        seen.add(o)
        axes[0].plot(c["epoch"], [100 * v for v in c["val_mean_R1"]], color=colours[o], alpha=0.7, label=label)
        axes[1].plot(c["epoch"], c["train_loss"], color=colours[o], alpha=0.7, label=label)
    axes[0].set(xlabel="epoch", ylabel="validation mean R@1 (%)", title="selection metric per epoch")
    axes[1].set(xlabel="epoch", ylabel="training loss (own objective's units)", yscale="symlog",
                title="training loss per epoch")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def convergence(records: Sequence[dict[str, Any]], last: int = 3) -> dict[str, float]:
    """Per objective, the largest gain of validation mean R@1 (points) over the last ``last`` epochs of any
    seed: near 0 when every run has converged within the budget."""
    out: dict[str, float] = {}
    for r in records:
        v = r["curve"]["val_mean_R1"]
        if len(v) > last:
            gain = 100 * (max(v[-last:]) - max(v[:-last]))
            out[r["objective"]] = max(out.get(r["objective"], -1e9), gain)
    return out


PROBE = ("siglip", "siglip-databias")  # the plateau probe: SigLIP's two bias starts at a short budget


def plateau_probe(runs: Path, epochs: int = 10, seeds: Sequence[int] = (0,)) -> list[dict[str, Any]]:
    """Finished runs of :data:`PROBE` at ``epochs`` (trained with ``--epochs 10 --objectives siglip
    siglip-databias --train-only``; never trained here): objective, seed, test R@1 and curves."""
    out = []
    for seed in seeds:
        for o in PROBE:
            run = runs / f"retrieval-{o}-e{epochs}-s{seed}"
            if (run / "results.json").is_file():
                m = evaluate_retrieval(run)
                out.append({"objective": o, "seed": seed, "epochs": epochs, "curve": run_curve(run),
                            "audio_to_image_R1": m["audio_to_image_R1"], "image_to_audio_R1": m["image_to_audio_R1"]})
    return out


def probe_table(probe: Sequence[dict[str, Any]]) -> list[str]:
    """The plateau probe's lines: training loss and validation mean R@1 per epoch, test R@1 of the best epoch."""
    from polymodal.report.table import markdown_table

    if not probe:
        return []
    body = [[f"{r['objective']} (seed {r['seed']})", " ".join(f"{v:.2f}" for v in r["curve"]["train_loss"]),
             " ".join(f"{100 * v:.0f}" for v in r["curve"]["val_mean_R1"]),
             f"{100 * r['audio_to_image_R1']:.1f} / {100 * r['image_to_audio_R1']:.1f}"] for r in probe]
    return [f"## SigLIP's starting bias at {probe[0]['epochs']} epochs (plateau probe)", "",
            "Same recipe at a short budget (cosine over it, early stopping off), standard bias "
            "start (-10) against the "
            "data-dependent start (siglip-databias). A flat training loss near 5.83 is the collapsed start "
            "(every embedding of a tower at one point); test R@1 of the epoch selected on validation. Trained by "
            f"`python benchmarks/coordinated.py --part retrieval --epochs {probe[0]['epochs']} --seeds "
            f"{' '.join(sorted({str(r['seed']) for r in probe}))} --objectives {' '.join(PROBE)} --train-only`.", "",
            *markdown_table(["objective", "training loss per epoch", "validation mean R@1 per epoch (%)",
                             "test R@1 a->i / i->a (%)"], body)]


def part_retrieval(runs: Path, seeds: Sequence[int], epochs: int, objectives: Sequence[str] = LOSSES,
                   train_only: bool = False) -> dict[str, list[dict[str, float]]]:
    from polymodal.report.table import markdown_table

    per: dict[str, list[dict[str, float]]] = {}
    records: list[dict[str, Any]] = []
    for seed in seeds:  # seed-major: an interrupted sitting leaves every objective with the same seeds
        for loss in objectives:
            run = train_run(runs, f"retrieval-{loss}-e{epochs}-s{seed}", [f"seed={seed}", *VARIANTS[loss]], epochs)
            if run is not None and not train_only:
                per.setdefault(loss, []).append(evaluate_retrieval(run))
                records.append({"objective": loss, "seed": seed, "hits": query_hits(run), "curve": run_curve(run)})
    if train_only:
        return per
    per = {o: per[o] for o in objectives if o in per}
    differences = retrieval_differences(records)
    rows = [{"method": "contrastive", "variant": loss, "dataset": "avdigits-pairs", "metric": key,
             "values": [m[key] for m in ms]} for loss, ms in per.items() for key in ms[0]]
    t1 = markdown_table(["objective", "seeds", *(h for _, h in RETRIEVAL_COLUMNS)],
                        [[loss, str(len(ms)), *(cell([m[k] for m in ms]) for k, _ in RETRIEVAL_COLUMNS)]
                         for loss, ms in per.items()])
    t2 = markdown_table(["objective", *(h for _, h in TRANSFER_COLUMNS), "modality gap", "best epoch"],
                        [[loss, *(cell([m[k] for m in ms]) for k, _ in TRANSFER_COLUMNS), cell([m["gap"] for m in ms], False),
                          cell([m["best_epoch"] for m in ms], False)] for loss, ms in per.items()])
    conv = convergence(records)
    probe = plateau_probe(runs)
    RESULTS.mkdir(parents=True, exist_ok=True)
    curves_png = plot_curves(records, RESULTS / "retrieval_curves.png")
    protocol = (
        f"avdigits-pairs (the clean AV-digits pairs: 2,400 train / 300 val / 300 test, FSDD speakers' recordings "
        f"10-49 / 5-9 / 0-4 with disjoint MNIST pools); towers = the default small CNNs (log-mel audio, 28x28 "
        f"images, width 64) + a linear head to a 64-d unit sphere (configs/avdigits_clip.yaml); AdamW lr 2e-3, "
        f"weight decay 1e-4 on weights and none on the objective's scalars (temperature, bias), cosine over the "
        f"whole budget, batch 128, {epochs} epochs, early stopping off, best epoch by validation mean R@1; seeds "
        f"{', '.join(map(str, seeds))}. CLIP: learnable temperature (init 1/0.07, scale clamped at 100); SigLIP: "
        "learnable temperature and bias (init log 10, -10; siglip-databias: bias set from the first batch, "
        "-ln(N-1) - t * mean off-diagonal cosine); DCCA: top-10 canonical correlations, ridge 1e-3, embeddings "
        "projected on the canonical directions of linear CCA refitted on the full training embeddings of the "
        "evaluated checkpoint. Labels never enter the objectives: they define relevance (a hit = an item of the "
        "query's digit) and the prototypes. All numbers from the embeddings the engine saved with the best "
        "checkpoint (predictions_val.npz, predictions_test.npz)."
    )
    curves = ("## Learning curves (validation)", "",
              f"![validation mean R@1 and training loss per epoch]({curves_png.name})", "",
              "Largest gain of validation mean R@1 over the last 3 epochs of any seed (points; near 0 = converged "
              "within the budget): " + ", ".join(f"{o} {g:+.1f}" for o, g in conv.items()) + ".")
    notes = """\
Retrieval columns in %, class-level relevance: R@K = the fraction of queries with an item of their digit
among the K nearest of the other modality's 300 test items (30 per digit, so R@10 is easy); mAP over the
full ranking. Zero-shot: each test image is given the digit of the nearest audio class prototype (mean
embedding of the validation split's recordings of the digit: other recordings, the same six speakers):
the image side never saw a label. 5-shot: prototypes from 5 random validation recordings per digit (mean
of 5 draws). Probe: logistic regression (scikit-learn, C = 1, standardised) fitted on the frozen
validation embeddings (300), test accuracy. Modality gap: distance between the
centroids of the unit audio and image test embeddings (0 = the two clouds share a centre).

What it shows: on this clean two-modality problem every objective aligns spoken and written digits well
above chance (R@1 chance = 10 %). What it cannot show: with ten classes and thirty items per class,
class-level retrieval is far easier than instance retrieval on real collections; the intervals cover the
test queries and the seeds, not other recipes; hyper-parameters are the CLIP config's for all three objectives (not tuned per objective)."""
    write("retrieval_avdigits", "Cross-modal retrieval on AV-digits: CLIP vs SigLIP vs deep CCA", protocol, rows,
          ["## Retrieval (test)", "", *t1, "", "## Zero-shot, few-shot, linear probe, modality gap (test)", "", *t2,
           "", "## CLIP against the other objectives (test R@1)", "", *differences_table(differences, records), "",
           *curves, "", *probe_table(probe)], notes,
          {"differences": differences, "runs": records, "convergence": conv, "plateau_probe": probe})
    return per


# ----------------------------------------------------------------------------------------- unseen classes
def evaluate_subsets(run: Path) -> dict[str, float]:
    from polymodal.coordinated.metrics import retrieval_metrics
    from polymodal.coordinated.run_embedder import load_run_embedder
    from polymodal.coordinated.zeroshot import prototype_accuracy

    emb = load_run_embedder(run)
    train, ytr, _ = split_embeddings(emb, "avdigits-pairs", "train")  # prototypes: every digit's training audio
    test, yte, _ = split_embeddings(emb, "avdigits-pairs", "test")
    out: dict[str, float] = {}
    for tag, classes in (("seen", SEEN), ("unseen", UNSEEN)):
        q = np.isin(yte, classes)
        out[f"{tag}_zeroshot_subset"] = prototype_accuracy(test["image"][q], yte[q], train["audio"], ytr, classes=classes)
        out[f"{tag}_zeroshot_all10"] = prototype_accuracy(test["image"][q], yte[q], train["audio"], ytr)
        r = retrieval_metrics(test["audio"][q], test["image"][q], yte[q], yte[q])
        out[f"{tag}_a2i_R1"], out[f"{tag}_a2i_mAP"] = r["R@1"], r["mAP"]
        r = retrieval_metrics(test["image"][q], test["audio"][q], yte[q], yte[q])
        out[f"{tag}_i2a_R1"] = r["R@1"]
    return out


UNSEEN_COLUMNS = [("zeroshot_subset", "zero-shot image, among the subset's digits"),
                  ("zeroshot_all10", "zero-shot image, among all 10"), ("a2i_R1", "a->i R@1"),
                  ("a2i_mAP", "a->i mAP"), ("i2a_R1", "i->a R@1")]


def unseen_runs(seed: int, epochs: int, classes: str) -> list[tuple[str, list[str]]]:
    """(run name, overrides) of the two groups of one seed: towers trained on digits 0-6, and on all ten.
    Both are this part's own runs at the same budget (never the retrieval table's runs)."""
    return [(f"unseen-seen06-clip-e{epochs}-s{seed}", [f"seed={seed}", f"data.split_options.train.classes={classes}",
                                                     f"data.split_options.val.classes={classes}"]),
            (f"unseen-all10-clip-e{epochs}-s{seed}", [f"seed={seed}"])]


def part_unseen(runs: Path, seeds: Sequence[int], epochs: int) -> None:
    from polymodal.report.table import markdown_table

    classes = "[" + ",".join(map(str, SEEN)) + "]"
    groups: dict[str, list[dict[str, float]]] = {"trained on 0-6": [], "trained on 0-9": []}
    for seed in seeds:
        run, full = (train_run(runs, name, overrides, epochs) for name, overrides in unseen_runs(seed, epochs, classes))
        if run is not None and full is not None:
            groups["trained on 0-6"].append(evaluate_subsets(run))
            groups["trained on 0-9"].append(evaluate_subsets(full))
    rows, body = [], []
    for variant, ms in groups.items():
        for tag, digits in (("seen", "0-6"), ("unseen", "7-9")):
            body.append([variant, f"{tag} ({digits})", *(cell([m[f"{tag}_{k}"] for m in ms]) for k, _ in UNSEEN_COLUMNS)])
            rows += [{"method": "contrastive", "variant": f"clip, {variant}", "dataset": f"avdigits-pairs test, digits {digits}",
                      "metric": k, "values": [m[f"{tag}_{k}"] for m in ms]} for k, _ in UNSEEN_COLUMNS]
    table = markdown_table(["towers", "test digits", *(h for _, h in UNSEEN_COLUMNS)], body)
    protocol = (
        f"CLIP towers as in retrieval_avdigits but {epochs} epochs (seeds {', '.join(map(str, seeds))}), trained on the "
        "training pairs of digits 0-6 only (dataset option classes; no recording or image of 7, 8 or 9 in "
        "any modality) and selected on validation pairs of 0-6 only. Test: images of each subset classified by "
        "the nearest audio prototype (mean embedding of the training-split recordings of each digit, which the "
        "model embeds but never trained on for 7-9), among the subset's digits or among all ten; retrieval "
        "within the subset's test items (queries and gallery of those digits). Beside them: towers trained "
        f"on all ten digits with the same seeds and the same budget ({epochs} epochs, their own runs), evaluated "
        "the same way."
    )
    notes = """\
In %. Chance: zero-shot 1/7 (seen) and 1/3 (unseen) among the subset's digits, 1/10 among all ten; R@1
within a subset 1/7 and 1/3. What it shows: how far the coordinated space generalises to digits neither
tower saw in training, given only a handful of labelled recordings to name them. What it cannot show:
digits share strokes and phonemes, so unseen digits are not as foreign as new concepts would be; three
unseen classes make an easy 3-way problem."""
    write("unseen_classes", "Unseen classes: towers trained on digits 0-6, tested on 7-9", protocol, rows, table, notes)


# ----------------------------------------------------------------------------------------- video search
def make_videos(folder: Path, n_videos: int, seed: int = 0, scale: int = 4, fps: int = 10) -> list[list[int]]:
    """``n_videos`` mp4 files, each ten seconds: a permutation of the digits 0-9, one per second, each a
    test-pool MNIST image (t10k rows 8000-9999), upscaled ``scale`` times. Returns the digit order per video."""
    import av

    from polymodal.data.datasets.avdigits import IMAGE_POOLS, load_artifact

    art = load_artifact()
    lo, hi = IMAGE_POOLS["test"]
    rng = np.random.default_rng(seed)
    # every draw is made whether or not a file already exists, so the orders returned always describe the
    # files on disk (skipping the draws of existing videos shifted the random stream of the later ones)
    orders, rows = [], []
    for _ in range(n_videos):
        order = [int(d) for d in rng.permutation(10)]
        orders.append(order)
        rows.append([lo + int(rng.choice(np.flatnonzero(art.image_labels[lo:hi] == d))) for d in order])
    folder.mkdir(parents=True, exist_ok=True)
    recorded = folder / "orders.json"
    stale = recorded.is_file() and json.loads(recorded.read_text())[: len(orders)] != orders
    for v, picks in enumerate(rows):
        path = folder / f"digits_{v:02d}.mp4"
        if path.is_file() and not stale:
            continue
        tmp = path.with_name(path.stem + ".partial.mp4")
        with av.open(str(tmp), mode="w") as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.width = stream.height = 28 * scale
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": "18"}
            for second, row in enumerate(picks):
                img = np.kron(art.images[row], np.ones((scale, scale), dtype=np.uint8))
                rgb = np.repeat(img[:, :, None], 3, axis=2)
                for f in range(fps):
                    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                    frame.pts = second * fps + f
                    for packet in stream.encode(frame):
                        container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        os.replace(tmp, path)
    (folder / "orders.json").write_text(json.dumps(orders))
    return orders


def video_hits(hits: list[list[Any]], digits: Sequence[int], orders: dict[str, list[int]], k: int) -> tuple[float, float]:
    """(exact, within 1 s) hit rate at k: a query hits when one of its top-k frames shows its digit (exact)
    or lies within one second of the start of the second where the digit is shown (|t - start| <= 1)."""
    exact, near = [], []
    for row, d in zip(hits, digits, strict=True):
        e = n = False
        for h in row[:k]:
            start = orders[Path(h.path).name].index(d)
            e |= start <= h.timestamp < start + 1
            n |= abs(h.timestamp - start) <= 1.0
        exact.append(e)
        near.append(n)
    return float(np.mean(exact)), float(np.mean(near))


def part_video(runs: Path, seeds: Sequence[int], epochs: int, n_videos: int) -> None:
    import soundfile as sf

    from polymodal.coordinated.datasets import DIGIT_NAMES, PHRASES
    from polymodal.coordinated.index import Index
    from polymodal.coordinated.run_embedder import load_run_embedder
    from polymodal.paths import default_data_root
    from polymodal.report.table import markdown_table

    videos = runs / "videos"
    orders = {f"digits_{v:02d}.mp4": o for v, o in enumerate(make_videos(videos, n_videos))}
    recordings = sorted((default_data_root() / "fsdd" / "recordings").glob("*.wav"))
    audio_q = [p for p in recordings if int(p.stem.split("_")[2]) < 5]  # FSDD's test recordings (index 0-4)
    if not audio_q:
        raise SystemExit(f"no FSDD recordings under {default_data_root()}: set POLYMODAL_DATA to the raw data folder")
    audio_digits = [int(p.stem.split("_")[0]) for p in audio_q]
    waves = [sf.read(p, dtype="float32") for p in audio_q]
    texts = [PHRASES[j].format(DIGIT_NAMES[d]) for d in range(10) for j in range(len(PHRASES))]
    text_digits = [d for d in range(10) for _ in PHRASES]
    results: dict[str, list[float]] = {}
    for seed in seeds:
        run = train_run(runs, f"clip-named-s{seed}", [f"seed={seed}", "data.dataset=avdigits-named",
                                                     "strategy.args.pairing=all_pairs"], epochs)
        if run is None:
            continue
        emb = load_run_embedder(run)
        root = runs / f"index-s{seed}"
        if root.exists():
            import shutil

            shutil.rmtree(root)
        index = Index.create(root, emb.model_id, emb.dim)
        index.add([videos], emb, fps=2.0)
        for name, items, digits, modality in (("spoken digit", waves, audio_digits, "audio"),
                                              ("digit name (text)", texts, text_digits, "text")):
            hits = index.search(emb.embed(modality, items), k=5, model_id=emb.model_id)
            for k in (1, 5):
                exact, near = video_hits(hits, digits, orders, k)
                results.setdefault(f"{name}|exact@{k}", []).append(exact)
                results.setdefault(f"{name}|within1s@{k}", []).append(near)
    frames = 20 * n_videos
    miss5 = np.prod([(frames - 2 * n_videos - i) / (frames - i) for i in range(5)])  # no exact frame among 5 random ones
    chance = {1: (2 / 20, 5 / 20), 5: (1 - miss5, None)}
    body = [[q, cell(results[f"{q}|exact@1"]), cell(results[f"{q}|within1s@1"]), cell(results[f"{q}|exact@5"]),
             cell(results[f"{q}|within1s@5"])] for q in ("spoken digit", "digit name (text)")]
    rows = [{"method": "contrastive", "variant": "clip, audio+image+text, all pairs", "dataset": f"{n_videos} MNIST digit videos",
             "metric": key.replace("|", ": "), "values": v} for key, v in results.items()]
    table = markdown_table(["query", "exact @1", "within 1 s @1", "exact @5", "within 1 s @5"], body)
    protocol = (
        f"{n_videos} videos of 10 s (H.264, 112x112, 10 fps), each a random order of the ten digits, one per "
        "second, every digit a test-pool MNIST image (t10k rows 8000-9999, never used in training), written "
        f"with PyAV; the true second of every digit is kept. Towers: avdigits-named (audio, image, and the "
        f"digit's English name as UTF-8 bytes through the project's text transformer), CLIP over all three "
        f"pairs, otherwise as configs/avdigits_clip.yaml ({epochs} epochs, seeds {', '.join(map(str, seeds))}). "
        f"The videos are indexed with the project's search index (exact inner product) at 2 frames per second "
        f"({frames} frames, timestamps 0, 0.5, ... 9.5 s). Queries: the {len(audio_q)} FSDD test recordings "
        f"(index 0-4, all six speakers) and {len(texts)} phrasings of the ten digit names ({', '.join(repr(p.format('seven')) for p in PHRASES)})."
    )
    notes = f"""\
Hit rates in %, over all queries of a kind. Every video shows every digit exactly once, so a search over
all {frames} frames has {2 * n_videos} exactly right frames per query. exact @k: one of the top k frames
shows the queried digit; within 1 s @k: one of the top k frames is at most one second from the start of
the digit's second (so frames of the neighbouring seconds up to one second away also count: five of the
twenty frames of each video). Chance at k = 1: exact
{100 * chance[1][0]:.0f} %, within 1 s {100 * chance[1][1]:.0f} %; exact at k = 5: {100 * chance[5][0]:.0f} %.

What it shows: a spoken digit or its written name finds the moment a handwritten digit appears in a
video, through one embedding space learned from paired data only. What it cannot show: the videos are
clean single-digit frames; the text side has seen only these ten names in five phrasings (it is not a
language model), so any other wording is out of its vocabulary."""
    write("video_search", "Video search: spoken digits and digit names find the second a digit appears", protocol, rows,
          table, notes)


def main(argv: Sequence[str] | None = None) -> int:  # noqa: C901
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=("retrieval", "unseen", "video", "all"), default="all")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--objectives", nargs="+", choices=list(VARIANTS), default=list(LOSSES),
                   help="the retrieval table's objectives (siglip-databias: SigLIP with the data-dependent bias)")
    p.add_argument("--train-only", action="store_true", help="train the retrieval runs, write no table (parallel sittings)")
    p.add_argument("--videos", type=int, default=10, help="number of ten-second videos in the search test")
    p.add_argument("--runs", default=str(ROOT / "benchmarks" / "runs" / "coordinated"))
    p.add_argument("--results", default=None, help="folder of the results files (default benchmarks/results)")
    p.add_argument("--only-finished", action="store_true", help="tabulate the finished runs only; train nothing")
    a = p.parse_args(argv)
    global ONLY_FINISHED, RUN_ARGS  # noqa: PLW0603
    ONLY_FINISHED = a.only_finished
    RUN_ARGS = f" --seeds {' '.join(map(str, a.seeds))} --epochs {a.epochs}"
    PARTS["retrieval_avdigits"] = f"retrieval --objectives {' '.join(a.objectives)}"
    PARTS["video_search"] = f"video --videos {a.videos}"
    if a.results:
        global RESULTS  # noqa: PLW0603
        RESULTS = Path(a.results)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    runs = Path(a.runs)
    runs.mkdir(parents=True, exist_ok=True)
    if a.part in ("retrieval", "all"):
        part_retrieval(runs, a.seeds, a.epochs, a.objectives, a.train_only)
    if a.part in ("unseen", "all"):
        part_unseen(runs, a.seeds, a.epochs)
    if a.part in ("video", "all"):
        part_video(runs, a.seeds, a.epochs, a.videos)
    return 0


if __name__ == "__main__":
    sys.exit(main())
