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


CHALLENGES = ("colearning", "coordinated", "quantify", "reasoning", "translation")  # the challenge packages of the package (found by the registry)


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            if node.module == "polymodal":
                out += [(node.lineno, f"polymodal.{a.name}") for a in node.names]
    return out


def test_the_challenge_packages_are_found_by_the_registry():
    from polymodal.registry import challenge_packages

    assert set(CHALLENGES) <= set(challenge_packages())


def test_core_packages_never_import_a_challenge_package():
    """Only ``registries.py`` (which finds every component) and the challenge packages themselves may name a
    challenge package; the CLI finds their commands through the registry too."""
    found = []
    for path in _modules(SRC):
        rel = path.relative_to(SRC)
        if rel.parts[0] in CHALLENGES:
            continue
        for line, module in _imports(ast.parse(path.read_text())):
            parts = module.split(".")
            if parts[0] == "polymodal" and len(parts) > 1 and parts[1] in CHALLENGES:
                found.append(f"{rel}:{line}: imports {module}")
    assert not found, "core modules importing a challenge package:\n" + "\n".join(found)


def _task_names() -> set[str]:
    from polymodal.tasks import TASKS

    return set(TASKS.names())


def test_nothing_compares_task_names():
    """``task == "regression"`` (or ``task.name in ("classification", ...)``) appears nowhere in the package or
    the benchmarks: code asks the task object (its capabilities and methods); a task is not equal to its name."""
    names = _task_names()
    found = []
    for path in _modules(SRC, ROOT / "benchmarks"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Compare):
                continue
            sides = [node.left, *node.comparators]
            consts = [s.value for s in sides if isinstance(s, ast.Constant) and isinstance(s.value, str)]
            consts += [e.value for s in sides if isinstance(s, ast.Tuple | ast.List | ast.Set) for e in s.elts
                       if isinstance(e, ast.Constant) and isinstance(e.value, str)]
            if set(consts) & names:
                found.append(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{node.lineno}")
    assert not found, "task names compared (ask the task instead):\n" + "\n".join(found)


def test_no_code_outside_the_tasks_reads_task_flags():
    """Outside ``polymodal/tasks`` nothing branches on what a task is: no ``uses_classes`` / ``embeddings`` /
    ``per_modality_eval`` / ``mean_of_heads`` flags, no ``supports_regression``, no ``isinstance`` test of a
    predictions container."""
    flags = {"uses_classes", "embeddings", "per_modality_eval", "mean_of_heads", "supports_regression"}
    found = []
    for path in _modules(SRC):
        rel = path.relative_to(SRC)
        if rel.parts[0] == "tasks":
            continue
        tree = ast.parse(path.read_text())
        called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}  # task.embeddings(...) is a method
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr in flags and id(node) not in called
                    and (node.attr == "supports_regression" or "task" in ast.unparse(node.value).lower())):
                found.append(f"{rel}:{node.lineno}: {ast.unparse(node)}")
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance"
                    and len(node.args) == 2 and "Predictions" in ast.unparse(node.args[1])):
                found.append(f"{rel}:{node.lineno}: {ast.unparse(node)}")
    assert not found, "task flags read outside polymodal/tasks:\n" + "\n".join(found)


def test_a_registry_holds_every_component_whatever_was_imported_first():
    """In a fresh process, the fusion registry read right after importing the core fusion package holds the
    challenge packages' fusions too (it imported only the core ones before: its content depended on which
    test file ran first), and the task registry holds every task without ``polymodal.tasks`` importing them."""
    import subprocess
    import sys

    code = ("from polymodal.fusion import FUSIONS; from polymodal.tasks.base import TASKS; "
            "print(sorted(FUSIONS.names())); print(sorted(TASKS.names()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    fusions, tasks = out.splitlines()
    for name in ("late", "coordinated", "program", "relation", "concept_bottleneck"):
        assert repr(name) in fusions, (name, fusions)
    for name in ("classification", "regression", "multilabel", "contrastive"):
        assert repr(name) in tasks, (name, tasks)
