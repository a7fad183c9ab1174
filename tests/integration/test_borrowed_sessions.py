"""A borrowed ``aiohttp.ClientSession`` with hostile defaults of its own.

Whatever the app configured on its session (``raise_for_status``, ``auto_decompress``,
``base_url``, middlewares, a cookie jar, default headers, a timeout, a tiny connector
limit), the library sends and reads exactly as with its own session, or refuses the
session at construction with a clear ``ValueError``.
"""

from __future__ import annotations

import asyncio
import gzip
import threading
import warnings
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import ClientHandlerType, ClientRequest, ClientResponse

from segments_async import (
    APITimeoutError,
    ClientClosedError,
    NotFoundError,
    RateLimitError,
    RetryPolicy,
    Segment,
)

from ..rawserver import RawRequest, RawServer, json_response, response
from .support import FAST_RETRY, SEGMENT, SEGMENT_ID, TOKEN, envelope, make_client, outcome_of


def page(total: int = 3) -> dict[str, object]:
    items = [{"id": f"00000000-0000-4000-8000-{i:012d}", "name": f"s{i}"} for i in range(total)]
    return envelope(
        {
            "currentPage": 1,
            "perPage": 20,
            "lastPage": 1,
            "total": total,
            "items": items,
            "filters": [],
        }
    )


class Api:
    """A raw server that answers each method as the spec does, and records what it got."""

    def __init__(self) -> None:
        self.server = RawServer(self.handle)
        self.gzip = False
        self.answers: dict[str, list[bytes]] = {}

    async def handle(self, request: RawRequest) -> bytes:
        scripted = self.answers.get(request.method)
        if scripted:
            return scripted.pop(0)
        if request.method == "DELETE":
            return response(204, reason="No Content")
        payload = page() if request.method == "GET" else envelope(SEGMENT)
        if self.gzip:
            body = gzip.compress(orjson.dumps(payload))
            return response(200, body, headers={"Content-Encoding": "gzip"})
        return json_response(200, payload)

    @property
    def requests(self) -> list[RawRequest]:
        return self.server.requests


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    api = Api()
    async with api.server:
        yield api


async def crud(client: Any) -> None:
    """Every operation once; each must come back as the spec's answer means."""
    assert 3 == (await client.segments.list()).total
    assert Segment(**SEGMENT) == await client.segments.create("EMEA")
    assert Segment(**SEGMENT) == await client.segments.update(SEGMENT_ID, "EMEA")
    assert await client.segments.delete(SEGMENT_ID) is None


async def rewrite(request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
    """An app's middleware that would send every request elsewhere, token and all."""
    request.headers["X-Rewritten"] = "yes"
    request.url = request.url.with_path("/elsewhere")
    return await handler(request)


async def always_raise(response: ClientResponse) -> None:
    raise RuntimeError("the app's raise_for_status hook")


HOSTILE: dict[str, Callable[[], dict[str, Any]]] = {
    "raise_for_status=True": lambda: {"raise_for_status": True},
    "raise_for_status=callable": lambda: {"raise_for_status": always_raise},
    "auto_decompress=False": lambda: {"auto_decompress": False},
    "base_url elsewhere": lambda: {"base_url": "http://127.0.0.1:9/elsewhere/"},
    "middlewares": lambda: {"middlewares": (rewrite,)},
    "timeout=1ms": lambda: {"timeout": aiohttp.ClientTimeout(total=0.001)},
    "default headers": lambda: {
        "headers": {
            "Authorization": "Bearer the-apps-other-token",
            "Accept": "text/html",
            "Content-Type": "text/plain",
            "User-Agent": "the-app/1.0",
            "X-Request-Source": "the-app",
        }
    },
    "connector limit=1": lambda: {"connector": aiohttp.TCPConnector(limit=1)},
    "HTTP/1.0": lambda: {"version": aiohttp.HttpVersion10},
    "skip_auto_headers": lambda: {"skip_auto_headers": ("User-Agent", "Accept-Encoding")},
}


@pytest.mark.parametrize("name", HOSTILE)
async def test_a_hostile_session_default_changes_nothing(api, name):
    """CRUD through a session with one hostile default: the same answers, the same requests."""
    api.gzip = name == "auto_decompress=False"
    session = aiohttp.ClientSession(**HOSTILE[name]())
    async with session, make_client(api.server.url, session=session) as client:
        await crud(client)

    assert ["GET", "POST", "PUT", "DELETE"] == [r.method for r in api.requests]
    for request in api.requests:
        assert request.target.startswith("/v2.3/data/segments")
        assert f"Bearer {TOKEN}" == request.headers["authorization"]
        assert "application/json" == request.headers["accept"]
        assert request.headers["user-agent"].startswith("segments-async/")
        assert "x-rewritten" not in request.headers
    assert "application/json" == api.requests[1].headers["content-type"]


async def test_raise_for_status_session_still_gets_our_errors_and_retry_after(api):
    """raise_for_status=True: a 404 is NotFoundError, a 429's Retry-After is obeyed or raised."""
    api.answers["DELETE"] = [json_response(404, {"success": False, "message": "no such segment"})]
    api.answers["GET"] = [
        json_response(429, {"success": False}, headers={"Retry-After": "120"}),
        json_response(503, {"success": False}, headers={"Retry-After": "0"}),
    ]
    session = aiohttp.ClientSession(raise_for_status=True)
    async with session, make_client(api.server.url, session=session) as client:
        with pytest.raises(NotFoundError, match="no such segment"):
            await client.segments.delete(SEGMENT_ID)
        with pytest.raises(RateLimitError) as info:
            await client.segments.list()
        assert 120 == info.value.retry_after
        assert 3 == (await client.segments.list()).total  # the 503 is retried, once

    assert ["DELETE", "GET", "GET", "GET"] == [r.method for r in api.requests]


async def test_a_session_cookie_jar_sends_nothing_and_steers_nothing(api):
    """The app's cookies for the API's host, and those the API sets, are not sent by the client."""
    api.answers["GET"] = [
        json_response(200, page(), headers={"Set-Cookie": "tenant=A; Path=/"}),
        json_response(200, page()),
    ]
    jar = aiohttp.CookieJar(unsafe=True)  # unsafe: keeps cookies for IP hosts, as 127.0.0.1
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        session.cookie_jar.update_cookies({"app_session": "the-apps"}, response_url=api_url(api))
        async with make_client(api.server.url, session=session) as client:
            await client.segments.list()
            await client.segments.list()
            await client.segments.create("EMEA")

    assert [] == [r.headers["cookie"] for r in api.requests if "cookie" in r.headers]


def api_url(api: Api) -> Any:
    from yarl import URL

    return URL(api.server.url)


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "another-tenant.example"},
        {"Content-Length": "5"},
        {"Transfer-Encoding": "chunked"},
        {"Content-Encoding": "gzip"},
        {"X-Injected": "a\r\nInjected: yes"},
    ],
    ids=lambda headers: next(iter(headers)),
)
async def test_session_defaults_that_change_the_framing_or_the_host_are_refused(api, headers):
    """Default headers that would change where or how a request is read: a ValueError, unsent."""
    async with aiohttp.ClientSession(headers=headers) as session:
        with pytest.raises(ValueError, match=next(iter(headers))):
            make_client(api.server.url, session=session)
    assert [] == api.requests


@pytest.mark.parametrize(
    ("options", "match"),
    [
        (lambda: {"trust_env": True}, "trust_env"),
        (lambda: {"auth": aiohttp.BasicAuth("user", "pass")}, "auth"),
        (lambda: {"proxy": "http://127.0.0.1:3128"}, "proxy"),
    ],
    ids=["trust_env", "auth", "proxy over http"],
)
async def test_sessions_that_would_misroute_the_token_are_refused(api, options, match):
    """trust_env, auth, and a default proxy for an http:// API: a clear ValueError."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # aiohttp deprecates BasicAuth
        session = aiohttp.ClientSession(**options())
    try:
        with pytest.raises(ValueError, match=match):
            make_client(api.server.url, session=session)
    finally:
        await session.close()


async def test_a_default_proxy_is_allowed_for_an_https_api():
    """A CONNECT tunnel keeps the token encrypted: an https:// API may use the app's proxy."""
    async with aiohttp.ClientSession(proxy="http://127.0.0.1:3128") as session:
        client = make_client("https://api.segments.test", session=session)
        assert not client.closed


@pytest.mark.parametrize("limit", [{"limit": 2}, {"limit": 100, "limit_per_host": 2}])
async def test_a_tiny_connector_limit_queues_without_timing_out(limit):
    """Calls beyond the connector's limit wait outside their timeout, as with our own pool."""

    async def handler(request: RawRequest) -> bytes:
        await asyncio.sleep(0.02)  # 40 calls, 2 at a time: the last waits 20 times this
        return json_response(200, page())

    async with RawServer(handler) as server:
        connector = aiohttp.TCPConnector(**limit)
        async with aiohttp.ClientSession(connector=connector) as session:
            client = make_client(server.url, session=session, timeout=0.15)
            assert 2 == client.max_connections
            pages = await asyncio.gather(*(client.segments.list() for _ in range(40)))

    assert 40 == len(pages) == len(server.requests)


async def test_a_session_its_owner_closed_is_a_client_closed_error(api):
    """The app closed its session under the client: ClientClosedError, nothing sent."""
    session = aiohttp.ClientSession()
    client = make_client(api.server.url, session=session)
    await client.segments.list()
    await session.close()
    with pytest.raises(ClientClosedError, match="closed by its owner"):
        await client.segments.create("EMEA")
    assert ["GET"] == [r.method for r in api.requests]


def loop_in_a_thread() -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    return loop, thread


async def test_a_session_from_another_running_loop_gets_the_loop_error(api):
    """A session made in another (running) loop: a clear RuntimeError, not aiohttp's."""
    loop, thread = loop_in_a_thread()

    async def make() -> aiohttp.ClientSession:
        return aiohttp.ClientSession()

    session = asyncio.run_coroutine_threadsafe(make(), loop).result()
    try:
        client = make_client(api.server.url, session=session, retry=RetryPolicy(max_retries=0))
        error = await outcome_of(client.segments.list())
        assert isinstance(error, RuntimeError), repr(error)
        assert "another event loop" in str(error)
        assert [] == api.requests
    finally:
        asyncio.run_coroutine_threadsafe(session.close(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


async def test_retries_through_a_borrowed_session_use_tiny_backoff(api):
    """A 503 then a 200 through a borrowed session: retried like any other."""
    api.answers["PUT"] = [json_response(503, {"success": False})]
    async with aiohttp.ClientSession(raise_for_status=True) as session:
        client = make_client(api.server.url, session=session, retry=FAST_RETRY)
        assert Segment(**SEGMENT) == await client.segments.update(SEGMENT_ID, "EMEA")
    assert 2 == len(api.requests)


async def test_an_app_request_holding_the_connector_never_makes_a_delete_unknown():
    """The app's own request holds the connector's only connection: the client's DELETE
    times out inside aiohttp, known unsent, so a later 404 is NotFoundError, not success."""
    release = asyncio.Event()
    arrived = asyncio.Event()

    async def handler(request: RawRequest) -> bytes:
        if request.target == "/the-apps-own":
            arrived.set()
            await release.wait()
            return json_response(200, {})
        return json_response(404, {"success": False, "message": "never existed"})

    connector = aiohttp.TCPConnector(limit=1)
    async with RawServer(handler) as server, aiohttp.ClientSession(connector=connector) as session:
        client = make_client(server.url, session=session, timeout=0.05)
        apps = asyncio.ensure_future(session.get(f"{server.url}/the-apps-own"))
        await arrived.wait()
        with pytest.raises(APITimeoutError) as timed_out:
            await client.segments.delete(SEGMENT_ID)
        release.set()
        (await apps).release()
        with pytest.raises(NotFoundError):
            await client.segments.delete(SEGMENT_ID)

    assert timed_out.value.outcome_unknown is False
    assert ["GET", "DELETE"] == [r.method for r in server.requests]
