"""The adaptive limit over real sockets: what only the client's own pool can tell it.

A request that waits for a new connection is counted in flight by the limit, but it is not
at the server yet. In slow start, when each new level needs new connections, a handful
wait so, and a refusal counted with them set the ceiling above what the server refused
(44-52 where a server of 40 slots refused its 41st): the climb back was refused under it
again, a second ``Retry-After``. The owned pool tells the limit how many requests held a
connection when the refused one got its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import pytest

from segments_async import RateLimitError, RetryPolicy, SegmentsClient

from ..rawserver import RawRequest, RawServer, json_response, response
from .support import envelope, make_client

PAGE = {"currentPage": 1, "perPage": 20, "lastPage": 1, "total": 0, "items": [], "filters": []}


class Pages:
    """Holds page 1 and page 2 until each is released; refuses page 9 at once."""

    def __init__(self) -> None:
        self.release = {1: asyncio.Event(), 2: asyncio.Event()}
        self.arrived: list[int] = []
        self._arrival = asyncio.Event()

    async def __call__(self, request: RawRequest) -> bytes:
        number = int(request.target.split("page=")[1].split("&")[0])
        self.arrived.append(number)
        self._arrival.set()
        if number == 9:
            return response(429, b"", headers={"Retry-After": "1"})
        if number in self.release:
            await self.release[number].wait()
        return json_response(200, envelope(PAGE))

    async def arrivals(self, count: int) -> None:
        while len(self.arrived) < count:
            self._arrival.clear()
            await self._arrival.wait()


class HeldBack:
    """New connections being made (``begun``) wait for ``made``."""

    def __init__(self) -> None:
        self.begun = asyncio.Event()
        self.made = asyncio.Event()


@contextlib.contextmanager
def connections_held_back(loop: asyncio.AbstractEventLoop) -> Iterator[HeldBack]:
    """New connections wait until told (a pooled one is used at once)."""
    held = HeldBack()
    original = loop.create_connection

    async def create_connection(*args: object, **kwargs: object) -> object:
        held.begun.set()
        await held.made.wait()
        return await original(*args, **kwargs)  # type: ignore[arg-type]

    loop.create_connection = create_connection  # type: ignore[method-assign,assignment]
    try:
        yield held
    finally:
        del loop.create_connection  # type: ignore[method-assign]


def page(client: SegmentsClient, number: int) -> asyncio.Task[object]:
    """An ``"auto"`` request of page ``number``, as ``iterate(concurrency="auto")`` sends."""
    return asyncio.create_task(client.segments._list(f"page={number}&per_page=20", adaptive=True))


async def test_a_request_still_waiting_for_its_connection_is_not_at_the_server():
    """Pages 1 and 2 held at the server; page 3 waiting for a new connection; page 1
    answered, and page 9 sent on its connection and refused. The limit counted 3 in flight
    when page 9 started (2, 3 and 9), the server 2 (page 3 had not come): the ceiling is 2.
    """
    pages = Pages()
    loop = asyncio.get_running_loop()
    async with (
        asyncio.timeout(10),  # a failure, not a hang, if a step never comes
        RawServer(pages) as server,
        make_client(server.url, retry=RetryPolicy(max_retries=0)) as client,
    ):
        adaptive = client._shared.flow.adaptive
        held = [page(client, 1), page(client, 2)]
        await pages.arrivals(2)
        with connections_held_back(loop) as connections:
            waiting = page(client, 3)
            await connections.begun.wait()
            pages.release[1].set()
            await held[0]
            with pytest.raises(RateLimitError):
                await page(client, 9)
            ceiling = adaptive.ceiling
            connections.made.set()
            pages.release[2].set()
            await asyncio.gather(held[1], waiting)

    assert [1, 2, 9, 3] == pages.arrived
    assert 2 == ceiling
