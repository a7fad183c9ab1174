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
from typing import TypeAlias

from ._api import Reply, error_reply
from ._faults import request_matches

__all__ = ["Admission", "CapacityLimit", "ConcurrencyLimit", "RateLimit", "TokenBucket", "admit"]

#: A ``Retry-After`` to send: seconds, a string sent as it is (an HTTP date), or None
#: for no header.
RetryAfter: TypeAlias = float | str | None


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

    A request takes one token, or is refused when there is none. A clock going back adds
    nothing.

    Args:
        rate: Tokens gained a second (> 0).
        burst: The most tokens held (>= 1).
        clock: Returns the time in seconds (``time.monotonic`` by default).

    Raises:
        ValueError: ``rate`` is not > 0 or ``burst`` not >= 1 (or either is not finite).

    Attributes:
        rate: Tokens gained a second.
        burst: The most tokens held.
    """

    __slots__ = ("_clock", "_last", "_tokens", "burst", "rate")

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"the rate must be > 0 a second, got {rate!r}")
        if not (math.isfinite(burst) and burst >= 1):
            raise ValueError(f"burst must be >= 1, got {burst!r}")
        self.rate: float = float(rate)
        self.burst: float = float(burst)
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
        """Whether a request would be admitted now: a whole token is there (takes nothing)."""
        return self.tokens >= 1

    def take(self) -> None:
        """Take one token; call only after ``has_token()`` said yes (it is not checked)."""
        self._tokens -= 1

    def try_take(self) -> bool:
        """Take one token if there is one; True if it did, False if the bucket is empty."""
        if not self.has_token():
            return False
        self.take()
        return True


class CapacityLimit:
    """A limit on the requests matching ``method``/``path`` (all if None), until cancelled.

    The base of ``ConcurrencyLimit`` and ``RateLimit``, which
    ``FakeSegmentsServer.limit_concurrency`` and ``.limit_rate`` return: a request over the
    limit is answered 429 ``too_many_requests`` and changes nothing.

    Args:
        retry_after: The ``Retry-After`` of the 429: seconds, a string sent as it is, or
            None for no header.
        method: The method of the requests limited (any case), or None for all.
        path: A prefix of the paths limited, a compiled pattern searched in them, or None
            for all.

    Raises:
        ValueError: ``retry_after`` is a negative or non-finite number, or a string with
            a line break.
        TypeError: ``retry_after`` is neither a number, a string nor None.

    Attributes:
        retry_after: The ``Retry-After`` sent with each 429, or None.
        method: The method limited (upper case), or None for all.
        path: The path prefix or pattern limited, or None for all.
        admitted: How many matching requests it let through.
        rejected: How many matching requests it answered 429.
        cancelled: Whether ``cancel()`` was called.
    """

    __slots__ = ("admitted", "cancelled", "method", "path", "rejected", "retry_after")

    def __init__(
        self,
        *,
        retry_after: RetryAfter,
        method: str | None,
        path: str | re.Pattern[str] | None,
    ) -> None:
        self.retry_after: RetryAfter = check_retry_after(retry_after)
        self.method: str | None = None if method is None else method.upper()
        self.path: str | re.Pattern[str] | None = path
        self.admitted: int = 0
        self.rejected: int = 0
        self.cancelled: bool = False

    @property
    def active(self) -> bool:
        """Whether the limit still applies: True until ``cancel()``."""
        return not self.cancelled

    def cancel(self) -> None:
        """Stop limiting; requests already admitted finish as they would have. Idempotent."""
        self.cancelled = True

    def matches(self, method: str, path: str) -> bool:
        """Whether the limit applies to a request, by its method and path.

        Args:
            method: The request's method, upper case.
            path: The request's path, percent-decoded.

        Returns:
            True if ``method`` and ``path`` match the limit's (None matches anything).
        """
        return request_matches(self.method, self.path, method, path)

    def has_room(self) -> bool:
        """Whether one more request fits now; each kind of limit says (takes nothing)."""
        raise NotImplementedError

    def take(self) -> None:
        """Admit one request (after ``has_room()`` said yes): count it in ``admitted``."""
        self.admitted += 1

    def release(self) -> None:
        """An admitted request has been answered: give back what it held, if anything."""

    def describe(self) -> str:
        """The limit, in words, for the 429's message (e.g. ``"at most 4 at once"``)."""
        raise NotImplementedError

    def rejection(self) -> Reply:
        """The 429 ``too_many_requests`` a request over the limit gets, in the envelope."""
        return error_reply(
            429,
            "too_many_requests",
            f"Too many requests: {self.describe()}",
            headers=retry_after_headers(self.retry_after),
        )


class ConcurrencyLimit(CapacityLimit):
    """At most ``max_in_flight`` matching requests at once; ``in_flight`` is how many now.

    A request is in flight from its admission (after its body is read) until its answer,
    an injected latency included. ``FakeSegmentsServer.limit_concurrency`` makes one.

    Args:
        max_in_flight: The most matching requests in progress at once (>= 1).
        retry_after: The ``Retry-After`` of the 429 (1 second by default), or None.
        method: The method limited, or None for all.
        path: A path prefix or compiled pattern, or None for all.

    Raises:
        TypeError: ``max_in_flight`` is not an ``int``, or ``retry_after`` of a wrong type.
        ValueError: ``max_in_flight`` is below 1, or ``retry_after`` is negative.

    Attributes:
        max_in_flight: The most matching requests in progress at once.
        in_flight: How many are in progress now.
    """

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
        self.max_in_flight: int = max_in_flight
        self.in_flight: int = 0

    def has_room(self) -> bool:
        """Whether fewer than ``max_in_flight`` matching requests are in progress."""
        return self.in_flight < self.max_in_flight

    def take(self) -> None:
        """Admit one request: it is in flight until ``release()``."""
        super().take()
        self.in_flight += 1

    def release(self) -> None:
        """An admitted request has been answered: one fewer in flight."""
        self.in_flight -= 1

    def describe(self) -> str:
        """The limit in words, for the 429's message: ``"at most N at once"``."""
        return f"at most {self.max_in_flight} at once"


class RateLimit(CapacityLimit):
    """At most ``per_second`` matching requests a second on average, ``burst`` at once.

    A token bucket: it starts full with ``burst`` tokens (default one second's worth,
    at least 1) and gains ``per_second`` tokens a second; each admitted request takes one.
    ``FakeSegmentsServer.limit_rate`` makes one.

    Args:
        per_second: The sustained rate, requests a second (> 0).
        burst: The most requests admitted at once after a pause (>= 1); None: one
            second's worth, at least 1.
        retry_after: The ``Retry-After`` of the 429 (1 second by default), or None.
        method: The method limited, or None for all.
        path: A path prefix or compiled pattern, or None for all.
        clock: Returns the time in seconds (``time.monotonic``); a test passes its own
            to drive the bucket without waiting.

    Raises:
        TypeError: ``per_second`` is not a number, or ``retry_after`` of a wrong type.
        ValueError: ``per_second`` is not > 0, ``burst`` not >= 1, or ``retry_after`` is
            negative.

    Attributes:
        bucket: The ``TokenBucket`` behind the limit.
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
        self.bucket: TokenBucket = TokenBucket(per_second, burst, clock)

    @property
    def per_second(self) -> float:
        """The sustained rate: the requests a second the bucket gains."""
        return self.bucket.rate

    @property
    def burst(self) -> float:
        """The most requests admitted at once after a pause: the bucket's size."""
        return self.bucket.burst

    def has_room(self) -> bool:
        """Whether the bucket holds a whole token now (takes nothing)."""
        return self.bucket.has_token()

    def take(self) -> None:
        """Admit one request: it takes a token from the bucket."""
        super().take()
        self.bucket.take()

    def describe(self) -> str:
        """The limit in words, for the 429's message: ``"at most R a second"``."""
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
