"""The survival task (docs/survival.md): Cox partial likelihood, concordance index, integrated Brier score and
survival curves from the Breslow baseline hazard. Importing this package registers the task ``survival``."""

from polymodal.tasks.survival.cox import breslow_baseline, cox_partial_nll, survival_curves
from polymodal.tasks.survival.metrics import (
    brier_scores,
    censoring_survival,
    concordance_index,
    integrated_brier_score,
    kaplan_meier,
)
from polymodal.tasks.survival.reference import SurvivalReference
from polymodal.tasks.survival.task import Survival, SurvivalPredictions

__all__ = ["Survival", "SurvivalPredictions", "SurvivalReference", "breslow_baseline",
           "brier_scores", "censoring_survival", "concordance_index", "cox_partial_nll", "integrated_brier_score",
           "kaplan_meier", "survival_curves"]
