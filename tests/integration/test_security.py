"""Security: the token stays out of logs, reprs and exceptions, goes to no other origin and
never in clear text to a remote host; no input changes the request path."""

from __future__ import annotations

import gzip
import logging
import pickle
import traceback
import uuid
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from segments_async import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    InternalServerError,
    NotFoundError,
    RetryPolicy,
    SegmentsClient,
    SegmentsError,
    UnprocessableEntityError,
    _wire,
)
from segments_async.testing import FakeSegmentsServer, Fault

from ..rawserver import RawRequest, RawServer, json_response, response

TOKEN = "tok-SECRET-7f3a9e"
SEGMENT_ID = "7f2d6e6d-a4ad-4b58-abfe-bd8b918ebec2"
TINY_RETRY = RetryPolicy(max_retries=2, backoff_initial=0.001, backoff_max=0.002)
LOGGERS = [None, "segments_async", "aiohttp", "aiohttp.client", "aiohttp.server", "asyncio"]


def chain(error: BaseException) -> list[BaseException]:
    """The exception and everything reachable through __cause__ and __context__."""
    seen: list[BaseException] = []
    todo = [error]
    while todo:
        current = todo.pop()
        if any(current is s for s in seen):
            continue
        seen.append(current)
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]
    return seen


def assert_no_token_in_error(error: BaseException) -> None:
    """Neither the error, nor anything chained to it, nor its pickle, shows the token."""
    assert isinstance(error, SegmentsError), repr(error)
    for link in chain(error):
        assert TOKEN not in repr(link), f"{type(link).__name__} repr: {link!r}"
        assert TOKEN not in str(link), f"{type(link).__name__} str: {link}"
        assert TOKEN not in repr(vars(link)) if hasattr(link, "__dict__") else True
    assert TOKEN not in "".join(traceback.format_exception(error))
    assert TOKEN.encode() not in pickle.dumps(error)


def assert_no_token_in_logs(records: list[logging.LogRecord]) -> None:
    """No record, formatted with its traceback, or any of its attributes, shows the token."""
    formatter = logging.Formatter()
    for record in records:
        assert TOKEN not in formatter.format(record), record.getMessage()
        assert TOKEN not in repr(record.args)
        assert TOKEN not in repr(vars(record))


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Everything at DEBUG, from the library, aiohttp and asyncio."""
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


async def expect(
    errors: list[BaseException], kind: type[SegmentsError], call: Awaitable[object]
) -> None:
    """Await ``call``, which must raise ``kind``; keep the error for inspection."""
    with pytest.raises(kind) as info:
        await call
    errors.append(info.value)


async def test_token_never_in_logs_reprs_or_errors(debug_logs):
    """CRUD, iteration and every kind of failure at DEBUG: the token shows up nowhere."""
    errors: list[BaseException] = []
    async with FakeSegmentsServer(token=TOKEN, seed=9) as server:
        server.add_segments(250)
        client = SegmentsClient(server.base_url, TOKEN, retry=TINY_RETRY)
        wrong = SegmentsClient(server.base_url, TOKEN + "-wrong", retry=TINY_RETRY)
        once = client.with_options(retry=RetryPolicy(max_retries=0))
        async with client, wrong:
            # Success paths.
            segment = await client.segments.create("EMEA")
            await client.segments.update(segment.id, "DACH")
            assert 251 == (await client.segments.list(per_page=100)).total
            assert 251 == len([s async for s in client.segments.iterate(concurrency=3)])
            await client.segments.delete(segment.id)
            # Status errors.
            await expect(errors, AuthenticationError, wrong.segments.list())
            await expect(errors, NotFoundError, client.segments.update(str(uuid.uuid4()), "x"))
            await expect(errors, NotFoundError, client.segments.delete(uuid.uuid4()))
            await expect(errors, UnprocessableEntityError, client.segments.create(""))
            # Retries that succeed, then retries that run out.
            server.inject(Fault.status(503, retry_after=0), method="GET", times=2)
            await client.segments.list()
            server.inject(Fault.status(503), method="GET", times=3)
            await expect(errors, InternalServerError, client.segments.list())
            server.inject(Fault.html_502(), method="GET", times=3)
            await expect(errors, InternalServerError, client.segments.list())
            # Lost connections and broken answers.
            server.inject(Fault.reset_before(rst=True), method="GET", times=6)
            await expect(errors, APIConnectionError, client.segments.list())
            server.inject(Fault.reset_before(), method="GET", times=6)
            await expect(errors, APIConnectionError, client.segments.list())
            server.inject(Fault.reset_after(), method="POST")
            await expect(errors, APIConnectionError, client.segments.create("lost"))
            server.inject(Fault.truncated_body(), method="GET", times=3)
            await expect(errors, APIConnectionError, client.segments.list())
            server.inject(Fault.truncated_body(), method="PUT", times=3)
            await expect(errors, APIConnectionError, client.segments.update(segment.id, "x"))
            server.inject(Fault.non_json_body(), method="GET")
            await expect(errors, APIResponseValidationError, client.segments.list())
            # Timeouts: the whole attempt, and a read that stalls.
            server.inject(Fault.latency(1.0), method="GET", times=2)
            slow = client.with_options(timeout=0.05, retry=RetryPolicy(max_retries=0))
            await expect(errors, APITimeoutError, slow.segments.list())
            stalled = client.with_options(
                timeout=aiohttp.ClientTimeout(sock_read=0.05), retry=RetryPolicy(max_retries=0)
            )
            await expect(errors, APITimeoutError, stalled.segments.list())
            reprs = [repr(client), str(client), repr(wrong), repr(once), repr(client.segments)]

    async with (
        FakeSegmentsServer(token=TOKEN, delete_body=True) as server,
        SegmentsClient(server.base_url, TOKEN, retry=TINY_RETRY) as client,
    ):
        # The spec's 204 with a body: aiohttp's parser error holds the request headers.
        for _ in range(2):
            segment = await client.segments.create("EMEA")
            await client.segments.delete(segment.id)
        segment = await client.segments.create("EMEA")
        once = client.with_options(retry=RetryPolicy(max_retries=0))
        await expect(errors, APIConnectionError, once.segments.delete(segment.id))
        await client.segments.list()

    assert 15 == len(errors)
    for error in errors:
        assert_no_token_in_error(error)
    for text in reprs:
        assert TOKEN not in text
    records = debug_logs.records
    assert any(r.name == "segments_async" and r.levelno == logging.DEBUG for r in records)
    assert any(r.name == "segments_async" and r.levelno == logging.WARNING for r in records)
    # The structured fields and the outcome-unknown WARNINGs were among what was checked.
    assert any(getattr(r, "segments_outcome_unknown", False) for r in records)
    assert any(hasattr(r, "segments_elapsed_ms") for r in records)
    assert_no_token_in_logs(records)


async def test_token_is_set_per_request_not_on_the_session():
    """The Authorization header is not a session default, and a borrowed session is untouched."""
    async with FakeSegmentsServer(token=TOKEN) as server:
        async with SegmentsClient(server.base_url, TOKEN) as client:
            await client.segments.list()
            session = client._shared.transport.session
            assert session is not None
            assert "Authorization" not in session.headers
        async with aiohttp.ClientSession() as borrowed:
            async with SegmentsClient(server.base_url, TOKEN, session=borrowed) as client:
                await client.segments.list()
            assert "Authorization" not in borrowed.headers
            assert not borrowed.closed
        assert all(f"Bearer {TOKEN}" == r.headers["Authorization"] for r in server.requests)


# --------------------------------------------------------------------------- redirects

OPERATIONS: dict[str, Callable[[SegmentsClient], Awaitable[object]]] = {
    "list": lambda c: c.segments.list(),
    "create": lambda c: c.segments.create("EMEA"),
    "update": lambda c: c.segments.update(SEGMENT_ID, "EMEA"),
    "delete": lambda c: c.segments.delete(SEGMENT_ID),
}


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("operation", sorted(OPERATIONS))
async def test_redirect_to_another_origin_gets_nothing(status, operation):
    """A redirect to another port raises APIStatusError; the other origin sees no request."""

    async def elsewhere(request: RawRequest) -> bytes:
        return json_response(200, {"success": True, "result": {"id": SEGMENT_ID, "name": "x"}})

    async with RawServer(elsewhere) as other:
        other_url = other.url

        async def redirect(request: RawRequest) -> bytes:
            location = other_url + request.target
            return response(status, b"", reason="Moved", headers={"Location": location})

        async with (
            RawServer(redirect) as server,
            SegmentsClient(server.url, TOKEN, retry=TINY_RETRY) as client,
        ):
            with pytest.raises(APIStatusError) as info:
                await OPERATIONS[operation](client)

    assert status == info.value.status_code
    assert other_url in str(info.value)  # names the Location it did not follow
    assert [] == other.requests
    assert 0 == other.connections
    assert 1 == len(server.requests)
    assert_no_token_in_error(info.value)


# --------------------------------------------------------------------------- clear text


@pytest.mark.parametrize(
    "base_url",
    [
        "http://api.segments.example",
        "http://api.segments.example:80/v1",
        "http://10.0.0.1",
        "http://[2001:db8::1]:8080",
        "http://localhost.evil.example",
        "http://127.0.0.1.nip.io",
        "HTTP://API.SEGMENTS.EXAMPLE",
    ],
)
def test_clear_text_to_a_remote_host_is_refused(base_url):
    """http:// to a non-loopback host is a ValueError at construction, without the token."""
    with pytest.raises(ValueError, match="clear text") as info:
        SegmentsClient(base_url, TOKEN)
    assert TOKEN not in str(info.value)
    assert TOKEN not in "".join(traceback.format_exception(info.value))
    client = SegmentsClient(base_url, TOKEN, allow_insecure_http=True)
    assert client.base_url.lower().startswith("http://")


@pytest.mark.parametrize(
    "base_url", ["http://127.0.0.1", "http://127.0.0.1:8080", "http://localhost:9", "http://[::1]"]
)
def test_clear_text_to_loopback_is_allowed(base_url):
    """http:// to 127.0.0.1, localhost or ::1 is allowed without opting in."""
    assert base_url == SegmentsClient(base_url, TOKEN).base_url


@pytest.mark.parametrize(
    ("base_url", "token"),
    [
        ("https://tok-SECRET-7f3a9e@api.segments.example", "other-token"),
        ("https://user:tok-SECRET-7f3a9e@api.segments.example", "other-token"),
        ("http://127.0.0.1:tok-SECRET-7f3a9e@api.segments.example", "other-token"),
        ("https://api.segments.example", TOKEN + "\n"),
        ("https://api.segments.example", " " + TOKEN),
        ("https://api.segments.example", TOKEN + " x"),
        ("https://api.segments.example", TOKEN + "\x00"),
    ],
)
def test_configuration_errors_do_not_repeat_the_secret(base_url, token):
    """Credentials in the URL or an unusable token: a ValueError that does not echo it."""
    with pytest.raises(ValueError, match=r"token|credentials") as info:
        SegmentsClient(base_url, token)
    assert TOKEN not in str(info.value)
    assert TOKEN not in "".join(traceback.format_exception(info.value))


# --------------------------------------------------------------------------- path injection

INJECTED_IDS = [
    "../x",
    "a/b",
    "?x=1",
    "#f",
    "%2e%2e",
    "%2F",
    "..",
    "",
    f"{SEGMENT_ID}/../../x",
    f"../{SEGMENT_ID}",
    f"{SEGMENT_ID}?x=1",
    f"{SEGMENT_ID}#f",
    f"{SEGMENT_ID}%2F..",
    f"{SEGMENT_ID}\n",
    f" {SEGMENT_ID}",
    f"{{{SEGMENT_ID}}}",
    f"urn:uuid:{SEGMENT_ID}",
    SEGMENT_ID.replace("-", "/"),
    SEGMENT_ID.replace("7", "\uff17"),  # a fullwidth digit
]


@pytest.mark.parametrize("segment_id", INJECTED_IDS)
async def test_ids_that_would_change_the_path_are_refused_before_sending(segment_id):
    """update/delete with an id that is not a plain UUID: ValueError, nothing sent."""

    async def anything(request: RawRequest) -> bytes:
        return json_response(200, {"success": True, "result": {"id": SEGMENT_ID, "name": "x"}})

    async with RawServer(anything) as server, SegmentsClient(server.url, TOKEN) as client:
        with pytest.raises(ValueError, match="UUID"):
            await client.segments.update(segment_id, "EMEA")
        with pytest.raises(ValueError, match="UUID"):
            await client.segments.delete(segment_id)
        assert client._shared.transport.session is None  # not even a session was opened
    assert [] == server.requests
    assert 0 == server.connections


# --------------------------------------------------------------------------- resource limits


def gzip_bomb(prefix: bytes, inflated_size: int) -> bytes:
    """A gzip stream of ``prefix`` then ``inflated_size`` spaces, far smaller than that."""
    block = gzip.compress(b" " * 2**20, compresslevel=9)
    return gzip.compress(prefix) + block * -(-inflated_size // 2**20)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_compressed_body_inflating_past_the_limit_is_refused(framing):
    """A small gzip body that inflates past MAX_RESPONSE_BYTES is refused, not read whole."""
    envelope = b'{"success":true,"result":{"id":"%s","name":"EMEA"}}' % SEGMENT_ID.encode()
    compressed = gzip_bomb(envelope, _wire.MAX_RESPONSE_BYTES + 2**20)
    assert len(compressed) < _wire.MAX_RESPONSE_BYTES // 100

    if framing == "chunked":
        size = 64 * 1024
        chunks = [compressed[i : i + size] for i in range(0, len(compressed), size)]
        payload = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
        head = "Transfer-Encoding: chunked"
    else:
        payload = compressed
        head = f"Content-Length: {len(compressed)}"
    answer = (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
        f"{head}\r\n\r\n"
    ).encode() + payload

    async def bomb(request: RawRequest) -> bytes:
        return answer

    async with RawServer(bomb) as server, SegmentsClient(server.url, TOKEN) as client:
        with pytest.raises(APIResponseValidationError, match="larger than"):
            await client.segments.create("EMEA")
    assert 1 == len(server.requests)
