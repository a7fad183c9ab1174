"""Real sockets on 127.0.0.1, for what a mock cannot show: bytes on the wire, resets,
truncation, a 204 with a body, redirects, timeouts."""

from __future__ import annotations

import asyncio
import logging

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
