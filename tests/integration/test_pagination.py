"""iter_pages / iterate over real sockets: order, the window, early exit, failure, and servers
that lie in their page metadata (a huge lastPage, an ignored ?page, short or resized pages)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from segments_async import APIResponseValidationError, BadRequestError, SegmentsClient

from ..conftest import FAST_RETRY, TOKEN, page_payload
from ..leaks import acquired_connections, client_tasks, settle
from ..rawserver import RawRequest, RawServer, json_response
from .support import envelope, make_client


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


Lie = Callable[[int, int, dict[str, Any]], dict[str, Any]]
LIMIT = 60


def truthful(number: int, per_page: int, total: int) -> dict[str, Any]:
    first = (number - 1) * per_page
    items = [
        {"id": f"00000000-0000-4000-8000-{i:012d}", "name": f"s{i}"}
        for i in range(first, min(total, first + per_page))
    ]
    return {
        "currentPage": number,
        "perPage": per_page,
        "lastPage": max(1, -(-total // per_page)),
        "total": total,
        "items": items,
        "filters": [],
    }


def lying_server(total: int, lie: Lie) -> RawServer:
    async def handler(request: RawRequest) -> bytes:
        if len(server.requests) > LIMIT:
            return json_response(400, {"success": False, "message": "too many requests"})
        query = dict(part.split("=") for part in request.target.split("?")[1].split("&"))
        number, per_page = int(query["page"]), int(query["per_page"])
        page = lie(number, per_page, truthful(number, per_page, total))
        return json_response(200, envelope(page))

    server = RawServer(handler)
    return server


async def iterate(server: RawServer, concurrency: int) -> tuple[list[str], BaseException | None]:
    names: list[str] = []
    async with make_client(server.url) as client:
        try:
            async for segment in client.segments.iterate(per_page=10, concurrency=concurrency):
                names.append(segment.name)
        except APIResponseValidationError as error:
            return names, error
    return names, None


CONCURRENCY = pytest.mark.parametrize("concurrency", [1, 4])


@CONCURRENCY
async def test_a_huge_last_page_does_not_run_on(concurrency):
    """lastPage=10**9 over 25 segments: 25 names, and no page beyond the window asked for."""
    async with lying_server(25, lambda n, p, page: {**page, "lastPage": 10**9}) as server:
        names, error = await iterate(server, concurrency)
        await settle()

    assert error is None
    assert [f"s{i}" for i in range(25)] == names
    assert len(server.requests) <= 3 + concurrency
    assert set() == client_tasks()


@CONCURRENCY
async def test_a_server_that_ignores_page(concurrency):
    """Page 1 for every page: refused at page 2, after yielding page 1 once."""
    async with lying_server(35, lambda n, p, page: truthful(1, p, 35)) as server:
        names, error = await iterate(server, concurrency)
        await settle()

    assert isinstance(error, APIResponseValidationError)
    assert "result.currentPage" == error.field
    assert "page=2&" in error.url
    assert [f"s{i}" for i in range(10)] == names
    assert set() == client_tasks()


@CONCURRENCY
async def test_a_server_that_ignores_page_and_echoes_it(concurrency):
    """Page 1's items under every number: refused as a repeat, no duplicate yielded."""
    lie: Lie = lambda n, p, page: {**truthful(1, p, 35), "currentPage": n}  # noqa: E731
    async with lying_server(35, lie) as server:
        names, error = await iterate(server, concurrency)

    assert isinstance(error, APIResponseValidationError)
    assert "repeats" in error.message
    assert len(names) == len(set(names)) == 10


@CONCURRENCY
async def test_a_short_page_in_the_middle(concurrency):
    """Page 2 cut to 7 of its 10 items: refused, so no item is silently lost."""

    def lie(number: int, per_page: int, page: dict[str, Any]) -> dict[str, Any]:
        return {**page, "items": page["items"][:7]} if number == 2 else page

    async with lying_server(35, lie) as server:
        names, error = await iterate(server, concurrency)

    assert isinstance(error, APIResponseValidationError)
    assert "result.items" == error.field
    assert 10 == len(names)


@CONCURRENCY
async def test_a_per_page_that_changes_mid_way(concurrency):
    """perPage 10, then pages of 5 numbered as pages of 5: refused at the change."""

    def lie(number: int, per_page: int, page: dict[str, Any]) -> dict[str, Any]:
        return truthful(number, 5, 35) if number >= 3 else page

    async with lying_server(35, lie) as server:
        names, error = await iterate(server, concurrency)

    assert isinstance(error, APIResponseValidationError)
    assert "result.perPage" == error.field
    assert "page=3&" in error.url
    assert 20 == len(names)


async def test_a_total_that_changes_is_logged_once(caplog):
    """Segments created meanwhile: the iteration goes on, with one WARNING."""
    caplog.set_level(logging.WARNING, logger="segments_async")

    def lie(number: int, per_page: int, page: dict[str, Any]) -> dict[str, Any]:
        return truthful(number, per_page, 35 + number - 1)  # one more on every page

    async with lying_server(35, lie) as server:
        names, error = await iterate(server, 4)

    assert error is None
    assert 35 <= len(names) <= 40
    warnings = [r for r in caplog.records if "total changed" in r.getMessage()]
    assert 1 == len(warnings)
    record = warnings[0]
    assert ("GET", 35) == (record.segments_method, record.segments_total_before)
    assert record.segments_total > 35
    assert record.segments_path.startswith("/v2.3/data/segments?page=")
