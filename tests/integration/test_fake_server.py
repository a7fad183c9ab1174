"""Tests of the fake Segments API server, driven with a plain aiohttp client."""

from __future__ import annotations

import asyncio
import errno
import io
import os
import re
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from multidict import CIMultiDictProxy

import segments_async.testing
from segments_async.testing import FakeSegmentsServer, Fault
from segments_async.testing.__main__ import main as standalone_main
from segments_async.testing._limits import TokenBucket

pytest_plugins = ["segments_async.testing.pytest_plugin"]

REPO_ROOT = Path(__file__).resolve().parents[2]
SPEC_DELETE_BODY = b'{"success":true,"result":[]}'


class Answer:
    """Status, headers and body of one response."""

    def __init__(self, status: int, headers: CIMultiDictProxy[str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def error_code(self) -> str:
        data = self.json()
        assert data["success"] is False
        assert set(data["error"]) == {"code", "message"}
        code: str = data["error"]["code"]
        return code


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def call(http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> Answer:
    async with http.request(method, url, **kwargs) as resp:
        return Answer(resp.status, resp.headers, await resp.read())


@pytest.fixture
async def server() -> AsyncIterator[FakeSegmentsServer]:
    async with FakeSegmentsServer(seed=0) as s:
        yield s


@pytest.fixture
async def http(server: FakeSegmentsServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers=auth(server.token)) as session:
        yield session


def item_url(server: FakeSegmentsServer, segment_id: str) -> str:
    return f"{server.segments_url}/{segment_id}"


# Public surface and lifecycle


def test_all_is_sorted_and_complete() -> None:
    """__all__ is sorted and lists the public names."""
    exported = segments_async.testing.__all__
    assert sorted(exported) == exported
    assert {"FakeSegmentsServer", "Fault"} <= set(exported)


async def test_start_and_close_are_idempotent() -> None:
    """start() and close() may be called twice; a closed server does not restart."""
    server = FakeSegmentsServer()
    with pytest.raises(RuntimeError):
        _ = server.base_url
    await server.start()
    await server.start()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.base_url)
    assert server.port > 0
    await server.close()
    await server.close()
    with pytest.raises(RuntimeError):
        await server.start()


async def test_close_cuts_short_a_slow_request(server: FakeSegmentsServer) -> None:
    """close() does not wait out an injected latency."""
    server.inject(Fault.latency(30))
    async with aiohttp.ClientSession(headers=auth(server.token)) as http:
        # POST: aiohttp would retry a GET by itself, and find the port closed.
        pending = asyncio.ensure_future(call(http, "POST", server.segments_url, json={"name": "n"}))
        for _ in range(5000):  # until the request has arrived
            if server.requests:
                break
            await asyncio.sleep(0.001)
        started = time.monotonic()
        await server.close()
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await pending
    assert time.monotonic() - started < 5


async def test_plugin_server_fixture(segments_server: FakeSegmentsServer) -> None:
    """The plugin's segments_server fixture is a started server."""
    async with aiohttp.ClientSession(headers=auth(segments_server.token)) as http:
        answer = await call(http, "GET", segments_server.segments_url)
    assert answer.status == 200


# Auth and tenants


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic dXNlcjpwYXNz"}],
    ids=["missing", "unknown", "not-bearer"],
)
async def test_requires_a_known_bearer_token(
    server: FakeSegmentsServer, headers: dict[str, str]
) -> None:
    """Without a known bearer token every route answers 401 with the error envelope."""
    async with aiohttp.ClientSession(headers=headers) as http:
        answer = await call(http, "GET", server.segments_url)
    assert answer.status == 401
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.error_code == "unauthenticated"
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


async def test_tenants_are_isolated(
    server: FakeSegmentsServer, http: aiohttp.ClientSession
) -> None:
    """A tenant neither sees nor touches another tenant's segments."""
    mine = server.add_segments(3)
    other = server.add_tenant("other-token")
    assert other == "other-token"
    victim = next(iter(mine))
    headers = auth(other)

    listing = await call(http, "GET", server.segments_url, headers=headers)
    renamed = await call(http, "PUT", item_url(server, victim), json={"name": "x"}, headers=headers)
    deleted = await call(http, "DELETE", item_url(server, victim), headers=headers)
    created = await call(http, "POST", server.segments_url, json={"name": "o"}, headers=headers)

    assert listing.json()["result"]["total"] == 0
    assert (renamed.status, deleted.status) == (404, 404)
    assert created.status == 200
    assert mine == server.segments()
    assert [created.json()["result"]["id"]] == list(server.segments(other))


def test_add_tenant_refuses_a_duplicate_token() -> None:
    """A token names one tenant only."""
    server = FakeSegmentsServer(token="t")
    with pytest.raises(ValueError, match="exists"):
        server.add_tenant("t")


BAD_TOKENS = ["", "a b", " tok", "tok\t", "t\u00e9", "tok\x00", "tok\n"]


@pytest.mark.parametrize("token", BAD_TOKENS)
def test_tokens_the_client_refuses_are_refused(token: str) -> None:
    """add_tenant() and token= take only what the client sends: printable ASCII, no space."""
    server = FakeSegmentsServer()
    with pytest.raises(ValueError, match="token"):
        server.add_tenant(token)
    with pytest.raises(ValueError, match="token"):
        FakeSegmentsServer(token=token)
    with pytest.raises(TypeError, match="token"):
        server.add_tenant(b"tok")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        ("Bearer {token}", 200),
        ("bearer {token}", 200),
        ("BEARER {token}", 200),
        ("Bearer  {token}", 401),
        ("Bearer\t{token}", 401),
        ("Bearer {token} {token}", 401),
        ("Bearer {token}x", 401),
        ("Bearer{token}", 401),
        ("Bearer", 401),
        ("Token {token}", 401),
    ],
)
async def test_authorization_must_be_exactly_bearer_and_the_token(
    server: FakeSegmentsServer, authorization: str, status: int
) -> None:
    """Only ``Bearer <token>`` (any case of the scheme, one space) authenticates."""
    headers = {"Authorization": authorization.format(token=server.token)}
    async with aiohttp.ClientSession(headers=headers) as http:
        answer = await call(http, "GET", server.segments_url)
    assert status == answer.status
    if status == 401:
        assert None is server.requests[-1].token


# Content negotiation and validation


@pytest.mark.parametrize(
    ("accept", "status"),
    [
        ("application/json", 200),
        ("application/json; charset=utf-8", 200),
        ("application/*", 200),
        ("*/*", 200),
        ("text/html, application/json;q=0.5", 200),
        ("text/html", 406),
        ("application/json;q=0", 406),
        ("application/xml", 406),
        (None, 406),
    ],
)
async def test_accept_must_admit_json(
    server: FakeSegmentsServer, http: aiohttp.ClientSession, accept: str | None, status: int
) -> None:
    """Accept must admit application/json; missing or not admitting it is 406."""
    if accept is None:
        answer = await call(http, "GET", server.segments_url, skip_auto_headers=["Accept"])
        assert "Accept" not in server.requests[-1].headers
    else:
        answer = await call(http, "GET", server.segments_url, headers={"Accept": accept})
    assert answer.status == status
    if status == 406:
        assert answer.error_code == "not_acceptable"


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("application/json", 200),
        ("application/json; charset=utf-8", 200),
        ("text/plain", 415),
        ("application/x-www-form-urlencoded", 415),
        (None, 415),
    ],
)
async def test_post_and_put_require_json_content_type(
    server: FakeSegmentsServer,
    http: aiohttp.ClientSession,
    content_type: str | None,
    status: int,
) -> None:
    """POST and PUT bodies must be declared application/json, else 415."""
    (segment_id,) = server.add_segments(1)
    headers = {} if content_type is None else {"Content-Type": content_type}
    skip = ["Content-Type"] if content_type is None else []
    body = b'{"name": "n"}'
    posted = await call(
        http, "POST", server.segments_url, data=body, headers=headers, skip_auto_headers=skip
    )
    put = await call(
        http, "PUT", item_url(server, segment_id), data=body, headers=headers,
        skip_auto_headers=skip,
    )  # fmt: skip
    assert (posted.status, put.status) == (status, status)
    if status == 415:
        assert posted.error_code == "unsupported_media_type"
        assert len(server.segments()) == 1


@pytest.mark.parametrize(
    ("body", "code"),
    [(b"{not json", "invalid_json"), (b"", "invalid_json"), (b'["name"]', "invalid_body")],
)
async def test_malformed_body_is_400(
    server: FakeSegmentsServer, http: aiohttp.ClientSession, body: bytes, code: str
) -> None:
    """A body that is not a JSON object is 400."""
    answer = await call(
        http, "POST", server.segments_url, data=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status == 400
    assert answer.error_code == code


@pytest.mark.parametrize(
    "payload",
    [{}, {"name": ""}, {"name": "   "}, {"name": "x" * 256}, {"name": 5}, {"name": None}],
    ids=["missing", "empty", "blank", "too-long", "int", "null"],
)
async def test_invalid_name_is_422(
    server: FakeSegmentsServer, http: aiohttp.ClientSession, payload: dict[str, Any]
) -> None:
    """A name that is not a non-blank string of at most 255 characters is 422."""
    (segment_id,) = server.add_segments(1)
    created = await call(http, "POST", server.segments_url, json=payload)
    updated = await call(http, "PUT", item_url(server, segment_id), json=payload)
    assert (created.status, updated.status) == (422, 422)
    assert created.error_code == "validation_error"
    assert len(server.segments()) == 1


async def test_name_of_255_characters_is_accepted(
    server: FakeSegmentsServer, http: aiohttp.ClientSession
) -> None:
    """255 characters is the longest valid name."""
    answer = await call(http, "POST", server.segments_url, json={"name": "x" * 255})
    assert answer.status == 200


@pytest.mark.parametrize(
    "segment_id",
    [
        "3f1f8a3e-0a4c-4a89-9c43-6a2b1c9d5e7f",
        "not-a-uuid",
        "0" * 31 + "g",
        "{%s}",
        "urn:uuid:%s",
        "hex",
    ],
)
@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_unknown_segment_is_404(
    server: FakeSegmentsServer, http: aiohttp.ClientSession, method: str, segment_id: str
) -> None:
    """An unknown id, or a known one not in the canonical 8-4-4-4-12 form, is 404."""
    known = next(iter(server.add_segments(2)))
    if segment_id == "hex":
        segment_id = known.replace("-", "")
    segment_id = segment_id.replace("%s", known)
    answer = await call(http, method, item_url(server, segment_id), json={"name": "n"})
    assert answer.status == 404
    assert answer.error_code == "segment_not_found"
    assert 2 == len(server.segments())


async def test_canonical_id_is_case_insensitive(
    server: FakeSegmentsServer, http: aiohttp.ClientSession
) -> None:
    """An upper-case canonical id names the same segment."""
    (segment_id,) = server.add_segments(1)
    answer = await call(http, "PUT", item_url(server, segment_id.upper()), json={"name": "n"})
    assert 200 == answer.status
    assert {segment_id: "n"} == server.segments()


@pytest.mark.parametrize(
    ("method", "path", "status", "allow"),
    [
        ("GET", "/v2.3/data/other", 404, None),
        ("GET", "/v2.3/data/segments/", 404, None),
        ("GET", "/", 404, None),
        ("DELETE", "/v2.3/data/segments", 405, "GET, POST"),
        ("PATCH", "/v2.3/data/segments", 405, "GET, POST"),
        ("GET", f"/v2.3/data/segments/{uuid.UUID(int=1)}", 405, "PUT, DELETE"),
        ("POST", f"/v2.3/data/segments/{uuid.UUID(int=1)}", 405, "PUT, DELETE"),
    ],
)
async def test_unknown_route_or_method(
    server: FakeSegmentsServer,
    http: aiohttp.ClientSession,
    method: str,
    path: str,
    status: int,
    allow: str | None,
) -> None:
    """Unknown paths are 404 and wrong methods 405, with JSON error bodies."""
    answer = await call(http, method, server.base_url + path)
    assert answer.status == status
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.error_code in ("not_found", "method_not_allowed")
    assert answer.headers.get("Allow") == allow


# Pagination


async def test_pages_cover_every_segment_in_order(
    server: FakeSegmentsServer, http: aiohttp.ClientSession
) -> None:
    """Pages of 20 list 45 segments in insertion order; the page past the end is empty."""
    seeded = server.add_segments(45)
    pages = [
        (await call(http, "GET", server.segments_url, params={"page": n, "per_page": 20})).json()
        for n in (1, 2, 3, 4)
    ]
    results = [page["result"] for page in pages]
    assert [(r["currentPage"], r["perPage"], r["lastPage"], r["total"]) for r in results] == [
        (n, 20, 3, 45) for n in (1, 2, 3, 4)
    ]
    assert [len(r["items"]) for r in results] == [20, 20, 5, 0]
    listed = {item["id"]: item["name"] for r in results for item in r["items"]}
    assert list(seeded.items()) == list(listed.items())
    assert all(r["filters"] == [] for r in results)


async def test_list_defaults_and_empty_tenant(
    server: FakeSegmentsServer, http: aiohttp.ClientSession
) -> None:
    """page=1 and per_page=20 by default; an empty tenant has lastPage 1."""
    empty = (await call(http, "GET", server.segments_url)).json()["result"]
    server.add_segments(25)
    default = (await call(http, "GET", server.segments_url)).json()["result"]
    assert (empty["lastPage"], empty["total"], empty["items"]) == (1, 0, [])
    assert (default["currentPage"], default["perPage"], len(default["items"])) == (1, 20, 20)


async def test_per_page_is_clamped_to_max_per_page() -> None:
    """per_page above max_per_page is clamped, and lastPage follows the clamped value."""
    async with FakeSegmentsServer(max_per_page=10) as server:
        server.add_segments(25)
        async with aiohttp.ClientSession(headers=auth(server.token)) as http:
            answer = await call(http, "GET", server.segments_url, params={"per_page": 500})
    result = answer.json()["result"]
    assert (result["perPage"], result["lastPage"], len(result["items"])) == (10, 3, 10)


@pytest.mark.parametrize(
    "params",
    [{"page": "0"}, {"page": "-1"}, {"page": "abc"}, {"per_page": "1.5"}, {"per_page": "0"}],
)
async def test_bad_page_parameters_are_400(
    server: FakeSegmentsServer, http: aiohttp.ClientSession, params: dict[str, str]
) -> None:
    """page and per_page must be positive integers, else 400 invalid_query."""
    answer = await call(http, "GET", server.segments_url, params=params)
    assert answer.status == 400
    assert answer.error_code == "invalid_query"


@pytest.mark.parametrize(
    "query",
    [
        "page=18446744073709551616",
        "per_page=18446744073709551616",
        f"page={2**31}",
        f"per_page={2**31}",
        "page=" + "9" * 5000,
        "page=1&page=2",
        "per_page=5&per_page=5",
        "page=%FF",
        "page=",
    ],
    ids=[
        "page-2**64", "per-page-2**64", "page-2**31", "per-page-2**31", "page-5000-digits",
        "page-twice", "per-page-twice", "page-not-utf8", "page-empty",
    ],
)  # fmt: skip
async def test_out_of_range_or_repeated_query_is_400(
    server: FakeSegmentsServer, http: aiohttp.ClientSession, query: str
) -> None:
    """Huge, repeated or empty page/per_page values are a 400 invalid_query, never a 500."""
    answer = await call(http, "GET", f"{server.segments_url}?{query}")
    assert 400 == answer.status
    assert "invalid_query" == answer.error_code


async def test_largest_page_is_answered(
    server: FakeSegmentsServer, http: aiohttp.ClientSession
) -> None:
    """page and per_page up to 2**31 - 1 are accepted (per_page is clamped as usual)."""
    largest = 2**31 - 1
    params = {"page": str(largest), "per_page": str(largest)}
    answer = await call(http, "GET", server.segments_url, params=params)
    assert 200 == answer.status
    assert (largest, 100, []) == tuple(
        answer.json()["result"][key] for key in ("currentPage", "perPage", "items")
    )


async def test_oversized_body_is_a_json_413(
    server: FakeSegmentsServer, http: aiohttp.ClientSession
) -> None:
    """A body over 1 MiB is a 413 in the error envelope; nothing is created."""
    body = io.BytesIO(b'{"name": "' + b"x" * (1024 * 1024) + b'"}')
    answer = await call(
        http, "POST", server.segments_url, data=body, headers={"Content-Type": "application/json"}
    )
    assert 413 == answer.status
    assert "application/json" == answer.headers["Content-Type"]
    assert "payload_too_large" == answer.error_code
    assert {} == server.segments()


async def test_body_of_exactly_the_limit_is_read(
    server: FakeSegmentsServer, http: aiohttp.ClientSession
) -> None:
    """A body of exactly 1 MiB is read (and refused for its content, not its size)."""
    body = b'{"name": "' + b"x" * (1024 * 1024 - 12) + b'"}'
    assert 1024 * 1024 == len(body)
    answer = await call(
        http, "POST", server.segments_url, data=body, headers={"Content-Type": "application/json"}
    )
    assert 422 == answer.status


async def raw_exchange(server: FakeSegmentsServer, request: bytes) -> tuple[bytes, bytes]:
    """Send raw bytes on a fresh connection; the answer's head and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(request)
        raw = await asyncio.wait_for(reader.read(), timeout=5)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    return head, body


@pytest.mark.parametrize(
    "request_line",
    [
        b"GET /v2.3/data/%E0%A4%A segments HTTP/1.1",
        b"GET * HTTP/1.1",
        b"G@T /v2.3/data/segments HTTP/1.1",
        b"GET /v2.3/data/segments HTTP/1.1\r\nX-Long: " + b"a" * 9000,
    ],
    ids=["space-in-target", "asterisk", "bad-method", "long-header"],
)
async def test_malformed_http_is_a_json_400(
    server: FakeSegmentsServer, request_line: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """Requests aiohttp cannot parse still get the error envelope, and the connection closes."""
    head, body = await raw_exchange(
        server, request_line + b"\r\nHost: x\r\nAccept: application/json\r\n\r\n"
    )
    assert b" 400 " in head.split(b"\r\n")[0]
    assert b"Content-Type: application/json" in head
    assert "bad_request" == orjson.loads(body)["error"]["code"]


async def test_a_bug_in_the_fake_is_a_json_500(
    server: FakeSegmentsServer,
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An exception inside the fake answers a JSON 500 internal_error, and is logged."""

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr("segments_async.testing._server.dispatch", broken)
    answer = await call(http, "GET", server.segments_url)
    assert 500 == answer.status
    assert "internal_error" == answer.error_code
    assert any("boom" in str(record.exc_info) for record in caplog.records)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v2.3/data/segments/%ZZ"),
        ("PUT", "/v2.3/data/segments/%ZZ"),
        ("PUT", "/v2.3/data/segments/%FF%FE"),
        ("DELETE", "/v2.3/data/segments/a%2Fb"),
        ("GET", "//v2.3/data/segments"),
        ("GET", "/v2.3/data/segments/../segments"),
        ("HEAD", "/v2.3/data/segments"),
        ("OPTIONS", "/v2.3/data/segments"),
        ("TRACE", "/v2.3/data/segments"),
        ("BREW", "/v2.3/data/segments"),
        ("GET", "/v2.3/data/segments%3Fpage=1"),
    ],
)
async def test_odd_requests_get_the_envelope(
    server: FakeSegmentsServer, http: aiohttp.ClientSession, method: str, path: str
) -> None:
    """Odd paths, percent-encodings and methods are a 4xx with the error envelope."""
    request = (
        f"{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {server.token}\r\n"
        "Accept: application/json\r\nContent-Type: application/json\r\n"
        'Content-Length: 13\r\nConnection: close\r\n\r\n{"name": "n"}'
    )
    head, body = await raw_exchange(server, request.encode())
    status = int(head.split(b" ", 2)[1])
    assert 400 <= status < 500
    assert b"Content-Type: application/json" in head
    if method != "HEAD":
        assert orjson.loads(body)["success"] is False


# CRUD


async def test_create_update_delete(
    server: FakeSegmentsServer, http: aiohttp.ClientSession
) -> None:
    """Create returns a UUID4 segment; update renames it; delete answers 204 and removes it."""
    created = await call(http, "POST", server.segments_url, json={"name": "EMEA"})
    segment = created.json()["result"]
    assert created.status == 200
    assert created.json()["success"] is True
    assert uuid.UUID(segment["id"]).version == 4
    assert segment["name"] == "EMEA"
    assert {segment["id"]: "EMEA"} == server.segments()

    updated = await call(http, "PUT", item_url(server, segment["id"]), json={"name": "DACH"})
    assert updated.status == 200
    assert {"success": True, "result": {"id": segment["id"], "name": "DACH"}} == updated.json()
    listed = (await call(http, "GET", server.segments_url)).json()["result"]["items"]
    assert [{"id": segment["id"], "name": "DACH"}] == listed

    deleted = await call(http, "DELETE", item_url(server, segment["id"]))
    again = await call(http, "DELETE", item_url(server, segment["id"]))
    assert (deleted.status, deleted.body) == (204, b"")
    assert again.status == 404
    assert server.segments() == {}


def test_seed_method_is_a_deprecated_alias_of_add_segments() -> None:
    """server.seed(n) still adds n segments, with a DeprecationWarning naming add_segments."""
    old, new = FakeSegmentsServer(seed=3), FakeSegmentsServer(seed=3)
    token = old.add_tenant("t2")
    with pytest.warns(DeprecationWarning, match="add_segments"):
        created = old.seed(4, token=token)
    assert new.add_segments(4) == created
    assert created == old.segments(token)


def test_add_segments_checks_its_count() -> None:
    """A negative or non-int count is refused."""
    server = FakeSegmentsServer()
    with pytest.raises(ValueError, match="count"):
        server.add_segments(-1)
    with pytest.raises(TypeError, match="count"):
        server.add_segments(2.0)  # type: ignore[arg-type]
    assert {} == server.segments()


def test_seed_is_deterministic() -> None:
    """The same seed gives the same segments; another seed does not."""
    one, same, other = FakeSegmentsServer(seed=1), FakeSegmentsServer(seed=1), FakeSegmentsServer()
    seeded = one.add_segments(50)
    assert seeded == same.add_segments(50)
    assert seeded != other.add_segments(50)
    assert all(uuid.UUID(segment_id).version == 4 for segment_id in seeded)
    token = one.add_tenant()
    assert len(one.add_segments(3, token=token)) == 3
    assert len(one.segments(token)) == 3
    assert len(one.segments()) == 50


# delete_body, read off the wire


async def raw_delete_then_list(server: FakeSegmentsServer, segment_id: str) -> bytes:
    """DELETE then GET on one bare keep-alive socket; every byte of the two answers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    headers = (
        f"Host: 127.0.0.1:{server.port}\r\nAuthorization: Bearer {server.token}\r\n"
        "Accept: application/json\r\n"
    )
    try:
        writer.write(f"DELETE /v2.3/data/segments/{segment_id} HTTP/1.1\r\n{headers}\r\n".encode())
        writer.write(
            f"GET /v2.3/data/segments HTTP/1.1\r\n{headers}Connection: close\r\n\r\n".encode()
        )
        return await asyncio.wait_for(reader.read(), timeout=5)
    finally:
        writer.close()
        await writer.wait_closed()


@pytest.mark.parametrize(("delete_body", "body"), [(True, SPEC_DELETE_BODY), (False, b"")])
async def test_delete_body_is_written_on_the_wire(delete_body: bool, body: bytes) -> None:
    """With delete_body=True the 204 really carries the spec's body, and keep-alive holds."""
    async with FakeSegmentsServer(delete_body=delete_body) as server:
        (segment_id,) = server.add_segments(1)
        raw = await raw_delete_then_list(server, segment_id)
        assert server.segments() == {}
    head, _, rest = raw.partition(b"\r\n\r\n")
    payload, next_status_line, _ = rest.partition(b"HTTP/1.1 200 OK\r\n")
    assert head.startswith(b"HTTP/1.1 204 ")
    assert payload == body
    assert next_status_line
    assert (f"Content-Length: {len(body)}".encode() in head) == delete_body


# Faults


async def test_status_fault_answers_without_processing(
    server: FakeSegmentsServer, http: aiohttp.ClientSession
) -> None:
    """A status fault answers its status, a JSON error and Retry-After; nothing is created."""
    server.inject(Fault.status(503, retry_after=7))
    answer = await call(http, "POST", server.segments_url, json={"name": "n"})
    assert answer.status == 503
    assert answer.headers["Retry-After"] == "7"
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.error_code == "service_unavailable"
    assert server.segments() == {}


async def test_status_fault_with_custom_body_and_date(
    server: FakeSegmentsServer, http: aiohttp.ClientSession
) -> None:
    """A status fault sends the given body and a string Retry-After verbatim."""
    date = "Wed, 21 Oct 2015 07:28:00 GMT"
    server.inject(Fault.status(429, retry_after=date, body=b'{"success":false}'))
    server.inject(Fault.status(500, retry_after=0.25))
    first = await call(http, "GET", server.segments_url)
    second = await call(http, "GET", server.segments_url)
    assert (first.status, first.headers["Retry-After"], first.body) == (
        429,
        date,
        b'{"success":false}',
    )
    assert (second.status, second.headers["Retry-After"]) == (500, "0.25")


async def test_latency_fault_delays_then_processes(
    server: FakeSegmentsServer, http: aiohttp.ClientSession
) -> None:
    """A latency fault waits, then answers normally."""
    server.inject(Fault.latency(0.1))
    started = time.monotonic()
    answer = await call(http, "POST", server.segments_url, json={"name": "n"})
    assert time.monotonic() - started >= 0.1
    assert answer.status == 200
    assert len(server.segments()) == 1


async def test_latency_outlives_a_client_timeout(
    server: FakeSegmentsServer, http: aiohttp.ClientSession
) -> None:
    """A client that times out during a latency fault does not stop the server acting."""
    server.inject(Fault.latency(0.2))
    with pytest.raises(asyncio.TimeoutError):
        await call(
            http,
            "POST",
            server.segments_url,
            json={"name": "n"},
            timeout=aiohttp.ClientTimeout(total=0.05),
        )
    for _ in range(500):  # until the server has acted
        if server.segments():
            break
        await asyncio.sleep(0.01)
    assert list(server.segments().values()) == ["n"]


@pytest.mark.parametrize(
    ("fault", "changed"), [(Fault.reset_before(), False), (Fault.reset_after(), True)]
)
async def test_reset_faults_drop_the_connection(
    server: FakeSegmentsServer, http: aiohttp.ClientSession, fault: Fault, changed: bool
) -> None:
    """Resets answer nothing; reset_after has changed the state, reset_before has not."""
    server.inject(fault)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await call(http, "POST", server.segments_url, json={"name": "n"})
    assert changed == (len(server.segments()) == 1)
    assert [fault] == [r.fault for r in server.requests]
    answer = await call(http, "GET", server.segments_url)
    assert answer.status == 200


async def test_reset_with_rst_is_a_connection_reset(
    server: FakeSegmentsServer, http: aiohttp.ClientSession
) -> None:
    """rst=True resets the TCP connection: the client sees ECONNRESET."""
    server.inject(Fault.reset_before(rst=True))
    with pytest.raises(aiohttp.ClientOSError) as caught:
        await call(http, "POST", server.segments_url, json={"name": "n"})
    assert caught.value.errno == errno.ECONNRESET


async def test_reset_applies_to_get_too(
    server: FakeSegmentsServer, http: aiohttp.ClientSession
) -> None:
    """aiohttp's client retries an idempotent request once after a drop; two resets defeat it."""
    server.inject(Fault.reset_before(), method="GET", times=2)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await call(http, "GET", server.segments_url)
    assert [Fault.reset_before()] * 2 == [r.fault for r in server.requests]


async def test_truncated_body_fault(
    server: FakeSegmentsServer, http: aiohttp.ClientSession
) -> None:
    """truncated_body processes, then sends part of the promised body and closes."""
    server.inject(Fault.truncated_body())
    with pytest.raises(aiohttp.ClientPayloadError):
        await call(http, "POST", server.segments_url, json={"name": "n"})
    assert len(server.segments()) == 1


async def test_non_json_body_fault(server: FakeSegmentsServer, http: aiohttp.ClientSession) -> None:
    """non_json_body answers 200 application/json with a body that is not JSON."""
    server.inject(Fault.non_json_body())
    answer = await call(http, "POST", server.segments_url, json={"name": "n"})
    assert (answer.status, answer.headers["Content-Type"]) == (200, "application/json")
    with pytest.raises(orjson.JSONDecodeError):
        answer.json()
    assert server.segments() == {}


async def test_html_502_fault(server: FakeSegmentsServer, http: aiohttp.ClientSession) -> None:
    """html_502 answers a proxy's HTML Bad Gateway page."""
    server.inject(Fault.html_502())
    answer = await call(http, "GET", server.segments_url)
    assert answer.status == 502
    assert answer.headers["Content-Type"].startswith("text/html")
    assert b"502 Bad Gateway" in answer.body


async def test_times_is_consumed(server: FakeSegmentsServer, http: aiohttp.ClientSession) -> None:
    """A fault with times=N hits the next N matching requests, then stops."""
    rule = server.inject(Fault.status(500), times=2)
    statuses = [(await call(http, "GET", server.segments_url)).status for _ in range(3)]
    assert statuses == [500, 500, 200]
    assert (rule.hits, rule.remaining, rule.active) == (2, 0, False)


async def test_method_and_path_select_requests(
    server: FakeSegmentsServer, http: aiohttp.ClientSession
) -> None:
    """method, a path prefix, or a path pattern limit which requests a fault hits."""
    (segment_id,) = server.add_segments(1)
    server.inject(Fault.status(500), method="post")
    server.inject(Fault.status(501), path=re.compile(r"/segments/[0-9a-f-]{36}$"))
    server.inject(Fault.status(502), path="/v2.3/data/segments")
    get = await call(http, "GET", server.segments_url)
    put = await call(http, "PUT", item_url(server, segment_id), json={"name": "n"})
    post = await call(http, "POST", server.segments_url, json={"name": "n"})
    assert (get.status, put.status, post.status) == (502, 501, 500)


async def test_first_matching_fault_wins_and_cancel(
    server: FakeSegmentsServer, http: aiohttp.ClientSession
) -> None:
    """Faults apply in injection order; a cancelled one no longer applies."""
    first = server.inject(Fault.status(503), times=5)
    server.inject(Fault.status(500), times=5)
    statuses = [(await call(http, "GET", server.segments_url)).status]
    first.cancel()
    statuses.append((await call(http, "GET", server.segments_url)).status)
    server.clear_faults()
    statuses.append((await call(http, "GET", server.segments_url)).status)
    assert statuses == [503, 500, 200]


async def probabilistic_statuses(seed: int) -> list[int]:
    async with FakeSegmentsServer(seed=seed) as server:
        rule = server.inject(Fault.status(500), method="GET", probability=0.5)
        async with aiohttp.ClientSession(headers=auth(server.token)) as http:
            statuses = [(await call(http, "GET", server.segments_url)).status for _ in range(30)]
        assert rule.hits == statuses.count(500)
        return statuses


async def test_probability_is_deterministic_per_seed() -> None:
    """The same seed faults the same requests; another seed faults others."""
    first, again, other = [await probabilistic_statuses(seed) for seed in (7, 7, 8)]
    assert first == again
    assert {200, 500} == set(first)
    assert first != other


def test_inject_validates_its_arguments() -> None:
    """times, probability and fault arguments are checked when injecting."""
    server = FakeSegmentsServer()
    with pytest.raises(ValueError, match="times"):
        server.inject(Fault.html_502(), times=0)
    with pytest.raises(ValueError, match="probability"):
        server.inject(Fault.html_502(), probability=1.5)
    with pytest.raises(ValueError, match="status code"):
        Fault.status(99)
    with pytest.raises(ValueError, match="seconds"):
        Fault.latency(-1)


# Capacity limits


class Gate:
    """Stands in for the latency fault's sleep: holds requests until opened."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.held = 0
        self.full = asyncio.Event()
        self.opened = asyncio.Event()

    async def sleep(self, seconds: float) -> bool:
        self.held += 1
        if self.held == self.expected:
            self.full.set()
        await self.opened.wait()
        return False


async def test_concurrency_limit_counts_requests_held_by_latency(
    server: FakeSegmentsServer, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With 2 requests held in a latency fault, a third is a 429 that creates nothing."""
    limit = server.limit_concurrency(2)
    server.inject(Fault.latency(1), method="POST", times=2)
    get_fault = server.inject(Fault.status(500), method="GET")
    gate = Gate(expected=2)
    monkeypatch.setattr(server, "_sleep", gate.sleep)
    held = [
        asyncio.ensure_future(call(http, "POST", server.segments_url, json={"name": f"held {n}"}))
        for n in range(2)
    ]
    await asyncio.wait_for(gate.full.wait(), timeout=10)
    refused_post = await call(http, "POST", server.segments_url, json={"name": "refused"})
    refused_get = await call(http, "GET", server.segments_url)
    in_flight = limit.in_flight
    gate.opened.set()
    held_statuses = [answer.status for answer in await asyncio.gather(*held)]
    later_get = await call(http, "GET", server.segments_url)

    assert (429, 429) == (refused_post.status, refused_get.status)
    assert "too_many_requests" == refused_post.error_code
    assert "1" == refused_post.headers["Retry-After"]
    assert "application/json" == refused_post.headers["Content-Type"]
    assert [200, 200] == held_statuses
    assert 500 == later_get.status  # the refused GET did not use up the GET fault
    assert 1 == get_fault.hits
    assert ["held 0", "held 1"] == sorted(server.segments().values())
    assert (2, 3, 2, 0) == (in_flight, limit.admitted, limit.rejected, limit.in_flight)
    assert 2 == server.counts.rejected_by_limit
    assert [None, None, limit, limit, None] == [r.rejected_by for r in server.requests]


async def test_concurrency_limit_frees_slots_on_close(
    server: FakeSegmentsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slot held by a request cut short by close() is freed."""
    limit = server.limit_concurrency(1, method="POST")
    server.inject(Fault.latency(30), method="POST")
    async with aiohttp.ClientSession(headers=auth(server.token)) as http:
        pending = asyncio.ensure_future(call(http, "POST", server.segments_url, json={"name": "n"}))
        for _ in range(5000):  # until the request has arrived
            if limit.in_flight:
                break
            await asyncio.sleep(0.001)
        await server.close()
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await pending
    assert (1, 0) == (limit.admitted, limit.in_flight)


async def test_rate_limit_is_a_token_bucket_on_the_given_clock(
    server: FakeSegmentsServer, http: aiohttp.ClientSession
) -> None:
    """2 a second with a burst of 2: the third POST at once is a 429; half a second buys one."""
    now = [100.0]
    limit = server.limit_rate(2, method="POST", clock=lambda: now[0])
    statuses = []
    for _ in range(3):
        statuses.append((await call(http, "POST", server.segments_url, json={"name": "n"})).status)
    statuses.append((await call(http, "GET", server.segments_url)).status)
    now[0] += 0.5
    for _ in range(2):
        statuses.append((await call(http, "POST", server.segments_url, json={"name": "n"})).status)
    limit.cancel()
    statuses.append((await call(http, "POST", server.segments_url, json={"name": "n"})).status)
    assert [200, 200, 429, 200, 200, 429, 200] == statuses
    assert (2.0, 2.0, 3, 2) == (limit.per_second, limit.burst, limit.admitted, limit.rejected)
    assert 4 == len(server.segments())


async def test_rate_limit_burst_and_retry_after(
    server: FakeSegmentsServer, http: aiohttp.ClientSession
) -> None:
    """burst= sets how many pass at once; retry_after=None drops the header.

    The refused request takes nothing from the other limit it matches.
    """
    server.limit_rate(0.5, burst=3, retry_after=None, path="/v2.3/data/segments")
    other = server.limit_concurrency(5)
    answers = [await call(http, "GET", server.segments_url) for _ in range(4)]
    assert [200, 200, 200, 429] == [answer.status for answer in answers]
    assert "Retry-After" not in answers[3].headers
    assert (3, 0) == (other.admitted, other.rejected)
    server.clear_limits()
    assert 200 == (await call(http, "GET", server.segments_url)).status


def test_limits_check_their_arguments() -> None:
    """Bad limits are refused when set."""
    server = FakeSegmentsServer()
    with pytest.raises(ValueError, match="max_in_flight"):
        server.limit_concurrency(0)
    with pytest.raises(TypeError, match="max_in_flight"):
        server.limit_concurrency(True)
    with pytest.raises(ValueError, match="rate"):
        server.limit_rate(0)
    with pytest.raises(ValueError, match="rate"):
        server.limit_rate(float("nan"))
    with pytest.raises(ValueError, match="burst"):
        server.limit_rate(10, burst=0.5)
    with pytest.raises(ValueError, match="retry_after"):
        server.limit_concurrency(1, retry_after=-1)
    with pytest.raises(ValueError, match="line breaks"):
        server.limit_rate(1, retry_after="1\r\nX: y")


def test_token_bucket_refills_up_to_its_burst() -> None:
    """Tokens come at the rate, never above the burst, and a clock going back adds none."""
    now = [0.0]
    bucket = TokenBucket(rate=0.5, burst=1, clock=lambda: now[0])
    taken = [bucket.try_take(), bucket.try_take()]
    now[0] = 1.0
    taken.append(bucket.try_take())  # half a token
    now[0] = 2.0
    taken.append(bucket.try_take())
    now[0] = 1000.0
    assert 1.0 == bucket.tokens
    taken.extend([bucket.try_take(), bucket.try_take()])
    now[0] = 0.0
    assert 0.0 == bucket.tokens
    assert [True, False, False, True, True, False] == taken


# Request log


async def test_requests_are_recorded(
    server: FakeSegmentsServer, http: aiohttp.ClientSession
) -> None:
    """Every request is recorded with its parts, tenant and fault; clear_requests forgets."""
    server.inject(Fault.status(429), method="POST")
    await call(http, "GET", server.segments_url, params={"page": "2"})
    await call(http, "POST", server.segments_url, json={"name": "n"})
    await call(http, "GET", server.segments_url, headers={"Authorization": "Bearer bad"})
    get, post, anonymous = server.requests
    assert (get.method, get.path, get.query, get.body) == (
        "GET",
        "/v2.3/data/segments",
        {"page": "2"},
        b"",
    )
    assert get.headers["authorization"] == f"Bearer {server.token}"
    assert (get.token, get.fault) == (server.token, None)
    assert (post.method, post.json(), post.fault) == ("POST", {"name": "n"}, Fault.status(429))
    assert anonymous.token is None
    server.clear_requests()
    assert server.requests == []


async def test_request_log_is_a_ring_buffer_with_counters() -> None:
    """Only the last record_requests requests are kept; the counters count them all."""
    async with FakeSegmentsServer(record_requests=3) as server:
        server.inject(Fault.status(503), method="POST")
        async with aiohttp.ClientSession(headers=auth(server.token)) as http:
            for page in range(1, 5):
                await call(http, "GET", server.segments_url, params={"page": str(page)})
            await call(http, "POST", server.segments_url, json={"name": "n"})
        kept = server.requests
        server.clear_requests()
        counts = server.counts
    assert 3 == server.record_requests
    assert [("GET", {"page": "3"}), ("GET", {"page": "4"}), ("POST", {})] == [
        (r.method, r.query) for r in kept
    ]
    assert [] == server.requests
    assert (5, 2) == (counts.total, counts.unrecorded)
    assert {"GET": 4, "POST": 1} == counts.by_method
    assert {200: 4, 503: 1} == counts.by_status
    assert {"status": 1} == counts.by_fault


async def test_record_requests_0_keeps_none_but_counts() -> None:
    """record_requests=0 records nothing; resets count as faults, not as statuses."""
    async with FakeSegmentsServer(record_requests=0) as server:
        server.inject(Fault.reset_before())
        async with aiohttp.ClientSession(headers=auth(server.token)) as http:
            with pytest.raises(aiohttp.ServerDisconnectedError):
                await call(http, "POST", server.segments_url, json={"name": "n"})
            await call(http, "DELETE", item_url(server, str(uuid.UUID(int=7))))
        counts = server.counts
    assert [] == server.requests
    assert (2, 2) == (counts.total, counts.unrecorded)
    assert {404: 1} == counts.by_status
    assert {"reset_before": 1} == counts.by_fault


@pytest.mark.parametrize(
    ("option", "value"),
    [("port", 99999), ("port", -1), ("port", "80"), ("max_per_page", 0), ("max_per_page", 1.5)],
)
def test_constructor_checks_port_and_max_per_page(option: str, value: Any) -> None:
    """A port outside 0..65535 or a max_per_page below 1 is a ValueError naming it."""
    with pytest.raises(ValueError, match=option):
        FakeSegmentsServer(**{option: value})


def test_record_requests_is_checked() -> None:
    """record_requests is an int >= 0; the default keeps 1000."""
    assert 1000 == FakeSegmentsServer().record_requests
    with pytest.raises(ValueError, match="record_requests"):
        FakeSegmentsServer(record_requests=-1)
    with pytest.raises(TypeError, match="record_requests"):
        FakeSegmentsServer(record_requests=True)


# Standalone


def standalone(*args: str) -> Any:
    """Start `python -m segments_async.testing ARGS` with piped stdout and stderr."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), *sys.path])}
    return asyncio.create_subprocess_exec(
        sys.executable, "-m", "segments_async.testing", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip


async def serve_and_count(args: list[str]) -> tuple[int, int, str]:
    """Run the standalone server, count its segments, SIGTERM it: (total, status, stderr)."""
    process = await standalone(*args)
    try:
        assert process.stdout is not None
        lines = [
            (await asyncio.wait_for(process.stdout.readline(), timeout=10)).decode().strip()
            for _ in range(2)
        ]
        settings = dict(line.split("=", 1) for line in lines)
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", settings["SEGMENTS_BASE_URL"])
        async with aiohttp.ClientSession(headers=auth(settings["SEGMENTS_API_TOKEN"])) as http:
            answer = await call(http, "GET", settings["SEGMENTS_BASE_URL"] + "/v2.3/data/segments")
        total: int = answer.json()["result"]["total"]
    finally:
        if process.returncode is None:
            process.terminate()
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=10)
    assert process.returncode is not None
    return total, process.returncode, stderr.decode()


async def test_standalone_server() -> None:
    """The standalone server serves --segments N (or the deprecated --seed N) until SIGTERM."""
    current, deprecated = await asyncio.gather(
        serve_and_count(["--port", "0", "--segments", "5"]),
        serve_and_count(["--seed", "2", "--random-seed", "9"]),
    )
    assert (5, 0, "") == current
    total, returncode, stderr = deprecated
    assert (2, 0) == (total, returncode)
    assert [
        "python -m segments_async.testing: warning: --seed N is deprecated, use --segments N"
    ] == (stderr.splitlines())


async def test_standalone_errors_are_one_line_and_exit_2() -> None:
    """Bad options, and addresses it cannot listen on, are one line on stderr and status 2."""
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    cases = {
        "--max-per-page": ["--max-per-page", "0"],
        "--port": ["--port", "99999"],
        "192.0.2.1 port 0: Cannot assign requested address": ["--host", "192.0.2.1"],
        f"port {busy.getsockname()[1]}: Address already in use": [
            "--port",
            str(busy.getsockname()[1]),
        ],
    }
    try:
        processes = [await standalone(*args) for args in cases.values()]
        outcomes = [
            await asyncio.wait_for(process.communicate(), timeout=20) for process in processes
        ]
    finally:
        busy.close()
    results = []
    for process, (stdout, stderr) in zip(processes, outcomes, strict=True):
        lines = stderr.decode().splitlines()
        results.append((process.returncode, stdout, len(lines), lines[-1].split(": ")[1]))
    assert [(2, b"", 1, "error")] * len(cases) == results
    for mention, (_, stderr) in zip(cases, outcomes, strict=True):
        assert mention in stderr.decode()


@pytest.mark.parametrize(
    ("args", "mention"),
    [
        (["--segments", "-1"], "argument --segments: must be >= 0, got -1"),
        (["--token", "a b"], "argument --token: token must be"),
        (["--seed", "1", "--segments", "1"], "--seed is the deprecated spelling of --segments"),
        (["--host", ""], "argument --host: must not be empty"),
        (["--rate-limit", "0"], "argument --rate-limit: must be a number above 0"),
        (["--segments", "1", "--seg", "2"], "unrecognized arguments: --seg"),
        (
            ["--fault", "503,times=0"],
            "argument --fault: times must be >= 1, got 0 in '503,times=0'",
        ),
        (
            ["--fault", "latency=1,retry-after=2"],
            "argument --fault: retry-after goes with a status",
        ),
    ],
)
def test_standalone_usage_errors_in_process(
    args: list[str], mention: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Usage errors are one line naming the option, and exit 2, before anything is served."""
    with pytest.raises(SystemExit) as caught:
        standalone_main(args)
    (line,) = capsys.readouterr().err.splitlines()
    assert 2 == caught.value.code
    assert line.startswith(f"python -m segments_async.testing: error: {mention}")
