"""The one registration point: every component module of the package is found and imported, and the
registries are re-exported.

A component (dataset, encoder, fusion, strategy, task, column kind, fusion rule, reasoning rule) is
registered by the decorator on its class or factory (``@FUSIONS.register("late")``); nothing else names
it. :func:`~polymodal.registry.load_components` finds the modules that register something by reading the
package's source files (a line that calls ``<REGISTRY>.register(``) and imports them, core packages first,
then the challenge packages (docs/architecture.md, "Add a challenge package"). Every registry calls it the
first time it is read, so a registry's content does not depend on what was imported before, and a new
module needs no import line in any ``__init__``. Core packages never import a challenge package; the
challenge packages import the core.
"""

from __future__ import annotations

from polymodal.data.base import DATASETS
from polymodal.encoders.base import ENCODERS
from polymodal.fusion.base import FUSIONS
from polymodal.registry import CORE, challenge_packages, component_modules, load_components
from polymodal.strategies.base import STRATEGIES
from polymodal.tasks.base import TASKS

load_components()

ALL = {"datasets": DATASETS, "encoders": ENCODERS, "fusions": FUSIONS, "strategies": STRATEGIES, "tasks": TASKS}
__all__ = ["ALL", "CORE", "DATASETS", "ENCODERS", "FUSIONS", "STRATEGIES", "TASKS", "challenge_packages",
           "component_modules", "load_components"]
