"""Section a: fetch every item, sequentially and with 16 requests in flight.

Each run builds its own client (or session), fetches page 1 on a cold pool, then the
rest, and closes it: every contender gets exactly that treatment, and each one
checks the status and the envelope it gets back.

Beside ours, the same with its connections reading as asyncio reads (256 KiB at a time,
not 64 KiB): what the read size is worth, in the same run.
"""

from __future__ import annotations

import gc
import importlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from . import _floor
from ._common import (
    CONCURRENCY,
    HEADERS,
    LIST_PATH,
    PER_PAGE,
    TOKEN,
    Skipped,
    load_ours,
    median,
    ratio_medians,
    rotated,
)
from ._peer import Peer

Run = Callable[[str, int], Awaitable[int]]  # (base URL, concurrency) -> items seen
MODES = (("sequential", 1), ("concurrent", CONCURRENCY))
OURS = "ours"
OURS_ASYNCIO_READS = "ours, 256 KiB reads"
FLOOR = "floor"
HTTPX = "httpx"
OPENAPI = "openapi-python-client"


async def run_ours(base_url: str, concurrency: int) -> int:
    segments_async = load_ours()
    client = segments_async.SegmentsClient(base_url, token=TOKEN, allow_insecure_http=True)
    seen = 0
    async with client:
        async for page in client.segments.iter_pages(per_page=PER_PAGE, concurrency=concurrency):
            seen += len(page.items)
    return seen


async def run_ours_asyncio_reads(base_url: str, concurrency: int) -> int:
    """Ours with its connections reading asyncio's 256 KiB at a time (``_READ_SIZE``)."""
    transport = importlib.import_module(f"{load_ours().__name__}._transport")
    size = getattr(transport, "_READ_SIZE")  # noqa: B009 - a module's private constant
    setattr(transport, "_READ_SIZE", 256 * 1024)  # noqa: B010
    try:
        return await run_ours(base_url, concurrency)
    finally:
        setattr(transport, "_READ_SIZE", size)  # noqa: B010


async def run_floor(base_url: str, concurrency: int) -> int:
    seen = 0
    async with _floor.new_session() as session:
        async for page in _floor.iter_pages(session, base_url, concurrency):
            seen += len(page.items)
    return seen


async def run_httpx(base_url: str, concurrency: int) -> int:
    url = base_url + LIST_PATH
    async with httpx.AsyncClient(headers=HEADERS, limits=httpx.Limits(max_connections=100)) as c:

        async def get(page: int) -> dict[str, Any]:
            response = await c.get(f"{url}?page={page}&per_page={PER_PAGE}")
            if response.status_code != 200:
                raise _floor.FloorError(f"status {response.status_code}")
            envelope: dict[str, Any] = response.json()
            if envelope.get("success") is not True:
                raise _floor.FloorError("success is not true")
            result: dict[str, Any] = envelope["result"]
            return result

        return await _count_pages(get, concurrency, lambda r: len(r["items"]), "lastPage")


def openapi_runner(peer: Peer) -> Run:
    list_segments: Any = peer.list_segments

    async def run_openapi(base_url: str, concurrency: int) -> int:
        async with peer.client_class(base_url=base_url, token=TOKEN) as client:

            async def get(page: int) -> Any:
                envelope = await list_segments.asyncio(client=client, page=page, per_page=PER_PAGE)
                if envelope is None or envelope.success is not True:
                    raise _floor.FloorError("unexpected answer")
                return envelope.result

            return await _count_pages(get, concurrency, lambda r: len(r.items), "last_page")

    return run_openapi


async def _count_pages(
    get: Callable[[int], Awaitable[Any]],
    concurrency: int,
    size: Callable[[Any], int],
    last_page_key: str,
) -> int:
    """The floor's fetch pattern for contenders whose pages are dicts or generated models."""
    first = await get(1)
    seen = size(first)
    last_page = first[last_page_key] if isinstance(first, dict) else getattr(first, last_page_key)
    rest = range(2, last_page + 1)
    if concurrency == 1:
        for page in rest:
            seen += size(await get(page))
    else:
        async for result in _floor.windowed(get, rest, concurrency):
            seen += size(result)
    return seen


def contenders(peer: Peer | None, peer_skip: str | None) -> tuple[dict[str, Run], dict[str, str]]:
    runs: dict[str, Run] = {}
    skipped: dict[str, str] = {}
    try:
        ours = load_ours()
        runs[OURS] = run_ours
        if hasattr(importlib.import_module(f"{ours.__name__}._transport"), "_READ_SIZE"):
            runs[OURS_ASYNCIO_READS] = run_ours_asyncio_reads
        else:
            skipped[OURS_ASYNCIO_READS] = "this version reads as asyncio does"
    except Skipped as exc:
        skipped[OURS] = str(exc)
    runs[FLOOR] = run_floor
    runs[HTTPX] = run_httpx
    if peer is not None:
        runs[OPENAPI] = openapi_runner(peer)
    else:
        skipped[OPENAPI] = peer_skip or "not generated"
    return runs, skipped


async def _timed(run: Run, base_url: str, concurrency: int, total: int) -> float:
    gc.collect()
    started = time.perf_counter()
    seen = await run(base_url, concurrency)
    elapsed = time.perf_counter() - started
    if seen != total:
        raise RuntimeError(f"saw {seen} items, expected {total}")
    return elapsed


async def bench(
    base_url: str, total: int, rounds: int, peer: Peer | None, peer_skip: str | None
) -> dict[str, Any]:
    runs, skipped = contenders(peer, peer_skip)
    failed: dict[str, str] = {}
    samples: dict[str, dict[str, list[float]]] = {mode: {} for mode, _ in MODES}

    async def attempt(name: str, concurrency: int) -> float | None:
        try:
            return await _timed(runs[name], base_url, concurrency, total)
        except Exception as exc:  # a crashing contender is reported, not fatal
            failed[name] = f"{type(exc).__name__}: {exc}"
            return None

    # One untimed pass: imports, converters and the server's page cache warm up for all.
    for mode_concurrency in (1, CONCURRENCY):
        for name in list(runs):
            if await attempt(name, mode_concurrency) is None:
                del runs[name]

    for round_index in range(rounds):
        for mode, concurrency in MODES:
            for name in rotated(list(runs), round_index):
                elapsed = await attempt(name, concurrency)
                if elapsed is None:
                    del runs[name]
                    for per_mode in samples.values():
                        per_mode.pop(name, None)
                    continue
                samples[mode].setdefault(name, []).append(elapsed)

    modes: dict[str, Any] = {}
    for mode, concurrency in MODES:
        mode_samples = samples[mode]
        modes[mode] = {
            "concurrency": concurrency,
            "contenders": {
                name: {
                    "seconds": times,
                    "median_s": median(times),
                    "items_per_s": total / median(times),
                }
                for name, times in mode_samples.items()
            },
            # How many times faster ours is than each other contender (per-round ratio).
            "ours_speedup": (
                ratio_medians(mode_samples, OURS, list(mode_samples))
                if OURS in mode_samples
                else {}
            ),
        }
    return {
        "total": total,
        "per_page": PER_PAGE,
        "rounds": rounds,
        "modes": modes,
        "skipped": skipped,
        "failed": failed,
    }
