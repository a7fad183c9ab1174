"""The spec's DELETE answer, a 204 that carries a body.

aiohttp's C parser fails the call that receives it ("Bad status line"), and no public
aiohttp setting reads it (see ``_transport._map_client_error``). So the behaviour kept is:
one immediate retry, whose 404 reads as done; without retries, an error that says the
outcome is unknown; and the pool stays usable either way.
"""

from __future__ import annotations

import pytest

from segments_async import APIConnectionError, RetryPolicy, SegmentsClient
from segments_async.testing import FakeSegmentsServer

from ..leaks import acquired_connections
from ..rawserver import RawRequest, RawServer, json_response, response
from .support import FAST_RETRY, SEGMENT_ID, envelope, make_client, not_found

SPEC_DELETE = response(204, b'{"success":true,"result":[]}', reason="No Content")
EMPTY_PAGE = envelope(
    {"currentPage": 1, "perPage": 20, "lastPage": 1, "total": 0, "items": [], "filters": []}
)


def deleting_server() -> RawServer:
    deleted: set[str] = set()

    async def handler(request: RawRequest) -> bytes:
        if request.method != "DELETE":
            return json_response(200, EMPTY_PAGE)
        if request.target in deleted:
            return not_found()
        deleted.add(request.target)
        return SPEC_DELETE

    return RawServer(handler)


async def test_without_retries_the_outcome_is_unknown():
    """max_retries=0: APIConnectionError, outcome_unknown, and a message that says so."""
    server = deleting_server()
    async with server, make_client(server.url, retry=RetryPolicy(max_retries=0)) as client:
        with pytest.raises(APIConnectionError) as info:
            await client.segments.delete(SEGMENT_ID)
        assert 0 == (await client.segments.list()).total  # the pool is still usable

    assert info.value.outcome_unknown is True
    assert "may have acted" in info.value.message
    assert ["DELETE", "GET"] == [r.method for r in server.requests]


async def test_with_retries_the_delete_succeeds():
    """The default policy: the immediate retry's 404 reads as done."""
    async with deleting_server() as server, make_client(server.url) as client:
        assert await client.segments.delete(SEGMENT_ID) is None

    assert ["DELETE", "DELETE"] == [r.method for r in server.requests]


async def test_a_get_answered_that_way_is_not_said_to_have_acted():
    """A GET garbled the same way: retried, and never 'may have acted'."""

    async def handler(request: RawRequest) -> bytes:
        return SPEC_DELETE

    async with RawServer(handler) as server, make_client(server.url) as client:
        with pytest.raises(APIConnectionError) as info:
            await client.segments.list()

    assert "may have acted" not in info.value.message
    assert info.value.outcome_unknown is False
    assert 3 == len(server.requests)


async def test_through_the_fake_server_deletes_and_keeps_the_pool_usable():
    """The fake's delete_body=True: every delete returns None, and the pool stays usable."""
    async with FakeSegmentsServer(seed=4, delete_body=True) as server:
        server.add_segments(2)
        async with SegmentsClient(server.base_url, server.token, retry=FAST_RETRY) as client:
            segments = [await client.segments.create(f"doomed {i}") for i in range(3)]
            for done, segment in enumerate(segments, start=1):
                assert await client.segments.delete(segment.id) is None
                assert segment.id not in server.segments()
                page = await client.segments.list()
                assert 2 + len(segments) - done == page.total
                assert {s.id for s in page.items} == server.segments().keys()
            assert 2 == len([s async for s in client.segments.iterate(per_page=1, concurrency=2)])
            assert 0 == acquired_connections(client)
        assert 2 == len(server.segments())
