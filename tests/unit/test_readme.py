"""The README's code layout table matches the tree: every path it names exists, every
package and top-level module has a row, and each package's row names each of its
modules."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("myaiserv", "indexers", "tooling")
ROW = re.compile(r"^\| `([^`]+)` \| (.*) \|$")


def layout() -> dict[str, str]:
    """Path -> description, from the table under "Code layout"."""
    text = (ROOT / "README.md").read_text()
    table = text[text.index("Code layout") :].split("\n\n")[1]
    rows = {}
    for line in table.splitlines()[2:]:
        match = ROW.match(line)
        assert match, f"not a layout row: {line}"
        rows[match.group(1)] = match.group(2)
    return rows


def modules(package: Path) -> list[str]:
    return sorted(p.stem for p in package.glob("*.py") if p.stem != "__init__")


def test_every_path_in_the_table_exists() -> None:
    missing = [path for path in layout() if not (ROOT / path).exists()]
    assert missing == []


def test_every_package_and_top_level_module_has_a_row() -> None:
    rows = layout()
    expected = [f"{top}/" for top in PACKAGES[1:]]
    expected += [
        f"myaiserv/{p.name}/" for p in (ROOT / "myaiserv").iterdir() if (p / "__init__.py").exists()
    ]
    expected += [f"myaiserv/{m}.py" for m in modules(ROOT / "myaiserv") if m != "__main__"]
    assert sorted(set(expected) - set(rows)) == []


def test_each_package_row_names_each_of_its_modules() -> None:
    unnamed = []
    for path, description in layout().items():
        folder = ROOT / path
        if not path.endswith("/") or not (folder / "__init__.py").exists():
            continue
        named = set(re.findall(r"`([^`]+)`", description))
        unnamed += [f"{path}{m}.py" for m in modules(folder) if m not in named]
        unnamed += [
            f"{path}{p.name}/"
            for p in folder.iterdir()
            if p.is_dir() and not p.name.startswith("__") and f"{p.name}/" not in named
        ]
    assert unnamed == []
