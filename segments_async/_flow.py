"""Flow control: how many requests may be in flight, and how fast they may start.

``Gate`` is an ``asyncio.Semaphore`` whose capacity can change (the adaptive limit moves
it) and whose waiters are served in arrival order. ``RateLimit`` puts a fixed ceiling on
the request rate with aiolimiter. Neither does I/O; both are tested without a network.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math

from aiolimiter import AsyncLimiter

__all__ = ["Gate", "RateLimit", "check_rate_limit"]


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


class RateLimit:
    """At most ``per_second`` requests start per second, client-wide (retries included).

    A leaky bucket (aiolimiter) that holds a tenth of a second's worth of requests, and at
    least one: after a pause, a burst of that many may start at once, then requests start
    evenly spaced. A whole second's worth at once would look like a spike to a server
    that counts over shorter windows.
    """

    __slots__ = ("_limiter", "per_second")

    def __init__(self, per_second: float) -> None:
        self.per_second = per_second
        burst = max(1.0, per_second / 10)
        self._limiter = AsyncLimiter(burst, burst / per_second)

    async def acquire(self) -> None:
        """Wait until a request may start."""
        await self._limiter.acquire()


class Flow:
    """The client's flow control: its rate limit, and the adaptive limit of ``"auto"``.

    ``admit`` is awaited before an attempt that is subject to either, ``done`` after it.
    """

    __slots__ = ("_adaptive", "_rate")

    def __init__(self, *, rate_limit: object, max_connections: int) -> None:
        per_second = check_rate_limit(rate_limit)
        self._rate = None if per_second is None else RateLimit(per_second)
        self._adaptive = Gate(max_connections)

    @property
    def rate_limit(self) -> float | None:
        """Requests per second, or None."""
        return None if self._rate is None else self._rate.per_second

    def window(self) -> int:
        """How many requests an ``"auto"`` operation may keep in flight now."""
        return max(1, self._adaptive.capacity)

    def describe(self) -> str:
        """What may hold requests back, for error messages."""
        parts = []
        if self._rate is not None:
            parts.append(f"rate_limit={self._rate.per_second:g}/s")
        parts.append(f"adaptive limit {self._adaptive.capacity}")
        return ", ".join(parts)

    async def admit(self, *, adaptive: bool, until: float | None) -> object | None:
        """Wait until a request may start; None if ``until`` (loop time) came first."""
        try:
            async with asyncio.timeout_at(until):
                if self._rate is not None:
                    await self._rate.acquire()
                if adaptive:
                    await self._adaptive.acquire()
        except TimeoutError:
            return None
        return self._adaptive if adaptive else True

    def done(self, ticket: object, outcome: object) -> None:
        """The attempt that ``admit`` let start has ended."""
        if ticket is self._adaptive:
            self._adaptive.release()
