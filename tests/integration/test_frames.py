"""The token is in no frame that an exception leaving the library references.

Error trackers (Sentry), ``pytest --showlocals`` and rich tracebacks record the locals of
every frame of a traceback: their ``repr``, and the contents of containers (mappings,
multidicts, sequences, attrs instances) walked recursively. So does ``captured`` here,
over every traceback reachable from the raised exception: its own, those of its
``__cause__`` and ``__context__``, recursively, and those of exception groups' members.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

import aiohttp
import attrs
import pytest
from multidict import CIMultiDict

from segments_async import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    ClientClosedError,
    InternalServerError,
    NotFoundError,
    RetryPolicy,
    SegmentsClient,
    UnprocessableEntityError,
)

from ..rawserver import RawRequest, RawServer, ThenClose, json_response, response
from .support import (
    SEGMENT,
    SEGMENT_ID,
    TOKEN,
    Held,
    closed_port,
    envelope,
    make_client,
    outcome_of,
)

ONCE = RetryPolicy(max_retries=1, backoff_initial=0.001, backoff_max=0.002)


def exceptions_reachable(root: BaseException) -> Iterator[BaseException]:
    """``root`` and every exception chained to it or grouped in it, each once."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [root]
    while pending:
        error = pending.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        yield error
        pending += (error.__cause__, error.__context__)
        if isinstance(error, BaseExceptionGroup):
            pending += error.exceptions


def captured(value: object, depth: int = 0, seen: set[int] | None = None) -> Iterator[str]:
    """The text a local-recording error reporter keeps of ``value``."""
    seen = set() if seen is None else seen
    try:
        yield repr(value)
    except Exception:  # a broken repr is recorded as such, not as its contents
        return
    if depth > 8 or id(value) in seen or isinstance(value, str | bytes | int | float):
        return
    seen.add(id(value))
    children: list[object] = []
    if isinstance(value, Mapping) or (hasattr(value, "items") and hasattr(value, "keys")):
        try:
            for key, item in list(value.items()):  # type: ignore[attr-defined]
                children += (key, item)
        except Exception:  # not a mapping after all
            children = []
    elif isinstance(value, list | tuple | set | frozenset) or type(value).__name__ == "deque":
        children = list(value)  # type: ignore[call-overload]
    elif attrs.has(type(value)):
        children = [getattr(value, f.name, None) for f in attrs.fields(type(value))]
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        children = [getattr(value, f.name) for f in dataclasses.fields(value)]
    elif isinstance(value, BaseException):
        children = [*value.args, *getattr(value, "__dict__", {}).values()]
    for child in children:
        yield from captured(child, depth + 1, seen)


def leaks(root: BaseException) -> list[str]:
    """Where the token shows in what a reporter records of ``root``'s tracebacks."""
    found: list[str] = []
    for error in exceptions_reachable(root):
        for text in captured(error):
            if TOKEN in text:
                found.append(f"{type(error).__name__}: {text[:200]}")
        tb = error.__traceback__
        while tb is not None:
            frame = tb.tb_frame
            for name, local in frame.f_locals.items():
                if any(TOKEN in text for text in captured(local)):
                    code = frame.f_code
                    found.append(f"{type(error).__name__} {code.co_filename}:{code.co_name} {name}")
            tb = tb.tb_next
    return found


Scenario = Callable[[], Awaitable[BaseException | object]]


async def against(
    handler: Callable[[RawRequest], Awaitable[bytes | None]],
    call: Callable[[SegmentsClient], Awaitable[object]],
    **options: Any,
) -> BaseException | object:
    async with RawServer(handler) as server, make_client(server.url, **options) as client:
        return await outcome_of(call(client))


def answer(payload: bytes | None) -> Callable[[RawRequest], Awaitable[bytes | None]]:
    async def handler(request: RawRequest) -> bytes | None:
        return payload

    return handler


async def never(request: RawRequest) -> bytes:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


def get(client: SegmentsClient) -> Awaitable[object]:
    return client.segments.list()


def post(client: SegmentsClient) -> Awaitable[object]:
    return client.segments.create("EMEA")


def delete(client: SegmentsClient) -> Awaitable[object]:
    return client.segments.delete(SEGMENT_ID)


async def refused(call: Callable[[SegmentsClient], Awaitable[object]]) -> BaseException | object:
    async with closed_port() as url, make_client(url, retry=ONCE) as client:
        return await outcome_of(call(client))


async def caller_cancels(call: Callable[[SegmentsClient], Awaitable[object]]) -> object:
    held = Held()
    async with RawServer(held) as server, make_client(server.url) as client:
        task = asyncio.ensure_future(call(client))
        await held.arrivals(1)
        task.cancel()
        return await outcome_of(task)


async def closed_under(call: Callable[[SegmentsClient], Awaitable[object]]) -> object:
    held = Held()
    async with RawServer(held) as server, make_client(server.url) as client:
        task = asyncio.ensure_future(call(client))
        await held.arrivals(1)
        await client.aclose()
        return await outcome_of(task)


async def owner_closes_the_session() -> object:
    async with RawServer(answer(json_response(200, envelope(SEGMENT)))) as server:
        session = aiohttp.ClientSession()
        client = make_client(server.url, session=session)
        await session.close()
        return await outcome_of(client.segments.create("EMEA"))


async def a_trace_hook_raises() -> object:
    """The app's own trace hook fails inside aiohttp, whose frames hold the headers."""

    async def on_request_start(session: object, context: object, params: object) -> None:
        raise LookupError("the app's trace hook failed")

    tracing = aiohttp.TraceConfig()
    tracing.on_request_start.append(on_request_start)
    server = RawServer(answer(json_response(200, envelope(SEGMENT))))
    async with server, aiohttp.ClientSession(trace_configs=[tracing]) as session:
        client = make_client(server.url, session=session)
        return await outcome_of(client.segments.create("EMEA"))


async def in_a_task_group() -> object:
    async def both(client: SegmentsClient) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(client.segments.list())
            group.create_task(client.segments.update(SEGMENT_ID, "x"))

    return await against(answer(json_response(503, {"success": False})), both)


async def failing_page_two() -> object:
    async def handler(request: RawRequest) -> bytes:
        if "page=1&" in request.target:
            return json_response(200, page(1))
        return json_response(500, {"success": False, "message": "boom"})

    async def consume(client: SegmentsClient) -> object:
        return [s async for s in client.segments.iterate(per_page=2, concurrency=3)]

    return await against(handler, consume)


def page(number: int) -> dict[str, object]:
    items = [{"id": f"00000000-0000-4000-8000-{number * 10 + i:012d}", "name": "s"} for i in (0, 1)]
    return envelope(
        {
            "currentPage": number,
            "perPage": 2,
            "lastPage": 5,
            "total": 10,
            "items": items,
            "filters": [],
        }
    )


async def raising_hook() -> object:
    def hook(event: object) -> None:
        raise LookupError("the app's hook failed")

    return await against(
        answer(json_response(200, envelope(SEGMENT))), post, event_hooks={"response": [hook]}
    )


async def deadline_runs_out() -> object:
    return await against(never, get, deadline=0.05)


async def pool_busy_past_the_deadline() -> object:
    held = Held()
    async with RawServer(held) as server, make_client(server.url, max_connections=1) as client:
        slow = asyncio.ensure_future(client.segments.list())
        await held.arrivals(1)
        hurried = client.with_options(deadline=0.05)
        error = await outcome_of(hurried.segments.create("EMEA"))
        slow.cancel()
        await outcome_of(slow)
        return error


SCENARIOS: dict[str, tuple[Scenario, type[BaseException]]] = {
    "refused GET": (lambda: refused(get), APIConnectionError),
    "refused POST": (lambda: refused(post), APIConnectionError),
    "reset GET": (lambda: against(answer(None), get), APIConnectionError),
    "reset POST": (lambda: against(answer(None), post), APIConnectionError),
    "reset DELETE": (lambda: against(answer(None), delete), APIConnectionError),
    "timeout GET": (lambda: against(never, get, timeout=0.05), APITimeoutError),
    "timeout POST": (lambda: against(never, post, timeout=0.05), APITimeoutError),
    "5xx after retries": (
        lambda: against(answer(json_response(503, {"success": False})), get),
        InternalServerError,
    ),
    "html 502 on PUT": (
        lambda: against(
            answer(response(502, b"<html>bad gateway</html>")),
            lambda c: c.segments.update(SEGMENT_ID, "x"),
        ),
        InternalServerError,
    ),
    "404": (lambda: against(answer(json_response(404, {"success": False})), delete), NotFoundError),
    "422": (
        lambda: against(answer(json_response(422, {"success": False})), post),
        UnprocessableEntityError,
    ),
    "401": (lambda: against(answer(json_response(401, {"success": False})), get), APIStatusError),
    "malformed 2xx": (
        lambda: against(answer(json_response(200, envelope({"id": 5}))), post),
        APIResponseValidationError,
    ),
    "not JSON 2xx": (
        lambda: against(answer(response(200, b"<p>")), get),
        APIResponseValidationError,
    ),
    "body cut short": (
        lambda: against(answer(ThenClose(response(200, b'{"succ', content_length=99))), get),
        APIConnectionError,
    ),
    "204 with a body, no retries": (
        lambda: against(
            answer(response(204, b'{"success":true,"result":[]}', reason="No Content")),
            delete,
            retry=RetryPolicy(max_retries=0),
        ),
        APIConnectionError,
    ),
    "caller cancels GET": (lambda: caller_cancels(get), asyncio.CancelledError),
    "caller cancels POST": (lambda: caller_cancels(post), asyncio.CancelledError),
    "aclose under a GET": (lambda: closed_under(get), ClientClosedError),
    "aclose under a PUT": (
        lambda: closed_under(lambda c: c.segments.update(SEGMENT_ID, "x")),
        ClientClosedError,
    ),
    "borrowed session closed by its owner": (owner_closes_the_session, ClientClosedError),
    "a borrowed session's trace hook raises": (a_trace_hook_raises, LookupError),
    "task group": (in_a_task_group, BaseExceptionGroup),
    "iterate, page 2 fails": (failing_page_two, InternalServerError),
    "an event hook raises": (raising_hook, LookupError),
    "deadline": (deadline_runs_out, APITimeoutError),
    "pool busy past the deadline": (pool_busy_past_the_deadline, APITimeoutError),
}


@pytest.mark.parametrize("name", SCENARIOS)
async def test_no_frame_of_a_raised_exception_holds_the_token(name):
    """Every local of every frame, walked as error reporters walk them: no token."""
    scenario, kind = SCENARIOS[name]
    error = await scenario()
    assert isinstance(error, kind), repr(error)
    assert error.__traceback__ is not None
    assert [] == leaks(error)


def construct(token_suffix: str = "", **overrides: Any) -> BaseException:
    """The error of a construction; the token is never a local of this frame (it is one
    of the frames recorded)."""
    overrides.setdefault("base_url", "https://api.segments.test")
    try:
        SegmentsClient(token=TOKEN + token_suffix, **overrides)
    except (TypeError, ValueError) as error:
        return error
    raise AssertionError(f"{overrides} was accepted")


@pytest.mark.parametrize(
    "overrides",
    [
        {"timeout": "30"},
        {"timeout": -1},
        {"deadline": math.nan},
        {"retry": {"max_retries": 1}},
        {"max_connections": 0},
        {"base_url": "ftp://api.segments.test"},
        {"base_url": "http://api.segments.test"},
        {"default_headers": {"Authorization": "Bearer other"}},
        {"event_hooks": {"request": [None]}},
        {"rate_limit": -1},
        {"allow_insecure_http": "yes"},
        {"session": object()},
        {"token_suffix": "\n"},
        {"token_suffix": " x"},
        {"token_suffix": "\u00e9"},
    ],
    ids=lambda overrides: ",".join(
        re.sub(r" at 0x[0-9a-f]+", "", f"{k}={v!r}")[:40] for k, v in overrides.items()
    ),
)
async def test_construction_errors_keep_the_token_out_of_their_frames(overrides):
    """A valid (or nearly valid) token with a bad other argument: the error's frames are clean."""
    error = construct(**overrides)
    assert TOKEN not in str(error)
    assert [] == leaks(error)


@attrs.frozen
class _Holder:
    value: object


def _hold(where: str) -> None:
    """Raise from a frame that holds the token (a module global) as ``where`` says."""
    if where == "nested containers":
        held: object = [{"headers": (1, {"Authorization": f"Bearer {TOKEN}"})}]
    elif where == "multidict":
        held = CIMultiDict(Authorization=f"Bearer {TOKEN}")
    elif where == "attrs instance":
        held = _Holder(_Holder(TOKEN))
    else:
        held = TOKEN
    raise KeyError(type(held).__name__)


def _raised(where: str, *, chained: bool) -> BaseException:
    """The exception a caller would see: ``_hold``'s own, or one chained to it."""
    try:
        try:
            _hold(where)
        except KeyError as cause:
            if chained:
                raise ValueError("outer") from cause
            raise
    except (KeyError, ValueError) as error:
        return error
    raise AssertionError("unreachable")


def test_the_walker_finds_nothing_where_nothing_is():
    """A clean exception: no leak reported."""
    with pytest.raises(KeyError) as info:
        {}["nothing secret"]
    assert [] == leaks(info.value)


@pytest.mark.parametrize("chained", [False, True], ids=["own frames", "through __cause__"])
@pytest.mark.parametrize(
    "where", ["plain local", "nested containers", "multidict", "attrs instance"]
)
def test_the_walker_finds_the_token_wherever_a_reporter_would(where, chained):
    """The detector itself: a token held in a frame is found, directly, chained or grouped."""
    error = _raised(where, chained=chained)
    assert [] != leaks(error)
    assert [] != leaks(ExceptionGroup("group", [error]))


def test_the_walker_reads_exception_arguments():
    """A token in an exception's own arguments is found too."""
    assert [] != leaks(ValueError(f"Bearer {TOKEN}"))
