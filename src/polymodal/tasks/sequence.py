"""Sequence: a string of class tokens per sample (the digits of a spoken or written digit string), predicted
from per-frame emissions, trained with CTC and scored by edit distance (docs/align_translate.md).

Labels are (N, L) int64 token ids in ``0 .. K - 1``, padded after the string with ``PAD`` (-1). The model
gives per-frame emissions in the column ``emissions`` (B, T, K + 2): ``K + 1`` logits (the K tokens, then
the CTC blank, index K) and a last channel that is 1 on the frames that exist and 0 on padding frames (so
one tensor carries both; the loss never reads the logits of a padding frame). A model puts them in its
output's extras under ``sequence.emissions``.

Decoding is greedy (best frame-wise token, repeats merged, blanks removed). Metrics: ``error_rate``, the
token error rate (Levenshtein distance summed over the split / reference tokens summed; with a digit per
spoken word it is the word error rate, with a digit per written character the character error rate),
``string_accuracy`` (the whole string right) and ``loss`` (mean CTC, nats per string). The best epoch has the
lowest validation ``error_rate``. :func:`word_error_rate` and :func:`char_error_rate` score free text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from polymodal.report.table import markdown_table, num, pct
from polymodal.tasks.base import LOGITS, TASKS, Task
from polymodal.tasks.outputs import EvalOutputs, ModelOutput

PAD = -1
EMISSIONS = "emissions"
EXTRA = "sequence.emissions"


def edit_distance(ref: Sequence[Any], hyp: Sequence[Any]) -> int:
    """Levenshtein distance (substitutions, insertions, deletions, each 1) between two token sequences."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i]
        for j, h in enumerate(hyp, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h)))
        prev = cur
    return prev[-1]


def _rate(pairs: Sequence[tuple[Sequence[Any], Sequence[Any]]]) -> float:
    total = sum(len(r) for r, _ in pairs)
    if total == 0:
        raise ValueError("an error rate needs at least one reference token; every reference is empty")
    return sum(edit_distance(r, h) for r, h in pairs) / total


def word_error_rate(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Word error rate: word-level edit distance summed over the pairs / reference words summed."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    return _rate([(r.split(), h.split()) for r, h in zip(refs, hyps, strict=True)])


def char_error_rate(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Character error rate: character-level edit distance summed over the pairs / reference characters."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    return _rate([(list(r), list(h)) for r, h in zip(refs, hyps, strict=True)])


def greedy_decode(emissions: np.ndarray | Tensor) -> list[list[int]]:
    """Best path decoding of ``emissions`` (B, T, K + 2) (see the module docstring): per string, the argmax
    token of each existing frame, repeats merged, blanks (index K) removed."""
    e = emissions.detach().cpu().numpy() if isinstance(emissions, Tensor) else np.asarray(emissions)
    if e.ndim != 3 or e.shape[2] < 3:
        raise ValueError(f"emissions of shape {e.shape}; expected (B, T, K + 2) with K >= 1 tokens")
    blank = e.shape[2] - 2
    out = []
    for row in e:
        best = row[row[:, -1] > 0.5, :-1].argmax(axis=1)
        keep = np.ones(len(best), bool)
        keep[1:] = best[1:] != best[:-1]
        out.append([int(t) for t in best[keep] if t != blank])
    return out


def tokens(labels: np.ndarray) -> list[list[int]]:
    """The token lists of (N, L) labels padded with ``PAD``."""
    return [[int(t) for t in row if t != PAD] for row in np.asarray(labels)]


def pad_tokens(seqs: Sequence[Sequence[int]], width: int | None = None) -> np.ndarray:
    width = max([width or 0, *(len(s) for s in seqs), 1])
    out = np.full((len(seqs), width), PAD, dtype=np.int64)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return out


def ctc(emissions: Tensor, target: Tensor) -> Tensor:
    """Mean CTC loss of ``emissions`` (B, T, K + 2) against ``target`` (B, L) padded with ``PAD``: nats per
    string (a string longer than its frames allow costs 0, as ``zero_infinity`` says, rather than inf)."""
    logp = F.log_softmax(emissions[..., :-1].float(), dim=-1).transpose(0, 1)  # (T, B, K + 1)
    frames = (emissions[..., -1] > 0.5).sum(1).long()
    lengths = (target != PAD).sum(1).long()
    flat = target[target != PAD].long()
    return F.ctc_loss(logp, flat, frames, lengths, blank=emissions.shape[-1] - 2, reduction="none",
                      zero_infinity=True).mean()


@dataclass
class SequencePredictions:
    """One split's decoded strings: ``y_true`` and ``y_pred`` (N, L) token ids padded with ``PAD``,
    ``index`` (N,) dataset positions, ``loss`` the mean CTC of the split."""

    y_true: np.ndarray
    y_pred: np.ndarray
    index: np.ndarray | None = None
    loss: float | None = None
    class_names: tuple[str, ...] = ()
    task: ClassVar[str] = "sequence"
    per_modality: dict[str, np.ndarray] = field(default_factory=dict)
    extras: dict[str, np.ndarray] = field(default_factory=dict)


def sequence_summary(pred: SequencePredictions) -> dict[str, float | int | None]:
    refs, hyps = tokens(pred.y_true), tokens(pred.y_pred)
    return {"error_rate": _rate(list(zip(refs, hyps, strict=True))),
            "string_accuracy": float(np.mean([r == h for r, h in zip(refs, hyps, strict=True)])),
            "loss": pred.loss, "n": len(refs)}


@TASKS.register("sequence")
class SequenceTask(Task):
    """Token strings from per-frame emissions: CTC loss, greedy decoding, token (word / character) error
    rate and string accuracy; best epoch on the lowest validation error rate."""

    name = "sequence"
    monitor = "error_rate"
    mode = "min"
    log_suffix = "error_rate"
    label_dtype = np.int64
    capabilities = frozenset({LOGITS})
    results_intro = ("Token error rate (edit distance / reference tokens) and whole-string accuracy in %, greedy "
                     "CTC decoding; loss: CTC, nats per string.")

    def check_labels(self, labels: np.ndarray, num_outputs: int, where: str = "dataset") -> None:
        """(N, L) integers in ``0 .. num_outputs - 1``, padded after each string with ``PAD``; no empty string."""
        y = np.asarray(labels)
        if y.ndim != 2 or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"{where}: sequence labels of shape {y.shape} and dtype {y.dtype}; expected (N, L) "
                             f"integer token ids padded with {PAD}")
        if ((y < PAD) | (y >= num_outputs)).any():
            raise ValueError(f"{where}: sequence labels outside {PAD} .. {num_outputs - 1}")
        pad = y == PAD
        if (pad[:, :-1] & ~pad[:, 1:]).any() or pad[:, 0].any():
            raise ValueError(f"{where}: sequence labels must hold at least one token, padding ({PAD}) only at the end")

    def loss(self, output: Tensor | dict[str, Tensor], target: Tensor, *, rows: Tensor | None = None,
             class_weights: Tensor | None = None) -> Tensor:
        """Mean CTC of ``output`` (the emissions (B, T, K + 2), or a dict holding them as ``emissions``) on
        ``rows``."""
        if class_weights is not None:
            raise ValueError("class weights (data.class_weights) are not defined for the sequence task")
        e = output[EMISSIONS] if isinstance(output, Mapping) else output
        if e.ndim != 3:
            raise ValueError(f"the sequence loss takes per-frame emissions (B, T, K + 2); got shape {tuple(e.shape)} "
                             f"(one row per sample: this model gives no emissions; a sequence model puts them in "
                             f"its output's extras as {EXTRA!r})")
        if rows is not None and not bool(rows.any()):
            return e.sum() * 0.0
        if rows is not None:
            e, target = e[rows], target[rows]
        return ctc(e, target)

    def loss_input(self, output: ModelOutput) -> dict[str, Tensor]:
        """The emissions of the output's extras, as :meth:`loss` takes them (``{"emissions": (B, T, K + 2)}``)."""
        if EXTRA not in output.extras:
            raise ValueError(f"the sequence task trains on per-frame emissions in the model output's extras "
                             f"({EXTRA!r}); this model gives {sorted(output.extras) or 'none'}: use model.fusion=ctc")
        return {EMISSIONS: output.extras[EXTRA]}

    def batch_columns(self, output: ModelOutput) -> dict[str, Tensor]:
        """``emissions`` (B, T, K + 2) from the output's extras (``sequence.emissions``)."""
        if EXTRA not in output.extras:
            raise ValueError(f"the sequence task needs per-frame emissions in the model output's extras "
                             f"({EXTRA!r}); this model gives {sorted(output.extras) or 'none'}")
        return {EMISSIONS: output.extras[EXTRA].float()}

    def modalities_alone(self, names: Sequence[str]) -> list[str]:
        return []

    def predictions(self, out: EvalOutputs, class_names: Sequence[str] = ()) -> SequencePredictions:
        e = out.columns[EMISSIONS]
        hyp = pad_tokens(greedy_decode(e), np.asarray(out.label).shape[1])
        loss = float(ctc(torch.from_numpy(np.asarray(e)), torch.from_numpy(np.asarray(out.label))))
        return SequencePredictions(y_true=np.asarray(out.label), y_pred=hyp, index=out.index, loss=loss,
                                   class_names=tuple(class_names))

    def summarize(self, pred: SequencePredictions) -> dict[str, float | int | None]:
        return sequence_summary(pred)

    def metrics(self, out: EvalOutputs, modalities: list[str]) -> dict[str, float | None]:
        """``error_rate``, ``string_accuracy``, ``loss``, ``n``."""
        return sequence_summary(self.predictions(out))  # type: ignore[return-value]

    def prediction_columns(self, out: EvalOutputs, class_names: Sequence[str]) -> dict[str, np.ndarray]:
        """``prediction``: the decoded string of each row (token names joined when ``class_names`` are given)."""
        names = list(class_names)
        column = np.empty(len(out.index), dtype=object)
        column[:] = ["".join(names[t] if t < len(names) else str(t) for t in s)
                     for s in greedy_decode(out.columns[EMISSIONS])]
        return {"prediction": column}

    def example_outputs(self, n: int = 24, modalities: Sequence[str] = ("a", "b"), num_outputs: int = 3,
                        seed: int = 0) -> EvalOutputs:
        """Strings of 1-4 tokens of ``num_outputs`` and noisy emissions of 3 frames per token (the token on
        the first two, blank on the third), 2 padding frames; about a third of the frames' peaks moved."""
        rng = np.random.default_rng(seed)
        seqs = [list(rng.integers(0, num_outputs, rng.integers(1, 5))) for _ in range(n)]
        label = pad_tokens(seqs, 4)
        emissions = np.zeros((n, 14, num_outputs + 2), np.float32)
        for i, s in enumerate(seqs):
            path = [t for tok in s for t in (tok, tok, num_outputs)]
            emissions[i, np.arange(len(path)), path] = 3.0
            emissions[i, : len(path), -1] = 1.0
            emissions[i, : len(path), :-1] += rng.normal(0, 1.2, (len(path), num_outputs + 1))
        present = {m: np.ones(n, bool) for m in modalities}
        return EvalOutputs(index=np.arange(n, dtype=np.int64), label=label, logits=np.zeros((n, 0), np.float32),
                           per_modality={}, present=present, task=self.name, columns={EMISSIONS: emissions})

    def to_arrays(self, pred: SequencePredictions) -> dict[str, np.ndarray]:
        return {"y_true": np.asarray(pred.y_true), "y_pred": np.asarray(pred.y_pred),
                "loss": np.array(np.nan if pred.loss is None else pred.loss),
                "class_names": np.array(list(pred.class_names), dtype=str)}

    def from_arrays(self, arrays: Mapping[str, np.ndarray], path: Path) -> SequencePredictions:
        if "y_true" not in arrays or "y_pred" not in arrays:
            raise ValueError(f"predictions file {path} lacks y_true / y_pred; it holds {sorted(arrays)}")
        loss = float(arrays["loss"]) if "loss" in arrays and np.isfinite(arrays["loss"]) else None
        return SequencePredictions(y_true=arrays["y_true"], y_pred=arrays["y_pred"], index=arrays.get("index"),
                                   loss=loss, class_names=tuple(str(c) for c in arrays.get("class_names", [])))

    def results_table(self, results: dict[str, Any]) -> list[str]:
        val, test = results.get("val") or {}, results.get("test") or {}
        rows = [[key, pct(val.get(key)), pct(test.get(key))] for key in ("error_rate", "string_accuracy")]
        rows += [["loss (CTC, nats per string)", num(val.get("loss")), num(test.get("loss"))],
                 ["strings", num(val.get("n")), num(test.get("n"))]]
        return markdown_table(["metric", "val", "test"], rows)

    def report_section(self, pred: SequencePredictions, run_dir: Path) -> list[str]:
        """Test error rates and the first wrong transcriptions."""
        s = sequence_summary(pred)
        wrong = [(r, h) for r, h in zip(tokens(pred.y_true), tokens(pred.y_pred), strict=True) if r != h][:10]
        out = ["## Test transcriptions", "",
               f"{s['n']} test strings: token error rate {pct(s['error_rate'])} %, whole strings right "
               f"{pct(s['string_accuracy'])} % (greedy CTC decoding).", ""]
        if wrong:
            out += markdown_table(["reference", "decoded"], [[" ".join(map(str, r)), " ".join(map(str, h)) or "(empty)"]
                                                              for r, h in wrong]) + [""]
        return out

    def infer_from_metrics(self, splits: list[dict[str, Any]]) -> bool:
        return any("string_accuracy" in d for d in splits)


__all__ = ["EMISSIONS", "EXTRA", "PAD", "SequencePredictions", "SequenceTask", "char_error_rate", "ctc",
           "edit_distance", "greedy_decode", "pad_tokens", "sequence_summary", "tokens", "word_error_rate"]
