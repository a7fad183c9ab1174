"""``segments-async demo``: the library at work against a local fake API.

It starts ``FakeSegmentsServer`` on 127.0.0.1 with 10,000 segments, then creates,
updates and deletes one, fetches everything sequentially and concurrently, and rides
through injected faults, printing a short report. Nothing leaves this machine.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

from . import NotFoundError, RetryPolicy, SegmentsClient, SegmentsError, __version__
from .testing import FakeSegmentsServer, Fault

#: A simulated network round trip on every list request, as a real API would have.
_LATENCY = 0.004


class _Progress:
    """Progress on stderr: a live line on a terminal, quarter milestones elsewhere."""

    def __init__(self, label: str, total: int, stream: TextIO) -> None:
        self.label = label
        self.total = total
        self.stream = stream
        self.live = stream.isatty()
        self.done = 0
        self._next_milestone = 0.25

    def advance(self, count: int) -> None:
        self.done += count
        fraction = self.done / self.total if self.total else 1.0
        if self.live:
            self.stream.write(
                f"\r   {self.label}: {self.done:>7,}/{self.total:,} ({fraction:4.0%})"
            )
            if self.done >= self.total:
                self.stream.write("\n")
            self.stream.flush()
        elif fraction >= self._next_milestone:
            while fraction >= self._next_milestone:
                self._next_milestone += 0.25
            self.stream.write(f"   {self.label}: {self.done:,}/{self.total:,} ({fraction:.0%})\n")
            self.stream.flush()


class _RetryLog(logging.Handler):
    """Collects the library's WARNING records (one per retry) to show them in the report."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


async def _fetch_all(client: SegmentsClient, concurrency: int, total: int) -> tuple[int, float]:
    progress = _Progress(f"concurrency={concurrency:<2}", total, sys.stderr)
    count = 0
    started = time.perf_counter()
    async for page in client.segments.iter_pages(per_page=100, concurrency=concurrency):
        count += len(page.items)
        progress.advance(len(page.items))
    return count, time.perf_counter() - started


async def demo(segments: int, concurrency: int, out: TextIO) -> int:
    def say(line: str = "") -> None:
        print(line, file=out, flush=True)

    retry_log = _RetryLog()
    library_logger = logging.getLogger("segments_async")
    library_logger.addHandler(retry_log)
    library_logger.setLevel(logging.WARNING)
    try:
        async with FakeSegmentsServer(seed=2026) as server:
            server.add_segments(segments)
            say(f"segments_async {__version__} demo")
            say(f"A fake Segments API is serving {segments:,} segments at {server.base_url}")
            say("(loopback only; every list request gets a simulated 4 ms network delay)")
            policy = RetryPolicy(max_retries=4, backoff_initial=0.02, backoff_max=0.2)
            async with SegmentsClient(server.base_url, server.token, retry=policy) as client:
                say()
                say("1. Create, update, delete")
                created = await client.segments.create("Demo EMEA")
                say(f"   created  {created}")
                updated = await client.segments.update(created.id, "Demo Central Europe")
                say(f"   updated  {updated}")
                await client.segments.delete(created.id)
                say(f"   deleted  {created.id}")
                try:
                    await client.segments.delete(created.id)
                except NotFoundError as exc:
                    say(f"   deleting it again raises {type(exc).__name__}: {exc.message}")

                say()
                say(f"2. Fetch all {segments:,} segments, 100 a page")
                server.inject(Fault.latency(_LATENCY), method="GET", probability=1.0)
                sequential_count, sequential = await _fetch_all(client, 1, segments)
                concurrent_count, concurrent = await _fetch_all(client, concurrency, segments)
                server.clear_faults()
                say(
                    f"   one page at a time        {sequential:6.2f} s  "
                    f"{sequential_count / sequential:>9,.0f} segments/s"
                )
                say(
                    f"   {concurrency} pages in flight        {concurrent:6.2f} s  "
                    f"{concurrent_count / concurrent:>9,.0f} segments/s  "
                    f"speed-up x{sequential / concurrent:.1f}"
                )
                if sequential_count != segments or concurrent_count != segments:
                    say(f"   MISMATCH: expected {segments} segments")
                    return 1

                say()
                say("3. Ride through faults (the library retries; each retry is logged)")
                server.inject(Fault.status(503, retry_after=0), method="GET", times=1)
                server.inject(Fault.html_502(), method="GET", times=1)
                server.inject(Fault.truncated_body(), method="GET", times=1)
                page = await client.segments.list(page=3, per_page=50)
                say(
                    f"   503, an HTML 502 page, a body cut short: page {page.current_page} "
                    f"still arrived with {len(page.items)} segments"
                )
                victim = page.items[0]
                server.inject(Fault.reset_after(), method="DELETE", times=2)
                await client.segments.delete(victim.id)
                gone = victim.id not in server.segments()
                say(
                    f"   a DELETE whose answers were lost: retried, the 404 read as done "
                    f"(deleted: {gone})"
                )
                server.inject(Fault.reset_after(), method="POST", times=1)
                try:
                    await client.segments.create("Maybe created")
                except SegmentsError as exc:
                    say(f"   a POST whose answer was lost is not re-sent: {type(exc).__name__}")
                for line in retry_log.lines:
                    say(f"     log: {line}")
    finally:
        library_logger.removeHandler(retry_log)
    say()
    say("Done: every call succeeded or failed with a typed error, and nothing leaked.")
    return 0
