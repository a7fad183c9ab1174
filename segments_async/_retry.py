"""Whether to retry, and how long to wait: pure decisions, no I/O, no clock of their own.

Everything that decides what happens after an attempt lives here: which outcomes may be
retried, for which methods, the backoff, ``Retry-After`` and its cap, the deadline, the
client-wide retry budget, and the rule that a DELETE answered 404 after an attempt whose
outcome was unknown has succeeded. ``decide`` brings them together; the call loop in
``_client.py`` performs what it says. Time and the random draw come in as arguments, so
tests drive every rule without a loop or a sleep.
"""

from __future__ import annotations

import datetime
import email.utils
import enum
import logging
import math
import random
from collections.abc import Callable, Mapping
from typing import Final

import attrs

from ._errors import SegmentsError

__all__ = [
    "RETRYABLE_STATUSES",
    "Action",
    "Call",
    "Decision",
    "Failure",
    "Outcome",
    "RetryBudget",
    "RetryPolicy",
    "backoff_delay",
    "decide",
    "outcome_unknown",
    "parse_retry_after",
    "retry_delay",
    "retry_reason",
]

#: Statuses worth another try: the server (or a proxy) says "not now", not "never".
RETRYABLE_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})

#: Statuses after which the server may already have acted on the request. A 503 is
#: among them: proxies answer 503 when the upstream dropped a request it had received.
_MAYBE_ACTED_STATUSES: Final = frozenset({500, 502, 503, 504})

#: Retryable statuses that say the server did not act: safe to retry even a POST.
_NOT_ACTED_RETRYABLE: Final = frozenset({429})


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
    """How a failed call is retried: frozen; ``RetryPolicy(max_retries=0)`` disables retries.

    Retried: connection errors, timeouts, a body cut short, malformed HTTP, and the
    statuses 408, 429, 500, 502, 503 and 504. GET, PUT and DELETE are retried on all of
    them; a POST only where the server cannot have acted (never sent, or a 429), unless
    ``retry_post`` is True. The client also keeps a retry budget (a token bucket shared
    by the whole client), so that an outage makes calls fail fast instead of tripling the
    load.

    Example::

        client = SegmentsClient(retry=RetryPolicy(max_retries=5, backoff_max=2.0))
        no_retries = client.with_options(retry=RetryPolicy(max_retries=0))

    Attributes:
        max_retries: Retries after the first attempt (2).
        backoff_initial: Seconds of the first backoff's ceiling (0.5): full-jitter
            exponential backoff, where the n-th retry (from 0) waits a random time in
            ``[0, min(backoff_max, backoff_initial * 2**n))``.
        backoff_max: The ceiling of any backoff, in seconds (8.0).
        retry_after_max: A server's ``Retry-After`` is obeyed up to this many seconds
            (60.0); a longer one is not waited for and the error is raised at once.
        retry_post: Also retry a POST whose outcome is unknown (False): the server may
            have created the segment already, so a retry may create a duplicate.

    Raises:
        TypeError: A number that is not a finite ``int`` or ``float`` (``max_retries``: an
            ``int``), or a ``retry_post`` that is not a ``bool``.
        ValueError: A negative number.
    """

    max_retries: int = attrs.field(default=2, validator=_max_retries)
    backoff_initial: float = attrs.field(default=0.5, validator=_non_negative)
    backoff_max: float = attrs.field(default=8.0, validator=_non_negative)
    retry_after_max: float = attrs.field(default=60.0, validator=_non_negative)
    retry_post: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))


class Failure(enum.Enum):
    """How an attempt ended without a usable HTTP answer."""

    #: The connection was never established: the server cannot have seen the request.
    CONNECT = "connection failed"
    #: The TLS handshake or the certificate failed: never retried, never papered over.
    TLS = "TLS failure"
    #: The connection broke, or closed, before an answer came.
    DISCONNECT = "connection lost"
    #: The attempt ran out of time.
    TIMEOUT = "timeout"
    #: No connection (or request slot) came free before the call's deadline: never sent.
    QUEUE_TIMEOUT = "no connection free"
    #: The answer was cut short (fewer bytes than announced).
    TRUNCATED = "body cut short"
    #: The answer was not valid HTTP (e.g. a 204 followed by a body).
    PROTOCOL = "malformed response"
    #: The answer's body was larger than the library reads.
    TOO_LARGE = "body too large"
    #: The client was closed under the call.
    CLOSED = "client closed"


#: Failures that may be retried, for methods that allow it.
_RETRYABLE_FAILURES: Final = frozenset(
    {Failure.CONNECT, Failure.DISCONNECT, Failure.TIMEOUT, Failure.TRUNCATED, Failure.PROTOCOL}
)
#: Failures that say nothing reached the server, whatever ``sent`` says.
_NEVER_SENT: Final = frozenset({Failure.CONNECT, Failure.TLS, Failure.QUEUE_TIMEOUT})

_NO_HEADERS: Final[Mapping[str, str]] = {}


@attrs.define
class Outcome:
    """What one attempt came to: the plain result of the I/O seam (``_transport``).

    Not frozen: one is made per request, and a frozen attrs class sets each field through
    ``object.__setattr__`` (measured: 2.5x the cost). Nothing changes one once made.

    Either an HTTP answer (``status``, ``headers``, ``body``; ``failure`` is None), or a
    ``failure`` with the ``error`` to raise for it (``status`` may still be known, e.g. for
    a body that was too large). ``sent`` is False only when the request certainly never
    reached the server; ``resent`` is True when aiohttp silently sent it a second time
    after the first send's connection died, so that first send may have been acted on.
    """

    status: int | None = None
    headers: Mapping[str, str] = _NO_HEADERS
    body: bytes = b""
    failure: Failure | None = None
    error: SegmentsError | None = None
    sent: bool = True
    resent: bool = False
    elapsed: float = 0.0


def outcome_unknown(outcome: Outcome) -> bool:
    """True if the server may have acted on the request although this attempt failed."""
    if outcome.resent:
        return True
    failure = outcome.failure
    if failure is None:
        return outcome.status in _MAYBE_ACTED_STATUSES
    if failure in _NEVER_SENT:
        return False
    # A body that was too large came with a status: a 2xx was carried out.
    return outcome.sent


def retry_reason(policy: RetryPolicy, method: str, outcome: Outcome) -> str | None:
    """Why this attempt may be retried, or ``None`` if it must not be.

    GET, PUT and DELETE are idempotent and retried on every retryable outcome. POST is
    retried only where the server cannot have acted (never sent, never connected, or a
    429), unless ``policy.retry_post`` says the caller accepts the risk of a duplicate.
    """
    failure = outcome.failure
    if failure is None:
        status = outcome.status
        if status not in RETRYABLE_STATUSES:
            return None
        reason = f"HTTP {status}"
        acted = status not in _NOT_ACTED_RETRYABLE or outcome.resent
    else:
        if failure not in _RETRYABLE_FAILURES:
            return None
        reason = failure.value
        acted = outcome_unknown(outcome)
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

    ``now`` is the current Unix time. Returns ``None`` for a missing or unreadable value,
    ``math.inf`` for a number too large to be a float (it is still a number: too long);
    a date in the past is 0.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isascii() and value.replace(".", "", 1).isdigit():
        return float(value)  # more digits than a float holds: inf, which is "too long"
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
    ``exhaustion_logged`` remembers that running dry was already logged at WARNING, so
    that an outage is reported once, not once per failing call.

    In a fleet (``_fleet.py``) the bucket is shared through Redis: ``on_spend`` is called
    after each retry paid for, ``unsynced`` counts the tokens spent (negative) and
    refunded (positive) since Redis last heard, and ``adopt`` takes the fleet's count.
    """

    __slots__ = (
        "_tokens",
        "capacity",
        "exhaustion_logged",
        "on_spend",
        "retry_cost",
        "success_refund",
        "timeout_cost",
        "unsynced",
    )

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
        self.exhaustion_logged = False
        self.on_spend: Callable[[], None] | None = None
        self.unsynced = 0

    @property
    def tokens(self) -> int:
        """Tokens left."""
        return self._tokens

    def acquire(self, failure: Failure | None) -> int | None:
        """Take the cost of retrying after ``failure``; ``None`` if the budget is spent."""
        cost = self.timeout_cost if failure is Failure.TIMEOUT else self.retry_cost
        if cost > self._tokens:
            return None
        self._tokens -= cost
        if self.on_spend is not None:
            self.unsynced -= cost
            self.on_spend()
        return cost

    def record_success(self, last_retry_cost: int | None) -> None:
        """A call succeeded; ``last_retry_cost`` is what its last retry took, if any."""
        refund = self.success_refund if last_retry_cost is None else last_retry_cost
        self._tokens = min(self.capacity, self._tokens + refund)
        if self.on_spend is not None:
            self.unsynced += refund

    def adopt(self, shared_tokens: int) -> None:
        """Take the fleet's count of tokens, plus what was spent or refunded here since
        it was read (``unsynced``)."""
        self._tokens = max(0, min(self.capacity, shared_tokens + self.unsynced))


class Call:
    """What the decisions remember across the attempts of one call."""

    __slots__ = ("attempts", "garbled", "last_cost", "maybe_acted", "method", "path")

    def __init__(self, method: str, path: str) -> None:
        self.method = method
        self.path = path
        self.attempts = 0  # attempts made so far, this one included
        self.last_cost: int | None = None  # what the last retry took from the budget
        self.maybe_acted = False  # an attempt may have changed the server's state
        self.garbled = False  # an attempt's answer was not valid HTTP (Failure.PROTOCOL)


class Action(enum.Enum):
    """What the call loop does next."""

    #: Read the answer: the model for a 2xx, the status error for any other status.
    ANSWER = "answer"
    #: The DELETE succeeded: an earlier send whose outcome was unknown deleted it.
    DELETED = "deleted"
    #: Raise the attempt's error (or, if ``deadline`` is set, that the deadline ran out).
    RAISE = "raise"
    #: Wait ``delay`` seconds and try again.
    RETRY = "retry"


@attrs.frozen
class Decision:
    """``decide``'s verdict, and what to log about it (``log_level`` None: nothing).

    The log line is a template and its arguments, not a sentence: log handlers, JSON
    formatters and error trackers group records by the template.
    """

    action: Action
    delay: float = 0.0
    reason: str = ""
    log_level: int | None = None
    log_template: str = ""
    log_args: tuple[object, ...] = ()
    deadline: bool = False

    @property
    def log_message(self) -> str:
        """The log line as a handler would format it."""
        return self.log_template % self.log_args


_ANSWER: Final = Decision(Action.ANSWER)
_RAISE: Final = Decision(Action.RAISE)


def decide(
    policy: RetryPolicy,
    budget: RetryBudget,
    call: Call,
    outcome: Outcome,
    *,
    draw: float,
    now: float,
    remaining: float | None = None,
) -> Decision:
    """What to do after ``call``'s latest attempt came to ``outcome``.

    ``draw`` is a uniform random number in ``[0, 1)`` for the jitter, ``now`` the Unix time
    (for a ``Retry-After`` date), ``remaining`` the seconds left before the call's deadline
    (``None``: no deadline). Updates ``call`` and spends or refunds ``budget``.
    """
    status = outcome.status
    if outcome.failure is None and (status is None or status not in RETRYABLE_STATUSES):
        budget.record_success(call.last_cost)
        if status == 404 and call.method == "DELETE" and (call.maybe_acted or outcome.resent):
            return Decision(
                Action.DELETED,
                log_level=logging.DEBUG,
                log_template="%s %s -> 404 after an attempt whose outcome was unknown: deleted",
                log_args=(call.method, call.path),
            )
        return _ANSWER
    if outcome_unknown(outcome):
        call.maybe_acted = True
    if outcome.failure is Failure.PROTOCOL:
        call.garbled = True
    if remaining is not None and remaining <= 0:
        expired = outcome.failure in (Failure.TIMEOUT, Failure.QUEUE_TIMEOUT)
        return Decision(Action.RAISE, deadline=expired)
    reason = retry_reason(policy, call.method, outcome)
    if reason is None or call.attempts > policy.max_retries:
        return _RAISE
    return _plan_retry(policy, budget, call, outcome, reason, draw, now, remaining)


def _plan_retry(
    policy: RetryPolicy,
    budget: RetryBudget,
    call: Call,
    outcome: Outcome,
    reason: str,
    draw: float,
    now: float,
    remaining: float | None,
) -> Decision:
    method, path = call.method, call.path
    retry_after = None
    if outcome.failure is None:
        retry_after = parse_retry_after(outcome.headers.get("Retry-After"), now)
    delay = retry_delay(policy, call.attempts - 1, retry_after, draw)
    if delay is None:
        asked = f"{retry_after:.0f}s" if retry_after is not None and retry_after < 1e12 else "ages"
        return Decision(
            Action.RAISE,
            reason=reason,
            log_level=logging.WARNING,
            log_template="not retrying %s %s: the server asks to wait %s, "
            "longer than retry_after_max=%.0fs",
            log_args=(method, path, asked, policy.retry_after_max),
        )
    if outcome.failure is Failure.PROTOCOL:
        delay = 0.0  # a garbled answer is not a sign of load: try again at once
    if remaining is not None and delay >= remaining:
        return Decision(
            Action.RAISE,
            reason=reason,
            log_level=logging.WARNING,
            log_template="not retrying %s %s after %s: the wait of %.3fs "
            "would outlast the deadline (%.3fs left)",
            log_args=(method, path, reason, delay, remaining),
        )
    cost = budget.acquire(outcome.failure)
    if cost is None:
        # Once per outage at WARNING, not once per failing call: an outage must not also
        # flood the logs.
        level = logging.DEBUG if budget.exhaustion_logged else logging.WARNING
        budget.exhaustion_logged = True
        return Decision(
            Action.RAISE,
            reason=reason,
            log_level=level,
            log_template="not retrying %s %s after %s: the client's retry budget is spent",
            log_args=(method, path, reason),
        )
    budget.exhaustion_logged = False
    call.last_cost = cost
    # A DELETE answered with a malformed response is, from a server that follows the
    # spec, a 204 with a body that aiohttp cannot read: the retry is how every such
    # DELETE completes, so it is no news per call (the client says so once, at WARNING).
    routine = outcome.failure is Failure.PROTOCOL and method == "DELETE"
    return Decision(
        Action.RETRY,
        delay=delay,
        reason=reason,
        log_level=logging.DEBUG if routine else logging.WARNING,
        log_template="retrying %s %s after %s in %.3fs (retry %d of %d)",
        log_args=(method, path, reason, delay, call.attempts, policy.max_retries),
    )


#: Where jitter comes from; tests may swap in a seeded ``random.Random().random``.
default_draw: Callable[[], float] = random.random
