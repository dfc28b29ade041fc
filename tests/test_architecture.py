"""The import graph: no cycles between modules or between top-level packages, and the run-folder format at the
bottom (it imports nothing of the product). Imports inside functions count: a lazy import is still a dependency."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("runfolder", "verdict", "trainers", "leaderboard", "model_cards", "apps")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def product_imports(path: Path, modules: set[str]) -> set[str]:
    """The product modules that `path` imports, anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name for name in names if name in modules}
    return found


def import_graph() -> dict[str, set[str]]:
    files = [path for package in PACKAGES for path in (REPO / package).rglob("*.py")]
    modules = {module_name(path) for path in files}
    graph = {module_name(path): product_imports(path, modules) for path in files}
    return {module: {dep for dep in deps if dep != module} for module, deps in graph.items()}


def test_the_graph_sees_the_product():
    graph = import_graph()
    assert "trainers.finetune" in graph and "runfolder" in graph["trainers.finetune"]


def test_no_import_cycle_between_modules():
    try:
        tuple(TopologicalSorter(import_graph()).static_order())
    except CycleError as error:
        pytest.fail(f"import cycle: {' -> '.join(error.args[1])}")


def test_no_import_cycle_between_packages():
    packages: dict[str, set[str]] = {package: set() for package in PACKAGES}
    for module, deps in import_graph().items():
        packages[module.split(".")[0]] |= {dep.split(".")[0] for dep in deps} - {module.split(".")[0]}
    try:
        tuple(TopologicalSorter(packages).static_order())
    except CycleError as error:
        pytest.fail(f"package cycle: {' -> '.join(error.args[1])}")


def test_the_run_folder_format_is_the_bottom_layer():
    below = {module: {dep for dep in deps if not dep.startswith("runfolder")}
             for module, deps in import_graph().items() if module.split(".")[0] == "runfolder"}
    assert len(below) >= 2 and not any(below.values()), below
