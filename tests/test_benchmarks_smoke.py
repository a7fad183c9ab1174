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


def test_smoke_run_prints_every_section() -> None:
    """`python -m benchmarks --smoke` exits 0 and prints every section."""
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=150,  # the smoke run takes well under 90 s; this only stops a hang
        check=False,
    )

    assert completed.returncode == 0, completed.stderr[-2000:] + completed.stdout[-2000:]
    for heading in HEADINGS:
        assert heading in completed.stdout
