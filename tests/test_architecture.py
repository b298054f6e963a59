"""The layers hold: what each package may import, no import cycles, and a light core.

The import graph is read from the source with ``ast``: every import statement, those inside
functions and ``TYPE_CHECKING`` blocks included, and ``importlib.import_module("literal")``. An
import hidden in a function still crosses a layer or closes a cycle when it runs, so it counts.
The subprocess checks at the end add what ``ast`` cannot see: what importing the core loads.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
# rag_model/packaging is walked with rag_model and is a layer of its own (see layer_of)
PACKAGES = ("rag_model", "experiments", "evaluation", "serving", "rag_spark")
# layer -> the layers it may import (its own included): DESIGN.md's table, lowest layer first
ALLOWED = {
    "core": {"core"},
    "packaging": {"core", "packaging"},
    "evaluation": {"core", "packaging", "evaluation"},
    "serving": {"core", "packaging", "serving"},
    "rag_spark": {"core", "packaging", "evaluation", "rag_spark"},
    "experiments": {"core", "packaging", "evaluation", "serving", "rag_spark", "experiments"},
}
# layer -> third-party top-level packages it must not import
FORBIDDEN_LIBRARIES = {"core": {"mlflow", "flask"}, "packaging": {"flask"}}
HEAVY = ("mlflow", "flask", "chromadb", "torch", "sentence_transformers", "pyspark")
# optional framework integrations: importing LangChain / LlamaIndex is their whole point
OPTIONAL_CORE = ("rag_model.adapters",)
# the Spark layer imports pyspark only inside the functions that run Spark
SPARK_MODULES = ("rag_spark", "rag_spark.session", "rag_spark.scoring", "rag_spark.indexing")


def layer_of(module: str) -> str:
    """The layer a project module belongs to."""
    if module == "rag_model.packaging" or module.startswith("rag_model.packaging."):
        return "packaging"
    top = module.split(".")[0]
    return "core" if top == "rag_model" else top


@cache
def module_files() -> dict[str, Path]:
    """Every module of the project packages, by dotted name (a package by its ``__init__``)."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((PROJECT / package).rglob("*.py")):
            parts = path.relative_to(PROJECT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported_names(module: str, path: Path) -> Iterator[str]:
    """The dotted names ``module`` imports anywhere in its source (relative ones resolved)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from pkg import name``: name may be a submodule or an attribute of pkg
            yield from (f"{base}.{alias.name}" for alias in node.names)
        elif _is_import_module_call(node):
            yield node.args[0].value  # type: ignore[attr-defined]


def _is_import_module_call(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call) or not node.args:
        return False
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    first = node.args[0]
    return (
        name == "import_module" and isinstance(first, ast.Constant) and isinstance(first.value, str)
    )


def project_module(name: str) -> str | None:
    """The project module a dotted name lands in (its longest known prefix), or None."""
    modules = module_files()
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


@cache
def import_graph() -> dict[str, frozenset[str]]:
    """Module -> the project modules it imports (itself left out)."""
    graph = {}
    for module, path in module_files().items():
        targets = {project_module(name) for name in imported_names(module, path)}
        graph[module] = frozenset(target for target in targets if target not in (None, module))
    return graph


def import_cycles(graph: dict[str, frozenset[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def test_the_walk_sees_every_package_and_imports_inside_functions() -> None:
    graph = import_graph()
    assert {layer_of(module) for module in graph} == set(ALLOWED)
    assert {"rag_model.pipeline", "rag_model.packaging.log", "serving.api"} <= set(graph)
    # build_and_log imports the packaging layer inside the function
    assert "rag_model.packaging.log" in graph["experiments.runs"]


def test_each_layer_imports_only_the_layers_below_it() -> None:
    crossings = [
        f"{module} ({layer_of(module)}) imports {target} ({layer_of(target)})"
        for module, targets in sorted(import_graph().items())
        for target in sorted(targets)
        if layer_of(target) not in ALLOWED[layer_of(module)]
    ]
    assert not crossings, "imports against the layering:\n" + "\n".join(crossings)


def test_the_core_imports_neither_mlflow_nor_flask() -> None:
    found = [
        f"{module} ({layer_of(module)}) imports {name}"
        for module, path in sorted(module_files().items())
        for name in sorted(set(imported_names(module, path)))
        if name.split(".")[0] in FORBIDDEN_LIBRARIES.get(layer_of(module), set())
    ]
    assert not found, "\n".join(found)


def test_there_are_no_import_cycles() -> None:
    cycles = import_cycles(import_graph())
    assert not cycles, "modules importing each other:\n" + "\n".join(map(", ".join, cycles))


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"}), "d": frozenset()}
    assert import_cycles(graph) == [["a", "b", "c"]]


def _modules_loaded_by(modules: tuple[str, ...]) -> set[str]:
    """The top-level modules loaded in a fresh interpreter after importing ``modules``."""
    code = (
        f"import {', '.join(modules)}; import json, sys; "
        "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return set(json.loads(completed.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def loaded_modules() -> set[str]:
    """The top-level modules loaded in a fresh interpreter after importing every core module."""
    core = tuple(
        module
        for module in module_files()
        if layer_of(module) == "core" and not module.startswith(OPTIONAL_CORE)
    )
    return _modules_loaded_by(core)


def test_the_core_was_imported(loaded_modules: set[str]) -> None:
    assert {"rag_model", "numpy", "pydantic"} <= loaded_modules


@pytest.mark.parametrize("module", HEAVY)
def test_the_core_does_not_import(loaded_modules: set[str], module: str) -> None:
    assert module not in loaded_modules


def test_the_spark_layer_imports_pyspark_only_when_it_runs_spark() -> None:
    loaded = _modules_loaded_by(SPARK_MODULES)
    assert "rag_spark" in loaded
    assert "pyspark" not in loaded and "py4j" not in loaded
