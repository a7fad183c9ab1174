"""Item 3 over sockets: a server that lies in its page metadata, against the real iterator.

Each lie used to pass silently (items lost or repeated) or to make ``iterate()`` run on;
now the iteration ends where the data ends, or raises ``APIResponseValidationError``
naming the field, and leaves no task behind. The server stops answering after 60
requests, so that an iteration which would run on fails the test instead of hanging it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from segments_async import APIResponseValidationError

from ..leaks import client_tasks, settle
from ..rawserver import RawRequest, RawServer, json_response
from .support import envelope, make_client

Lie = Callable[[int, int, dict[str, Any]], dict[str, Any]]
LIMIT = 60


def truthful(number: int, per_page: int, total: int) -> dict[str, Any]:
    first = (number - 1) * per_page
    items = [
        {"id": f"00000000-0000-4000-8000-{i:012d}", "name": f"s{i}"}
        for i in range(first, min(total, first + per_page))
    ]
    return {
        "currentPage": number,
        "perPage": per_page,
        "lastPage": max(1, -(-total // per_page)),
        "total": total,
        "items": items,
        "filters": [],
    }


def lying_server(total: int, lie: Lie) -> RawServer:
    async def handler(request: RawRequest) -> bytes:
        if len(server.requests) > LIMIT:
            return json_response(400, {"success": False, "message": "too many requests"})
        query = dict(part.split("=") for part in request.target.split("?")[1].split("&"))
        number, per_page = int(query["page"]), int(query["per_page"])
        page = lie(number, per_page, truthful(number, per_page, total))
        return json_response(200, envelope(page))

    server = RawServer(handler)
    return server


async def iterate(server: RawServer, concurrency: int) -> tuple[list[str], BaseException | None]:
    names: list[str] = []
    async with make_client(server.url) as client:
        try:
            async for segment in client.segments.iterate(per_page=10, concurrency=concurrency):
                names.append(segment.name)
        except APIResponseValidationError as error:
            return names, error
    return names, None


CONCURRENCY = pytest.mark.parametrize("concurrency", [1, 4])


@CONCURRENCY
async def test_a_huge_last_page_does_not_run_on(concurrency):
    """lastPage=10**9 over 25 segments: 25 names, and no page beyond the window asked for."""
    async with lying_server(25, lambda n, p, page: {**page, "lastPage": 10**9}) as server:
        names, error = await iterate(server, concurrency)
        await settle()

    assert error is None
    assert [f"s{i}" for i in range(25)] == names
    assert len(server.requests) <= 3 + concurrency
    assert set() == client_tasks()


@CONCURRENCY
async def test_a_server_that_ignores_page(concurrency):
    """Page 1 for every page: refused at page 2, after yielding page 1 once."""
    async with lying_server(35, lambda n, p, page: truthful(1, p, 35)) as server:
        names, error = await iterate(server, concurrency)
        await settle()

    assert isinstance(error, APIResponseValidationError)
    assert "result.currentPage" == error.field
    assert "page=2&" in error.url
    assert [f"s{i}" for i in range(10)] == names
    assert set() == client_tasks()


@CONCURRENCY
async def test_a_server_that_ignores_page_and_echoes_it(concurrency):
    """Page 1's items under every number: refused as a repeat, no duplicate yielded."""
    lie: Lie = lambda n, p, page: {**truthful(1, p, 35), "currentPage": n}  # noqa: E731
    async with lying_server(35, lie) as server:
        names, error = await iterate(server, concurrency)

    assert isinstance(error, APIResponseValidationError)
    assert "repeats" in error.message
    assert len(names) == len(set(names)) == 10


@CONCURRENCY
async def test_a_short_page_in_the_middle(concurrency):
    """Page 2 cut to 7 of its 10 items: refused, so no item is silently lost."""

    def lie(number: int, per_page: int, page: dict[str, Any]) -> dict[str, Any]:
        return {**page, "items": page["items"][:7]} if number == 2 else page

    async with lying_server(35, lie) as server:
        names, error = await iterate(server, concurrency)

    assert isinstance(error, APIResponseValidationError)
    assert "result.items" == error.field
    assert 10 == len(names)


@CONCURRENCY
async def test_a_per_page_that_changes_mid_way(concurrency):
    """perPage 10, then pages of 5 numbered as pages of 5: refused at the change."""

    def lie(number: int, per_page: int, page: dict[str, Any]) -> dict[str, Any]:
        return truthful(number, 5, 35) if number >= 3 else page

    async with lying_server(35, lie) as server:
        names, error = await iterate(server, concurrency)

    assert isinstance(error, APIResponseValidationError)
    assert "result.perPage" == error.field
    assert "page=3&" in error.url
    assert 20 == len(names)


async def test_a_total_that_changes_is_logged_once(caplog):
    """Segments created meanwhile: the iteration goes on, with one WARNING."""
    caplog.set_level(logging.WARNING, logger="segments_async")

    def lie(number: int, per_page: int, page: dict[str, Any]) -> dict[str, Any]:
        return truthful(number, per_page, 35 + number - 1)  # one more on every page

    async with lying_server(35, lie) as server:
        names, error = await iterate(server, 4)

    assert error is None
    assert 35 <= len(names) <= 40
    warnings = [r.getMessage() for r in caplog.records if "total changed" in r.getMessage()]
    assert 1 == len(warnings)
