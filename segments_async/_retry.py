"""Whether to retry, and how long to wait: pure decisions, no I/O, no clock of their own.

The send loop in ``_client.py`` asks these functions what to do; they take the time and
the random draw as arguments so that tests can drive them without a loop or a sleep.
"""

from __future__ import annotations

import datetime
import email.utils
import enum
import math
import random
from collections.abc import Callable

import attrs

__all__ = [
    "RETRYABLE_STATUSES",
    "Failure",
    "RetryBudget",
    "RetryPolicy",
    "backoff_delay",
    "outcome_unknown",
    "parse_retry_after",
    "retry_delay",
    "retry_reason",
]

#: Statuses worth another try: the server (or a proxy) says "not now", not "never".
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

#: Statuses after which the server may already have acted on the request. A 503 is
#: among them: proxies answer 503 when the upstream dropped a request it had received.
_MAYBE_ACTED_STATUSES = frozenset({500, 502, 503, 504})

#: Retryable statuses that say the server did not act: safe to retry even a POST.
_NOT_ACTED_RETRYABLE = frozenset({429})


def _non_negative(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TypeError(f"RetryPolicy.{attribute.name} must be a finite number, got {value!r}")
    if value < 0:
        raise ValueError(f"RetryPolicy.{attribute.name} must be >= 0, got {value!r}")


def _max_retries(_inst: object, _attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"RetryPolicy.max_retries must be an int, got {value!r}")
    if value < 0:
        raise ValueError(f"RetryPolicy.max_retries must be >= 0, got {value!r}")


@attrs.frozen
class RetryPolicy:
    """How a failed call is retried. ``RetryPolicy(max_retries=0)`` disables retries.

    - ``max_retries``: retries after the first attempt.
    - ``backoff_initial`` / ``backoff_max``: full-jitter exponential backoff, in seconds:
      the n-th retry waits a random time in ``[0, min(backoff_max, backoff_initial * 2**n))``.
    - ``retry_after_max``: a server's ``Retry-After`` is obeyed up to this many seconds; a
      longer one is not waited for and the error is raised at once.
    - ``retry_post``: also retry a POST whose outcome is unknown (the server may have
      created the segment already, so a retry may create a duplicate). Off by default.
    """

    max_retries: int = attrs.field(default=2, validator=_max_retries)
    backoff_initial: float = attrs.field(default=0.5, validator=_non_negative)
    backoff_max: float = attrs.field(default=8.0, validator=_non_negative)
    retry_after_max: float = attrs.field(default=60.0, validator=_non_negative)
    retry_post: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))


class Failure(enum.Enum):
    """How an attempt failed, as far as retrying cares."""

    #: The connection was never established: the server cannot have seen the request.
    CONNECT = "connection failed"
    #: The connection broke after the request may have been sent.
    DISCONNECT = "connection lost"
    #: The attempt ran out of time; the server may or may not have acted.
    TIMEOUT = "timeout"
    #: The answer was cut short (fewer bytes than announced).
    TRUNCATED = "body cut short"
    #: The answer was not valid HTTP (e.g. a 204 followed by a body).
    PROTOCOL = "malformed response"
    #: The server answered with an error status.
    STATUS = "status"


def outcome_unknown(failure: Failure, status: int | None = None) -> bool:
    """True if the server may have acted on a request that failed this way."""
    if failure is Failure.STATUS:
        return status in _MAYBE_ACTED_STATUSES
    return failure is not Failure.CONNECT


def retry_reason(
    policy: RetryPolicy, method: str, failure: Failure, status: int | None = None
) -> str | None:
    """Why this failure may be retried, or ``None`` if it must not be.

    GET, PUT and DELETE are idempotent and retried on every retryable outcome. POST is
    retried only where the server cannot have acted (never connected, or a 429), unless
    ``policy.retry_post`` says the caller accepts the risk of a duplicate.
    """
    if failure is Failure.STATUS:
        if status not in RETRYABLE_STATUSES:
            return None
        reason = f"HTTP {status}"
        acted = status not in _NOT_ACTED_RETRYABLE
    else:
        reason = failure.value
        acted = failure is not Failure.CONNECT
    if method == "POST" and acted and not policy.retry_post:
        return None
    return reason


def backoff_delay(policy: RetryPolicy, retry_number: int, draw: float) -> float:
    """Full-jitter exponential backoff for the ``retry_number``-th retry (0-based).

    ``draw`` is a uniform random number in ``[0, 1)``.
    """
    # Cap the exponent so that a huge retry count cannot overflow a float.
    ceiling = min(policy.backoff_max, policy.backoff_initial * 2.0 ** min(retry_number, 62))
    return ceiling * draw


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date).

    ``now`` is the current Unix time. Returns ``None`` for a missing or unreadable value;
    a date in the past is 0.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isascii() and value.replace(".", "", 1).isdigit():
        seconds = float(value)
        return seconds if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        # RFC 9110 dates are GMT; the asctime form carries no zone and is read as such.
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - now)


def retry_delay(
    policy: RetryPolicy, retry_number: int, retry_after: float | None, draw: float
) -> float | None:
    """How long to wait before the ``retry_number``-th retry, or ``None`` not to retry.

    A server's ``Retry-After`` wins over the backoff, unless it is longer than
    ``policy.retry_after_max``: then the caller is better served by the error at once.
    """
    if retry_after is not None:
        if retry_after > policy.retry_after_max:
            return None
        return retry_after
    return backoff_delay(policy, retry_number, draw)


class RetryBudget:
    """A client-wide token bucket that stops retry storms (AWS SDKs' "standard" mode).

    Each retry takes ``retry_cost`` tokens (``timeout_cost`` after a timeout, which is the
    costliest kind of failure for an overloaded server); a call that succeeds at once puts
    back ``success_refund``, and a call that succeeds after retries puts back what its
    last retry took. When the bucket cannot pay for a retry, the call fails at once: in an
    outage, the client stops multiplying the load it puts on the server.
    """

    __slots__ = ("_tokens", "capacity", "retry_cost", "success_refund", "timeout_cost")

    def __init__(
        self,
        capacity: int = 500,
        *,
        retry_cost: int = 5,
        timeout_cost: int = 10,
        success_refund: int = 1,
    ) -> None:
        self.capacity = capacity
        self.retry_cost = retry_cost
        self.timeout_cost = timeout_cost
        self.success_refund = success_refund
        self._tokens = capacity

    @property
    def tokens(self) -> int:
        """Tokens left."""
        return self._tokens

    def acquire(self, failure: Failure) -> int | None:
        """Take the cost of retrying after ``failure``; ``None`` if the budget is spent."""
        cost = self.timeout_cost if failure is Failure.TIMEOUT else self.retry_cost
        if cost > self._tokens:
            return None
        self._tokens -= cost
        return cost

    def record_success(self, last_retry_cost: int | None) -> None:
        """A call succeeded; ``last_retry_cost`` is what its last retry took, if any."""
        refund = self.success_refund if last_retry_cost is None else last_retry_cost
        self._tokens = min(self.capacity, self._tokens + refund)


#: Where jitter comes from; tests may swap in a seeded ``random.Random().random``.
default_draw: Callable[[], float] = random.random
