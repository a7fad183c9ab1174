"""Capacity limits of the fake: at most N requests at once, at most R a second.

Unlike faults, which each request draws on its own, a limit is state shared by all the
requests it matches: a request holds a concurrency slot from admission to its answer,
latency faults included, and takes a token from the rate limit's bucket. Without I/O:
the clock is injectable, and the server calls ``admit`` and ``Admission.release``.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence

from ._api import Reply, error_reply
from ._faults import request_matches

__all__ = ["Admission", "CapacityLimit", "ConcurrencyLimit", "RateLimit", "TokenBucket", "admit"]

RetryAfter = float | str | None


def check_retry_after(retry_after: object) -> RetryAfter:
    """Seconds (a finite number >= 0), a string such as an HTTP date, or None (no header)."""
    if retry_after is None:
        return None
    if isinstance(retry_after, str):
        if "\r" in retry_after or "\n" in retry_after:
            raise ValueError("retry_after must not contain line breaks")
        return retry_after
    if isinstance(retry_after, bool) or not isinstance(retry_after, int | float):
        raise TypeError(f"retry_after must be a number, a str or None, got {retry_after!r}")
    if not (math.isfinite(retry_after) and retry_after >= 0):
        raise ValueError(f"retry_after must be >= 0 seconds, got {retry_after!r}")
    return retry_after


def retry_after_headers(retry_after: RetryAfter) -> tuple[tuple[str, str], ...]:
    """The Retry-After header for a value: seconds as ``1``/``0.25``, a string verbatim."""
    if retry_after is None:
        return ()
    text = retry_after if isinstance(retry_after, str) else f"{retry_after:g}"
    return (("Retry-After", text),)


class TokenBucket:
    """``rate`` tokens a second, holding at most ``burst``; full at the start.

    A request takes one token, or is refused when there is none. ``clock`` returns
    seconds (``time.monotonic`` by default); a clock going back adds nothing.
    """

    __slots__ = ("_clock", "_last", "_tokens", "burst", "rate")

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"the rate must be > 0 a second, got {rate!r}")
        if not (math.isfinite(burst) and burst >= 1):
            raise ValueError(f"burst must be >= 1, got {burst!r}")
        self.rate = float(rate)
        self.burst = float(burst)
        self._clock = clock
        self._tokens = self.burst
        self._last = clock()

    @property
    def tokens(self) -> float:
        """The tokens available now."""
        now = self._clock()
        if now > self._last:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
        return self._tokens

    def has_token(self) -> bool:
        """Whether a request would be admitted now (takes nothing)."""
        return self.tokens >= 1

    def take(self) -> None:
        """Take one token; call only after ``has_token()`` said yes."""
        self._tokens -= 1

    def try_take(self) -> bool:
        """Take one token if there is one."""
        if not self.has_token():
            return False
        self.take()
        return True


class CapacityLimit:
    """A limit on the requests matching ``method``/``path`` (all if None), until cancelled.

    ``admitted`` and ``rejected`` count the matching requests it let through or answered
    429 (with ``Retry-After: retry_after``, unless None).
    """

    __slots__ = ("admitted", "cancelled", "method", "path", "rejected", "retry_after")

    def __init__(
        self,
        *,
        retry_after: RetryAfter,
        method: str | None,
        path: str | re.Pattern[str] | None,
    ) -> None:
        self.retry_after = check_retry_after(retry_after)
        self.method = None if method is None else method.upper()
        self.path = path
        self.admitted = 0
        self.rejected = 0
        self.cancelled = False

    @property
    def active(self) -> bool:
        """Whether the limit still applies."""
        return not self.cancelled

    def cancel(self) -> None:
        """Stop limiting; requests already admitted finish as they would have."""
        self.cancelled = True

    def matches(self, method: str, path: str) -> bool:
        """Whether the limit applies to this request."""
        return request_matches(self.method, self.path, method, path)

    def has_room(self) -> bool:
        """Whether one more request fits now."""
        raise NotImplementedError

    def take(self) -> None:
        """Admit one request."""
        self.admitted += 1

    def release(self) -> None:
        """An admitted request has been answered."""

    def describe(self) -> str:
        """The limit, in words, for the 429's message."""
        raise NotImplementedError

    def rejection(self) -> Reply:
        """The 429 a request over the limit gets."""
        return error_reply(
            429,
            "too_many_requests",
            f"Too many requests: {self.describe()}",
            headers=retry_after_headers(self.retry_after),
        )


class ConcurrencyLimit(CapacityLimit):
    """At most ``max_in_flight`` matching requests at once; ``in_flight`` is how many now."""

    __slots__ = ("in_flight", "max_in_flight")

    def __init__(
        self,
        max_in_flight: int,
        *,
        retry_after: RetryAfter = 1,
        method: str | None = None,
        path: str | re.Pattern[str] | None = None,
    ) -> None:
        if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int):
            raise TypeError(f"max_in_flight must be an int, got {max_in_flight!r}")
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
        super().__init__(retry_after=retry_after, method=method, path=path)
        self.max_in_flight = max_in_flight
        self.in_flight = 0

    def has_room(self) -> bool:
        return self.in_flight < self.max_in_flight

    def take(self) -> None:
        super().take()
        self.in_flight += 1

    def release(self) -> None:
        self.in_flight -= 1

    def describe(self) -> str:
        return f"at most {self.max_in_flight} at once"


class RateLimit(CapacityLimit):
    """At most ``per_second`` matching requests a second on average, ``burst`` at once.

    A token bucket: it starts full with ``burst`` tokens (default one second's worth,
    at least 1) and gains ``per_second`` tokens a second.
    """

    __slots__ = ("bucket",)

    def __init__(
        self,
        per_second: float,
        *,
        burst: float | None = None,
        retry_after: RetryAfter = 1,
        method: str | None = None,
        path: str | re.Pattern[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(per_second, bool) or not isinstance(per_second, int | float):
            raise TypeError(f"per_second must be a number, got {per_second!r}")
        if burst is None:
            burst = max(1.0, per_second)
        super().__init__(retry_after=retry_after, method=method, path=path)
        self.bucket = TokenBucket(per_second, burst, clock)

    @property
    def per_second(self) -> float:
        """The sustained rate."""
        return self.bucket.rate

    @property
    def burst(self) -> float:
        """The most requests admitted at once after a pause."""
        return self.bucket.burst

    def has_room(self) -> bool:
        return self.bucket.has_token()

    def take(self) -> None:
        super().take()
        self.bucket.take()

    def describe(self) -> str:
        return f"at most {self.per_second:g} a second"


class Admission:
    """The outcome of ``admit``: the limit that refused, or the limits to release after."""

    __slots__ = ("_held", "rejected_by")

    def __init__(
        self, rejected_by: CapacityLimit | None, held: Sequence[CapacityLimit] = ()
    ) -> None:
        self.rejected_by = rejected_by
        self._held = held

    def release(self) -> None:
        """The request has been answered: free what it held (idempotent)."""
        held, self._held = self._held, ()
        for limit in held:
            limit.release()


def admit(limits: Sequence[CapacityLimit], method: str, path: str) -> Admission:
    """Admit a request under every active limit matching it, or refuse it.

    The first limit (in the order given) without room refuses it and counts the refusal;
    a refused request takes nothing from the other limits.
    """
    matching = [limit for limit in limits if limit.active and limit.matches(method, path)]
    for limit in matching:
        if not limit.has_room():
            limit.rejected += 1
            return Admission(limit)
    for limit in matching:
        limit.take()
    return Admission(None, matching)
