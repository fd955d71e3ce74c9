"""axe-core, run inside the page: no console page may have a serious or critical
accessibility violation. axe comes pinned from npm (tests/browser/package-lock.json),
installed by `make browser-deps`; it is injected through WebDriver, which the page's
Content-Security-Policy does not govern, so the strict CSP stays as it is."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

AXE_JS = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = frozenset({"serious", "critical"})
SHOWN_TARGETS = 3

RUN_AXE = """
const done = arguments[arguments.length - 1];
axe.run(document, {resultTypes: ["violations"]})
  .then(result => done({violations: result.violations}))
  .catch(error => done({error: String(error)}));
"""


@dataclass(frozen=True)
class Violation:
    rule: str
    impact: str
    help: str
    targets: tuple[str, ...]

    def describe(self) -> str:
        shown = ", ".join(self.targets[:SHOWN_TARGETS])
        more = len(self.targets) - SHOWN_TARGETS
        return f"{self.rule} ({self.impact}): {self.help}: {shown}" + (
            f" and {more} more" if more > 0 else ""
        )


@functools.cache
def axe_source() -> str:
    if not AXE_JS.is_file():
        pytest.fail(f"{AXE_JS} is missing: run `make browser-deps` (npm ci in tests/browser)")
    return AXE_JS.read_text()


def selector(target: list[str | list[str]]) -> str:
    """axe's target as one string: a step per frame, and a list inside a shadow root."""
    return " >> ".join(step if isinstance(step, str) else " >>> ".join(step) for step in target)


def axe_violations(driver: WebDriver) -> list[Violation]:
    """Every serious or critical violation axe finds in the page as it is now."""
    if not driver.execute_script("return typeof window.axe === 'object'"):
        driver.execute_script(axe_source())
    result: dict[str, Any] = driver.execute_async_script(RUN_AXE)
    if "error" in result:
        pytest.fail(f"axe failed in {driver.current_url}: {result['error']}")
    return [
        Violation(
            rule=found["id"],
            impact=found["impact"],
            help=found["help"],
            targets=tuple(selector(node["target"]) for node in found["nodes"]),
        )
        for found in result["violations"]
        if found["impact"] in BLOCKING
    ]


def axe_check(driver: WebDriver) -> None:
    """Fails the test on any serious or critical violation, naming rule, help and where."""
    violations = axe_violations(driver)
    assert not violations, f"accessibility violations in {driver.current_url}:\n" + "\n".join(
        f"- {violation.describe()}" for violation in violations
    )
