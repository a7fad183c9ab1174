"""iter_pages / iterate over real sockets: order, the in-flight window, early exit, failure."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import parse_qs, urlsplit

import pytest

from segments_async import BadRequestError, SegmentsClient

from .conftest import FAST_RETRY, TOKEN, page_payload
from .leaks import acquired_connections, client_tasks, settle
from .rawserver import RawRequest, RawServer, json_response


class PagedServer:
    """Serves ``total`` items, clamping per_page to ``max_per_page``, and counts in-flight."""

    def __init__(
        self,
        total: int,
        *,
        max_per_page: int = 100,
        latency: float = 0.0,
        fail_page: int | None = None,
    ) -> None:
        self.total = total
        self.max_per_page = max_per_page
        self.latency = latency
        self.fail_page = fail_page
        self.in_flight = 0
        self.max_in_flight = 0
        self.pages_requested: list[int] = []
        self.per_pages: list[int] = []

    async def __call__(self, request: RawRequest) -> bytes:
        query = parse_qs(urlsplit(request.target).query)
        page = int(query["page"][0])
        asked = int(query["per_page"][0])
        per_page = min(asked, self.max_per_page)
        self.pages_requested.append(page)
        self.per_pages.append(asked)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            if page == self.fail_page:
                return json_response(400, {"success": False, "message": f"bad page {page}"})
            return json_response(200, page_payload(page, per_page, self.total))
        finally:
            self.in_flight -= 1


@pytest.fixture
def client_for():
    clients: list[SegmentsClient] = []

    def make(url: str) -> SegmentsClient:
        client = SegmentsClient(url, TOKEN, retry=FAST_RETRY)
        clients.append(client)
        return client

    return make


@pytest.mark.parametrize("concurrency", [1, 4, 16])
async def test_pages_in_order_with_bounded_window(concurrency):
    """Every page arrives in order; never more than `concurrency` requests in flight."""
    paged = PagedServer(total=95, latency=0.002)
    async with RawServer(paged) as server, SegmentsClient(server.url, TOKEN) as client:
        pages = [p async for p in client.segments.iter_pages(per_page=10, concurrency=concurrency)]

    assert list(range(1, 11)) == [p.current_page for p in pages]
    assert [f"s{i}" for i in range(95)] == [s.name for p in pages for s in p.items]
    assert paged.max_in_flight <= concurrency
    if concurrency > 1:
        assert paged.max_in_flight > 1


async def test_iterate_uses_the_servers_clamped_per_page():
    """Asked for 50 but served 7: later pages are requested with per_page=7."""
    paged = PagedServer(total=30, max_per_page=7)
    async with RawServer(paged) as server, SegmentsClient(server.url, TOKEN) as client:
        names = [s.name async for s in client.segments.iterate(per_page=50, concurrency=3)]

    assert [f"s{i}" for i in range(30)] == names
    assert [50, 7, 7, 7, 7] == paged.per_pages
    assert [1, 2, 3, 4, 5] == sorted(paged.pages_requested)


async def test_single_page_sends_one_request():
    """A result that fits page 1 costs one request."""
    paged = PagedServer(total=3)
    async with RawServer(paged) as server, SegmentsClient(server.url, TOKEN) as client:
        items = [s async for s in client.segments.iterate(per_page=10, concurrency=8)]
    assert 3 == len(items)
    assert [1] == paged.pages_requested


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_fetching_stays_a_bounded_distance_ahead_of_the_consumer(concurrency):
    """While the consumer holds a page, at most `concurrency - 1` more are fetched."""
    paged = PagedServer(total=400)
    async with RawServer(paged) as server, SegmentsClient(server.url, TOKEN) as client:
        consumed = 0
        async for _ in client.segments.iter_pages(per_page=10, concurrency=concurrency):
            consumed += 1
            await asyncio.sleep(0.002)  # give the prefetch every chance to run ahead
            assert len(paged.pages_requested) <= consumed + concurrency - 1
    assert 40 == consumed


async def test_breaking_out_cancels_in_flight_and_leaks_nothing():
    """Leaving the loop early cancels what is in flight: no task, no connection held."""
    paged = PagedServer(total=1000, latency=0.05)
    async with RawServer(paged) as server, SegmentsClient(server.url, TOKEN) as client:
        before = client_tasks()
        async with contextlib.aclosing(client.segments.iterate(per_page=10, concurrency=8)) as it:
            async for segment in it:
                if segment.name == "s25":
                    break
        await settle()
        assert set() == client_tasks() - before
        assert 0 == acquired_connections(client)
        requested = len(paged.pages_requested)
        await asyncio.sleep(0.1)
        assert requested == len(paged.pages_requested)  # nothing new was sent
        assert requested <= 3 + 8 + 1


async def test_plain_break_is_cleaned_up_by_the_loop():
    """Without aclosing, the generator is finalized as soon as it is dropped."""
    paged = PagedServer(total=1000, latency=0.05)
    async with RawServer(paged) as server, SegmentsClient(server.url, TOKEN) as client:
        before = client_tasks()
        async for page in client.segments.iter_pages(per_page=10, concurrency=8):
            if page.current_page == 2:
                break
        await settle()
        await asyncio.sleep(0.06)
        assert set() == client_tasks() - before
        assert 0 == acquired_connections(client)


async def test_failing_page_raises_after_cancelling_the_rest():
    """Page 5 fails: the iterator raises its error, and nothing is left running."""
    paged = PagedServer(total=200, latency=0.005, fail_page=5)
    async with RawServer(paged) as server, SegmentsClient(server.url, TOKEN) as client:
        before = client_tasks()
        seen: list[int] = []
        with pytest.raises(BadRequestError, match="bad page 5"):
            async for page in client.segments.iter_pages(per_page=10, concurrency=4):
                seen.append(page.current_page)
        await settle()
        assert [1, 2, 3, 4] == seen
        assert set() == client_tasks() - before
        assert 0 == acquired_connections(client)


async def test_cancelling_the_consumer_mid_iterate_leaks_nothing():
    """Cancelling the task that iterates cancels the fetches and frees connections."""
    paged = PagedServer(total=5000, latency=0.02)
    async with RawServer(paged) as server, SegmentsClient(server.url, TOKEN) as client:
        before = client_tasks()
        got = 0
        started = asyncio.Event()

        async def consume() -> None:
            nonlocal got
            async for _ in client.segments.iterate(per_page=10, concurrency=8):
                got += 1
                if got == 30:
                    started.set()

        task = asyncio.create_task(consume())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await settle()
        assert set() == client_tasks() - before
        assert 0 == acquired_connections(client)
        # The pool is still usable afterwards.
        assert 5000 == (await client.segments.list(per_page=10)).total
