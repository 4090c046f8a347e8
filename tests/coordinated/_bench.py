"""benchmarks/coordinated.py loaded as a module (benchmarks/ is not a package)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def coordinated_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("coordinated_bench", ROOT / "benchmarks" / "coordinated.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
