"""``--profile``: section a's ``ours`` runs under pyinstrument, to find the hot spots.

pyinstrument is not a declared extra (install it by hand); the profile covers a few
runs per mode after a warm-up run, with the server in its own process as usual.
"""

from __future__ import annotations

import asyncio
import importlib
from typing import Any

from ._common import Skipped
from ._pagination import MODES, run_ours

RUNS_PER_MODE = 5


async def _profiled(profiler_class: Any, base_url: str, total: int, concurrency: int) -> Any:
    await run_ours(base_url, concurrency)  # warm-up, not profiled
    with profiler_class(interval=0.0002, async_mode="disabled") as profiler:
        for _ in range(RUNS_PER_MODE):
            seen = await run_ours(base_url, concurrency)
            if seen != total:
                raise RuntimeError(f"saw {seen} items, expected {total}")
    return profiler


def profile_ours(base_url: str, total: int) -> str:
    try:
        pyinstrument: Any = importlib.import_module("pyinstrument")
    except ImportError as exc:
        raise Skipped("--profile needs pyinstrument (pip install pyinstrument)") from exc
    reports: list[str] = []
    for mode, concurrency in MODES:
        profiler = asyncio.run(_profiled(pyinstrument.Profiler, base_url, total, concurrency))
        reports.append(
            f"--- ours, {mode} (concurrency {concurrency}), {RUNS_PER_MODE} runs ---\n"
            + profiler.output_text(unicode=False, color=False, show_all=False)
        )
    return "\n".join(reports)
