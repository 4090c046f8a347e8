"""Where things live: the raw data folder and the run folder are settings, never literals in code."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "POLYMODAL_DATA"
CACHE_ENV = "POLYMODAL_CACHE"

_PACKAGE_DIR = Path(__file__).resolve().parent


def artifacts_dir() -> Path:
    """Versioned data artifacts that ship inside the package."""
    return _PACKAGE_DIR / "artifacts"


def default_data_root() -> Path:
    """The raw data folder: ``$POLYMODAL_DATA`` if set, else ``../shared/data`` beside the checkout."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    # src/polymodal -> src -> repository root -> its parent
    return _PACKAGE_DIR.parent.parent.parent / "shared" / "data"


def resolve_data_root(root: str | os.PathLike | None) -> Path:
    path = Path(root).expanduser() if root not in (None, "") else default_data_root()
    if not path.is_dir():
        raise FileNotFoundError(
            f"raw data folder {path} does not exist; set {DATA_ENV}=/path/to/data or the config key data.root"
        )
    return path


def cache_dir() -> Path:
    """Feature cache folder: ``$POLYMODAL_CACHE`` or ``~/.cache/polymodal``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "polymodal"
