"""What a member of a fleet decides without I/O: how many quota slots to lease, which
leased slot a request takes, when to tell Redis about its share of the in-flight slots,
when to exchange news of refusals with the fleet and what is news, what to tell of its
pace and when its cap lets a paced request start, and whether Redis is worth asking at
all (the circuit).

``_fleet.py`` carries these decisions out against Redis; everything here takes the time
as an argument (any monotonic clock, in seconds), so tests drive it without a loop.
"""

from __future__ import annotations

import collections
import enum
import math
from typing import Final

__all__ = [
    "Circuit",
    "Membership",
    "PaceReport",
    "QuotaShape",
    "RateSlots",
    "RefusalNews",
    "capped_start",
    "lease_size",
    "pace_report",
]

# --------------------------------------------------------------------------- the circuit

#: After Redis failed, the first try again comes this much later, then twice as late each
#: time it fails again, up to the cap: a Redis that is down costs a probe now and then.
_FIRST_RETRY: Final = 0.5
_MAX_RETRY: Final = 4.0


class Circuit:
    """Whether Redis is worth asking now: ``up``, or down until ``retry_at``.

    ``failed`` and ``recovered`` say whether the state just changed, so that an outage is
    logged once when it starts and once when it ends, never once per request.
    """

    __slots__ = ("_wait", "retry_at", "up")

    def __init__(self) -> None:
        self.up = True  # optimistic: the first command finds out
        self.retry_at = 0.0
        self._wait = _FIRST_RETRY

    def probe_due(self, now: float) -> bool:
        """Down, and time to see whether it is back."""
        return not self.up and now >= self.retry_at

    def failed(self, now: float) -> bool:
        """A command failed or timed out; True if Redis was up until now."""
        was_up = self.up
        self._wait = _FIRST_RETRY if was_up else min(2 * self._wait, _MAX_RETRY)
        self.up = False
        self.retry_at = now + self._wait
        return was_up

    def recovered(self) -> bool:
        """A command succeeded; True if Redis was down until now."""
        was_down = not self.up
        self.up = True
        return was_down


# --------------------------------------------------------------------------- the quota

#: A lease covers at most this much of the quota: a tenth of a second's worth of slots.
LEASE_SECONDS: Final = 0.1
#: A leased slot stays usable at least this long after its time (a busy loop is late).
_MIN_GRACE: Final = 0.005


class QuotaShape:
    """A quota of ``per_second`` requests with a burst of ``burst``, as leases see it.

    A lease's start times are ``interval`` apart from the moment it is granted: the fleet
    takes none of the burst ahead of time, since many processes on a busy machine send
    late and in bunches, and the server's burst is what absorbs that. A start time stays
    usable ``grace`` seconds after it (half the burst's worth, at least ``_MIN_GRACE``),
    so that in any window of ``w`` seconds at most ``per_second * w + burst`` requests
    start, fleet-wide.
    """

    __slots__ = ("burst", "grace", "interval", "max_lease", "per_second")

    def __init__(self, per_second: float, burst: float) -> None:
        self.per_second = per_second
        self.burst = burst
        self.interval = 1.0 / per_second
        self.grace = max(_MIN_GRACE, (burst - 1) / 2 * self.interval)
        self.max_lease = max(1, math.ceil(per_second * LEASE_SECONDS))


def lease_size(
    shape: QuotaShape, waiting: int, taken: int, seconds: float, *, share: float | None = None
) -> int:
    """Slots to lease: for the requests waiting, or a tenth of a second's worth at the
    pace this process took ``taken`` slots in the last ``seconds`` (at most the quota's).

    Small for a process that sends little, so that it reserves little of the quota that
    it would then leave unused; one Redis round trip a tenth of a second for one that
    sends a lot. Given ``share`` (requests per second: an even share of the quota), a
    tenth of a second's worth of that instead: members that all want more than their
    share then lease alike, one lease each in turn, and so take alike (sized by what each
    took, one that got ahead would lease more, and get further ahead).
    """
    pace = taken / max(seconds, 1e-3) if share is None else share
    return max(1, min(shape.max_lease, max(waiting, math.ceil(pace * LEASE_SECONDS))))


class _Run:
    """``count`` slots, the first at ``first``, then one every ``interval`` seconds."""

    __slots__ = ("count", "first", "interval")

    def __init__(self, first: float, interval: float, count: int) -> None:
        self.first = first
        self.interval = interval
        self.count = count


class RateSlots:
    """The start times this process leased from the fleet's quota, taken in order.

    A slot that nobody took within ``grace`` of its time is dropped: it belonged to the
    quota of that moment, and using it later would add to the next moment's requests.
    """

    __slots__ = ("_runs", "grace")

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self._runs: collections.deque[_Run] = collections.deque()

    def __len__(self) -> int:
        return sum(run.count for run in self._runs)

    def add(self, first: float, interval: float, count: int, now: float) -> None:
        """``count`` slots from ``first`` on, ``interval`` apart (after those held).

        Slots already due (a lease after an idle spell starts in the past: the burst)
        are all usable at once, ``now``.
        """
        due = 0 if first > now else min(count, math.floor((now - first) / interval) + 1)
        if due:
            self._runs.append(_Run(now, 0.0, due))
        if count > due:
            self._runs.append(_Run(first + due * interval, interval, count - due))

    def last(self) -> float:
        """The time of the latest slot held (-inf: none)."""
        runs = self._runs
        if not runs:
            return -math.inf
        return max(run.first + (run.count - 1) * run.interval for run in runs)

    def drop_stale(self, now: float) -> None:
        """Forget the slots too old to be used."""
        stale = now - self.grace
        runs = self._runs
        while runs:
            run = runs[0]
            if run.first >= stale:
                return
            if run.interval <= 0:
                skip = run.count
            else:
                skip = min(run.count, math.floor((stale - run.first) / run.interval) + 1)
            run.first += skip * run.interval
            run.count -= skip
            if run.count:
                return
            runs.popleft()

    def take(self, now: float) -> float | None:
        """The earliest usable slot's time (it may be in the future), or None if none."""
        self.drop_stale(now)
        runs = self._runs
        if not runs:
            return None
        run = runs[0]
        when = run.first
        run.count -= 1
        if run.count:
            run.first += run.interval
        else:
            runs.popleft()
        return when

    def put_back(self, when: float) -> None:
        """A slot taken by a request that was cancelled before it started."""
        runs = self._runs
        index = 0
        while index < len(runs) and runs[index].first < when:
            index += 1
        runs.insert(index, _Run(when, 0.0, 1))


# --------------------------------------------------------------------------- in-flight slots

#: A member's lease on its in-flight slots lasts this long unless renewed: a process that
#: dies (SIGKILL) gives its slots back within it.
LEASE_TTL: Final = 3.0
#: A live member renews this often (a slow tick never lets its lease lapse), and so
#: learns within this time that a newcomer shares the slots: its share went down.
RENEW_EVERY: Final = 0.25
#: A member that needs more than it holds (or holds more than it may) asks this often.
HURRY_EVERY: Final = 0.02


class Membership:
    """One member's share of the fleet's in-flight slots, as Redis last answered.

    ``allotted``: slots it may use now; ``share``: its fair share (what it would get if
    the others gave back what they hold beyond theirs); ``recorded``: what Redis counts as
    held by it (never less than what it had in use when it last told Redis).
    """

    __slots__ = ("allotted", "recorded", "share", "synced_at")

    def __init__(self) -> None:
        self.allotted = 0
        self.share = 0
        self.recorded = 0
        self.synced_at: float | None = None

    def answered(self, now: float, allotted: int, share: int, in_use: int) -> None:
        """Redis answered a sync sent when ``in_use`` slots were in use here."""
        self.synced_at = now
        self.allotted = allotted
        self.share = share
        self.recorded = max(allotted, in_use)

    def next_sync(self, now: float, want: int, in_use: int) -> float:
        """When to tell Redis next (a time; ``now`` or earlier means at once).

        Soon when more is needed and the fair share allows it, when Redis counts slots
        that this member no longer uses and may not reuse, or when it holds far more
        than it wants; otherwise when the lease needs renewing.
        """
        synced_at = self.synced_at
        if synced_at is None:
            return now
        if want == 0 and in_use == 0 and self.recorded == 0:
            return math.inf  # nothing held and nothing wanted: no lease to renew
        allotted = self.allotted
        hurry = (
            (want > allotted and allotted < self.share)
            or self.recorded > max(in_use, allotted)
            or allotted - want >= max(1, allotted // 2)
        )
        return synced_at + (HURRY_EVERY if hurry else RENEW_EVERY)


# --------------------------------------------------------------------------- shared refusals

#: A member with requests in flight or waiting hears of the fleet's refusals this often (a
#: few round trips of a typical API); one refused here is told at once.
SHARE_EVERY: Final = 0.05
#: A refusal is news to the fleet unless its request was sent before the members could
#: have heard of the last one (told, then heard within ``SHARE_EVERY``, with a Redis round
#: trip each way): the same overload, seen late, must not lower every limit again.
HEAR_WITHIN: Final = 2 * SHARE_EVERY
#: Exchanges without a refusal or a member that left before the members' limits are
#: taken as settled: each tells its new limit at the exchange after the one it heard at.
_SETTLED: Final = 2
#: A member (of the quota, of the refusals) counts for this long after Redis last heard
#: from it: one that went idle or was killed is no longer counted after it. It is longer
#: than the usual ``Retry-After`` of 1 s, which a member may spend with nothing in flight.
MEMBER_SECONDS: Final = 2.0


class RefusalNews:
    """One member's account of the refusals that lowered the fleet's limits, and of the
    members that take part.

    A refusal that lowered this member's limit is told to Redis at the next exchange (at
    once); Redis counts the fleet's refusals that were news (see ``HEAR_WITHIN``). When
    the count rose by more than this member's own, another member was refused: this
    member lowers its limit too. When fewer members take part than at the last exchange,
    this one takes over its part of their share. An idle member exchanges nothing and
    forgets both counts, so that what it hears once busy again is what happened
    meanwhile, not while it slept.
    """

    __slots__ = ("counted", "members", "quiet", "synced_at", "unsent")

    def __init__(self) -> None:
        self.unsent: float | None = None  # when the latest request refused here was sent
        self.counted: int | None = None  # the fleet's refusals, as last heard
        self.members = 0  # the members, as last heard (0: none heard)
        self.quiet = 0  # exchanges in a row without a refusal or a member that left
        self.synced_at: float | None = None

    def refused(self, sent: float) -> None:
        """A request sent at ``sent`` was refused here, and that lowered the limit."""
        self.unsent = sent if self.unsent is None else max(self.unsent, sent)

    def next_sync(self, now: float, *, busy: bool) -> float:
        """When to exchange next (a time; ``now`` or earlier means at once)."""
        if self.unsent is not None:
            return now
        if not busy:
            self.lost(None)  # forgotten: busy again, it hears at once
            return math.inf
        if self.synced_at is None:
            return now
        return self.synced_at + SHARE_EVERY

    def take(self) -> float | None:
        """What to tell Redis: the send time of the latest refusal here not yet told."""
        sent, self.unsent = self.unsent, None
        return sent

    def heard(self, now: float, counted: int, mine: bool, members: int) -> tuple[bool, float]:
        """Redis counts ``counted`` refusals (``mine``: this member's own among them, just
        now) and ``members``: whether another member's refusal is news here, and by how
        much this member's share grew (1.0: it did not)."""
        known, self.counted, self.synced_at = self.counted, counted, now
        before, self.members = self.members, max(1, members)
        news = known is not None and counted - known - mine > 0
        calm = known == counted and before <= self.members
        self.quiet = self.quiet + 1 if calm else 0
        return news, before / self.members if before > self.members else 1.0

    def share(self, total: int) -> int | None:
        """This member's fair share of the limits the members told (``total``): as many
        in flight as each of them, were they equal; None while those limits may still be
        moving (a refusal or a member that left was heard within the last two exchanges,
        and the members tell their new limits at their next exchange)."""
        if self.quiet < _SETTLED:
            return None
        return max(1, round(total / self.members))

    def lost(self, now: float | None) -> None:
        """Redis did not answer (or this member went idle): what is counted meanwhile
        will be no news when it answers again."""
        self.counted = None
        self.members = 0
        self.quiet = 0
        self.synced_at = now


class PaceReport(enum.IntEnum):
    """How a member tells the fleet's pace (kept in Redis) what it learnt."""

    NOT_PACED = 0  # it does not pace (or no longer): not counted among the paced
    CHANGE = 1  # its pace moved by this much since it took its share (a refusal, growth)
    JOIN_LARGER = 2  # it begins to pace, from an estimate of its own: the larger stands
    JOIN_ADD = 3  # it begins to pace, from a measured share of its own: added


def pace_report(
    rate: float | None, shared: float | None, measured: bool, refused: float | None = None
) -> tuple[float, int]:
    """What a member tells of its pace (``rate``, None when it does not pace), given the
    share of the fleet's pace it took at its last exchange (``shared``, None if none), and
    how (a ``PaceReport``); ``refused``: the rate the server answered at when it refused
    (pacing began at 70 % of it).

    The fleet's pace is one sum, kept in Redis, that each paced member takes an even share
    of, and that moves as their paces move: down when one is refused (its pace settles
    below what it had), up as one grows back along its curve. What a member that joins
    brings depends on where its estimate came from. At the start of a fleet every member
    finds the quota within a few round trips, each from a handful of answers (``measured``
    false), and each such estimate is of the whole quota at best (a burst the server
    allowed makes it more): summed, four members would send four times the quota, so the
    larger of the fleet's pace and its estimate stands (one refused before it had answers
    estimates a trickle: the fleet's stands). That estimate is the rate the server
    answered at, not 70 % of it: a member's is of its own part of the server, and one
    client alone starts at 70 % of the whole. One that sent unpaced a while measured what
    it had, a share the others never had: its pace is added.
    """
    if rate is None:
        return 0.0, PaceReport.NOT_PACED
    if shared is None and measured:
        return rate, PaceReport.JOIN_ADD
    if shared is None:
        return max(rate, refused or rate), PaceReport.JOIN_LARGER
    return rate - shared, PaceReport.CHANGE


#: On the fleet's shared pace a member takes at most this many times its even share: the
#: pace serves whichever member asks, and one whose requests all wait out a
#: ``Retry-After`` (four workers starting together find the quota together) asks for
#: nothing meanwhile; another that took the whole pace then would finish far ahead.
MOST_SHARE: Final = 1.5


def capped_start(when: float, earliest: float, share: float) -> tuple[float, float]:
    """When a request may start on a slot of the fleet's shared pace at ``when``, given
    the earliest this member's cap allows (``earliest``) and its even ``share`` of the
    pace (requests per second): that time, and the earliest for the next."""
    start = max(when, earliest)
    return start, start + 1.0 / (MOST_SHARE * share)
