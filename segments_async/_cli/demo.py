"""``segments-async demo``: the library at work against a local fake API.

It starts ``FakeSegmentsServer`` on 127.0.0.1 with 10,000 segments, then creates,
updates and deletes one, fetches everything one page at a time, with a fixed window and
with ``concurrency="auto"``, rides through injected faults, imports and deletes in bulk
against a server that refuses load beyond its capacity, and shows a deadline and event
hooks at work, printing a short report on stdout. Every failure in it is caused on purpose
and the report says so, so that a reader (a CI log) does not take it for a breakage.
Progress goes to stderr only live, on a terminal. Nothing leaves this machine.
"""

from __future__ import annotations

import collections
import functools
import logging
import sys
import time
from typing import TextIO

from .. import (
    NotFoundError,
    ResponseEvent,
    RetryEvent,
    RetryPolicy,
    SegmentsClient,
    SegmentsError,
    __version__,
)
from .._segments import Concurrency
from ..testing import FakeSegmentsServer, Fault

#: A simulated network round trip on every request, as a real API would have.
_LATENCY = 0.004
#: Names imported in bulk, and the capacity of the server they are imported into.
_BULK = 1_000
_CAPACITY = 8
#: An id that exists nowhere, deleted to show a 404 in a bulk delete.
_UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


class _Progress:
    """A live line on stderr (a terminal), rewritten as segments come; nothing if not
    ``live``: off a terminal, progress lines would only lengthen a log."""

    def __init__(self, label: str, total: int, *, live: bool) -> None:
        self.label = label
        self.total = total
        self.live = live
        self.done = 0

    def advance(self, count: int) -> None:
        self.done += count
        if not self.live:
            return
        fraction = self.done / self.total if self.total else 1.0
        sys.stderr.write(f"\r   {self.label}: {self.done:>7,}/{self.total:,} ({fraction:4.0%})")
        if self.done >= self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


class _RetryLog(logging.Handler):
    """Collects the library's WARNING records (one per retry) to show them in the report."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


class _Demo:
    """The demo's sections, each against the same fake server and client."""

    def __init__(
        self,
        server: FakeSegmentsServer,
        client: SegmentsClient,
        segments: int,
        out: TextIO,
        *,
        live: bool,
    ) -> None:
        self.server = server
        self.client = client
        self.segments = segments
        self.out = out
        self.live = live

    def say(self, line: str = "") -> None:
        print(line, file=self.out, flush=True)

    async def crud(self) -> bool:
        self.say("1. Create, update, delete")
        created = await self.client.segments.create("Demo EMEA")
        self.say(f"   created  {created}")
        updated = await self.client.segments.update(created.id, "Demo Central Europe")
        self.say(f"   updated  {updated}")
        await self.client.segments.delete(created.id)
        self.say(f"   deleted  {created.id}")
        try:
            await self.client.segments.delete(created.id)
        except NotFoundError as exc:
            self.say(
                f"   deleting it again raises {type(exc).__name__}: {exc.message} "
                f"(as it should: it is gone)"
            )
        return True

    async def fetch_all(self, concurrency: int) -> bool:
        """Fetch everything three ways; False if a count came out wrong."""
        self.say(f"2. Fetch all {self.segments:,} segments, 100 a page")
        self.server.inject(Fault.latency(_LATENCY), method="GET", probability=1.0)
        windows: list[tuple[str, Concurrency]] = [
            ("one page at a time", 1),
            (f"{concurrency} pages in flight", concurrency),
            ('concurrency="auto"', "auto"),
        ]
        timings: list[float] = []
        for label, window in windows:
            count, seconds = await self._fetch(window)
            if count != self.segments:
                self.say(f"   MISMATCH: {label} saw {count}, expected {self.segments}")
                return False
            speedup = f"  speed-up x{timings[0] / seconds:.1f}" if timings else ""
            timings.append(seconds)
            rate = f"{count / seconds:>9,.0f} segments/s"
            self.say(f"   {label:<26}{seconds:6.2f} s  {rate}{speedup}")
        self.server.clear_faults()
        return True

    async def _fetch(self, concurrency: Concurrency) -> tuple[int, float]:
        progress = _Progress(f"concurrency={concurrency}", self.segments, live=self.live)
        count = 0
        started = time.perf_counter()
        pages = self.client.segments.iter_pages(per_page=100, concurrency=concurrency)
        async for page in pages:
            count += len(page.items)
            progress.advance(len(page.items))
        return count, time.perf_counter() - started

    async def faults(self, retry_log: _RetryLog) -> bool:
        self.say("3. Ride through faults the demo injects (the library retries, and logs each)")
        server = self.server
        server.inject(Fault.status(503, retry_after=0), method="GET", times=1)
        server.inject(Fault.html_502(), method="GET", times=1)
        server.inject(Fault.truncated_body(), method="GET", times=1)
        page = await self.client.segments.list(page=3, per_page=50)
        self.say(
            f"   503, an HTML 502 page, a body cut short: page {page.current_page} "
            f"still arrived with {len(page.items)} segments"
        )
        victim = page.items[0]
        server.inject(Fault.reset_after(), method="DELETE", times=2)
        await self.client.segments.delete(victim.id)
        gone = victim.id not in server.segments()
        self.say(
            f"   a DELETE whose answers were lost: retried, the 404 read as done (deleted: {gone})"
        )
        server.inject(Fault.reset_after(), method="POST", times=1)
        try:
            await self.client.segments.create("Maybe created")
        except SegmentsError as exc:
            unknown = getattr(exc, "outcome_unknown", False)
            self.say(
                f"   a POST whose answer was lost is not re-sent: {type(exc).__name__}, "
                f"outcome_unknown={unknown} (the server may have created it)"
            )
        for line in retry_log.lines:
            self.say(f"     log: {line}")
        retry_log.lines.clear()
        return True

    async def bulk(self) -> bool:
        self.say(
            f"4. Import {_BULK:,} names into a server that serves {_CAPACITY} at a time "
            f'(the rest get 429), with concurrency="auto"'
        )
        limit = self.server.limit_concurrency(_CAPACITY, retry_after=0.1, method="POST")
        self.server.inject(Fault.latency(_LATENCY), method="POST", probability=1.0)
        started = time.perf_counter()
        names = (f"Imported {number}" for number in range(_BULK))  # read lazily
        results = self.client.segments.create_many(names, concurrency="auto")
        created = [result async for result in results]
        seconds = time.perf_counter() - started
        limit.cancel()
        self.server.clear_faults()
        ok = [result.value.id for result in created if result.value is not None]
        self.say(f"   {len(ok):,} created in {seconds:.2f} s, in input order")
        self.say(
            f"   the server refused {limit.rejected} of {limit.admitted + limit.rejected} "
            f"requests with 429 (over its capacity, as intended); each was retried"
        )
        ids = [*ok[:100], _UNKNOWN_ID, "not-a-uuid"]
        deleted = [result async for result in self.client.segments.delete_many(ids)]
        failed = collections.Counter(
            type(result.error).__name__ for result in deleted if result.error is not None
        )
        done = sum(result.ok for result in deleted)
        self.say(f"   delete_many of {len(ids)} ids: {done} deleted, {failed.total()} failed")
        if failed != {"NotFoundError": 1, "ValueError": 1}:
            self.say(f"   UNEXPECTED failures: {dict(failed)}")
            return False
        self.say(
            "   (as intended: NotFoundError for an id that does not exist, and ValueError "
            "for 'not-a-uuid', refused before sending)"
        )
        return len(ok) == _BULK

    async def deadline_and_hooks(self) -> bool:
        self.say("5. A deadline across retries, and event hooks")
        attempts: collections.Counter[int | None] = collections.Counter()
        retries: list[str] = []

        def on_response(event: ResponseEvent) -> None:
            attempts[event.status_code] += 1

        def on_retry(event: RetryEvent) -> None:
            retries.append(f"{event.reason} (attempt {event.attempt}, wait {event.delay:.2f}s)")

        view = self.client.with_options(
            deadline=2.0, event_hooks={"response": [on_response], "retry": [on_retry]}
        )
        self.server.inject(Fault.status(503, retry_after=0), method="GET", times=1)
        await view.segments.list()
        self.say(f"   hooks saw answers {dict(attempts)} and retries {retries}")
        self.server.inject(Fault.status(503, retry_after=30), method="GET", times=1)
        started = time.perf_counter()
        try:
            await view.segments.list()
        except SegmentsError as exc:
            seconds = time.perf_counter() - started
            self.say(
                f"   a 503 asking to wait 30 s, with deadline=2: {type(exc).__name__} "
                f"after {seconds:.2f} s, not 30"
            )
            return True
        return False


class _Captured:
    """The library's WARNINGs, collected for the report while the demo runs."""

    def __init__(self) -> None:
        self.log = _RetryLog()
        self.logger = logging.getLogger("segments_async")

    def __enter__(self) -> _RetryLog:
        self.logger.addHandler(self.log)
        self.logger.setLevel(logging.WARNING)
        return self.log

    def __exit__(self, *exc_info: object) -> None:
        self.logger.removeHandler(self.log)


async def demo(segments: int, concurrency: int, out: TextIO, *, live: bool) -> int:
    """Run the demo, writing the report to ``out`` (and, if ``live``, progress to
    stderr); the exit status."""

    def say(line: str = "") -> None:
        print(line, file=out, flush=True)

    with _Captured() as retry_log:
        async with FakeSegmentsServer(seed=2026) as server:
            server.add_segments(segments)
            say(f"segments_async {__version__} demo")
            say(f"A fake Segments API is serving {segments:,} segments at {server.base_url}")
            say("(loopback only; requests get a simulated 4 ms network delay)")
            say("Every failure below is caused on purpose, to show how the library handles it.")
            policy = RetryPolicy(max_retries=4, backoff_initial=0.02, backoff_max=0.2)
            async with SegmentsClient(server.base_url, server.token, retry=policy) as client:
                report = _Demo(server, client, segments, out, live=live)
                sections = (
                    report.crud,
                    functools.partial(report.fetch_all, concurrency),
                    functools.partial(report.faults, retry_log),
                    report.bulk,
                    report.deadline_and_hooks,
                )
                for section in sections:
                    say()
                    if not await section():
                        return 1
    say()
    say("Done: every call succeeded or failed with a typed error, and nothing leaked.")
    return 0
