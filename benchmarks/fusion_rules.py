"""MLA's test-time fusion rules re-applied to finished runs: one trained model, several rules.

    python benchmarks/fusion_rules.py --bench benchmarks/results/resnet18.json --runs-dir runs/bench/resnet18
    python benchmarks/fusion_rules.py --recompute benchmarks/results/resnet18_fusion.json

MLA's rules (docs/strategies.md, "Test-time fusion") only reweight the per-modality outputs of one
model, so they can be compared without training again. Every run of a ``polymodal bench`` results file
(its ``runs`` records name method, dataset, variant and seed; the run folders hold the best checkpoint's
``predictions_val.npz`` / ``predictions_test.npz`` with each modality's class probabilities) is fused
again under each rule:

    trained      the rule the run was trained and selected with (its config's strategy.args.fusion_rule)
    entropy      per-sample entropy weights (MLA's rule before the calibrated rules)
    fixed        equal weights
    fixed-ref    0.55 audio / 0.45 image, the reference code's default for two modalities
    calibrated   the sum of log softmax(o_m / T_m), T_m fitted on the run's validation split
                 (polymodal.inference.calibration.fit_temperature, the fit MLA and ``poe`` use)
    calibrated-entropy  per-sample entropy weights on those calibrated probabilities

A run trained with a calibrated rule stores calibrated per-modality probabilities softmax(o_m / T_m); its
checkpoint's temperatures turn them back into softmax(o_m) (log softmax(T_m log p) = log softmax(o_m)),
so every rule starts from the same uncalibrated probabilities.

Each rule is applied to log p_m, which differs from the logits o_m by a per-sample, per-modality
constant (log-sum-exp): ``fixed`` and the per-sample ``entropy`` rule give the same argmax on either, so
the fused predictions are those the rule would have made at test time. The batch-level rule
(``entropy-batch``) depends on batch composition: runs trained with it are listed, not re-scored. Before anything is written, the
trained rule re-applied must reproduce every stored fused prediction; a run where it does not stops
the script with the file named.

What this can and cannot show: the model (its epoch) was selected with the trained rule on validation,
so another rule is scored on a model chosen for the first one; a rule is preferred only when its mean
validation accuracy is higher, and test differences come with the crossed paired bootstrap of
``polymodal bench`` (seed s of one rule paired with seed s of the other, on the same model).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from polymodal.bench.compare import paired_by_seed
from polymodal.bench.plan import run_name, variant_settings
from polymodal.bench.results import ResultRow, write_results
from polymodal.bench.tables import decode_correct, encode_correct
from polymodal.engine.checkpoint import load_checkpoint
from polymodal.engine.runfolder import predictions_file
from polymodal.inference.calibration import fit_temperature
from polymodal.inference.rules import BATCH_LEVEL_RULES, CALIBRATED_RULES, fuse
from polymodal.report.metrics import load_predictions
from polymodal.runpaths import RunPaths

HERE = Path(__file__).resolve().parent
RULES: dict[str, tuple[str, dict[str, float] | None]] = {  # name -> (registered rule, fixed weights)
    "entropy": ("entropy", None),
    "fixed": ("fixed", None),
    "fixed-ref": ("fixed", {"audio": 0.55, "image": 0.45}),
    "calibrated": ("calibrated", None),
    "calibrated-entropy": ("calibrated-entropy", None),
}
SPLITS = ("val", "test")


def run_dir_of(runs_dir: Path, rec: dict[str, Any]) -> Path:
    """The folder of a bench run record (the name ``polymodal bench`` gave it)."""
    variant = rec.get("variant")
    setting = variant_settings([f"{variant}:"])[0] if variant else None
    return runs_dir / run_name(rec["method"], rec["dataset"], int(rec["seed"]), setting)


def trained_rule(run_dir: Path) -> tuple[str, dict[str, float] | None]:
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path} does not exist: {run_dir} is not a finished run folder")
    args = (yaml.safe_load(cfg_path.read_text()).get("strategy") or {}).get("args") or {}
    if "fusion_rule" not in args:  # the default of the code that trained it: provenance records it ...
        prov = RunPaths(run_dir).provenance
        resolved = (json.loads(prov.read_text()).get("strategy_args") or {}) if prov.is_file() else {}
        if "fusion_rule" in resolved:
            args = {**args, "fusion_rule": resolved["fusion_rule"]}
        else:  # ... or, for a run written before it did, the temperatures only the calibrated default stores
            state = load_checkpoint(RunPaths(run_dir).checkpoint("best")).strategy or {}
            args = {**args, "fusion_rule": "calibrated" if any(k.startswith("temperature/") for k in state)
                    else "entropy"}
    return args["fusion_rule"], args.get("fusion_weights")


def stored_temperatures(run_dir: Path) -> dict[str, float]:
    """The per-modality temperatures the run's best checkpoint holds (a run trained with a calibrated rule)."""
    state = load_checkpoint(RunPaths(run_dir).checkpoint("best")).strategy or {}
    temps = {k.split("/", 1)[1]: float(v) for k, v in state.items() if k.startswith("temperature/")}
    if not temps:
        raise ValueError(f"{run_dir} was trained with a calibrated rule but its best checkpoint holds no temperatures")
    return temps


def log_probs(pred: Any, where: str, undo: dict[str, float] | None = None) -> dict[str, torch.Tensor]:
    """Each modality's stored log-probabilities; with ``undo`` (the run's temperatures), the uncalibrated ones."""
    if not pred.per_modality:
        raise ValueError(f"{where} holds no per-modality probabilities (probs_<modality>); it was not written by "
                         "a shared-head model, so its fusion rule cannot be re-applied")
    logp = {m: torch.log(torch.from_numpy(np.asarray(p, dtype=np.float64)).clamp_min(1e-300))
            for m, p in pred.per_modality.items()}
    if undo is not None:
        logp = {m: torch.log_softmax(x * undo[m], dim=1) for m, x in logp.items()}
    return logp


def present_rows(pred: Any) -> dict[str, np.ndarray]:
    return {m: np.asarray(pred.present.get(m, np.ones(len(pred.y_true), bool)) if pred.present else
                          np.ones(len(pred.y_true), bool), dtype=bool) for m in pred.per_modality}


def fit_on_val(pred: Any, logp: dict[str, torch.Tensor]) -> dict[str, float]:
    """Per-modality temperatures fitted on a validation predictions file (the rows where the modality is present)."""
    y = np.asarray(pred.y_true)
    rows = present_rows(pred)
    return {m: fit_temperature(x.numpy()[rows[m]], y[rows[m]]) for m, x in logp.items()}


def fused_labels(pred: Any, rule: str, weights: dict[str, float] | None, where: str,
                 logp: dict[str, torch.Tensor] | None = None, temperatures: dict[str, float] | None = None) -> np.ndarray:
    """The class ``rule`` predicts from the per-modality log-probabilities ``logp`` (default: the stored ones),
    per row of the file."""
    logp = log_probs(pred, where) if logp is None else logp
    names = list(logp)
    if weights is not None and set(weights) != set(names):
        raise ValueError(f"{where}: the rule's weights name {sorted(weights)} but the run has modalities {names}")
    present = {m: torch.from_numpy(r) for m, r in present_rows(pred).items()}
    return fuse(rule, logp, present, weights, temperatures).argmax(dim=1).numpy()


def rescore(run_dir: Path, rule: str, weights: dict[str, float] | None) -> dict[str, dict[str, np.ndarray]]:
    """rule name -> split -> per-sample correctness in dataset order; checks that the run's own rule
    (``rule``, ``weights``) reproduces every stored fused prediction."""
    out: dict[str, dict[str, np.ndarray]] = {}
    calibrated = rule in CALIBRATED_RULES
    undo = stored_temperatures(run_dir) if calibrated else None
    temps: dict[str, float] = {}
    for split in SPLITS:  # val first: the calibrated rules' temperatures are fitted there
        path = predictions_file(run_dir, split)
        pred = load_predictions(path)
        order = np.argsort(pred.index) if pred.index is not None else np.arange(len(pred.y_true))
        stored = np.asarray(pred.probs).argmax(axis=1)
        raw = log_probs(pred, str(path), undo)
        if split == "val":
            temps = fit_on_val(pred, raw)
        # the stored probabilities are already calibrated under a calibrated rule: temperature 1 reproduces it
        again = fused_labels(pred, rule, weights, str(path), temperatures={m: 1.0 for m in raw} if calibrated else None)
        if not np.array_equal(stored, again):
            raise ValueError(f"{path}: re-applying the run's own rule {rule!r} changes {int((stored != again).sum())} "
                             "of its stored fused predictions; the file does not match the run's config")
        y = np.asarray(pred.y_true)
        out.setdefault("trained", {})[split] = (stored == y)[order]
        for name, (registered, w) in RULES.items():
            if w is None or set(w) == set(pred.per_modality):  # fixed-ref is defined for audio + image only
                labels = fused_labels(pred, registered, w, str(path), raw, temps)
                out.setdefault(name, {})[split] = (labels == y)[order]
    return out


def collect(bench_json: Path, runs_dir: Path) -> list[dict[str, Any]]:
    """One record per (run, rule): method, dataset, variant, seed, rule, val accuracy, test correctness."""
    doc = json.loads(bench_json.read_text())
    if not doc.get("runs"):
        raise ValueError(f"{bench_json} has no per-run records ('runs'); write it with polymodal bench")
    records = []
    for rec in doc["runs"]:
        if rec["method"] != "mla":  # the rules are MLA's (a bench file may hold unimodal and poe records too)
            continue
        run_dir = run_dir_of(runs_dir, rec)
        rule, weights = trained_rule(run_dir)
        if rule in BATCH_LEVEL_RULES:  # listed in the notes by tables()
            records.append({"method": rec["method"], "dataset": rec["dataset"], "variant": rec.get("variant"),
                            "seed": int(rec["seed"]), "rule": None})
            continue
        scored = rescore(run_dir, rule, weights)
        for rule, by_split in scored.items():
            records.append({"method": rec["method"], "dataset": rec["dataset"], "variant": rec.get("variant"),
                            "seed": int(rec["seed"]), "rule": rule, "val_acc": float(by_split["val"].mean()),
                            "test_correct": encode_correct(by_split["test"])})
    return records


def tables(records: list[dict[str, Any]]) -> tuple[list[ResultRow], list[dict[str, Any]], str]:
    """Rows (test and val accuracy per variant and rule), the differences against the trained rule, notes."""
    groups: dict[tuple[str, str, str | None], dict[str, dict[int, dict[str, Any]]]] = {}
    skipped = sorted({str(r["variant"]) for r in records if r["rule"] is None})
    for r in records:
        if r["rule"] is None:
            continue
        groups.setdefault((r["method"], r["dataset"], r["variant"]), {}).setdefault(r["rule"], {})[r["seed"]] = r
    rows, differences, chosen = [], [], []
    for (method, dataset, variant), by_rule in groups.items():
        val_means = {}
        for rule, by_seed in by_rule.items():
            seeds = sorted(by_seed)
            label = f"{variant or 'default'} | {rule}"
            test = [float(decode_correct(by_seed[s]["test_correct"]).mean()) for s in seeds]
            val = [by_seed[s]["val_acc"] for s in seeds]
            rows.append(ResultRow(method, dataset, "fused_acc", test, variant=label))
            rows.append(ResultRow(method, dataset, "val_fused_acc", val, variant=label))
            val_means[rule] = float(np.mean(val))
        base = {s: decode_correct(r["test_correct"]) for s, r in by_rule["trained"].items()}
        for rule, by_seed in by_rule.items():
            if rule == "trained":
                continue
            d = paired_by_seed({s: decode_correct(r["test_correct"]) for s, r in by_seed.items()}, base)
            if d is not None:
                differences.append({"method": method, "dataset": dataset, "variant": variant, "rule": rule,
                                    "baseline": "trained", "metric": "fused_acc", **d})
        best = max(val_means, key=lambda k: (val_means[k], k == "trained"))
        chosen.append((dataset, variant, f"{best} ({100 * val_means[best]:.1f} % on val)"))
    several = len({r["dataset"] for r in records}) > 1  # name the dataset when the file spans several

    def where(dataset: str, variant: str | None) -> str:
        return f"{dataset} {variant or 'default'}" if several else (variant or "default")

    parts = [f"{where(d['dataset'], d['variant'])}: {d['rule']} - trained = {100 * d['mean']:+.1f} points "
             f"[{100 * d['ci95'][0]:+.1f}, {100 * d['ci95'][1]:+.1f}] ({d['n_seeds']} seeds)" for d in differences]
    notes = NOTES
    if parts:
        notes += ("\nDifferences in fused test accuracy against the trained rule on the same models, crossed paired "
                  "bootstrap 95 % interval (seeds and test samples resampled): " + "; ".join(parts) + ".\n")
    notes += ("\nRule with the highest mean validation accuracy, per variant: "
              + "; ".join(f"{where(d, v)}: {text}" for d, v, text in chosen) + ".\n")
    if skipped:
        notes += ("\nNot re-scored (trained with a batch-level rule, whose output depends on batch composition): "
                  + ", ".join(skipped) + ".\n")
    return rows, differences, notes


def write(records: list[dict[str, Any]], name: str, protocol: str, command: str, out_dir: Path) -> tuple[Path, Path]:
    rows, differences, notes = tables(records)
    js, md = write_results(name, rows, protocol=protocol, command=command, out_dir=out_dir,
                           columns=["fused_acc", "val_fused_acc"], title=f"Benchmark {name}", notes=notes)
    doc = json.loads(js.read_text())
    doc.update({"differences": differences, "runs": records})
    js.write_text(json.dumps(doc, indent=2) + "\n")
    return js, md


NOTES = """\
variant = `<bench variant> | <rule>`: `trained` is the rule the model was trained and selected with
(its config's `strategy.args.fusion_rule`; where the config names none, the default of the code that
trained it: provenance.json's `strategy_args`, or for a run older than that record `calibrated` when its
checkpoint holds fitted temperatures, else `entropy`, MLA's default before), `entropy` per-sample entropy weights, `calibrated` the sum of log-probabilities
with temperatures fitted on the run's validation split, `calibrated-entropy` entropy weights on those
calibrated probabilities, `fixed` equal weights, `fixed-ref` 0.55 audio / 0.45 image (the
reference code's default). fused_acc: test; val_fused_acc: validation, on the same model. Every rule is
re-applied to the stored per-modality probabilities of the model selected with the trained rule; the
trained rule re-applied reproduces each run's stored predictions exactly (checked).
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bench", help="a polymodal bench results JSON with per-run records")
    p.add_argument("--runs-dir", help="the folder holding that benchmark's run folders")
    p.add_argument("--name", help="results name (default: <bench name>_fusion)")
    p.add_argument("--out", default=str(HERE / "results"))
    p.add_argument("--recompute", metavar="NAME.json", help="rebuild the tables from a results JSON written by this script")
    args = p.parse_args(argv)
    if args.recompute:
        path = Path(args.recompute)
        doc = json.loads(path.read_text())
        if "runs" not in doc or not doc["runs"] or "rule" not in doc["runs"][0]:
            raise SystemExit(f"{path} was not written by benchmarks/fusion_rules.py (no per-run 'rule' records)")
        js, md = write(doc["runs"], path.stem, doc["protocol"], doc["command"], Path(args.out))
    else:
        if not args.bench or not args.runs_dir:
            p.error("--bench and --runs-dir are required (or --recompute NAME.json)")
        bench = Path(args.bench)
        source = json.loads(bench.read_text())
        records = collect(bench, Path(args.runs_dir))
        given = argv if argv is not None else sys.argv[1:]
        js, md = write(records, args.name or f"{bench.stem}_fusion",
                       f"test-time fusion rules re-applied to the runs of {bench.name} ({source['protocol']})",
                       "python benchmarks/fusion_rules.py " + " ".join(given), Path(args.out))
    print(f"wrote {md} and {js}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
