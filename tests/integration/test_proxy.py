"""A fake proxy on loopback records every byte it receives.

With ``HTTPS_PROXY`` set and an https:// API, the proxy gets a CONNECT (the TLS tunnel
keeps the token encrypted) and never an Authorization header or the token; ``NO_PROXY``
bypasses it; an http:// API never uses it, with an owned session or a borrowed one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from segments_async import APIConnectionError, RetryPolicy

from ..rawserver import RawRequest, RawServer, json_response, response
from .support import SEGMENT, TOKEN, envelope, make_client, outcome_of

ONE_RETRY = RetryPolicy(max_retries=1, backoff_initial=0.001, backoff_max=0.002)
PROXY_VARIABLES = [
    f"{name}_{kind}" for name in ("HTTP", "HTTPS", "ALL", "NO") for kind in ("PROXY", "proxy")
]


@pytest.fixture(autouse=True)
def no_proxy_environment(monkeypatch):
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


class Recorder:
    """A TCP server that keeps every byte it receives and answers with ``answer``."""

    def __init__(self, answer: bytes = b"") -> None:
        self.answer = answer
        self.received: list[bytes] = []
        self.connections = 0
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            data = await reader.read(65536)
            self.received.append(data)
            if self.answer:
                writer.write(self.answer)
                await writer.drain()
        finally:
            writer.transport.abort()

    async def __aenter__(self) -> Recorder:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


@pytest.fixture
async def proxy() -> AsyncIterator[RawServer]:
    """A proxy that refuses every tunnel with 403, recording the CONNECT it got."""

    async def refuse(request: RawRequest) -> bytes:
        return response(403, reason="Forbidden")

    async with RawServer(refuse) as server:
        yield server


def everything(requests: list[RawRequest]) -> str:
    return repr([(r.method, r.target, r.headers, r.body) for r in requests])


async def test_https_api_through_https_proxy_gets_a_connect_without_the_token(monkeypatch, proxy):
    """The proxy sees CONNECT host:443, no token; the call fails saying the proxy refused."""
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    async with make_client("https://api.segments.test", retry=ONE_RETRY) as client:
        error = await outcome_of(client.segments.create("EMEA"))

    assert isinstance(error, APIConnectionError), repr(error)
    assert "proxy" in error.message
    assert "403" in error.message
    assert error.outcome_unknown is False  # the tunnel never opened: retried, even a POST
    assert [("CONNECT", "api.segments.test:443")] * 2 == [
        (r.method, r.target) for r in proxy.requests
    ]
    assert all("authorization" not in r.headers for r in proxy.requests)
    assert TOKEN not in everything(proxy.requests)


async def test_proxy_credentials_go_to_the_proxy_only_and_stay_out_of_errors(monkeypatch, proxy):
    """user:password in HTTPS_PROXY becomes Proxy-Authorization; the error never shows it."""
    monkeypatch.setenv("HTTPS_PROXY", proxy.url.replace("http://", "http://user:pr0xy-pw@"))
    async with make_client("https://api.segments.test", retry=RetryPolicy(max_retries=0)) as c:
        error = await outcome_of(c.segments.list())

    assert isinstance(error, APIConnectionError)
    assert proxy.requests[0].headers["proxy-authorization"].startswith("Basic ")
    for link in (error, error.__cause__, error.__context__):
        assert "pr0xy-pw" not in repr(link)
        assert "dXNlcjpwcjB4eS1wdw" not in repr(link)  # base64 of user:pr0xy-pw


async def test_no_proxy_bypasses_the_proxy(monkeypatch, proxy):
    """NO_PROXY=127.0.0.1: the API's port gets the TLS handshake directly; the proxy nothing."""
    async with Recorder() as api:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        url = f"https://127.0.0.1:{api.port}"
        async with make_client(url, retry=RetryPolicy(max_retries=0)) as client:
            error = await outcome_of(client.segments.list())

    assert isinstance(error, APIConnectionError), repr(error)
    assert [] == proxy.requests
    assert 1 == api.connections
    assert api.received[0].startswith(b"\x16\x03")  # a TLS ClientHello, not plain HTTP
    assert TOKEN.encode() not in b"".join(api.received)


async def test_without_no_proxy_the_same_api_goes_through_the_proxy(monkeypatch, proxy):
    """The same loopback API without NO_PROXY: a CONNECT to its port, nothing direct."""
    async with Recorder() as api:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        port = api.port
        async with make_client(f"https://127.0.0.1:{port}", retry=RetryPolicy(max_retries=0)) as c:
            await outcome_of(c.segments.list())

    assert [("CONNECT", f"127.0.0.1:{port}")] == [(r.method, r.target) for r in proxy.requests]
    assert 0 == api.connections


@pytest.mark.parametrize("borrowed", [False, True], ids=["owned session", "borrowed session"])
async def test_an_http_api_never_uses_a_proxy(monkeypatch, proxy, borrowed):
    """Every proxy variable set: an http:// API is still reached directly, token and all."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, proxy.url)

    async def answer(request: RawRequest) -> bytes:
        return json_response(200, envelope(SEGMENT))

    async with RawServer(answer) as api:
        session = aiohttp.ClientSession() if borrowed else None
        try:
            async with make_client(api.url, session=session) as client:
                await client.segments.create("EMEA")
        finally:
            if session is not None:
                await session.close()

    assert [] == proxy.requests
    assert f"Bearer {TOKEN}" == api.requests[0].headers["authorization"]
