"""``aclose()`` under load.

Every call that is waiting for a connection, in flight, or backing off when the client
is closed ends promptly in ``ClientClosedError``: never a retry after the close, never
aiohttp's ``RuntimeError('Session is closed')``, and never ``CancelledError`` unless the
caller itself was cancelled. A POST cut off in flight says its outcome is unknown.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter

import aiohttp
import pytest

from segments_async import ClientClosedError, RetryPolicy

from ..leaks import client_tasks, settle
from ..rawserver import RawRequest, RawServer, json_response
from .support import SEGMENT_ID, Held, envelope, make_client, outcome_of


def page(number: int) -> dict[str, object]:
    items = [{"id": f"00000000-0000-4000-8000-{number * 10 + i:012d}", "name": "s"} for i in (0, 1)]
    return envelope(
        {
            "currentPage": number,
            "perPage": 2,
            "lastPage": 50,
            "total": 100,
            "items": items,
            "filters": [],
        }
    )


def kinds(results: list[object]) -> Counter[str]:
    return Counter(type(result).__name__ for result in results)


@pytest.mark.parametrize("borrowed", [False, True], ids=["owned session", "borrowed session"])
async def test_close_with_a_thousand_calls_queued_and_in_flight(borrowed):
    """1,050 calls on a pool of 2, two in flight: each ends in ClientClosedError, at once."""
    held = Held()
    async with RawServer(held) as server, aiohttp.ClientSession() as session:
        client = make_client(server.url, max_connections=2, session=session if borrowed else None)
        calls = [asyncio.ensure_future(client.segments.create(f"s{i}")) for i in range(1050)]
        await held.arrivals(2)
        await client.aclose()
        async with asyncio.timeout(5):  # promptly: nothing waits on the server
            results = await asyncio.gather(*(outcome_of(call) for call in calls))
        await settle()
        requests = len(server.requests)
        assert session.closed is False

    assert {"ClientClosedError": 1050} == kinds(results)
    in_flight = [r for r in results if isinstance(r, ClientClosedError) and r.outcome_unknown]
    assert 2 == len(in_flight)
    for error in in_flight:
        assert "may have been done" in error.message
    assert 2 == requests
    assert set() == client_tasks()


async def test_close_during_a_backoff_sends_no_retry(caplog):
    """A GET waiting out a 503's Retry-After when the client closes: no second request."""
    backing_off = asyncio.Event()

    class Seen(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            backing_off.set()

    async def handler(request: RawRequest) -> bytes:
        return json_response(503, {"success": False}, headers={"Retry-After": "30"})

    seen = Seen(logging.WARNING)
    logging.getLogger("segments_async").addHandler(seen)
    try:
        async with RawServer(handler) as server:
            client = make_client(server.url, retry=RetryPolicy(retry_after_max=60))
            call = asyncio.ensure_future(client.segments.update(SEGMENT_ID, "x"))
            await backing_off.wait()
            await client.aclose()
            async with asyncio.timeout(5):
                error = await outcome_of(call)
            await settle()
    finally:
        logging.getLogger("segments_async").removeHandler(seen)

    assert isinstance(error, ClientClosedError), repr(error)
    assert error.outcome_unknown is True  # the 503 may have followed an acted-on PUT
    assert 1 == len(server.requests)


async def test_close_from_an_event_hook_ends_its_own_call():
    """A response hook that closes the client: its own call ends, unretried."""

    async def handler(request: RawRequest) -> bytes:
        return json_response(503, {"success": False}, headers={"Retry-After": "0"})

    async with RawServer(handler) as server:
        client = make_client(server.url)

        async def close(event: object) -> None:
            await client.aclose()

        client = make_client(server.url, event_hooks={"response": [close]})
        error = await outcome_of(client.segments.list())

    assert isinstance(error, ClientClosedError), repr(error)
    assert 1 == len(server.requests)


async def test_close_ends_iterators_in_progress():
    """Iterations with pages in flight end in ClientClosedError and leave no task behind."""
    held = Held(lambda request: asyncio.sleep(0, json_response(200, page(2))))

    async def handler(request: RawRequest) -> bytes | None:
        if "page=1&" in request.target:
            return json_response(200, page(1))
        return await held(request)

    async def consume(concurrency: int) -> list[object]:
        return [s async for s in client.segments.iterate(per_page=2, concurrency=concurrency)]

    async with RawServer(handler) as server:
        client = make_client(server.url)
        iterations = [asyncio.ensure_future(consume(c)) for c in (1, 4, 8)]
        await held.arrivals(1 + 3 + 7)
        await client.aclose()
        async with asyncio.timeout(5):
            results = await asyncio.gather(*(outcome_of(i) for i in iterations))
        await settle()

    assert {"ClientClosedError": 3} == kinds(results)
    assert set() == client_tasks()


async def test_close_ends_calls_waiting_for_the_rate_limit():
    """Calls held back by rate_limit when the client closes: ClientClosedError, none sent."""

    async def handler(request: RawRequest) -> bytes:
        return json_response(200, page(1))

    async with RawServer(handler) as server:
        client = make_client(server.url, rate_limit=1)
        calls = [asyncio.ensure_future(client.segments.list()) for _ in range(20)]
        await asyncio.wait([calls[0]])  # the first goes at once, the others wait their turn
        await client.aclose()
        async with asyncio.timeout(5):
            results = await asyncio.gather(*(outcome_of(call) for call in calls))

    assert {"SegmentPage": 1, "ClientClosedError": 19} == kinds(results)
    assert 1 == len(server.requests)


@pytest.mark.parametrize("order", ["cancel, then close", "close, then cancel"])
async def test_a_caller_that_cancels_gets_cancelled_error(order):
    """A caller cancelled by its own code stays cancelled, whatever aclose() does around it."""
    held = Held()
    async with RawServer(held) as server:
        client = make_client(server.url)
        call = asyncio.ensure_future(client.segments.create("EMEA"))
        await held.arrivals(1)
        if order == "cancel, then close":
            call.cancel()
            await client.aclose()
        else:
            close = asyncio.ensure_future(client.aclose())
            await asyncio.sleep(0)
            call.cancel()
            await close
        result = await outcome_of(call)

    assert isinstance(result, asyncio.CancelledError), repr(result)
    assert call.cancelled()


async def test_calls_after_close_fail_at_once_with_client_closed_error():
    """A call on a closed client (or its view) is refused before anything is sent."""

    async def handler(request: RawRequest) -> bytes:
        return json_response(200, page(1))

    async with RawServer(handler) as server:
        client = make_client(server.url)
        view = client.with_options(timeout=1)
        await client.segments.list()
        await client.aclose()
        for call in (client.segments.list(), view.segments.delete(SEGMENT_ID)):
            with pytest.raises(ClientClosedError) as info:
                await call
            assert info.value.outcome_unknown is False

    assert 1 == len(server.requests)


async def test_aclose_from_another_event_loop_is_refused_and_leaks_nothing():
    """aclose() from a thread's own loop raises a clear RuntimeError; the pool stays usable."""

    async def handler(request: RawRequest) -> bytes:
        return json_response(200, page(1))

    async with RawServer(handler) as server:
        client = make_client(server.url)
        await client.segments.list()
        errors: list[BaseException] = []

        def close_elsewhere() -> None:
            try:
                asyncio.run(client.aclose())
            except BaseException as error:
                errors.append(error)

        thread = threading.Thread(target=close_elsewhere)
        thread.start()
        await asyncio.to_thread(thread.join)

        assert 1 == len(errors)
        assert isinstance(errors[0], RuntimeError)
        assert "another event loop" in str(errors[0])
        assert not client.closed
        await client.segments.list()
        await client.aclose()
        assert client.closed
