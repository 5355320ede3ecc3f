"""The import graph of the package: layers point one way (data, kernel wrappers, boxes and
runs, the library, the judge and the tools, the server, the command line: each module imports
only its own layer or lower ones), and no two modules import each other, directly or round
a loop, counting imports inside functions (``if TYPE_CHECKING:`` blocks aside)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.operations

PACKAGE = Path(__file__).parent.parent / "cellbox"
# Each module's layer: the longest prefix listed here names it.
LAYERS = {
    # data
    "cellbox.errors": 0, "cellbox.limits": 0, "cellbox.policy": 0, "cellbox.result": 0,
    "cellbox.rules": 0, "cellbox.spec": 0, "cellbox.config": 0, "cellbox.languages": 0,
    # kernel wrappers
    "cellbox.linux": 1, "cellbox.cgroup": 1, "cellbox.boxinit": 1, "cellbox.storage": 1,
    "cellbox.lock": 1,
    # boxes and runs
    "cellbox.keeper": 2, "cellbox.box": 2,
    # the library
    "cellbox": 3, "cellbox.api": 3, "cellbox.pool": 3, "cellbox.interactive": 3,
    # the judge, and tools that the command line runs
    "cellbox.judge": 4, "cellbox.chaos": 4, "cellbox.doctor": 4, "cellbox.bench": 4,
    # the service
    "cellbox.server": 5,
    # the command line
    "cellbox.cli": 6, "cellbox.__main__": 6,
}


def _name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str) -> set[str]:
    found: set[str] = set()

    class Visitor(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            if isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
                for child in node.orelse:
                    self.visit(child)
            else:
                self.generic_visit(node)

        def visit_Import(self, node: ast.Import) -> None:
            found.update(a.name for a in node.names)

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            assert node.level == 0, f"{name}: use absolute imports"
            module = node.module or ""
            found.update(f"{module}.{a.name}" if f"{module}.{a.name}" in MODULES else module
                         for a in node.names)

    Visitor().visit(ast.parse(MODULES[name].read_text()))
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: _imports(name) for name in MODULES}


def _layer(name: str) -> int:
    prefix = max((p for p in LAYERS if name == p or name.startswith(p + ".")), key=len)
    return LAYERS[prefix]


def test_every_module_has_a_layer() -> None:
    """Named in LAYERS, itself or its package (the top package's layer is its own only)."""
    for name in MODULES:
        assert name == "cellbox" or any(name == p or name.startswith(p + ".")
                                        for p in LAYERS if p != "cellbox"), name


def test_no_import_points_up() -> None:
    upward = [f"{a} (layer {_layer(a)}) imports {b} (layer {_layer(b)})"
              for a, targets in GRAPH.items() for b in targets if _layer(b) > _layer(a)]
    assert not upward, upward


def test_no_import_cycle() -> None:
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            pytest.fail(f"import cycle: {' -> '.join(path[path.index(node):] + [node])}")
        if node in done:
            return
        for nxt in sorted(GRAPH[node]):
            visit(nxt, [*path, node])
        done.add(node)

    for name in sorted(GRAPH):
        visit(name, [])


# Classes named for one of the package's models; besides the models themselves, only the
# wire formats that convert into them at an edge.
MODELS = ("Limits", "Job", "Outcome")
WIRE_FORMATS = {"LimitsIn": "the native API's limits", "ProblemLimits": "problem.yaml's limits"}


def test_each_model_is_defined_once() -> None:
    classes = [(node.name, name) for name, path in MODULES.items()
               for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.ClassDef)]
    for model in MODELS:
        named = [f"{module}.{cls}" for cls, module in classes
                 if cls.lstrip("_").endswith(model) and cls not in WIRE_FORMATS]
        assert len(named) == 1, f"{model}: {named}"
