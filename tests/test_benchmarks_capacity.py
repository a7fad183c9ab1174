"""The hidden-capacity benchmark server: its admission logic (pure) and its wire (a process)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from benchmarks._admission import Admission, Decision, TokenBucket
from benchmarks._capacity_server import CapacityServer, serve_capacity

LIST_URL = "/v2.3/data/segments?page=1&per_page=100"

# ------------------------------------------------------------------------ token bucket


def test_bucket_starts_full_and_refuses_past_its_burst() -> None:
    """A new bucket admits `burst` requests at once, then none at the same instant."""
    bucket = TokenBucket(rate=200.0, burst=3.0, now=10.0)

    taken = [bucket.take(10.0) for _ in range(4)]

    assert [True, True, True, False] == taken


def test_bucket_refills_at_its_rate() -> None:
    """After 50 ms at 200/s, ten more requests are admitted and the eleventh is not."""
    bucket = TokenBucket(rate=200.0, burst=20.0, now=0.0)
    for _ in range(20):
        assert bucket.take(0.0)

    taken = [bucket.take(0.05) for _ in range(11)]

    assert 10 == sum(taken)
    assert not taken[-1]


def test_bucket_never_holds_more_than_its_burst() -> None:
    """A long idle time refills the bucket to its burst, not beyond."""
    bucket = TokenBucket(rate=200.0, burst=5.0, now=0.0)
    bucket.take(0.0)

    taken = [bucket.take(3600.0) for _ in range(6)]

    assert 5 == sum(taken)


def test_bucket_ignores_a_clock_stepping_back() -> None:
    """An earlier `now` neither adds tokens nor takes them away."""
    bucket = TokenBucket(rate=100.0, burst=2.0, now=5.0)
    bucket.take(5.0)
    bucket.take(5.0)

    assert not bucket.take(4.0)
    # 15 ms after the last real time: 1.5 tokens, so one request; had the step back
    # moved the bucket's clock, a whole second would have refilled it.
    assert [True, False] == [bucket.take(5.015), bucket.take(5.015)]


def test_bucket_refill_restores_the_burst() -> None:
    """`refill` fills the bucket at once."""
    bucket = TokenBucket(rate=1.0, burst=2.0, now=0.0)
    bucket.take(0.0)
    bucket.take(0.0)

    bucket.refill(0.0)

    assert 2.0 == bucket.tokens


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 5.0), (-1.0, 5.0), (10.0, 0.5)])
def test_bucket_refuses_a_rate_or_burst_that_admits_nothing(rate: float, burst: float) -> None:
    """A rate <= 0 or a burst below one request is a ValueError."""
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(rate=rate, burst=burst, now=0.0)


# --------------------------------------------------------------------------- admission


def test_queue_mode_queues_past_capacity_and_counts_them_outstanding() -> None:
    """With two slots, the third and fourth requests wait and count as outstanding."""
    admission: Admission[str] = Admission("queue", capacity=2)

    decisions = [admission.arrive(name, 0.0) for name in "abcd"]

    assert [Decision.START, Decision.START, Decision.QUEUE, Decision.QUEUE] == decisions
    assert 2 == admission.in_service
    assert 2 == admission.queued
    assert 4 == admission.max_outstanding
    assert 0 == admission.rejected


def test_queue_mode_hands_freed_slots_out_in_arrival_order() -> None:
    """Each finish passes its slot to the longest-waiting request, then frees it."""
    admission: Admission[str] = Admission("queue", capacity=1)
    for name in "abc":
        admission.arrive(name, 0.0)

    following = [admission.finish() for _ in range(3)]

    assert ["b", "c", None] == following
    assert 0 == admission.in_service
    assert 3 == admission.served


def test_reject_mode_refuses_past_capacity_without_holding_them() -> None:
    """A request beyond the slots is rejected and never counts as outstanding."""
    admission: Admission[str] = Admission("reject", capacity=2)

    decisions = [admission.arrive(name, 0.0) for name in "abc"]

    assert [Decision.START, Decision.START, Decision.REJECT] == decisions
    assert 1 == admission.rejected
    assert 3 == admission.received
    assert 2 == admission.max_outstanding


def test_reject_mode_admits_again_once_a_slot_frees() -> None:
    """After a finish, the next arrival starts."""
    admission: Admission[str] = Admission("reject", capacity=1)
    admission.arrive("a", 0.0)
    assert Decision.REJECT == admission.arrive("b", 0.0)

    assert None is admission.finish()

    assert Decision.START == admission.arrive("c", 0.0)


def test_quota_mode_admits_by_the_bucket_not_by_slots() -> None:
    """Under a quota, the burst starts at once whatever the capacity; the next is refused."""
    admission: Admission[str] = Admission("quota", capacity=1, rate=10.0, burst=3.0, now=0.0)

    decisions = [admission.arrive(name, 0.0) for name in "abcd"]

    assert [Decision.START] * 3 + [Decision.REJECT] == decisions
    assert 3 == admission.in_service
    assert Decision.START == admission.arrive("e", 0.1)  # 100 ms at 10/s: one token


def test_abandoned_request_leaves_the_queue_and_gets_no_slot() -> None:
    """A queued request whose client left is dropped; the slot goes to the next one."""
    admission: Admission[str] = Admission("queue", capacity=1)
    for name in "abc":
        admission.arrive(name, 0.0)

    assert admission.abandon("b")
    assert not admission.abandon("b")
    assert not admission.abandon("a")  # in service, not queued

    assert "c" == admission.finish()
    assert 1 == admission.outstanding


def test_reset_zeroes_counters_and_restarts_the_peak_from_what_is_held() -> None:
    """After a reset the counters are 0 and the peak is the current outstanding count."""
    admission: Admission[str] = Admission("queue", capacity=1)
    for name in "abc":
        admission.arrive(name, 0.0)
    admission.finish()

    admission.reset(1.0)

    stats = admission.stats()
    assert (0, 0, 0) == (stats["received"], stats["served"], stats["rejected"])
    assert 2 == stats["max_outstanding"]


def test_reset_refills_the_quota() -> None:
    """A reset gives the next run the full burst again."""
    admission: Admission[str] = Admission("quota", rate=1.0, burst=2.0, now=0.0)
    admission.arrive("a", 0.0)
    admission.arrive("b", 0.0)

    admission.reset(0.0)

    assert Decision.START == admission.arrive("c", 0.0)


def test_finish_without_a_request_in_service_is_an_error() -> None:
    """The server never finishes more than it started; if it did, it is a bug."""
    admission: Admission[str] = Admission("reject")

    with pytest.raises(RuntimeError, match="finish"):
        admission.finish()


@pytest.mark.parametrize(("mode", "capacity"), [("drop", 16), ("queue", 0)])
def test_admission_refuses_an_unknown_mode_or_no_capacity(mode: str, capacity: int) -> None:
    """A mode outside queue/reject/quota or a capacity below 1 is a ValueError."""
    with pytest.raises(ValueError, match=r"mode|capacity"):
        Admission(mode, capacity=capacity)


# -------------------------------------------------------------------- the server process


@contextlib.asynccontextmanager
async def _session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _until(server: CapacityServer, ready: Callable[[dict[str, Any]], bool]) -> None:
    """Wait (bounded) until the server's counters satisfy ``ready``."""
    for _ in range(1000):
        if ready(server.stats()):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the server never got there: {server.stats()}")


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, Any, Any]:
    async with session.get(url) as response:
        return response.status, response.headers.get("Retry-After"), await response.json()


async def test_reject_server_answers_429_with_retry_after_and_the_error_envelope() -> None:
    """With its one slot busy, the server refuses at once with the API's 429."""
    with serve_capacity("reject", total=100, capacity=1, service=30.0) as server:
        async with _session() as session:
            busy = asyncio.ensure_future(_get(session, server.base_url + LIST_URL))
            await _until(server, lambda stats: stats["in_service"] == 1)

            status, retry_after, body = await _get(session, server.base_url + LIST_URL)

            busy.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await busy
        stats = server.stats()

    assert 429 == status
    assert "1" == retry_after
    assert False is body["success"]
    assert "too_many_requests" == body["error"]["code"]
    assert (2, 1, 0, 1) == (
        stats["received"],
        stats["rejected"],
        stats["served"],
        stats["max_outstanding"],
    )


async def test_queue_server_counts_queued_requests_and_drops_those_abandoned() -> None:
    """A request waiting for the busy slot is outstanding; closing its connection drops it."""
    with serve_capacity("queue", total=100, capacity=1, service=30.0) as server:
        async with _session() as first, _session() as second:
            busy = asyncio.ensure_future(_get(first, server.base_url + LIST_URL))
            await _until(server, lambda stats: stats["in_service"] == 1)
            waiting = asyncio.ensure_future(_get(second, server.base_url + LIST_URL))
            await _until(server, lambda stats: stats["queued"] == 1)

            waiting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiting
            await second.close()
            await _until(server, lambda stats: stats["queued"] == 0)
            busy.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await busy
        stats = server.stats()

    assert 2 == stats["max_outstanding"]
    assert 0 == stats["rejected"]
    assert 1 == stats["in_service"]  # the slot stays taken until its service time ends


async def test_server_creates_with_the_name_sent_and_a_fresh_uuid() -> None:
    """POST answers 200 with the name it was sent and a new UUID each time."""
    with serve_capacity("queue", total=100, service=0.001) as server:
        async with _session() as session:
            answers = []
            for name in ("EMEA", "DACH"):
                url = server.base_url + "/v2.3/data/segments"
                async with session.post(url, json={"name": name}) as response:
                    answers.append((response.status, await response.json()))
            stats = await server.wait_idle()

    assert [200, 200] == [status for status, _ in answers]
    assert ["EMEA", "DACH"] == [body["result"]["name"] for _, body in answers]
    ids = {uuid.UUID(body["result"]["id"]) for _, body in answers}
    assert 2 == len(ids)
    assert (2, 2) == (stats["received"], stats["served"])
