"""One worker of section h: read a range of pages with one client, as told, and report.

``python -m benchmarks._fleet_worker BASE_URL START_PAGE PAGES CONCURRENCY RATE FLEET``
(``RATE`` and ``FLEET`` are ``-`` for none). The client is made first, then ``READY`` is
printed and the worker waits for a line on stdin, so that every worker of a run starts
at the same moment and start-up is not timed. While it reads, it prints ``P <seconds>
<items>`` every 0.1 s; at the end one JSON line: seconds, items, and the error if any.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from typing import Any, Literal

from ._common import PER_PAGE, TOKEN


async def _read(argv: list[str]) -> dict[str, Any]:
    import segments_async as lib

    base_url, start_page, pages, concurrency, rate, fleet = argv
    options: dict[str, Any] = {"allow_insecure_http": True, "retry": lib.RetryPolicy()}
    if rate != "-":
        options["rate_limit"] = float(rate)
    if fleet != "-":
        options["fleet"] = fleet
    window: int | Literal["auto"] = "auto" if concurrency == "auto" else int(concurrency)
    expected = int(pages) * PER_PAGE
    trace = os.environ.get("SEGMENTS_TRACE_FLOW")
    if trace:
        from . import _flow_trace

        _flow_trace.install()
    client = lib.SegmentsClient(base_url, TOKEN, **options)
    print("READY", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    seen = 0
    error: str | None = None
    started = time.perf_counter()
    sampler = None
    if trace:
        _flow_trace.T0[0] = started
        sampler = asyncio.create_task(_flow_trace.sample(client, lambda: seen))

    async def progress() -> None:
        while True:
            await asyncio.sleep(0.1)
            print(f"P {time.perf_counter() - started:.3f} {seen}", flush=True)

    reporter = asyncio.create_task(progress())
    try:
        async with client:
            items = client.segments.iterate(
                per_page=PER_PAGE, concurrency=window, start_page=int(start_page), limit=expected
            )
            async with contextlib.aclosing(items):
                async for _item in items:
                    seen += 1
    except lib.SegmentsError as exc:
        error = type(exc).__name__
    finally:
        reporter.cancel()
        if sampler is not None:
            sampler.cancel()
    seconds = time.perf_counter() - started
    if trace:
        _flow_trace.emit("end", seconds=seconds, seen=seen)
        _flow_trace.write(f"{trace}.{start_page}")
    if error is None and seen != expected:
        error = f"saw {seen} items, expected {expected}"
    return {"seconds": seconds, "items": seen, "error": error}


def main() -> None:
    # The library's WARNING per retry would flood stderr (see __main__.run).
    logging.getLogger("segments_async").addHandler(logging.NullHandler())
    result = asyncio.run(_read(sys.argv[1:]))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
