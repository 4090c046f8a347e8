"""Concept-level explanations, interventions and the alignment of latent concepts.

    outs = concept_outputs(model, dataset)          # every row's concept probabilities, logits, labels
    explain(model, dataset)                         # a table: prediction, each concept's value and probability
    intervene(model, batch, {"audio.concept": 3})   # new label logits with a concept set by hand
    intervention_accuracy(model, outs, true, [0, 0.1, 0.3])   # correct the least confident concepts first
    intervention_accuracy(model, outs, true, [0, 0.1, 0.3], order="random", seed=0)  # ... or random ones

Latent concepts learned from the label alone are identified only up to the rule's symmetries. For a
sum mod n the two modalities' concepts can shift cyclically (a -> a + c, b -> b - c leaves every sum
unchanged): :func:`best_shift` picks the c that agrees best with the true digits (on validation);
for a learned relation, :func:`best_permutation` matches each concept's values to the true ones
(Hungarian matching on the confusion matrix) and :func:`table_agreement` compares the learned table
with the true one under those permutations.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from polymodal.data.batch import Batch
from polymodal.reasoning.fusion import safe_log
from polymodal.reasoning.strategy import concept_fusion
from polymodal.strategies.base import unwrap


@dataclass
class ConceptOutputs:
    """One split's outputs. Arrays are indexed like the dataset's rows."""

    probs: dict[str, np.ndarray]  # concept key -> (N, V) probabilities (rows of absent modalities: unused)
    present: dict[str, np.ndarray]  # modality -> (N,) bool
    logits: np.ndarray  # (N, C) label logits
    label: np.ndarray  # (N,) int64
    concept_logits: dict[str, np.ndarray] | None = None  # concept key -> (N, V) logits (what the head reads)

    @property
    def accuracy(self) -> float:
        return float((self.logits.argmax(1) == self.label).mean())


def _batches(dataset: Any, batch_size: int):
    collate = dataset.collate_fn()
    for start in range(0, len(dataset), batch_size):
        yield collate([dataset[i] for i in range(start, min(len(dataset), start + batch_size))])


@torch.no_grad()
def concept_logits(model: torch.nn.Module, batch: Batch) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """(concept key -> logits (B, V), modality -> present (B,)) of one batch."""
    core = unwrap(model)
    fusion = concept_fusion(core, "concept explanations")
    present = {m: batch.present[m] for m in core.modalities}
    feats = {m: core.encode(m, batch.inputs[m], present[m]) for m in core.modalities}
    return fusion.concept_logits(feats, present), present


@torch.no_grad()
def concept_probs(model: torch.nn.Module, batch: Batch) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """(concept key -> probabilities (B, V), modality -> present (B,)) of one batch."""
    logits, present = concept_logits(model, batch)
    return {k: z.softmax(-1) for k, z in logits.items()}, present


@torch.no_grad()
def concept_outputs(model: torch.nn.Module, dataset: Any, batch_size: int = 256) -> ConceptOutputs:
    """Concept probabilities, presence, label logits and labels of every row of ``dataset`` (eval mode)."""
    core = unwrap(model)
    fusion = concept_fusion(core, "concept explanations")
    was = core.training
    core.eval()
    chunks: dict[str, list[Tensor]] = {}
    for batch in _batches(dataset, batch_size):
        zs, present = concept_logits(core, batch)
        rows = {f"p/{k}": z.softmax(-1) for k, z in zs.items()}
        rows.update({f"z/{k}": z for k, z in zs.items()})
        rows.update({f"m/{m}": p for m, p in present.items()})
        rows["logits"] = fusion.label_logits(zs, present)
        rows["label"] = batch.label
        for k, v in rows.items():
            chunks.setdefault(k, []).append(v.detach().cpu())
    core.train(was)
    cat = {k: torch.cat(v).numpy() for k, v in chunks.items()}
    return ConceptOutputs(
        probs={k[2:]: v for k, v in cat.items() if k.startswith("p/")},
        present={k[2:]: v.astype(bool) for k, v in cat.items() if k.startswith("m/")},
        logits=cat["logits"],
        label=cat["label"].astype(np.int64),
        concept_logits={k[2:]: v for k, v in cat.items() if k.startswith("z/")},
    )


def explain(model: torch.nn.Module, dataset: Any, batch_size: int = 256) -> Any:
    """A pandas DataFrame, one row per sample: ``index``, ``label``, ``prediction``, ``prob`` (of the
    prediction) and for each concept ``<key>`` (its most likely value; empty where the modality is
    absent) and ``<key>_prob`` (that value's probability)."""
    import pandas as pd

    core = unwrap(model)
    fusion = concept_fusion(core, "concept explanations")
    outs = concept_outputs(core, dataset, batch_size)
    p = torch.from_numpy(outs.logits).softmax(-1).numpy()
    cols: dict[str, Any] = {
        "index": np.arange(len(outs.label)),
        "label": outs.label,
        "prediction": p.argmax(1),
        "prob": p.max(1),
    }
    for c in fusion.concepts:
        q = outs.probs[c.key]
        here = outs.present[c.modality]
        cols[c.key] = pd.array(np.where(here, q.argmax(1), 0), dtype="Int64")
        cols[c.key][~here] = pd.NA
        cols[f"{c.key}_prob"] = np.where(here, q.max(1), np.nan)
    return pd.DataFrame(cols)


def _set(logits: dict[str, Tensor], key: str, value: int | Tensor, rows: int) -> Tensor:
    """The concept's logits with the rows given a value (>= 0) set to that value for certain: 0 there,
    -inf elsewhere (softmax: a one-hot; log_softmax: log of it)."""
    z = logits[key]
    v = torch.as_tensor(value, device=z.device).long()
    if v.dim() == 0:
        v = v.expand(rows)
    if v.shape != (rows,):
        raise ValueError(f"intervention on {key!r}: values of shape {tuple(v.shape)}; expected an int or ({rows},)")
    if (v >= z.shape[1]).any():
        raise ValueError(f"intervention on {key!r}: value {int(v.max())} out of range; the concept has {z.shape[1]} values")
    onehot = F.one_hot(v.clamp_min(0), z.shape[1]).bool()
    certain = torch.where(onehot, torch.zeros((), dtype=z.dtype, device=z.device),
                          torch.full((), -math.inf, dtype=z.dtype, device=z.device))
    return torch.where((v >= 0)[:, None], certain, z)


def resolve_key(fusion: Any, key: str) -> str:
    """A concept key from ``"<modality>.<name>"`` or a modality that has exactly one concept."""
    if key in fusion.keys:
        return key
    mine = [c.key for c in fusion.concepts if c.modality == key]
    if len(mine) == 1:
        return mine[0]
    raise ValueError(f"unknown concept {key!r}; the model's concepts are {fusion.keys} (a modality names its concept when it has one)")


@torch.no_grad()
def intervene(model: torch.nn.Module, batch: Batch, corrections: Mapping[str, int | Tensor]) -> Tensor:
    """Label logits (B, C) after setting concepts by hand.

    corrections: concept key (or modality with one concept) -> an int (every row) or a LongTensor (B,)
    of values, -1 = leave that row's concept as predicted. The corrected concept counts as observed
    even where its modality is absent.
    """
    core = unwrap(model)
    fusion = concept_fusion(core, "intervene")
    was = core.training
    core.eval()
    logits, present = concept_logits(core, batch)
    present = dict(present)
    for key, value in corrections.items():
        k = resolve_key(fusion, key)
        logits[k] = _set(logits, k, value, batch.label.shape[0])
        mod = k.split(".", 1)[0]
        changed = torch.as_tensor(value, device=batch.label.device).long().expand(batch.label.shape[0]) >= 0
        present[mod] = present[mod] | changed
    out = fusion.label_logits(logits, present)
    core.train(was)
    return out


ORDERS = ("uncertainty", "random")


@torch.no_grad()
def intervention_accuracy(
    model: torch.nn.Module,
    outs: ConceptOutputs,
    true: Mapping[str, np.ndarray],
    fractions: Sequence[float],
    order: str = "uncertainty",
    seed: int = 0,
) -> dict[float, float]:
    """Accuracy when a fraction f of the (sample, concept) slots are set to their ``true`` value.

    true:  concept key -> (N,) values in the model's (aligned) latent coordinates.
    order: which slots are corrected first, among the present slots of the concepts in ``true``:
           "uncertainty" (default): the least confident first (uncertainty-guided: ranked by the
           probability of the slot's most likely value); "random": a random order drawn with ``seed``
           (the baseline of Koh et al., ICML 2020). A curve for each fraction uses the same order, so
           the slots corrected at f are among those corrected at any larger f.
    """
    if order not in ORDERS:
        raise ValueError(f"intervention order {order!r}: expected one of {ORDERS}")
    fusion = concept_fusion(model, "intervention_accuracy")
    keys = [resolve_key(fusion, k) for k in true]
    mod = {c.key: c.modality for c in fusion.concepts}
    n = len(outs.label)
    for k in keys:
        if np.shape(true[k]) != (n,):
            raise ValueError(f"intervention_accuracy: true values of {k!r} have shape {np.shape(true[k])}; expected ({n},), one per row")
    slots_present = np.concatenate([outs.present[mod[k]] for k in keys])
    n_slots = int(slots_present.sum())
    if order == "uncertainty":
        conf = np.concatenate([np.where(outs.present[mod[k]], outs.probs[k].max(1), np.inf) for k in keys])
        ranked = np.argsort(conf, kind="stable")
    else:
        ranked = np.random.default_rng(seed).permutation(np.flatnonzero(slots_present))
    dtype = next(fusion.parameters()).dtype  # every concept fusion has its concept heads
    present = {m: torch.from_numpy(v) for m, v in outs.present.items()}
    if outs.concept_logits is not None:
        base = {k: torch.from_numpy(v).to(dtype) for k, v in outs.concept_logits.items()}
    else:  # outputs made without concept logits: the log-probabilities serve (same softmax)
        base = {k: safe_log(torch.from_numpy(v).to(dtype)) for k, v in outs.probs.items()}
    result = {}
    for f in fractions:
        if not 0.0 <= f <= 1.0:
            raise ValueError(f"intervention fraction {f}: expected a number in [0, 1]")
        pick = ranked[: int(round(f * n_slots))]
        logits = dict(base)
        for j, k in enumerate(keys):
            rows = pick[(pick >= j * n) & (pick < (j + 1) * n)] - j * n
            values = torch.full((n,), -1, dtype=torch.long)
            values[torch.from_numpy(rows)] = torch.from_numpy(np.asarray(true[k])[rows]).long()
            logits[k] = _set(logits, k, values, n)
        out = fusion.label_logits(logits, present).numpy()
        result[float(f)] = float((out.argmax(1) == outs.label).mean())
    return result


def best_shift(pred_a: np.ndarray, true_a: np.ndarray, pred_b: np.ndarray, true_b: np.ndarray, n: int = 10) -> int:
    """The shift c that maximises agreement of (pred_a, pred_b) with (true_a + c, true_b - c) mod n."""
    scores = [np.mean(pred_a == (true_a + c) % n) + np.mean(pred_b == (true_b - c) % n) for c in range(n)]
    return int(np.argmax(scores))


def best_permutation(pred: np.ndarray, true: np.ndarray, n: int) -> np.ndarray:
    """perm (n,) with perm[true value] = latent value, maximising agreement (Hungarian matching)."""
    from scipy.optimize import linear_sum_assignment

    confusion = np.zeros((n, n))
    np.add.at(confusion, (np.asarray(true), np.asarray(pred)), 1)
    rows, cols = linear_sum_assignment(-confusion)
    perm = np.empty(n, dtype=np.int64)
    perm[rows] = cols
    return perm


def table_agreement(learned: Tensor, true: Tensor, perms: Sequence[np.ndarray]) -> float:
    """Fraction of concept combinations v (true coordinates) whose learned class, read at the latent
    combination (perm_1[v_1], ..., perm_k[v_k]), equals the true class. learned, true: (V_1..V_k, C)."""
    t = true.argmax(-1)
    latent = learned.argmax(-1)
    for axis, perm in enumerate(perms):
        latent = latent.index_select(axis, torch.as_tensor(perm))
    return float((latent == t).float().mean())


def load_model(run_dir: str | Path, splits: Sequence[str] = ("val", "test"), checkpoint: str = "best") -> tuple[Any, dict[str, Any]]:
    """(model in eval mode, split -> dataset) of a finished run folder, with its ``checkpoint`` loaded:
    :meth:`polymodal.engine.runfolder.Run.model` and :meth:`~polymodal.engine.runfolder.Run.datasets` of the
    one run reader, :func:`polymodal.load_run`."""
    from polymodal.engine.runfolder import load_run as read_run

    run = read_run(run_dir)
    model = run.model(checkpoint)
    return model, run.datasets(["train", *[s for s in splits if s != "train"]])


load_run = load_model  # the name scripts and docs/reasoning.md use for (model, datasets); see polymodal.load_run


__all__ = [
    "ORDERS",
    "ConceptOutputs",
    "best_permutation",
    "best_shift",
    "concept_logits",
    "concept_outputs",
    "concept_probs",
    "explain",
    "intervene",
    "intervention_accuracy",
    "load_model",
    "load_run",
    "resolve_key",
    "table_agreement",
]
