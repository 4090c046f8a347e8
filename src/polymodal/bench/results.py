"""Benchmark results files: ``NAME.json`` (the machine-readable twin) and ``NAME.md`` (the table).

JSON format (see the project's benchmark docs, "Results files")::

    {"protocol": "...", "command": "...",
     "rows": [{"method": "mla", "variant": "no-hgm", "dataset": "avdigits-hard", "metric": "fused_acc",
               "mean": 0.90, "std": 0.01, "n": 3, "values": [0.89, 0.90, 0.91]}, ...]}

``std`` is the sample standard deviation (ddof = 1; 0.0 for a single value). The optional keys
``variant``, ``fusion``, ``missing_rate``, ``missing_at`` and ``label_budget`` appear only when set.
Accuracies are fractions in [0, 1], times in seconds.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polymodal.report.metrics import mean_std
from polymodal.report.table import markdown_table

OPTIONAL_KEYS = ("variant", "fusion", "missing_rate", "missing_at", "label_budget")
_METRIC = re.compile(
    r"^(fused_acc(@(fixed|entropy|entropy-batch|calibrated|calibrated-entropy))?|[A-Za-z0-9][\w-]*_acc|macro_f1|sec_per_epoch|params|epoch"
    r"|samples_per_sec|efficiency|images_per_sec|pixel_diversity|diversity_ratio|nearest_train_dist)$"
)
METRICS_HELP = (
    "fused_acc, fused_acc@<rule> (fixed, entropy, entropy-batch, calibrated, calibrated-entropy), <modality>_acc, "
    "macro_f1, sec_per_epoch, params, epoch, samples_per_sec, efficiency, the generation metrics images_per_sec, "
    "pixel_diversity, diversity_ratio and nearest_train_dist, and every task's benchmark metrics "
    "(its monitor, <modality>_<its per-modality suffix> and extras: cindex, ibs, rmse, mae, r2, mAP, micro_f1, ...)"
)


def _task_of_metric(metric: str) -> Any:
    """The registered task whose benchmark tabulates ``metric`` (:meth:`polymodal.tasks.Task.accepts_metric`)."""
    from polymodal.tasks import TASKS, get_task

    return next((t for t in map(get_task, TASKS.names()) if t.accepts_metric(metric)), None)


def _known_metric(metric: str) -> bool:
    return bool(_METRIC.match(metric)) or _task_of_metric(metric) is not None


def _is_fraction_metric(metric: str) -> bool:
    if metric.endswith("_acc") or "_acc@" in metric or metric == "macro_f1":
        return True
    task = _task_of_metric(metric) if not _METRIC.match(metric) else None
    return bool(task is not None and task.bench_percent)


@dataclass
class ResultRow:
    """One (method, configuration, dataset, metric) cell with its values, one per seed or run.

    ``values`` are fractions in [0, 1] for accuracies and macro F1, seconds for ``sec_per_epoch``,
    counts for ``params``. ``variant`` names an ablation (``None``: the method's default config).
    """

    method: str  # registry name of the strategy
    dataset: str
    metric: str  # see METRICS_HELP
    values: list[float] = field(default_factory=list)
    variant: str | None = None
    fusion: str | None = None
    missing_rate: float | None = None
    missing_at: str | None = None  # "train", "test" or "both"
    label_budget: float | int | None = None

    def __post_init__(self) -> None:
        where = f"result row ({self.method!r}, {self.dataset!r}, {self.metric!r})"
        if not self.method or not self.dataset:
            raise ValueError(f"{where}: method and dataset must be non-empty strings")
        if not _known_metric(self.metric):
            raise ValueError(f"{where}: unknown metric {self.metric!r}; expected one of {METRICS_HELP}")
        try:
            self.values = [float(v) for v in self.values]
        except (TypeError, ValueError):
            raise ValueError(f"{where}: values must be numbers; got {self.values!r}") from None
        if not self.values:
            raise ValueError(f"{where}: values is empty; give one value per seed")
        if _is_fraction_metric(self.metric) and not all(0.0 <= v <= 1.0 for v in self.values):
            raise ValueError(
                f"{where}: values {self.values} are not fractions in [0, 1]; "
                "accuracies and macro F1 are stored as fractions (divide percentages by 100)"
            )

    @property
    def mean(self) -> float:
        return mean_std(self.values)[0]

    @property
    def std(self) -> float:
        """Sample standard deviation (ddof = 1); 0.0 for a single value."""
        return mean_std(self.values)[1]

    @property
    def n(self) -> int:
        return len(self.values)

    def key(self) -> tuple[Any, ...]:
        """What tells rows of one table apart, besides the metric: method, dataset and optional keys."""
        return (self.method, self.dataset, *(getattr(self, k) for k in OPTIONAL_KEYS))

    def to_dict(self) -> dict[str, Any]:
        mean, std, n = mean_std(self.values)
        out: dict[str, Any] = {"method": self.method}
        out.update({k: getattr(self, k) for k in OPTIONAL_KEYS if getattr(self, k) is not None})
        out.update({"dataset": self.dataset, "metric": self.metric, "mean": mean, "std": std, "n": n, "values": self.values})
        return out


# ----------------------------------------------------------------------------- Markdown


def _format_cell(metric: str, values: Sequence[float], common_n: int) -> str:
    mean, std, n = mean_std(values)
    if _is_fraction_metric(metric):
        text = f"{100 * mean:.2f}" + (f" +- {100 * std:.2f}" if n > 1 else "")
    elif metric == "efficiency":  # a ratio, e.g. engine / bare-loop throughput
        text = f"{mean:.3f}" + (f" +- {std:.3f}" if n > 1 else "")
    elif metric == "params":
        text = f"{round(mean):,}" + (f" +- {round(std):,}" if n > 1 and std > 0 else "")
    elif metric == "sec_per_epoch":
        digits = 0 if mean >= 100 else 1 if mean >= 10 else 2
        text = f"{mean:.{digits}f}" + (f" +- {std:.{digits}f}" if n > 1 else "")
    elif metric == "epoch":
        text = f"{mean:.1f}" + (f" +- {std:.1f}" if n > 1 else "")
    else:  # a task's own metric (C-index, IBS, RMSE, R^2): in its units
        text = f"{mean:.3f}" + (f" +- {std:.3f}" if n > 1 else "")
    return text + (f" (n={n})" if n != common_n else "")


def _header(metric: str) -> str:
    if _is_fraction_metric(metric):
        return f"{metric} (%)"
    return f"{metric} (s)" if metric == "sec_per_epoch" else metric


def render_markdown(
    rows: Sequence[ResultRow], *, protocol: str, command: str, columns: Sequence[str] | None = None,
    title: str | None = None, notes: str = "", name: str = "results",
) -> str:
    """The Markdown table: one row per (method, dataset, optional keys), one column per metric."""
    metrics = list(dict.fromkeys(r.metric for r in rows))
    if columns is not None:
        unknown = [c for c in columns if c not in metrics]
        if unknown:
            raise ValueError(f"columns {unknown} name metrics no row holds; the rows hold {metrics}")
        metrics = list(columns)
    shown = [r for r in rows if r.metric in metrics]
    cells: dict[tuple[Any, ...], dict[str, ResultRow]] = {}
    for r in shown:
        cells.setdefault(r.key(), {})[r.metric] = r
    used = [k for k in OPTIONAL_KEYS if any(getattr(r, k) is not None for r in shown)]
    ns = [r.n for r in shown]
    common_n = max(set(ns), key=ns.count) if ns else 0
    header = ["method", *used, "dataset", *map(_header, metrics)]
    lines = [f"# {title or name}", "", f"Protocol: {protocol}", "", f"Command: `{command}`", ""]
    lines += [
        f"Each cell: mean +- std (ddof = 1) over n = {common_n} runs (other n marked); "
        "accuracies and macro F1 in %, times in seconds.",
        "",
    ]
    body = []
    for by_metric in cells.values():
        row = next(iter(by_metric.values()))
        opts = ["default" if k == "variant" and getattr(row, k) is None else _plain(getattr(row, k)) for k in used]
        vals = [_format_cell(m, by_metric[m].values, common_n) if m in by_metric else "-" for m in metrics]
        body.append([_plain(row.method), *opts, _plain(row.dataset), *vals])
    lines += markdown_table(header, body, "l" * (len(used) + 2) + "r" * len(metrics))
    if notes:
        lines += ["", notes.strip()]
    return "\n".join(lines) + "\n"


def _plain(x: object) -> str:
    return "-" if x is None else str(x)


# ----------------------------------------------------------------------------- files


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_results(
    name: str, rows: Iterable[ResultRow], *, protocol: str, command: str, out_dir: str | Path = "benchmarks/results",
    columns: Sequence[str] | None = None, title: str | None = None, notes: str = "",
    extra: Mapping[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Write ``out_dir/NAME.json`` and ``out_dir/NAME.md``; return (json path, md path).

    ``extra``: more top-level keys of the JSON after protocol, command and rows (a benchmark's per-seed
    records, its paired differences), what its ``--recompute`` reads back; they cannot replace those three.

    ``columns`` picks and orders the metric columns of the Markdown table (default: every metric, in
    order of first appearance); the JSON always holds every row. Two rows with the same method,
    dataset, optional keys and metric are an error.
    """
    if not name or Path(name).name != name or name.endswith((".json", ".md")):
        raise ValueError(f"results name {name!r} must be a plain file name without folder or extension, e.g. 'fusion_avdigits'")
    rows = list(rows)
    if not rows:
        raise ValueError(f"write_results({name!r}): no rows to write")
    seen: set[tuple[Any, ...]] = set()
    for r in rows:
        if (r.key(), r.metric) in seen:
            raise ValueError(f"write_results({name!r}): duplicate row {r.to_dict()}; give it a distinct variant or key")
        seen.add((r.key(), r.metric))
    md = render_markdown(rows, protocol=protocol, command=command, columns=columns, title=title, notes=notes, name=name)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc = {"protocol": protocol, "command": command, "rows": [r.to_dict() for r in rows]}
    clash = sorted(set(extra or {}) & set(doc))
    if clash:
        raise ValueError(f"write_results({name!r}): extra keys {clash} would replace the file's own; rename them")
    doc.update(extra or {})
    json_path, md_path = out / f"{name}.json", out / f"{name}.md"
    _write_atomic(json_path, json.dumps(doc, indent=2) + "\n")
    _write_atomic(md_path, md)
    return json_path, md_path


def read_results(path: str | Path) -> tuple[str, str, list[ResultRow]]:
    """Read a ``NAME.json`` results file back: (protocol, command, rows)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"results file {path} does not exist")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"results file {path} is not valid JSON: {e}") from None
    if not isinstance(doc, dict) or not {"protocol", "command", "rows"} <= doc.keys() or not isinstance(doc["rows"], list):
        raise ValueError(f"results file {path} must be an object with 'protocol', 'command' and a 'rows' list")
    rows = []
    for i, d in enumerate(doc["rows"]):
        missing = [k for k in ("method", "dataset", "metric", "values") if not isinstance(d, dict) or k not in d]
        if missing:
            raise ValueError(f"results file {path}: rows[{i}] lacks keys {missing}")
        rows.append(ResultRow(d["method"], d["dataset"], d["metric"], list(d["values"]), **{k: d.get(k) for k in OPTIONAL_KEYS}))
    return str(doc["protocol"]), str(doc["command"]), rows
