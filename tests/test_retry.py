"""Retry decisions: the policy, which failures are retried, backoff, Retry-After, the budget."""

from __future__ import annotations

import email.utils
import logging
import math

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from segments_async._retry import (
    RETRYABLE_STATUSES,
    Action,
    Call,
    Decision,
    Failure,
    Outcome,
    RetryBudget,
    RetryPolicy,
    backoff_delay,
    decide,
    outcome_unknown,
    parse_retry_after,
    retry_delay,
    retry_reason,
)

#: Wed, 21 Oct 2015 07:28:00 GMT
NOW = 1445412480.0
JUST_BELOW_ONE = math.nextafter(1.0, 0.0)

IDEMPOTENT = ["GET", "PUT", "DELETE"]
RETRYABLE_FAILURES = [
    Failure.CONNECT,
    Failure.DISCONNECT,
    Failure.TIMEOUT,
    Failure.TRUNCATED,
    Failure.PROTOCOL,
]
NEVER_RETRIED_FAILURES = [f for f in Failure if f not in RETRYABLE_FAILURES]
RETRYABLE = [408, 429, 500, 502, 503, 504]
NOT_RETRYABLE = [200, 204, 302, 400, 401, 403, 404, 409, 413, 418, 422, 501, 505, 599]


class TestRetryPolicy:
    @pytest.mark.parametrize(
        "field", ["max_retries", "backoff_initial", "backoff_max", "retry_after_max"]
    )
    def test_negative(self, field):
        """A negative number is a ValueError naming the field."""
        with pytest.raises(ValueError, match=field):
            RetryPolicy(**{field: -1})

    @pytest.mark.parametrize("field", ["backoff_initial", "backoff_max", "retry_after_max"])
    def test_negative_float(self, field):
        """A slightly negative float is a ValueError too."""
        with pytest.raises(ValueError, match=field):
            RetryPolicy(**{field: -0.001})

    @pytest.mark.parametrize(
        "field", ["max_retries", "backoff_initial", "backoff_max", "retry_after_max"]
    )
    @pytest.mark.parametrize("value", [True, False, "1", None, math.nan, math.inf, -math.inf])
    def test_not_a_number(self, field, value):
        """Bools, strings, None, nan and infinities are a TypeError."""
        with pytest.raises(TypeError, match=field):
            RetryPolicy(**{field: value})

    def test_max_retries_float(self):
        """max_retries must be an int, not a float."""
        with pytest.raises(TypeError, match="max_retries"):
            RetryPolicy(max_retries=2.0)  # type: ignore[arg-type]

    @pytest.mark.parametrize("value", [1, 0, "yes", None])
    def test_retry_post_bool(self, value):
        """retry_post must be a bool."""
        with pytest.raises(TypeError):
            RetryPolicy(retry_post=value)  # type: ignore[arg-type]

    def test_zeroes(self):
        """Zero is allowed everywhere."""
        policy = RetryPolicy(max_retries=0, backoff_initial=0, backoff_max=0, retry_after_max=0)

        assert (0, 0, 0, 0) == (
            policy.max_retries,
            policy.backoff_initial,
            policy.backoff_max,
            policy.retry_after_max,
        )

    def test_ints_for_seconds(self):
        """Whole seconds may be given as ints."""
        assert 3 == RetryPolicy(backoff_max=3).backoff_max

    def test_evolve_validates(self):
        """attrs.evolve runs the validators again."""
        with pytest.raises(ValueError, match="max_retries"):
            attrs.evolve(RetryPolicy(), max_retries=-1)

    def test_equality(self):
        """Policies compare by value."""
        assert RetryPolicy(max_retries=3) == RetryPolicy(max_retries=3)
        assert RetryPolicy(max_retries=3) != RetryPolicy()


def test_retryable_statuses():
    """The retryable statuses are exactly the 'not now' ones."""
    assert frozenset(RETRYABLE) == RETRYABLE_STATUSES


def answer(status: int, **headers: str) -> Outcome:
    """An attempt that got an HTTP answer."""
    return Outcome(status, headers)


def failed(failure: Failure, *, sent: bool = True, resent: bool = False) -> Outcome:
    """An attempt that got no usable answer."""
    return Outcome(failure=failure, sent=sent, resent=resent)


class TestRetryReason:
    @pytest.mark.parametrize("method", IDEMPOTENT)
    @pytest.mark.parametrize("failure", RETRYABLE_FAILURES)
    @pytest.mark.parametrize("retry_post", [False, True])
    def test_idempotent_transport_failures(self, method, failure, retry_post):
        """GET, PUT and DELETE retry every retryable failure, named by its value."""
        policy = RetryPolicy(retry_post=retry_post)

        assert failure.value == retry_reason(policy, method, failed(failure))

    @pytest.mark.parametrize("method", [*IDEMPOTENT, "POST"])
    @pytest.mark.parametrize("failure", NEVER_RETRIED_FAILURES)
    @pytest.mark.parametrize("retry_post", [False, True])
    def test_never_retried_failures(self, method, failure, retry_post):
        """TLS trouble, a body too large, a spent deadline and a closed client are final."""
        policy = RetryPolicy(retry_post=retry_post)

        assert retry_reason(policy, method, failed(failure)) is None

    @pytest.mark.parametrize("method", IDEMPOTENT)
    @pytest.mark.parametrize("status", RETRYABLE)
    def test_idempotent_retryable_status(self, method, status):
        """GET, PUT and DELETE retry every retryable status."""
        assert f"HTTP {status}" == retry_reason(RetryPolicy(), method, answer(status))

    @pytest.mark.parametrize("method", [*IDEMPOTENT, "POST"])
    @pytest.mark.parametrize("status", NOT_RETRYABLE)
    @pytest.mark.parametrize("retry_post", [False, True])
    def test_status_not_retryable(self, method, status, retry_post):
        """No method retries a status that is not retryable."""
        policy = RetryPolicy(retry_post=retry_post)

        assert retry_reason(policy, method, answer(status)) is None

    def test_post_connect(self):
        """POST is retried when the connection was never established."""
        assert Failure.CONNECT.value == retry_reason(RetryPolicy(), "POST", failed(Failure.CONNECT))

    @pytest.mark.parametrize("failure", [Failure.TIMEOUT, Failure.DISCONNECT])
    def test_post_never_sent(self, failure):
        """POST is retried when the attempt ended before the request was written."""
        outcome = failed(failure, sent=False)

        assert failure.value == retry_reason(RetryPolicy(), "POST", outcome)

    @pytest.mark.parametrize(
        "failure", [Failure.DISCONNECT, Failure.TIMEOUT, Failure.TRUNCATED, Failure.PROTOCOL]
    )
    def test_post_maybe_acted(self, failure):
        """POST is not retried after a failure where the server may have acted."""
        assert retry_reason(RetryPolicy(), "POST", failed(failure)) is None

    def test_post_429(self):
        """POST is retried on 429: the server refused it without acting."""
        assert "HTTP 429" == retry_reason(RetryPolicy(), "POST", answer(429))

    def test_post_429_after_a_silent_resend(self):
        """A 429 to aiohttp's silent second send: the first send may have created it."""
        assert retry_reason(RetryPolicy(), "POST", Outcome(429, resent=True)) is None

    @pytest.mark.parametrize("status", [408, 500, 502, 503, 504])
    def test_post_maybe_acted_statuses(self, status):
        """POST is not retried on other retryable statuses: a proxy's 503 may follow an act."""
        assert retry_reason(RetryPolicy(), "POST", answer(status)) is None

    @pytest.mark.parametrize("failure", RETRYABLE_FAILURES)
    def test_post_opt_in_transport(self, failure):
        """With retry_post=True, POST retries every retryable failure."""
        assert failure.value == retry_reason(RetryPolicy(retry_post=True), "POST", failed(failure))

    @pytest.mark.parametrize("status", RETRYABLE)
    def test_post_opt_in_status(self, status):
        """With retry_post=True, POST retries every retryable status."""
        policy = RetryPolicy(retry_post=True)

        assert f"HTTP {status}" == retry_reason(policy, "POST", answer(status))

    def test_max_retries_zero_does_not_change_reason(self):
        """retry_reason says whether an outcome is retryable; counting is decide's job."""
        policy = RetryPolicy(max_retries=0)

        assert "timeout" == retry_reason(policy, "GET", failed(Failure.TIMEOUT))


class TestOutcomeUnknown:
    @pytest.mark.parametrize("failure", [Failure.CONNECT, Failure.TLS, Failure.QUEUE_TIMEOUT])
    def test_never_sent(self, failure):
        """A request that never connected (or never left the queue) cannot have been acted on."""
        assert outcome_unknown(failed(failure)) is False

    @pytest.mark.parametrize(
        "failure", [Failure.DISCONNECT, Failure.TIMEOUT, Failure.TRUNCATED, Failure.PROTOCOL]
    )
    def test_after_sending(self, failure):
        """Failures after the request may have been sent leave the outcome unknown."""
        assert outcome_unknown(failed(failure)) is True

    @pytest.mark.parametrize("failure", [Failure.TIMEOUT, Failure.DISCONNECT, Failure.CLOSED])
    def test_not_written(self, failure):
        """An attempt that ended before the request was written is known not to have acted."""
        assert outcome_unknown(failed(failure, sent=False)) is False

    @pytest.mark.parametrize("status", [500, 502, 503, 504])
    def test_acted_statuses(self, status):
        """500, 502, 503 and 504 leave the outcome unknown."""
        assert outcome_unknown(answer(status)) is True

    @pytest.mark.parametrize("status", [200, 400, 401, 404, 408, 409, 422, 429])
    def test_known_statuses(self, status):
        """Other statuses say the server did (or did not) act, knowably."""
        assert outcome_unknown(answer(status)) is False

    def test_silent_resend(self):
        """aiohttp's silent second send means the first may have been acted on."""
        assert outcome_unknown(Outcome(404, resent=True)) is True


class TestBackoffDelay:
    def test_draw_zero(self):
        """A draw of 0 waits 0."""
        assert 0.0 == backoff_delay(RetryPolicy(), 3, 0.0)

    @pytest.mark.parametrize(
        ("retry_number", "ceiling"),
        [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 8.0), (30, 8.0)],
    )
    def test_ceiling(self, retry_number, ceiling):
        """The ceiling doubles per retry from backoff_initial and stops at backoff_max."""
        delay = backoff_delay(RetryPolicy(), retry_number, JUST_BELOW_ONE)

        assert delay < ceiling
        assert delay == pytest.approx(ceiling)

    def test_half_draw(self):
        """Jitter scales the ceiling linearly."""
        assert 1.0 == backoff_delay(RetryPolicy(), 2, 0.5)

    @pytest.mark.parametrize("retry_number", [62, 63, 1024, 10**6, 10**100])
    def test_huge_retry_number(self, retry_number):
        """A huge retry number doesn't overflow: it waits at most backoff_max."""
        delay = backoff_delay(RetryPolicy(), retry_number, JUST_BELOW_ONE)

        assert delay < 8.0
        assert delay == pytest.approx(8.0)

    def test_huge_initial(self):
        """A huge initial backoff times a huge multiplier still caps at backoff_max."""
        policy = RetryPolicy(backoff_initial=1e308, backoff_max=1e308)

        assert 1e308 * 0.5 == backoff_delay(policy, 10**6, 0.5)

    def test_zero_initial(self):
        """No initial backoff means no backoff."""
        assert 0.0 == backoff_delay(RetryPolicy(backoff_initial=0), 10, JUST_BELOW_ONE)

    def test_max_below_initial(self):
        """backoff_max caps even the first retry."""
        policy = RetryPolicy(backoff_initial=5.0, backoff_max=1.0)

        assert 0.5 == backoff_delay(policy, 0, 0.5)

    @given(
        backoff_initial=st.floats(min_value=0, allow_nan=False, allow_infinity=False),
        backoff_max=st.floats(min_value=0, allow_nan=False, allow_infinity=False),
        retry_number=st.integers(min_value=0, max_value=10**9),
        draw=st.floats(min_value=0, max_value=1, exclude_max=True),
    )
    def test_bounded(self, backoff_initial, backoff_max, retry_number, draw):
        """Whatever the policy, retry and draw, the delay is in [0, backoff_max]."""
        policy = RetryPolicy(backoff_initial=backoff_initial, backoff_max=backoff_max)

        delay = backoff_delay(policy, retry_number, draw)

        assert 0.0 <= delay <= backoff_max


def http_date(timestamp: float) -> str:
    return email.utils.formatdate(timestamp, usegmt=True)


class TestParseRetryAfter:
    @pytest.mark.parametrize(
        ("value", "seconds"),
        [
            ("5", 5.0),
            ("0", 0.0),
            ("1.5", 1.5),
            (" 3 ", 3.0),
            ("\t7\r\n", 7.0),
            ("120", 120.0),
            ("1.", 1.0),
        ],
    )
    def test_seconds(self, value, seconds):
        """Delta-seconds (and decimal seconds) are read as such."""
        assert seconds == parse_retry_after(value, NOW)

    @pytest.mark.parametrize(
        "value",
        [
            None,
            "",
            "   ",
            "soon",
            "-1",
            "+5",
            "nan",
            "inf",
            "1e3",
            ".",
            "1.5.",
            "0x10",
            "\u0663",  # ARABIC-INDIC DIGIT THREE: isdigit(), but not ASCII
            "Wed, 32 Oct 2015 07:28:00 GMT",
        ],
    )
    def test_unreadable(self, value):
        """A missing or unreadable value is None."""
        assert parse_retry_after(value, NOW) is None

    def test_too_many_digits_is_too_long(self):
        """A number too large for a float is infinite seconds: too long, not unreadable."""
        assert math.inf == parse_retry_after("9" * 400, NOW)

    def test_date_in_future(self):
        """An HTTP date is read relative to now."""
        assert 30.0 == parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", NOW)

    def test_date_from_formatdate(self):
        """A date produced by the standard library's formatter round-trips."""
        assert 90.0 == parse_retry_after(http_date(NOW + 90), NOW)

    def test_date_in_past(self):
        """A date in the past means no wait."""
        assert 0.0 == parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", NOW)

    def test_date_now(self):
        """A date equal to now means no wait."""
        assert 0.0 == parse_retry_after(http_date(NOW), NOW)

    def test_date_with_offset(self):
        """A numeric zone offset is honoured."""
        assert 30.0 == parse_retry_after("Wed, 21 Oct 2015 09:28:30 +0200", NOW)

    def test_asctime_padded_day(self):
        """asctime pads a one-digit day with a space."""
        assert 30.0 == parse_retry_after("Wed Oct  7 07:28:30 2015", NOW - 14 * 86400)

    def test_rfc850_date(self):
        """The obsolete RFC 850 form is accepted."""
        assert 30.0 == parse_retry_after("Wednesday, 21-Oct-15 07:28:30 GMT", NOW)

    def test_asctime_date(self):
        """The asctime form, which RFC 9110 section 5.6.7 says recipients MUST accept, is GMT."""
        assert 30.0 == parse_retry_after("Wed Oct 21 07:28:30 2015", NOW)


class TestRetryDelay:
    def test_retry_after_wins(self):
        """A Retry-After within the cap is waited, whatever the backoff would be."""
        assert 3.0 == retry_delay(RetryPolicy(), 0, 3.0, JUST_BELOW_ONE)

    def test_retry_after_zero(self):
        """Retry-After: 0 retries at once."""
        assert 0.0 == retry_delay(RetryPolicy(), 4, 0.0, JUST_BELOW_ONE)

    def test_retry_after_above_cap(self):
        """A Retry-After above retry_after_max is not waited for."""
        assert retry_delay(RetryPolicy(), 0, 60.001, 0.5) is None

    def test_retry_after_at_cap(self):
        """A Retry-After equal to retry_after_max is waited."""
        assert 60.0 == retry_delay(RetryPolicy(), 0, 60.0, 0.5)

    def test_retry_after_cap_zero(self):
        """With retry_after_max=0 any positive Retry-After gives up."""
        assert retry_delay(RetryPolicy(retry_after_max=0), 0, 1.0, 0.5) is None

    def test_no_retry_after_backs_off(self):
        """Without Retry-After the delay is the jittered backoff."""
        assert backoff_delay(RetryPolicy(), 3, 0.25) == retry_delay(RetryPolicy(), 3, None, 0.25)
        assert 1.0 == retry_delay(RetryPolicy(), 3, None, 0.25)


class TestRetryBudget:
    def test_defaults(self):
        """A new budget is full: 500 tokens, 5 per retry, 10 per timeout, 1 back per success."""
        budget = RetryBudget()

        assert (500, 500, 5, 10, 1) == (
            budget.tokens,
            budget.capacity,
            budget.retry_cost,
            budget.timeout_cost,
            budget.success_refund,
        )

    @pytest.mark.parametrize(
        "failure",
        [Failure.CONNECT, Failure.DISCONNECT, Failure.TRUNCATED, Failure.PROTOCOL, None],
    )
    def test_retry_cost(self, failure):
        """A retry after anything but a timeout takes 5 tokens."""
        budget = RetryBudget()

        assert 5 == budget.acquire(failure)
        assert 495 == budget.tokens

    def test_timeout_cost(self):
        """A retry after a timeout takes 10 tokens."""
        budget = RetryBudget()

        assert 10 == budget.acquire(Failure.TIMEOUT)
        assert 490 == budget.tokens

    def test_exhausted_after_100_retries(self):
        """A full bucket pays for exactly 100 retries, then refuses without going negative."""
        budget = RetryBudget()

        costs = [budget.acquire(None) for _ in range(100)]

        assert [5] * 100 == costs
        assert 0 == budget.tokens
        assert budget.acquire(None) is None
        assert 0 == budget.tokens

    def test_exhausted_after_50_timeouts(self):
        """A full bucket pays for exactly 50 retries after timeouts."""
        budget = RetryBudget()

        costs = [budget.acquire(Failure.TIMEOUT) for _ in range(51)]

        assert [10] * 50 + [None] == costs

    def test_refuses_when_short(self):
        """A retry the bucket cannot fully pay for is refused and takes nothing."""
        budget = RetryBudget(capacity=8)
        budget.acquire(None)

        assert budget.acquire(None) is None
        assert 3 == budget.tokens

    def test_timeout_refused_while_retry_paid(self):
        """With 5..9 tokens left a plain retry is paid but a timeout retry is not."""
        budget = RetryBudget(capacity=9)

        assert budget.acquire(Failure.TIMEOUT) is None
        assert 5 == budget.acquire(Failure.DISCONNECT)

    def test_success_refunds_one(self):
        """A call that succeeds at once puts back one token."""
        budget = RetryBudget()
        budget.acquire(None)

        budget.record_success(None)

        assert 496 == budget.tokens

    def test_refund_capped(self):
        """Refunds never fill the bucket beyond its capacity."""
        budget = RetryBudget()

        budget.record_success(None)
        budget.record_success(10)

        assert 500 == budget.tokens

    def test_success_after_retry_refunds_its_cost(self):
        """A call that succeeds after a retry puts back what its last retry took."""
        budget = RetryBudget()
        budget.acquire(None)
        cost = budget.acquire(Failure.TIMEOUT)

        budget.record_success(cost)

        assert 495 == budget.tokens

    def test_recovers_after_exhaustion(self):
        """Successes refill a spent bucket until retries are affordable again."""
        budget = RetryBudget()
        while budget.acquire(None) is not None:
            pass

        for _ in range(4):
            budget.record_success(None)
        assert budget.acquire(None) is None

        budget.record_success(None)
        assert 5 == budget.acquire(None)

    def test_custom_costs(self):
        """Capacity and costs can be configured."""
        budget = RetryBudget(10, retry_cost=3, timeout_cost=7, success_refund=2)

        assert 3 == budget.acquire(Failure.CONNECT)
        assert 7 == budget.acquire(Failure.TIMEOUT)
        assert budget.acquire(Failure.CONNECT) is None
        budget.record_success(None)
        assert 2 == budget.tokens

    def test_slotted(self):
        """The budget is slotted: a misspelt attribute is an error, not a silent no-op."""
        budget = RetryBudget()

        with pytest.raises(AttributeError):
            budget.retry_costs = 1  # type: ignore[attr-defined]
        assert 5 == budget.retry_cost


def decide_once(
    outcome: Outcome,
    *,
    method: str = "GET",
    policy: RetryPolicy | None = None,
    budget: RetryBudget | None = None,
    call: Call | None = None,
    draw: float = 0.5,
    remaining: float | None = None,
) -> Decision:
    """The decision after one attempt (the call's first, unless a call is given)."""
    call = call if call is not None else Call(method, "/v2.3/data/segments")
    call.attempts += 1
    return decide(
        policy or RetryPolicy(),
        budget or RetryBudget(),
        call,
        outcome,
        draw=draw,
        now=NOW,
        remaining=remaining,
    )


#: The README's retry table, row by row: (outcome, GET/PUT/DELETE, POST).
RETRY_TABLE = [
    pytest.param(failed(Failure.CONNECT), Action.RETRY, Action.RETRY, id="never connected"),
    pytest.param(
        failed(Failure.TIMEOUT, sent=False), Action.RETRY, Action.RETRY, id="timed out unsent"
    ),
    pytest.param(answer(429), Action.RETRY, Action.RETRY, id="429"),
    pytest.param(failed(Failure.DISCONNECT), Action.RETRY, Action.RAISE, id="connection lost"),
    pytest.param(failed(Failure.TIMEOUT), Action.RETRY, Action.RAISE, id="timeout"),
    pytest.param(failed(Failure.TRUNCATED), Action.RETRY, Action.RAISE, id="body cut short"),
    pytest.param(failed(Failure.PROTOCOL), Action.RETRY, Action.RAISE, id="malformed HTTP"),
    *(
        pytest.param(answer(status), Action.RETRY, Action.RAISE, id=str(status))
        for status in (408, 500, 502, 503, 504)
    ),
    *(
        pytest.param(answer(status), Action.ANSWER, Action.ANSWER, id=str(status))
        for status in (200, 204, 400, 401, 403, 404, 409, 422, 501)
    ),
    pytest.param(failed(Failure.TLS, sent=False), Action.RAISE, Action.RAISE, id="TLS failure"),
    pytest.param(failed(Failure.TOO_LARGE), Action.RAISE, Action.RAISE, id="body too large"),
    pytest.param(failed(Failure.CLOSED), Action.RAISE, Action.RAISE, id="client closed"),
]


class TestDecide:
    @pytest.mark.parametrize(("outcome", "idempotent", "post"), RETRY_TABLE)
    @pytest.mark.parametrize("method", IDEMPOTENT)
    def test_table_idempotent(self, outcome, idempotent, post, method):
        """GET, PUT and DELETE follow the README's retry table (a first attempt's 404 too)."""
        assert idempotent == decide_once(outcome, method=method).action

    @pytest.mark.parametrize(("outcome", "idempotent", "post"), RETRY_TABLE)
    def test_table_post(self, outcome, idempotent, post):
        """POST follows the README's retry table."""
        assert post == decide_once(outcome, method="POST").action

    @pytest.mark.parametrize(("outcome", "idempotent", "post"), RETRY_TABLE)
    def test_table_post_opted_in(self, outcome, idempotent, post):
        """With retry_post=True, POST retries whatever GET retries."""
        policy = RetryPolicy(retry_post=True)

        assert idempotent == decide_once(outcome, method="POST", policy=policy).action

    def test_retry_names_reason_and_delay(self):
        """A retry carries its reason, the jittered delay and a WARNING to log."""
        decision = decide_once(answer(503), draw=0.5)

        assert (Action.RETRY, "HTTP 503", 0.25) == (
            decision.action,
            decision.reason,
            decision.delay,
        )
        assert logging.WARNING == decision.log_level
        assert "retrying GET /v2.3/data/segments after HTTP 503 in 0.250s (retry 1 of 2)" == (
            decision.log_message
        )

    def test_retries_stop_at_max_retries(self):
        """The third failure of a call with max_retries=2 is raised."""
        call = Call("GET", "/x")
        actions = [decide_once(answer(503), call=call).action for _ in range(3)]

        assert [Action.RETRY, Action.RETRY, Action.RAISE] == actions

    def test_max_retries_zero(self):
        """RetryPolicy(max_retries=0) raises the first failure."""
        decision = decide_once(answer(503), policy=RetryPolicy(max_retries=0))

        assert Action.RAISE == decision.action

    def test_backoff_grows_per_retry(self):
        """The n-th retry waits draw * min(backoff_max, backoff_initial * 2**n)."""
        call = Call("GET", "/x")
        policy = RetryPolicy(max_retries=4, backoff_initial=1.0, backoff_max=3.0)
        delays = [
            decide_once(failed(Failure.CONNECT), call=call, policy=policy, draw=0.5).delay
            for _ in range(4)
        ]

        assert [0.5, 1.0, 1.5, 1.5] == delays

    def test_retry_after_wins_over_backoff(self):
        """A Retry-After within the cap is the delay."""
        decision = decide_once(answer(429, **{"Retry-After": "7"}))

        assert (Action.RETRY, 7.0) == (decision.action, decision.delay)

    def test_retry_after_date(self):
        """A Retry-After date is read against now."""
        decision = decide_once(answer(503, **{"Retry-After": http_date(NOW + 12)}))

        assert 12.0 == decision.delay

    def test_retry_after_above_cap_is_raised_with_a_warning(self):
        """A Retry-After above retry_after_max is not waited for, and that is logged."""
        decision = decide_once(answer(429, **{"Retry-After": "120"}))

        assert (Action.RAISE, logging.WARNING) == (decision.action, decision.log_level)
        assert "asks to wait 120s, longer than retry_after_max=60s" in decision.log_message

    def test_retry_after_too_many_digits(self):
        """A Retry-After of 400 digits is too long, not unreadable (which would back off)."""
        decision = decide_once(answer(429, **{"Retry-After": "9" * 400}))

        assert Action.RAISE == decision.action
        assert "longer than retry_after_max" in decision.log_message

    def test_unreadable_retry_after_backs_off(self):
        """An unreadable Retry-After is ignored: the backoff applies."""
        decision = decide_once(answer(503, **{"Retry-After": "soon"}), draw=0.5)

        assert (Action.RETRY, 0.25) == (decision.action, decision.delay)

    def test_malformed_answer_is_retried_at_once(self):
        """A garbled answer is not a sign of load: no backoff."""
        assert 0.0 == decide_once(failed(Failure.PROTOCOL), draw=0.9).delay

    def test_a_delete_answered_unreadably_is_retried_at_debug(self):
        """A DELETE's malformed answer (the spec's 204 with a body) is routine: DEBUG, and
        the call remembers it, so that the client can say it once."""
        call = Call("DELETE", "/x")
        decision = decide_once(failed(Failure.PROTOCOL), method="DELETE", call=call)

        assert (Action.RETRY, logging.DEBUG) == (decision.action, decision.log_level)
        assert call.garbled is True
        assert Action.DELETED == decide_once(answer(404), method="DELETE", call=call).action

    @pytest.mark.parametrize("method", ["GET", "PUT"])
    def test_other_unreadable_answers_are_retried_with_a_warning(self, method):
        """Any other method's malformed answer is worth a WARNING."""
        decision = decide_once(failed(Failure.PROTOCOL), method=method)

        assert (Action.RETRY, logging.WARNING) == (decision.action, decision.log_level)

    def test_log_lines_are_templates_with_arguments(self):
        """Every decision that logs gives a template and its arguments, never a sentence."""
        decisions = [
            decide_once(answer(503), draw=0.5),
            decide_once(answer(429, **{"Retry-After": "120"})),
            decide_once(answer(503), draw=0.9, remaining=0.2),
        ]

        for decision in decisions:
            assert decision.log_args
            assert "%s %s" in decision.log_template
            assert "/v2.3/data/segments" not in decision.log_template
            assert decision.log_template % decision.log_args == decision.log_message

    def test_deadline_expired_after_a_timeout(self):
        """A timeout with no time left is the deadline running out."""
        decision = decide_once(failed(Failure.TIMEOUT), remaining=0.0)

        assert (Action.RAISE, True) == (decision.action, decision.deadline)

    def test_deadline_expired_while_queued(self):
        """Running out of time while waiting for a connection is the deadline too."""
        decision = decide_once(failed(Failure.QUEUE_TIMEOUT, sent=False), remaining=0.0)

        assert (Action.RAISE, True) == (decision.action, decision.deadline)

    def test_no_time_left_raises_the_answer(self):
        """A retryable answer with no time left is raised as what it is."""
        decision = decide_once(answer(503), remaining=0.0)

        assert (Action.RAISE, False) == (decision.action, decision.deadline)

    def test_backoff_beyond_the_deadline_is_not_waited(self):
        """A retry that could not start before the deadline is not made."""
        decision = decide_once(answer(503), draw=0.9, remaining=0.2)

        assert Action.RAISE == decision.action
        assert "would outlast the deadline" in decision.log_message

    def test_retry_after_beyond_the_deadline_gives_up_at_once(self):
        """A Retry-After longer than the time left gives up at once."""
        decision = decide_once(answer(429, **{"Retry-After": "5"}), remaining=4.0)

        assert Action.RAISE == decision.action

    def test_backoff_within_the_deadline(self):
        """A retry that can start before the deadline is made."""
        decision = decide_once(answer(503), draw=0.5, remaining=0.3)

        assert (Action.RETRY, 0.25) == (decision.action, decision.delay)

    def test_delete_404_after_unknown_outcome_is_success(self):
        """A DELETE answered 404 after an attempt whose outcome was unknown succeeded."""
        call = Call("DELETE", "/x")
        decide_once(failed(Failure.TIMEOUT), call=call)

        assert Action.DELETED == decide_once(answer(404), call=call).action

    def test_delete_404_after_silent_resend_is_success(self):
        """A 404 to aiohttp's silent second send: the first send deleted it."""
        assert Action.DELETED == decide_once(Outcome(404, resent=True), method="DELETE").action

    @pytest.mark.parametrize(
        "first",
        [
            failed(Failure.CONNECT),
            failed(Failure.TIMEOUT, sent=False),
            failed(Failure.QUEUE_TIMEOUT, sent=False),
            answer(429),
            answer(408),
        ],
    )
    def test_delete_404_after_a_known_outcome_is_not_found(self, first):
        """After attempts that certainly did nothing, a 404 means there was no such segment."""
        call = Call("DELETE", "/x")
        decide_once(first, call=call, remaining=None)

        assert Action.ANSWER == decide_once(answer(404), call=call).action

    def test_delete_404_first_attempt_is_not_found(self):
        """A first attempt's 404 is a NotFoundError to read."""
        assert Action.ANSWER == decide_once(answer(404), method="DELETE").action

    @pytest.mark.parametrize("method", ["GET", "PUT", "POST"])
    def test_404_rule_is_for_delete_only(self, method):
        """Other methods' 404 after an unknown outcome is an answer to read."""
        call = Call(method, "/x")
        decide_once(failed(Failure.TIMEOUT), call=call, policy=RetryPolicy(retry_post=True))

        assert Action.ANSWER == decide_once(answer(404), call=call).action

    def test_unknown_outcome_is_remembered(self):
        """maybe_acted is set by an attempt that may have acted, and only by such."""
        call = Call("POST", "/x")
        decide_once(failed(Failure.CONNECT), call=call)
        assert call.maybe_acted is False
        decide_once(failed(Failure.TIMEOUT), call=call)
        assert call.maybe_acted is True

    def test_budget_spent_raises_and_warns_once(self):
        """A dry budget raises, with a WARNING the first time and DEBUG after."""
        budget = RetryBudget(capacity=4)
        first = decide_once(answer(503), budget=budget)
        second = decide_once(answer(503), budget=budget)

        assert (Action.RAISE, Action.RAISE) == (first.action, second.action)
        assert (logging.WARNING, logging.DEBUG) == (first.log_level, second.log_level)
        assert "retry budget is spent" in first.log_message

    def test_budget_warning_rearms_after_a_retry(self):
        """Once a retry is paid again, the next exhaustion warns again."""
        budget = RetryBudget(capacity=5)
        decide_once(answer(503), budget=budget)  # pays 5
        decide_once(answer(503), budget=budget)  # dry: warns
        budget.record_success(5)
        decide_once(answer(503), budget=budget)  # pays again: re-arms

        assert logging.WARNING == decide_once(answer(503), budget=budget).log_level

    def test_retry_spends_the_budget(self):
        """A retry takes its cost, remembered as the call's last cost."""
        budget = RetryBudget()
        call = Call("GET", "/x")
        decide_once(failed(Failure.TIMEOUT), call=call, budget=budget)

        assert (490, 10) == (budget.tokens, call.last_cost)

    def test_answer_after_retry_refunds_its_cost(self):
        """An answer after a retry puts the retry's cost back."""
        budget = RetryBudget()
        call = Call("GET", "/x")
        decide_once(failed(Failure.TIMEOUT), call=call, budget=budget)
        decide_once(answer(200), call=call, budget=budget)

        assert 500 == budget.tokens

    def test_never_sent_attempt_costs_a_retry_but_is_not_unknown(self):
        """A POST that timed out unsent is retried: it cannot have created anything."""
        call = Call("POST", "/x")
        decision = decide_once(failed(Failure.TIMEOUT, sent=False), call=call)

        assert (Action.RETRY, False) == (decision.action, call.maybe_acted)
