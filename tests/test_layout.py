"""The layout stays what the README says: scripts and card files at the root, one package per concern,
imports pointing one way, every module small enough to read in one sitting."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import PROJECT_DIR

# The scripts a user runs and the card's two modules; everything else lives in a package.
ROOT_MODULES = {"producer", "consumer", "monitor", "local_kafka", "doctor", "export", "config", "db"}
SCRIPTS = {"producer", "consumer", "monitor", "local_kafka", "doctor", "export"}
PACKAGES = {"common", "market", "quotesource", "streaming", "service", "polling", "alerts", "notify", "ingest", "view",
            "checkup", "web", "history"}
MOST_LINES = 400


def project_files() -> dict[str, Path]:
    """Module name -> file, for the root modules and the packages (tests and benchmarks are not modules)."""
    files = {path.stem: path for path in PROJECT_DIR.glob("*.py")}
    for package in PROJECT_DIR.glob("*/__init__.py"):
        for path in package.parent.glob("*.py"):
            name = package.parent.name if path.stem == "__init__" else f"{package.parent.name}.{path.stem}"
            files[name] = path
    return files


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The project's modules `path` imports, anywhere in it (functions included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        found |= {name for name in names if name in modules}
    return found


def graph() -> dict[str, set[str]]:
    files = project_files()
    return {name: imports_of(path, set(files)) - {name} for name, path in files.items()}


def part(module: str) -> str:
    """The room a module lives in: its package, or itself at the root."""
    return module.split(".")[0]


def cycle_in(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path, or None."""
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for target in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                return [*path[path.index(target):], target] if target in path else [node, target]
            if target not in state and (found := visit(target, [*path, target])):
                return found
        state[node] = "done"
        return None

    for start in sorted(edges):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def test_the_root_holds_only_the_scripts_and_the_card_modules():
    assert {path.stem for path in PROJECT_DIR.glob("*.py")} == ROOT_MODULES
    assert {path.parent.name for path in PROJECT_DIR.glob("*/__init__.py")} == PACKAGES


def test_every_package_says_what_it_owns():
    for package in PACKAGES:
        docstring = ast.get_docstring(ast.parse((PROJECT_DIR / package / "__init__.py").read_text()))
        assert docstring and len(docstring) > 60, package


def test_no_module_is_longer_than_one_sitting():
    long = {name: lines for name, path in project_files().items()
            if (lines := len(path.read_text().splitlines())) > MOST_LINES}
    assert long == {}


def test_no_package_imports_a_script():
    reaching_up = {(module, target) for module, targets in graph().items() for target in targets
                   if "." in module and target in SCRIPTS}
    assert reaching_up == set()


def test_imports_point_one_way_between_modules_and_between_packages():
    edges = graph()
    assert cycle_in(edges) is None
    between_parts: dict[str, set[str]] = {}
    for module, targets in edges.items():
        between_parts.setdefault(part(module), set()).update(part(target) for target in targets)
    for name, targets in between_parts.items():
        targets.discard(name)
    assert cycle_in(between_parts) is None


def test_the_check_finds_a_cycle_when_there_is_one():
    assert cycle_in({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle_in({"a": {"b"}, "b": set()}) is None
