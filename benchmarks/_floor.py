"""The floor: raw aiohttp + orjson + hand-built frozen attrs objects, no library.

Same transport and the same output types as segments_async, with nothing between
them: what a careful hand-written client costs. The in-order sliding window here is
also what the other raw contenders use for "16 in flight".
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeVar

import aiohttp
import attrs
import orjson

from ._common import HEADERS, LIST_PATH, PER_PAGE

T = TypeVar("T")


@attrs.frozen
class FloorSegment:
    id: str
    name: str


@attrs.frozen
class FloorPage:
    current_page: int
    per_page: int
    last_page: int
    total: int
    items: list[FloorSegment]
    filters: list[Any]


class FloorError(Exception):
    """The floor met an answer it does not expect (the benchmark server is wrong)."""


def decode_page(body: bytes) -> FloorPage:
    envelope = orjson.loads(body)
    if envelope.get("success") is not True:
        raise FloorError("success is not true")
    result = envelope["result"]
    return FloorPage(
        current_page=result["currentPage"],
        per_page=result["perPage"],
        last_page=result["lastPage"],
        total=result["total"],
        items=[FloorSegment(item["id"], item["name"]) for item in result["items"]],
        filters=result["filters"],
    )


def decode_segment(body: bytes) -> FloorSegment:
    envelope = orjson.loads(body)
    if envelope.get("success") is not True:
        raise FloorError("success is not true")
    result = envelope["result"]
    return FloorSegment(result["id"], result["name"])


async def windowed(
    fetch: Callable[[int], Awaitable[T]], pages: Iterable[int], concurrency: int
) -> AsyncIterator[T]:
    """Yield ``fetch(page)`` in page order, keeping ``concurrency`` requests in flight."""
    remaining = iter(pages)
    pending: deque[asyncio.Future[T]] = deque()
    try:
        for page in remaining:
            pending.append(asyncio.ensure_future(fetch(page)))
            if len(pending) >= concurrency:
                break
        while pending:
            result = await pending.popleft()
            following = next(remaining, None)
            if following is not None:
                pending.append(asyncio.ensure_future(fetch(following)))
            yield result
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


def new_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100), headers=HEADERS)


async def iter_pages(
    session: aiohttp.ClientSession, base_url: str, concurrency: int
) -> AsyncIterator[FloorPage]:
    """Page 1, then pages 2..last one by one or through the window."""
    url = base_url + LIST_PATH

    async def get(page: int) -> FloorPage:
        async with session.get(f"{url}?page={page}&per_page={PER_PAGE}") as response:
            if response.status != 200:
                raise FloorError(f"status {response.status}")
            body = await response.read()
        return decode_page(body)

    first = await get(1)
    yield first
    rest = range(2, first.last_page + 1)
    if concurrency == 1:
        for page in rest:
            yield await get(page)
    else:
        async for later in windowed(get, rest, concurrency):
            yield later
