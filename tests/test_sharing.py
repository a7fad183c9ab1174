"""A fleet member's decisions, without Redis or a loop: the circuit, the quota's shape and
leases, the leased slots, when a member of the in-flight semaphore talks to Redis, and
what of the fleet's refusals is news to a member."""

from __future__ import annotations

import math

import pytest

from segments_async._flow import rate_burst
from segments_async._retry import Failure, RetryBudget
from segments_async._sharing import (
    HURRY_EVERY,
    RENEW_EVERY,
    SHARE_EVERY,
    Circuit,
    Membership,
    PaceReport,
    QuotaShape,
    RateSlots,
    RefusalNews,
    capped_start,
    lease_size,
    pace_report,
)

# --------------------------------------------------------------------------- the circuit


def test_an_outage_is_reported_once_when_it_starts_and_once_when_it_ends():
    circuit = Circuit()
    assert circuit.up
    assert [True, False, False] == [circuit.failed(now) for now in (0.0, 1.0, 3.0)]
    assert [True, False] == [circuit.recovered(), circuit.recovered()]


def test_a_redis_that_stays_down_is_probed_ever_less_often_up_to_a_cap():
    circuit = Circuit()
    waits = []
    now = 0.0
    for _ in range(8):
        circuit.failed(now)
        waits.append(circuit.retry_at - now)
        assert not circuit.probe_due(circuit.retry_at - 0.001)
        assert circuit.probe_due(circuit.retry_at)
        now = circuit.retry_at
    assert [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0] == waits


def test_after_a_recovery_the_next_outage_starts_with_the_short_wait():
    circuit = Circuit()
    for now in (0.0, 1.0, 2.0):
        circuit.failed(now)
    circuit.recovered()
    circuit.failed(10.0)
    assert 10.5 == circuit.retry_at


def test_no_probe_is_due_while_up():
    assert not Circuit().probe_due(1e9)


# --------------------------------------------------------------------------- the quota


@pytest.mark.parametrize("per_second", [0.5, 1, 10, 15, 200, 5000])
def test_the_quota_never_allows_more_than_the_rate_plus_the_documented_burst(per_second):
    shape = QuotaShape(per_second, rate_burst(per_second))
    late_slots = shape.grace / shape.interval
    # Slots used late bunch with those on time: within the burst (beyond the few
    # milliseconds' grace that any slot gets), and with half of it left for jitter.
    assert 1 + max(0, late_slots - 0.005 * per_second) <= max(1, shape.burst / 2 + 0.5)
    assert shape.grace >= 0.005


@pytest.mark.parametrize(
    ("per_second", "waiting", "taken", "seconds", "expected"),
    [
        (200, 0, 0, 10.0, 1),  # nothing known: one slot
        (200, 3, 0, 10.0, 3),  # for the requests waiting
        (200, 0, 35, 0.5, 7),  # a tenth of a second at the pace of the last lease (70/s)
        (200, 50, 0, 1.0, 20),  # never more than a tenth of a second of the quota
        (200, 2, 60, 0.1, 20),
        (200, 0, 1, 5.0, 1),  # one request now and then: one slot at a time
        (5, 4, 4, 0.1, 1),  # at least one, even under one request per tenth of a second
        (1e6, 16, 40_000, 0.5, 8000),  # 80,000/s taken: 8,000, one lease a tenth of a second
        (1e6, 16, 16, 0.0, 1600),  # the same instant: counted as a millisecond
    ],
)
def test_lease_size(per_second, waiting, taken, seconds, expected):
    shape = QuotaShape(per_second, rate_burst(per_second))
    assert expected == lease_size(shape, waiting, taken, seconds)


@pytest.mark.parametrize(
    ("waiting", "taken", "seconds", "expected"),
    [
        (0, 0, 10.0, 5),  # nothing taken yet: a tenth of a second of the share (50/s)
        (0, 150, 1.0, 5),  # one that took far more than its share leases no more
        (0, 1, 1.0, 5),  # ...nor one that took less, less
        (8, 0, 1.0, 8),  # for the requests waiting
        (50, 0, 1.0, 20),  # never more than a tenth of a second of the whole pace
    ],
)
def test_a_lease_of_the_shared_pace_is_sized_by_the_even_share(waiting, taken, seconds, expected):
    shape = QuotaShape(200, rate_burst(200))
    assert expected == lease_size(shape, waiting, taken, seconds, share=50.0)


# --------------------------------------------------------------------------- leased slots


def test_slots_are_taken_in_order_each_once():
    slots = RateSlots(grace=0.01)
    slots.add(10.0, 0.1, 3, now=9.0)
    assert 3 == len(slots)
    assert [10.0, 10.1, 10.2] == [pytest.approx(slots.take(9.0)) for _ in range(3)]
    assert slots.take(9.0) is None


def test_slots_already_due_are_all_usable_at_once():
    """A lease after an idle spell starts in the past: the burst."""
    slots = RateSlots(grace=0.01)
    slots.add(9.75, 0.1, 5, now=10.0)  # 9.75, 9.85, 9.95 are due; 10.05 and 10.15 are not
    assert [10.0, 10.0, 10.0, 10.05, 10.15] == [pytest.approx(slots.take(10.0)) for _ in range(5)]


def test_a_slot_nobody_took_in_time_is_dropped():
    slots = RateSlots(grace=0.05)
    slots.add(10.0, 0.1, 4, now=10.0)  # 10.0, 10.1, 10.2, 10.3
    assert pytest.approx(10.2) == slots.take(10.24)  # 10.0 and 10.1 are too old
    assert 1 == len(slots)
    assert slots.take(10.36) is None
    assert 0 == len(slots)


def test_a_slot_put_back_is_taken_first_and_keeps_its_time():
    slots = RateSlots(grace=0.05)
    slots.add(10.0, 0.1, 2, now=9.0)
    first = slots.take(9.0)
    assert first is not None
    slots.put_back(first)
    assert [10.0, 10.1] == [pytest.approx(slots.take(9.0)) for _ in range(2)]


def test_slots_of_several_leases_follow_each_other():
    slots = RateSlots(grace=0.05)
    slots.add(10.0, 0.5, 2, now=9.0)
    slots.add(11.0, 0.5, 1, now=9.0)
    slots.put_back(10.75)
    assert [10.0, 10.5, 10.75, 11.0] == [slots.take(9.0) for _ in range(4)]


# --------------------------------------------------------------------------- in-flight slots


def synced(allotted: int, share: int, in_use: int = 0, at: float = 0.0) -> Membership:
    member = Membership()
    member.answered(at, allotted, share, in_use)
    return member


def test_a_new_member_talks_to_redis_at_once():
    assert 5.0 == Membership().next_sync(5.0, want=0, in_use=0)


def test_a_member_with_nothing_held_or_wanted_stays_quiet():
    assert math.inf == synced(0, 4).next_sync(100.0, want=0, in_use=0)


@pytest.mark.parametrize(
    ("member", "want", "in_use", "due"),
    [
        (synced(4, 4, in_use=4), 4, 4, RENEW_EVERY),  # holds what it wants: renew only
        (synced(4, 4, in_use=4), 9, 4, RENEW_EVERY),  # wants more, but has its fair share
        (synced(2, 4, in_use=2), 9, 2, HURRY_EVERY),  # below its share: ask again soon
        (synced(2, 4, in_use=6), 6, 2, HURRY_EVERY),  # Redis counts 6, may use 2: give back
        (synced(8, 8, in_use=8), 2, 2, HURRY_EVERY),  # holds far more than it wants
        (synced(8, 8, in_use=8), 5, 5, RENEW_EVERY),  # a little more: not worth a round trip
    ],
)
def test_when_a_member_talks_to_redis(member, want, in_use, due):
    assert pytest.approx(due) == member.next_sync(0.0, want=want, in_use=in_use)


def test_redis_counts_at_least_what_a_member_has_in_use():
    assert 6 == synced(2, 4, in_use=6).recorded
    assert 4 == synced(4, 4, in_use=1).recorded


# --------------------------------------------------------------------------- refusals


def test_a_busy_member_hears_the_fleet_now_and_then_and_an_idle_one_never():
    news = RefusalNews()
    assert 0.0 == news.next_sync(0.0, busy=True)
    # The first count is no news: it came before.
    assert (False, 1.0) == news.heard(0.0, 3, mine=False, members=4)
    assert SHARE_EVERY == news.next_sync(0.01, busy=True)
    assert math.inf == news.next_sync(0.01, busy=False)
    # Idle, it forgot the counts: busy again, it hears at once, and what came meanwhile
    # (refusals, members that left) is no news.
    assert 0.02 == news.next_sync(0.02, busy=True)
    assert (False, 1.0) == news.heard(0.02, 7, mine=False, members=1)


def test_a_refusal_here_is_told_at_once_and_is_not_news_when_it_comes_back():
    news = RefusalNews()
    news.heard(0.0, 3, mine=False, members=2)
    news.refused(0.004)
    news.refused(0.001)
    assert 0.005 == news.next_sync(0.005, busy=True)
    assert 0.004 == news.take()
    assert news.take() is None
    assert (False, 1.0) == news.heard(0.006, 4, mine=True, members=2)
    # Another member's, and this one's counted with it: news.
    assert (True, 1.0) == news.heard(0.06, 6, mine=True, members=2)
    assert (False, 1.0) == news.heard(0.11, 6, mine=False, members=2)
    assert (True, 1.0) == news.heard(0.16, 7, mine=False, members=2)


def test_the_share_of_members_that_leave_goes_to_those_that_stay():
    news = RefusalNews()
    news.heard(0.0, 0, mine=False, members=4)
    assert (False, 4 / 3) == news.heard(0.05, 0, mine=False, members=3)
    assert (False, 3.0) == news.heard(0.1, 0, mine=False, members=1)
    # A member that joins takes nothing: its refusals lower every limit.
    assert (False, 1.0) == news.heard(0.15, 0, mine=False, members=2)
    assert (False, 2.0) == news.heard(0.2, 0, mine=False, members=0)  # its own gone


def test_what_the_fleet_counted_while_redis_was_lost_is_no_news_once_back():
    news = RefusalNews()
    news.heard(0.0, 3, mine=False, members=4)
    news.lost(0.05)
    assert 0.05 + SHARE_EVERY == news.next_sync(0.06, busy=True)
    assert (False, 1.0) == news.heard(0.1, 9, mine=False, members=1)
    assert (True, 1.0) == news.heard(0.15, 10, mine=False, members=1)


def test_the_fair_share_waits_until_the_members_limits_settle():
    news = RefusalNews()
    news.heard(0.0, 3, mine=False, members=2)
    assert news.share(10) is None  # the first exchange: nothing settled yet
    news.heard(0.05, 3, mine=False, members=2)
    assert news.share(10) is None
    news.heard(0.1, 3, mine=False, members=3)  # a member joined: it told its limit
    assert 3 == news.share(10)
    # A refusal, or a member that left: the others tell their new limits next time.
    for counted, members in ((4, 3), (4, 2)):
        news.heard(0.15, counted, mine=False, members=members)
        assert news.share(10) is None
        news.heard(0.2, counted, mine=False, members=members)
        assert news.share(10) is None
    news.heard(0.25, 4, mine=False, members=2)
    assert 5 == news.share(10)
    news.lost(0.3)
    news.heard(0.35, 4, mine=False, members=2)
    assert news.share(10) is None


@pytest.mark.parametrize(
    ("rate", "shared", "measured", "refused", "expected"),
    [
        (None, None, False, None, (0.0, PaceReport.NOT_PACED)),
        (None, 40.0, False, None, (0.0, PaceReport.NOT_PACED)),  # no longer paced
        # Begins to pace from a handful of answers: the rate the server answered at, to
        # stand if larger than the fleet's pace (never added: each is of the whole at best).
        (70.0, None, False, 100.0, (100.0, PaceReport.JOIN_LARGER)),
        (0.5, None, False, None, (0.5, PaceReport.JOIN_LARGER)),
        # ...from a share it measured sending unpaced: its pace, added.
        (35.0, None, True, 50.0, (35.0, PaceReport.JOIN_ADD)),
        # Paced, with a share of the fleet's pace: what it learnt since.
        (46.0, 50.0, False, 50.0, (-4.0, PaceReport.CHANGE)),  # refused: settled lower
        (52.5, 50.0, True, 50.0, (2.5, PaceReport.CHANGE)),  # grown along its curve
    ],
)
def test_what_a_member_tells_of_its_pace(rate, shared, measured, refused, expected):
    assert expected == pace_report(rate, shared, measured, refused)


def test_a_member_takes_the_fleets_slots_at_most_one_and_a_half_shares_apart():
    earliest = 0.0
    starts = []
    for when in (1.0, 1.001, 1.002, 2.0):  # slots 1 ms apart, then one much later
        start, earliest = capped_start(when, earliest, share=50.0)
        starts.append(start)

    assert [1.0, 1.0 + 1 / 75, 1.0 + 2 / 75, 2.0] == pytest.approx(starts)


# --------------------------------------------------------------------------- the retry budget


def test_a_budget_alone_keeps_no_account_for_a_fleet():
    budget = RetryBudget()
    budget.acquire(Failure.TIMEOUT)
    budget.record_success(None)
    assert 0 == budget.unsynced


def test_a_shared_budget_counts_what_changed_here_and_adopts_the_fleets_count():
    calls = []
    budget = RetryBudget(capacity=100)
    budget.on_spend = lambda: calls.append(budget.unsynced)
    assert 10 == budget.acquire(Failure.TIMEOUT)
    assert 5 == budget.acquire(Failure.CONNECT)
    budget.record_success(5)
    assert [-10, -15] == calls
    assert -10 == budget.unsynced
    # The fleet has 40 left, counting none of this yet: 30 here.
    budget.adopt(40)
    assert 30 == budget.tokens
    budget.adopt(500)
    assert 100 == budget.tokens
    budget.unsynced = -20
    budget.adopt(5)
    assert 0 == budget.tokens
