"""Rules of the code's layout that a test can check by reading the source (docs/architecture.md): run files
are named in one module, and nothing compares task names."""

from __future__ import annotations

import ast
from pathlib import Path

import polymodal
from polymodal import runpaths

SRC = Path(polymodal.__file__).resolve().parent
ROOT = SRC.parent.parent


def _modules(*folders: Path) -> list[Path]:
    return sorted(p for folder in folders if folder.is_dir() for p in folder.rglob("*.py"))


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings (prose may name a file)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def test_run_files_are_named_only_in_the_run_paths_module():
    """A string literal that is a run file's name (``"config.yaml"``, ``"report.md"``, ...) appears nowhere
    in the package but ``polymodal/runpaths.py``: every reader and writer asks ``RunPaths``."""
    names = set(runpaths.names())
    found = []
    for path in _modules(SRC):
        if path.name == "runpaths.py" and path.parent == SRC:
            continue
        text = path.read_text()
        lines = text.splitlines()
        tree = ast.parse(text)
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
                if node.value in names and "not a run file" not in lines[node.lineno - 1]:
                    found.append(f"{path.relative_to(SRC)}:{node.lineno}: {node.value!r}")
    assert not found, "run-file names spelled outside polymodal/runpaths.py (use RunPaths):\n" + "\n".join(found)
