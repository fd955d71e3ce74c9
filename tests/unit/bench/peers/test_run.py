"""The peers' runner measures its own process: its peak RSS is its own VmHWM, not
``getrusage``'s ``ru_maxrss``, which on Linux survives exec and so, in a child forked from
a larger process (the benchmark), reports the parent's memory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import bench

RUN = Path(bench.__file__).parent / "peers" / "run.py"
CHILD = f"""
import json, resource, runpy
run = runpy.run_path({str(RUN)!r})
print(json.dumps({{
    "own": run["peak_rss_mb"](),
    "getrusage": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}}))
"""


def test_a_child_of_a_large_process_reports_its_own_peak() -> None:
    ballast = b"\x01" * (600 * 2**20)  # 600 MB resident in this (the parent) process
    # preexec_fn makes Python fork (not vfork) before exec, as the benchmark's parents did.
    out = subprocess.run(
        [sys.executable, "-c", CHILD],
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=lambda: None,
    )
    figures = json.loads(out.stdout)
    assert len(ballast) == 600 * 2**20
    assert figures["getrusage"] > 600  # the parent's memory, which the child never had
    assert 10 < figures["own"] < 300  # an interpreter with Elasticsearch's client loaded
