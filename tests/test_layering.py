"""The package's layers (docs/architecture.md), checked on every module's imports (module level and lazy alike).

cli -> pipeline / evaluation -> methods -> engine -> models, data, metrics. Imports run downward only, metrics are
pure, and no module-level import cycle exists, so a new method is added by adding a folder under methods/.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "pixelwise"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, module_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if module_level_only else ast.walk(tree)
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _layer(module: str) -> str:
    return module.split(".")[1] if module.count(".") else "pixelwise"


# layer -> the pixelwise layers it must never import
FORBIDDEN = {
    "engine": {"cli", "methods", "pipeline", "evaluation"},
    "models": {"cli", "methods", "pipeline", "evaluation", "engine"},
    "data": {"cli", "methods", "pipeline", "evaluation", "engine"},
    "metrics": {"cli", "methods", "pipeline", "evaluation", "engine", "models", "data", "report"},
    "methods": {"cli", "pipeline", "evaluation"},
    "pipeline": {"cli"},
    "evaluation": {"cli", "pipeline"},
}


def test_imports_run_downward_only() -> None:
    wrong = []
    for module, path in MODULES.items():
        banned = FORBIDDEN.get(_layer(module), set())
        for target in _imports(path):
            if target.startswith("pixelwise.") and _layer(target) in banned:
                wrong.append(f"{module} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_metrics_import_only_torch_numpy_the_standard_library_and_themselves() -> None:
    allowed = {"torch", "numpy", "__future__", *sys.stdlib_module_names}
    wrong = []
    for module, path in MODULES.items():
        if _layer(module) != "metrics":
            continue
        for target in _imports(path):
            top = target.split(".")[0]
            if not (top in allowed or target.startswith("pixelwise.metrics")):
                wrong.append(f"{module} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_no_module_level_import_cycle() -> None:
    graph = {
        module: {t for t in _imports(path, module_level_only=True) if t in MODULES and t != module}
        for module, path in MODULES.items()
    }
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append(path[path.index(target) :] + [target] if target in path else [module, target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    # A package importing its own submodules (``__init__`` re-exports) is not a cycle of the layers.
    real = [c for c in cycles if not all(m.startswith(c[0] + ".") or m == c[0] for m in c[1:])]
    assert not real, "\n".join(" -> ".join(c) for c in real)


def test_every_name_a_method_package_exports_lazily_resolves() -> None:
    import importlib
    import pkgutil

    import pixelwise.methods

    for info in pkgutil.iter_modules(pixelwise.methods.__path__):
        if info.ispkg:
            package = importlib.import_module(f"pixelwise.methods.{info.name}")
            for name in [*dir(package), *getattr(package, "__all__", [])]:
                assert getattr(package, name) is not None or name.startswith("_"), f"{info.name}.{name}"
