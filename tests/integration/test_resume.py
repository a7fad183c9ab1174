"""Resumable pagination over real sockets: ``start_page`` and ``limit``, checked by the
exact requests the server received."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from segments_async.testing import FakeSegmentsServer, Fault

from ..leaks import acquired_connections, client_tasks, settle
from .support import client_for


@pytest.fixture
async def server():
    async with FakeSegmentsServer(seed=13) as server:
        server.add_segments(250)
        yield server


def pages_sent(server: FakeSegmentsServer) -> list[int]:
    return [int(r.query["page"]) for r in server.requests]


def names(server: FakeSegmentsServer) -> list[str]:
    return list(server.segments().values())


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_iter_pages_starts_at_the_page_asked_for(server, concurrency):
    """start_page=3 of 5: pages 3, 4, 5, page 3 first, nothing before it."""
    async with client_for(server) as client:
        pages = [
            p async for p in client.segments.iter_pages(50, concurrency=concurrency, start_page=3)
        ]

    assert [3, 4, 5] == [p.current_page for p in pages]
    assert 3 == pages_sent(server)[0]
    assert [3, 4, 5] == sorted(pages_sent(server))
    assert names(server)[100:] == [s.name for p in pages for s in p.items]


async def test_iterate_resumes_where_an_export_stopped(server):
    """An export cut after page 2 resumes at page 3 and ends with every segment once."""
    async with client_for(server) as client:
        first_part = [s async for s in client.segments.iterate(50, concurrency=4, limit=100)]
        rest = [s async for s in client.segments.iterate(50, concurrency=4, start_page=3)]

    assert names(server) == [s.name for s in first_part + rest]


async def test_start_page_is_the_last_page(server):
    """start_page=5 of 5: one request, one page."""
    async with client_for(server) as client:
        pages = [p async for p in client.segments.iter_pages(50, start_page=5)]

    assert [5] == [p.current_page for p in pages]
    assert [5] == pages_sent(server)


@pytest.mark.parametrize("start_page", [6, 1000])
async def test_start_beyond_the_end_yields_nothing_after_one_request(server, start_page):
    """A start past the last page: nothing, from exactly one request."""
    async with client_for(server) as client:
        pages = [p async for p in client.segments.iter_pages(50, 8, start_page=start_page)]
        segments = [s async for s in client.segments.iterate(50, 8, start_page=start_page)]

    assert [] == pages == segments
    assert [start_page, start_page] == pages_sent(server)


async def test_start_page_uses_the_servers_page_size(server):
    """per_page=500 is clamped to 100 by the server: page 2 of 3 is items 100 to 199."""
    async with client_for(server) as client:
        pages = [p async for p in client.segments.iter_pages(500, 4, start_page=2)]

    assert [(2, 100), (3, 50)] == [(p.current_page, len(p.items)) for p in pages]
    assert [500, 100] == [int(r.query["per_page"]) for r in server.requests]


@pytest.mark.parametrize(
    ("limit", "pages"),
    [(1, [1]), (50, [1]), (51, [1, 2]), (75, [1, 2]), (100, [1, 2]), (249, [1, 2, 3, 4, 5])],
)
async def test_limit_requests_only_the_pages_it_needs(server, limit, pages):
    """limit stops after that many segments, mid-page or at a page's end, asking no more."""
    async with client_for(server) as client:
        segments = [s async for s in client.segments.iterate(50, concurrency=8, limit=limit)]

    assert names(server)[:limit] == [s.name for s in segments]
    assert pages == sorted(pages_sent(server))


async def test_limit_beyond_the_total_gives_everything(server):
    """limit=10,000 of 250: every segment, every page once."""
    async with client_for(server) as client:
        segments = [s async for s in client.segments.iterate(50, concurrency=8, limit=10_000)]

    assert names(server) == [s.name for s in segments]
    assert [1, 2, 3, 4, 5] == sorted(pages_sent(server))


async def test_limit_with_start_page(server):
    """start_page=2, limit=60: items 50 to 109, from pages 2 and 3 only."""
    async with client_for(server) as client:
        segments = [
            s async for s in client.segments.iterate(50, concurrency=8, start_page=2, limit=60)
        ]

    assert names(server)[50:110] == [s.name for s in segments]
    assert [2, 3] == sorted(pages_sent(server))


async def test_limit_with_a_large_window_sends_no_page_beyond_those_needed():
    """1,000 segments, 10 a page, concurrency 8, limit 35: pages 1 to 4, each once."""
    async with FakeSegmentsServer(seed=14) as server:
        server.add_segments(1000)
        server.inject(Fault.latency(0.005), method="GET", probability=1.0)
        async with client_for(server) as client:
            before = client_tasks()
            segments = [s async for s in client.segments.iterate(10, concurrency=8, limit=35)]
            await settle()
            assert 0 == acquired_connections(client)
            assert set() == client_tasks() - before
        await asyncio.sleep(0.02)  # anything still on its way would arrive now

        assert 35 == len(segments)
        assert [1, 2, 3, 4] == sorted(pages_sent(server))


async def test_leaving_a_limited_iteration_early_cancels_what_is_in_flight():
    """Breaking out of iterate(limit=...) cancels its prefetch: nothing held, nothing left."""
    async with FakeSegmentsServer(seed=15) as server:
        server.add_segments(1000)
        server.inject(Fault.latency(0.01), method="GET", probability=1.0)
        async with client_for(server) as client:
            before = client_tasks()
            iterator = client.segments.iterate(10, concurrency=8, limit=500)
            async with contextlib.aclosing(iterator):
                async for segment in iterator:
                    if segment.name == names(server)[25]:
                        break
            await settle()
            assert 0 == acquired_connections(client)
            assert set() == client_tasks() - before
        # Page 3 was being read, with the window of 8 (pages 3 to 10) in flight.
        assert max(pages_sent(server)) <= 10


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"start_page": 0}, ValueError),
        ({"start_page": -3}, ValueError),
        ({"start_page": 1.5}, TypeError),
        ({"start_page": "2"}, TypeError),
        ({"start_page": True}, TypeError),
        ({"start_page": None}, TypeError),
        ({"limit": 0}, ValueError),
        ({"limit": -1}, ValueError),
        ({"limit": 2.0}, TypeError),
        ({"limit": "10"}, TypeError),
        ({"limit": False}, TypeError),
    ],
    ids=repr,
)
async def test_bad_start_page_or_limit_is_refused_before_sending(server, options, error):
    """Bad values raise from the call itself, before the first request (and iteration)."""
    async with client_for(server) as client:
        with pytest.raises(error, match=next(iter(options))):
            client.segments.iterate(**options)
        if "start_page" in options:
            with pytest.raises(error, match="start_page"):
                client.segments.iter_pages(start_page=options["start_page"])
    assert [] == server.requests


async def test_leaving_auto_iterations_early_leaves_the_adaptive_limit_whole():
    """Breaking out of iterate(concurrency="auto") again and again: the next one completes."""
    async with FakeSegmentsServer(seed=19) as server:
        server.add_segments(400)
        server.inject(Fault.latency(0.01), method="GET", probability=1.0)
        async with client_for(server, max_connections=4) as client:
            before = client_tasks()
            async with asyncio.timeout(10):  # a leaked place would make this hang
                for _ in range(6):
                    iterator = client.segments.iterate(10, concurrency="auto", limit=300)
                    async with contextlib.aclosing(iterator):
                        async for segment in iterator:
                            if segment.name == names(server)[25]:
                                break
                everything = [s async for s in client.segments.iterate(10, concurrency="auto")]
            await settle()
            assert 0 == acquired_connections(client)
            assert set() == client_tasks() - before
        assert names(server) == [s.name for s in everything]
