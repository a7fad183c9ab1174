"""Shared bits: constants, the import guard for ``ours``, statistics, machine facts."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from types import ModuleType

TOKEN = "bench-token"
PER_PAGE = 100
CONCURRENCY = 16
LIST_PATH = "/v2.3/data/segments"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}


class Skipped(Exception):
    """A contender cannot run here; the message says why and the report shows it."""


def load_ours() -> ModuleType:
    """Import segments_async, or raise ``Skipped`` while its core is not there yet."""
    try:
        module = importlib.import_module("segments_async")
        module.SegmentsClient  # noqa: B018 - probe the public name, not just the package
    except (ImportError, AttributeError) as exc:
        raise Skipped(f"segments_async core not importable yet ({exc})") from exc
    return module


def cpu_plan() -> tuple[int | None, int | None]:
    """(server CPU, client CPU): two distinct CPUs where there are two, else no pinning."""
    if not hasattr(os, "sched_getaffinity"):
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return cpus[0], cpus[1]


def cpu_ticks() -> tuple[int, int] | None:
    """(every CPU tick, the ticks the hypervisor stole) since boot, summed over the CPUs,
    from ``/proc/stat``; None where there is none (not Linux)."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    if len(fields) < 9 or fields[0] != "cpu":
        return None
    # user nice system idle iowait irq softirq steal (guest time is counted in user)
    ticks = [int(field) for field in fields[1:9]]
    return sum(ticks), ticks[7]


def stolen_share(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """The share of the CPUs' time between two ``cpu_ticks`` that the host took (steal: a
    virtual CPU that wanted to run and was not let), or None when unknown."""
    if before is None or after is None or after[0] <= before[0]:
        return None
    return (after[1] - before[1]) / (after[0] - before[0])


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def p90(values: Sequence[float]) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=10, method="inclusive")[8]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_facts(server_cpu: int | None, client_cpu: int | None) -> dict[str, object]:
    return {
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "server_cpu": server_cpu,
        "client_cpu": client_cpu,
        "versions": {
            dist: _version(dist)
            for dist in (
                "aiohttp",
                "attrs",
                "cattrs",
                "orjson",
                "httpx",
                "pydantic",
                "msgspec",
                "openapi-python-client",
            )
        },
    }


def rotated(items: Sequence[str], round_index: int) -> list[str]:
    """``items`` starting at a different one each round, so no contender always goes first."""
    if not items:
        return []
    shift = round_index % len(items)
    return [*items[shift:], *items[:shift]]


def ratio_medians(
    samples: dict[str, list[float]], baseline: str, others: Sequence[str]
) -> dict[str, float]:
    """Median over rounds of ``other[r] / baseline[r]``, per other contender."""
    base = samples[baseline]
    return {
        other: median([theirs / ours for theirs, ours in zip(samples[other], base, strict=True)])
        for other in others
        if other != baseline and other in samples
    }
