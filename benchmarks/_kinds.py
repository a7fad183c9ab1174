"""Section e, second part: ``"auto"`` on ordinary servers, and what its gate costs.

For each kind of ``_app_server.py`` (a Python app, the same with 3 ms awaited, uniform and
lognormal latency), one server process runs; every contender does the same job through a
fresh client with the default ``RetryPolicy()``: ``create_many`` of N names, and
``iterate(per_page=100)`` over P pages, for a fixed concurrency in (4, 8, 16, 32, 64) and
for ``"auto"``, in rotated order each round. ``auto / best fixed`` is auto's median time
over the best fixed concurrency's (the one with the lowest median time over the rounds).
Beside it, a stricter figure: the median over rounds of auto's time over the fastest of
the five fixed ones *in that round*, which favours the fixed side (the least of five noisy
times), and the same figure for each fixed concurrency against the best of the other four
(how far that bias alone goes). A contender that takes longer than the kind's time limit is
cut off and not run again (it is not the best).

The gate's own cost: on section a's near-free server, ``concurrency="auto"`` with the
adaptive limit frozen at 64 (it still learns from every answer, but the limit stays) and a
pool of 64 against a fixed 64, for both jobs; the median per-round ratio of times, and
its rounds' spread (the machine's noise, which moves one round's ratio by up to a fifth).
Beside it, the gate's own work timed without I/O (``gate_bookkeeping``), as a share of
what a request costs at a fixed 64; and a third contender, the frozen one with the gate's
work taken out (every request let in at once, nothing recorded): frozen over it is the
gate's cost end to end, the rest of frozen over fixed is the bulk paginator's against the
fixed one (which, at a like limit, keeps fewer requests out: see ``benchmarks/README.md``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import importlib
import math
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from ._app_server import serve_app
from ._common import PER_PAGE, TOKEN, median, rotated
from ._server import serve

FIXED = (4, 8, 16, 32, 64)
AUTO = "auto"
FROZEN = "auto frozen at 64"
UNGATED = "frozen, gate off"
WORKLOADS = ("create_many", "iterate")
TIMED_OUT = "timed out"


async def run_job(
    lib: ModuleType,
    base_url: str,
    workload: str,
    size: int,
    concurrency: int | str,
    limit: float,
    *,
    frozen: int | None = None,
    gated: bool = True,
) -> dict[str, Any]:
    """One timed job: seconds, the CPU time this process took (the client's: the server is
    another process), and the error if any (a short count is one). ``gated=False`` with
    ``frozen``: the frozen gate's own work is taken out too (``_ungate_flow``)."""
    options: dict[str, Any] = {"allow_insecure_http": True, "retry": lib.RetryPolicy()}
    if frozen is not None:
        # A pool the size of the frozen limit: as many bulk workers as a fixed one has, so
        # that only the gate differs (with more workers than places, each answer also
        # hands a place to a parked worker, which a fixed concurrency never does).
        options["max_connections"] = frozen
    client = lib.SegmentsClient(base_url, TOKEN, **options)
    if frozen is not None:
        _freeze(client, frozen)
        if not gated:
            _ungate_flow(client._shared.flow, frozen)
    done = 0
    error: str | None = None
    scope = asyncio.timeout(limit)
    gc.collect()
    started = time.perf_counter()
    cpu_started = time.process_time()
    try:
        async with scope, client:
            if workload == "create_many":
                names = (f"bench-{i}" for i in range(size))
                results = client.segments.create_many(names, concurrency=concurrency)
                async with contextlib.aclosing(results):
                    async for result in results:
                        done += result.ok
                expected = size
            else:
                items = client.segments.iterate(per_page=PER_PAGE, concurrency=concurrency)
                async with contextlib.aclosing(items):
                    async for _item in items:
                        done += 1
                expected = size * PER_PAGE
    except TimeoutError:
        error = TIMED_OUT if scope.expired() else "TimeoutError"
    except lib.SegmentsError as exc:
        error = type(exc).__name__
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    if error is None and done != expected:
        error = f"{done} of {expected} done"
    return {"seconds": elapsed, "cpu_s": cpu, "error": error}


def _freeze(client: Any, level: int) -> None:
    """Pin the client's adaptive limit at ``level``: it still records every answer."""
    _freeze_flow(client._shared.flow, level)


def _freeze_flow(flow: Any, level: int) -> None:
    adaptive = flow.adaptive

    class Frozen(type(adaptive)):  # type: ignore[misc]
        # Flow reads the limit worked out last (``_current``), which only ``_update`` sets.
        def _update(self) -> None:
            self._current = level

    frozen = Frozen(adaptive.maximum)
    frozen._update()
    flow._adaptive = frozen
    flow._gate.capacity = level


def _ungate_flow(flow: Any, level: int) -> None:
    """Take the frozen gate's own work out: every ``"auto"`` request is let in at once
    with one ticket made beforehand, its answer is not recorded, and a bulk worker sees
    ``level`` places free. With a pool of ``level``, as many requests are out as when
    frozen (the pool holds them), so that only the gate's work differs."""
    ticket = flow.adaptive.ticket(level)

    class Ungated(type(flow)):  # type: ignore[misc]
        __slots__ = ()

        def try_admit(self) -> Any:
            return ticket

        def done(self, ticket: Any, outcome: Any) -> None:
            return None

        def spare(self) -> int:
            return level

    flow.__class__ = Ungated


def gate_bookkeeping(lib: ModuleType, level: int = 64, requests: int = 100_000) -> float:
    """Microseconds of the adaptive gate's own work per request, frozen at ``level`` with
    ``level`` requests in flight, nothing sent: a place taken (``Flow.try_admit``), an
    answer learnt from and its place given back (``Flow.done``), and a bulk worker's look
    at the places free (``Flow.spare``). The best of five runs (the least disturbed).
    Called with the event loop running (the flow reads its clock)."""
    flow_module = importlib.import_module(f"{lib.__name__}._flow")
    transport = importlib.import_module(f"{lib.__name__}._transport")
    flow = flow_module.Flow(rate=None, max_connections=level)
    _freeze_flow(flow, level)
    answer = transport.Outcome(status=201, headers={}, body=b"{}")
    held = collections.deque(flow.try_admit() for _ in range(level))
    if None in held:
        raise RuntimeError(f"the frozen gate let fewer than {level} in")
    best = math.inf
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(requests):
            flow.done(held.popleft(), answer)
            held.append(flow.try_admit())
            flow.spare()
        best = min(best, time.perf_counter() - started)
    if None in held:
        raise RuntimeError("the frozen gate turned a request away")
    return best / requests * 1e6


def _ratio_over_rounds(
    by_round: list[dict[str, dict[str, Any]]], name: str, against: Callable[[dict[str, Any]], bool]
) -> float | None:
    """Median over rounds of ``name``'s time over the fastest of those ``against`` picks."""
    ratios = []
    for results in by_round:
        mine = results.get(name)
        others = [
            run["seconds"]
            for label, run in results.items()
            if label != name and run["error"] is None and against({"label": label})
        ]
        if mine is not None and mine["error"] is None and others:
            ratios.append(mine["seconds"] / min(others))
    return median(ratios) if ratios else None


def _auto_over_best_median(contenders: dict[str, dict[str, Any]]) -> float | None:
    """Auto's median time over the lowest median time of the fixed contenders."""
    auto = contenders[AUTO]["median_s"]
    fixed = [c["median_s"] for label, c in contenders.items() if label != AUTO]
    fixed = [m for m in fixed if m is not None]
    return auto / min(fixed) if auto is not None and fixed else None


def _fixed_other_than(level: int) -> Callable[[dict[str, Any]], bool]:
    """Picks the fixed contenders other than ``level``."""
    return lambda contender: contender["label"] not in (AUTO, str(level))


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [run["seconds"] for run in runs if run["error"] is None]
    errors = [run["error"] for run in runs if run["error"] is not None]
    return {
        "median_s": median(ok) if ok else None,
        "ok_runs": len(ok),
        "runs": len(runs),
        "errors": errors,
    }


async def _compare(
    lib: ModuleType,
    base_url: str,
    workload: str,
    size: int,
    contenders: dict[str, tuple[int | str, int | None]],
    rounds: int,
    limit: float,
    progress: Any,
    title: str,
    *,
    ungated: frozenset[str] | set[str] = frozenset(),
) -> list[dict[str, dict[str, Any]]]:
    """Every contender once per round, rotated; contenders cut off once are dropped. Those
    in ``ungated`` run frozen with the gate's work taken out."""
    by_round: list[dict[str, dict[str, Any]]] = []
    dropped: set[str] = set()
    await run_job(lib, base_url, workload, max(1, size // 10), 16, limit)  # warm-up
    for round_index in range(rounds):
        results: dict[str, dict[str, Any]] = {}
        for label in rotated(list(contenders), round_index):
            if label in dropped:
                continue
            concurrency, frozen = contenders[label]
            run = await run_job(
                lib,
                base_url,
                workload,
                size,
                concurrency,
                limit,
                frozen=frozen,
                gated=label not in ungated,
            )
            progress(
                f"    {title} {workload} round {round_index + 1}: {label:<18}"
                f" {run['seconds']:7.2f}s  {run['error'] or 'ok'}"
            )
            results[label] = run
            if run["error"] is not None:
                dropped.add(label)
        by_round.append(results)
    return by_round


async def bench_kinds(
    lib: ModuleType,
    sizes: dict[str, dict[str, int]],
    rounds: int,
    limit: float,
    server_cpu: int | None,
    progress: Any,
) -> dict[str, Any]:
    """Auto against fixed concurrencies on each kind of ordinary server, both jobs."""
    contenders: dict[str, tuple[int | str, int | None]] = {str(c): (c, None) for c in FIXED}
    contenders[AUTO] = (AUTO, None)
    kinds: dict[str, Any] = {}
    for kind, jobs in sizes.items():
        pages = jobs.get("iterate", 1)
        with serve_app(kind, total=pages * PER_PAGE, cpu=server_cpu) as base_url:
            kinds[kind] = {}
            for workload in WORKLOADS:
                size = jobs[workload]
                by_round = await _compare(
                    lib, base_url, workload, size, contenders, rounds, limit, progress, kind
                )
                summaries = {
                    label: _summary([r[label] for r in by_round if label in r])
                    for label in contenders
                }
                kinds[kind][workload] = {
                    "size": size,
                    "contenders": summaries,
                    "auto_over_best_fixed": _auto_over_best_median(summaries),
                    "auto_over_best_of_round": _ratio_over_rounds(
                        by_round, AUTO, lambda c: c["label"] != AUTO
                    ),
                    # The same per-round figure for each fixed one against the other four.
                    "fixed_over_best_other_of_round": {
                        str(c): _ratio_over_rounds(by_round, str(c), _fixed_other_than(c))
                        for c in FIXED
                    },
                }
    return kinds


async def bench_gate(
    lib: ModuleType,
    sizes: dict[str, int],
    rounds: int,
    limit: float,
    server_cpu: int | None,
    progress: Any,
) -> dict[str, Any]:
    """The adaptive gate's own cost: auto frozen at 64 against a fixed 64."""
    contenders: dict[str, tuple[int | str, int | None]] = {
        "64": (64, None),
        FROZEN: (AUTO, 64),
        UNGATED: (AUTO, 64),
    }
    gate: dict[str, Any] = {}
    with serve(max(sizes.get("iterate", 1) * PER_PAGE, 1000), server_cpu) as base_url:
        for workload in WORKLOADS:
            size = sizes[workload]
            by_round = await _compare(
                lib,
                base_url,
                workload,
                size,
                contenders,
                rounds,
                limit,
                progress,
                "gate",
                ungated={UNGATED},
            )
            # Round by round: their spread is the machine's noise, against which the
            # median is read.
            per_round = _per_round_ratios(by_round, FROZEN, "64")
            # The same in CPU time: what the host takes (steal) counts in a job's seconds
            # and not in its CPU time, and a near-free server leaves the client its own
            # bottleneck, so that the CPU a job took is its cost without the host's pauses.
            cpu_per_round = _per_round_ratios(by_round, FROZEN, "64", "cpu_s")
            # The gate's own cost end to end: the same paginator and workers without it.
            alone = _per_round_ratios(by_round, FROZEN, UNGATED)
            cpu_alone = _per_round_ratios(by_round, FROZEN, UNGATED, "cpu_s")
            gate[workload] = {
                "size": size,
                "contenders": {
                    label: _summary([r[label] for r in by_round if label in r])
                    for label in contenders
                },
                "frozen_over_fixed": median(per_round) if per_round else None,
                "per_round": per_round,
                "cpu_over_fixed": median(cpu_per_round) if cpu_per_round else None,
                "cpu_per_round": cpu_per_round,
                "over_ungated": median(alone) if alone else None,
                "over_ungated_per_round": alone,
                "cpu_over_ungated": median(cpu_alone) if cpu_alone else None,
                "cpu_over_ungated_per_round": cpu_alone,
            }
    return gate


def _per_round_ratios(
    by_round: list[dict[str, dict[str, Any]]], mine: str, other: str, key: str = "seconds"
) -> list[float]:
    """``mine``'s time (or ``key``) over ``other``'s, round by round (both done)."""
    return [
        results[mine][key] / results[other][key]
        for results in by_round
        if mine in results
        and other in results
        and results[mine]["error"] is None
        and results[other]["error"] is None
    ]
