"""Flow control: the adaptive limit's decisions (pure), the gate, the rate limit, Flow."""

from __future__ import annotations

import asyncio
import math

import pytest

from segments_async._flow import (
    AdaptiveLimit,
    Flow,
    Gate,
    RateLimit,
    check_rate_limit,
    is_overload,
)
from segments_async._retry import Failure, Outcome

from .capacity_sim import simulate

RTT = 0.010


def answered(limit: AdaptiveLimit, count: int, *, rtt: float = RTT, now: float = 0.0) -> float:
    """Feed ``count`` clean answers, each sent at the current limit; the time after them."""
    for _ in range(count):
        now += rtt / max(1, limit.limit)
        limit.record(limit.ticket(limit.limit), rtt=rtt, refused=False, now=now)
    return now


class TestSlowStart:
    def test_starts_small(self):
        """The limit starts at 4."""
        assert 4 == AdaptiveLimit(100).limit

    def test_one_more_per_clean_answer_until_16(self):
        """Each clean answer adds one, up to 16; then growth is about sqrt(limit) a trip."""
        limit = AdaptiveLimit(100)
        seen = []
        for _ in range(12):
            limit.record(limit.ticket(limit.limit), rtt=RTT, refused=False, now=0.0)
            seen.append(limit.limit)

        assert [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16] == seen
        limit.record(limit.ticket(16), rtt=RTT, refused=False, now=0.0)
        assert 16 == limit.limit  # +1/4 of a request: sqrt(16) per 16 answers

    def test_never_beyond_twice_the_level_proven(self):
        """Answers to requests sent at level 2 cannot take the limit past 4... then 5."""
        limit = AdaptiveLimit(100)
        for _ in range(10):
            limit.record(limit.ticket(2), rtt=RTT, refused=False, now=0.0)

        assert 4 == limit.limit

    def test_capped_by_maximum(self):
        """The limit never exceeds the pool."""
        limit = AdaptiveLimit(8)
        answered(limit, 50)

        assert 8 == limit.limit

    def test_small_pool(self):
        """A pool smaller than 4 starts at its size."""
        assert 2 == AdaptiveLimit(2).limit


class TestLatency:
    def test_slower_answers_shrink_the_limit(self):
        """Answers at twice the baseline (a queue forming) bring the limit down."""
        limit = AdaptiveLimit(100)
        now = answered(limit, 30)
        before = limit.limit
        answered(limit, 60, rtt=3 * RTT, now=now)

        assert limit.limit < before

    def test_inflated_answer_ends_slow_start(self):
        """One answer 1.25x slower than the baseline ends slow start."""
        limit = AdaptiveLimit(100)
        answered(limit, 2)
        limit.record(limit.ticket(limit.limit), rtt=1.3 * RTT, refused=False, now=0.1)
        before = limit.limit
        answered(limit, 4, now=0.2)

        assert before + 1 >= limit.limit  # not +4: slow start is over

    def test_steady_latency_keeps_growing(self):
        """Fast, steady answers keep the limit growing past slow start."""
        limit = AdaptiveLimit(100)
        answered(limit, 400)

        assert limit.limit > 30


class TestRefusals:
    def test_halves_from_the_refused_level(self):
        """A refusal at level 17 takes the limit to 8."""
        limit = AdaptiveLimit(100)
        answered(limit, 30)
        limit.record(limit.ticket(17), rtt=None, refused=True, now=1.0)

        assert (8, 17) == (limit.limit, limit.ceiling)

    def test_stale_refusals_are_ignored(self):
        """Refusals of requests sent before the last decrease do not decrease it again."""
        limit = AdaptiveLimit(100)
        answered(limit, 30)
        stale = [limit.ticket(level) for level in range(17, 25)]
        for ticket in stale:
            limit.record(ticket, rtt=None, refused=True, now=1.0)

        assert 8 == limit.limit

    def test_pause_of_one_round_trip(self):
        """After a refusal, the next request waits about one round trip."""
        limit = AdaptiveLimit(100)
        answered(limit, 30)
        limit.record(limit.ticket(17), rtt=None, refused=True, now=1.0)

        assert math.isclose(RTT, limit.reserve(1.0), rel_tol=0.01)
        assert 0.0 == limit.reserve(2.0)

    def test_stays_below_the_ceiling_until_the_probe(self):
        """Clean answers do not take the limit back to the refused level before the probe."""
        limit = AdaptiveLimit(100)
        now = answered(limit, 30)
        limit.record(limit.ticket(17), rtt=None, refused=True, now=now)
        now = answered(limit, 500, now=now)  # 500 answers: less than 100 round trips

        assert 16 == limit.limit

    def test_probes_after_a_hundred_round_trips(self):
        """Once 100 round trips have passed, the refused level is tried again."""
        limit = AdaptiveLimit(100)
        now = answered(limit, 30)
        limit.record(limit.ticket(17), rtt=None, refused=True, now=now)
        answered(limit, 50, now=now + 100 * RTT)

        assert 17 == limit.limit

    def test_failed_probe_doubles_the_wait(self):
        """A probe refused again waits twice as long before the next one."""
        limit = AdaptiveLimit(100)
        now = answered(limit, 30)
        limit.record(limit.ticket(17), rtt=None, refused=True, now=now)
        now = answered(limit, 50, now=now + 100 * RTT)
        limit.record(limit.ticket(17), rtt=None, refused=True, now=now)
        answered(limit, 50, now=now + 150 * RTT)
        assert 16 == limit.limit  # not probed after 150 round trips
        answered(limit, 50, now=now + 210 * RTT)
        assert 17 == limit.limit

    def test_ceiling_cleared_when_held(self):
        """A probe that holds for a whole interval means the capacity grew: no ceiling."""
        limit = AdaptiveLimit(100)
        now = answered(limit, 30)
        limit.record(limit.ticket(17), rtt=None, refused=True, now=now)
        now = answered(limit, 200, now=now + 100 * RTT)
        assert (17, 17) == (limit.limit, limit.ceiling)  # probing it, not yet cleared
        answered(limit, 20, now=now + 101 * RTT)

        assert limit.ceiling is None


class TestQuota:
    def test_refusing_a_level_that_held_paces_requests(self):
        """A level refused after many answers at it is a rate: paced at 70 % of it."""
        limit = AdaptiveLimit(100)
        now = 0.0
        for _ in range(20):  # one answer every 5 ms: 200/s
            now += 0.005
            limit.record(limit.ticket(2), rtt=RTT, refused=False, now=now)
        limit.record(limit.ticket(3), rtt=None, refused=True, now=now)
        assert limit.rate is None  # the first refusal of a level: a ceiling
        for _ in range(20):  # then the refused level held a while...
            now += 0.005
            limit.record(limit.ticket(3), rtt=RTT, refused=False, now=now)
        limit.record(limit.ticket(3), rtt=None, refused=True, now=now)  # ...and was refused

        assert limit.rate is not None
        assert math.isclose(0.7 * 200, limit.rate, rel_tol=0.01)

    def test_one_request_refused_paces(self):
        """Refused even at one request in flight: the server counts per second."""
        limit = AdaptiveLimit(100)
        now = 0.0
        for _ in range(10):
            now += 0.004
            limit.record(limit.ticket(1), rtt=0.001, refused=False, now=now)
        for level in (4, 2, 1, 1):
            now += 0.001
            limit.record(limit.ticket(level), rtt=None, refused=True, now=now)

        assert limit.rate is not None

    def test_paced_requests_are_spaced(self):
        """With a pace of r per second, requests start 1/r apart."""
        limit = AdaptiveLimit(100)
        now = answered(limit, 10)
        for level in (4, 2, 1, 1):
            limit.record(limit.ticket(level), rtt=None, refused=True, now=now)
        assert limit.rate is not None
        start = now + 1.0
        waits = [limit.reserve(start) for _ in range(3)]

        assert math.isclose(1 / limit.rate, waits[1] - waits[0], rel_tol=1e-6)
        assert math.isclose(2 / limit.rate, waits[2], rel_tol=1e-6)

    def test_pace_grows_back_flat_near_the_refused_rate(self):
        """CUBIC: the pace climbs back towards the refused rate and lingers near it."""
        limit = AdaptiveLimit(100)
        now = 0.0
        for _ in range(200):
            now += 0.005
            limit.record(limit.ticket(1), rtt=0.001, refused=False, now=now)
        for level in (4, 2, 1, 1):
            limit.record(limit.ticket(level), rtt=None, refused=True, now=now)
        assert limit.rate is not None
        refused = limit.rate / 0.7
        paces = []
        for second in (1, 3, 5):
            limit.record(limit.ticket(1), rtt=0.001, refused=False, now=now + second)
            assert limit.rate is not None
            paces.append(limit.rate / refused)

        assert paces == sorted(paces)
        assert 0.7 < paces[0] < paces[-1] < 1.05


class TestAgainstSimulatedServers:
    """The benchmark's targets, on simulated servers: deterministic, no wall clock."""

    def best_fixed(self, mode: str, pages: int, **server: float) -> float:
        capacity = int(server.get("capacity", 16))
        return min(
            simulate(mode, pages, fixed=fixed, **server).seconds  # type: ignore[arg-type]
            for fixed in (2, capacity, 64)
        )

    @pytest.mark.parametrize("capacity", [4, 16, 40])
    def test_queueing_server(self, capacity):
        """Excess requests queue: near the best fixed time, never 3x capacity outstanding."""
        run = simulate("queue", 2000, capacity=capacity)

        assert run.seconds <= 1.25 * self.best_fixed("queue", 2000, capacity=capacity)
        assert run.max_outstanding <= 3 * capacity

    @pytest.mark.parametrize("capacity", [4, 16])
    def test_rejecting_server(self, capacity):
        """Excess requests are refused: within 2x the best fixed time, at most 2 % refused."""
        run = simulate("reject", 4000, capacity=capacity)

        assert run.seconds <= 2 * self.best_fixed("reject", 4000, capacity=capacity)
        assert run.rejected_share <= 0.02

    @pytest.mark.parametrize("service", [0.001, 0.010])
    def test_quota_server(self, service):
        """A 200/s quota: within 1.2x the ideal 5 s, at most 5 % refused."""
        run = simulate("quota", 1000, service=service)

        assert run.seconds <= 1.2 * 1000 / 200
        assert run.rejected_share <= 0.05


class TestGate:
    async def test_capacity_and_order(self):
        """At most capacity holders; waiters get places in arrival order."""
        gate = Gate(1)
        await gate.acquire()
        order: list[int] = []

        async def wait(n: int) -> None:
            await gate.acquire()
            order.append(n)

        tasks = [asyncio.create_task(wait(n)) for n in range(3)]
        await asyncio.sleep(0)
        assert (1, 3) == (gate.in_use, gate.waiting)
        for _ in range(3):
            gate.release()
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)

        assert [0, 1, 2] == order

    async def test_cancelled_waiter_passes_its_place_on(self):
        """A waiter cancelled after being handed a place gives it to the next one."""
        gate = Gate(1)
        await gate.acquire()
        first = asyncio.create_task(gate.acquire())
        second = asyncio.create_task(gate.acquire())
        await asyncio.sleep(0)
        gate.release()  # hands the place to `first`...
        first.cancel()  # ...which is cancelled before it runs
        await asyncio.sleep(0)
        await asyncio.sleep(0)

        assert second.done()
        assert 1 == gate.in_use

    async def test_raising_capacity_wakes_waiters(self):
        """A larger capacity lets waiters in at once."""
        gate = Gate(1)
        await gate.acquire()
        waiter = asyncio.create_task(gate.acquire())
        await asyncio.sleep(0)
        gate.capacity = 2
        await asyncio.sleep(0)

        assert waiter.done()

    async def test_lower_capacity_holds_releases(self):
        """Below capacity, a release does not let a waiter in."""
        gate = Gate(2)
        await gate.acquire()
        await gate.acquire()
        waiter = asyncio.create_task(gate.acquire())
        await asyncio.sleep(0)
        gate.capacity = 1
        gate.release()
        await asyncio.sleep(0)

        assert not waiter.done()
        waiter.cancel()


class TestRateLimit:
    @pytest.mark.parametrize("value", [0, -1, math.nan, math.inf])
    def test_bad_values(self, value):
        """A rate limit must be a positive, finite number."""
        with pytest.raises(ValueError, match="rate_limit"):
            check_rate_limit(value)

    @pytest.mark.parametrize("value", ["10", True, [1]])
    def test_bad_types(self, value):
        """A rate limit is a number."""
        with pytest.raises(TypeError, match="rate_limit"):
            check_rate_limit(value)

    def test_none_is_no_limit(self):
        """None means no rate limit."""
        assert check_rate_limit(None) is None

    async def test_burst_of_a_tenth_of_a_second(self):
        """100/s lets 10 start at once; the 11th waits."""
        limit = RateLimit(100.0)
        for _ in range(10):
            await asyncio.wait_for(limit.acquire(), 0.01)
        eleventh = asyncio.create_task(limit.acquire())
        await asyncio.sleep(0)

        assert not eleventh.done()
        eleventh.cancel()


class TestFlow:
    async def test_refusal_closes_the_place_before_handing_it_on(self):
        """A 429 shrinks the gate before giving its place back: the waiter stays out."""
        flow = Flow(rate=None, max_connections=100)
        tickets = [await flow.admit(until=None) for _ in range(4)]
        waiter = asyncio.create_task(flow.admit(until=None))
        await asyncio.sleep(0)
        flow.done(tickets[-1], Outcome(429, {"Retry-After": "1"}))  # refused at level 4
        await asyncio.sleep(0)

        assert 2 == flow.adaptive.limit
        assert not waiter.done()
        waiter.cancel()

    async def test_admit_gives_up_at_the_deadline(self):
        """A request that cannot start before `until` is not admitted."""
        flow = Flow(rate=None, max_connections=100)
        for _ in range(4):
            await flow.admit(until=None)
        loop = asyncio.get_running_loop()

        assert await flow.admit(until=loop.time() + 0.01) is None

    @pytest.mark.parametrize(
        ("outcome", "overload"),
        [
            (Outcome(429), True),
            (Outcome(503), True),
            (Outcome(500, {"Retry-After": "3"}), True),
            (Outcome(200), False),
            (Outcome(404), False),
            (Outcome(failure=Failure.TIMEOUT), True),
            (Outcome(failure=Failure.DISCONNECT), True),
            (Outcome(failure=Failure.TLS), False),
            (Outcome(failure=Failure.CLOSED), False),
        ],
    )
    def test_what_counts_as_overload(self, outcome, overload):
        """429, 503, Retry-After, timeouts and lost connections say 'too much'."""
        assert overload == is_overload(outcome)
