"""``default_headers`` over real sockets: on every request, never the reserved ones, and
merged by ``with_options``."""

from __future__ import annotations

import pytest

from segments_async import SegmentsClient
from segments_async.testing import FakeSegmentsServer, Fault

from .support import client_for

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TENANT = {"X-Tenant": "acme", "traceparent": TRACEPARENT}


@pytest.fixture
async def server():
    async with FakeSegmentsServer(seed=16) as server:
        server.add_segments(30)
        yield server


async def test_sent_on_every_request_retries_and_pages_included(server):
    """Every method, every retry and every page carries the extra headers."""
    server.inject(Fault.status(503), method="GET")
    async with client_for(server, default_headers=TENANT) as client:
        segment = await client.segments.create("EMEA")
        await client.segments.update(segment.id, "DACH")
        await client.segments.delete(segment.id)
        assert 30 == len([s async for s in client.segments.iterate(per_page=10, concurrency=3)])

    assert len(server.requests) == 3 + 1 + 3
    for request in server.requests:
        assert "acme" == request.headers["x-tenant"]
        assert TENANT["traceparent"] == request.headers["Traceparent"]
        assert [f"Bearer {server.token}"] == request.headers.getall("Authorization")
        assert ["application/json"] == request.headers.getall("Accept")


async def test_each_header_is_sent_once_as_given(server):
    """A header is sent once, with the name and value given; no other header changes."""
    async with client_for(server, default_headers={"X-Trace": "t-1"}) as client:
        await client.segments.create("EMEA")

    (request,) = server.requests
    assert ["t-1"] == request.headers.getall("X-Trace")
    assert ["application/json"] == request.headers.getall("Content-Type")
    assert 1 == len(request.headers.getall("User-Agent"))


@pytest.mark.parametrize("name", ["User-Agent", "user-agent", "USER-AGENT"])
async def test_the_user_agent_can_be_replaced_in_any_case(server, name):
    """The library's User-Agent is replaced, not joined by a second one."""
    async with client_for(server, default_headers={name: "reports/2.1"}) as client:
        await client.segments.list()

    (request,) = server.requests
    assert ["reports/2.1"] == request.headers.getall("User-Agent")


async def test_the_same_name_twice_in_other_cases_is_refused():
    """{"X-Tenant": ..., "x-tenant": ...} would send two values: a ValueError."""
    with pytest.raises(ValueError, match="x-tenant"):
        SegmentsClient(
            "https://api.example.com", "t", default_headers={"X-Tenant": "a", "x-tenant": "b"}
        )


async def test_with_options_merges_over_the_parents_headers(server):
    """A view's headers are merged over its parent's; a name in any case is replaced."""
    async with client_for(server, default_headers=TENANT) as client:
        view = client.with_options(default_headers={"x-tenant": "globex", "X-Debug": "1"})
        await view.segments.list()
        await client.segments.list()
        cleared = view.with_options(default_headers=None)
        await cleared.segments.list()

    assert {"X-Tenant": "acme", "traceparent": TENANT["traceparent"]} == client.default_headers
    assert {
        "x-tenant": "globex",
        "X-Debug": "1",
        "traceparent": TENANT["traceparent"],
    } == view.default_headers
    assert {} == cleared.default_headers
    on_view, on_client, on_cleared = (r.headers for r in server.requests)
    assert (["globex"], ["1"]) == (on_view.getall("X-Tenant"), on_view.getall("x-debug"))
    assert (["acme"], None) == (on_client.getall("X-Tenant"), on_client.get("X-Debug"))
    assert (None, None) == (on_cleared.get("X-Tenant"), on_cleared.get("traceparent"))


async def test_the_property_is_a_copy(server):
    """Changing the dict default_headers returns changes nothing that is sent."""
    async with client_for(server, default_headers={"X-Tenant": "acme"}) as client:
        client.default_headers["X-Tenant"] = "evil"
        await client.segments.list()

    assert "acme" == server.requests[0].headers["X-Tenant"]


RESERVED = ["Authorization", "Content-Type", "Accept", "Host"]


@pytest.mark.parametrize(
    "name", [*RESERVED, *(n.lower() for n in RESERVED), *(n.upper() for n in RESERVED)]
)
async def test_reserved_names_are_refused_in_any_case(server, name):
    """Authorization, Content-Type, Accept and Host cannot be set, on a client or a view."""
    with pytest.raises(ValueError, match="cannot set"):
        client_for(server, default_headers={name: "x"})
    async with client_for(server) as client:
        with pytest.raises(ValueError, match="cannot set"):
            client.with_options(default_headers={name: "x"})
        assert {} == client.default_headers
    assert [] == server.requests


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Tenant": "acme\r\nX-Admin: 1"},
        {"X-Tenant": "acme\n"},
        {"X-Tenant": "ac\rme"},
        {"X-Tenant": "ac\x00me"},
        {"X-Tenant\r\nX-Admin": "1"},
        {"X-Tenant\n": "1"},
        {"X-Te\x00nant": "1"},
        {"X Tenant": "1"},
        {"": "1"},
        {"X-Tenant": "caf\u00e9"},
    ],
    ids=repr,
)
async def test_line_breaks_and_control_characters_are_refused(server, headers):
    """CR, LF or NUL in a name or a value (and other non-tokens) is a ValueError."""
    with pytest.raises(ValueError, match="default_headers"):
        client_for(server, default_headers=headers)
    async with client_for(server) as client:
        with pytest.raises(ValueError, match="default_headers"):
            client.with_options(default_headers=headers)
    assert [] == server.requests


@pytest.mark.parametrize(
    "headers",
    [{"X-Count": 1}, {b"X-Tenant": "acme"}, {"X-Tenant": None}, [("X-Tenant", "acme")], "X: 1"],
    ids=repr,
)
async def test_wrong_types_are_refused(server, headers):
    """Names and values must be str, in a mapping: a TypeError otherwise."""
    with pytest.raises(TypeError, match="default_headers"):
        client_for(server, default_headers=headers)
    async with client_for(server) as client:
        with pytest.raises(TypeError, match="default_headers"):
            client.with_options(default_headers=headers)
    assert [] == server.requests
