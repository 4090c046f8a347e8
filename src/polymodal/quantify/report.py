"""The quantification report: ``quantify.md``, ``quantify.html`` (the same content, figures inlined), the PNG
figures in ``quantify_figures/``, the numbers in ``quantify.json`` and the per-sample Shapley values in
``quantify_<split>.npz`` (a predictions file whose extras are ``shapley.<modality>``), all in the run folder.

The report is a list of blocks (headings, paragraphs, tables, figures) rendered twice, so the Markdown and
the HTML always say the same.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from polymodal.quantify.core import Quantification
from polymodal.report.escape import md_text
from polymodal.report.table import markdown_table, num
from polymodal.runpaths import RunPaths


@dataclass
class Block:
    kind: str  # "h2", "p", "table", "figure"
    text: str = ""
    header: list[str] | None = None
    rows: list[list[str]] | None = None
    path: Path | None = None


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def _f(x: Any, fmt: str = ".4f") -> str:
    """A number as ``num`` writes it, without a minus sign on a value that rounds to zero."""
    text = num(x, fmt)
    return text[1:] if text.startswith("-") and float(text) == 0 else text


# -- figures ---------------------------------------------------------------------------------------------
def _fig_subsets(q: Quantification, path: Path) -> Path:
    keys = list(q.subset_scores)
    fig = Figure(figsize=(max(4.0, 0.6 * len(keys) + 2), 3.2))
    ax = fig.add_subplot()
    ax.bar(range(len(keys)), [q.subset_scores[k] for k in keys], color="#4c72b0")
    ax.set_xticks(range(len(keys)), [k or "(none)" for k in keys], rotation=30, ha="right")
    ax.set_ylabel(q.score)
    ax.set_title(f"{q.split}: every subset of modalities")
    return _save(fig, path)


def _fig_shapley(q: Quantification, path: Path) -> Path:
    names = q.modalities
    fig = Figure(figsize=(8.5, 3.2))
    ax = fig.add_subplot(1, 2, 1)
    ax.bar(names, [q.shapley["phi"][m] for m in names], yerr=[q.shapley["stderr"][m] for m in names],
           color="#55a868", capsize=3)
    ax.set_ylabel(f"Shapley value ({q.score})")
    ax.set_title(f"dataset level ({q.shapley['method']})")
    ax2 = fig.add_subplot(1, 2, 2)
    for m in names:
        if m in q.sample_shapley:
            ax2.hist(q.sample_shapley[m], bins=40, alpha=0.55, label=m)
    ax2.set_xlabel("per-sample Shapley value")
    ax2.set_ylabel("samples")
    ax2.set_title("per sample")
    if q.sample_shapley:
        ax2.legend(fontsize=8)
    return _save(fig, path)


def _fig_pid(q: Quantification, path: Path) -> Path:
    pairs = list(q.pid)
    fig = Figure(figsize=(max(4.0, 1.3 * len(pairs) + 2.5), 3.2))
    ax = fig.add_subplot()
    bottom = np.zeros(len(pairs))
    for key, label, colour in (("redundancy", "redundancy", "#4c72b0"), ("unique1", "unique (first)", "#55a868"),
                               ("unique2", "unique (second)", "#8172b2"), ("synergy", "synergy", "#c44e52")):
        vals = np.array([q.pid[p][key] for p in pairs])
        ax.bar(pairs, vals, bottom=bottom, label=label, color=colour)
        bottom += vals
    ax.set_ylabel("bits")
    ax.set_title("partial information decomposition of the label")
    ax.legend(fontsize=8)
    return _save(fig, path)


def _fig_imbalance(q: Quantification, path: Path) -> Path:
    imb = q.imbalance
    if imb is None:
        raise ValueError("the imbalance figure needs the run's logged per-modality curves; this quantification has none")
    fig = Figure(figsize=(8.5, 3.2))
    ax = fig.add_subplot(1, 2, 1)
    for m, vals in imb.unimodal.items():
        xs = [e for e, v in zip(imb.epochs, vals, strict=True) if v is not None]
        ax.plot(xs, [v for v in vals if v is not None], marker="o", ms=3, label=m)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"val {imb.metric}, modality alone")
    ax.set_title("unimodal validation metric")
    if imb.unimodal:
        ax.legend(fontsize=8)
    ax2 = fig.add_subplot(1, 2, 2)
    for m, vals in imb.grad_ratio.items():
        xs = [e for e, v in zip(imb.epochs, vals, strict=True) if v is not None]
        ax2.plot(xs, [v for v in vals if v is not None], marker="o", ms=3, label=m)
    ax2.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("grad norm / mean over modalities")
    ax2.set_title("gradient-norm ratio")
    if imb.grad_ratio:
        ax2.legend(fontsize=8)
    return _save(fig, path)


def _fig_robustness(q: Quantification, path: Path) -> Path:
    fig = Figure(figsize=(8.5, 3.2))
    ax = fig.add_subplot(1, 2, 1)
    for m, c in q.noise.items():
        line = ax.plot(c.levels, c.values, marker="o", ms=3, label=f"{m} noisy")[0]
        if c.baseline:
            ax.plot(c.levels, c.baseline, ls="--", color=line.get_color(), label=f"{m} noisy, late fusion of branches")
    ax.set_xlabel("noise level t")
    ax.set_ylabel(q.score)
    ax.set_title("noise")
    ax.legend(fontsize=7)
    ax2 = fig.add_subplot(1, 2, 2)
    for m, c in q.missing.items():
        ax2.plot(c.levels, c.values, marker="o", ms=3, label=f"{m} missing")
    ax2.set_xlabel("missing rate")
    ax2.set_ylabel(q.score)
    ax2.set_title("missing")
    ax2.legend(fontsize=7)
    return _save(fig, path)


def _fig_geometry(q: Quantification, path: Path) -> Path:
    kinds = [k for k in ("pca", "tsne") if any(k in p for p in q.projections.values())]
    names = list(q.projections)
    fig = Figure(figsize=(3.2 * len(names), 3.0 * len(kinds)))
    for r, kind in enumerate(kinds):
        for c, m in enumerate(names):
            ax = fig.add_subplot(len(kinds), len(names), r * len(names) + c + 1)
            proj = q.projections[m].get(kind)
            if proj is None:
                continue
            labels = q.projections[m]["labels" if kind == "pca" else "tsne_labels"]
            ax.scatter(proj[:, 0], proj[:, 1], c=labels, cmap="tab10", s=6)
            ax.set_title(f"{m}: {kind.upper() if kind == 'pca' else 't-SNE'}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    return _save(fig, path)


# -- blocks ------------------------------------------------------------------------------------------------
def blocks(q: Quantification, fig_dir: Path) -> list[Block]:
    """The report's content; figures are written into ``fig_dir``."""
    out: list[Block] = [Block("p", f"Run `{md_text(Path(q.run_dir).name)}`, split `{q.split}` ({q.n} samples), task "
                                   f"{md_text(q.task)}; modalities {', '.join(q.modalities)}. Scores are the task's "
                                   f"monitor `{q.score}` (higher is better). docs/quantify.md defines every number.")]
    for note in q.notes:
        out.append(Block("p", f"Note: {md_text(note)}"))
    if q.subsets:
        metrics = [k for k in next(iter(q.subsets.values())) if k != "n"]
        out.append(Block("h2", "Every subset of modalities"))
        out.append(Block("p", "Each subset is evaluated through the presence mask (the other modalities marked absent; "
                              "the model's own missing-modality path). The empty subset is the constant prediction "
                              "(the mean of the full model's outputs)."))
        out.append(Block("table", header=["modalities", *metrics],
                         rows=[[k or "(none)", *(_f(v.get(m)) for m in metrics)] for k, v in q.subsets.items()]))
        out.append(Block("figure", "Score of every subset", path=_fig_subsets(q, fig_dir / "subsets.png")))
    if q.shapley:
        sv = q.shapley
        out.append(Block("h2", "Contribution: Shapley values"))
        rows = [[m, _f(sv["phi"][m]), _f(sv["stderr"][m]),
                 _f(float(np.mean(q.sample_shapley[m]))) if m in q.sample_shapley else "n/a",
                 _f(q.deciding.get(m), ".3f") if q.deciding else "n/a"] for m in q.modalities]
        out.append(Block("p", f"Dataset-level values over subsets of modalities ({sv['method']}"
                              + (f", {sv['permutations']} random orders" if sv["method"] != "exact" else "")
                              + f"); they sum to {_f(sv['sum'])}, the full model's score minus the empty subset's "
                              f"({_f(sv['full_minus_empty'])}). Per-sample values are those of {q.sample_value or 'n/a'}; "
                              "a modality *decides* a sample when its per-sample value is the largest."))
        if q.deciding:
            out.append(Block("p", f"Samples with a tie for the largest value: {_f(q.deciding.get('none'), '.3f')}."))
        out.append(Block("table", header=["modality", "Shapley value", "std. error", "mean per-sample value",
                                          "share of samples it decides"], rows=rows))
        out.append(Block("figure", "Shapley values (dataset level and per sample)",
                         path=_fig_shapley(q, fig_dir / "shapley.png")))
    if q.pid:
        out.append(Block("h2", "Interactions: partial information decomposition"))
        out.append(Block("p", "CVX estimator of Liang et al. (NeurIPS 2023): each modality's representation clustered "
                              f"with k-means (k = {q.settings.get('pid_clusters')}), the labels as they are (binned "
                              "beyond the label levels); redundancy, uniqueness and synergy of the label information, "
                              "in bits. Plug-in estimates: with few samples per cell they are biased upwards, synergy "
                              "most. *Synergy floor*: the synergy estimated after shuffling the second modality among "
                              "the samples of each label (conditionally independent: no synergy in the population), "
                              "i.e. the estimator's bias at this sample size; synergy above it is evidence of "
                              "interaction."))
        rows = [[p, _f(d["redundancy"]), _f(d["unique1"]), _f(d["unique2"]), _f(d["synergy"]),
                 _f(d.get("synergy_floor")), _f(d["mi_joint"]),
                 f"{d['clusters'][0]} x {d['clusters'][1]} x {d['label_levels']}", str(d["n"])] for p, d in q.pid.items()]
        out.append(Block("table", header=["pair", "redundancy", "unique (first)", "unique (second)", "synergy",
                                          "synergy floor", "I(X1,X2;Y)", "cells", "samples"], rows=rows))
        out.append(Block("figure", "PID per pair of modalities", path=_fig_pid(q, fig_dir / "pid.png")))
    if q.emap is not None or q.perceptual is not None:
        out.append(Block("h2", "Interactions: EMAP and perceptual score"))
    if q.emap is not None:
        e = q.emap
        keys = [k for k in e.model if k != "n"]
        out.append(Block("p", f"EMAP (Hessel & Lee, 2020): the model's outputs projected onto sums of one-modality "
                              f"functions ({e.partners} partner samples). The gap in `{q.score}` is what cross-modal "
                              f"interactions add: {_f(e.gap)}."))
        out.append(Block("table", header=["", *keys], rows=[["model", *(_f(e.model.get(k)) for k in keys)],
                                                            ["EMAP projection", *(_f(e.projection.get(k)) for k in keys)]]))
    if q.perceptual is not None:
        p = q.perceptual
        out.append(Block("p", f"Perceptual score (Gat et al., 2021): `{q.score}` lost when the modality is permuted "
                              f"across the split (mean of {p.permutations} permutations), and divided by the model's."))
        out.append(Block("table", header=["modality", "score lost", "std", "normalised"],
                         rows=[[m, _f(p.drop[m]), _f(p.std[m]), _f(p.normalised[m])] for m in p.drop]))
    if q.imbalance is not None and not q.imbalance.empty:
        out.append(Block("h2", "Imbalance over training"))
        out.append(Block("p", "From the run's metrics log: each modality's validation metric alone per epoch, and its "
                              "encoder's gradient norm divided by the mean over modalities (1: balanced)."))
        out.append(Block("figure", "Unimodal validation metric and gradient-norm ratio per epoch",
                         path=_fig_imbalance(q, fig_dir / "imbalance.png")))
    if q.noise or q.missing:
        out.append(Block("h2", "Robustness"))
        out.append(Block("p", "Each modality corrupted alone (docs/quantify.md gives each kind's noise), and dropped "
                              "from a growing share of the samples. Relative robustness: area under the curve over "
                              "levels in [0, 1]; effective robustness: gain over the late fusion of the model's own "
                              "branches after offsetting the clean gap (MultiBench)."))
        rows = [[m, *(_f(v) for v in c.values), _f(c.relative), _f(c.effective)] for m, c in q.noise.items()]
        if q.noise:
            levels = next(iter(q.noise.values())).levels
            out.append(Block("table", header=["noisy modality", *(f"t={t:g}" for t in levels), "relative", "effective"],
                             rows=rows))
        if q.missing:
            levels = next(iter(q.missing.values())).levels
            out.append(Block("table", header=["missing modality", *(f"r={r:g}" for r in levels), "relative"],
                             rows=[[m, *(_f(v) for v in c.values), _f(c.relative)] for m, c in q.missing.items()]))
        out.append(Block("figure", "Robustness curves", path=_fig_robustness(q, fig_dir / "robustness.png")))
    if q.complexity is not None:
        c = q.complexity
        out.append(Block("h2", "Complexity"))
        out.append(Block("p", f"Inference on {c.device} with a batch of {c.batch_size}: "
                              f"{_f(c.flops_per_sample / 1e6 if c.flops_per_sample is not None else None, '.3f')} MFLOPs "
                              f"per sample, {c.latency_ms:.2f} ms per batch (median), peak tensor memory "
                              f"{c.peak_bytes / 2**20:.2f} MiB per batch."))
        out.append(Block("table", header=["component", "parameters"], rows=[[k, str(v)] for k, v in c.params.items()]))
    if q.projections:
        out.append(Block("h2", "Representation geometry"))
        out.append(Block("p", "Each modality's representation (its encoder's features), projected to 2-D, coloured by "
                              "label."))
        out.append(Block("figure", "Projections of each modality's representation",
                         path=_fig_geometry(q, fig_dir / "geometry.png")))
    return out


def render_markdown(title: str, content: list[Block], root: Path) -> str:
    lines = [f"# {title}", ""]
    for b in content:
        if b.kind == "h2":
            lines += [f"## {b.text}", ""]
        elif b.kind == "p":
            lines += [b.text, ""]
        elif b.kind == "table":
            lines += [*markdown_table(b.header or [], b.rows or []), ""]
        elif b.kind == "figure" and b.path is not None:
            lines += [f"![{b.text}]({b.path.relative_to(root).as_posix()})", ""]
    return "\n".join(lines)


def _inline(text: str) -> str:
    """Markdown text of a paragraph as HTML: escaped, code spans and emphasis kept."""
    import re

    s = html.escape(text.replace("&lt;", "<").replace("&amp;", "&"), quote=False)
    s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
    return re.sub(r"\*([^*]+)\*", r"<em>\1</em>", s)


def render_html(title: str, content: list[Block]) -> str:
    parts = ["<!doctype html>", "<html><head><meta charset='utf-8'>", f"<title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}"
             "td:first-child,th:first-child{text-align:left}img{max-width:100%}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    for b in content:
        if b.kind == "h2":
            parts.append(f"<h2>{html.escape(b.text)}</h2>")
        elif b.kind == "p":
            parts.append(f"<p>{_inline(b.text)}</p>")
        elif b.kind == "table":
            head = "".join(f"<th>{html.escape(h)}</th>" for h in b.header or [])
            body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in b.rows or [])
            parts.append(f"<table><tr>{head}</tr>{body}</table>")
        elif b.kind == "figure" and b.path is not None:
            data = base64.b64encode(b.path.read_bytes()).decode()
            parts.append(f"<figure><img alt='{html.escape(b.text)}' src='data:image/png;base64,{data}'>"
                         f"<figcaption>{html.escape(b.text)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_samples(q: Quantification, path: Path) -> Path | None:
    """The per-sample Shapley values as the extras (``shapley.<modality>``) of a predictions file of the full
    model's outputs (:func:`polymodal.tasks.write_predictions`)."""
    from polymodal.tasks import to_predictions, write_predictions

    probe = getattr(q, "_probe", None)
    if probe is None or not q.sample_shapley:
        return None
    order = probe.order.numpy()
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    extras = {f"shapley.{m}": v[inverse] for m, v in q.sample_shapley.items()}  # back to the probe's order
    out = probe.outputs(probe.logits(), extras)
    return write_predictions(to_predictions(out, tuple(getattr(probe.dataset, "class_names", ()) or ())), path)


def write_quantify_report(q: Quantification) -> Path:
    """Write ``quantify.md``, ``quantify.html``, ``quantify.json``, the figures and the per-sample file into the
    run folder; returns the Markdown file's path."""
    paths = RunPaths(q.run_dir)
    fig_dir = paths.quantify_figures
    fig_dir.mkdir(parents=True, exist_ok=True)
    title = f"Quantification of {Path(q.run_dir).name} ({q.split})"
    content = blocks(q, fig_dir)
    paths.quantify_report.write_text(render_markdown(title, content, paths.root))
    paths.quantify_html.write_text(render_html(title, content))
    paths.quantify_json.write_text(json.dumps(q.to_json(), indent=1))
    write_samples(q, paths.quantify_samples(q.split))
    return paths.quantify_report


__all__ = ["Block", "blocks", "render_html", "render_markdown", "write_quantify_report", "write_samples"]
