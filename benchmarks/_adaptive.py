"""Section e: adaptive concurrency against a server with a hidden capacity.

For each mode of ``_capacity_server.py`` (queue, reject, quota) one server process
runs; every contender reads the same pages with ``iterate(per_page=100, concurrency=c)``
through a fresh client with the default ``RetryPolicy()``, for a fixed ``c`` in
(2, C, 64) and for ``"auto"`` (plus, in quota mode, a fixed C under the client's own
``rate_limit`` set to the quota). The server's counters are reset before each run and
read once it is idle again. A failure (``RateLimitError`` once retries or the retry
budget run out) or a run cut off by the time limit is a result shown in the table; a
contender the library does not accept yet (``concurrency="auto"`` or ``rate_limit``
refused with ``TypeError``/``ValueError``) is skipped with the library's message; any
other exception is a crash, as in the other sections.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import attrs

from . import _kinds
from ._capacity_server import CapacityServer, serve_capacity
from ._common import PER_PAGE, TOKEN, Skipped, load_ours, median, rotated

MODES = ("queue", "reject", "quota")
AUTO = "auto"
TIMED_OUT = "timed out"


@attrs.frozen
class Contender:
    label: str
    concurrency: int | str
    rate_limit: float | None = None


@attrs.frozen
class Plan:
    """What section e runs: the server's shape, the sizes per mode, the limits."""

    capacity: int
    service: float
    pages: dict[str, int]  # mode -> pages to read
    rate: float  # quota mode: requests a second
    rounds: int
    timeout: float  # seconds a contender may take before it is cut off
    # The ordinary servers (``_kinds.py``): kind -> job -> names to create or pages to read.
    kinds: dict[str, dict[str, int]] = attrs.field(factory=dict)
    kind_timeout: float = 10.0
    kind_rounds: int | None = None  # None: ``rounds``
    # The adaptive gate's own cost: job -> size, on the near-free server. Its own time
    # limit: both contenders must finish every round for a ratio (the kinds' 10 s cut
    # off a fixed 64 creating 20,000 names on a slow host, and with it the figure).
    gate: dict[str, int] = attrs.field(factory=dict)
    gate_rounds: int = 5
    gate_timeout: float = 60.0
    # The fixed concurrencies against the hidden capacity (default: 2, the capacity, 64).
    fixed: tuple[int, ...] = ()

    def contenders(self, mode: str) -> list[Contender]:
        fixed = sorted(set(self.fixed) if self.fixed else {2, self.capacity, 64})
        found = [Contender(str(c), c) for c in fixed] + [Contender(AUTO, AUTO)]
        if mode == "quota":
            label = f"{self.capacity} + rate_limit={self.rate:g}"
            found.append(Contender(label, self.capacity, self.rate))
        return found

    def ideal_s(self, mode: str) -> float:
        """The server's own bound: pages / R under a quota, pages * S / C otherwise."""
        pages = self.pages[mode]
        if mode == "quota":
            return pages / self.rate
        return pages * self.service / self.capacity


def _new_client(lib: ModuleType, base_url: str, contender: Contender) -> Any:
    # Fixed contenders run on the client as it is today: rate_limit only where asked for.
    options: dict[str, Any] = {"allow_insecure_http": True, "retry": lib.RetryPolicy()}
    if contender.rate_limit is not None:
        options["rate_limit"] = contender.rate_limit
    return lib.SegmentsClient(base_url, TOKEN, **options)


async def probe(lib: ModuleType, base_url: str, contender: Contender) -> None:
    """Raise ``Skipped`` if the library refuses this contender's options (one item read)."""
    try:
        client = _new_client(lib, base_url, contender)
    except (TypeError, ValueError) as exc:
        raise Skipped(f"SegmentsClient refuses rate_limit: {type(exc).__name__}: {exc}") from exc
    async with client:
        try:
            items = client.segments.iterate(per_page=PER_PAGE, concurrency=contender.concurrency)
            async with contextlib.aclosing(items):
                await anext(items)
        except (TypeError, ValueError) as exc:
            what = f"concurrency={contender.concurrency!r}"
            raise Skipped(f"iterate refuses {what}: {type(exc).__name__}: {exc}") from exc


async def run_once(
    lib: ModuleType, base_url: str, contender: Contender, expected: int, limit: float
) -> dict[str, Any]:
    """One timed read of every item: seconds, items seen, and the error if any."""
    client = _new_client(lib, base_url, contender)
    seen = 0
    error: str | None = None
    crashed = False
    scope = asyncio.timeout(limit)
    gc.collect()
    started = time.perf_counter()
    try:
        async with scope, client:
            items = client.segments.iterate(per_page=PER_PAGE, concurrency=contender.concurrency)
            async with contextlib.aclosing(items):
                async for _item in items:
                    seen += 1
    except TimeoutError as exc:
        error = TIMED_OUT if scope.expired() else type(exc).__name__
        crashed = not scope.expired()
    except lib.SegmentsError as exc:  # RateLimitError and the like: a result
        error = type(exc).__name__
    except Exception as exc:  # anything else escaping the library is a bug: a crash
        error = f"{type(exc).__name__}: {exc}"
        crashed = True
    elapsed = time.perf_counter() - started
    if error is None and seen != expected:
        error, crashed = f"saw {seen} items, expected {expected}", True
    return {"seconds": elapsed, "items": seen, "error": error, "crashed": crashed}


def _summary(runs: list[dict[str, Any]], pages: int) -> dict[str, Any]:
    ok = [run["seconds"] for run in runs if run["error"] is None]
    errors = [run["error"] for run in runs if run["error"] is not None]
    median_s = median(ok) if ok else None
    return {
        "runs": runs,
        "ok_runs": len(ok),
        "median_s": median_s,
        "pages_per_s": pages / median_s if median_s else None,
        "requests": median([run["received"] for run in runs]),
        "rejected": median([run["rejected"] for run in runs]),
        "rejected_pct": median([_pct(run["rejected"], run["received"]) for run in runs]),
        # The worst run: the target is that the client never floods the server.
        "max_outstanding": max(run["max_outstanding"] for run in runs),
        "errors": errors,
        "status": _status(runs),
    }


def _pct(part: float, whole: float) -> float:
    return 100.0 * part / whole if whole else 0.0


def _status(runs: list[dict[str, Any]]) -> str:
    """ "ok", or the first error, after how long (median), and in how many of the runs."""
    failed = [run for run in runs if run["error"] is not None]
    if not failed:
        return "ok"
    after = median([run["seconds"] for run in failed])
    status = f"{failed[0]['error']} after {after:.1f} s"
    return status if len(runs) == 1 else f"{status} ({len(failed)}/{len(runs)} runs)"


def _auto_over_best_fixed(
    by_round: list[dict[str, dict[str, Any]]], fixed: Sequence[str]
) -> float | None:
    """Median over rounds of auto's time / the fastest fixed contender's time that round."""
    ratios = []
    for results in by_round:
        auto = results.get(AUTO)
        times = [
            results[label]["seconds"]
            for label in fixed
            if label in results and results[label]["error"] is None
        ]
        if auto is not None and auto["error"] is None and times:
            ratios.append(auto["seconds"] / min(times))
    return median(ratios) if ratios else None


async def _bench_mode(
    lib: ModuleType, server: CapacityServer, plan: Plan, mode: str, progress: Any
) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    pages = plan.pages[mode]
    expected = pages * PER_PAGE
    skipped: dict[str, str] = {}
    crashed: dict[str, str] = {}
    runnable: list[Contender] = []
    for contender in plan.contenders(mode):
        try:
            await probe(lib, server.base_url, contender)
            runnable.append(contender)
        except Skipped as exc:
            skipped[contender.label] = str(exc)
        await server.wait_idle()
    by_round: list[dict[str, dict[str, Any]]] = []
    timed_out: set[str] = set()
    for round_index in range(plan.rounds):
        results: dict[str, dict[str, Any]] = {}
        for contender in rotated_contenders(runnable, round_index):
            if contender.label in timed_out or contender.label in crashed:
                continue  # one cut-off run says enough; repeating it only costs minutes
            server.reset()
            run = await run_once(lib, server.base_url, contender, expected, plan.timeout)
            run |= {k: v for k, v in (await server.wait_idle()).items() if k != "mode"}
            progress(
                f"    {mode} round {round_index + 1}: {contender.label:<22}"
                f" {run['seconds']:7.2f}s  {run['error'] or 'ok'}"
            )
            results[contender.label] = run
            if run["error"] == TIMED_OUT:
                timed_out.add(contender.label)
            if run["crashed"]:
                crashed[contender.label] = f"{mode}: {run['error']}"
        by_round.append(results)
    contenders = {
        c.label: _summary([r[c.label] for r in by_round if c.label in r], pages)
        for c in runnable
        if any(c.label in r for r in by_round)
    }
    fixed = [c.label for c in runnable if isinstance(c.concurrency, int) and c.rate_limit is None]
    data = {
        "pages": pages,
        "ideal_s": plan.ideal_s(mode),
        "contenders": contenders,
        "fixed": fixed,
        "auto_over_best_fixed": _auto_over_best_fixed(by_round, fixed),
    }
    return data, skipped, crashed


def rotated_contenders(contenders: list[Contender], round_index: int) -> list[Contender]:
    by_label = {c.label: c for c in contenders}
    return [by_label[label] for label in rotated(list(by_label), round_index)]


async def bench(plan: Plan, server_cpu: int | None, progress: Any) -> dict[str, Any]:
    section: dict[str, Any] = {
        "capacity": plan.capacity,
        "service_s": plan.service,
        "rate": plan.rate,
        "burst": max(1.0, plan.rate / 10),
        "rounds": plan.rounds,
        "timeout_s": plan.timeout,
        "modes": {},
        "skipped": {},
        "failed": {},
    }
    try:
        lib = load_ours()
    except Skipped as exc:
        section["skipped"]["all"] = str(exc)
        return section
    for mode in MODES:
        progress(f"    {mode}: {plan.pages[mode]:,} pages ...")
        with serve_capacity(
            mode,
            total=plan.pages[mode] * PER_PAGE,
            capacity=plan.capacity,
            service=plan.service,
            rate=plan.rate,
            cpu=server_cpu,
        ) as server:
            data, skipped, crashed = await _bench_mode(lib, server, plan, mode, progress)
        section["modes"][mode] = data
        for label, why in skipped.items():
            section["skipped"].setdefault(label, why)
        section["failed"] |= {f"{label} ({mode})": why for label, why in crashed.items()}
    if plan.kinds:
        rounds = section["kind_rounds"] = plan.kind_rounds or plan.rounds
        progress("    ordinary servers: " + ", ".join(plan.kinds) + " ...")
        section["kinds"] = await _kinds.bench_kinds(
            lib, plan.kinds, rounds, plan.kind_timeout, server_cpu, progress
        )
    if plan.gate:
        progress("    the adaptive gate's own cost ...")
        section["gate"] = await _kinds.bench_gate(
            lib, plan.gate, plan.gate_rounds, plan.gate_timeout, server_cpu, progress
        )
        section["gate_bookkeeping_us"] = _kinds.gate_bookkeeping(lib)
    return section
