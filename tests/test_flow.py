"""Flow control: the adaptive limit's decisions (pure), the gate, the rate limit, Flow."""

from __future__ import annotations

import asyncio
import itertools
import math
import random
from collections.abc import Callable

import pytest

from segments_async._flow import (
    ARRIVAL,
    AdaptiveLimit,
    Flow,
    Gate,
    RateLimit,
    Ticket,
    auto_window,
    check_rate_limit,
    is_overload,
)
from segments_async._retry import Failure, Outcome

from .capacity_sim import Client, Server, best_fixed, run, simulate

RTT = 0.010


def answered(limit: AdaptiveLimit, count: int, *, rtt: float = RTT, now: float = 0.0) -> float:
    """Feed ``count`` clean answers, each sent at the current limit; the time after them."""
    for _ in range(count):
        now += rtt / max(1, limit.limit)
        limit.record(limit.ticket(limit.limit), rtt=rtt, refused=False, now=now)
    return now


def served(
    limit: AdaptiveLimit, count: int, rtt_at: Callable[[int], float], *, now: float = 0.0
) -> list[int]:
    """Feed ``count`` answers from a server whose round trip at ``level`` is ``rtt_at(level)``
    (the client keeps its limit in flight); the limits seen after each answer."""
    seen = []
    for _ in range(count):
        level = limit.limit
        rtt = rtt_at(level)
        now += rtt / level
        limit.record(limit.ticket(level), rtt=rtt, refused=False, now=now)
        seen.append(limit.limit)
    return seen


def windows(
    limit: AdaptiveLimit, rounds: int, rtt_at: Callable[[int], float], *, now: float = 0.0
) -> list[int]:
    """Feed a window of answers per round trip, as a client keeps its limit in flight and
    the answers come back together; the limits seen after each round trip."""
    seen = []
    for _ in range(rounds):
        level = limit.limit
        tickets = [limit.ticket(level, now) for _ in range(level)]
        now += rtt_at(level)
        for ticket in tickets:
            limit.record(ticket, rtt=rtt_at(level), refused=False, now=now)
        seen.append(limit.limit)
    return seen


def over_seeds(server: Server, client: Client, seeds: int) -> list[float]:
    """``"auto"``'s simulated time over the best fixed time, for each of ``seeds`` seeds
    (a noisy client's stalls differ from seed to seed)."""
    return [
        run(server, client, seed=seed).seconds / best_fixed(server, client, seed=seed)
        for seed in range(seeds)
    ]


def queueing(capacity: int, service: float = RTT) -> Callable[[int], float]:
    """At most ``capacity`` served at once: past it, the round trip grows with the level."""
    return lambda level: service * max(1.0, level / capacity)


class TestSlowStart:
    def test_starts_small(self):
        """The limit starts at 4."""
        assert 4 == AdaptiveLimit(100).limit

    def test_one_more_per_clean_answer(self):
        """Each clean answer adds one while doubling pays (a steady round trip)."""
        limit = AdaptiveLimit(100)
        seen = []
        for _ in range(20):
            limit.record(limit.ticket(limit.limit), rtt=RTT, refused=False, now=0.0)
            seen.append(limit.limit)

        assert list(range(5, 25)) == seen

    def test_never_beyond_twice_the_level_proven(self):
        """Answers to requests sent at level 2 cannot take the limit past 4."""
        limit = AdaptiveLimit(100)
        for _ in range(10):
            limit.record(limit.ticket(2), rtt=RTT, refused=False, now=0.0)

        assert 4 == limit.limit

    def test_capped_by_maximum(self):
        """The limit never exceeds the pool."""
        limit = AdaptiveLimit(8)

        assert 8 == max(served(limit, 200, lambda level: RTT))

    def test_small_pool(self):
        """A pool smaller than 4 starts at its size."""
        assert 2 == AdaptiveLimit(2).limit

    def test_ends_where_doubling_brings_no_more_answers(self):
        """Past a capacity of 8, the round trip grows with the level: slow start slows to 15 %
        more per round trip and ends at 24, where a band is more than one pause of
        the machine; the climb then starts back at the knee the bands below showed (13,
        the lowest band above which none gained; probed up at 16), not at 21."""
        limit = AdaptiveLimit(100)
        seen = windows(limit, 7, queueing(8))

        assert not limit.starting
        assert max(seen) <= 24
        assert limit.limit <= 16

    def test_a_pause_among_the_first_answers_does_not_end_it(self):
        """No knee, but the answers at 12-15 in flight all come twice as late (the machine
        paused for their round trip): below 24 in flight, one band is no knee, and slow
        start goes on, more slowly. (It ended at 13 before, and the climb held 8-13.)"""
        limit = AdaptiveLimit(100)
        seen = windows(limit, 12, lambda level: RTT * (2 if 12 <= level < 16 else 1))

        assert limit.starting
        assert max(seen) >= 48

    def test_half_as_much_again_per_round_trip(self):
        """Answers come a round trip late: a window answered at level 8 allows 12."""
        limit = AdaptiveLimit(100)

        assert [6, 9, 13, 19] == windows(limit, 4, lambda level: RTT)

    def test_rising_latency_with_rising_throughput_goes_on(self):
        """A batching server (slower, but more answers per second) does not end it."""
        limit = AdaptiveLimit(100)
        seen = served(limit, 300, lambda level: RTT * level**0.3)

        assert 100 == max(seen)


class TestHillClimb:
    def test_settles_near_a_queueing_servers_capacity(self):
        """Capacity 16: after a while, the limit cycles around 16 to 32, not beyond."""
        limit = AdaptiveLimit(100)
        seen = served(limit, 5000, queueing(16))

        assert 12 <= min(seen[-500:])  # 0.8x the limit, in the cycle's probe down
        assert max(seen[-500:]) <= 40

    def test_jittery_latency_is_no_queue(self):
        """Round trips uniform in 10-50 ms, whatever the level: the limit goes to the pool."""
        rng = random.Random(7)
        limit = AdaptiveLimit(100)
        seen = served(limit, 3000, lambda level: rng.uniform(0.010, 0.050))

        assert 80 <= min(seen[-200:])

    def test_batching_server_climbs_to_its_knee(self):
        """10 ms per wakeup plus 0.5 ms per request: more answers per second up to ~20."""
        limit = AdaptiveLimit(100)
        seen = served(limit, 5000, lambda level: 0.010 + 0.0005 * level)

        assert 16 <= min(seen[-500:])

    def test_steps_down_when_the_server_slows(self):
        """The capacity falls from 64 to 8: the limit comes down to it."""
        limit = AdaptiveLimit(100)
        served(limit, 3000, queueing(64))
        before = limit.limit
        seen = served(limit, 5000, queueing(8))

        assert before >= 64
        assert max(seen[-500:]) <= 16

    def test_steps_up_in_a_row_grow_from_the_third(self):
        """Every level pays (the round trip holds) and no ceiling bounds the climb: two
        steps of 20 %, then 44 % each, as below a ceiling (a long slope is climbed in half
        the steps; on a plateau, a lucky cycle or two is still a step of 20 %)."""
        limit = AdaptiveLimit(1000)
        limit._limit = 10.0
        limit._end_slow_start()
        limit._update()
        limits, now = [limit._limit], 0.0
        while len(limits) < 6:
            now = answered(limit, 1, now=now)
            if limit._limit != limits[-1]:
                limits.append(limit._limit)

        steps = [round(upper / lower, 2) for lower, upper in itertools.pairwise(limits)]
        assert [1.2, 1.2, 1.44, 1.44, 1.44] == steps

    def test_a_noisy_plateau_holds_near_the_knee(self):
        """A server at its knee from 16 on, whose answers all come 20 % faster or slower
        together now and then (another process took the CPU, a collection): a lucky
        cycle is no reason to climb, and the limit does not wander up to the pool."""
        peaks = []
        for seed in range(12):
            rng = random.Random(seed)
            limit = AdaptiveLimit(100)
            swing = [1.0]

            def rtt_at(level: int, rng: random.Random = rng, swing: list[float] = swing) -> float:
                if rng.random() < 0.3:  # the machine's mood changes, for a while
                    swing[0] = rng.choice((0.8, 1.0, 1.25))
                return swing[0] * queueing(16)(level)

            peaks.append(max(windows(limit, 3000, rtt_at)[-1000:]))

        # Before: over 48 with 10 of these 12 machines' moods, up to 100 (the pool).
        assert max(peaks) <= 48

    def test_one_stalled_cycle_does_not_hold_the_climb(self):
        """After a queue, a server that gains from load all the way (answers per second as
        the level to the power 0.5), and one round trip, among the first eight, whose
        answers all come four times late: the one cycle it throws far off moves the noise
        between cycles at most four times what it was, so the next cycles still decide,
        and the limit reaches 80 within 80 round trips wherever the stall falls (before:
        up to 102; 30 without a stall)."""
        taken = []
        for stall in range(1, 9):
            limit = AdaptiveLimit(100)
            windows(limit, 300, queueing(16))
            now = 100.0  # after the queue's round trips
            for trip in range(400):
                level = limit.limit
                rtt = RTT * level**0.5 * (4 if trip == stall else 1)
                tickets = [limit.ticket(level, now) for _ in range(level)]
                now += rtt
                for ticket in tickets:
                    limit.record(ticket, rtt=rtt, refused=False, now=now)
                if limit.limit >= 80:
                    break
            taken.append(trip + 1)

        assert max(taken) <= 80, taken

    def test_a_flat_curve_does_not_walk_the_limit_below_the_start(self):
        """One request served at a time (no level brings more answers per second): the
        limit steps down to where slow start began, 4 (3 in a probe down), not to 1-2,
        where a client and a server that take turns would idle (a Python app: a tenth
        slower than any fixed level)."""
        limit = AdaptiveLimit(100)
        seen = served(limit, 5000, queueing(1))

        assert 3 <= min(seen[-2000:])
        assert max(seen[-2000:]) <= 5

    def test_no_decision_without_demand(self):
        """Answers all at one level (the caller sends no more): the limit does not move."""
        limit = AdaptiveLimit(100)
        now = 0.0
        for _ in range(500):
            now += RTT / 3
            limit.record(limit.ticket(3), rtt=RTT, refused=False, now=now)

        assert limit.limit <= 8


def probed(limit: AdaptiveLimit, count: int, *, now: float) -> int:
    """The highest limit seen over ``count`` clean answers from ``now``."""
    highest = 0
    for _ in range(count):
        now += RTT / max(1, limit.limit)
        limit.record(limit.ticket(limit.limit), rtt=RTT, refused=False, now=now)
        highest = max(highest, limit.limit)
    return highest


class TestRefusals:
    def test_halves_from_the_refused_level(self):
        """A refusal at level 17 takes the limit to 8."""
        limit = AdaptiveLimit(100)
        answered(limit, 30)
        limit.record(limit.ticket(17), rtt=None, refused=True, now=1.0)

        assert (8, 17) == (limit.limit, limit.ceiling)

    def test_a_refused_probe_above_the_limit_leaves_the_limit(self):
        """Climbing, a probe at 1.25x the limit is refused: that level is the ceiling, and
        the limit, which held, stays (a refusal costs a Retry-After; halving would cost
        more)."""
        limit = AdaptiveLimit(100)
        served(limit, 3000, queueing(16))  # past slow start: the limit climbs by probes
        base = limit._limit
        assert not limit._slow_start
        assert base < 50
        limit.record(limit.ticket(int(base) + 3), rtt=None, refused=True, now=100.0)

        assert (int(base) + 3, base) == (limit.ceiling, limit._limit)

    @pytest.mark.parametrize(("read_after", "ceiling"), [(RTT / 10, 41), (RTT / 2, 46)])
    def test_a_quick_refusal_is_counted_at_the_level_the_server_saw(self, read_after, ceiling):
        """Refused at 46 and read after 5 answers to requests sent before it. Read a tenth
        of a round trip after it was sent, it was answered at once: those answers had left
        the server before it came (a busy client reads its answers late), so the server
        refused its 41st. Read half a round trip later, the client's loop was too far
        behind to tell in what order the server answered: it counts at 46."""
        limit = AdaptiveLimit(100)
        now = answered(limit, 30)
        refused = limit.ticket(46, now)
        for i in range(1, 6):
            limit.record(limit.ticket(20, now - RTT), rtt=RTT, refused=False, now=now + i * 1e-4)

        limit.record(refused, rtt=read_after, refused=True, now=now + read_after)

        assert ceiling == limit.ceiling

    def test_a_share_that_grows_scales_the_limit_and_its_ceiling(self):
        """A fleet member whose share doubled (half the members left): limit 8 under a
        ceiling of 17 becomes 16 under 34."""
        limit = AdaptiveLimit(100)
        answered(limit, 30)
        limit.record(limit.ticket(17), rtt=None, refused=True, now=1.0)
        limit.rescale(2.0)

        assert (16, 34) == (limit.limit, limit.ceiling)

    def test_stale_refusals_are_ignored(self):
        """Refusals of requests sent before the last decrease do not decrease it again."""
        limit = AdaptiveLimit(100)
        answered(limit, 30)
        stale = [limit.ticket(level) for level in range(17, 25)]
        for ticket in stale:
            limit.record(ticket, rtt=None, refused=True, now=1.0)

        assert 8 == limit.limit
        assert 1 == limit.epoch

    def test_pause_of_one_round_trip(self):
        """After a refusal, the next request waits about one round trip."""
        limit = AdaptiveLimit(100)
        answered(limit, 30)
        limit.record(limit.ticket(17), rtt=None, refused=True, now=1.0)

        assert math.isclose(RTT, limit.reserve(1.0), rel_tol=0.01)
        assert 0.0 == limit.reserve(2.0)

    def test_at_the_ceiling_it_cruises_between_probes(self):
        """Under a ceiling of 17 on a server where every level pays, the climb reaches the
        cap (16) and stays: a step up from there moves nothing, so it cruises between
        cycles of probes instead of probing again at once, and fewer answers come at the
        probe down (13): 29 % of them, against 45 % probing back to back."""
        limit = AdaptiveLimit(100)
        now = answered(limit, 30)
        limit.record(limit.ticket(17), rtt=None, refused=True, now=now)

        seen = served(limit, 2000, lambda level: RTT, now=now + RTT)[700:]  # under 2 s

        assert (17, 16) == (limit.ceiling, max(seen))
        assert sum(level < 16 for level in seen) / len(seen) < 1 / 3

    def test_stays_below_the_ceiling_until_the_probe(self):
        """Clean answers do not take the limit back to the refused level before the probe."""
        limit = AdaptiveLimit(100)
        now = answered(limit, 30)
        limit.record(limit.ticket(17), rtt=None, refused=True, now=now)

        assert 16 == probed(limit, 2000, now=now)  # 2000 answers: 1.25 s, not 2

    def test_probes_after_two_seconds(self):
        """100 round trips but at least 2 s later (a refused probe costs a Retry-After),
        the refused level is tried again."""
        limit = AdaptiveLimit(100)
        now = answered(limit, 30)
        limit.record(limit.ticket(17), rtt=None, refused=True, now=now)
        assert 16 == probed(limit, 100, now=now + 1.7)

        assert 17 <= probed(limit, 200, now=now + 2.0)

    def test_probes_after_100_round_trips_when_longer(self):
        """With 50 ms round trips, 100 of them are 5 s: the probe waits for those."""
        limit = AdaptiveLimit(100)
        now = answered(limit, 30, rtt=0.05)
        limit.record(limit.ticket(17), rtt=None, refused=True, now=now)
        assert 16 == probed(limit, 200, now=now + 4.5)

        assert 17 <= probed(limit, 200, now=now + 5.0)

    def test_failed_probe_doubles_the_wait(self):
        """A probe refused again waits twice as long before the next one."""
        limit = AdaptiveLimit(100)
        now = answered(limit, 30)
        limit.record(limit.ticket(17), rtt=None, refused=True, now=now)
        probed(limit, 50, now=now + 2.0)
        now += 2.1
        limit.record(limit.ticket(17), rtt=None, refused=True, now=now)

        assert probed(limit, 100, now=now + 3.7) <= 16
        assert 17 <= probed(limit, 200, now=now + 4.0)

    def test_the_ceilings_probe_refused_leaves_the_limit_below_it(self):
        """Allowed at the ceiling (40) again, the limit climbs to it and is refused there at
        once: the level below held until then, so the limit goes back under the ceiling
        (39) instead of halving (20): the probe costs its refused request a Retry-After."""
        limit = AdaptiveLimit(100)
        now = answered(limit, 30)
        limit.record(limit.ticket(40), rtt=None, refused=True, now=now)
        now += 2.0
        for _ in range(1000):
            if limit._limit >= 40:
                break
            now += RTT / limit.limit
            limit.record(limit.ticket(limit.limit), rtt=RTT, refused=False, now=now)
        assert limit._limit >= 40  # climbed to the ceiling once its probe began

        limit.record(limit.ticket(40), rtt=None, refused=True, now=now + 0.001)

        assert (39, 40, None) == (limit.limit, limit.ceiling, limit.rate)

    def test_ceiling_cleared_when_held(self):
        """A probe that holds for a whole interval means the capacity grew: no ceiling."""
        limit = AdaptiveLimit(100)
        now = answered(limit, 30)
        limit.record(limit.ticket(17), rtt=None, refused=True, now=now)
        probed(limit, 200, now=now + 2.0)
        assert 17 == limit.ceiling  # probing it, not yet cleared
        probed(limit, 20, now=now + 4.1)

        assert limit.ceiling is None


def paced(limit: AdaptiveLimit, answers: int) -> float:
    """``answers`` clean answers 5 ms apart (200/s), then refusals down to one request in
    flight: a quota found, the requests paced; the time after them."""
    now = 0.0
    for _ in range(answers):
        now += 0.005
        limit.record(limit.ticket(1), rtt=0.001, refused=False, now=now)
    for level in (4, 2, 1, 1):
        limit.record(limit.ticket(level), rtt=None, refused=True, now=now)
    return now


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

    def test_a_share_that_grows_scales_the_pace(self):
        """Paced at 140/s, then the member's share of the quota doubled: 280/s."""
        limit = AdaptiveLimit(100)
        limit.record(limit.ticket(1), rtt=None, refused=True, now=1.0)
        limit._rate, limit._rate_refused = 140.0, 200.0
        limit.rescale(2.0)

        assert (280.0, 400.0) == (limit.rate, limit._rate_refused)

    def test_a_pace_from_the_fleet_moves_the_curve_it_grows_along(self):
        """Unpaced, nothing; paced at 4/s (refused at 5/s), the fleet's 80/s: 80 and 100."""
        limit = AdaptiveLimit(100)
        limit.share_pace(80.0)
        assert limit.rate is None
        limit._rate, limit._rate_refused = 4.0, 5.0
        limit.share_pace(80.0)

        assert (80.0, 100.0) == (limit.rate, limit._rate_refused)

    def test_refused_again_at_the_level_it_was_cut_to_paces(self):
        """Halving did not help (refused at 8 after 16): the server counts per second."""
        limit = AdaptiveLimit(100)
        now = answered(limit, 12)  # slow start answered at 4-15 and is at 16
        limit.record(limit.ticket(16), rtt=None, refused=True, now=now)
        assert limit.rate is None
        limit.record(limit.ticket(limit.limit), rtt=None, refused=True, now=now + RTT)

        assert limit.rate is not None

    @pytest.mark.parametrize(("refused_at", "paced"), [(16, True), (17, False)])
    def test_refused_at_half_what_slow_start_was_answered_at_paces(self, refused_at, paced):
        """Slow start answered at 4 to 32 in flight: a capacity does not refuse 16 after
        that, a quota whose burst let the start through does. At 17, a ceiling first."""
        limit = AdaptiveLimit(100)
        now = answered(limit, 29)
        assert 33 == limit.limit  # the last answer was at 32
        limit.record(limit.ticket(refused_at), rtt=None, refused=True, now=now)

        assert paced == (limit.rate is not None)
        assert (None if paced else refused_at) == limit.ceiling

    def test_a_fleets_member_refused_at_half_what_slow_start_was_answered_at_does_not_pace(
        self,
    ):
        """In a fleet (``Flow.share``), before it heard the others: their load gets levels
        it was answered at refused, so a refusal at 16 after answers at 32 is a ceiling."""
        flow = Flow(rate=None, max_connections=100)
        flow.share(Fleet())
        limit = flow.adaptive
        now = answered(limit, 29)
        limit.record(limit.ticket(16), rtt=None, refused=True, now=now)

        assert (None, 16) == (limit.rate, limit.ceiling)

    def test_in_a_fleet_refused_again_before_the_limits_settled_is_no_quota(self):
        """In a fleet, refused at 8 after 16 before the members' limits settled after the
        first refusal: the others went on at their levels until they heard of it (their
        limits still sum to 60), so the fleet's overload, not a quota (alone, the same
        paces: the test above), and the limit already halved for it stays."""
        limit = AdaptiveLimit(100)
        limit.fleet_heard(64, 4, settled=True)
        now = answered(limit, 30)
        limit.record(limit.ticket(16), rtt=None, refused=True, now=now)
        limit.fleet_heard(60, 4, settled=False)
        limit.record(limit.ticket(limit.limit), rtt=None, refused=True, now=now + RTT)

        assert (None, 2, 8) == (limit.rate, limit.epoch, limit.limit)

    def test_in_a_fleet_refused_at_the_sum_a_refusal_cut_the_limits_to_paces(self):
        """The members' limits summed 64 when one was refused; settled at 32 since (each
        halved), and refused again, here or elsewhere: the server counts per second. Settled
        at 40 (some climbed back), it does not."""
        for settled_at, paces in ((32, True), (40, False)):
            for elsewhere in (False, True):
                limit = AdaptiveLimit(100)
                limit.fleet_heard(64, 4, settled=True)
                now = answered(limit, 30)
                limit.record(limit.ticket(16), rtt=None, refused=True, now=now)
                limit.fleet_heard(settled_at, 4, settled=True)
                if elsewhere:  # Flow.refused_elsewhere: at the level in flight here
                    ticket = Ticket(limit.epoch, 3, -1, now)
                else:
                    ticket = limit.ticket(limit.limit, now)
                limit.record(ticket, rtt=None, refused=True, now=now + 0.2)

                assert paces == (limit.rate is not None), (settled_at, elsewhere)

    def test_in_a_fleet_a_sum_that_held_at_the_one_refused_then_refused_paces(self):
        """The fleet's limits summed 24 when refused; settled back at 24 and held a while
        (answers here at 6, its share), then refused: a quota. The member's own level
        holding at its ceiling says nothing in a fleet (the others may have been lower)."""
        limit = AdaptiveLimit(100)
        limit.fleet_heard(24, 4, settled=True)
        now = answered(limit, 30)
        limit.record(limit.ticket(6), rtt=None, refused=True, now=now)
        limit.fleet_heard(12, 4, settled=True)  # the sum not held: answers at 6 count not
        for _ in range(20):
            now += 0.005
            limit.record(limit.ticket(6), rtt=RTT, refused=False, now=now)
        limit.fleet_heard(24, 4, settled=True)
        first = limit.epoch
        for _ in range(11):
            now += 0.005
            limit.record(limit.ticket(6), rtt=RTT, refused=False, now=now)
        limit.record(limit.ticket(6), rtt=None, refused=True, now=now)
        assert limit.rate is None  # 11 answers held: under two round trips' worth (12)
        assert limit.epoch == first + 1
        limit.fleet_heard(24, 4, settled=True)
        for _ in range(12):
            now += 0.005
            limit.record(limit.ticket(6), rtt=RTT, refused=False, now=now)
        limit.record(limit.ticket(6), rtt=None, refused=True, now=now)

        assert limit.rate is not None

    def test_in_a_fleet_one_request_refused_paces_once_every_member_is_down_to_one(self):
        """Refused at one request in flight, limit 1: a quota once the members' limits sum
        to one each (heard, settled or not); not while the others' sum is more."""
        for limits, paces in ((4, True), (9, False)):
            limit = AdaptiveLimit(100)
            limit.fleet_heard(limits, 4, settled=False)
            now = answered(limit, 10)
            for level in (4, 2, 1):
                limit.record(limit.ticket(level), rtt=None, refused=True, now=now)

            assert paces == (limit.rate is not None), limits

    def test_in_a_fleet_a_refusal_counts_at_least_at_the_members_even_share(self):
        """In a fleet whose limits sum to 24 over 4 members, refused with 1 in flight here
        (the others sent the overload, or this one's requests waited out a backoff): the
        ceiling is its share, 6, and the limit halves from there, not from 1."""
        limit = AdaptiveLimit(100)
        limit.fleet_heard(24, 4, settled=True)
        now = answered(limit, 30)
        limit.record(limit.ticket(1), rtt=None, refused=True, now=now)

        assert (6, 3) == (limit.ceiling, limit.limit)

    def test_a_member_that_left_the_fleet_goes_by_its_own_levels(self):
        """Redis lost: refused again at the level it was cut to paces, as alone."""
        limit = AdaptiveLimit(100)
        limit.fleet_heard(64, 4, settled=True)
        now = answered(limit, 30)
        limit.record(limit.ticket(16), rtt=None, refused=True, now=now)
        limit.fleet_left()
        limit.record(limit.ticket(limit.limit), rtt=None, refused=True, now=now + RTT)

        assert limit.rate is not None

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

    def test_the_refused_rate_and_whether_it_was_measured(self):
        """Unpaced: no refused rate. Paced after 200 answers over a second: the rate they
        came at, measured; after a handful at the start, not measured."""
        limit = AdaptiveLimit(100)
        assert limit.refused_rate is None
        paced(limit, 200)
        assert limit.rate_measured
        assert limit.refused_rate is not None
        assert math.isclose(limit.rate or 0, 0.7 * limit.refused_rate)
        early = AdaptiveLimit(100)
        paced(early, 3)

        assert not early.rate_measured

    def test_hold_is_the_pause_after_a_refusal_without_the_pace(self):
        """Paced, with a fleet's pace to start on: the pause after a refusal (a round trip)
        holds a request, the member's own pace does not."""
        limit = AdaptiveLimit(100)
        now = paced(limit, 200)
        assert limit.rate is not None

        pause = limit.hold(now)
        assert pause > 0
        assert math.isclose(pause, limit.reserve(now), rel_tol=1e-9)
        assert [0.0, 0.0, 0.0] == [limit.hold(now + 1.0) for _ in range(3)]

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
        now = paced(limit, 200)
        assert limit.rate is not None
        refused = limit.rate / 0.7
        paces = []
        for second in (1, 3, 5):
            limit.record(limit.ticket(1), rtt=0.001, refused=False, now=now + second)
            assert limit.rate is not None
            paces.append(limit.rate / refused)

        assert paces == sorted(paces)
        assert 0.7 < paces[0] < paces[-1] < 1.05

    def test_a_refusal_within_a_round_trip_of_a_new_pace_changes_nothing(self):
        """It was sent at the pace before: the pace does not fall again with each one."""
        limit = AdaptiveLimit(100)
        now = answered(limit, 10)
        for level in (4, 2):
            limit.record(limit.ticket(level), rtt=None, refused=True, now=now)
        paced = limit.rate
        limit.record(limit.ticket(1), rtt=None, refused=True, now=now + RTT / 2)
        assert paced is not None
        assert paced == limit.rate
        limit.record(limit.ticket(1), rtt=None, refused=True, now=now + 2 * RTT)

        assert limit.rate < paced

    def test_refused_while_paced_too_fast_settles_below_what_got_through(self):
        """Paced at over 300/s while the server let 100/s through: 92 % of 100/s, flat."""
        limit = AdaptiveLimit(100)
        now = 0.0
        for _ in range(100):  # a burst the server allowed: 1000 answers a second
            now += 0.001
            limit.record(limit.ticket(1), rtt=0.001, refused=False, now=now)
        for level in (4, 2, 1, 1):
            limit.record(limit.ticket(level), rtt=None, refused=True, now=now)
        assert limit.rate is not None
        assert limit.rate > 300  # 70 % of the burst's rate: too fast
        for _ in range(50):  # what the server let through since: 100/s
            now += 0.010
            limit.record(limit.ticket(1), rtt=0.001, refused=False, now=now)
        limit.record(limit.ticket(1), rtt=None, refused=True, now=now)
        settled = limit.rate
        limit.record(limit.ticket(1), rtt=0.001, refused=False, now=now + 2.9)

        assert settled is not None
        assert math.isclose(92.0, settled, rel_tol=0.02)
        assert limit.rate == settled  # flat for three seconds

    @staticmethod
    def _paced_at_eight() -> tuple[AdaptiveLimit, float]:
        """Slow start answered up to 15, 16 was refused (a ceiling: the limit 8), then 8 (a
        quota: paced at 70 % of what got through, about 620/s); the time after."""
        limit = AdaptiveLimit(100)
        now = answered(limit, 12)
        limit.record(limit.ticket(16), rtt=None, refused=True, now=now)
        now += RTT
        limit.record(limit.ticket(limit.limit), rtt=None, refused=True, now=now)
        assert limit.rate is not None
        assert (8, 16) == (limit.limit, limit.ceiling)
        return limit, now

    @staticmethod
    def _at_pace(limit: AdaptiveLimit, now: float, seconds: float, rtt: float = 0.04) -> float:
        """Clean answers at the pace for ``seconds``, each after ``rtt``; the time after."""
        end = now + seconds
        while now < end and limit.rate is not None:
            now += 1 / limit.rate
            limit.record(limit.ticket(limit.limit), rtt=rtt, refused=False, now=now)
        return now

    def test_a_pace_that_held_is_carried_by_the_limit(self):
        """At 40 ms a round trip, the 8 in flight the refusal left carry 200/s, a third of
        the pace: what got through would measure the limit, and a settle on it take the pace
        below its own. Once the pace held four round trips, the limit carries it (1.5 times
        620/s x 40 ms, plus one: 38), up to the ceiling's 15; before, it stayed at 8."""
        limit, now = self._paced_at_eight()
        now = self._at_pace(limit, now, 0.14)
        assert limit.limit <= 10  # 8, in probes 6-10
        self._at_pace(limit, now, 0.04)

        assert 15 == limit.limit

    def test_refused_while_paced_the_limit_carries_the_pace_only_once_it_held(self):
        """A settle starts the wait again: back to the limit the first refusal left."""
        limit, now = self._paced_at_eight()
        now = self._at_pace(limit, now, 0.3)
        assert 15 == limit.limit
        limit.record(limit.ticket(15), rtt=None, refused=True, now=now)
        assert limit.limit <= 10
        now = self._at_pace(limit, now, 0.14)
        assert limit.limit <= 10
        self._at_pace(limit, now, 0.04)

        assert 15 == limit.limit

    def test_a_fleets_member_keeps_its_limit_while_paced(self):
        """In a fleet, the limit is the member's share of the fleet's, which the others
        hear: the pace does not move it."""
        limit, now = self._paced_at_eight()
        limit._member = True
        self._at_pace(limit, now, 0.3)

        assert limit.limit <= 10

    def test_unpaced_the_limit_keeps_what_the_pace_carried(self):
        """Past twice the refused rate, the pace ends: the limit carries what it last sent
        (the ceiling, unrefused for its probe's interval, gone: the pool's 100), not the 8
        the refusal left, which the hill climb would take many steps to leave."""
        limit, now = self._paced_at_eight()
        self._at_pace(limit, now, 30.0)

        assert limit.rate is None
        assert limit.limit >= 80  # 100, or 80 in a probe down


# The benchmark's kinds of server, and others: (server, client options, requests); each
# job takes a second or more at the best fixed concurrency.
LOOPBACK = {"overhead": 0.0002, "client_cost": 0.00008}
NEAR = {"overhead": 0.0025}
#: The client's own event loop is what limits (a create costs it 0.1 ms, the server half
#: that), and an answer takes several turns of that loop: fitted to the benchmark's Python
#: app, where a fixed 4, 8, 16 and 64 take 1.24x, 1.12x, 1.05x and 1.00x the time of 32.
CLIENT_BOUND = {"overhead": 0.0001, "client_cost": 0.0001, "loop_cost": 0.000005, "hops": 8}
#: Other processes take the client's CPU 20 times a second, 5 ms each time (at random).
NOISY = {"stalls": (20.0, 0.005)}
#: Clients whose own event loop does 0.4-0.6 ms per answer: about the benchmark's client
#: reading pages of 100 from the queueing server (1,300-1,400 pages/s at best).
BUSY_CLIENTS = (
    {"overhead": 0.0005, "client_cost": 0.0006, "loop_cost": 0.00002, "hops": 4},
    {"overhead": 0.002, "client_cost": 0.0004, "loop_cost": 0.00005, "hops": 8},
)
SIMULATED = {
    "queue 16 x 10 ms": (Server("queue", capacity=16, service=0.010), NEAR, 2000),
    "queue 4 x 5 ms": (Server("queue", capacity=4, service=0.005), NEAR, 1500),
    "queue 40 x 20 ms": (Server("queue", capacity=40, service=0.020), NEAR, 3000),
    "python app": (Server("batch", batch_cost=0.00005, item_cost=0.00015), LOOPBACK, 8000),
    "python app, client-bound": (
        Server("batch", batch_cost=0.0001, item_cost=0.00003),
        CLIENT_BOUND,
        10000,
    ),
    "python app, noisy machine": (
        Server("batch", batch_cost=0.00005, item_cost=0.00015),
        LOOPBACK | NOISY,
        8000,
    ),
    "queue 16 x 10 ms, noisy machine": (
        Server("queue", capacity=16, service=0.010),
        NEAR | NOISY,
        2000,
    ),
    "python app, costly wakeups": (
        Server("batch", batch_cost=0.0005, item_cost=0.0001),
        LOOPBACK,
        8000,
    ),
    "python app + 3 ms awaited": (
        Server("batch", batch_cost=0.00005, item_cost=0.00015, awaited=0.003),
        LOOPBACK,
        6000,
    ),
    "python app + 10 ms awaited": (
        Server("batch", batch_cost=0.0002, item_cost=0.0002, awaited=0.010),
        LOOPBACK,
        5000,
    ),
    # Answers per second grow as the load to the power 0.25 / 0.35 all the way to the pool
    # (no knee): the benchmark's Python app awaiting 3 ms, on 2 cores shared with its
    # client, where a fixed 64 is best and each doubling brings a fifth more.
    "slope 0.25": (Server("slope", service=0.002, elasticity=0.25), LOOPBACK, 3000),
    "slope 0.35": (Server("slope", service=0.002, elasticity=0.35), LOOPBACK, 3000),
    "uniform 10-50 ms": (Server("delay", latency=("uniform", 0.010, 0.050)), LOOPBACK, 3000),
    "uniform 1-5 ms": (Server("delay", latency=("uniform", 0.001, 0.005)), LOOPBACK, 20000),
    "lognormal 20 ms, sigma 0.5": (
        Server("delay", latency=("lognormal", 0.020, 0.5)),
        LOOPBACK,
        3000,
    ),
    "lognormal 20 ms, sigma 1": (
        Server("delay", latency=("lognormal", 0.020, 1.0)),
        LOOPBACK,
        3000,
    ),
    "lognormal 2 ms, sigma 0.8": (
        Server("delay", latency=("lognormal", 0.002, 0.8)),
        LOOPBACK,
        20000,
    ),
}
REJECTING = {
    "reject 16 x 10 ms": (Server("reject", capacity=16, service=0.010), 4000),
    "reject 4 x 5 ms": (Server("reject", capacity=4, service=0.005), 1500),
    "reject 40 x 20 ms": (Server("reject", capacity=40, service=0.020), 8000),
}
QUOTAS = {
    "200/s, 10 ms": (Server("quota", rate=200.0, service=0.010), 1000),
    "200/s, 1 ms": (Server("quota", rate=200.0, service=0.001), 1000),
    "100/s, 5 ms": (Server("quota", rate=100.0, service=0.005), 600),
}
#: Faster quotas, where a refused request's Retry-After outlasts twice the pool (200
#: requests, 0.2 s at 1000/s): paced, the window holds what the pace sends meanwhile.
FAST_QUOTAS = {
    "1000/s, 5 ms": (Server("quota", rate=1000.0, service=0.005), 6000),
    "1000/s, 5 ms, 3 s": (Server("quota", rate=1000.0, service=0.005), 3000),
    "400/s, 10 ms": (Server("quota", rate=400.0, service=0.010), 2400),
    "600/s, 5 ms": (Server("quota", rate=600.0, service=0.005), 3600),
    "2000/s, 5 ms": (Server("quota", rate=2000.0, service=0.005), 12000),
}
WORKLOADS = ["create", "iterate"]


class TestAgainstSimulatedServers:
    """The benchmark's targets, on simulated servers: deterministic, no wall clock."""

    @pytest.mark.parametrize("workload", WORKLOADS)
    @pytest.mark.parametrize("kind", list(SIMULATED))
    def test_near_the_best_fixed_concurrency(self, kind, workload):
        """Within 1.2x the best of a fixed 4, 8, 16, 32 or 64, on every kind of server."""
        server, options, requests = SIMULATED[kind]
        client = Client(requests, workload=workload, **options)

        assert run(server, client).seconds <= 1.2 * best_fixed(server, client)

    @pytest.mark.parametrize("workload", WORKLOADS)
    @pytest.mark.parametrize("kind", list(REJECTING))
    def test_rejecting_server(self, kind, workload):
        """Excess refused with 429 and Retry-After: 1: within 1.6x, at most 2 % refused."""
        server, requests = REJECTING[kind]
        client = Client(requests, workload=workload, **NEAR)
        auto = run(server, client)

        assert auto.seconds <= 1.6 * best_fixed(server, client)
        assert auto.rejected_share <= 0.02

    @pytest.mark.parametrize("workload", WORKLOADS)
    @pytest.mark.parametrize("kind", list(QUOTAS))
    def test_quota_server(self, kind, workload):
        """A quota (no headers to pace by): within 1.1x the ideal, at most 5 % refused."""
        server, requests = QUOTAS[kind]
        auto = run(server, Client(requests, workload=workload, **NEAR))

        assert auto.seconds <= 1.1 * requests / server.rate
        assert auto.rejected_share <= 0.05

    @pytest.mark.parametrize("workload", WORKLOADS)
    @pytest.mark.parametrize(
        ("overhead", "client_cost"), [(0.001, 0.0002), (0.0005, 0.0002), (0.0002, 0.0001)]
    )
    def test_quota_read_by_a_busy_client(self, workload, overhead, client_cost):
        """200/s, its burst of 20 spent in slow start, read by a client whose own work per
        answer makes it count its first refusal at 4-5 after answers at 9-10: within 1.1x
        the ideal, at most 5 % refused. Before a refusal at half slow start's level paced,
        a probe at 3 was refused next and made a ceiling: 2 in flight, 1.28-1.39x the ideal
        here (and 1.30x on the benchmark's server); pacing with the limit held at 2, 1.17x
        and 1.21x in the last two."""
        server = Server("quota", rate=200.0, service=0.010)
        client = Client(1000, workload=workload, overhead=overhead, client_cost=client_cost)
        auto = run(server, client)

        assert auto.seconds <= 1.1 * 1000 / server.rate
        assert auto.rejected_share <= 0.05

    @pytest.mark.parametrize("workload", WORKLOADS)
    @pytest.mark.parametrize("kind", list(FAST_QUOTAS))
    def test_fast_quota(self, kind, workload):
        """The first refusals are how it finds the quota, and their Retry-After outlasts
        twice the pool; paced, the window holds what the pace sends meanwhile, and in-order
        work goes on: within 1.1x the ideal, at most 5 % refused. Holding twice the pool,
        1.11-1.45x (a stall of the Retry-After less the window, 0.8 s at 1000/s)."""
        server, requests = FAST_QUOTAS[kind]
        auto = run(server, Client(requests, workload=workload, **NEAR))

        assert auto.seconds <= 1.1 * requests / server.rate
        assert auto.rejected_share <= 0.05

    def test_queueing_server_is_not_flooded(self):
        """Capacity 16: never more than 3x that outstanding at the server."""
        run_ = run(SIMULATED["queue 16 x 10 ms"][0], Client(2000, **NEAR))

        assert run_.max_outstanding <= 48

    @pytest.mark.parametrize("workload", WORKLOADS)
    def test_slow_start_does_not_flood_a_queue_behind_a_busy_client(self, workload):
        """Capacity 16, and a client whose own event loop is the bottleneck on a machine
        whose other processes take its CPU now and then: its round trips follow the load a
        round trip late, so answers look elastic well past 16. Slow start slows as they
        stop following the level all the way (HyStart++), and never takes the limit past
        3x the capacity (at 1.5x a round trip throughout, it reached 71)."""
        server = Server("queue", capacity=16, service=0.010)
        peaks = [
            run(server, Client(2000, workload=workload, **options | NOISY), seed=seed).start_peak
            for options in BUSY_CLIENTS
            for seed in range(8)
        ]

        assert max(peaks) <= 48

    @pytest.mark.parametrize("workload", WORKLOADS)
    @pytest.mark.parametrize("elasticity", [0.25, 0.35])
    def test_a_long_slope_is_climbed(self, workload, elasticity):
        """Answers per second grow as the load to the power 0.35 up to the pool: slow start
        goes on while each half octave brings 30 % of its share, and the limit reaches the
        level a fixed 64 is best at (1.13x its time when slow start ended at 0.5). At 0.25,
        slow start ends at 24-32 and the hill climb does the rest (1.06x with every step
        up 20 %; 1.02x with steps in a row growing from the third)."""
        server = Server("slope", service=0.002, elasticity=elasticity)
        client = Client(3000, workload=workload, **LOOPBACK)

        assert run(server, client).seconds <= 1.05 * best_fixed(server, client)

    def test_slow_start_does_not_end_on_a_few_answers(self):
        """The Python app awaiting 3 ms, read by a client that other processes stall now
        and then, over six seeds: each within 1.2x the best fixed time. Slow start ends on
        a band of levels below its elasticity by two standard errors, or by one once the
        band holds 16 answers; with one standard error at once, a stall among a band's
        first 8-9 answers ended it at 7-22 in flight (1.34x in the worst seed, 1.13x on
        average; now 1.13x, 1.09x)."""
        server = Server("batch", batch_cost=0.00005, item_cost=0.00015, awaited=0.003)
        client = Client(4000, workload="iterate", **LOOPBACK | NOISY)
        ratios = over_seeds(server, client, 6)

        assert max(ratios) <= 1.2, ratios

    @pytest.mark.parametrize("workload", WORKLOADS)
    def test_a_slope_at_slow_starts_threshold_on_a_noisy_machine(self, workload):
        """Answers per second grow as the load to the power 0.3 all the way (the benchmark's
        app awaiting 3 ms measured 0.26-0.27 from 8 to 100 in flight), round trips of a
        few ms, a client stalled now and then, over six seeds: each within 1.2x the best
        fixed time (1.04-1.18x). Each half octave is a new test of a noisy reading against
        slow start's 0.3; a stall that holds a band's answers reads as a knee, and ended
        slow start at 7-14 in flight in half the seeds (1.55x and 1.6x in the worst, and on
        the server the medians of ten to twenty rounds were 1.16-1.37x). Slow start now
        ends at 24 in flight or more. A slow start that never ends takes 0.95x here."""
        server = Server("slope", service=0.001, elasticity=0.3)
        client = Client(3000, workload=workload, **LOOPBACK | NOISY)
        ratios = over_seeds(server, client, 6)

        assert max(ratios) <= 1.2, ratios

    @pytest.mark.parametrize("workload", WORKLOADS)
    def test_rejecting_forty_slots_read_by_a_busy_client(self, workload):
        """40 slots of 20 ms that refuse the excess with 429 and Retry-After: 1, read by a
        client doing 300 us of work per answer (the real client at 2,000 pages a second
        reads its answers a few requests late): within 1.6x the best fixed time. Counted at
        the client's level, slow start's refusal set the ceiling at 46-52, and the climb was
        refused again under it, a second Retry-After (1.85x and 1.88x here, 2.07x on the
        real server); counted at the level the server saw, 41, and 1.53x."""
        server = Server("reject", capacity=40, service=0.020)
        client = Client(5000, workload=workload, overhead=0.0002, client_cost=0.0003)

        ratio = run(server, client).seconds / best_fixed(server, client, (16, 32, 40, 64))

        assert ratio <= 1.6, ratio

    @pytest.mark.parametrize("workload", WORKLOADS)
    def test_stops_at_the_knee(self, workload):
        """A client-bound app whose round trips follow the load a round trip late (each
        answer takes 8 turns of the event loop): more than ~30 in flight only adds
        latency, and the limit stays there, not at the pool's 100."""
        server = Server("batch", batch_cost=0.0002, item_cost=0.00002)
        options = CLIENT_BOUND | {"overhead": 0.0002, "client_cost": 0.000095, "loop_cost": 2e-5}
        client = Client(10000, workload=workload, **options)
        auto = run(server, client)

        assert auto.limit <= 48
        assert auto.seconds <= 1.1 * best_fixed(server, client)


class TestSeveralClients:
    """Four clients without coordination, each a quarter of the work, on one server.

    They cannot learn each other's share (that needs the fleet's shared state). The bar was
    the limit before this one, in this simulator, averaged over 3,200 / 4,000 / 4,800
    pages against 12 slots that refuse the excess with 429 (4.7x / 4.5x one client's best
    time for iterate / create, 1.4-2.4 % refused). Probing a ceiling after 10 s, 4.6x /
    4.0x (0.6 %): a client refused while the others sent stayed under that ceiling after
    they had finished; after 2 s, 2.3x / 2.0x (0.8 %); with the limit carrying a pace that
    held, 2.4x / 1.6x (1.1 %). And over 600
    to 2,000 pages against a quota of 150/s: which client gets an unfair share in the first
    half second moves with the size, so eight sizes (1.54x / 1.44x the ideal before issue
    15's second round, 4.6 % / 5.8 % refused; 1.56x / 1.39x, 4.2 % / 5.6 % with a ceiling
    probed after 10 s; 1.49x / 1.45x, 4.5 % / 5.6 % after 2 s; now 1.50x / 1.45x).
    """

    @pytest.mark.parametrize("workload", WORKLOADS)
    def test_rejecting_server(self, workload):
        """Half the time of the limit before on average, and no more refused."""
        server = Server("reject", capacity=12)
        ratios = []
        for pages in (3200, 4000, 4800):
            one = best_fixed(server, Client(pages, workload=workload), (4, 8, 12, 16, 32, 64))
            runs = simulate(server, [Client(pages // 4, workload=workload)] * 4)
            ratios.append(max(r.seconds for r in runs) / one)
            assert sum(r.rejected for r in runs) <= 0.02 * sum(r.requests for r in runs)

        assert sum(ratios) / 3 <= 2.5

    @pytest.mark.parametrize("workload", WORKLOADS)
    def test_quota(self, workload):
        """About as fast as before on average, and no more refused."""
        ratios = []
        refused = []
        for pages in range(600, 2001, 200):
            runs = simulate(Server("quota", rate=150), [Client(pages // 4, workload=workload)] * 4)
            ratios.append(max(r.seconds for r in runs) / (pages / 150))
            refused.append(sum(r.rejected for r in runs) / sum(r.requests for r in runs))

        assert sum(ratios) / len(ratios) <= 1.6
        assert sum(refused) / len(refused) <= 0.06

    @pytest.mark.parametrize("workload", WORKLOADS)
    def test_rejecting_server_in_a_fleet_that_hears_late(self, workload):
        """A fleet whose members hear of a refusal 50 or 100 ms after it (exchanges with
        Redis) and keep an even share of their limits once settled, against 16 or 12 slots:
        the fleet does about what one client does, and no member falls behind. Before the
        evidence of a quota and the level of a refusal were the fleet's, a member refused
        again before the others had heard of its first refusal took their overload for a
        quota and paced alone at a trickle, and one refused at 1 or 2 in flight kept a
        ceiling there: on average 1.71x / 1.64x one client's best time (iterate / create),
        the slowest member 1.86-2.55x the fastest; now 1.14x / 1.15x, 1.01-1.37x."""
        ratios = []
        for hear in (0.05, 0.1):
            for capacity in (16, 12):
                server = Server("reject", capacity=capacity)
                for pages in (3200, 4800):
                    one = best_fixed(server, Client(pages, workload=workload))
                    clients = [Client(pages // 4, workload=workload)] * 4
                    runs = simulate(server, clients, fleet="shared", hear_within=hear)
                    times = [r.seconds for r in runs]
                    ratios.append(max(times) / one)

                    assert max(times) / min(times) <= 1.5, (hear, capacity, pages)
                    rejected = sum(r.rejected for r in runs)
                    assert rejected <= 0.025 * sum(r.requests for r in runs)

        assert sum(ratios) / len(ratios) <= 1.3

    @pytest.mark.parametrize("hear_within", [0.0, 0.05])
    @pytest.mark.parametrize("workload", WORKLOADS)
    def test_quota_in_a_fleet_on_the_shared_pace(self, workload, hear_within):
        """A fleet whose paced members start on one shared pace (the sum of their paces),
        against a quota of 200/s, over the same eight sizes: near the ideal, and the
        slowest client near the fastest (each on its own pace, with the fleet's news and
        nothing else shared, "local": 1.12x / 1.22x the ideal for iterate / create, the
        slowest 1.50x / 1.77x the fastest, 4.9 % / 4.7 % refused; shared: 1.02x / 1.02x,
        1.05x / 1.05x, 4.0 % / 4.4 %). The same when the members hear of a refusal 50 ms
        after it and go by the fleet's evidence of a quota (a refusal at the sum of the
        limits a refusal cut them to, or with every member down to one request)."""
        ratios, spreads, refused = [], [], []
        quota = Server("quota", rate=200)
        for pages in range(600, 2001, 200):
            clients = [Client(pages // 4, workload=workload)] * 4
            runs = simulate(quota, clients, fleet="shared", hear_within=hear_within)
            times = [r.seconds for r in runs]
            ratios.append(max(times) / (pages / 200))
            spreads.append(max(times) / min(times))
            refused.append(sum(r.rejected for r in runs) / sum(r.requests for r in runs))

        assert sum(ratios) / len(ratios) <= 1.1
        assert sum(spreads) / len(spreads) <= 1.2
        assert sum(refused) / len(refused) <= 0.06


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


class Fleet:
    """A fleet's side of a ``Flow`` that notes what it was told."""

    def __init__(self) -> None:
        self.idle = True
        self.woken = False
        self.told: list[float] = []

    def wake(self) -> None:
        self.idle, self.woken = False, True

    def refused(self, sent: float) -> None:
        self.told.append(sent)

    pacing = False

    async def slot(self) -> float | None:
        return None

    def put_back(self, when: float) -> None:
        pass


class PacingFleet(Fleet):
    """A fleet side whose shared pace hands out ``slots`` (loop times, from now; None:
    Redis unavailable), and notes the slots given back."""

    pacing = True

    def __init__(self, *slots: float | None) -> None:
        super().__init__()
        self.slots = list(slots)
        self.given_back: list[float] = []

    async def slot(self) -> float | None:
        ahead = self.slots.pop(0)
        return None if ahead is None else asyncio.get_running_loop().time() + ahead

    def put_back(self, when: float) -> None:
        self.given_back.append(when)


def paced_flow(fleet: Fleet) -> Flow:
    """A flow in ``fleet`` paced at one request a second, its pause after the refusals over."""
    flow = Flow(rate=None, max_connections=100)
    flow.share(fleet)
    for level in (4, 2, 1, 1):  # refused even one at a time: paced
        flow.adaptive.record(flow.adaptive.ticket(level), rtt=None, refused=True, now=-10.0)
    flow.adaptive._rate = 1.0
    return flow


class TestFlow:
    async def test_a_paced_member_of_a_fleet_starts_on_the_fleets_pace(self):
        """Paced at 1/s, but the fleet's pace has slots now: three start at once (its own
        pace would hold the second past a deadline half a second away)."""
        fleet = PacingFleet(0.0, 0.0, 0.0)
        flow = paced_flow(fleet)
        until = asyncio.get_running_loop().time() + 0.5

        tickets = [await flow.admit(until=until) for _ in range(3)]
        assert None not in tickets
        assert [] == fleet.slots

    async def test_without_the_fleets_pace_a_member_paces_alone(self):
        """No slot (Redis unavailable): its own pace of 1/s holds the second request past
        the deadline."""
        flow = paced_flow(PacingFleet(None, None))
        until = asyncio.get_running_loop().time() + 0.5

        assert await flow.admit(until=until) is not None
        assert await flow.admit(until=until) is None

    async def test_a_fleet_slot_past_the_deadline_goes_back_with_the_place(self):
        """A slot ten seconds away, a deadline sooner: not admitted, the slot and the place
        given back."""
        fleet = PacingFleet(10.0)
        flow = paced_flow(fleet)
        loop = asyncio.get_running_loop()

        assert await flow.admit(until=loop.time() + 0.01) is None
        assert 1 == len(fleet.given_back)
        assert 0 == flow._gate.in_use

    async def test_a_wait_for_a_fleet_slot_cancelled_gives_the_slot_and_the_place_back(self):
        fleet = PacingFleet(10.0)
        flow = paced_flow(fleet)
        waiter = asyncio.create_task(flow.admit(until=None))
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter

        assert 1 == len(fleet.given_back)
        assert 0 == flow._gate.in_use

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

    @pytest.mark.parametrize(
        ("arrived", "starting", "ceiling"),
        [
            (None, True, 6),
            ((4, 0.001), True, 4),
            ((9, 0.001), True, 6),
            ((4, -0.001), True, 6),
            ((4, 0.001), False, 6),
        ],
        ids=["not told", "told", "told more", "an earlier request's", "after slow start"],
    )
    async def test_a_refusal_in_slow_start_counts_where_it_got_its_connection(
        self, arrived, starting, ceiling
    ):
        """Refused at level 6 as let in: in slow start, the level its connection found
        (``ARRIVAL``, set by the owned pool), never above where it was let in; where it was
        let in when not told, or told by a request before it (this one had no connection).
        After slow start the pool is warm, and what a request let in does before it has its
        connection is wait out a pause or a pace: the level it was let in at, as the quota
        evidence was measured (``AdaptiveLimit._refused``)."""
        flow = Flow(rate=None, max_connections=100)
        flow.adaptive._limit = 10.0  # slow start has come to 10, or the climb holds there
        flow.adaptive._slow_start = starting
        flow.adaptive._update()
        flow._gate.capacity = 10
        tickets = [flow.try_admit() for _ in range(6)]
        refused = tickets[-1]
        assert refused is not None
        if arrived is not None:
            level, after = arrived
            ARRIVAL.set((level, refused.sent + after))

        flow.done(refused, Outcome(429, {"Retry-After": "1"}))

        assert ceiling == flow.adaptive.ceiling

    async def test_try_admit_takes_a_free_place_without_awaiting(self):
        """Four places: four tickets at once, then None (admit waits for the fifth)."""
        flow = Flow(rate=None, max_connections=100)
        tickets = [flow.try_admit() for _ in range(5)]

        assert [1, 2, 3, 4] == [t.level for t in tickets[:4] if t is not None]
        assert tickets[4] is None

    async def test_try_admit_leaves_a_paced_request_to_admit(self):
        """After a refusal, sending pauses a round trip: no ticket at once."""
        flow = Flow(rate=None, max_connections=100)
        ticket = flow.try_admit()
        assert ticket is not None
        flow.done(ticket, Outcome(429, {"Retry-After": "1"}))

        assert flow.try_admit() is None
        assert 0 == flow._gate.in_use

    def test_times_are_the_loops_own_clock(self):
        """A loop whose clock is its own (not ``time.monotonic``): tickets are stamped,
        and round trips measured, in its time (a fleet compares them with it)."""

        class Ahead(asyncio.SelectorEventLoop):
            def time(self) -> float:
                return super().time() + 1000.0

        async def stamp() -> tuple[float, float, float]:
            flow = Flow(rate=None, max_connections=100)
            ticket = flow.try_admit()
            assert ticket is not None
            flow.done(ticket, Outcome(200))
            return ticket.sent, asyncio.get_running_loop().time(), flow.adaptive._round_trip()

        for loop in (Ahead(), asyncio.new_event_loop()):
            try:
                sent, now, round_trip = loop.run_until_complete(stamp())
            finally:
                loop.close()
            assert 0 <= now - sent < 1.0
            assert round_trip < 1.0

    async def test_the_round_trip_is_the_time_the_place_was_held(self):
        """An answer whose exchange took 1 ms, 50 ms after its ticket: 50 ms is learnt
        (on a busy event loop, the request waited to run while it held its place)."""
        flow = Flow(rate=None, max_connections=100)
        ticket = flow.try_admit()
        assert ticket is not None
        ticket.sent -= 0.050
        flow.done(ticket, Outcome(200, elapsed=0.001))

        assert math.isclose(0.050, flow.adaptive._round_trip(), rel_tol=0.05)

    async def test_a_refusal_that_lowers_the_limit_is_told_to_the_fleet(self):
        """Told with its request's send time; one sent before the decrease is not."""
        flow, fleet = Flow(rate=None, max_connections=100), Fleet()
        flow.share(fleet)
        tickets = [flow.try_admit() for _ in range(4)]
        assert fleet.woken  # an idle fleet side hears of requests under way
        flow.done(tickets[3], Outcome(429))
        flow.done(tickets[2], Outcome(429))

        assert [tickets[3].sent] == fleet.told

    async def test_a_refusal_elsewhere_lowers_the_limit_here_once(self):
        """At the level in flight here; not again for the same overload: heard since the
        epoch the limit had then, after it was lowered by a refusal here."""
        flow = Flow(rate=None, max_connections=100)
        tickets = [flow.try_admit() for _ in range(3)]
        flow.refused_elsewhere(0)

        assert (1, 3, 1) == (flow.adaptive.epoch, flow.adaptive.ceiling, flow.adaptive.limit)
        assert 1 == flow._gate.capacity
        flow.refused_elsewhere(0)
        flow.done(tickets[0], Outcome(429))  # sent before: the same overload
        assert 1 == flow.adaptive.epoch

    @pytest.mark.parametrize(
        "fleet", [Fleet, lambda: PacingFleet(0.0, 0.05)], ids=["own pace", "fleet's pace"]
    )
    async def test_a_refusal_while_a_request_waits_for_its_paced_start_cuts_once(
        self, fleet: Callable[[], Fleet]
    ):
        """Paced at 20/s (its own pace, or the fleet's), the second request waits 50 ms
        for its start, set by that pace; the first is refused meanwhile and the pace comes
        down. The second, sent at the start the old pace gave it, is refused too: that is
        not news, the pace stays."""
        flow = paced_flow(fleet())
        adaptive = flow.adaptive
        adaptive._rate = 20.0
        first = await flow.admit(until=None)
        waiting = asyncio.create_task(flow.admit(until=None))
        await asyncio.sleep(0.01)  # it has its start time, 50 ms after the first's
        flow.done(first, Outcome(429, {"Retry-After": "1"}))
        epoch, rate = adaptive.epoch, adaptive.rate
        second = await waiting
        assert second is not None
        flow.done(second, Outcome(429, {"Retry-After": "1"}))

        assert rate is not None
        assert rate < 20.0
        assert (epoch, rate) == (adaptive.epoch, adaptive.rate)

    async def test_a_refusal_during_a_members_pause_comes_before_its_fleet_slot(self):
        """In a fleet, paced, the second request waits out this member's pause before it
        asks for the fleet's slot; the first is refused meanwhile. The slot is asked for
        after that decrease, so the second's refusal is news: the pace comes down again."""
        flow = paced_flow(PacingFleet(0.0, 0.0))
        adaptive = flow.adaptive
        adaptive._rate = 20.0
        first = await flow.admit(until=None)
        assert first is not None
        adaptive._next_start = asyncio.get_running_loop().time() + 0.05  # a pause
        waiting = asyncio.create_task(flow.admit(until=None))
        await asyncio.sleep(0.01)
        flow.done(first, Outcome(429, {"Retry-After": "1"}))
        epoch, rate = adaptive.epoch, adaptive.rate
        second = await waiting
        assert second is not None
        assert second.epoch == epoch
        flow.done(second, Outcome(429, {"Retry-After": "1"}))

        assert rate is not None
        assert adaptive.epoch == epoch + 1
        assert adaptive.rate is not None
        assert adaptive.rate < rate

    async def test_an_unpaced_request_waiting_out_a_pause_counts_in_the_epoch_it_is_sent_in(
        self,
    ):
        """Not paced, a request waits only for the pause after a refusal; another decrease
        meanwhile leaves it counted in the epoch it is sent in, as before pacing mattered."""
        flow = Flow(rate=None, max_connections=100)
        adaptive = flow.adaptive
        ticket = flow.try_admit()
        assert ticket is not None
        flow.done(ticket, Outcome(429, {"Retry-After": "1"}))  # a pause of a round trip
        waiting = asyncio.create_task(flow.admit(until=None))
        await asyncio.sleep(0)
        adaptive.record(adaptive.ticket(2), rtt=None, refused=True, now=0.0)
        second = await waiting

        assert second is not None
        assert 2 == adaptive.epoch
        assert 2 == second.epoch

    async def test_a_refusal_elsewhere_leaves_a_pace_alone(self):
        """Paced against a quota, a member's pace is its share: its own refusals tell."""
        flow = Flow(rate=None, max_connections=100)
        flow.adaptive._rate = 50.0
        flow.refused_elsewhere(0)

        assert (0, 50.0) == (flow.adaptive.epoch, flow.adaptive.rate)

    async def test_a_fleet_share_sets_the_places_until_a_refusal_here(self):
        """The fleet's share replaces the limit here (within the pool); a refusal here
        closes the places to the lowered limit at once, until the fleet's have settled."""
        flow, fleet = Flow(rate=None, max_connections=10), Fleet()
        flow.share(fleet)
        flow.fleet_share(7)
        assert 7 == flow.spare()
        flow.fleet_share(20)
        assert 10 == flow.spare()
        ticket = flow.try_admit()
        assert ticket is not None
        flow.done(ticket, Outcome(429))

        assert (1, 1) == (flow.adaptive.limit, flow._gate.capacity)

    async def test_spare_counts_free_places_beyond_the_waiters(self):
        """Four places, three held: one spare; two more waiting: minus one."""
        flow = Flow(rate=None, max_connections=100)
        for _ in range(3):
            flow.try_admit()
        assert 1 == flow.spare()
        flow.try_admit()
        waiters = [asyncio.create_task(flow.admit(until=None)) for _ in range(2)]
        await asyncio.sleep(0)

        assert -2 == flow.spare()
        for waiter in waiters:
            waiter.cancel()

    async def test_admit_gives_up_at_the_deadline(self):
        """A request that cannot start before `until` is not admitted."""
        flow = Flow(rate=None, max_connections=100)
        for _ in range(4):
            await flow.admit(until=None)
        loop = asyncio.get_running_loop()

        assert await flow.admit(until=loop.time() + 0.01) is None

    async def test_a_pace_past_the_deadline_gives_up_at_once(self):
        """Paced at 1/s: a request whose deadline comes first is not admitted, and its
        place goes back."""
        flow = Flow(rate=None, max_connections=100)
        loop = asyncio.get_running_loop()
        for level in (4, 2, 1, 1):  # refused even one at a time: paced
            flow.adaptive.record(flow.adaptive.ticket(level), rtt=None, refused=True, now=0.0)
        flow.adaptive._rate = 1.0
        await flow.admit(until=None)  # the first goes at once (the pause is long over)
        gate = flow._gate
        held = gate.in_use

        assert await flow.admit(until=loop.time() + 0.01) is None
        assert held == gate.in_use

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
    async def test_what_counts_as_overload(self, outcome, overload):
        """429, 503, Retry-After, timeouts and lost connections say 'too much': to
        ``is_overload``, and to ``Flow.done``, which has it inline (a refusal lowers the
        limit, the first one at epoch 1)."""
        assert overload == is_overload(outcome)
        flow = Flow(rate=None, max_connections=100)
        ticket = flow.try_admit()
        assert ticket is not None
        flow.done(ticket, outcome)
        assert overload == (flow.adaptive.epoch == 1)


class TestAutoWindow:
    """What an ``"auto"`` operation may hold: twice the pool, and while a request waits out
    a backoff, what the client may send meanwhile besides the pool (at most 16 pools): a
    refused page must not stall in-order work behind it."""

    @pytest.mark.parametrize(
        ("rate", "backoff", "window"),
        [
            (1000.0, 1.0, 1100),  # the pool and the pace's second
            (937.5, 1.0, 1038),  # rounded up
            (200.0, 0.5, 200),  # never less than twice the pool
            (1000.0, 2.0, 1600),  # 16 pools at most
            (None, 1.0, 1600),  # unpaced: as many as the server answers, 16 pools at most
            (None, 0.01, 1600),
        ],
    )
    def test_the_window_while_a_request_backs_off(self, rate, backoff, window):
        assert window == auto_window(100, rate, backoff)

    now = 0.0  # the flows' clock, which the tests move

    def flow(self, rate: float | None = None, *, rate_limit: float | None = None) -> Flow:
        """A flow on the test's clock (``self.now``), paced at ``rate`` if given."""
        flow = Flow(rate=None if rate_limit is None else RateLimit(rate_limit), max_connections=100)
        flow.adaptive._rate = rate
        flow._clock = lambda: self.now
        return flow

    def test_twice_the_pool_until_a_request_backs_off(self):
        assert 200 == self.flow().auto_window()
        assert 200 == self.flow(1000.0).auto_window()

    def test_unpaced_16_pools_while_a_request_backs_off_then_twice_the_pool(self):
        flow = self.flow()
        flow.backing_off(1.0)
        assert 1600 == flow.auto_window()

        self.now = 1.0
        assert 200 == flow.auto_window()

    def test_paced_what_the_pace_sends_in_the_backoff(self):
        flow = self.flow(1000.0)
        flow.backing_off(0.25)

        assert 350 == flow.auto_window()

    def test_a_rate_limit_paces_it_too(self):
        flow = self.flow(rate_limit=500.0)
        flow.backing_off(1.0)

        assert 600 == flow.auto_window()

    def test_the_adaptive_pace_comes_before_the_rate_limit(self):
        flow = self.flow(300.0, rate_limit=500.0)
        flow.backing_off(1.0)

        assert 400 == flow.auto_window()

    def test_backoffs_at_once_hold_the_widest_until_the_last_ends(self):
        flow = self.flow(1000.0)
        flow.backing_off(1.0)
        self.now = 0.5
        flow.backing_off(0.1)  # another, shorter, while the first goes on
        assert 1100 == flow.auto_window()

        self.now = 1.0
        flow.backing_off(0.25)  # the others over
        assert 350 == flow.auto_window()

    async def test_widened_is_done_at_once_when_the_window_is_wide(self):
        flow = self.flow()
        flow.backing_off(1.0)

        assert flow.widened().done()

    async def test_widened_is_done_when_a_backoff_makes_it_wide(self):
        flow = self.flow()
        widened = flow.widened()
        assert not widened.done()
        assert widened is flow.widened()  # one future for every waiter

        flow.backing_off(1.0)
        assert widened.done()

    async def test_a_backoff_that_leaves_it_at_twice_the_pool_leaves_widened_pending(self):
        flow = self.flow(100.0)
        widened = flow.widened()
        flow.backing_off(1.0)  # 100 + 100

        assert not widened.done()

    async def test_widened_is_new_once_the_backoff_is_over(self):
        flow = self.flow()
        flow.backing_off(1.0)
        assert flow.widened().done()
        self.now = 1.0

        assert not flow.widened().done()
