"""Admission control of the hidden-capacity server: pure state, no I/O, no clock of its own.

The server process (``_capacity_server.py``) asks an ``Admission`` what to do with each
request it reads, and tells it when one has been served; the time is passed in, so
the tests drive it without a loop or a sleep. Three modes:

- ``queue``: at most ``capacity`` requests in service; the rest wait in one FIFO queue;
- ``reject``: at most ``capacity`` in service; the rest are refused at once (429);
- ``quota``: a token bucket admits at most ``rate`` requests a second (with a burst of
  ``burst``); the rest are refused at once. Admitted requests are not limited in number.
"""

from __future__ import annotations

import enum
from collections import deque
from typing import Any, Generic, TypeVar

T = TypeVar("T")

MODES = ("queue", "reject", "quota")


class Decision(enum.Enum):
    """What happens to an arriving request."""

    START = "start"  # served now: it holds a slot until ``finish``
    QUEUE = "queue"  # waits; a later ``finish`` hands it a slot
    REJECT = "reject"  # answered 429 at once


class TokenBucket:
    """``rate`` tokens a second, holding at most ``burst``; starts full."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"need rate > 0 and burst >= 1, got rate={rate}, burst={burst}")
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._last = now

    @property
    def tokens(self) -> float:
        return self._tokens

    def take(self, now: float) -> bool:
        """Take one token if there is one; refills for the time since the last call."""
        # A clock that steps back must not drain the bucket; it just adds nothing.
        elapsed = max(0.0, now - self._last)
        self._last = max(self._last, now)
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def refill(self, now: float) -> None:
        self._tokens = self.burst
        self._last = now


class Admission(Generic[T]):
    """Slots, the FIFO queue, the bucket, and the counters the parent reads.

    ``T`` is whatever the caller uses to resume a queued request (the server passes
    its connection); ``finish`` returns the one that gets the freed slot.
    """

    __slots__ = (
        "_bucket",
        "_queue",
        "capacity",
        "in_service",
        "max_outstanding",
        "mode",
        "received",
        "rejected",
        "served",
    )

    def __init__(
        self,
        mode: str,
        *,
        capacity: int = 16,
        rate: float = 200.0,
        burst: float = 20.0,
        now: float = 0.0,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.mode = mode
        self.capacity = capacity
        self._bucket = TokenBucket(rate, burst, now) if mode == "quota" else None
        self._queue: deque[T] = deque()
        self.in_service = 0
        self.received = 0
        self.served = 0
        self.rejected = 0
        self.max_outstanding = 0

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def outstanding(self) -> int:
        """Requests the server holds: in service plus queued (refused ones never count)."""
        return self.in_service + len(self._queue)

    def arrive(self, waiter: T, now: float) -> Decision:
        self.received += 1
        if self._bucket is not None:
            decision = Decision.START if self._bucket.take(now) else Decision.REJECT
        elif self.in_service < self.capacity:
            decision = Decision.START
        elif self.mode == "queue":
            decision = Decision.QUEUE
        else:
            decision = Decision.REJECT
        if decision is Decision.START:
            self.in_service += 1
        elif decision is Decision.QUEUE:
            self._queue.append(waiter)
        else:
            self.rejected += 1
        self.max_outstanding = max(self.max_outstanding, self.outstanding)
        return decision

    def finish(self) -> T | None:
        """One request's service ended; the queued request that takes its slot, if any."""
        if self.in_service < 1:
            raise RuntimeError("finish() without a request in service")
        self.served += 1
        if self._queue:
            return self._queue.popleft()  # the slot passes on: in_service is unchanged
        self.in_service -= 1
        return None

    def abandon(self, waiter: T) -> bool:
        """Drop a queued request whose client went away; False if it was not queued."""
        try:
            self._queue.remove(waiter)
        except ValueError:
            return False
        return True

    def reset(self, now: float) -> None:
        """Zero the counters; the peak restarts from what is held now; the bucket refills."""
        self.received = self.served = self.rejected = 0
        self.max_outstanding = self.outstanding
        if self._bucket is not None:
            self._bucket.refill(now)

    def stats(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "received": self.received,
            "served": self.served,
            "rejected": self.rejected,
            "max_outstanding": self.max_outstanding,
            "in_service": self.in_service,
            "queued": self.queued,
        }
