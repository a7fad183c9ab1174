"""The aiohttp shell against aioresponses: what is sent, retried, raised and logged."""

from __future__ import annotations

import asyncio
import logging
import uuid

import aiohttp
import pytest
from yarl import URL

from segments_async import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    InternalServerError,
    NotFoundError,
    RateLimitError,
    RetryPolicy,
    Segment,
    SegmentsClient,
    SegmentsError,
    UnprocessableEntityError,
)
from segments_async._options import USER_AGENT

from .conftest import (
    BASE_URL,
    FAST_RETRY,
    LIST_URL,
    SEGMENT_ID,
    SEGMENT_URL,
    SEGMENTS_URL,
    TOKEN,
    CompatAioresponses,
    envelope,
    page_payload,
)
from .leaks import unclosed_warnings

SEGMENT = {"id": SEGMENT_ID, "name": "EMEA"}


def sent(mock_api: CompatAioresponses, method: str, url: str) -> list[dict[str, object]]:
    """The keyword arguments of every request sent to ``method url``."""
    return [call.kwargs for call in mock_api.requests.get((method, URL(url)), [])]


def total_sent(mock_api: CompatAioresponses) -> int:
    """How many requests were sent in all."""
    return sum(len(calls) for calls in mock_api.requests.values())


class TestRequests:
    async def test_list_sends_auth_accept_and_user_agent(self, mock_api, client):
        """A list is a GET with the token, Accept and User-Agent, and no body."""
        mock_api.get(LIST_URL, payload=page_payload(2, 5, 12))

        page = await client.segments.list(page=2, per_page=5)

        (call,) = sent(mock_api, "GET", f"{SEGMENTS_URL}?page=2&per_page=5")
        assert f"Bearer {TOKEN}" == call["headers"]["Authorization"]
        assert "application/json" == call["headers"]["Accept"]
        assert USER_AGENT == call["headers"]["User-Agent"]
        assert "Content-Type" not in call["headers"]
        assert call["data"] is None
        assert call["allow_redirects"] is False
        assert (2, 5, 3, 12) == (page.current_page, page.per_page, page.last_page, page.total)
        assert "s5" == page.items[0].name

    async def test_create_sends_json_name(self, mock_api, client):
        """create POSTs {"name": ...} as JSON and returns the Segment."""
        mock_api.post(SEGMENTS_URL, payload=envelope(SEGMENT))

        segment = await client.segments.create("EMEA")

        (call,) = sent(mock_api, "POST", SEGMENTS_URL)
        assert b'{"name":"EMEA"}' == call["data"]
        assert "application/json" == call["headers"]["Content-Type"]
        assert Segment(id=SEGMENT_ID, name="EMEA") == segment

    async def test_update_puts_to_the_segment_path(self, mock_api, client):
        """update PUTs the new name to /segments/{id}; a uuid.UUID works too."""
        mock_api.put(SEGMENT_URL, payload=envelope({"id": SEGMENT_ID, "name": "DACH"}))

        segment = await client.segments.update(uuid.UUID(SEGMENT_ID), "DACH")

        (call,) = sent(mock_api, "PUT", SEGMENT_URL)
        assert b'{"name":"DACH"}' == call["data"]
        assert "DACH" == segment.name

    @pytest.mark.parametrize("body", [b"", b'{"success":true,"result":[]}', b"not json"])
    async def test_delete_204_with_or_without_body(self, mock_api, client, body):
        """delete returns None on a 204, whatever body it carries."""
        mock_api.delete(SEGMENT_URL, status=204, body=body)

        assert await client.segments.delete(SEGMENT_ID) is None
        assert 1 == len(sent(mock_api, "DELETE", SEGMENT_URL))

    async def test_delete_2xx_success_false_raises(self, mock_api, client):
        """A 200 whose envelope says success: false is an APIStatusError."""
        mock_api.delete(SEGMENT_URL, status=200, payload={"success": False, "message": "locked"})

        with pytest.raises(APIStatusError, match="locked") as info:
            await client.segments.delete(SEGMENT_ID)
        assert 200 == info.value.status_code


class TestBadInput:
    @pytest.mark.parametrize(
        "segment_id",
        ["../x", "a/b", "?", "#", "", " ", f" {SEGMENT_ID}", f"{SEGMENT_ID}/../x", 42, None],
    )
    async def test_bad_segment_id_sends_nothing(self, mock_api, client, segment_id):
        """An id that is not a UUID is a ValueError before any request."""
        with pytest.raises(ValueError, match="segment_id"):
            await client.segments.update(segment_id, "x")
        with pytest.raises(ValueError, match="segment_id"):
            await client.segments.delete(segment_id)
        assert 0 == total_sent(mock_api)

    @pytest.mark.parametrize("name", [None, 1, b"EMEA", ["EMEA"]])
    async def test_non_str_name_sends_nothing(self, mock_api, client, name):
        """A name that is not a str is a TypeError before any request."""
        with pytest.raises(TypeError, match="name"):
            await client.segments.create(name)
        with pytest.raises(TypeError, match="name"):
            await client.segments.update(SEGMENT_ID, name)
        assert 0 == total_sent(mock_api)

    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [({"page": 0}, "page"), ({"per_page": 0}, "per_page"), ({"page": -3}, "page")],
    )
    async def test_list_bounds(self, mock_api, client, kwargs, field):
        """page and per_page below 1 are a ValueError before any request."""
        with pytest.raises(ValueError, match=field):
            await client.segments.list(**kwargs)
        assert 0 == total_sent(mock_api)

    @pytest.mark.parametrize(
        ("kwargs", "field"), [({"per_page": 0}, "per_page"), ({"concurrency": 0}, "concurrency")]
    )
    def test_iterators_check_arguments_when_called(self, client, kwargs, field):
        """iter_pages and iterate refuse bad arguments at the call, before iteration."""
        with pytest.raises(ValueError, match=field):
            client.segments.iter_pages(**kwargs)
        with pytest.raises(ValueError, match=field):
            client.segments.iterate(**kwargs)


class TestErrors:
    @pytest.mark.parametrize(
        ("status", "cls"),
        [(401, AuthenticationError), (404, NotFoundError), (422, UnprocessableEntityError)],
    )
    async def test_status_maps_to_class_with_server_message(self, mock_api, client, status, cls):
        """An error status raises its class, with the server's message and context."""
        mock_api.post(
            SEGMENTS_URL,
            status=status,
            payload={"success": False, "error": {"code": "x", "message": "nope, sorry"}},
        )

        with pytest.raises(cls) as info:
            await client.segments.create("x")

        err = info.value
        assert (status, "nope, sorry", "POST", SEGMENTS_URL) == (
            err.status_code,
            err.message,
            err.method,
            err.url,
        )
        assert "x" == err.body["error"]["code"]
        assert "application/json" == err.headers["Content-Type"]

    async def test_malformed_success_names_the_field(self, mock_api, client):
        """A 200 with a wrong field raises APIResponseValidationError naming it."""
        bad = page_payload(1, 20, 5)
        bad["result"]["items"][3]["id"] = 17
        mock_api.get(LIST_URL, payload=bad)

        with pytest.raises(APIResponseValidationError, match=r"result\.items\[3\]\.id") as info:
            await client.segments.list()
        assert "result.items[3].id" == info.value.field

    async def test_non_json_success_is_a_validation_error(self, mock_api, client):
        """A 200 whose body is not JSON is not retried: it raises at once."""
        mock_api.get(LIST_URL, body=b"<html>oops</html>", content_type="text/html")

        with pytest.raises(APIResponseValidationError, match="not valid JSON"):
            await client.segments.list()
        assert 1 == total_sent(mock_api)

    async def test_redirect_is_not_followed(self, mock_api, client):
        """A 3xx is an APIStatusError, never a request to the Location."""
        mock_api.get(
            LIST_URL, status=302, headers={"Location": "https://evil.test/steal"}, body=b""
        )

        with pytest.raises(APIStatusError, match="not followed") as info:
            await client.segments.list()
        assert 302 == info.value.status_code
        assert 1 == total_sent(mock_api)


class TestConnectTimeouts:
    async def test_a_post_whose_connection_timed_out_is_retried(self, mock_api, client):
        """A connection not made in time: the POST was never sent, so it is retried."""
        mock_api.post(SEGMENTS_URL, exception=aiohttp.ConnectionTimeoutError("connect"))
        mock_api.post(SEGMENTS_URL, payload=envelope({"id": SEGMENT_ID, "name": "EMEA"}))

        assert "EMEA" == (await client.segments.create("EMEA")).name
        assert 2 == total_sent(mock_api)

    async def test_its_error_says_nothing_was_done(self, mock_api):
        """Without retries, the error is a timeout whose outcome is known: nothing done."""
        mock_api.post(SEGMENTS_URL, exception=aiohttp.ConnectionTimeoutError("connect"))
        async with SegmentsClient(BASE_URL, TOKEN, retry=RetryPolicy(max_retries=0)) as client:
            with pytest.raises(APITimeoutError, match="timed out connecting") as info:
                await client.segments.create("EMEA")

        assert info.value.outcome_unknown is False

    async def test_a_post_that_timed_out_reading_is_not_retried(self, mock_api, client):
        """A timeout after the connection was made: the POST may have been done."""
        mock_api.post(SEGMENTS_URL, exception=aiohttp.SocketTimeoutError("read"))

        with pytest.raises(APITimeoutError) as info:
            await client.segments.create("EMEA")
        assert 1 == total_sent(mock_api)
        assert info.value.outcome_unknown is True

    def test_the_client_gives_connections_ninety_percent_of_the_timeout(self):
        """timeout=10: aiohttp gets sock_connect=9, so a slow connection is told apart."""
        client = SegmentsClient(BASE_URL, TOKEN, timeout=10)

        assert (10, 9) == (client.timeout.total, client._options.wire_timeout.sock_connect)


class TestRetries:
    async def test_get_retried_until_success(self, mock_api, client):
        """503 then 502 then 200: the list succeeds on the third attempt."""
        mock_api.get(LIST_URL, status=503, payload={"message": "busy"})
        mock_api.get(LIST_URL, status=502, body=b"<h1>Bad Gateway</h1>")
        mock_api.get(LIST_URL, payload=page_payload(1, 20, 1))

        page = await client.segments.list()

        assert 1 == page.total
        assert 3 == total_sent(mock_api)

    async def test_retries_are_bounded(self, mock_api, client):
        """After max_retries the last error is raised."""
        mock_api.get(LIST_URL, status=500, payload={"message": "boom"}, repeat=True)

        with pytest.raises(InternalServerError, match="boom"):
            await client.segments.list()
        assert 1 + FAST_RETRY.max_retries == total_sent(mock_api)

    async def test_max_retries_zero_disables_retries(self, mock_api):
        """RetryPolicy(max_retries=0) sends once."""
        mock_api.get(LIST_URL, status=503, repeat=True)
        async with SegmentsClient(BASE_URL, TOKEN, retry=RetryPolicy(max_retries=0)) as c:
            with pytest.raises(InternalServerError):
                await c.segments.list()
        assert 1 == total_sent(mock_api)

    @pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 501])
    async def test_client_errors_are_not_retried(self, mock_api, client, status):
        """Statuses that will not change by themselves are raised at once."""
        mock_api.get(LIST_URL, status=status, repeat=True)

        with pytest.raises(APIStatusError):
            await client.segments.list()
        assert 1 == total_sent(mock_api)

    async def test_post_not_retried_when_server_may_have_acted(self, mock_api, client):
        """A POST answered 500 may have created the segment: no retry, no duplicate."""
        mock_api.post(SEGMENTS_URL, status=500, repeat=True)

        with pytest.raises(InternalServerError):
            await client.segments.create("x")
        assert 1 == total_sent(mock_api)

    async def test_post_not_retried_after_disconnect(self, mock_api, client):
        """A POST whose connection dropped after sending is not retried."""
        mock_api.post(SEGMENTS_URL, exception=aiohttp.ServerDisconnectedError(), repeat=True)

        with pytest.raises(APIConnectionError):
            await client.segments.create("x")
        assert 1 == total_sent(mock_api)

    async def test_post_retried_on_429_and_connect_failure(self, mock_api, client):
        """429 and a refused connection mean the server did not act: POST is retried."""
        refused = aiohttp.ClientConnectorError(
            aiohttp.client_reqrep.ConnectionKey(
                "api.segments.test", 443, True, True, None, None, None
            ),
            ConnectionRefusedError(111, "Connection refused"),
        )
        mock_api.post(SEGMENTS_URL, exception=refused)
        mock_api.post(SEGMENTS_URL, status=429)
        mock_api.post(SEGMENTS_URL, payload=envelope(SEGMENT))

        assert SEGMENT_ID == (await client.segments.create("EMEA")).id
        assert 3 == total_sent(mock_api)

    async def test_retry_post_opt_in(self, mock_api):
        """retry_post=True retries a POST whose outcome is unknown."""
        mock_api.post(SEGMENTS_URL, status=502)
        mock_api.post(SEGMENTS_URL, payload=envelope(SEGMENT))
        policy = RetryPolicy(backoff_initial=0.001, retry_post=True)
        async with SegmentsClient(BASE_URL, TOKEN, retry=policy) as c:
            assert "EMEA" == (await c.segments.create("EMEA")).name
        assert 2 == total_sent(mock_api)

    async def test_retry_after_is_obeyed(self, mock_api, client, monkeypatch):
        """A 429's Retry-After sets the wait, not the backoff."""
        waits: list[float] = []
        real_sleep = asyncio.sleep

        async def record_sleep(delay: float) -> None:
            waits.append(delay)
            await real_sleep(0)

        monkeypatch.setattr("segments_async._client.asyncio.sleep", record_sleep)
        mock_api.get(LIST_URL, status=429, headers={"Retry-After": "3"})
        mock_api.get(LIST_URL, payload=page_payload(1, 20, 0))

        await client.segments.list()

        assert [3.0] == waits

    async def test_retry_after_above_cap_is_not_waited_for(self, mock_api, client):
        """A Retry-After longer than retry_after_max raises RateLimitError at once."""
        mock_api.get(LIST_URL, status=429, headers={"Retry-After": "3600"}, repeat=True)

        with pytest.raises(RateLimitError) as info:
            await client.segments.list()
        assert 3600.0 == info.value.retry_after
        assert 1 == total_sent(mock_api)

    async def test_timeouts_are_retried_and_mapped(self, mock_api, client):
        """A timeout is retried for a GET and surfaces as APITimeoutError."""
        mock_api.get(LIST_URL, exception=TimeoutError(), repeat=True)

        with pytest.raises(APITimeoutError):
            await client.segments.list()
        assert 1 + FAST_RETRY.max_retries == total_sent(mock_api)

    async def test_truncated_body_is_retried(self, mock_api, client):
        """A payload error (body cut short) is retried for a GET."""
        mock_api.get(LIST_URL, exception=aiohttp.ClientPayloadError("cut"))
        mock_api.get(LIST_URL, payload=page_payload(1, 20, 2))

        assert 2 == (await client.segments.list()).total

    async def test_delete_404_after_unknown_outcome_is_success(self, mock_api, client):
        """A DELETE that got a 502, then 404 on retry, was deleted by the first try."""
        mock_api.delete(SEGMENT_URL, status=502)
        mock_api.delete(SEGMENT_URL, status=404)

        assert await client.segments.delete(SEGMENT_ID) is None
        assert 2 == total_sent(mock_api)

    async def test_delete_404_after_429_is_not_found(self, mock_api, client):
        """After a 429 the server had not acted: a 404 on retry is a real NotFoundError."""
        mock_api.delete(SEGMENT_URL, status=429)
        mock_api.delete(SEGMENT_URL, status=404)

        with pytest.raises(NotFoundError):
            await client.segments.delete(SEGMENT_ID)

    async def test_budget_makes_an_outage_fail_fast(self, mock_api, client):
        """Once the retry budget is spent, calls are not retried at all."""
        mock_api.get(LIST_URL, status=503, repeat=True)

        for _ in range(150):
            with pytest.raises(InternalServerError):
                await client.segments.list()

        # 500 tokens pay for 100 retries of 5; the other calls are sent once.
        assert 150 + 100 == total_sent(mock_api)

    async def test_success_refills_the_budget(self, mock_api, client):
        """Successes put tokens back, so retries resume after an outage."""
        budget = client._shared.budget
        mock_api.get(LIST_URL, status=503, repeat=True)
        for _ in range(60):
            with pytest.raises(InternalServerError):
                await client.segments.list()
        assert 0 == budget.tokens
        mock_api.clear()
        mock_api.get(LIST_URL, payload=page_payload(1, 20, 0), repeat=True)
        for _ in range(10):
            await client.segments.list()
        assert 10 == budget.tokens


class TestLogging:
    async def test_debug_and_warning_records_never_hold_the_token(self, mock_api, client, caplog):
        """DEBUG per attempt, WARNING per retry, and the token in neither."""
        caplog.set_level(logging.DEBUG, logger="segments_async")
        mock_api.get(LIST_URL, status=503)
        mock_api.get(LIST_URL, payload=page_payload(1, 20, 0))

        await client.segments.list()

        debug = [r for r in caplog.records if r.levelno == logging.DEBUG]
        warning = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert 2 == len(debug)
        assert "attempt 2" in debug[1].getMessage()
        assert 1 == len(warning)
        assert "HTTP 503" in warning[0].getMessage()
        assert all(TOKEN not in r.getMessage() for r in caplog.records)
        assert all(TOKEN not in repr(r.args) for r in caplog.records)


class TestConfiguration:
    def test_env_fills_in_missing_arguments(self, monkeypatch):
        """SEGMENTS_BASE_URL and SEGMENTS_API_TOKEN are the defaults."""
        monkeypatch.setenv("SEGMENTS_BASE_URL", "https://env.segments.test/")
        monkeypatch.setenv("SEGMENTS_API_TOKEN", "env-token")

        client = SegmentsClient()

        assert "https://env.segments.test" == client.base_url
        assert "Bearer env-token" == client._headers.plain["Authorization"]

    @pytest.mark.parametrize("missing", ["SEGMENTS_BASE_URL", "SEGMENTS_API_TOKEN"])
    def test_missing_configuration_is_a_clear_error(self, monkeypatch, missing):
        """Without an argument or its variable, the error names the variable."""
        monkeypatch.setenv("SEGMENTS_BASE_URL", BASE_URL)
        monkeypatch.setenv("SEGMENTS_API_TOKEN", TOKEN)
        monkeypatch.delenv(missing)

        with pytest.raises(ValueError, match=missing):
            SegmentsClient()

    def test_insecure_http_refused_for_remote_hosts(self):
        """http:// to a non-loopback host needs allow_insecure_http=True."""
        with pytest.raises(ValueError, match="clear text"):
            SegmentsClient("http://api.segments.test", TOKEN)
        assert SegmentsClient("http://api.segments.test", TOKEN, allow_insecure_http=True)
        assert SegmentsClient("http://127.0.0.1:8080", TOKEN)

    def test_repr_hides_the_token(self):
        """The token is never in the client's repr."""
        assert TOKEN not in repr(SegmentsClient(BASE_URL, TOKEN))

    @pytest.mark.parametrize(
        ("kwargs", "exc"),
        [
            ({"timeout": 0}, ValueError),
            ({"timeout": "30"}, TypeError),
            ({"retry": 3}, TypeError),
            ({"max_connections": 0}, ValueError),
            ({"session": object()}, TypeError),
        ],
    )
    def test_bad_options(self, kwargs, exc):
        """Bad options fail at construction."""
        with pytest.raises(exc):
            SegmentsClient(BASE_URL, TOKEN, **kwargs)


class TestLifecycle:
    def test_constructed_outside_a_loop(self):
        """Constructing needs no running loop: the session is created lazily."""
        client = SegmentsClient(BASE_URL, TOKEN)
        assert client._shared.transport.session is None

    async def test_aclose_is_idempotent_and_closes_the_owned_session(self, mock_api):
        """aclose closes the owned session once; calling again is harmless."""
        mock_api.get(LIST_URL, payload=page_payload(1, 20, 0))
        client = SegmentsClient(BASE_URL, TOKEN)
        await client.segments.list()
        session = client._shared.transport.session

        await client.aclose()
        await client.aclose()

        assert session is not None
        assert session.closed
        assert client.closed
        with pytest.raises(RuntimeError, match="closed"):
            await client.segments.list()

    async def test_borrowed_session_is_used_and_not_closed(self, mock_api):
        """A lent session carries the requests and stays open after aclose."""
        mock_api.get(LIST_URL, payload=page_payload(1, 20, 0))
        async with aiohttp.ClientSession() as session:
            async with SegmentsClient(BASE_URL, TOKEN, session=session) as client:
                await client.segments.list()
            assert not session.closed
        assert 1 == total_sent(mock_api)

    async def test_unused_client_never_warns(self):
        """A client never used, and dropped unclosed, holds no session: nothing warns."""
        with unclosed_warnings() as warned:
            client = SegmentsClient(BASE_URL, TOKEN)
            assert client._shared.transport.session is None
            del client

        assert [] == warned

    async def test_the_warning_check_sees_a_session_dropped_unclosed(self):
        """The check above can fail: an aiohttp session dropped unclosed warns."""
        with unclosed_warnings() as warned:
            session = aiohttp.ClientSession()
            del session

        assert any("Unclosed client session" in message for message in warned)

    async def test_with_options_shares_the_pool(self, mock_api, client):
        """A view has its own options, the same session, and does not close it."""
        mock_api.get(LIST_URL, payload=page_payload(1, 20, 0), repeat=True)
        await client.segments.list()
        view = client.with_options(timeout=5, retry=RetryPolicy(max_retries=0))

        await view.segments.list()
        await view.aclose()

        assert 5 == view.timeout.total
        assert 0 == view.retry.max_retries
        assert FAST_RETRY == client.retry
        assert view._shared is client._shared
        assert not client.closed
        assert 2 == total_sent(mock_api)

    async def test_use_from_another_loop_is_a_clear_error(self, mock_api):
        """A pool bound to one loop refuses another loop instead of hanging."""
        mock_api.get(LIST_URL, payload=page_payload(1, 20, 0), repeat=True)
        client = SegmentsClient(BASE_URL, TOKEN)
        await client.segments.list()

        def in_other_loop() -> None:
            with pytest.raises(RuntimeError, match="another event loop"):
                asyncio.run(client.segments.list())

        await asyncio.to_thread(in_other_loop)
        await client.aclose()


async def test_exceptions_are_all_segments_errors(mock_api, client):
    """aiohttp's exceptions never reach the caller."""
    mock_api.get(LIST_URL, exception=aiohttp.ClientOSError(104, "reset"), repeat=True)
    with pytest.raises(SegmentsError) as info:
        await client.segments.list()
    assert isinstance(info.value, APIConnectionError)
    assert isinstance(info.value.__cause__, aiohttp.ClientOSError)


async def test_spent_budget_warns_once_per_outage(mock_api, client, caplog):
    """A dry budget is one WARNING, not one per failing call; it re-arms after recovery."""
    caplog.set_level(logging.WARNING, logger="segments_async")
    mock_api.get(LIST_URL, status=503, repeat=True)
    for _ in range(120):
        with pytest.raises(InternalServerError):
            await client.segments.list()

    spent = [r for r in caplog.records if "budget is spent" in r.getMessage()]
    assert 1 == len(spent)


class TestReadSize:
    """``_read_in_64k`` on stand-ins: asyncio's shapes (plain, TLS) are cut on the instance;
    what it cannot set (uvloop's, a later asyncio's) it leaves, and it never raises."""

    def test_a_larger_read_size_is_cut_to_64_kib(self):
        from segments_async._transport import _read_in_64k

        class Plain:
            max_size = 256 * 1024

        class Tls:
            def __init__(self) -> None:
                self._ssl_protocol = Plain()

        plain, tls = Plain(), Tls()
        _read_in_64k(plain)
        _read_in_64k(tls)
        assert plain.max_size == tls._ssl_protocol.max_size == 64 * 1024
        assert Plain.max_size == 256 * 1024  # the instance's, not every transport's

    def test_what_cannot_be_set_is_left(self):
        from segments_async._transport import _read_in_64k

        class Smaller:
            max_size = 16 * 1024

        class ReadOnly:
            @property
            def max_size(self) -> int:
                return 256 * 1024

        class NotASize:
            max_size = "256k"

        smaller, read_only, odd = Smaller(), ReadOnly(), NotASize()
        for transport in (smaller, read_only, odd, object(), None):
            _read_in_64k(transport)
        assert smaller.max_size == 16 * 1024
        assert read_only.max_size == 256 * 1024
        assert odd.max_size == "256k"
