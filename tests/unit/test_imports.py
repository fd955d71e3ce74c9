"""How the modules of myaiserv/ and indexers/ import each other: no module reaches into
another's private names, and no two modules import each other, not even from inside a
function (a lazy import only hides a cycle until someone moves it)."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("myaiserv", "indexers")
CLI_MODULES = (
    "myaiserv.cli",
    "myaiserv.kit.cli",
    "myaiserv.backup.cli",
    "myaiserv.secrets.cli",
    "myaiserv.stack.cli",
    "myaiserv.evaluation.cli",
    "indexers.cli",
)


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(module: str, path: Path) -> Iterator[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) for every import statement,
    wherever it stands; relative imports resolved."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                yield base, alias.name, node.lineno


def _ours(name: str) -> str | None:
    """The module of ours that importing ``name`` loads, or None for a third-party one."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_module_imports_a_private_name_of_another() -> None:
    """A leading underscore means "not part of my interface": a private module or name
    is imported only by its owner (the package or module it is in) and what lies under
    it, never from elsewhere."""
    found = []
    for module, path in MODULES.items():
        for target, name, line in _imports(module, path):
            if _ours(target) is None:
                continue
            parts = [*target.split("."), *([name] if name else [])]
            for i, part in enumerate(parts):
                owner = ".".join(parts[:i])
                if _is_private(part) and not (module == owner or module.startswith(f"{owner}.")):
                    found.append(f"{path.relative_to(ROOT)}:{line}: imports {'.'.join(parts)}")
    assert not found, "\n".join(found)


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {module: set() for module in MODULES}
    for module, path in MODULES.items():
        for target, name, _ in _imports(module, path):
            full = f"{target}.{name}" if name else target
            dep = full if full in MODULES else _ours(target)
            if dep and dep != module:
                graph[module].add(dep)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph, as the path that closes it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in state and (found := visit(dep)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_even_through_imports_inside_functions() -> None:
    cycle = _cycle(_graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


@pytest.mark.parametrize("module", CLI_MODULES)
def test_each_cli_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
