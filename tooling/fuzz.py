"""schemathesis against a running API's OpenAPI document, authenticated: every operation,
generated valid and invalid inputs, and the checks that matter to clients: no server
error, and status codes, content types and bodies as the schema documents them.

Runs schemathesis's CLI (``python -m schemathesis.cli``) and reads its summary.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass, field

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
# Revoking keys would revoke the fuzzer's own key half-way (tested on its own elsewhere).
EXCLUDE_PATH_REGEX = r"^/v1/admin/keys/"

_GENERATED = re.compile(r"(\d+) generated")
_FAILURE = re.compile(r"❌ (ST\d+) ([^:\n]+): (\d+)")


@dataclass
class FuzzResult:
    cases: int
    failures: dict[str, int] = field(default_factory=dict)  # "ST100 Server error" -> count
    output: str = ""

    @property
    def server_errors(self) -> int:
        return sum(n for name, n in self.failures.items() if "server error" in name.lower())


def run_schemathesis(
    base_url: str, key: str, *, max_examples: int, seed: int = 1, timeout_s: float = 1800
) -> FuzzResult:
    cmd = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{base_url}/schema/openapi.json",
        "--header",
        f"Authorization: Bearer {key}",
        "--checks",
        ",".join(CHECKS),
        "--exclude-path-regex",
        EXCLUDE_PATH_REGEX,
        "--phases",
        "examples,fuzzing",
        "--max-examples",
        str(max_examples),
        "--seed",
        str(seed),
        "--wait-for-schema",
        "60",
        "--request-timeout",
        "60",
        "--no-color",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    output = proc.stdout + proc.stderr
    generated = _GENERATED.search(output)
    if generated is None:
        raise RuntimeError(f"schemathesis did not run:\n{output[-3000:]}")
    failures = {f"{code} {name.strip()}": int(n) for code, name, n in _FAILURE.findall(output)}
    return FuzzResult(int(generated.group(1)), failures, output)
