"""Retry decisions: the policy, which failures are retried, backoff, Retry-After, the budget."""

from __future__ import annotations

import email.utils
import math

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from segments_async._retry import (
    RETRYABLE_STATUSES,
    Failure,
    RetryBudget,
    RetryPolicy,
    backoff_delay,
    outcome_unknown,
    parse_retry_after,
    retry_delay,
    retry_reason,
)

#: Wed, 21 Oct 2015 07:28:00 GMT
NOW = 1445412480.0
JUST_BELOW_ONE = math.nextafter(1.0, 0.0)

IDEMPOTENT = ["GET", "PUT", "DELETE"]
NON_STATUS_FAILURES = [f for f in Failure if f is not Failure.STATUS]
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


class TestRetryReason:
    @pytest.mark.parametrize("method", IDEMPOTENT)
    @pytest.mark.parametrize("failure", NON_STATUS_FAILURES)
    @pytest.mark.parametrize("retry_post", [False, True])
    def test_idempotent_transport_failures(self, method, failure, retry_post):
        """GET, PUT and DELETE retry every transport failure, named by its value."""
        policy = RetryPolicy(retry_post=retry_post)

        assert failure.value == retry_reason(policy, method, failure)

    @pytest.mark.parametrize("method", IDEMPOTENT)
    @pytest.mark.parametrize("status", RETRYABLE)
    def test_idempotent_retryable_status(self, method, status):
        """GET, PUT and DELETE retry every retryable status."""
        assert f"HTTP {status}" == retry_reason(RetryPolicy(), method, Failure.STATUS, status)

    @pytest.mark.parametrize("method", [*IDEMPOTENT, "POST"])
    @pytest.mark.parametrize("status", [*NOT_RETRYABLE, None])
    @pytest.mark.parametrize("retry_post", [False, True])
    def test_status_not_retryable(self, method, status, retry_post):
        """No method retries a status that is not retryable (nor a status failure without one)."""
        policy = RetryPolicy(retry_post=retry_post)

        assert retry_reason(policy, method, Failure.STATUS, status) is None

    def test_post_connect(self):
        """POST is retried when the connection was never established."""
        assert Failure.CONNECT.value == retry_reason(RetryPolicy(), "POST", Failure.CONNECT)

    @pytest.mark.parametrize(
        "failure", [Failure.DISCONNECT, Failure.TIMEOUT, Failure.TRUNCATED, Failure.PROTOCOL]
    )
    def test_post_maybe_acted(self, failure):
        """POST is not retried after a failure where the server may have acted."""
        assert retry_reason(RetryPolicy(), "POST", failure) is None

    def test_post_429(self):
        """POST is retried on 429: the server refused it without acting."""
        assert "HTTP 429" == retry_reason(RetryPolicy(), "POST", Failure.STATUS, 429)

    @pytest.mark.parametrize("status", [408, 500, 502, 503, 504])
    def test_post_maybe_acted_statuses(self, status):
        """POST is not retried on other retryable statuses: a proxy's 503 may follow an act."""
        assert retry_reason(RetryPolicy(), "POST", Failure.STATUS, status) is None

    @pytest.mark.parametrize("failure", NON_STATUS_FAILURES)
    def test_post_opt_in_transport(self, failure):
        """With retry_post=True, POST retries every transport failure."""
        assert failure.value == retry_reason(RetryPolicy(retry_post=True), "POST", failure)

    @pytest.mark.parametrize("status", RETRYABLE)
    def test_post_opt_in_status(self, status):
        """With retry_post=True, POST retries every retryable status."""
        policy = RetryPolicy(retry_post=True)

        assert f"HTTP {status}" == retry_reason(policy, "POST", Failure.STATUS, status)

    @pytest.mark.parametrize(
        ("failure", "status"),
        [(f, None) for f in NON_STATUS_FAILURES]
        + [(Failure.STATUS, s) for s in [*RETRYABLE, *NOT_RETRYABLE]],
    )
    def test_post_only_where_the_server_cannot_have_acted(self, failure, status):
        """A default POST is retried iff retryable and never connected or answered 429."""
        retryable = retry_reason(RetryPolicy(), "GET", failure, status) is not None
        expected = retryable and (failure is Failure.CONNECT or status == 429)
        if expected:
            assert not outcome_unknown(failure, status)

        assert expected == (retry_reason(RetryPolicy(), "POST", failure, status) is not None)

    def test_max_retries_zero_does_not_change_reason(self):
        """retry_reason says whether a failure is retryable; counting is the caller's job."""
        assert "timeout" == retry_reason(RetryPolicy(max_retries=0), "GET", Failure.TIMEOUT)


class TestOutcomeUnknown:
    def test_connect(self):
        """A request that never connected cannot have been acted on."""
        assert outcome_unknown(Failure.CONNECT) is False

    @pytest.mark.parametrize(
        "failure", [Failure.DISCONNECT, Failure.TIMEOUT, Failure.TRUNCATED, Failure.PROTOCOL]
    )
    def test_after_sending(self, failure):
        """Failures after the request may have been sent leave the outcome unknown."""
        assert outcome_unknown(failure) is True

    @pytest.mark.parametrize("status", [500, 502, 503, 504])
    def test_acted_statuses(self, status):
        """500, 502, 503 and 504 leave the outcome unknown."""
        assert outcome_unknown(Failure.STATUS, status) is True

    @pytest.mark.parametrize("status", [400, 401, 404, 408, 409, 422, 429, None])
    def test_known_statuses(self, status):
        """Other statuses (and no status) say the server did not act."""
        assert outcome_unknown(Failure.STATUS, status) is False


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
            "9" * 400,  # overflows a float to inf
            "Wed, 32 Oct 2015 07:28:00 GMT",
        ],
    )
    def test_unreadable(self, value):
        """A missing or unreadable value is None."""
        assert parse_retry_after(value, NOW) is None

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
        [Failure.CONNECT, Failure.DISCONNECT, Failure.TRUNCATED, Failure.PROTOCOL, Failure.STATUS],
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

        costs = [budget.acquire(Failure.STATUS) for _ in range(100)]

        assert [5] * 100 == costs
        assert 0 == budget.tokens
        assert budget.acquire(Failure.STATUS) is None
        assert 0 == budget.tokens

    def test_exhausted_after_50_timeouts(self):
        """A full bucket pays for exactly 50 retries after timeouts."""
        budget = RetryBudget()

        costs = [budget.acquire(Failure.TIMEOUT) for _ in range(51)]

        assert [10] * 50 + [None] == costs

    def test_refuses_when_short(self):
        """A retry the bucket cannot fully pay for is refused and takes nothing."""
        budget = RetryBudget(capacity=8)
        budget.acquire(Failure.STATUS)

        assert budget.acquire(Failure.STATUS) is None
        assert 3 == budget.tokens

    def test_timeout_refused_while_retry_paid(self):
        """With 5..9 tokens left a plain retry is paid but a timeout retry is not."""
        budget = RetryBudget(capacity=9)

        assert budget.acquire(Failure.TIMEOUT) is None
        assert 5 == budget.acquire(Failure.DISCONNECT)

    def test_success_refunds_one(self):
        """A call that succeeds at once puts back one token."""
        budget = RetryBudget()
        budget.acquire(Failure.STATUS)

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
        budget.acquire(Failure.STATUS)
        cost = budget.acquire(Failure.TIMEOUT)

        budget.record_success(cost)

        assert 495 == budget.tokens

    def test_recovers_after_exhaustion(self):
        """Successes refill a spent bucket until retries are affordable again."""
        budget = RetryBudget()
        while budget.acquire(Failure.STATUS) is not None:
            pass

        for _ in range(4):
            budget.record_success(None)
        assert budget.acquire(Failure.STATUS) is None

        budget.record_success(None)
        assert 5 == budget.acquire(Failure.STATUS)

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
