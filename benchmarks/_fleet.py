"""Section h: a fleet of K = 4 processes sharing one API, with and without ``fleet=``.

Each worker process (``_fleet_worker.py``) reads a quarter of the pages of section e's
hidden-capacity servers (queue, reject, quota); the parent starts them together, times
the run from that moment to the last one's end, and reads the server's counters. Per
mode: one client alone reading every page (a fixed C and ``"auto"``: its best is the
baseline), then the fleet with ``"auto"`` without and with ``fleet=``. Against the quota
also: four workers each told ``rate_limit=R`` without and with ``fleet=``, one of them
killed with SIGKILL a third of the way (how soon the others' throughput is back), and
Redis stopped a third of the way (no call may fail). Then the cost of the fleet on
section a's near-free server (``iterate`` with ``fleet=`` against a plain client, in
this process) and of one Redis round trip. The section starts its own ``redis-server``
and is skipped, with the reason, where there is none.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

import attrs

# The tests' own helper (run from the repository's root, as the benchmarks are): one way
# to run a redis-server for both.
from tests.redisserver import RedisServer, redis_binary

from ._capacity_server import CapacityServer, serve_capacity
from ._common import PER_PAGE, TOKEN, Skipped, load_ours, median
from ._server import REPO_ROOT, child_env, serve

K = 4
MODES = ("queue", "reject", "quota")
#: What ``--h-modes`` may name: the servers' modes, and the cost on the near-free server.
PARTS = (*MODES, "cost")


@attrs.frozen
class Plan:
    capacity: int
    service: float
    pages: dict[str, int]
    rate: float
    rounds: int
    timeout: float
    overhead_items: int
    overhead_rounds: int
    parts: tuple[str, ...] = PARTS  # what to run (``--h-modes``)


@attrs.frozen
class Run:
    """One run: ``workers`` processes, each a share of the pages, with these options."""

    label: str
    workers: int
    concurrency: int | str
    rate: float | None = None
    fleet: bool = False
    kill: bool = False  # SIGKILL worker 0 a third of the way
    stop_redis: bool = False  # stop Redis a third of the way


def runs_for(mode: str, plan: Plan) -> list[Run]:
    c = plan.capacity
    # Against the quota the baseline is the ideal, and a fixed C alone takes 40 s there.
    found = [] if mode == "quota" else [Run(f"one client, {c}", 1, c)]
    found += [
        Run("one client, auto", 1, "auto"),
        Run(f"{K} x auto", K, "auto"),
        Run(f"{K} x auto, fleet", K, "auto", fleet=True),
    ]
    if mode == "quota":
        r = plan.rate
        found += [
            Run(f"{K} x rate_limit={r:g}", K, c, rate=r),
            Run(f"{K} x rate_limit={r:g}, fleet", K, c, rate=r, fleet=True),
            Run("... one killed at 1/3", K, c, rate=r, fleet=True, kill=True),
            Run("... Redis stopped at 1/3", K, c, rate=r, fleet=True, stop_redis=True),
        ]
    return found


# --------------------------------------------------------------------------- Redis


@contextlib.contextmanager
def own_redis(cpu: int | None) -> Iterator[RedisServer]:
    """A ``redis-server`` of our own (the tests' helper), pinned to ``cpu``, nothing saved."""
    binary = redis_binary()
    if binary is None:
        raise Skipped("redis-server is not installed (apt-get install redis-server)")
    redis = RedisServer(binary, cpu=cpu).start()
    try:
        yield redis
    finally:
        redis.stop()


# --------------------------------------------------------------------------- one run


async def _spawn(argv: list[str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks._fleet_worker",
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO_ROOT,
        env=child_env(),
    )


def _shares(pages: int, workers: int) -> list[tuple[int, int]]:
    """(start page, pages) for each worker: consecutive ranges, as equal as can be."""
    base, extra = divmod(pages, workers)
    shares, start = [], 1
    for index in range(workers):
        count = base + (index < extra)
        shares.append((start, count))
        start += count
    return shares


async def run_once(
    run: Run,
    server: CapacityServer,
    redis: RedisServer,
    pages: int,
    limit: float,
    disrupt_at: float,
) -> dict[str, Any]:
    """Start the run's workers together; their times, progress and the server's counts."""
    redis.command("FLUSHALL")
    procs = []
    for start, count in _shares(pages, run.workers):
        rate = "-" if run.rate is None else str(run.rate)
        fleet = redis.url if run.fleet else "-"
        procs.append(
            await _spawn(
                [server.base_url, str(start), str(count), str(run.concurrency), rate, fleet]
            )
        )
    for proc in procs:
        assert proc.stdout is not None
        if (await proc.stdout.readline()).strip() != b"READY":
            raise RuntimeError("a fleet worker did not start")
    server.reset()
    loop = asyncio.get_running_loop()
    progress: list[list[tuple[float, int]]] = [[] for _ in procs]
    results: list[dict[str, Any] | None] = [None] * len(procs)
    ended: list[float] = []  # when each result came: a process's exit is not timed

    async def follow(index: int, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            if line.startswith(b"P "):
                progress[index].append((loop.time() - started, int(line.split()[2])))
            elif line.startswith(b"{"):
                results[index] = json.loads(line)
                ended.append(loop.time())

    started = loop.time()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"GO\n")
    followers = [asyncio.create_task(follow(i, p)) for i, p in enumerate(procs)]
    disruption = asyncio.create_task(_disrupt(run, procs[0], redis, disrupt_at))
    try:
        async with asyncio.timeout(limit):
            await asyncio.gather(*followers)
            for proc in procs:
                await proc.wait()
        elapsed, timed_out = max(ended, default=loop.time()) - started, False
    except TimeoutError:
        elapsed, timed_out = loop.time() - started, True
    finally:
        disrupted_at = await disruption if disruption.done() else None
        disruption.cancel()
        for task in followers:
            task.cancel()
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        if run.stop_redis:
            await asyncio.to_thread(redis.start)
    stats = await server.wait_idle()
    if disrupted_at is not None:
        disrupted_at -= started
    return _result(run, results, progress, elapsed, timed_out, disrupted_at, stats)


async def _disrupt(
    run: Run, first: asyncio.subprocess.Process, redis: RedisServer, at: float
) -> float | None:
    """SIGKILL the first worker, or stop Redis, ``at`` seconds in: when it happened."""
    if not (run.kill or run.stop_redis):
        return None
    await asyncio.sleep(at)
    if run.kill:
        first.send_signal(signal.SIGKILL)
    else:
        await asyncio.to_thread(redis.stop)
    return asyncio.get_running_loop().time()


def _items_at(progress: list[tuple[float, int]], when: float) -> int:
    """A worker's items read by ``when`` (seconds into the run), from its progress lines."""
    items = 0
    for at, seen in progress:
        if at > when:
            break
        items = seen
    return items


def recovery_after(
    progress: list[list[tuple[float, int]]], killed: int, killed_at: float, window: float = 1.0
) -> float | None:
    """Seconds after ``killed_at`` until the survivors read, over ``window`` seconds, at
    least 90 % of what the whole fleet read in the window before the kill; None if never
    while all of them were still reading."""
    before = max(0.0, killed_at - window)
    pace = sum(_items_at(p, killed_at) - _items_at(p, before) for p in progress) / (
        killed_at - before or 1.0
    )
    survivors = [p for index, p in enumerate(progress) if index != killed]
    first_done = min((p[-1][0] for p in survivors if p), default=killed_at)
    start = killed_at
    while start + window <= first_done:
        read = sum(_items_at(p, start + window) - _items_at(p, start) for p in survivors)
        if read / window >= 0.9 * pace:
            return start - killed_at
        start += 0.1
    return None


def _result(
    run: Run,
    results: list[dict[str, Any] | None],
    progress: list[list[tuple[float, int]]],
    elapsed: float,
    timed_out: bool,
    disrupted_at: float | None,
    stats: dict[str, Any],
) -> dict[str, Any]:
    done = [r for r in results if r is not None]
    errors = [r["error"] for r in done if r["error"]]
    if timed_out:
        errors.append("timed out")
    times = [r["seconds"] for r in done if not r["error"]]
    recovered = None
    if run.kill and disrupted_at is not None:
        recovered = recovery_after(progress, 0, disrupted_at)
    received = stats["received"]
    return {
        "seconds": elapsed,
        "errors": errors,
        "worker_seconds": [r["seconds"] if r else None for r in results],
        "spread": max(times) / min(times) if len(times) > 1 else None,
        "received": received,
        "rejected": stats["rejected"],
        "rejected_pct": 100.0 * stats["rejected"] / received if received else 0.0,
        "max_outstanding": stats["max_outstanding"],
        "disrupted_at": disrupted_at,
        "recovered_after_s": recovered,
    }


def _summary(runs: list[dict[str, Any]], killed: bool) -> dict[str, Any]:
    """Medians over rounds; a run that failed counts in ``errors``, not in the times."""
    ok = [r for r in runs if not r["errors"] or killed]
    spreads = [r["spread"] for r in ok if r["spread"] is not None]
    recovered = [r["recovered_after_s"] for r in runs if r["recovered_after_s"] is not None]
    return {
        "runs": runs,
        "median_s": median([r["seconds"] for r in ok]) if ok else None,
        "spread": median(spreads) if spreads else None,
        "requests": median([r["received"] for r in runs]),
        "rejected_pct": median([r["rejected_pct"] for r in runs]),
        "max_outstanding": max(r["max_outstanding"] for r in runs),
        "errors": sorted({e for r in runs for e in r["errors"]}),
        "failed_runs": sum(bool(r["errors"]) for r in runs),
        "recovered_after_s": max(recovered) if recovered else None,
    }


# --------------------------------------------------------------------------- the cost


async def _iterate_once(lib: Any, base_url: str, items: int, **options: Any) -> float:
    client = lib.SegmentsClient(base_url, TOKEN, allow_insecure_http=True, **options)
    started = time.perf_counter()
    seen = 0
    async with client:
        async for _item in client.segments.iterate(per_page=PER_PAGE, concurrency=16):
            seen += 1
    elapsed = time.perf_counter() - started
    if seen != items:
        raise RuntimeError(f"saw {seen} items, expected {items}")
    return elapsed


OVERHEAD: dict[str, dict[str, object]] = {
    "plain": {},
    "rate_limit=1e6": {"rate_limit": 1e6},
    "fleet": {"fleet": True},
    "fleet + rate_limit=1e6": {"fleet": True, "rate_limit": 1e6},
}


async def overhead(lib: Any, redis: RedisServer, items: int, rounds: int, cpu: int | None) -> Any:
    """``iterate`` on the near-free server: each contender's time, and plain's over it."""
    samples: dict[str, list[float]] = {name: [] for name in OVERHEAD}
    with serve(items, cpu) as base_url:
        for round_index in range(rounds + 1):  # the first round warms up, untimed
            names = list(OVERHEAD)
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                options = dict(OVERHEAD[name])
                if options.pop("fleet", False):
                    options["fleet"] = redis.url
                elapsed = await _iterate_once(lib, base_url, items, **options)
                if round_index:
                    samples[name].append(elapsed)
    plain = samples["plain"]
    return {
        "items": items,
        "rounds": rounds,
        "contenders": {
            name: {
                "median_s": median(times),
                "per_s": items / median(times),
                "plain_over_this": median([p / t for p, t in zip(plain, times, strict=True)]),
            }
            for name, times in samples.items()
        },
    }


async def round_trips(redis: RedisServer, calls: int = 500) -> dict[str, float]:
    """Median microseconds of one Redis command, as the library sends them."""
    from segments_async._fleet import BUDGET_SCRIPT, QUOTA_SCRIPT, open_fleet

    fleet = open_fleet(redis.url, "http://127.0.0.1:1", TOKEN)
    assert fleet is not None
    link = fleet._link  # the library's own link: its timeout and circuit included
    key = fleet.key
    scripts = {
        "quota lease": (
            link.script(QUOTA_SCRIPT),
            (f"{key}:q", f"{key}:m"),
            (5000, 1, "m", 2e6, 0),
        ),
        "retry budget sync": (link.script(BUDGET_SCRIPT), (f"{key}:b",), (-5, 500, 60, 500)),
    }
    found: dict[str, float] = {}
    try:
        for name, (script, keys, args) in scripts.items():
            times: list[float] = []
            while len(times) < calls:
                started = time.perf_counter()
                if await link.run(script, keys, args) is None:
                    # Over the library's 100 ms on a busy machine: the circuit opened.
                    found[f"{name}: unanswered"] = found.get(f"{name}: unanswered", 0) + 1
                    await asyncio.sleep(1.0)
                    continue
                times.append(time.perf_counter() - started)
            found[name] = median(times) * 1e6
    finally:
        await fleet.aclose()
    return found


# --------------------------------------------------------------------------- the section


async def bench(plan: Plan, server_cpu: int | None, progress: Any) -> dict[str, Any]:
    section: dict[str, Any] = {
        "workers": K,
        "capacity": plan.capacity,
        "service_s": plan.service,
        "rate": plan.rate,
        "rounds": plan.rounds,
        "timeout_s": plan.timeout,
        "modes": {},
        "skipped": {},
        "failed": {},
    }
    try:
        lib = _load_with_fleet()
        with own_redis(server_cpu) as redis:
            for mode in (mode for mode in MODES if mode in plan.parts):
                pages = plan.pages[mode]
                progress(f"    {mode}: {pages:,} pages ...")
                with serve_capacity(
                    mode,
                    total=pages * PER_PAGE,
                    capacity=plan.capacity,
                    service=plan.service,
                    rate=plan.rate,
                    cpu=server_cpu,
                ) as server:
                    section["modes"][mode] = await _bench_mode(plan, mode, server, redis, progress)
            if "cost" in plan.parts:
                progress("    overhead on the near-free server ...")
                section["overhead"] = await overhead(
                    lib, redis, plan.overhead_items, plan.overhead_rounds, server_cpu
                )
                section["round_trip_us"] = await round_trips(redis)
    except Skipped as exc:
        section["skipped"]["all"] = str(exc)
    return section


def _load_with_fleet() -> Any:
    lib = load_ours()
    if "fleet" not in lib.SegmentsClient.__init__.__code__.co_varnames:
        raise Skipped("SegmentsClient has no fleet= yet")
    return lib


def ideal_s(plan: Plan, mode: str) -> float:
    pages = plan.pages[mode]
    return pages / plan.rate if mode == "quota" else pages * plan.service / plan.capacity


async def _bench_mode(
    plan: Plan, mode: str, server: CapacityServer, redis: RedisServer, progress: Any
) -> dict[str, Any]:
    pages = plan.pages[mode]
    ideal = ideal_s(plan, mode)
    by_label: dict[str, list[dict[str, Any]]] = {}
    runs = runs_for(mode, plan)
    for round_index in range(plan.rounds):
        for run in runs:
            result = await run_once(run, server, redis, pages, plan.timeout, ideal / 3)
            by_label.setdefault(run.label, []).append(result)
            progress(
                f"    {mode} round {round_index + 1}: {run.label:<32} {result['seconds']:7.2f}s"
                f"  {', '.join(result['errors']) or 'ok'}"
            )
    summaries = {run.label: _summary(by_label[run.label], run.kill) for run in runs}
    alone = [
        s["median_s"]
        for label, s in summaries.items()
        if label.startswith("one client") and s["median_s"] is not None
    ]
    return {
        "pages": pages,
        "ideal_s": ideal,
        "one_client_best_s": min(alone) if alone else None,
        "runs": summaries,
    }
