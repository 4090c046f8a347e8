"""``quantify(run)``: every number of the quantification report of one split of a trained run
(docs/quantify.md). :func:`polymodal.quantify.report.write_quantify_report` turns it into ``quantify.md``,
``quantify.html`` and PNG figures.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polymodal.quantify.complexity import Complexity, complexity
from polymodal.quantify.geometry import pca_2d, tsne_2d
from polymodal.quantify.interactions import Emap, PerceptualScore, emap, perceptual_score
from polymodal.quantify.pid import PID, Solver, discretize, kmeans, pid, synergy_floor
from polymodal.quantify.probe import Probe, QuantifyError
from polymodal.quantify.robustness import Curve, missing_curves, noise_curves
from polymodal.quantify.shapley import EXACT_LIMIT, ShapleyValues, all_subsets, deciding_shares, shapley
from polymodal.quantify.training import Imbalance, imbalance

SECTIONS = ("subsets", "shapley", "pid", "emap", "perceptual", "imbalance", "robustness", "complexity", "geometry")
"""The parts of the report, in order; ``quantify(..., sections=...)`` computes a subset of them."""


@dataclass
class Quantification:
    """The numbers of one split of one run. Values of the task's monitor are signed so that higher is better
    (``score``: the monitor, or ``-monitor`` for a metric where lower is better); subsets are keyed by their
    modalities joined with ``+`` (``""``: none, the constant prediction)."""

    run_dir: str
    split: str
    task: str
    monitor: str
    score: str
    modalities: list[str]
    n: int
    subsets: dict[str, dict[str, float | None]] = field(default_factory=dict)
    subset_scores: dict[str, float] = field(default_factory=dict)
    shapley: dict[str, Any] = field(default_factory=dict)
    sample_shapley: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    sample_value: str = ""
    deciding: dict[str, float] = field(default_factory=dict)
    pid: dict[str, dict[str, Any]] = field(default_factory=dict)
    emap: Emap | None = None
    perceptual: PerceptualScore | None = None
    imbalance: Imbalance | None = None
    noise: dict[str, Curve] = field(default_factory=dict)
    missing: dict[str, Curve] = field(default_factory=dict)
    complexity: Complexity | None = None
    projections: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The numbers as JSON-able data (per-sample arrays and projections left out; they are in the
        per-sample file and the figures)."""
        out = {k: v for k, v in asdict(self).items() if k not in ("sample_shapley", "projections")}
        out["noise"] = {m: {**asdict(c), "relative": c.relative, "effective": c.effective} for m, c in self.noise.items()}
        out["missing"] = {m: {**asdict(c), "relative": c.relative} for m, c in self.missing.items()}
        out["sample_shapley_mean"] = {m: float(np.mean(v)) for m, v in self.sample_shapley.items()}
        return _jsonable(out)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def subset_key(s: frozenset[str] | set[str] | list[str], order: list[str]) -> str:
    """``audio+image`` for a subset, in the model's modality order (``""`` for the empty one)."""
    return "+".join(m for m in order if m in s)


def _open(run: Any) -> Any:
    """A :class:`~polymodal.engine.runfolder.Run` from a run or a path, with clear errors for a folder that is
    not a finished run of this version."""
    import polymodal
    from polymodal.engine.runfolder import load_run
    from polymodal.runpaths import RunPaths

    if isinstance(run, str | os.PathLike):
        run = load_run(run)
    paths = RunPaths(run.run_dir)
    if not paths.config.is_file():
        raise QuantifyError(f"{paths.config} is missing: {run.run_dir} is not a run folder written by "
                            f"`polymodal train` (or it was removed); quantify needs the config to rebuild the model")
    if not paths.model("best").is_file():
        raise QuantifyError(f"{paths.model('best')} is missing: the run has no best checkpoint (an unfinished run, "
                            f"or a folder copied without checkpoints/); train it to the end or copy the checkpoints")
    version = (run.provenance.get("versions") or {}).get("polymodal")
    if version is not None and version != polymodal.__version__:
        run.notes.append(f"written by polymodal {version}; quantified with {polymodal.__version__}.")
    return run


def _trained(run: Any) -> None:
    """Load the run's model now, turning a checkpoint of another layout into a clear message."""
    import polymodal

    try:
        run.trained()
    except (RuntimeError, KeyError, ValueError) as e:
        version = (run.provenance.get("versions") or {}).get("polymodal", "an unknown version")
        raise QuantifyError(f"the checkpoint of {run.run_dir} does not fit the model its config.yaml describes "
                            f"under polymodal {polymodal.__version__} (the run was written by polymodal {version}): "
                            f"{e}. Quantify it with the version that trained it, or train it again") from None


def quantify(run: Any, split: str = "test", *, sections: tuple[str, ...] | list[str] = SECTIONS,
             levels: int = 5, pid_clusters: int = 10, label_levels: int = 20, emap_partners: int = 256,
             permutations: int = 200, perceptual_permutations: int = 5, solver: Solver = "mirror",
             seed: int = 0, batch_size: int | None = None, threads: int | None = None) -> Quantification:
    """Quantify ``split`` of a trained run (a run folder or a :class:`~polymodal.engine.runfolder.Run`).

    sections:       which parts to compute (:data:`SECTIONS`)
    levels:         noise levels and missing rates of the robustness curves (from 0 to 1)
    pid_clusters:   k of the k-means discretisation of each modality's representation (PID)
    label_levels:   labels with more distinct values are binned into this many for PID
    emap_partners:  partner samples of the EMAP expectations (all of them when the split is no larger)
    permutations:   random orders of the Monte-Carlo Shapley estimate (more than 8 modalities)
    perceptual_permutations: permutations averaged by the perceptual score
    solver:         the PID solver: "mirror" (built in) or "cvxpy" (the optional extra ``polymodal[quantify]``)
    threads:        ``torch.set_num_threads`` for the passes (default: the run's ``trainer.num_threads``, else
                    torch's own)
    """
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise ValueError(f"unknown sections {unknown}; expected some of {', '.join(SECTIONS)}")
    run = _open(run)
    threads = threads if threads is not None else (run.config.get("trainer") or {}).get("num_threads")
    if threads is not None:
        torch.set_num_threads(int(threads))
    _trained(run)
    t0 = time.perf_counter()
    probe = Probe.from_run(run, split, batch_size=batch_size)
    task = probe.task
    names = probe.modalities
    q = Quantification(run_dir=str(run.run_dir), split=split, task=task.name, monitor=task.monitor,
                       score=task.monitor if task.mode == "max" else f"-{task.monitor}", modalities=names, n=probe.n,
                       notes=list(run.notes), settings=dict(levels=levels, pid_clusters=pid_clusters,
                       label_levels=label_levels, emap_partners=emap_partners, permutations=permutations,
                       perceptual_permutations=perceptual_permutations, solver=solver, seed=seed))
    q.seconds["encode"] = time.perf_counter() - t0
    logits: dict[frozenset[str], torch.Tensor] = {}

    def subset_logits(s: frozenset[str]) -> torch.Tensor:
        if s not in logits:
            logits[s] = probe.logits(s) if s else probe.constant.expand(probe.n, -1).clone()
        return logits[s]

    if "subsets" in sections or "shapley" in sections:
        t = time.perf_counter()
        subsets = all_subsets(names) if len(names) <= EXACT_LIMIT else (
            [frozenset(), *(frozenset([m]) for m in names), frozenset(names)])
        for s in subsets:
            out = subset_logits(s)
            q.subsets[subset_key(s, names)] = probe.metrics(out)
            q.subset_scores[subset_key(s, names)] = probe.score(out)
        q.seconds["subsets"] = time.perf_counter() - t
    if "shapley" in sections:
        t = time.perf_counter()
        sv = shapley(names, lambda s: probe.score(subset_logits(s)), permutations=permutations, seed=seed)
        q.shapley = {"method": sv.method, "phi": sv.phi, "stderr": sv.stderr, "permutations": sv.permutations,
                     "sum": float(sv.total()),
                     "full_minus_empty": probe.score(subset_logits(frozenset(names))) - probe.score(subset_logits(frozenset()))}
        if probe.sample_values(subset_logits(frozenset(names))) is not None:
            per: ShapleyValues = shapley(names, lambda s: probe.sample_values(subset_logits(s)),
                                         permutations=permutations, seed=seed)
            order = probe.order.numpy()
            q.sample_shapley = {m: np.asarray(v)[order] for m, v in per.phi.items()}  # dataset order
            q.sample_value = "minus the task's per-sample loss (for classification the log-probability of the true class)"
            q.deciding = deciding_shares(q.sample_shapley)
        else:
            q.notes.append(f"task {task.name!r} has no per-sample loss: no per-sample Shapley values.")
        q.seconds["shapley"] = time.perf_counter() - t
    if "pid" in sections or "geometry" in sections:
        y = discretize(probe.label.cpu().numpy(), label_levels, seed=seed)  # (N,) in the probe's order
    if "pid" in sections:
        t = time.perf_counter()
        codes = {m: kmeans(probe.pooled(m)[probe.present[m].numpy()], pid_clusters, seed=seed) for m in names}
        for a, b in combinations(names, 2):
            both = (probe.present[a] & probe.present[b]).numpy()
            ca = np.full(probe.n, -1)
            cb = np.full(probe.n, -1)
            ca[probe.present[a].numpy()] = codes[a]
            cb[probe.present[b].numpy()] = codes[b]
            if both.sum() < 2:
                q.notes.append(f"PID {a}, {b}: fewer than 2 samples hold both; left out.")
                continue
            res: PID = pid(ca[both], cb[both], y[both], solver=solver)
            floor = synergy_floor(ca[both], cb[both], y[both], res.mi_q, seed=seed)
            q.pid[f"{a}+{b}"] = {**res.as_dict(), "synergy_floor": floor,
                                 "clusters": [int(ca[both].max() + 1), int(cb[both].max() + 1)],
                                 "label_levels": int(y.max() + 1), "n": int(both.sum())}
        q.seconds["pid"] = time.perf_counter() - t
    if "emap" in sections and len(names) > 1:
        t = time.perf_counter()
        q.emap = emap(probe, partners=emap_partners, seed=seed)
        q.seconds["emap"] = time.perf_counter() - t
    if "perceptual" in sections:
        t = time.perf_counter()
        q.perceptual = perceptual_score(probe, permutations=perceptual_permutations, seed=seed)
        q.seconds["perceptual"] = time.perf_counter() - t
    if "imbalance" in sections:
        q.imbalance = imbalance(run.records, names, task.log_suffix)
        if q.imbalance.empty:
            q.notes.append("the run's metrics log has no per-modality validation metric or gradient norm per epoch.")
    if "robustness" in sections:
        t = time.perf_counter()
        q.noise = noise_curves(probe, levels, seed)
        q.missing = missing_curves(probe, levels, seed)
        q.seconds["robustness"] = time.perf_counter() - t
    if "complexity" in sections:
        t = time.perf_counter()
        ds = probe.dataset
        batch = ds.collate_fn()([ds[i] for i in range(min(len(ds), probe.batch_size))])
        q.complexity = complexity(probe.model, probe.strategy, batch)
        q.seconds["complexity"] = time.perf_counter() - t
    if "geometry" in sections:
        t = time.perf_counter()
        for m in names:
            rows = probe.present[m].numpy()
            x = probe.pooled(m)[rows]
            q.projections[m] = {"labels": y[rows], "pca": pca_2d(x)}
            ts = tsne_2d(x, seed)
            if ts is not None:
                q.projections[m]["tsne"], q.projections[m]["tsne_labels"] = ts[0], y[rows][ts[1]]
        if "tsne" not in next(iter(q.projections.values()), {}):
            q.notes.append("t-SNE projections need scikit-learn; only PCA is shown.")
        q.seconds["geometry"] = time.perf_counter() - t
    q.seconds["total"] = time.perf_counter() - t0
    q._probe = probe  # type: ignore[attr-defined]  (kept for the per-sample file; not part of the numbers)
    return q


def quantify_run(run_dir: str | os.PathLike, split: str = "test", **kwargs: Any) -> tuple[Quantification, Path]:
    """:func:`quantify` and :func:`~polymodal.quantify.report.write_quantify_report`: the numbers and the path
    of ``quantify.md``."""
    from polymodal.quantify.report import write_quantify_report

    q = quantify(run_dir, split, **kwargs)
    return q, write_quantify_report(q)


__all__ = ["SECTIONS", "Quantification", "quantify", "quantify_run", "subset_key"]
