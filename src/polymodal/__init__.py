"""polymodal: multimodal machine learning on PyTorch.

    import polymodal
    predictor = polymodal.Predictor(label="diagnosis").fit("patients.csv")
    run = polymodal.load_run("runs/main")   # a run folder: config, metrics, predictions, model on request
    q = polymodal.quantify("runs/main")     # what each modality contributes, interactions, robustness, cost
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["Predictor", "Run", "__version__", "load_run"]


def __getattr__(name: str) -> Any:  # torch and friends load only when the predictor is used
    if name == "Predictor":
        from polymodal.predictor import Predictor

        return Predictor
    if name in ("Run", "load_run"):
        from polymodal.engine import runfolder

        return getattr(runfolder, name)
    from polymodal.registry import challenge_packages

    if name in challenge_packages():  # polymodal.quantify(run), polymodal.reasoning, ... on first use
        import importlib

        return importlib.import_module(f"polymodal.{name}")
    raise AttributeError(f"module 'polymodal' has no attribute {name!r}")
