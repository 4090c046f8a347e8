"""The tables of `polymodal bench`, built from per-run records that the results JSON keeps.

A run record holds what one finished run contributes: its keys (method, dataset, optional variant or
missing condition), its seed, its test metrics, and its per-sample test correctness as a string of
``0``/``1`` in dataset order. Everything in ``NAME.md`` / ``NAME.csv`` / ``NAME.png`` and the
``rows`` and ``differences`` of ``NAME.json`` is computed from these records, so
:func:`recompute` rebuilds a benchmark's tables from its JSON alone (no run folders needed)::

    {"protocol": ..., "command": ..., "baseline": "joint", "format": 2,
     "rows": [...],                 # the results format of docs/benchmarks.md
     "differences": [...],          # crossed paired bootstrap against the baseline
     "runs": [{"method": "mla", "dataset": "avdigits-hard", "seed": 0, "best_epoch": 17,
               "sec_per_epoch": 4.6, "test": {"fused_acc": 0.86, ...}, "test_correct": "0111..."}, ...],
     "realised_missing_rates": [...]}   # only for missing-modality benchmarks
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.bench.compare import paired_by_seed
from polymodal.bench.results import OPTIONAL_KEYS, ResultRow, write_results
from polymodal.report.table import markdown_table
from polymodal.tasks import DEFAULT_TASK, Task, get_task

FORMAT = 2
KEYS = ("variant", "missing_rate", "missing_at")
VARIANT_BASELINE = "variant:"  # --baseline variant:NAME compares the variants of each strategy with NAME


def encode_correct(correct: np.ndarray) -> str:
    """(N,) booleans -> ``"0110..."`` (compact, readable, exact)."""
    return "".join("1" if c else "0" for c in np.asarray(correct, dtype=bool).reshape(-1))


def decode_correct(text: str, where: str = "run record") -> np.ndarray:
    if not isinstance(text, str) or set(text) - {"0", "1"}:
        raise ValueError(f"{where}: test_correct must be a string of 0 and 1; got {str(text)[:40]!r}")
    return np.frombuffer(text.encode(), dtype=np.uint8) == ord("1")


def _group_key(rec: dict[str, Any]) -> tuple[Any, ...]:
    return (rec["method"], rec["dataset"], *(rec.get(k) for k in KEYS))


def record_task(rec: dict[str, Any]) -> Task:
    """The task of a run record (a record that names none is the default task's, as older files are)."""
    return get_task(rec.get("task") or DEFAULT_TASK)


def _keys(rec: dict[str, Any]) -> dict[str, Any]:
    return {k: rec.get(k) for k in KEYS}


def rows_from_runs(runs: Sequence[dict[str, Any]]) -> list[ResultRow]:
    """Aggregate run records into result rows: the task's metrics (:meth:`polymodal.tasks.Task.bench_metrics`:
    for classification fused_acc, <modality>_acc, macro_f1), sec_per_epoch, epoch."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault(_group_key(r), []).append(r)
    rows: list[ResultRow] = []
    for recs in groups.values():
        first = recs[0]
        s, d, keys = first["method"], first["dataset"], _keys(first)
        for metric in record_task(first).bench_metrics(first["test"]):
            vals = [r["test"].get(metric) for r in recs]
            if vals and all(v is not None for v in vals):
                rows.append(ResultRow(s, d, metric, [float(v) for v in vals], **keys))
        secs = [float(r["sec_per_epoch"]) for r in recs if r.get("sec_per_epoch") is not None]
        if secs:
            rows.append(ResultRow(s, d, "sec_per_epoch", secs, **keys))
        epochs = [float(r["best_epoch"]) for r in recs if r.get("best_epoch") is not None]
        if epochs:
            rows.append(ResultRow(s, d, "epoch", epochs, **keys))
    return rows


def _baseline_key(key: tuple[Any, ...], baseline: str) -> tuple[Any, ...] | None:
    """The group a group is compared with: the baseline method at the same dataset and condition, or for
    ``variant:NAME`` variant NAME of the same method and dataset (None: the group is the baseline)."""
    method, dataset, *rest = key
    if baseline.startswith(VARIANT_BASELINE):
        name = baseline[len(VARIANT_BASELINE):]
        return None if rest[0] == name else (method, dataset, name, *rest[1:])
    return None if method == baseline else (baseline, dataset, *rest)


def differences_from_runs(runs: Sequence[dict[str, Any]], baseline: str) -> list[dict[str, Any]]:
    """The task's per-sample score (:attr:`polymodal.tasks.Task.bench_score`: fused test accuracy for
    classification) of every method minus ``baseline`` (same dataset and condition), paired by seed, with the
    crossed bootstrap 95 % interval; ``baseline="variant:NAME"`` compares every variant with variant NAME of
    the same method instead. Seeds that lack per-sample scores on either side are left out (the number of
    seeds used is stated)."""
    by_group: dict[tuple[Any, ...], dict[int, np.ndarray]] = {}
    order: list[tuple[Any, ...]] = []
    for r in runs:
        key = _group_key(r)
        if key not in by_group:
            by_group[key] = {}
            order.append(key)
        if r.get("test_correct") is not None:
            by_group[key][int(r["seed"])] = decode_correct(r["test_correct"], f"run {r['method']} seed {r['seed']}")
        elif r.get("test_scores") is not None:
            by_group[key][int(r["seed"])] = np.asarray(r["test_scores"], dtype=np.float64)
    metric = {_group_key(r): record_task(r).bench_score for r in runs}
    out = []
    for key in order:
        method, dataset, *rest = key
        base_key = _baseline_key(key, baseline)
        base = by_group.get(base_key) if base_key is not None else None
        if not base:
            continue
        diff = paired_by_seed(by_group[key], base)
        if diff is None:
            continue
        keys = {k: v for k, v in zip(KEYS, rest, strict=True) if v is not None}
        out.append({"method": method, "baseline": baseline, "dataset": dataset, **keys, "metric": metric[key], **diff})
    return out


def get_task_of_metric(metric: str) -> str:
    """How the notes name a compared metric: the label of the task whose ``bench_score`` it is."""
    from polymodal.tasks import TASKS

    for name in TASKS.names():
        task = get_task(name)
        if task.bench_score == metric:
            return task.bench_score_label or metric
    return metric


def condition(x: dict[str, Any]) -> str:
    if x.get("missing_rate") is not None:
        return f"missing {x['missing_rate']:g} at {x['missing_at']}"
    return str(x["variant"]) if x.get("variant") else "-"


def _baseline_text(baseline: str) -> str:
    if baseline.startswith(VARIANT_BASELINE):
        return f"variant `{baseline[len(VARIANT_BASELINE):]}` of the same method"
    return f"`{baseline}`"


def _notes(diffs: list[dict[str, Any]], realised: list[dict[str, Any]], rows: list[ResultRow], baseline: str,
           extra_notes: str) -> str:
    parts: list[str] = []
    fused = [r for r in rows if r.metric == "fused_acc" and r.n > 1]
    if fused:
        stds = [100 * r.std for r in fused]
        parts.append(
            f"Seed-to-seed spread of fused test accuracy (std over seeds): median {np.median(stds):.2f} points, "
            f"range {min(stds):.2f}-{max(stds):.2f}."
        )
    if diffs:
        half = [100 * (x["ci95"][1] - x["ci95"][0]) / 2 for x in diffs]
        labels = sorted({get_task_of_metric(x["metric"]) for x in diffs})
        parts.append(
            f"Difference to {_baseline_text(baseline)} in {' / '.join(labels)} (points), crossed paired bootstrap "
            "95 % interval (each draw resamples one set of test samples shared by all seeds and both methods, and resamples "
            f"seeds with replacement). A typical interval's half-width is {np.median(half):.2f} points: "
            "differences smaller than that are not resolved by this table.\n\n"
            + "\n".join(markdown_table(
                ["method", "dataset", "condition", "difference", "95 % interval", "seeds"],
                [[x["method"], x["dataset"], condition(x), f"{100 * x['mean']:+.2f}",
                  f"[{100 * x['ci95'][0]:+.2f}, {100 * x['ci95'][1]:+.2f}]", x["n_seeds"]] for x in diffs], "lllrlr"))
        )
    if realised:
        parts.append(
            "Realised missing rates (fraction of (sample, modality) slots missing, mean over seeds):\n\n"
            + "\n".join(markdown_table(
                ["method", "dataset", "condition", "train", "val", "test"],
                [[x["method"], x["dataset"], condition(x), *(f"{x[k]:.3f}" for k in ("train", "val", "test"))]
                 for x in realised], "lllrrr"))
        )
    if extra_notes:
        parts.append(extra_notes.strip())
    return "\n\n".join(parts)


def write_tables(
    out: Path, runs: list[dict[str, Any]], *, protocol: str, command: str, baseline: str = "joint",
    realised: list[dict[str, Any]] | None = None, notes: str = "",
) -> dict[str, Path]:
    """Write ``OUT.md``, ``OUT.json`` (with the run records), ``OUT.csv`` and ``OUT.png`` from run records."""
    if not runs:
        raise ValueError(f"no finished run to tabulate for {out}")
    rows = rows_from_runs(runs)
    diffs = differences_from_runs(runs, baseline)
    tasks = sorted({t.name for t in map(record_task, runs) if t.bench_score is None})
    if tasks and not diffs and "No paired differences" not in notes:  # (a recomputed table keeps its notes)
        notes = "\n\n".join(x for x in (notes, (
            f"No paired differences to {_baseline_text(baseline)}: the crossed bootstrap pairs per-sample "
            f"scores, which a {' / '.join(tasks)} task does not have (its metrics are computed over the whole "
            "test split).")) if x)
    realised = list(realised or [])
    json_path, md_path = write_results(
        out.name, rows, protocol=protocol, command=command, out_dir=out.parent, title=f"Benchmark {out.name}",
        notes=_notes(diffs, realised, rows, baseline, notes),
    )
    doc = json.loads(json_path.read_text())
    doc.update({"format": FORMAT, "baseline": baseline, "differences": diffs, "runs": runs})
    if notes:
        doc["notes"] = notes
    if realised:
        doc["realised_missing_rates"] = realised
    json_path.write_text(json.dumps(doc, indent=1) + "\n")
    csv_path = out.parent / f"{out.name}.csv"
    flat = [{"strategy": r["method"], "dataset": r["dataset"], "seed": r["seed"], **_keys(r),
             "best_epoch": r.get("best_epoch"), **{f"test_{k}": v for k, v in r["test"].items()},
             "sec_per_epoch": r.get("sec_per_epoch")} for r in runs]
    with open(csv_path, "w", newline="") as f:
        fields = sorted({k for r in flat for k in r}, key=lambda k: (k not in ("strategy", "dataset", "seed"), k))
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(flat)
    png_path = bar_chart(rows, out.parent / f"{out.name}.png", record_task(runs[0]))
    return {"md": md_path, "json": json_path, "csv": csv_path, "png": png_path}


def _read_results(path: Path, option: str) -> dict[str, Any]:
    if path.suffix != ".json" or not path.is_file():
        raise FileNotFoundError(f"{option} {path}: expected an existing NAME.json written by `polymodal bench`")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a JSON object written by `polymodal bench`, found {type(doc).__name__}")
    return doc


def _run_key(r: dict[str, Any]) -> tuple[Any, ...]:
    return (r.get("method"), r.get("dataset"), *(r.get(k) for k in KEYS), r.get("seed"))


def replace_runs(doc: dict[str, Any], new: dict[str, Any], base_name: str, new_name: str) -> list[str]:
    """Put the run records of ``new`` in place of the records of ``doc`` with the same keys (method, dataset,
    variant, missing condition, seed); the other records stay. Every record of ``new`` must replace one of
    ``doc`` (a benchmark's set of runs is not extended this way), and both files must share the protocol's
    baseline. The command and protocol say which rows come from which command. Returns the replaced
    (method, dataset, ...) groups, for the log."""
    runs, fresh = doc.get("runs"), new.get("runs")
    if not isinstance(fresh, list) or not fresh:
        raise ValueError(f"--replace-runs {new_name}: it holds no per-run records ('runs') to put in place")
    have = {_run_key(r): i for i, r in enumerate(runs)}
    unknown = [_run_key(r) for r in fresh if _run_key(r) not in have]
    if unknown:
        raise ValueError(
            f"--replace-runs {new_name}: {len(unknown)} of its run records have no counterpart in {base_name} "
            f"(first: method, dataset, variant, missing_rate, missing_at, seed = {unknown[0]}); it may only replace "
            "runs the benchmark already has. Run the same --strategies/--dataset/--seeds/--missing-rate as the "
            "benchmark's command for the methods to replace"
        )
    for r in fresh:
        runs[have[_run_key(r)]] = r
    if new.get("realised_missing_rates"):
        keep = {(r.get("method"), r.get("dataset"), r.get("variant"), r.get("missing_rate"), r.get("missing_at"))
                for r in new["realised_missing_rates"]}
        old = [r for r in doc.get("realised_missing_rates") or []
               if (r.get("method"), r.get("dataset"), r.get("variant"), r.get("missing_rate"), r.get("missing_at"))
               not in keep]
        doc["realised_missing_rates"] = old + list(new["realised_missing_rates"])
    groups = sorted({", ".join(str(k) for k in _run_key(r)[:-1] if k is not None) for r in fresh})
    doc["command"] = (f"{doc.get('command', '')}; then the runs of {'; '.join(groups)} replaced by those of "
                      f"`{new.get('command', new_name)}`")
    doc["protocol"] = (f"{doc.get('protocol', '')}. Rows of {'; '.join(groups)}: {new.get('protocol', '')}")
    return groups


def recompute(json_path: str | Path, log: Callable[[str], None] = print,
              replace: str | Path | None = None) -> dict[str, Path]:
    """Rebuild a benchmark's tables (md, json, csv, png beside it) from its results JSON alone; with
    ``replace`` (another results JSON), first put its run records in place of those with the same keys."""
    path = Path(json_path)
    doc = _read_results(path, "--recompute")
    runs = doc.get("runs") if isinstance(doc, dict) else None
    if not runs or not isinstance(runs, list):
        raise ValueError(
            f"{path} has no per-run records ('runs'), so its tables cannot be rebuilt without the run folders; "
            f"it was written before results format {FORMAT}. Run the benchmark's command again (it is in the "
            f"file's 'command') to write a file that can be recomputed"
        )
    for i, r in enumerate(runs):
        missing = [k for k in ("method", "dataset", "seed", "test") if not isinstance(r, dict) or k not in r]
        if missing:
            raise ValueError(f"{path}: runs[{i}] lacks keys {missing}")
    if replace is not None:
        new_path = Path(replace)
        groups = replace_runs(doc, _read_results(new_path, "--replace-runs"), str(path), str(new_path))
        log(f"replaced the runs of {'; '.join(groups)} with those of {new_path}")
    before = _values_by_key(doc.get("rows", []))
    paths = write_tables(path.parent / path.stem, runs, protocol=doc.get("protocol", ""), command=doc.get("command", ""),
                         baseline=doc.get("baseline", "joint"), realised=doc.get("realised_missing_rates"),
                         notes=doc.get("notes", ""))
    after = json.loads(paths["json"].read_text())
    changed = [k for k, v in _values_by_key(after["rows"]).items() if k in before and not np.allclose(before[k], v)]
    if changed:
        log(f"note: {len(changed)} rows differ from the values the file held before; the run records are authoritative")
    log(f"recomputed {len(after['rows'])} rows and {len(after['differences'])} differences from {len(runs)} run records")
    return paths


def _values_by_key(rows: Sequence[dict[str, Any]]) -> dict[tuple[Any, ...], list[float]]:
    return {(*(r.get(k) for k in ("method", "dataset", *OPTIONAL_KEYS)), r.get("metric")): r.get("values", []) for r in rows}


def bar_chart(rows: Sequence[ResultRow], path: Path, task: Task | None = None) -> Path:
    """Grouped bars of the task's fused and per-modality test metric (classification: accuracy), mean +- std,
    one group per method and dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    task = task or get_task(DEFAULT_TASK)
    acc = [r for r in rows if r.metric == task.monitor or r.metric.endswith(f"_{task.log_suffix}")]
    scale = 100.0 if task.bench_percent else 1.0
    ylabel = f"test {task.learning_curve()[2]}" + (" (%)" if task.bench_percent else "")
    groups = list(dict.fromkeys(f"{r.method}\n{r.dataset}" for r in acc))
    metrics = list(dict.fromkeys(r.metric for r in acc))
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(groups) * max(1, len(metrics)) / 2), 4))
    width = 0.8 / max(1, len(metrics))
    for i, metric in enumerate(metrics):
        xs, ys, es = [], [], []
        for g, group in enumerate(groups):
            r = next((r for r in acc if f"{r.method}\n{r.dataset}" == group and r.metric == metric), None)
            if r is not None:
                xs.append(g + i * width)
                ys.append(scale * r.mean)
                es.append(scale * r.std)
        ax.bar(xs, ys, width, yerr=es, capsize=3, label=metric)
    ax.set_xticks([g + width * (len(metrics) - 1) / 2 for g in range(len(groups))], groups, fontsize=8)
    ax.set_ylabel(ylabel)
    if metrics:
        ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
