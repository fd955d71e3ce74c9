"""What ships is the product alone: ``myaiserv`` and ``indexers`` never import the test and
benchmark code (``tooling``, ``tests``, ``bench``), only the CLI reaches the local
development stack (``myaiserv.stack``), and the wheel packages only the two product
packages. Imports are read with ``ast``, so lazy imports inside functions count too."""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

import indexers
import myaiserv

MYAISERV = Path(myaiserv.__file__).parent
INDEXERS = Path(indexers.__file__).parent
ROOT = MYAISERV.parent
NOT_SHIPPED = {"tooling", "tests", "bench"}
# The local stack: its own package, and the `myaiserv stack` command that mounts it.
STACK_USERS = (MYAISERV / "stack", MYAISERV / "cli.py")


def product_modules() -> Iterator[Path]:
    for package in (MYAISERV, INDEXERS):
        yield from sorted(package.rglob("*.py"))


def imported_modules(path: Path, root: Path = ROOT) -> set[str]:
    """Every module ``path`` (under ``root``) imports, as dotted names; ``from a import b``
    gives both ``a`` and ``a.b`` (``b`` may be a submodule)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                package = path.relative_to(root).with_suffix("").parts[: -node.level]
                base = ".".join([*package, node.module] if node.module else package)
            else:
                base = node.module or ""
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_product_modules_are_found() -> None:
    modules = {p.relative_to(ROOT).as_posix() for p in product_modules()}
    assert {"myaiserv/app.py", "myaiserv/evaluation/cli.py", "indexers/worker.py"} <= modules


def test_imported_modules_resolves_relative_and_from_imports(tmp_path: Path) -> None:
    assert "myaiserv.kit.pgbin.find_bindir" in imported_modules(MYAISERV / "backup" / "pgtools.py")
    module = tmp_path / "myaiserv" / "backup" / "probe.py"
    module.parent.mkdir(parents=True)
    module.write_text(
        "from ..stack import web\nfrom . import errors\ndef later():\n    import tooling.fuzz\n"
    )
    names = imported_modules(module, tmp_path)
    assert {"myaiserv.stack.web", "myaiserv.backup.errors", "tooling.fuzz"} <= names


def test_product_never_imports_test_or_benchmark_code() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in product_modules()
        for name in sorted(imported_modules(path))
        if any(within(name, top) for top in NOT_SHIPPED)
    ]
    assert not offenders


def test_only_the_cli_imports_the_local_stack() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in product_modules()
        if not any(path == user or user in path.parents for user in STACK_USERS)
        for name in sorted(imported_modules(path))
        if within(name, "myaiserv.stack")
    ]
    assert not offenders


def test_the_wheel_packages_only_the_product() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {entry["include"] for entry in project["tool"]["poetry"]["packages"]}
    assert packages == {"myaiserv", "indexers"}
