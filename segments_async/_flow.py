"""Flow control: how many requests may be in flight, and how fast they may start.

``AdaptiveLimit`` learns, from the answers, how many requests ``"auto"`` operations may
keep in flight (and, against a quota, how fast they may start); it is pure: no clock, no
I/O. ``Gate`` is an ``asyncio.Semaphore`` whose capacity can change and whose waiters are
served in arrival order. ``RateLimit`` is the fixed ceiling of ``rate_limit=`` (aiolimiter),
which the transport applies last, once a request has its connection. ``Flow`` holds both
for a client: ``admit`` before an ``"auto"`` attempt, ``done`` after.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import math
import time
from collections.abc import Callable
from typing import Final, Protocol

from aiolimiter import AsyncLimiter

from ._retry import Failure, Outcome

__all__ = [
    "ARRIVAL",
    "MIN_RATE",
    "AdaptiveLimit",
    "Flow",
    "Gate",
    "Pace",
    "RateLimit",
    "SharedLimit",
    "Ticket",
    "auto_window",
    "check_rate_limit",
    "loop_clock",
    "pace_of",
    "rate_burst",
]


class Gate:
    """At most ``capacity`` holders at once; the others wait, first come first served.

    ``try_acquire`` takes a free place without awaiting (the fast path of every request);
    ``acquire`` waits for one. A waiter that is cancelled after it was handed a place
    passes the place on, so cancellation never leaks capacity.
    """

    __slots__ = ("_capacity", "_in_use", "_waiters")

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._in_use = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def capacity(self) -> int:
        """How many holders may hold the gate at once."""
        return self._capacity

    @capacity.setter
    def capacity(self, value: int) -> None:
        self._capacity = value
        self._wake()

    @property
    def in_use(self) -> int:
        """How many hold the gate now."""
        return self._in_use

    @property
    def waiting(self) -> int:
        """How many wait for a place."""
        return len(self._waiters)

    def try_acquire(self) -> bool:
        """Take a place if one is free and nobody waits for it before us."""
        if self._in_use < self._capacity and not self._waiters:
            self._in_use += 1
            return True
        return False

    async def acquire(self) -> None:
        """Wait for a place (in arrival order) and take it."""
        if self.try_acquire():
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a place while being cancelled: pass it on
            else:
                self._discard(waiter)
            raise

    def release(self) -> None:
        """Give a place back, to the longest waiter if any."""
        self._in_use -= 1
        if self._waiters:
            self._wake()

    def _wake(self) -> None:
        waiters = self._waiters
        while waiters and self._in_use < self._capacity:
            waiter = waiters.popleft()
            if not waiter.done():
                self._in_use += 1
                waiter.set_result(None)

    def _discard(self, waiter: asyncio.Future[None]) -> None:
        with contextlib.suppress(ValueError):  # already handed out or dropped
            self._waiters.remove(waiter)


def check_rate_limit(value: object) -> float | None:
    """A ``rate_limit`` (requests per second) as a positive float, or None for no limit."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"rate_limit must be requests per second (a number), got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(
            f"rate_limit must be a positive number of requests per second, got {value!r}"
        )
    return float(value)


def rate_burst(per_second: float) -> float:
    """How many requests may start at once after a pause, under ``rate_limit``.

    A tenth of a second's worth, and at least one: a whole second's worth at once would
    look like a spike to a server that counts over shorter windows.
    """
    return max(1.0, per_second / 10)


class Pace(Protocol):
    """What ``rate_limit`` is to the call loop: the client's own, or the fleet's."""

    per_second: float

    async def acquire(self) -> None: ...


def pace_of(rate_limit: object, shared: Callable[[float], Pace] | None = None) -> Pace | None:
    """The ``rate_limit`` option, checked: the client's own pace (or, given ``shared``, its
    fleet's), or None for no limit."""
    per_second = check_rate_limit(rate_limit)
    if per_second is None:
        return None
    return (RateLimit if shared is None else shared)(per_second)


class RateLimit:
    """At most ``per_second`` requests start per second, client-wide (retries included).

    A leaky bucket (aiolimiter) that holds ``rate_burst`` requests: after a pause, a
    burst of that many may start at once, then requests start evenly spaced.
    """

    __slots__ = ("_limiter", "_loop", "per_second")

    def __init__(self, per_second: float) -> None:
        self.per_second = per_second
        self._limiter = self._new_limiter()
        self._loop: asyncio.AbstractEventLoop | None = None

    def _new_limiter(self) -> AsyncLimiter:
        burst = rate_burst(self.per_second)
        return AsyncLimiter(burst, burst / self.per_second)

    async def acquire(self) -> None:
        """Wait until a request may start (a waiter cancelled takes nothing)."""
        bound = self._loop
        if bound is None or bound.is_closed():
            # aiolimiter binds to the loop it runs in, and warns when it is used again
            # after that loop has ended: a client used by the next asyncio.run() gets a
            # fresh one.
            if bound is not None:
                self._limiter = self._new_limiter()
            self._loop = asyncio.get_running_loop()
        await self._limiter.acquire()


# --------------------------------------------------------------------------- adaptive limit

#: Where the current task's last request stood when it got its connection: how many
#: connections of the pool were in use then (it included, those still being made left
#: out), and when (``loop_clock``). Set by the owned pool's connector (see
#: ``Transport``), read by ``Flow.done`` for a refusal in slow start: a request still
#: waiting for a new connection is counted in flight but is not at the server yet, and in
#: slow start, when each new level needs new connections, a handful are.
ARRIVAL: Final[contextvars.ContextVar[tuple[int, float] | None]] = contextvars.ContextVar(
    "segments_async_arrival", default=None
)


def loop_clock(loop: asyncio.AbstractEventLoop) -> Callable[[], float]:
    """The loop's clock: ``time.monotonic`` itself under asyncio's own loops (their
    ``time()`` is just that; a quarter of the cost of ``get_running_loop().time()``), the
    loop's ``time`` under any other."""
    return time.monotonic if type(loop).time is asyncio.BaseEventLoop.time else loop.time


#: Where the limit starts, and how far beyond the level of an answer slow start may go
#: (while answers per second follow the level all the way; less as they stop following
#: it, down to 15 % beyond at ``_STARTUP_ELASTICITY``: HyStart++'s conservative slow
#: start, which keeps a queue that answers come late from being flooded).
_INITIAL: Final = 4
_START_GROWTH: Final = 1.5
#: ...and how low the answers alone may take it: below a few in flight, a client and a
#: server that take turns (one Python event loop each) idle while the other works, so the
#: curve measured there is the client's, and the limit walked down a flat curve to 1-2 (a
#: tenth slower than any fixed level on a Python app). Refusals still take it lower.
_FLOOR: Final = 4
#: How much of a step up in requests in flight must come back as answers per second (the
#: elasticity: 1 when there is no queue, 0 when more in flight only adds latency) for
#: slow start to go on (at 0.3, each half octave brings 11 % more: a server that gains
#: less is climbed by the hill climb); and for the hill climb, the knee: above it the limit
#: steps up, below it down (each only beyond the noise). At 0.07, a step of 20 % brings
#: 1.3 % more: a queue behind a busy client (its own loop batching a little more under
#: load) gains about that much per step past the server's capacity.
_STARTUP_ELASTICITY: Final = 0.3
_KNEE_ELASTICITY: Final = 0.07
#: Slow start ends on a band of levels whose elasticity is below ``_STARTUP_ELASTICITY``
#: by two standard errors, or by one once the band holds ``_EXIT_ANSWERS`` answers. With one
#: standard error at once, a band of 8-9 answers ended it on a Python app whose client was
#: its own bottleneck (-0.35 +- 0.49 between 13 and 16 in flight), at 7-22 where a fixed 64
#: is best, and the hill climb took a second to make that up, 20 % at a time.
_EXIT_SIGMAS: Final = 2.0
_EXIT_ANSWERS: Final = 16
#: ...and only once a band at this level or above says so. Below it, a band is a handful
#: of answers a few milliseconds long, which one pause of the machine (another process, a
#: collection, the host taking its CPU) decides: such pauses ended slow start at 5-15 in
#: flight on the app with 3 ms awaited, where a fixed 64 is best, and the hill climb took
#: most of the job to make that up. Going on past a lower knee costs latency, not answers,
#: and is given back at the exit: the limit goes down to the lowest band from which every
#: band above would have ended slow start.
_EXIT_LEVEL: Final = 24
#: The hill climb's cycle of phases, as shares of the limit: a probe up, a probe down,
#: then cruising (BBR's gain cycling, shorter). A probe lasts until a window of requests
#: sent in it has been answered in it; a cruising phase, a window of sends.
_CYCLE: Final = (1.25, 0.8, 1.0, 1.0)
_UP, _DOWN, _CRUISE = 0, 1, 2
#: How far one decision moves the limit (less than a probe, so that the probes around a
#: new limit overlap the old ones).
_STEP: Final = 1.2
#: Steps up in a row below a ceiling grow: the n-th is ``_STEP ** min(n, _MAX_STEPS)``.
#: Without a ceiling, the first ``_PLAIN_STEPS`` in a row are ``_STEP`` each, and those
#: after them grow the same way. On a slope all the way up (answers per second as the load
#: to the power 0.25, simulated), that took 1.02x a fixed 64's time against 1.06x with
#: every step ``_STEP``; from the second in a row, lucky cycles walked a noisy plateau up
#: to 51 in flight where the knee is 16 (test_a_noisy_plateau_holds_near_the_knee).
_MAX_STEPS: Final = 2
_PLAIN_STEPS: Final = 2
#: Answers a phase (or, in slow start, a level) needs before it is compared.
_MIN_SAMPLES: Final = 8
#: Cycles of probes pooled at one limit before a step down, and at most: then they start
#: afresh. One cycle says little: a probe lasts a round trip or two, and whatever else
#: the machine did meanwhile (another process, a collection) moves its answers more than
#: the level does; cycles pooled give the noise between cycles, which is the one that
#: counts (the answers within a probe share it). A step up takes two cycles as well, or
#: one beyond twice the noise between the last cycles: with one standard error and one
#: cycle, a lucky cycle now and then walked a noisy plateau up to the pool. Undecided
#: after ``_MAX_CYCLES``, the limit steps down if the cycles lean that way (the knee is
#: the smallest level within noise of the best).
_DOWN_CYCLES: Final = 2
_UP_CYCLES: Final = 2
_UP_SIGMAS: Final = 2.0
_MAX_CYCLES: Final = 8
#: How fast the noise between cycles follows what consecutive cycles show, and how much
#: one pair of cycles may move it: at most this many times the noise as it was (one cycle
#: a stall threw far off raised it enough to hold the next decisions for many cycles; a
#: lasting change of the noise still moves it, pair after pair).
_NOISE_GAIN: Final = 0.25
_NOISE_JUMP: Final = 4.0
#: Levels further apart than this are compared; closer ones say nothing through the noise.
_MIN_SPREAD: Final = 1.15
#: How fast the smoothed round trip follows the answers.
_RTT_GAIN: Final = 0.125
#: A refusal at this share of the highest level slow start was answered at, or less, says
#: the server counts requests per second: a capacity does not answer a level and refuse
#: half of it, a quota's burst lets the start through. Over the simulator's rejecting
#: servers, one client alone was refused at 1.2x that level or more. On an Intel host, the
#: benchmark's client counted its first refusal of a quota of 200/s at 5 after answers at
#: 10 (it reads its answers late), then its probe at 3 was refused and made a ceiling: 2 in
#: flight, 155 answers a second, 1.30x the ideal time in three runs of three. Not for a
#: fleet's member: the others' load gets levels it was answered at refused (the fleet has
#: its own evidence).
_BURST: Final = 0.5
#: After a refusal, the limit goes down to this share of the level that was refused.
_DECREASE: Final = 0.5
#: A refusal read within this share of the round trip was answered at once: the answers
#: the client read between sending it and reading it (its loop behind, under load) were
#: counted in its level but had left the server before it came. Read later, the loop was
#: too far behind to tell in what order the server answered (on the real client, refusals
#: read after 6-13 ms of a 26-32 ms round trip had 10-25 answers read meanwhile, under a
#: level 0-11 above the server's).
_QUICK_REFUSAL: Final = 0.2
#: Round trips to stay below a refused level before probing it; doubled per failed probe.
_PROBE_ROUND_TRIPS: Final = 100.0
_PROBE_MAX_DOUBLINGS: Final = 6
#: ...and at least this many seconds: a refused probe costs its request a ``Retry-After``
#: (a second, typically). The window covers it (``auto_window``: the client goes on
#: sending meanwhile), so only a job that ends within it waits for that request. At 10 s,
#: a client refused while others shared the server (processes without coordination)
#: stayed under that ceiling for 10 s after they had finished: four workers against 16
#: refusing slots took a median 3.40x one client's best time (25 runs), and 2.76x at 2 s
#: (22 runs), where one client alone on that 3 s job, its probe refused near the end,
#: took a median 3.46 s against 3.31 s.
_PROBE_MIN_SECONDS: Final = 2.0
#: Pacing after a quota's refusal: start at this share of the rate the server answered,
#: and grow back along CUBIC's curve (``_CUBIC_SCALE`` requests/s per s^3), flat near the
#: refused rate, like the AWS SDKs' adaptive mode. Refused while paced, the pace settles at
#: ``_RATE_SETTLE`` of what the server has let through since it began refusing (measured,
#: where the first estimate may include a burst the server allowed at the start), flat for
#: ``_RATE_PLATEAU`` seconds before CUBIC probes above it: a refusal costs a ``Retry-After``.
_RATE_DECREASE: Final = 0.7
_CUBIC_SCALE: Final = 0.4
_RATE_SETTLE: Final = 0.92
_RATE_PLATEAU: Final = 3.0
#: Paced, once the pace has held ``_CARRY_ROUND_TRIPS`` round trips without a refusal, the
#: limit carries it: at least ``_CARRY`` times what the pace keeps in flight (its rate
#: times the round trip), plus one, up to a ceiling. The pace says how fast; the limit the
#: refusal left would hold the client below its own pace, and a settle would then measure
#: that limit, not the server (a worker paced at 2-3 in flight after the first half
#: second's overload settled from 304/s to 140/s). Four processes without coordination
#: against 16 refusing slots took a median 3.38x one client's best time over 14 runs,
#: against 2.63x carried (alternated); against 12, 2.65x and 2.58x over 20.
#: Not in a fleet: a member's limit is its share of the fleet's, which the others hear.
_CARRY: Final = 1.5
_CARRY_ROUND_TRIPS: Final = 4.0
#: The slowest pace: one request every two seconds.
MIN_RATE: Final = 0.5
#: Answers remembered to measure the rate the server sustains.
_DELIVERIES: Final = 256
#: An ``"auto"`` operation holds at most this many pools of pages or items (in flight or
#: done and not yet consumed): while a request waits out a backoff, what the client sends
#: meanwhile (see ``Flow.auto_window``).
_WINDOW_MOST: Final = 16
#: Round trips shorter than this (a clock's granularity, a mock) count as this.
_MIN_RTT: Final = 1e-4


def auto_window(pool: int, rate: float | None, backoff: float) -> int:
    """How many pages or items an ``"auto"`` operation may hold while a request waits out
    a ``backoff`` (seconds): what the client sends in that time besides the ``pool`` at
    ``rate`` requests a second (None: unpaced, as many as the server answers), and at
    least twice the pool, at most ``_WINDOW_MOST`` pools (``Flow.backing_off``)."""
    most = _WINDOW_MOST * pool
    if rate is None:
        return most
    return min(most, max(2 * pool, pool + math.ceil(rate * backoff)))


def _scaled(limit: float, gain: float) -> float:
    """``limit`` times ``gain``, but at least one request more or less, and never below 1."""
    if gain > 1:
        return max(limit * gain, limit + 1)
    if gain < 1:
        return max(1.0, min(limit * gain, limit - 1))
    return limit


class _Samples:
    """Answers at one level (or in one phase): how many, their levels, their latencies.

    What they say is the rate they were answered at, by Little's law: requests in flight
    over the round trip. The round trip is the geometric mean, so that one slow answer
    among many (a jittery server) weighs as little as it matters.
    """

    __slots__ = ("count", "levels", "logs", "squares")

    def __init__(self) -> None:
        self.count = 0
        self.levels = 0.0
        self.logs = 0.0
        self.squares = 0.0

    def add(self, level: int, rtt: float) -> None:
        log = math.log(rtt)
        self.count += 1
        self.levels += level
        self.logs += log
        self.squares += log * log

    @property
    def level(self) -> float:
        return self.levels / self.count

    def _mean_and_variance(self) -> tuple[float, float]:
        """The mean log round trip, and the variance of that mean."""
        n = self.count
        mean = self.logs / n
        spread = max(0.0, self.squares - n * mean * mean) / (n - 1)
        return mean, spread / n

    def elasticity(self, higher: _Samples) -> tuple[float, float] | None:
        """How much of the step from these levels to ``higher`` came back as throughput,
        and the standard error of that.

        None when either has too few answers or the levels are too close to tell.
        """
        if self.count < _MIN_SAMPLES or higher.count < _MIN_SAMPLES:
            return None
        spread = math.log(higher.level / self.level)
        if spread < math.log(_MIN_SPREAD):
            return None
        low, low_variance = self._mean_and_variance()
        high, high_variance = higher._mean_and_variance()
        return 1.0 - (high - low) / spread, math.sqrt(low_variance + high_variance) / spread


def _ends(gain: tuple[float, float] | None, upper: _Samples) -> bool:
    """Whether the elasticity ``gain`` measured up to the band ``upper`` ends slow start:
    below ``_STARTUP_ELASTICITY`` by two standard errors, or by one once that band holds
    ``_EXIT_ANSWERS`` answers."""
    if gain is None:
        return False
    sigmas = 1.0 if upper.count >= _EXIT_ANSWERS else _EXIT_SIGMAS
    return gain[0] + sigmas * gain[1] < _STARTUP_ELASTICITY


class AdaptiveLimit:
    """How many requests ``"auto"`` operations may keep in flight, learnt from answers.

    Pure: ``now`` (seconds, any monotonic clock) comes in, nothing is awaited. It seeks
    the most answers per second, measured by Little's law (requests in flight over round
    trip) at each level, and holds where more in flight only adds latency. Rising latency
    alone is no queue: a server that batches answers more slowly *and* more per second.

    - **Slow start** (TCP, BBR's startup): from 4, one more per clean answer, never
      beyond half as much again as the level an answer proved (answers come a round trip
      late), while each half octave more still brings at least 11 % more answers per
      second (an elasticity of 0.3): it ends once a half octave brings less by two
      standard errors, or by one once 16 answers tell (a stall among a band's first few
      answers is no knee), and only at 24 in flight or more (below, a band is a few
      milliseconds of answers, which one pause of the machine decides). The climb then
      starts at the lower side of the knee, or lower where the bands below brought too
      little as well (a knee below 24, gone past). As the answers stop following the
      level all the way, slow start slows, to 15 % beyond at 0.3 (HyStart++'s
      conservative slow start): a queue whose answers come late is not flooded.
    - **Hill climb** (the .NET thread pool's, with BBR's gain cycling): a probe at 1.25
      times the limit, then one at 0.8 times. A round trip follows the load all along (an
      event loop, a server sharing its time), so a probe counts only requests sent once
      its level was reached (after its first window of sends) and answered within it. The
      elasticity between the two probes (how much of the extra in flight came back as
      answers per second), averaged over the cycles at one limit, decides: beyond the
      noise (a standard error between cycles, and at least what consecutive cycles have
      shown lately, which one pair of cycles moves at most fourfold: a probe lasts a round
      trip or two, and whatever else the machine does moves all its answers together)
      above 0.07 the limit steps up 20 % and probes again at once, below it it steps down
      20 %; in between, the limit is at the knee and cruises two windows of sends before
      the next probe, as it does when a step up would pass its cap (a ceiling, the
      pool). A step either way takes two cycles, or, up, one beyond twice the
      noise (one lucky cycle moves nothing); after eight cycles without a decision the
      limit steps down if they lean that way. The knee is the smallest level within noise
      of the best: a step of 20 % there brings 1.3 % more. Below a ceiling (see
      refusals), steps up in a row grow to 44 %: the way back is short and bounded.
      Answers alone never take the limit below 4, where slow start began (below a few in
      flight, a client and a server that take turns idle while the other works); refusals
      do. The round trip of a probe is the geometric mean of its answers', so a jittery
      server's slow answers weigh little.
    - **Refusals** (429, 503, ``Retry-After``, timeouts, lost connections): the level the
      refused request met at the server is a ceiling: the limit stays below it for 100
      round trips, and at least 2 s (a refused probe costs its request a ``Retry-After``,
      which the window covers), before probing it, and each failed probe doubles the
      wait. That level is the one it was sent at (in slow start, on the client's own
      pool, the one it found once it had its connection: a request waiting for a new one
      is not at the server yet; see ``Flow.done``), less the answers read after it was
      sent when the refusal came back within a fifth of a round trip: a busy client reads
      its answers late, and those had left the server before it came. A probe refused
      above a limit that held leaves the limit, and so does the ceiling's probe refused
      at the level the limit climbed to once allowed there; otherwise the limit halves
      from the refused level. Sending pauses for a round trip either way.
    - **Quotas**: when a level that had been held for a while is refused, or the level
      the last refusal cut the limit to, or even one request at a time, the server counts
      requests per second, not in flight. Then requests are paced at 70 % of the rate
      the server answered, and the pace grows back along CUBIC's curve, flat near the
      refused rate (the AWS SDKs' adaptive mode). Refused while paced faster than the
      server has let through since it began refusing, the pace settles at 92 % of that,
      flat for 3 s before CUBIC probes above it. A refusal within a round trip of a
      change of pace was sent before it, and changes nothing. Once a pace has held four
      round trips, the limit carries it (half as much again as the pace keeps in flight,
      plus one, below a ceiling; not in a fleet), and keeps that when the pace ends: the
      level a refusal left would hold the client below its own pace, and a settle would
      measure that level, not the server.
    - **In a fleet** (``fleet_heard``): the server sees what every member sends, and the
      others go on at their levels until they hear of a refusal here (50-100 ms later,
      through Redis). So the evidence of a quota is the fleet's: the sum of the members'
      limits, once they settled after the last refusal, held a while at the sum that
      refusal met, or is at most half of it (each member halved), and is refused again;
      or every member is down to one request at a time. A member's own levels say
      nothing there (refused again at the level it was just cut to, before the others
      had heard: their overload), and a member that took them for a quota paced alone
      at a trickle and finished seconds after the others. Nor does a member's level
      measure the overload: a refusal counts at least at its even share of the sum (a
      member refused at 1 or 2 while the others sent more kept a ceiling there, and the
      fleet half its capacity, for the rest of the run). Without Redis (``fleet_left``),
      its own levels again.

    What it has learnt is a few numbers (``limit``, ``ceiling``, ``rate``, ``epoch``);
    the rest is the measurement in progress. ``ticket(level, now)`` is taken when a
    request starts (``level``: requests in flight, it included) and handed back to
    ``record`` with the answer and its round trip (the time since ``now``);
    ``reserve(now)`` says how long a request that may start must wait for the pace
    (``hold(now)``: for the pause after a refusal only, when a fleet's pace paces it).
    """

    __slots__ = (
        "_cap",
        "_carried",
        "_ceiling",
        "_current",
        "_deliveries",
        "_down",
        "_epoch",
        "_fleet",
        "_fleet_ceiling",
        "_fleet_holding",
        "_fleet_level",
        "_fleet_members",
        "_fleet_sum",
        "_fleet_total",
        "_gains",
        "_growth",
        "_last_gain",
        "_levels",
        "_limit",
        "_member",
        "_next_start",
        "_noise",
        "_paced_since",
        "_phase",
        "_phase_answered",
        "_phase_id",
        "_phase_sent",
        "_probe",
        "_probe_at",
        "_probe_round_trips",
        "_probing_since",
        "_rate",
        "_rate_measured",
        "_rate_plateau",
        "_rate_refused",
        "_rate_since",
        "_rtt",
        "_slow_start",
        "_start_top",
        "_sustained",
        "_up",
        "_ups",
        "maximum",
    )

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        self._limit = float(min(_INITIAL, maximum))
        self._current = int(self._limit)
        self._cap = float(maximum)
        self._epoch = 0
        self._slow_start = True
        self._start_top = 0  # the highest level slow start had a clean answer at
        self._growth = _START_GROWTH
        self._levels: dict[int, _Samples] = {}
        self._phase = _CRUISE
        self._phase_id = 0
        self._phase_sent = 0
        self._phase_answered = 0
        self._up = _Samples()  # this cycle's probe up
        self._down = _Samples()
        self._gains: list[tuple[float, float]] = []  # the cycles' at this limit
        self._noise = 0.0  # the variance of one cycle's elasticity, between cycles
        self._last_gain: float | None = None
        self._ups = 0  # steps up in a row, each confirmed by the next cycle at once
        self._probe: _Samples | None = None  # the pool the phase under way adds to
        self._rtt: float | None = None
        self._ceiling: int | None = None
        self._probe_at = 0.0
        self._probe_round_trips = _PROBE_ROUND_TRIPS
        self._probing_since: float | None = None
        self._sustained = 0
        self._deliveries: collections.deque[float] = collections.deque(maxlen=_DELIVERIES)
        self._next_start = 0.0
        self._rate: float | None = None
        self._rate_refused = 0.0
        self._rate_plateau = 1.0
        self._rate_since = 0.0
        self._rate_measured = False
        self._paced_since = 0.0
        self._carried = 0.0  # while paced, the level that carries the pace (``_CARRY``)
        # In a fleet (``fleet_heard``): the members' limits summed, as last heard settled
        # (None: not settled now), and ever; that sum when a refusal last lowered the
        # limit; and whether it is at least that again now.
        self._fleet = False
        # A fleet's member from the start (``Flow.share``), before it hears the others: the
        # others' load can get a level it was answered at refused.
        self._member = False
        self._fleet_total: int | None = None
        self._fleet_level: int | None = None
        self._fleet_ceiling: int | None = None
        self._fleet_holding = False
        self._fleet_members = 1
        self._fleet_sum = 0

    @property
    def limit(self) -> int:
        """Requests that may be in flight now."""
        return self._current

    @property
    def starting(self) -> bool:
        """Whether slow start is under way (no probe, refusal or step has ended it)."""
        return self._slow_start

    def _update(self) -> None:
        """Work out ``limit`` (read per request, changed only by ``record``)."""
        limit = self._limit if self._slow_start else _scaled(self._limit, _CYCLE[self._phase])
        if self._carried > limit:
            limit = self._carried
        self._current = max(1, min(self.maximum, int(min(limit, self._cap))))

    @property
    def rate(self) -> float | None:
        """Requests per second, when a quota made the limit pace them; else None."""
        return self._rate

    @property
    def refused_rate(self) -> float | None:
        """When paced: the rate the server answered when it refused (pacing began at
        70 % of it), or settled at after a refusal since; else None."""
        return None if self._rate is None else self._rate_refused

    @property
    def rate_measured(self) -> bool:
        """Whether the pace, when pacing began, came from answers spanning four round trips
        or more (else from a handful at the start: a trickle, or a burst the server
        allowed)."""
        return self._rate_measured

    @property
    def ceiling(self) -> int | None:
        """The level last refused, while the limit stays below it; else None."""
        return self._ceiling

    @property
    def epoch(self) -> int:
        """How many refusals have lowered the limit so far."""
        return self._epoch

    def rescale(self, factor: float) -> None:
        """The share of the server this limit governs grew ``factor`` times (in a fleet,
        members left and those that stay take over their share): the limit, the ceiling
        and the pace grow with it, and what was measured at the old levels starts again.
        """
        self._limit = max(1.0, self._limit * factor)
        ceiling = self._ceiling
        if ceiling is not None:
            self._ceiling = max(1, round(ceiling * factor))
            self._cap = max(1.0, self._cap * factor)
        if self._rate is not None:
            self._rate *= factor
            self._rate_refused *= factor
        self._levels.clear()
        self._restart_pools()
        self._next_phase(_CRUISE)
        self._update()

    def share_pace(self, rate: float) -> None:
        """In a fleet, pace at ``rate`` (this member's even share of the fleet's pace), if
        paced: the curve the pace grows back along moves with it."""
        if self._rate is not None:
            factor = max(rate, MIN_RATE) / self._rate
            self._rate *= factor
            self._rate_refused *= factor

    def fleet_heard(self, limits: int, members: int, *, settled: bool) -> None:
        """In a fleet: the sum of the members' ``limits`` and how many ``members`` there
        are, as heard at an exchange; ``settled``: no refusal, nor a member that left, was
        heard lately (else their limits may still move). From now on the evidence of a
        quota is the fleet's, not this member's (see the class); ``fleet_left`` when Redis
        is lost."""
        self._fleet = True
        self._fleet_sum = limits
        self._fleet_members = max(1, members)
        if not settled:
            self._fleet_total = None
            self._fleet_holding = False
            return
        self._fleet_total = self._fleet_level = limits
        ceiling = self._fleet_ceiling
        self._fleet_holding = ceiling is not None and limits >= ceiling

    def fleet_left(self) -> None:
        """Alone again (Redis lost): the evidence of a quota is this member's own."""
        self._fleet = False
        self._fleet_total = None
        self._fleet_holding = False

    def ticket(self, level: int, now: float = 0.0) -> Ticket:
        """What ``record`` needs to know of a request that starts at ``level`` (requests
        in flight, it included), ``now``."""
        sent = self._phase_sent
        self._phase_sent = sent + 1
        # In a probe, the first window of sends only brings the load to its level: what
        # they meet is the change, not the level.
        return Ticket(self._epoch, level, self._phase_id if sent >= self._current else -1, now)

    def reserve(self, now: float) -> float:
        """Seconds the request starting now must wait for the pace (usually 0)."""
        start = max(now, self._next_start)
        if self._rate is not None:
            self._next_start = start + 1.0 / self._rate
        return start - now

    def hold(self, now: float) -> float:
        """Seconds a request starting now must wait for the pause after a refusal, when
        something else paces it (in a fleet, the members' shared pace): ``reserve``
        without the pace."""
        return max(0.0, self._next_start - now)

    def record(self, ticket: Ticket, *, rtt: float | None, refused: bool, now: float) -> None:
        """Learn from one answer: ``refused`` (overload), or clean after ``rtt`` seconds.

        ``rtt`` None and not ``refused``: the answer says nothing about load.
        """
        if refused:
            if ticket.epoch == self._epoch:  # older ones were sent before the last decrease
                self._refused(self._seen(ticket, now), now)
                self._update()
            return
        if rtt is None:
            return
        # A clean answer (the hot path: once per request, hence inline). Most change nothing
        # but the measurement: the limit is worked out again only when something it depends
        # on moved.
        self._deliveries.append(now)
        if rtt < _MIN_RTT:
            rtt = _MIN_RTT
        smoothed = self._rtt
        self._rtt = rtt if smoothed is None else smoothed + _RTT_GAIN * (rtt - smoothed)
        if self._rate is not None:
            self._grow_rate(now)
        moved = False
        if self._ceiling is not None:
            if self._fleet_holding if self._fleet else ticket.level >= self._ceiling:
                self._sustained += 1
            cap = self._ceiling_cap(ticket.level, now)
            moved = cap != self._cap
            self._cap = cap
        if self._slow_start:
            self._start(ticket.level, rtt)
            moved = True
        elif ticket.epoch == self._epoch and (
            self._probe is not None
            or (self._phase_sent >= self._current and self._phase_sent >= _MIN_SAMPLES)
        ):  # (cruising, with too few sent to move on, is decided here: no call)
            moved = self._climb(ticket, rtt) or moved
        if moved:
            self._limit = max(1.0, min(self._limit, self._cap))
            self._update()

    def _round_trip(self) -> float:
        return self._rtt if self._rtt is not None else 0.01

    def _probe_interval(self) -> float:
        doublings = self._probe_round_trips / _PROBE_ROUND_TRIPS
        floor = _PROBE_MIN_SECONDS * doublings
        return max(self._probe_round_trips * self._round_trip(), floor)

    # ------------------------------------------------------------------- clean answers

    def _start(self, level: int, rtt: float) -> None:
        """Slow start: one more per answer while each half octave more still pays."""
        if level > self._start_top:
            self._start_top = level
        band = int(2 * math.log2(level))
        samples = self._levels.setdefault(band, _Samples())
        samples.add(level, rtt)
        below = self._levels.get(band - 1)
        gain = None if below is None else below.elasticity(samples)
        if samples.level >= _EXIT_LEVEL and _ends(gain, samples):  # (no gain: no band below)
            # The knee lies between the two, or lower still where the bands below say so
            # too: the climb starts at the lower side of it.
            self._limit = max(self._knee(band - 1, samples), min(self._limit, _FLOOR))
            self._end_slow_start()
            return
        if gain is not None:
            # HyStart++'s conservative slow start: growth slows where answers per second
            # stop following the level all the way (a queue forming), down to 15 % more
            # per round trip at the elasticity where slow start ends.
            elastic = min(1.0, max(_STARTUP_ELASTICITY, gain[0]))
            self._growth = min(self._growth, 1.0 + (_START_GROWTH - 1.0) * elastic)
        # Never beyond half as much again as an answer proved: answers come a round trip
        # late, and a queue is found only once the requests sent into it are answered.
        self._limit = max(self._limit, min(self._limit + 1.0, self._growth * level))
        if self._limit >= min(self.maximum, self._cap):
            self._end_slow_start()

    def _knee(self, top: int, samples: _Samples) -> float:
        """Where the climb starts when the band ``samples`` ends slow start over the band
        ``top`` below it: the lower side of the knee between them. Lower when the bands
        below gained too little as well (a knee below ``_EXIT_LEVEL``, gone past): down the
        bands while each gained too little over the next one below, to the lowest of them
        (not to the one below that, which a pause alone may have made look a knee)."""
        levels = self._levels
        upper = levels[top]
        knee = max(upper.level, samples.level / _STEP)
        for band in sorted((band for band in levels if band < top), reverse=True):
            lower = levels[band]
            if not _ends(lower.elasticity(upper), upper):
                break
            knee = min(knee, upper.level)
            upper = lower
        return knee

    def _end_slow_start(self) -> None:
        self._slow_start = False
        self._levels.clear()
        self._next_phase(_UP)

    def _next_phase(self, phase: int) -> None:
        self._phase = phase
        self._phase_id += 1
        self._phase_sent = 0
        self._phase_answered = 0
        self._probe = self._up if phase == _UP else self._down if phase == _DOWN else None

    def _restart_pools(self) -> None:
        self._up = _Samples()
        self._down = _Samples()
        self._gains.clear()

    def _climb(self, ticket: Ticket, rtt: float) -> bool:
        """The hill climb: a probe up, a probe down, perhaps a step, cruising; again.
        Whether the phase moved on."""
        probe = self._probe
        if probe is None:  # cruising
            if self._phase_sent < self._current or self._phase_sent < _MIN_SAMPLES:
                return False  # (max() costs a call, once per answer)
            self._next_phase(_UP if self._phase + 1 == len(_CYCLE) else self._phase + 1)
            return True
        # A probe: only what was sent once its level was reached and answered within it
        # tells what that level does. A round trip follows the load all along (an event
        # loop, a server that shares its time), so a request sent earlier or answered
        # after the probe tells of the levels before or after as well.
        if ticket.phase != self._phase_id:
            return False
        probe.add(ticket.level, rtt)
        self._phase_answered += 1
        if self._phase_answered < self._current or self._phase_answered < _MIN_SAMPLES:
            return False
        if self._phase == _UP:
            self._next_phase(_DOWN)
            return True
        gain = self._down.elasticity(self._up)
        self._up = _Samples()
        self._down = _Samples()
        if gain is not None:
            self._gains.append(gain)
            last, self._last_gain = self._last_gain, gain[0]
            if last is not None:
                # Two cycles in a row differ by the noise twice (and by the slope between
                # their limits, which is small where it matters: near the knee).
                sample = (gain[0] - last) ** 2 / 2
                if self._noise > 0:
                    sample = min(sample, _NOISE_JUMP * self._noise)
                self._noise += _NOISE_GAIN * (sample - self._noise)
        # Moving, it probes again at once; holding, it cruises a while first.
        self._next_phase(_UP if self._step() else _CRUISE)
        return True

    def _step(self) -> bool:
        """After a probe up and down: a step to the knee, when the cycles at this limit are
        clear beyond the noise (a standard error) on which side of it the limit is."""
        gains = self._gains
        cycles = len(gains)
        if self._rate is not None:  # paced: the pace says how fast, not the level
            self._restart_pools()
            return False
        if not cycles:
            return False
        elasticity = sum(gain for gain, _ in gains) / cycles
        # The noise between cycles (these, or as seen lately for one), or within them if
        # larger (a steady machine, a jittery server).
        spread = self._noise
        if cycles > 1:
            spread = max(spread, sum((gain - elasticity) ** 2 for gain, _ in gains) / (cycles - 1))
        within = sum(error * error for _, error in gains) / cycles
        error = math.sqrt(max(spread, within) / cycles)
        if elasticity - error > _KNEE_ELASTICITY and (
            cycles >= _UP_CYCLES or elasticity - _UP_SIGMAS * error > _KNEE_ELASTICITY
        ):
            # Below a ceiling just found, steps up in a row grow (the ceiling bounds them):
            # the way back after a refusal halved the limit is short. Without one, from
            # the third in a row: a long slope is climbed sooner, and one lucky cycle, or
            # two, on a plateau is still one step of ``_STEP``.
            self._ups += 1
            ups = self._ups if self._ceiling is not None else self._ups - _PLAIN_STEPS + 1
            limit = _scaled(self._limit, _STEP ** min(max(1, ups), _MAX_STEPS))
        else:
            self._ups = 0
            last = cycles >= _MAX_CYCLES  # undecided so long: it leans, or it holds
            if (elasticity + error < _KNEE_ELASTICITY and cycles >= _DOWN_CYCLES) or (
                last and elasticity < _KNEE_ELASTICITY
            ):
                limit = max(_scaled(self._limit, 1 / _STEP), min(self._limit, _FLOOR))
            elif not last:
                return False
            else:
                limit = self._limit
        self._restart_pools()
        # A step up from a limit at its cap (a ceiling, the pool) is no move: it cruises
        # before the next probe, whose probe down costs answers there.
        limit = min(limit, self._cap)
        moved = limit != self._limit
        self._limit = limit
        return moved

    def _ceiling_cap(self, level: int, now: float) -> float:
        ceiling = self._ceiling
        assert ceiling is not None
        if now < self._probe_at:
            return max(1, ceiling - 1) + 0.999
        if level >= ceiling:
            if self._probing_since is None:
                self._probing_since = now
            elif now - self._probing_since >= self._probe_interval():
                # The old ceiling held for a whole probe interval: it has moved.
                self._ceiling = None
                self._probing_since = None
                self._probe_round_trips = _PROBE_ROUND_TRIPS
                return float(self.maximum)
        return ceiling + 0.999

    # ------------------------------------------------------------------- refusals

    def _seen(self, ticket: Ticket, now: float) -> int:
        """The level a refused request met at the server: its own, less the answers read
        after it was sent, when the refusal came back quickly."""
        level = ticket.level
        sent = ticket.sent
        if now - sent > _QUICK_REFUSAL * self._round_trip():
            return level
        late = 0
        for at in reversed(self._deliveries):
            if at <= sent:
                break
            late += 1
        return max(1, level - late)

    def _refused(self, level: int, now: float) -> None:
        if self._rate is not None and now - self._rate_since < self._round_trip():
            return  # sent at the pace before this one: the change is one round trip old
        if self._fleet:
            # The server refused the fleet's sum, of which this member's even share is what
            # its level stands for: its own may be low (the others sent, or its requests
            # waited out a backoff), and a ceiling there would keep it low for seconds.
            level = max(level, round(self._fleet_sum / self._fleet_members))
        self._epoch += 1
        self._ups = 0
        starting = self._slow_start
        self._slow_start = False
        self._levels.clear()
        self._restart_pools()
        self._next_phase(_CRUISE)
        self._next_start = max(self._next_start, now + self._round_trip())
        # A level that had held a while, or the level the last refusal cut the limit to:
        # what the server counts is requests per second, not requests in flight.
        # So does a refusal of one request at a time, and one at half the level slow start
        # was answered at or less (``_BURST``).
        burst = False
        if self._fleet:
            held, cut, single = self._fleet_evidence(level)
        else:
            ceiling = self._ceiling
            held = ceiling is not None and self._sustained >= 2 * level
            cut = ceiling is not None and level <= ceiling * _DECREASE
            single = level <= 1 and self._limit < 2
            burst = not self._member and level <= self._start_top * _BURST
        self._sustained = 0
        if self._rate is not None or held or cut or single or burst:
            if burst and self._rate is None:
                # The limit holds while paced: not below what slow start's answers proved.
                self._limit = max(self._limit, min(self._start_top * _BURST, self._cap))
            self._pace(now)
            return
        failed_probe = self._ceiling is not None and level >= self._ceiling
        probing = failed_probe and now >= self._probe_at
        if probing:
            doubled = self._probe_round_trips * 2
            self._probe_round_trips = min(doubled, _PROBE_ROUND_TRIPS * 2**_PROBE_MAX_DOUBLINGS)
        elif not failed_probe:
            self._probe_round_trips = _PROBE_ROUND_TRIPS
        self._ceiling = level
        self._probing_since = None
        self._probe_at = now + self._probe_interval()
        self._cap = max(1, level - 1) + 0.999
        if not starting and (level > self._limit or probing):
            # A probe above the limit was refused, and the limit itself was not: the limit
            # stays, under the new ceiling. So it does when the ceiling's probe is refused
            # at the level the limit climbed to once it was allowed there: the level below
            # held until then.
            self._limit = min(self._limit, self._cap)
            return
        self._limit = max(1.0, math.floor(min(self._limit, level) * _DECREASE))

    def _fleet_evidence(self, level: int) -> tuple[bool, bool, bool]:
        """In a fleet, a refusal (here, or heard from another member) says the server
        counts requests per second when the fleet's levels say so, not this member's own:
        the server sees what every member sends, and the others go on at their levels until
        they hear of a decrease here. Only once the members' limits settled after the last
        refusal: their sum held a while at the sum a refusal met, or is at most the share
        of it a decrease leaves, or every member is down to one request at a time.
        Whether it ``held``, was ``cut``, or was refused ``single``."""
        total, ceiling = self._fleet_total, self._fleet_ceiling
        single = level <= 1 and self._limit < 2 and self._fleet_sum <= self._fleet_members
        held = cut = False
        if total is not None and ceiling is not None:
            held = self._sustained >= 2 * level
            cut = total <= ceiling * _DECREASE
        # The sum the next refusal is measured against: the last settled one (until the
        # members settle again, it is what met this refusal).
        self._fleet_ceiling = self._fleet_level
        self._fleet_total = None
        self._fleet_holding = False
        return held, cut, single

    def _pace(self, now: float) -> None:
        if self._rate is None:
            # A quota found: pace below the rate the server answered, growing back along
            # CUBIC's curve.
            refused = max(self._delivered_rate(), MIN_RATE)
            deliveries = self._deliveries
            self._rate_measured = (
                len(deliveries) >= _MIN_SAMPLES
                and deliveries[-1] - deliveries[0] >= 4 * self._round_trip()
            )
            self._rate = max(MIN_RATE, _RATE_DECREASE * refused)
            self._rate_refused = refused
            self._rate_plateau = ((refused - self._rate) / _CUBIC_SCALE) ** (1 / 3)
            self._paced_since = now
        else:
            # Refused while paced: what the server has let through since it began refusing
            # is its quota, measured (the first estimate may include a burst it allowed at
            # the start): settle below it, flat for a while, then probe above it.
            since = self._delivered_since(self._paced_since)
            answered = self._rate if since is None else min(self._rate, since)
            self._rate = self._rate_refused = max(MIN_RATE, _RATE_SETTLE * answered)
            self._rate_plateau = _RATE_PLATEAU
        self._rate_since = now
        self._carried = 0.0  # until the new pace has held

    def _delivered_rate(self) -> float:
        """Answers per second over the last answers remembered."""
        deliveries = self._deliveries
        if len(deliveries) < 2:
            return float(len(deliveries))
        return (len(deliveries) - 1) / max(deliveries[-1] - deliveries[0], self._round_trip())

    def _delivered_since(self, since: float) -> float | None:
        """Answers per second since ``since``; None if they span under four round trips."""
        recent = [at for at in self._deliveries if at >= since]
        if len(recent) < 2 or recent[-1] - recent[0] < 4 * self._round_trip():
            return None
        return (len(recent) - 1) / (recent[-1] - recent[0])

    def _grow_rate(self, now: float) -> None:
        assert self._rate is not None
        # CUBIC: back to the refused rate after k seconds, flat around it, then faster.
        k = self._rate_plateau
        elapsed = now - self._rate_since
        cubic = _CUBIC_SCALE * (elapsed - k) ** 3 + self._rate_refused
        self._rate = max(self._rate, cubic)
        carried = 0.0
        if self._rate > 2 * self._rate_refused and elapsed > 2 * k:
            self._rate = None  # long past the refused rate without a refusal: unpaced
            # The limit keeps what carried the pace: the hill climb goes on from there.
            self._limit = max(self._limit, min(self._carried, self._cap))
        elif not self._member and elapsed >= _CARRY_ROUND_TRIPS * self._round_trip():
            carried = _CARRY * self._rate * self._round_trip() + 1.0
        if carried != self._carried:
            # The limit is a whole level: worked out again only when the carried one moves
            # by a level, not at every answer the rate and the round trip move with.
            level = int(self._carried)
            self._carried = carried
            if int(carried) != level:
                self._update()


class Ticket:
    """A request's start, as ``AdaptiveLimit`` needs to know it: when (``sent``), at what
    level, and in which epoch and phase of the limit."""

    __slots__ = ("epoch", "level", "phase", "sent")

    def __init__(self, epoch: int, level: int, phase: int = 0, sent: float = 0.0) -> None:
        self.epoch = epoch
        self.level = level
        self.phase = phase
        self.sent = sent


#: Answers that say "too much": the server is refusing load, or not keeping up.
_OVERLOAD_STATUSES: Final = frozenset({429, 503})
_OVERLOAD_FAILURES: Final = frozenset({Failure.TIMEOUT, Failure.DISCONNECT, Failure.CONNECT})


def _as_of(ticket: Ticket, epoch: int) -> Ticket:
    """``ticket`` in ``epoch``, the limit's when the request's start time was set."""
    ticket.epoch = epoch
    return ticket


def _as_it_arrived(ticket: Ticket) -> Ticket:
    """A refused request's ticket at the level and time it got its connection, when the
    owned pool told them (``ARRIVAL``); else as it was let in."""
    arrival = ARRIVAL.get()
    if arrival is None or arrival[1] < ticket.sent:  # none, or an earlier request's
        return ticket
    level, at = arrival
    return Ticket(ticket.epoch, min(level, ticket.level), ticket.phase, at)


def is_overload(outcome: Outcome) -> bool:
    """Whether an attempt's outcome says the server is overloaded."""
    if outcome.failure is not None:
        return outcome.failure in _OVERLOAD_FAILURES
    return outcome.status in _OVERLOAD_STATUSES or "Retry-After" in outcome.headers


# --------------------------------------------------------------------------- the client's flow


class SharedLimit(Protocol):
    """The fleet's side of a ``Flow`` (``_fleet.FleetLimit``)."""

    @property
    def idle(self) -> bool:
        """Whether it waits for ``wake`` to hear the fleet again."""
        ...

    def wake(self) -> None:
        """``"auto"`` requests are under way: hear the fleet now and then."""
        ...

    def refused(self, sent: float) -> None:
        """A request sent at ``sent`` (loop time) was refused, and that lowered the limit."""
        ...

    @property
    def pacing(self) -> bool:
        """Whether paced requests start on the fleet's shared pace (``slot``)."""
        ...

    async def slot(self) -> float | None:
        """A start time (loop time) on the fleet's shared pace; None: pace alone."""
        ...

    def put_back(self, when: float) -> None:
        """A start time from ``slot`` that its request did not use."""
        ...


class Flow:
    """The client's flow control: its rate limit, and the adaptive limit of ``"auto"``.

    One per client, shared by its views and by every ``"auto"`` operation at once, since
    the server's capacity is shared too. Before an ``"auto"`` attempt, ``try_admit``
    (nothing awaited), or ``admit`` when it gave no ticket; ``done`` after it. ``spare``
    tells the operations' workers how many more of them the limit would let in. The rate
    limit (``rate``: the client's own, or its fleet's) is the transport's to apply, once a
    request has its connection (see ``Transport.send``). In a fleet (``share``), a
    refusal here is told to the fleet, and one the fleet heard of lowers the limit here
    too (``refused_elsewhere``); once paced against a quota, requests start on the fleet's
    shared pace while Redis is there (``SharedLimit.slot``), on this limit's own without.
    """

    __slots__ = (
        "_adaptive",
        "_clock",
        "_fleet_share",
        "_gate",
        "_held",
        "_held_until",
        "_shared",
        "_widened",
        "max_connections",
        "rate",
    )

    def __init__(self, *, rate: Pace | None, max_connections: int) -> None:
        self.rate = rate
        self.max_connections = max_connections
        self._adaptive = AdaptiveLimit(max_connections)
        self._gate = Gate(self._adaptive.limit)
        self._shared: SharedLimit | None = None
        self._fleet_share: int | None = None
        self._clock: Callable[[], float] | None = None  # the loop's time, once it runs
        self._held = 0  # auto_window while an "auto" request backs off, until _held_until
        self._held_until = 0.0
        self._widened: asyncio.Future[None] | None = None  # see ``widened``

    def _bind_clock(self) -> Callable[[], float]:
        """The loop's clock (``loop_clock``), read twice per request."""
        clock = self._clock = loop_clock(asyncio.get_running_loop())
        return clock

    def share(self, shared: SharedLimit) -> None:
        """Make the limit the fleet's: ``shared`` hears of refusals here, and tells of
        the fleet's (``refused_elsewhere``)."""
        self._shared = shared
        self._adaptive._member = True

    @property
    def rate_limit(self) -> float | None:
        """Requests per second, or None."""
        return None if self.rate is None else self.rate.per_second

    @property
    def adaptive(self) -> AdaptiveLimit:
        """What the adaptive limit has learnt."""
        return self._adaptive

    def auto_window(self) -> int:
        """How many pages or items an ``"auto"`` operation may hold at once.

        In flight or done and not yet consumed: twice the pool, so that a request waiting
        out a ``Retry-After`` does not stall the others (an iteration holds the pool's
        worth until pages wait behind a late one: see ``_segments``); how many are in flight
        at once is the adaptive limit's to say. While a request waits out a backoff, what
        the client sends meanwhile besides the pool, up to ``_WINDOW_MOST`` pools (see
        ``backing_off``): at 1,000 requests a second, twice a pool of 100 is gone in a
        fifth of a ``Retry-After: 1``, and in-order work would stall for the rest.
        """
        if self._held and (self._clock or self._bind_clock())() < self._held_until:
            return self._held
        return 2 * self.max_connections

    def backing_off(self, delay: float) -> None:
        """An ``"auto"`` request waits ``delay`` seconds before it is sent again (its
        ``Retry-After``, or the policy's backoff). Until then, ``auto_window`` holds what
        the client may send in that time besides the pool: at its pace if it paces (a
        quota, or ``rate_limit``), else ``_WINDOW_MOST`` pools (the server's capacity
        bounds what is sent, and the answers before a refusal, slow start's, say little of
        it). An iteration waiting for a late page hears if that makes the window wide
        (``widened``)."""
        rate = self._adaptive.rate
        if rate is None and self.rate is not None:
            rate = self.rate.per_second
        now = (self._clock or self._bind_clock())()
        held, until = auto_window(self.max_connections, rate, delay), now + delay
        if now < self._held_until:  # another request's backoff is not over
            held, until = max(held, self._held), max(until, self._held_until)
        self._held, self._held_until = held, until
        if self._widened is not None:
            self.widened()  # done now, if that made the window wide

    def widened(self) -> asyncio.Future[None]:
        """A future done once ``auto_window`` is more than twice the pool (a request waits
        out a backoff): done already if it is."""
        widened = self._widened
        wide = self.auto_window() > 2 * self.max_connections
        if widened is None or (widened.done() and not wide):
            widened = self._widened = asyncio.get_running_loop().create_future()
        if wide and not widened.done():
            widened.set_result(None)
        return widened

    def try_admit(self) -> Ticket | None:
        """A ticket at once if a place is free and no pace holds the request back (the
        hot path: nothing awaited); else None, and ``admit`` waits for one."""
        shared = self._shared
        if shared is not None and shared.idle:
            shared.wake()
        adaptive = self._adaptive
        now = (self._clock or self._bind_clock())()
        gate = self._gate
        # Gate.try_acquire inline (once per request); and whether the request may have to
        # wait (``AdaptiveLimit.reserve`` says how long): requests are paced, or sending
        # pauses after a refusal.
        if (
            adaptive._rate is not None
            or now < adaptive._next_start
            or gate._in_use >= gate._capacity
            or gate._waiters
        ):
            return None
        gate._in_use += 1
        return adaptive.ticket(gate._in_use, now)

    async def admit(self, *, until: float | None) -> Ticket | None:
        """Wait until an ``"auto"`` request may start; None if ``until`` (loop time) came
        first. Hand the ticket to ``done``."""
        gate = self._gate
        if not gate.try_acquire():
            if until is None:
                await gate.acquire()
            else:
                try:
                    async with asyncio.timeout_at(until):
                        await gate.acquire()
                except TimeoutError:
                    return None
        loop = asyncio.get_running_loop()
        adaptive = self._adaptive
        shared = self._shared
        # A paced request's start is set now, by the pace as it is now. A decrease while
        # it waits for that start does not move it: refused, it was sent as before the
        # decrease and says nothing new (its ticket keeps this epoch). Taken as news, such
        # refusals cut the benchmark's pace against a quota of 200/s (15 in flight) at
        # every round trip for a tenth of a second, to 0.86 of the quota. (Unpaced, a
        # request waits only for the pause after a refusal, and counts as it did.)
        epoch = adaptive.epoch
        paced = adaptive.rate is not None
        try:
            if shared is not None and adaptive.rate is not None and shared.pacing:
                # Paced in a fleet: the pause after a refusal is this member's, the pace
                # the fleet's; without Redis (no slot), the pace is its own again.
                if not await self._wait(adaptive.hold(loop.time()), until):
                    gate.release()
                    return None
                epoch = adaptive.epoch  # (a decrease during the pause came before its slot)
                when = await shared.slot()
                if when is not None:
                    if until is not None and when > until:
                        shared.put_back(when)
                        gate.release()
                        return None
                    delay = when - loop.time()
                    if delay > 0:
                        try:
                            await asyncio.sleep(delay)
                        except BaseException:
                            shared.put_back(when)
                            raise
                    return _as_of(adaptive.ticket(gate.in_use, loop.time()), epoch)
            if not await self._wait(adaptive.reserve(loop.time()), until):
                gate.release()
                return None
        except BaseException:
            gate.release()
            raise
        ticket = adaptive.ticket(gate.in_use, loop.time())
        return _as_of(ticket, epoch) if paced else ticket

    @staticmethod
    async def _wait(delay: float, until: float | None) -> bool:
        """Sleep ``delay`` seconds, unless that would end past ``until``: then False, at
        once."""
        if delay <= 0:
            return True
        loop = asyncio.get_running_loop()
        if until is not None and loop.time() + delay > until:
            return False
        await asyncio.sleep(delay)
        return True

    def done(self, ticket: Ticket, outcome: Outcome) -> None:
        """The attempt that ``admit`` let start has ended with ``outcome``."""
        adaptive = self._adaptive
        now = (self._clock or self._bind_clock())()
        # The round trip is the time the place was held, not the exchange's own: on a busy
        # event loop a request waits to run after it was let in, and a place held meanwhile
        # is a place taken (Little's law holds for what is held).
        # (is_overload, inline: once per request; test_what_counts_as_overload holds both
        # to one table.)
        failure = outcome.failure
        if failure is None:
            rtt: float | None = now - ticket.sent
            refused = outcome.status in _OVERLOAD_STATUSES or "Retry-After" in outcome.headers
        else:
            rtt = None
            refused = failure in _OVERLOAD_FAILURES
        epoch = adaptive._epoch
        if refused and adaptive._slow_start:
            # Where it stood once it had its connection: in slow start each new level needs
            # new connections, and requests waiting for one are not at the server yet.
            # Later the pool is warm, and a request let in waits, if at all, for a pause or
            # a pace, which the evidence of a quota was measured with: counted so throughout,
            # a 3 s job under a quota of 1,000/s took a median 4.6 s over 14 runs, against
            # 4.2 s before; in slow start only, 3.9 s against 4.7 s over the next 14.
            ticket = _as_it_arrived(ticket)
        adaptive.record(ticket, rtt=rtt, refused=refused, now=now)
        if refused and adaptive._epoch != epoch and self._shared is not None:
            self._shared.refused(ticket.sent)
            self._fleet_share = None  # its own, lowered, until the fleet's have settled
        # Learn first, then give the place back: a refusal must close it, not hand it on.
        # (The limit and Gate.release, read and done inline: once per request.)
        gate = self._gate
        share = self._fleet_share
        limit = adaptive._current if share is None else share
        if gate._capacity != limit:
            gate.capacity = limit
        gate._in_use -= 1
        if gate._waiters:
            gate._wake()

    def refused_elsewhere(self, epoch: int) -> None:
        """Another member of the fleet was refused since the limit here was at ``epoch``:
        a refusal here too, at the level in flight here now (as a request sent then would
        be, nothing if the limit was lowered since: the same overload).

        Nothing while a quota paces the requests here: the pace is this member's share of
        the quota, which its own refusals tell; another's, measured against what this one
        delivered since pacing began, would cut its pace to a trickle.
        """
        now = (self._clock or self._bind_clock())()
        gate, adaptive = self._gate, self._adaptive
        if adaptive.rate is not None:
            return
        ticket = Ticket(epoch, max(1, gate.in_use), phase=-1, sent=now)
        adaptive.record(ticket, rtt=None, refused=True, now=now)
        self.fleet_share(None)

    def fleet_share(self, share: int | None) -> None:
        """In a fleet, the requests in flight here: ``share``, this member's fair share of
        the limits the members learnt (``_sharing.RefusalNews.share``); None: its own
        limit (alone, without Redis, or until the members' limits settle after a
        refusal). Each member's limit learns on its own answers and refusals; the fleet
        splits what they learnt evenly, since members that learn apart end up unequal
        (one refused at a low level keeps below it for seconds, the others climb)."""
        if share is not None:
            share = min(share, self.max_connections)
        self._fleet_share = share
        gate = self._gate
        capacity = self._adaptive.limit if share is None else share
        if gate.capacity != capacity:
            gate.capacity = capacity

    @property
    def busy(self) -> bool:
        """Whether ``"auto"`` requests are in flight or waiting."""
        gate = self._gate
        return gate.in_use + gate.waiting > 0

    def spare(self) -> int:
        """Places free beyond the requests waiting for one (negative: more are waiting
        than there are places): how many more ``"auto"`` workers would start at once."""
        gate = self._gate  # the hot path: once per bulk call
        return gate._capacity - gate._in_use - len(gate._waiters)
