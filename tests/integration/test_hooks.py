"""Event hooks over real sockets: every attempt of every call, what the events hold, and
what a raising hook does (propagates, and leaves no connection or task behind)."""

from __future__ import annotations

import asyncio
from typing import Any

import attrs
import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from segments_async import (
    APIConnectionError,
    APITimeoutError,
    ClientClosedError,
    NotFoundError,
    RequestEvent,
    ResponseEvent,
    RetryEvent,
)
from segments_async.testing import FakeSegmentsServer, Fault

from ..leaks import acquired_connections, client_tasks, settle
from .support import Recorder, client_for

MISSING_ID = "7f2d6e6d-a4ad-4b58-abfe-bd8b918ebec2"


class Boom(Exception):
    pass


@pytest.fixture
async def server():
    async with FakeSegmentsServer(seed=12) as server:
        server.add_segments(100)
        yield server


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
async def test_every_attempt_of_a_retried_call(server, asynchronous):
    """Two 503s then a 200: request, response and retry events for each attempt, in order."""
    server.inject(Fault.status(503), method="GET", times=2)
    recorder = Recorder()
    async with client_for(server, event_hooks=recorder.hooks(asynchronous=asynchronous)) as client:
        await client.segments.list(per_page=10)

    url = f"{server.segments_url}?page=1&per_page=10"
    assert [
        RequestEvent, ResponseEvent, RetryEvent,
        RequestEvent, ResponseEvent, RetryEvent,
        RequestEvent, ResponseEvent,
    ] == [type(e) for e in recorder.events]  # fmt: skip
    assert [("GET", url, 1), ("GET", url, 2), ("GET", url, 3)] == [
        (e.method, e.url, e.attempt) for e in recorder.of(RequestEvent)
    ]
    assert [(1, 503), (2, 503), (3, 200)] == [
        (e.attempt, e.status_code) for e in recorder.of(ResponseEvent)
    ]
    retries = recorder.of(RetryEvent)
    assert [(1, "HTTP 503"), (2, "HTTP 503")] == [(e.attempt, e.reason) for e in retries]
    assert all(0 <= e.delay <= 0.002 for e in retries)
    assert all(503 == e.error.status_code for e in retries)


async def test_every_page_of_iterate_prefetched_or_not(server):
    """iterate(concurrency=4): one request and one response event per page, each once."""
    recorder = Recorder()
    async with client_for(server, event_hooks=recorder.hooks()) as client:
        count = len([s async for s in client.segments.iterate(per_page=10, concurrency=4)])

    assert 100 == count
    expected = sorted(f"{server.segments_url}?page={n}&per_page=10" for n in range(1, 11))
    assert expected == sorted(e.url for e in recorder.of(RequestEvent))
    assert expected == sorted(e.url for e in recorder.of(ResponseEvent))
    assert {200} == {e.status_code for e in recorder.of(ResponseEvent)}
    assert {1} == {e.attempt for e in recorder.events if not isinstance(e, RetryEvent)}


async def test_every_kind_of_call(server):
    """create, update, list and delete each emit their method and URL."""
    recorder = Recorder()
    async with client_for(server, event_hooks=recorder.hooks()) as client:
        segment = await client.segments.create("EMEA")
        await client.segments.update(segment.id, "DACH")
        await client.segments.delete(segment.id)

    one = f"{server.segments_url}/{segment.id}"
    assert [
        ("POST", server.segments_url, 200),
        ("PUT", one, 200),
        ("DELETE", one, 204),
    ] == [(e.method, e.url, e.status_code) for e in recorder.of(ResponseEvent)]


async def test_hooks_run_in_list_order_and_async_ones_are_awaited(server):
    """Sync and async hooks of one kind run in order, each finished before the next."""
    order: list[str] = []

    def first(event: ResponseEvent) -> None:
        order.append("sync")

    async def second(event: ResponseEvent) -> None:
        await asyncio.sleep(0.001)
        order.append("async")

    def third(event: ResponseEvent) -> None:
        order.append("sync again")

    async with client_for(server, event_hooks={"response": [first, second, third]}) as client:
        await client.segments.list()
        assert ["sync", "async", "sync again"] == order


async def test_events_are_frozen(server):
    """No event can be changed by a hook."""
    server.inject(Fault.status(503), method="GET")
    recorder = Recorder()
    async with client_for(server, event_hooks=recorder.hooks()) as client:
        await client.segments.list()

    assert 5 == len(recorder.events)
    for event in recorder.events:
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            event.attempt = 9  # type: ignore[attr-defined]


async def test_headers_are_a_detached_case_insensitive_copy(server):
    """The answer's headers outlive the response and the client, whatever their case."""
    recorder = Recorder()
    async with client_for(server, event_hooks=recorder.hooks()) as client:
        await client.segments.list()
        await client.segments.list()

    first, second = recorder.of(ResponseEvent)
    assert isinstance(first.headers, CIMultiDictProxy)  # read-only: no hook changes it
    assert first.headers is not second.headers
    assert "application/json" == first.headers["content-type"] == first.headers["CONTENT-TYPE"]
    assert "FakeSegmentsServer" == first.headers.get("server")
    assert first.elapsed >= 0


async def test_no_answer_gives_no_status_and_the_error(server):
    """A timeout and a lost connection: status_code None, error set, headers empty."""
    server.inject(Fault.latency(10), method="GET")
    server.inject(Fault.reset_before(), method="POST")
    recorder = Recorder()
    async with client_for(server, timeout=0.1, event_hooks=recorder.hooks()) as client:
        await client.segments.list()  # the timeout is retried
        with pytest.raises(APIConnectionError) as caught:
            await client.segments.create("EMEA")  # a POST that may have acted is not

    timed_out, listed, lost = recorder.of(ResponseEvent)
    assert (None, 200, None) == (timed_out.status_code, listed.status_code, lost.status_code)
    assert isinstance(timed_out.error, APITimeoutError)
    assert listed.error is None
    assert caught.value is lost.error
    assert 0 == len(timed_out.headers) == len(lost.headers)
    assert all(e.elapsed >= 0 for e in (timed_out, listed, lost))
    (retry,) = recorder.of(RetryEvent)
    assert ("timeout", timed_out.error) == (retry.reason, retry.error)


async def test_an_error_answer_has_its_status_and_no_error(server):
    """A 404 is an answer: status_code 404, error None (the call raises NotFoundError)."""
    recorder = Recorder()
    async with client_for(server, event_hooks=recorder.hooks()) as client:
        with pytest.raises(NotFoundError):
            await client.segments.delete(MISSING_ID)

    (event,) = recorder.of(ResponseEvent)
    assert (404, None) == (event.status_code, event.error)


def everything_in(value: object, seen: set[int] | None = None) -> list[str]:
    """Every str reachable from an event: its fields, their reprs, an error's attributes."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return []
    seen.add(id(value))
    found = [repr(value), str(value)]
    if isinstance(value, str | bytes):
        return found
    if attrs.has(type(value)):
        for field in attrs.fields(type(value)):
            found += everything_in(getattr(value, field.name), seen)
    elif isinstance(value, CIMultiDict | CIMultiDictProxy | dict):
        for name, item in value.items():
            found += everything_in(name, seen) + everything_in(item, seen)
    elif isinstance(value, BaseException):
        for item in [*value.args, *vars(value).values(), value.__cause__, value.__context__]:
            found += everything_in(item, seen)
    return found


async def test_no_event_carries_the_token(server):
    """Answers, retries, errors and timeouts: the token is in no field and no repr."""
    server.inject(Fault.status(503), method="GET")
    server.inject(Fault.latency(10), method="PUT")
    recorder = Recorder()
    async with client_for(server, timeout=0.1, event_hooks=recorder.hooks()) as client:
        segment = await client.segments.create("EMEA")
        await client.segments.list()
        await client.segments.update(segment.id, "DACH")
        with pytest.raises(NotFoundError):
            await client.segments.delete(MISSING_ID)

    assert {RequestEvent, ResponseEvent, RetryEvent} == {type(e) for e in recorder.events}
    texts = [text for event in recorder.events for text in everything_in(event)]
    assert len(texts) > 50
    assert not [text for text in texts if server.token in text]


# --------------------------------------------------------------------------- raising hooks


def raising(kind: str) -> dict[str, list[Any]]:
    def hook(event: object) -> None:
        raise Boom(kind)

    return {kind: [hook]}


@pytest.mark.parametrize("kind", ["request", "response", "retry"])
async def test_a_raising_hook_propagates_and_leaks_nothing(server, kind):
    """The hook's exception is the call's; no connection stays acquired, no task runs."""
    server.inject(Fault.status(503), method="GET")  # so that a retry event comes
    async with client_for(server, event_hooks=raising(kind)) as client:
        before = client_tasks()
        with pytest.raises(Boom, match=kind):
            await client.segments.list()
        await settle()
        assert 0 == acquired_connections(client)
        assert set() == client_tasks() - before
        sent = len(server.requests)
        assert {"request": 0, "response": 1, "retry": 1}[kind] == sent
        # The pool still works, through a view without the hook.
        assert 100 == (await client.with_options(event_hooks=None).segments.list()).total


@pytest.mark.parametrize("kind", ["request", "response"])
async def test_a_raising_hook_on_a_prefetched_page_ends_iterate(server, kind):
    """A hook that raises on page 6 of iterate(concurrency=4) raises from the loop."""

    async def hook(event: RequestEvent | ResponseEvent) -> None:
        if "page=6&" in event.url:
            raise Boom(kind)

    server.inject(Fault.latency(0.005), method="GET", probability=1.0)
    async with client_for(server, event_hooks={kind: [hook]}) as client:
        before = client_tasks()
        seen = 0
        with pytest.raises(Boom):
            async for _ in client.segments.iterate(per_page=10, concurrency=4):
                seen += 1
        await settle()
        assert 50 == seen  # pages 1 to 5 were yielded, in order
        assert 0 == acquired_connections(client)
        assert set() == client_tasks() - before
        # Nothing beyond the window was requested.
        assert max(int(r.query["page"]) for r in server.requests) <= 9


# --------------------------------------------------------------------------- views


async def test_views_share_hooks_unless_they_replace_them(server):
    """with_options keeps the hooks; event_hooks= replaces them all; None removes them."""
    recorder = Recorder()
    other: list[object] = []
    async with client_for(server, event_hooks=recorder.hooks()) as client:
        await client.with_options(timeout=5).segments.list()
        assert 2 == len(recorder.events)

        replaced = client.with_options(event_hooks={"response": [other.append]})
        await replaced.segments.list()
        assert 2 == len(recorder.events)
        assert [ResponseEvent] == [type(e) for e in other]

        await client.with_options(event_hooks=None).segments.list()
        await replaced.with_options(deadline=5).segments.list()
        assert (2, 2) == (len(recorder.events), len(other))

        assert {"request": [], "response": [other.append], "retry": []} == replaced.event_hooks
        await client.segments.list()
        assert 4 == len(recorder.events)


async def test_the_hooks_property_is_a_copy(server):
    """Changing the dict event_hooks returns does not change the client's hooks."""
    recorder = Recorder()
    async with client_for(server, event_hooks={"response": [recorder.hook]}) as client:
        client.event_hooks["response"].append(print)
        client.event_hooks["request"] = [print]
        assert {"request": [], "response": [recorder.hook], "retry": []} == client.event_hooks
        await client.segments.list()
    assert [ResponseEvent] == [type(e) for e in recorder.events]


async def test_the_hook_lists_are_copied_when_the_client_is_made(server):
    """Appending to the list passed in later adds no hook."""
    recorder = Recorder()
    responses: list[Any] = [recorder.hook]
    async with client_for(server, event_hooks={"response": responses}) as client:
        responses.append(recorder.hook)
        await client.segments.list()
    assert 1 == len(recorder.events)


# --------------------------------------------------------------------------- bulk


async def test_every_attempt_of_every_bulk_item(server):
    """create_many, update_many, delete_many: events for each item, retries included."""
    server.inject(Fault.status(503, retry_after=0), method="PUT")
    recorder = Recorder()
    async with client_for(server, event_hooks=recorder.hooks()) as client:
        created = [r.value async for r in client.segments.create_many(["a", "b", "c"])]
        ids = [segment.id for segment in created if segment is not None]
        changes = [(segment_id, "renamed") for segment_id in ids]
        assert all([r.ok async for r in client.segments.update_many(changes, concurrency=2)])
        assert all([r.ok async for r in client.segments.delete_many(ids, concurrency=2)])

    answered = sorted((e.method, e.url, e.status_code) for e in recorder.of(ResponseEvent))
    one = f"{server.segments_url}/"
    expected = (
        [("POST", server.segments_url, 200)] * 3
        + [("PUT", one + i, 200) for i in ids]
        + [("PUT", next(e.url for e in recorder.of(RetryEvent)), 503)]
        + [("DELETE", one + i, 204) for i in ids]
    )
    assert sorted(expected) == answered
    assert 10 == len(recorder.of(RequestEvent))
    assert [("PUT", 1)] == [(e.method, e.attempt) for e in recorder.of(RetryEvent)]


@pytest.mark.parametrize("error", [ValueError, TypeError, Boom])
async def test_a_raising_hook_propagates_from_a_bulk_operation(server, error):
    """A hook's exception, even a ValueError, ends create_many: it is no refused input."""

    def hook(event: ResponseEvent) -> None:
        raise error("the hook failed")

    async with client_for(server, event_hooks={"response": [hook]}) as client:
        before = client_tasks()
        results = []
        with pytest.raises(error, match="the hook failed"):
            async for result in client.segments.create_many(["a", "b", "c", "d"], concurrency=2):
                results.append(result)
        await settle()
        assert [] == results
        assert 0 == acquired_connections(client)
        assert set() == client_tasks() - before


async def test_closing_the_client_while_a_hook_runs_ends_the_call(server):
    """aclose() during an async hook ends the call with ClientClosedError, as elsewhere."""
    entered = asyncio.Event()

    async def slow(event: ResponseEvent) -> None:
        entered.set()
        await asyncio.sleep(10)

    client = client_for(server, event_hooks={"response": [slow]})
    before = client_tasks()
    call = asyncio.create_task(client.segments.list())
    await entered.wait()
    await client.aclose()
    with pytest.raises(ClientClosedError, match="closed during the call"):
        await call
    await settle()
    assert set() == client_tasks() - before
