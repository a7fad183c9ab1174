"""``rate_limit`` holds at the server, whatever queues in front of it.

A request takes its rate slot when it is about to be written: after the wait for a pooled
connection and for the adaptive limit. Slots taken earlier would pile up while requests
queue and then go out together. The server here stalls its first answers for two seconds,
so that requests queue at the pool (fixed concurrency, a small pool) or at the adaptive
limit (``"auto"``), and records when each request arrives.
"""

from __future__ import annotations

import asyncio

import pytest

from segments_async import APITimeoutError

from ..rawserver import RawRequest, RawServer, json_response
from .support import envelope, make_client

RATE = 20.0
#: What ``RateLimit`` lets start at once after a pause: a tenth of a second's worth.
BURST = 2
STALL = 2.0


class Stalling:
    """Holds every request that arrives in the first ``STALL`` seconds, then answers all."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self._release: asyncio.Event | None = None

    async def __call__(self, request: RawRequest) -> bytes:
        loop = asyncio.get_running_loop()
        self.arrivals.append(loop.time())
        if self._release is None:
            self._release = asyncio.Event()
            loop.call_later(STALL, self._release.set)
        await self._release.wait()
        name = request.body.decode().split('"')[3]
        return json_response(
            200, envelope({"id": "7f2d6e6d-a4ad-4b58-abfe-bd8b918ebec2", "name": name})
        )


def most_in_any(arrivals: list[float], seconds: float) -> int:
    """The most arrivals in any window of ``seconds`` (each starting at an arrival)."""
    times = sorted(arrivals)
    most = end = 0
    for start, at in enumerate(times):
        while end < len(times) and times[end] < at + seconds:
            end += 1
        most = max(most, end - start)
    return most


@pytest.mark.parametrize(
    ("concurrency", "max_connections"),
    [(64, 8), ("auto", 100)],
    ids=["fixed, queued at the pool", "auto, queued at the adaptive limit"],
)
async def test_no_second_sees_more_than_the_rate_and_its_burst(concurrency, max_connections):
    """70 creates at rate_limit=20 behind a 2 s stall: at most 20 + 2 start in any second."""
    server_handler = Stalling()
    names = [f"n{i}" for i in range(70)]
    async with (
        RawServer(server_handler) as server,
        make_client(server.url, rate_limit=RATE, max_connections=max_connections) as client,
    ):
        results = [
            result async for result in client.segments.create_many(names, concurrency=concurrency)
        ]

    assert all(result.ok for result in results)
    assert 70 == len(server_handler.arrivals)
    # Arrivals are stamped by the server a scheduling hiccup after they were written: one
    # request of slack for that, not the 30 that piled-up slots sent at once.
    assert most_in_any(server_handler.arrivals, 1.0) <= RATE + BURST + 1
    assert most_in_any(server_handler.arrivals, 0.010) <= BURST + 1


async def answer_page(request: RawRequest) -> bytes:
    return json_response(
        200,
        envelope(
            {"currentPage": 1, "perPage": 20, "lastPage": 1, "total": 0, "items": [], "filters": []}
        ),
    )


async def test_a_slot_not_free_before_the_deadline_sends_nothing_and_frees_the_connection():
    """Out of time waiting for a slot while holding the only connection: APITimeoutError,
    nothing sent, and the connection is given back."""
    async with (
        RawServer(answer_page) as server,
        make_client(server.url, rate_limit=1, max_connections=1) as client,
    ):
        await client.segments.list()  # the one slot of this second
        with pytest.raises(APITimeoutError) as caught:
            await client.with_options(deadline=0.1).segments.list()

        assert 0 == client._shared.transport._gate.in_use
    assert 1 == len(server.requests)
    assert caught.value.outcome_unknown is False
    assert (
        "no request slot came free before the call's deadline (rate_limit=1/s); nothing was sent"
        == caught.value.message
    )


async def test_a_caller_cancelled_waiting_for_a_slot_takes_neither_slot_nor_connection():
    """Cancelled while waiting for its slot: the connection goes back, the slot was never
    taken (aiolimiter's waiters take capacity only when they get it)."""
    async with (
        RawServer(answer_page) as server,
        make_client(server.url, rate_limit=1, max_connections=1) as client,
    ):
        await client.segments.list()
        transport = client._shared.transport
        assert transport.rate is not None
        level = transport.rate._limiter._level
        waiting = asyncio.create_task(client.segments.list())
        for _ in range(5):
            await asyncio.sleep(0)
        assert 1 == transport._gate.in_use  # it holds the connection, waiting
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting

        assert 0 == transport._gate.in_use
        assert transport.rate._limiter._level <= level
    assert 1 == len(server.requests)
