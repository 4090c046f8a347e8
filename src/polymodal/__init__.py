"""polymodal: multimodal machine learning on PyTorch.

    import polymodal
    predictor = polymodal.Predictor(label="diagnosis").fit("patients.csv")
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["Predictor", "__version__"]


def __getattr__(name: str) -> Any:  # torch and friends load only when the predictor is used
    if name == "Predictor":
        from polymodal.predictor import Predictor

        return Predictor
    raise AttributeError(f"module 'polymodal' has no attribute {name!r}")
