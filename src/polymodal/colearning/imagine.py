"""Missing-modality imagination (docs/colearning.md, "Imagination"): predict an absent modality's features
from the present ones instead of leaving its slot to the presence mask.

The ``imagine`` strategy trains the model as ``joint`` does (the task's loss on the fused output) and, beside
it, one translator per ordered pair of modalities (s -> d: an MLP from s's pooled features to d's), on the
rows where both are present:

- ``imagine_weight * MSE(T_{s->d}(f_s), stop_gradient(f_d))``: the translator learns to predict d's features
  (the target is detached, so the encoders are not pulled towards features that are easy to predict);
- ``fill_weight * loss(fusion(f with d replaced by its imagination))``, averaged over the modalities d: the
  fusion (and the translators) learn to read imagined features, on complete training rows with d's real
  features hidden (the same rows' labels; nothing absent in training is needed).

At evaluation (``predict``), a modality absent from a row where at least one other is present gets the mean
of the present modalities' translations, and the fusion sees it as present; the extras
``imagine.filled.<m>`` (1 where m was imagined) say which rows. A row with nothing present stays as the
presence-mask path leaves it. The comparison it is made for: the same model and fusion without imagination
(``joint``: the fusion's presence-mask path), at missing rates at test (docs/colearning.md).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from polymodal.data.batch import Batch, present_any
from polymodal.models import ModelOutput
from polymodal.strategies.base import STRATEGIES, StepContext, Strategy, unwrap
from polymodal.strategies.joint import encoder_grad_norms
from polymodal.strategies.toolkit import check_number, check_setup
from polymodal.tasks import LOGITS

MODULE = "imagine"  # the translators live in model.imagine (optimised and checkpointed with the model)


def pair_key(source: str, target: str) -> str:
    """The ModuleDict key of the translator ``source -> target``."""
    return f"{source}__to__{target}"


def translator(in_dim: int, out_dim: int, hidden: int | None) -> nn.Module:
    """A linear map (``hidden=None``) or a one-hidden-layer MLP (LayerNorm, GELU) from ``in_dim`` to ``out_dim``."""
    if hidden is None:
        return nn.Linear(in_dim, out_dim)
    return nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim))


def imagine_features(translators: nn.ModuleDict, features: dict[str, Tensor], present: dict[str, Tensor],
                     target: str) -> tuple[Tensor, Tensor]:
    """The imagination of ``target`` on every row: the mean of ``T_{s->target}(f_s)`` over the modalities s
    present on that row, and (B,) bool where at least one was (elsewhere the imagination is 0)."""
    total, count = None, None
    for source in features:
        if source == target:
            continue
        guess = translators[pair_key(source, target)](features[source])
        mask = present[source].to(guess.dtype).unsqueeze(1)
        total = guess * mask if total is None else total + guess * mask
        count = mask if count is None else count + mask
    if total is None or count is None:
        raise ValueError(f"imagining {target!r} needs another modality; the model has only {list(features)}")
    return total / count.clamp_min(1.0), count.squeeze(1) > 0


@STRATEGIES.register("imagine", tiny={"hidden": 8})
class Imagine(Strategy):
    """Joint training plus translators that imagine an absent modality's features from the present ones.

    hidden:         width of each translator's hidden layer (None: a linear map)
    imagine_weight: weight of the translators' feature-regression loss (MSE to the detached real features)
    fill_weight:    weight of the task's loss on the fusion of features with one modality imagined (0: the
                    fusion never sees an imagination in training)
    """

    default_fusion = "late"
    requires = frozenset({LOGITS})

    def __init__(self, hidden: int | None = 128, imagine_weight: float = 1.0, fill_weight: float = 1.0) -> None:
        if hidden is not None and (not isinstance(hidden, int) or isinstance(hidden, bool) or hidden < 1):
            raise ValueError(f"strategy.args.hidden={hidden!r}; expected an integer >= 1 or null (a linear map)")
        self.hidden = hidden
        self.imagine_weight = check_number("imagine_weight", imagine_weight)
        self.fill_weight = check_number("fill_weight", fill_weight)

    def setup(self, model: nn.Module, train_dataset: Any) -> None:
        core = check_setup(self, model, train_dataset, min_modalities=2, input_level="pooled")
        dims = {m: core.feature_dim(m) for m in core.modalities}
        pairs = {pair_key(s, d): translator(dims[s], dims[d], self.hidden)
                 for s in core.modalities for d in core.modalities if s != d}
        core.add_module(MODULE, nn.ModuleDict(pairs))

    def fill(self, model: nn.Module) -> Any:
        """The feature transform of ``predict``: every absent modality imagined where another is present."""
        translators = getattr(unwrap(model), MODULE)

        def transform(features: dict[str, Tensor], present: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
            feats, pres = dict(features), dict(present)
            self.filled = {}
            for m in features:
                missing = ~present[m]
                if not bool(missing.any()):
                    self.filled[m] = torch.zeros_like(missing)
                    continue
                guess, ok = imagine_features(translators, features, present, m)
                rows = missing & ok
                feats[m] = torch.where(rows.unsqueeze(1), guess.to(features[m].dtype), features[m])
                pres[m] = present[m] | rows
                self.filled[m] = rows
            return feats, pres

        return transform

    def training_step(self, model: nn.Module, batch: Batch, ctx: StepContext) -> dict[str, Tensor | float]:
        core = unwrap(model)
        translators = getattr(core, MODULE)
        out = model(batch)
        feats, present = out.features, batch.present
        loss = self.task.loss(self.task.loss_input(out), batch.label, rows=present_any(present),
                              class_weights=ctx.class_weights)
        logs: dict[str, Tensor | float] = {"loss/task": loss.detach()}
        regress, fill = [], []
        for d in core.modalities:
            for s in core.modalities:
                rows = present[s] & present[d]
                if s != d and bool(rows.any()):
                    guess = translators[pair_key(s, d)](feats[s][rows])
                    regress.append(F.mse_loss(guess, feats[d][rows].detach()))
            if self.fill_weight > 0:
                others = {m: p for m, p in present.items() if m != d}
                rows = present[d] & present_any(others)  # d really there (its label row is complete), hidden
                if bool(rows.any()):
                    guess, _ = imagine_features(translators, feats, {**present, d: torch.zeros_like(present[d])}, d)
                    swapped = {**feats, d: torch.where(rows.unsqueeze(1), guess, feats[d])}
                    fused = core.fusion(swapped, present)
                    fill.append(self.task.loss(self.task.loss_input(ModelOutput(fused.logits, fused.per_modality, swapped)),
                                               batch.label, rows=rows, class_weights=ctx.class_weights))
        if regress:
            term = torch.stack(regress).mean()
            logs["loss/imagine"] = term.detach()
            loss = loss + self.imagine_weight * term
        if fill:
            term = torch.stack(fill).mean()
            logs["loss/fill"] = term.detach()
            loss = loss + self.fill_weight * term
        ctx.backward(loss)
        norms = encoder_grad_norms(core)
        ctx.step()
        return {"loss": loss.detach(), **logs, **norms}

    def predict(self, model: nn.Module, batch: Batch) -> ModelOutput:
        """The fused prediction with every absent modality imagined from the present ones; extras
        ``imagine.filled.<m>`` (1 where m was imagined, else 0)."""
        out = model(batch, transform=self.fill(model))
        out.extras = {**out.extras, **{f"imagine.filled.{m}": rows.to(torch.int64) for m, rows in self.filled.items()}}
        return out


__all__ = ["Imagine", "imagine_features", "pair_key", "translator"]
