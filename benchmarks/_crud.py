"""Section d: latency of single create / update / delete calls, ours against raw aiohttp.

Each round opens one client per contender and warms its connection with a few calls
of each kind; then, per operation, it times ``calls`` sequential calls per contender,
one ``perf_counter_ns`` pair per call, interleaving the contenders in short slices so
that a slow phase of a shared machine hits both alike.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import orjson

from . import _floor
from ._common import LIST_PATH, TOKEN, Skipped, load_ours, median, p90, rotated
from ._server import segment_id

OPERATIONS = ("create", "update", "delete")
OURS = "ours"
FLOOR = "floor"
WARM_CALLS = 3
SLICES = 10

Timings = dict[str, list[float]]  # operation -> µs per call


Call = Callable[[int], Awaitable[object]]
Calls = dict[str, Call]  # operation -> one call, given the call's index


@contextlib.asynccontextmanager
async def ours_calls(base_url: str, calls: int) -> AsyncIterator[Calls]:
    segments_async = load_ours()
    ids = [segment_id(i) for i in range(max(calls, WARM_CALLS))]
    client = segments_async.SegmentsClient(base_url, token=TOKEN, allow_insecure_http=True)
    async with client:
        segments = client.segments
        yield {
            "create": lambda i: segments.create(f"bench {i}"),
            "update": lambda i: segments.update(ids[i], f"renamed {i}"),
            "delete": lambda i: segments.delete(ids[i]),
        }


@contextlib.asynccontextmanager
async def floor_calls(base_url: str, calls: int) -> AsyncIterator[Calls]:
    url = base_url + LIST_PATH
    ids = [segment_id(i) for i in range(max(calls, WARM_CALLS))]
    json_headers = {"Content-Type": "application/json"}
    async with _floor.new_session() as session:

        async def create(index: int) -> _floor.FloorSegment:
            body = orjson.dumps({"name": f"bench {index}"})
            async with session.post(url, data=body, headers=json_headers) as response:
                if response.status != 200:
                    raise _floor.FloorError(f"status {response.status}")
                return _floor.decode_segment(await response.read())

        async def update(index: int) -> _floor.FloorSegment:
            body = orjson.dumps({"name": f"renamed {index}"})
            async with session.put(f"{url}/{ids[index]}", data=body, headers=json_headers) as r:
                if r.status != 200:
                    raise _floor.FloorError(f"status {r.status}")
                return _floor.decode_segment(await r.read())

        async def delete(index: int) -> None:
            async with session.delete(f"{url}/{ids[index]}") as response:
                if response.status != 204:
                    raise _floor.FloorError(f"status {response.status}")
                await response.read()

        yield {"create": create, "update": update, "delete": delete}


class ContenderFailed(Exception):
    def __init__(self, name: str, exc: Exception) -> None:
        super().__init__(f"{type(exc).__name__}: {exc}")
        self.name = name


async def _time_slice(name: str, call: Call, indices: range, into: list[float]) -> None:
    clock = time.perf_counter_ns
    try:
        for index in indices:
            started = clock()
            await call(index)
            into.append((clock() - started) / 1000)
    except Exception as exc:
        raise ContenderFailed(name, exc) from exc


async def _round(
    factories: dict[str, Callable[[str, int], AbstractAsyncContextManager[Calls]]],
    base_url: str,
    calls: int,
    round_index: int,
) -> dict[str, Timings]:
    """One client per contender; per operation, the calls interleaved in slices."""
    async with contextlib.AsyncExitStack() as stack:
        callers: dict[str, Calls] = {}
        for name, factory in factories.items():
            try:
                callers[name] = await stack.enter_async_context(factory(base_url, calls))
            except Exception as exc:
                raise ContenderFailed(name, exc) from exc
        for name, ops in callers.items():
            for op in OPERATIONS:  # the first call opens the pooled connection
                await _time_slice(name, ops[op], range(WARM_CALLS), [])
        gc.collect()
        timings: dict[str, Timings] = {name: {op: [] for op in OPERATIONS} for name in callers}
        slices = min(SLICES, calls)
        bounds = [calls * k // slices for k in range(slices + 1)]
        for op in OPERATIONS:
            for k in range(slices):
                for name in rotated(list(callers), round_index + k):
                    indices = range(bounds[k], bounds[k + 1])
                    await _time_slice(name, callers[name][op], indices, timings[name][op])
        return timings


async def bench(base_url: str, rounds: int, calls: int) -> dict[str, Any]:
    factories: dict[str, Callable[[str, int], AbstractAsyncContextManager[Calls]]] = {}
    skipped: dict[str, str] = {}
    try:
        load_ours()
        factories[OURS] = ours_calls
    except Skipped as exc:
        skipped[OURS] = str(exc)
    factories[FLOOR] = floor_calls
    failed: dict[str, str] = {}
    # per contender, per operation: one median and one p90 per round
    medians = {name: {op: list[float]() for op in OPERATIONS} for name in factories}
    p90s = {name: {op: list[float]() for op in OPERATIONS} for name in factories}

    for round_index in range(rounds):
        try:
            timings = await _round(factories, base_url, calls, round_index)
        except ContenderFailed as failure:  # reported, not fatal; that round is dropped
            failed[failure.name] = str(failure)
            del factories[failure.name]
            continue
        for name, per_op in timings.items():
            for op, values in per_op.items():
                medians[name][op].append(median(values))
                p90s[name][op].append(p90(values))

    contenders = {
        name: {
            op: {
                "median_us": median(medians[name][op]),
                "p90_us": median(p90s[name][op]),
                "per_round_median_us": medians[name][op],
            }
            for op in OPERATIONS
        }
        for name in factories
        if medians[name][OPERATIONS[0]]
    }
    ours_over_floor: dict[str, float] = {}
    if OURS in contenders and FLOOR in contenders:
        ours_over_floor = {
            op: median([o / f for o, f in zip(medians[OURS][op], medians[FLOOR][op], strict=True)])
            for op in OPERATIONS
        }
    return {
        "calls": calls,
        "rounds": rounds,
        "contenders": contenders,
        # ours' median latency over the floor's, per round: 1.0 means no overhead.
        "ours_over_floor": ours_over_floor,
        "skipped": skipped,
        "failed": failed,
    }
