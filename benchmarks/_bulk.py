"""Section f: bulk create, ``create_many`` against the best hand-written raw aiohttp.

Throughput: ``N`` names through ``client.segments.create_many(names, concurrency=16)``
against 16 raw aiohttp worker tasks pulling names from one shared iterator, each
POSTing ``{"name": ...}`` with orjson, checking the status and the envelope, building
the attrs segment and storing it by index (what ordered results cost by hand). Both
get a fresh client (session) per run and the same near-free server (``_server.py``).

Peak RSS: ``create_many`` fed by an async generator of names, for a small and a
ten-times-larger ``N``, each in a fresh interpreter measured as in section c
(``python -m benchmarks._bulk``). The raw contender there streams too: its workers pull
from the same kind of generator and keep only a count, so it shows what aiohttp alone
grows by.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import orjson

from . import _floor
from ._common import LIST_PATH, TOKEN, Skipped, load_ours, median, rotated
from ._rss import LAUNCHER, _maxrss_kib, _vm_hwm_kib, summarize
from ._server import REPO_ROOT, child_env

CONCURRENCY = 16
OURS = "ours"
RAW = "raw"
JSON_HEADERS = {"Content-Type": "application/json"}

Run = Callable[[str, int], Awaitable[int]]  # (base URL, count) -> items created


class BulkError(Exception):
    """A contender got an answer or an order it should not have (a bug to look at)."""


def names(count: int) -> Iterator[str]:
    return (f"bulk {index:07d}" for index in range(count))


async def name_stream(count: int) -> AsyncIterator[str]:
    """Names one at a time, never all in memory: the input of the RSS runs."""
    for index in range(count):
        yield f"bulk {index:07d}"


def _create_many(client: Any) -> Any:
    try:
        return client.segments.create_many
    except AttributeError as exc:
        raise Skipped(f"the library has no create_many yet ({exc})") from exc


async def ours(base_url: str, source: Any, count: int) -> int:
    """Consume ``create_many``'s results, checking each is ok and in input order."""
    lib = load_ours()
    client = lib.SegmentsClient(base_url, TOKEN, allow_insecure_http=True)
    seen = 0
    async with client:
        results = _create_many(client)(source, concurrency=CONCURRENCY)
        async with contextlib.aclosing(results):
            async for result in results:
                if result.index != seen or not result.ok:
                    raise BulkError(f"result {seen}: index {result.index}, {result.error!r}")
                seen += 1
    if seen != count:
        raise BulkError(f"{seen} results for {count} names")
    return seen


async def run_ours(base_url: str, count: int) -> int:
    return await ours(base_url, list(names(count)), count)


async def _post(session: Any, url: str, name: str) -> _floor.FloorSegment:
    async with session.post(url, data=orjson.dumps({"name": name}), headers=JSON_HEADERS) as r:
        if r.status != 200:
            raise BulkError(f"status {r.status}")
        body = await r.read()
    return _floor.decode_segment(body)  # checks the envelope, builds the attrs segment


async def run_raw(base_url: str, count: int) -> int:
    """16 workers, one shared iterator of (index, name), results stored by index."""
    url = base_url + LIST_PATH
    source = enumerate(list(names(count)))
    created: list[_floor.FloorSegment | None] = [None] * count
    async with _floor.new_session() as session:

        async def worker() -> None:
            for index, name in source:
                created[index] = await _post(session, url, name)

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    done = sum(segment is not None for segment in created)
    if done != count:
        raise BulkError(f"{done} created for {count} names")
    return done


async def raw_streamed(base_url: str, count: int) -> int:
    """The RSS floor: 16 workers pulling from one async generator, keeping only a count."""
    url = base_url + LIST_PATH
    source = name_stream(count)
    done = 0
    async with _floor.new_session() as session:

        async def worker() -> None:
            nonlocal done
            # The generator never awaits inside, so two workers' anext() cannot overlap.
            async for name in source:
                await _post(session, url, name)
                done += 1

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return done


def _check_create_many(lib: Any) -> None:
    if not hasattr(lib.SegmentsResource, "create_many"):  # the type of client.segments
        raise Skipped("the library has no SegmentsResource.create_many yet")


def _contenders() -> tuple[dict[str, Run], dict[str, str]]:
    runs: dict[str, Run] = {}
    skipped: dict[str, str] = {}
    try:
        _check_create_many(load_ours())
        runs[OURS] = run_ours
    except Skipped as exc:
        skipped[OURS] = str(exc)
    runs[RAW] = run_raw
    return runs, skipped


async def bench_throughput(base_url: str, count: int, rounds: int) -> dict[str, Any]:
    runs, skipped = _contenders()
    failed: dict[str, str] = {}
    samples: dict[str, list[float]] = {}

    async def attempt(name: str, size: int) -> float | None:
        gc.collect()
        started = time.perf_counter()
        try:
            await runs[name](base_url, size)
        except Exception as exc:  # a crashing contender is reported, not fatal
            failed[name] = f"{type(exc).__name__}: {exc}"
            del runs[name]
            samples.pop(name, None)
            return None
        return time.perf_counter() - started

    for name in list(runs):  # untimed warm-up: imports, pools, the server's first answers
        await attempt(name, max(1, count // 10))
    for round_index in range(rounds):
        for name in rotated(list(runs), round_index):
            elapsed = await attempt(name, count)
            if elapsed is not None:
                samples.setdefault(name, []).append(elapsed)
    contenders = {
        name: {"seconds": times, "median_s": median(times), "per_s": count / median(times)}
        for name, times in samples.items()
    }
    ratio = None
    if OURS in samples and RAW in samples:
        per_round = [r / o for o, r in zip(samples[OURS], samples[RAW], strict=True)]
        ratio = median(per_round)  # ours' throughput over raw's: raw's time / ours
    return {
        "count": count,
        "concurrency": CONCURRENCY,
        "rounds": rounds,
        "contenders": contenders,
        "ours_throughput_ratio": ratio,
        "skipped": skipped,
        "failed": failed,
    }


# ----------------------------------------------------------------------------- peak RSS


def child_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._bulk")
    parser.add_argument("--contender", choices=(OURS, RAW), required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--count", type=int, required=True)
    args = parser.parse_args(argv)
    if args.contender == OURS:
        load_ours()  # imported before the baseline, like the raw contender's aiohttp

        async def run() -> int:
            return await ours(args.base_url, name_stream(args.count), args.count)
    else:

        async def run() -> int:
            return await raw_streamed(args.base_url, args.count)

    baseline = _maxrss_kib()
    started = time.perf_counter()
    done = asyncio.run(run())
    elapsed = time.perf_counter() - started
    peak = _maxrss_kib()
    if done != args.count:
        raise SystemExit(f"created {done}, expected {args.count}")
    report = {"baseline_kib": baseline, "peak_kib": peak, "vm_hwm_kib": _vm_hwm_kib()}
    print(json.dumps(report | {"seconds": elapsed}))


def _measure(name: str, base_url: str, count: int) -> dict[str, float]:
    argv = [sys.executable, "-S", "-c", LAUNCHER, sys.executable, "-m", "benchmarks._bulk"]
    argv += ["--contender", name, "--base-url", base_url, "--count", str(count)]
    completed = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO_ROOT,
        env=child_env(),
        check=False,
    )
    if completed.returncode != 0:
        said = (completed.stderr or completed.stdout).strip().splitlines()
        raise RuntimeError(said[-1] if said else f"exit status {completed.returncode}")
    result: dict[str, float] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def bench_rss(base_url: str, sizes: tuple[int, int], repeats: int) -> dict[str, Any]:
    runs, skipped = _contenders()
    names_run = [name for name in (OURS, RAW) if name in runs]
    failed: dict[str, str] = {}
    raw: dict[str, dict[int, list[dict[str, float]]]] = {name: {} for name in names_run}
    for size in sizes:
        for repeat in range(repeats):
            for name in rotated(names_run, repeat):
                if name in failed:
                    continue
                try:
                    raw[name].setdefault(size, []).append(_measure(name, base_url, size))
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    failed[name] = str(exc)
    return summarize(raw, failed, skipped, sizes, repeats)


def bench(
    base_url: str, count: int, rounds: int, rss_sizes: tuple[int, int], rss_repeats: int
) -> dict[str, Any]:
    throughput = asyncio.run(bench_throughput(base_url, count, rounds))
    rss = bench_rss(base_url, rss_sizes, rss_repeats)
    return {
        "throughput": throughput,
        "rss": rss,
        "skipped": {**throughput["skipped"]},
        "failed": {f"throughput {k}": v for k, v in throughput["failed"].items()}
        | {f"rss {k}": v for k, v in rss["failed"].items()},
    }


if __name__ == "__main__":
    child_main()
