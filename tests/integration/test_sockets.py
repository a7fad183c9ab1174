"""Real sockets on 127.0.0.1, for what a mock cannot show: bytes on the wire, resets,
truncation, a 204 with a body, redirects, timeouts."""

from __future__ import annotations

import asyncio
import asyncio.selector_events
import logging
import shutil
import socket
import ssl
import subprocess
from pathlib import Path

import aiohttp
import pytest

from segments_async import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    NotFoundError,
    RetryPolicy,
    SegmentsClient,
)

from ..conftest import FAST_RETRY, SEGMENT_ID, TOKEN, envelope, page_payload
from ..rawserver import RawRequest, RawServer, ThenClose, json_response, response

SPEC_DELETE_BODY = b'{"success":true,"result":[]}'
SEGMENT = {"id": SEGMENT_ID, "name": "EMEA"}


def make_client(url: str, **kwargs: object) -> SegmentsClient:
    kwargs.setdefault("retry", FAST_RETRY)
    return SegmentsClient(url, TOKEN, **kwargs)  # type: ignore[arg-type]


class TestDelete404:
    async def test_real_404_is_still_not_found(self):
        """A plain 404 to a first DELETE is a NotFoundError."""

        async def handler(request: RawRequest) -> bytes:
            return json_response(404, {"success": False, "message": "no such segment"})

        async with RawServer(handler) as server, make_client(server.url) as client:
            with pytest.raises(NotFoundError, match="no such segment"):
                await client.segments.delete(SEGMENT_ID)


class TestUnknownOutcomes:
    async def test_delete_resent_by_aiohttp_then_404_is_success(self):
        """aiohttp silently re-sends a DELETE after a reset; the 404 it gets is success."""

        async def handler(request: RawRequest) -> bytes | None:
            if len(server.requests) == 1:
                return None  # acted, then the connection dropped unanswered
            return json_response(404, {"success": False, "message": "gone"})

        async with RawServer(handler) as server, make_client(server.url) as client:
            assert await client.segments.delete(SEGMENT_ID) is None
        assert 2 == len(server.requests)

    async def test_get_survives_resets(self):
        """Resets are retried for a GET until it gets an answer."""

        async def handler(request: RawRequest) -> bytes | None:
            if len(server.requests) <= 2:
                return None
            return json_response(200, page_payload(1, 20, 3))

        async with RawServer(handler) as server, make_client(server.url) as client:
            assert 3 == (await client.segments.list()).total

    async def test_post_is_not_resent_after_a_reset(self):
        """A POST dropped after the server read it is not sent again: no duplicate."""

        async def handler(request: RawRequest) -> bytes | None:
            return None

        async with RawServer(handler) as server, make_client(server.url) as client:
            with pytest.raises(APIConnectionError):
                await client.segments.create("EMEA")
        assert 1 == len(server.requests)

    async def test_truncated_body_retried_for_get(self):
        """A body shorter than its Content-Length is retried for a GET."""
        full = json_response(200, page_payload(1, 20, 2))

        async def handler(request: RawRequest) -> bytes | None:
            if len(server.requests) == 1:
                return ThenClose(full[: full.index(b"\r\n\r\n") + 14])
            return full

        async with RawServer(handler) as server, make_client(server.url) as client:
            assert 2 == (await client.segments.list(per_page=20)).total
        assert 2 == len(server.requests)

    async def test_truncated_body_is_logged_as_such(self, caplog):
        """The DEBUG line of an attempt whose body was cut short names the failure."""
        caplog.set_level(logging.DEBUG, logger="segments_async")
        full = json_response(200, page_payload(1, 20, 2))

        async def handler(request: RawRequest) -> bytes:
            if len(server.requests) == 1:
                return ThenClose(full[: full.index(b"\r\n\r\n") + 14])
            return full

        async with RawServer(handler) as server, make_client(server.url) as client:
            await client.segments.list()

        first = caplog.records[0].getMessage()
        assert "-> body cut short" in first
        assert "attempt 1" in first

    async def test_truncated_body_not_retried_for_post(self):
        """A POST whose answer was cut short was acted on: raise, do not re-send."""
        body = b'{"success":true,"result":{"id":"'

        async def handler(request: RawRequest) -> bytes:
            return ThenClose(response(200, body, content_length=200))

        async with RawServer(handler) as server, make_client(server.url) as client:
            with pytest.raises(APIConnectionError, match="cut short"):
                await client.segments.create("EMEA")
        assert 1 == len(server.requests)


class TestTimeouts:
    @pytest.mark.parametrize(
        ("operation", "sends"),
        [("list", 1 + FAST_RETRY.max_retries), ("create", 1)],
    )
    async def test_each_attempt_times_out_and_only_get_is_retried(self, operation, sends):
        """An answer that never comes times out each attempt; a timed-out POST may have
        been acted on, so only the GET is sent again."""
        release = asyncio.Event()

        async def handler(request: RawRequest) -> bytes:
            await release.wait()
            return b""

        async with RawServer(handler) as server:
            async with make_client(server.url, timeout=0.05) as client:
                call = getattr(client.segments, operation)
                with pytest.raises(APITimeoutError):
                    await (call() if operation == "list" else call("x"))
            release.set()
        assert sends == len(server.requests)


class TestRedirects:
    async def test_cross_origin_redirect_is_neither_followed_nor_given_the_token(self):
        """A 307 to another origin raises; the other origin receives nothing."""

        async def elsewhere(request: RawRequest) -> bytes:
            return json_response(200, page_payload(1, 20, 0))

        async with RawServer(elsewhere) as other:

            async def handler(request: RawRequest) -> bytes:
                target = f"{other.url}{request.target}"
                return response(307, b"", reason="Temporary Redirect", headers={"Location": target})

            async with RawServer(handler) as server, make_client(server.url) as client:
                with pytest.raises(APIStatusError) as info:
                    await client.segments.list()

        assert 307 == info.value.status_code
        assert [] == other.requests
        assert f"Bearer {TOKEN}" == server.requests[0].headers["authorization"]


class TestWire:
    async def test_headers_on_the_wire(self):
        """The request carries exactly the spec's headers and a JSON body."""

        async def handler(request: RawRequest) -> bytes:
            return json_response(200, envelope(SEGMENT))

        async with RawServer(handler) as server, make_client(server.url) as client:
            await client.segments.create("EMEA")

        (request,) = server.requests
        assert ("POST", "/v2.3/data/segments") == (request.method, request.target)
        assert f"Bearer {TOKEN}" == request.headers["authorization"]
        assert "application/json" == request.headers["accept"]
        assert request.headers["content-type"].startswith("application/json")
        assert request.headers["user-agent"].startswith("segments-async/")
        assert b'{"name":"EMEA"}' == request.body
        assert "cookie" not in request.headers

    async def test_cookies_are_not_kept(self):
        """A Set-Cookie from the server is not sent back: no state between calls."""

        async def handler(request: RawRequest) -> bytes:
            return json_response(
                200, page_payload(1, 20, 0), headers={"Set-Cookie": "session=abc; Path=/"}
            )

        async with RawServer(handler) as server, make_client(server.url) as client:
            await client.segments.list()
            await client.segments.list()

        assert all("cookie" not in r.headers for r in server.requests)

    async def test_connection_refused_is_retried_then_raised(self):
        """A closed port is a connect failure: retried (even for POST), then raised."""
        async with RawServer(lambda r: asyncio.sleep(0, b"")) as server:
            url = server.url
        async with make_client(url, retry=RetryPolicy(max_retries=1, backoff_initial=0)) as c:
            with pytest.raises(APIConnectionError, match="cannot connect"):
                await c.segments.create("x")


#: A page of 100 segments with long names: about 300 KiB, several 64 KiB reads.
BIG_PAGE = page_payload(1, 100, 100)
for _item in BIG_PAGE["result"]["items"]:  # type: ignore[index]
    _item["name"] += "x" * 3000


async def _big_page(request: RawRequest) -> bytes:
    return json_response(200, BIG_PAGE)


def _record_recv_sizes(monkeypatch: pytest.MonkeyPatch, port: int) -> list[int]:
    """The sizes the client's sockets to ``port`` ask ``recv`` for."""
    asked: list[int] = []
    recv = socket.socket.recv

    def recording(sock: socket.socket, size: int, *flags: int) -> bytes:
        try:
            if sock.getpeername()[1] == port:
                asked.append(size)
        except OSError:
            pass
        return recv(sock, size, *flags)

    monkeypatch.setattr(socket.socket, "recv", recording)
    return asked


async def _names_of_one_page(client: SegmentsClient) -> list[str]:
    async for page in client.segments.iter_pages(per_page=100, concurrency=1):
        return [segment.name for segment in page.items]
    raise AssertionError("no page")


class TestReadSize:
    """The owned pool's connections read 64 KiB at a time: asyncio's 256 KiB is above
    glibc's first mmap threshold, so that each read could map and unmap its buffer."""

    async def test_the_pools_connections_ask_the_socket_for_64_kib_at_a_time(self, monkeypatch):
        async with RawServer(_big_page) as server:
            asked = _record_recv_sizes(monkeypatch, int(server.url.rsplit(":", 1)[1]))
            async with make_client(server.url) as client:
                names = await _names_of_one_page(client)
        # Read whole, in several reads, none asking more than 64 KiB.
        assert names == [item["name"] for item in BIG_PAGE["result"]["items"]]  # type: ignore[index]
        assert len(asked) >= 5
        assert max(asked) == 64 * 1024

    async def test_a_borrowed_sessions_connections_are_left_as_they_are(self, monkeypatch):
        async with RawServer(_big_page) as server, aiohttp.ClientSession() as session:
            asked = _record_recv_sizes(monkeypatch, int(server.url.rsplit(":", 1)[1]))
            async with make_client(server.url, session=session) as c:
                names = await _names_of_one_page(c)
        assert len(names) == 100
        assert set(asked) == {asyncio.selector_events._SelectorSocketTransport.max_size}

    async def test_over_tls_the_tls_layer_reads_64_kib_at_a_time(self, monkeypatch, tls_files):
        """Over TLS the socket reads into one buffer made once; the TLS layer's reads are
        the ones that allocate (twice per read: the last one finds nothing)."""
        from segments_async._transport import _Connector

        cert, key = tls_files
        server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_side.load_cert_chain(cert, key)
        client_side = ssl.create_default_context(cafile=str(cert))
        asked: list[int] = []
        read = ssl.SSLObject.read

        def recording(obj: ssl.SSLObject, size: int = 1024, buffer: object = None) -> object:
            if not obj.server_side:  # the client's reads, not the server's
                asked.append(size)
            return read(obj, size, buffer)  # type: ignore[arg-type]

        async with (
            RawServer(_big_page, tls=server_side) as server,
            aiohttp.ClientSession(connector=_Connector()) as session,
        ):
            monkeypatch.setattr(ssl.SSLObject, "read", recording)
            bodies = []
            for _ in range(2):
                # The first answer's reads include the handshake's last messages, read
                # before the connection was handed over; the second's are all answer.
                asked.clear()
                async with session.get(server.url + "/v1/segments", ssl=client_side) as answer:
                    bodies.append(await answer.read())
            assert server.connections == 1
        assert bodies[1] == json_response(200, BIG_PAGE).split(b"\r\n\r\n", 1)[1]
        assert len(asked) >= 5
        assert max(asked) == 64 * 1024


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (made by the openssl command)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(  # noqa: S603 - our own argv
        [
            *("openssl", "req", "-x509", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"),
            *("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key
