"""The benchmark suite runs end to end at smoke size (no timing thresholds)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
HEADINGS = (
    "[a] Pagination throughput",
    "[b] Page decoding",
    "[c] Peak RSS while iterating",
    "[d] Per-call latency",
    "[e] Adaptive concurrency",
    "[f] Bulk create",
    "[g] CLI export",
    "[h] A fleet of processes",
)

for _module in ("httpx", "pydantic", "msgspec", "openapi_python_client"):
    pytest.importorskip(_module, reason="the benchmark extras are not installed")


@pytest.mark.parametrize("heading", HEADINGS, ids=lambda heading: heading[1])
def test_smoke_run_prints_the_section(heading: str) -> None:
    """`python -m benchmarks --smoke --only X` exits 0 and prints section X.

    One run per section, so that pytest-xdist spreads them over the workers: most of a
    section's time is spent waiting on its servers, not computing.
    """
    section = heading[1]
    completed = subprocess.run(  # noqa: S603 - our own module; a section letter of HEADINGS
        [sys.executable, "-m", "benchmarks", "--smoke", "--only", section],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=150,  # the slowest section takes well under a minute; this stops a hang
        check=False,
    )

    assert completed.returncode == 0, completed.stderr[-2000:] + completed.stdout[-2000:]
    assert heading in completed.stdout
    if section == "e":  # the gate's ratio in CPU time, from the jobs' own measurements
        assert "in CPU time (the host's steal left out): ratio" in completed.stdout
        assert "the gate alone (auto frozen at 64 / the same with" in completed.stdout
