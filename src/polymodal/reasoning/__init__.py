"""Reasoning through concepts: concept bottlenecks, programs over concepts, learned relations.

Each modality predicts named concepts; a reasoning head maps the concepts of the present modalities to
the label (docs/reasoning.md):

    fusions     ``program`` (a known rule, exact), ``relation`` (the rule learned as a table),
                ``concept_bottleneck`` (a free head; Koh et al., 2020)        -> fusion.py
    strategy    ``cbm``: joint / independent / sequential training with concept labels -> strategy.py
    rules       named rules a config can name (sum_mod10, compare, xor, ...)   -> rules.py
    explain     per-sample concepts, interventions (uncertainty-guided or random order), alignment of
                latent concepts                                                 -> analysis.py
"""

from typing import Any

from polymodal.reasoning.concepts import Concept, concept_labels_for, parse_concepts
from polymodal.reasoning.fusion import (
    ConceptBottleneckFusion,
    ConceptFusion,
    ProgramFusion,
    RelationFusion,
    contract,
    log_contract,
)
from polymodal.reasoning.rules import RULES, Rule, as_table

# the strategy and the explanations need polymodal.models, which imports the fusion package, which
# registers the fusions above: they load on first use (polymodal.registries imports them)
_LAZY = {
    "ConceptBottleneckStrategy": "strategy",
    "concept_loss": "strategy",
    **{name: "analysis" for name in (
        "ORDERS", "ConceptOutputs", "best_permutation", "best_shift", "concept_outputs", "explain", "intervene",
        "intervention_accuracy", "load_model", "load_run", "table_agreement",
    )},
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"polymodal.reasoning.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'polymodal.reasoning' has no attribute {name!r}")


__all__ = [
    "ORDERS",
    "RULES",
    "Concept",
    "ConceptBottleneckFusion",
    "ConceptBottleneckStrategy",
    "ConceptFusion",
    "ConceptOutputs",
    "ProgramFusion",
    "RelationFusion",
    "Rule",
    "as_table",
    "best_permutation",
    "best_shift",
    "concept_labels_for",
    "concept_loss",
    "concept_outputs",
    "contract",
    "explain",
    "intervene",
    "intervention_accuracy",
    "load_model",
    "load_run",
    "log_contract",
    "parse_concepts",
    "table_agreement",
]
