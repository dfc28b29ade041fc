"""The import graph: no cycles between modules or between top-level packages, each package importing only the
layers below it (docs/DESIGN.md, "The layers"), and the run-folder format at the bottom (it imports nothing of the
product). Imports inside functions count: a lazy import is still a dependency."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("runfolder", "verdict", "trainers", "leaderboard", "model_cards", "apps")
# What each package may import of the others (docs/DESIGN.md's diagram and layer table); a module name allows only
# that module.
MAY_IMPORT = {
    "runfolder": set(),
    "verdict": {"runfolder"},
    "model_cards": {"runfolder", "verdict"},
    "leaderboard": {"runfolder", "verdict", "model_cards"},
    "trainers": {"runfolder", "model_cards", "leaderboard"},
    "apps": {"runfolder", "verdict", "leaderboard", "trainers.inference"},  # never the training loop
}
OUTSIDE_THE_PRODUCT = ("benchmarks", "tests")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path) -> set[str]:
    """Every absolute module name `path` imports, anywhere in the file (`from a import b` names `a` and `a.b`)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def product_files() -> list[Path]:
    return [path for package in PACKAGES for path in (REPO / package).rglob("*.py")]


def import_graph() -> dict[str, set[str]]:
    files = product_files()
    modules = {module_name(path) for path in files}
    graph = {module_name(path): imported_names(path) & modules for path in files}
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


def test_each_package_imports_only_the_layers_below_it():
    upward = [f"{module} imports {dep}" for module, deps in import_graph().items() for dep in deps
              if (package := module.split(".")[0]) != dep.split(".")[0]
              and not {dep.split(".")[0], dep} & MAY_IMPORT[package]]
    assert not upward, upward


def test_the_product_never_imports_benchmarks_or_tests():
    for path in [*product_files(), *(REPO / "benchmarks").glob("*.py")]:
        own = path.relative_to(REPO).parts[0]
        outside = {name for name in imported_names(path)
                   if name.split(".")[0] in OUTSIDE_THE_PRODUCT and name.split(".")[0] != own}
        assert not outside, f"{path.relative_to(REPO)} imports {sorted(outside)}"
