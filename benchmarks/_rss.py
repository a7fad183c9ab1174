"""Section c: peak RSS while iterating N items with 16 requests in flight.

Each measurement runs in a fresh interpreter (``python -m benchmarks._rss``) that
imports what it needs, records ``ru_maxrss`` as the baseline, iterates every item
(consuming and discarding it), and records ``ru_maxrss`` again. Memory that stays
bounded by the window shows up as equal peaks for a small and a ten-times-larger
data set.

Linux carries ``ru_maxrss`` across ``execve`` from the process that called it, so a
child spawned straight from this (large) benchmark process would report the parent's
size as its own peak. The child is therefore started through a bare ``python -S``
launcher, whose own ~10 MiB is below any baseline measured here. ``VmHWM`` (the peak
of the child's own address space) is recorded beside it as a cross-check.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time
from typing import Any

from . import _floor
from ._common import CONCURRENCY, PER_PAGE, TOKEN, Skipped, load_ours, median, rotated
from ._server import REPO_ROOT, child_env, serve

OURS = "ours"
FLOOR = "floor"
KIB_PER_MIB = 1024
# Spawns argv[1:] from a small process, so the child's ru_maxrss starts near zero.
LAUNCHER = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"


async def _iterate_ours(base_url: str) -> int:
    segments_async = load_ours()
    client = segments_async.SegmentsClient(base_url, token=TOKEN, allow_insecure_http=True)
    seen = 0
    async with client:
        async for _item in client.segments.iterate(per_page=PER_PAGE, concurrency=CONCURRENCY):
            seen += 1
    return seen


async def _iterate_floor(base_url: str) -> int:
    seen = 0
    async with _floor.new_session() as session:
        async for page in _floor.iter_pages(session, base_url, CONCURRENCY):
            for _item in page.items:
                seen += 1
    return seen


def _maxrss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _vm_hwm_kib() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def child_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._rss")
    parser.add_argument("--contender", choices=(OURS, FLOOR), required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--expected", type=int, required=True)
    args = parser.parse_args(argv)
    iterate = _iterate_ours if args.contender == OURS else _iterate_floor
    if args.contender == OURS:
        load_ours()  # imported before the baseline, like the floor's aiohttp
    baseline = _maxrss_kib()
    started = time.perf_counter()
    seen = asyncio.run(iterate(args.base_url))
    elapsed = time.perf_counter() - started
    peak = _maxrss_kib()
    if seen != args.expected:
        raise SystemExit(f"saw {seen} items, expected {args.expected}")
    report = {
        "baseline_kib": baseline,
        "peak_kib": peak,
        "vm_hwm_kib": _vm_hwm_kib(),
        "seconds": elapsed,
    }
    print(json.dumps(report))


def _measure(name: str, base_url: str, expected: int) -> dict[str, float]:
    completed = subprocess.run(
        [
            sys.executable,
            "-S",
            "-c",
            LAUNCHER,
            sys.executable,
            "-m",
            "benchmarks._rss",
            "--contender",
            name,
            "--base-url",
            base_url,
            "--expected",
            str(expected),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO_ROOT,
        env=child_env(),
        check=False,
    )
    if completed.returncode != 0:
        said = (completed.stderr or completed.stdout).strip().splitlines()
        raise RuntimeError(said[-1] if said else f"exit status {completed.returncode}")
    result: dict[str, float] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def bench(sizes: tuple[int, int], repeats: int, server_cpu: int | None) -> dict[str, Any]:
    names = [FLOOR]
    skipped: dict[str, str] = {}
    try:
        load_ours()
        names.insert(0, OURS)
    except Skipped as exc:
        skipped[OURS] = str(exc)
    failed: dict[str, str] = {}
    raw: dict[str, dict[int, list[dict[str, float]]]] = {name: {} for name in names}
    for size in sizes:
        with serve(size, server_cpu) as base_url:
            for repeat in range(repeats):
                for name in rotated(names, repeat):
                    if name in failed:
                        continue
                    try:
                        raw[name].setdefault(size, []).append(_measure(name, base_url, size))
                    except (RuntimeError, subprocess.TimeoutExpired) as exc:
                        failed[name] = str(exc)

    return summarize(raw, failed, skipped, sizes, repeats)


def summarize(
    raw: dict[str, dict[int, list[dict[str, Any]]]],
    failed: dict[str, str],
    skipped: Any,
    sizes: tuple[int, int],
    repeats: int,
) -> dict[str, Any]:
    """The medians of each contender's fresh-process measurements, and its growth from the
    smaller size to the larger one (sections c and f)."""
    small, large = sizes
    contenders: dict[str, Any] = {}
    for name, by_size in raw.items():
        if name in failed:
            continue
        summary: dict[str, Any] = {}
        for size, runs in by_size.items():
            summary[str(size)] = {
                "baseline_mib": median([r["baseline_kib"] for r in runs]) / KIB_PER_MIB,
                "peak_mib": median([r["peak_kib"] for r in runs]) / KIB_PER_MIB,
                "vm_hwm_mib": median([r["vm_hwm_kib"] or 0 for r in runs]) / KIB_PER_MIB,
                "seconds": median([r["seconds"] for r in runs]),
                "runs": runs,
            }
        summary["growth_mib"] = summary[str(large)]["peak_mib"] - summary[str(small)]["peak_mib"]
        contenders[name] = summary
    return {
        "sizes": list(sizes),
        "repeats": repeats,
        "contenders": contenders,
        "skipped": skipped,
        "failed": failed,
    }


if __name__ == "__main__":
    child_main()
