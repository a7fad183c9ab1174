"""The control options, checked without a loop: deadline, event hooks, default headers,
and the cut of an attempt's timeout to what remains of a deadline."""

from __future__ import annotations

import math
from typing import Any

import aiohttp
import pytest

from segments_async import SegmentsClient
from segments_async._options import ClientOptions, EventHooks, cut_timeout

BASE_URL = "https://api.segments.test"
TOKEN = "tok-3f9a7c1d5e"


def hook(event: object) -> None:
    pass


async def async_hook(event: object) -> None:
    pass


class TestDeadline:
    @pytest.mark.parametrize("seconds", [0.001, 1, 2.5, 10**6])
    def test_positive_numbers(self, seconds):
        """A positive number of seconds is kept, as a float."""
        deadline = SegmentsClient(BASE_URL, TOKEN, deadline=seconds).deadline
        assert (float(seconds), float) == (deadline, type(deadline))

    def test_none_is_no_deadline(self):
        """None (the default) means no deadline."""
        assert SegmentsClient(BASE_URL, TOKEN).deadline is None

    @pytest.mark.parametrize("bad", [0, 0.0, -1, -0.5, math.nan, math.inf, -math.inf])
    def test_not_positive_or_not_finite_is_a_value_error(self, bad):
        """deadline <= 0, NaN and infinity are ValueErrors naming the option."""
        with pytest.raises(ValueError, match="deadline must be a positive number"):
            SegmentsClient(BASE_URL, TOKEN, deadline=bad)

    @pytest.mark.parametrize("wrong", ["5", b"5", True, [5], object()])
    def test_not_a_number_is_a_type_error(self, wrong):
        """A str, a bool or any other non-number is a TypeError."""
        with pytest.raises(TypeError, match="deadline must be seconds"):
            SegmentsClient(BASE_URL, TOKEN, deadline=wrong)

    def test_with_options_checks_the_same(self):
        """A view's deadline goes through the same check."""
        client = SegmentsClient(BASE_URL, TOKEN, deadline=3)
        with pytest.raises(ValueError, match="deadline"):
            client.with_options(deadline=-1)
        assert 3 == client.deadline


class TestEventHooks:
    def test_lists_become_tuples_in_order(self):
        """Each kind's functions are kept in order; kinds not given are empty."""
        hooks = ClientOptions(event_hooks={"response": [hook, async_hook]}).event_hooks
        assert EventHooks(response=(hook, async_hook)) == hooks

    @pytest.mark.parametrize("functions", [[hook], (hook,), {hook}, iter([hook])], ids=repr)
    def test_any_iterable_of_functions(self, functions):
        """A list, tuple, set or iterator of functions."""
        assert (hook,) == ClientOptions(event_hooks={"retry": functions}).event_hooks.retry

    def test_empty(self):
        """None, {} and empty lists mean no hooks, and a falsy EventHooks."""
        for given in (None, {}, {"request": [], "response": [], "retry": []}):
            assert not ClientOptions(event_hooks=given).event_hooks

    @pytest.mark.parametrize("kind", ["requests", "Response", "error", "", 1, None])
    def test_unknown_kinds_are_a_value_error(self, kind):
        """A misspelt kind would silently never fire: refused, listing the kinds."""
        with pytest.raises(ValueError, match=r"unknown event hook kinds.*request, response, retry"):
            SegmentsClient(BASE_URL, TOKEN, event_hooks={kind: [hook]})

    @pytest.mark.parametrize(
        "functions", [hook, "hook", b"hook", None, 3, [hook, None], [hook, "print"]], ids=repr
    )
    def test_non_callables_are_a_type_error(self, functions):
        """A bare function (not in a list), a string or a non-callable in the list."""
        with pytest.raises(TypeError, match=r"event_hooks\['response'\]"):
            SegmentsClient(BASE_URL, TOKEN, event_hooks={"response": functions})

    @pytest.mark.parametrize("hooks", [[hook], hook, "response", ("response", [hook])], ids=repr)
    def test_not_a_mapping_is_a_type_error(self, hooks):
        """event_hooks is a dict of kind to list."""
        with pytest.raises(TypeError, match="event_hooks must be a dict"):
            SegmentsClient(BASE_URL, TOKEN, event_hooks=hooks)

    def test_with_options_checks_the_same(self):
        """A view's hooks go through the same checks."""
        client = SegmentsClient(BASE_URL, TOKEN)
        with pytest.raises(ValueError, match="unknown event hook kinds"):
            client.with_options(event_hooks={"responses": [hook]})
        with pytest.raises(TypeError, match="not callable"):
            client.with_options(event_hooks={"response": [42]})


class TestDefaultHeaders:
    def test_kept_in_order(self):
        """Headers are kept as given, in order."""
        options = ClientOptions(default_headers={"X-B": "2", "x-a": "1"})
        assert (("X-B", "2"), ("x-a", "1")) == options.default_headers

    @pytest.mark.parametrize(
        "name",
        ["Authorization", "CONTENT-TYPE", "accept", "Host", "Content-Length", "Transfer-Encoding"],
    )
    def test_reserved(self, name):
        """Headers the client sets or that frame the message are refused in any case."""
        with pytest.raises(ValueError, match=f"cannot set {name}"):
            ClientOptions(default_headers={name: "x"})

    def test_the_message_never_repeats_a_refused_authorization(self):
        """A token passed by mistake as a header is not echoed in the error."""
        with pytest.raises(ValueError, match="cannot set") as caught:
            ClientOptions(default_headers={"Authorization": "Bearer secret-tok"})
        assert "secret-tok" not in str(caught.value)

    def test_merge_replaces_names_in_any_case(self):
        """with_options merges over the parent's headers, case-insensitively."""
        client = SegmentsClient(BASE_URL, TOKEN, default_headers={"X-Tenant": "a", "X-Keep": "k"})
        view = client.with_options(default_headers={"x-TENANT": "b"})
        same = view.with_options(default_headers={})
        assert {"X-Keep": "k", "x-TENANT": "b"} == view.default_headers == same.default_headers


class TestCutTimeout:
    NOW = 1000.25

    def test_no_deadline(self):
        """Without an end, the timeout is unchanged."""
        timeout = aiohttp.ClientTimeout(total=30)
        assert timeout is cut_timeout(timeout, None, self.NOW)

    @pytest.mark.parametrize(
        ("total", "left", "expected"),
        [
            (30.0, 2.0, 2.0),  # cut to what is left
            (None, 2.0, 2.0),  # no total: what is left is the total
            (3.0, 10.0, 3.0),  # fits, even rounded up: unchanged
            (10.0, 10.5, 10.0),  # fits, but aiohttp's rounding would not: unrounded
            (4.0, 4.5, 4.0),  # under ceil_threshold: aiohttp does not round it anyway
            (1.0, -5.0, 1e-3),  # the deadline passed: the least there is
        ],
    )
    def test_totals(self, total, left, expected):
        """The total is what fits before the end, and never rounded past it."""
        timeout = aiohttp.ClientTimeout(total=total)
        cut = cut_timeout(timeout, self.NOW + left, self.NOW)
        assert cut.total == pytest.approx(expected)
        rounds = cut.total is not None and cut.total > cut.ceil_threshold
        assert (math.ceil(self.NOW + cut.total) if rounds else self.NOW + cut.total) <= (
            self.NOW + max(left, 1e-3) + 1e-9
        )

    def test_other_fields_are_kept(self):
        """sock_read, sock_connect and connect survive the cut."""
        timeout = aiohttp.ClientTimeout(total=30, sock_read=5, sock_connect=2, connect=3)
        cut = cut_timeout(timeout, self.NOW + 1, self.NOW)
        assert (5, 2, 3) == (cut.sock_read, cut.sock_connect, cut.connect)


def test_client_properties_are_copies():
    """event_hooks and default_headers give copies of the client's."""
    options: dict[str, Any] = {
        "event_hooks": {"retry": [hook]},
        "default_headers": {"X-Tenant": "a"},
    }
    client = SegmentsClient(BASE_URL, TOKEN, **options)
    client.event_hooks["retry"].clear()
    client.default_headers.clear()
    assert {"request": [], "response": [], "retry": [hook]} == client.event_hooks
    assert {"X-Tenant": "a"} == client.default_headers
