"""The client's configuration (``_options``), checked without a loop: base URLs and which
may go in clear text, tokens, the proxy the environment names (the standard library's
rules, https:// only), and the options a view may change: deadline, event hooks, default
headers, and the cut of an attempt's timeout to what remains of a deadline."""

from __future__ import annotations

import math
import re
from typing import Any

import aiohttp
import attrs
import pytest
import yarl

from segments_async import SegmentsClient
from segments_async._options import (
    ClientOptions,
    EventHooks,
    check_base_url,
    check_token,
    cut_timeout,
    env_proxy,
    is_loopback,
    to_wire_timeout,
)

TOKEN = "tok-options-1f2e3d"
PROXY_VARIABLES = (
    [
        f"{name}_{kind}"
        for name in ("HTTP", "HTTPS", "ALL", "NO", "FTP")
        for kind in ("PROXY", "proxy")
    ]
    + [f"{name.lower()}_proxy" for name in ("HTTP", "HTTPS", "ALL", "NO")]
    + ["REQUEST_METHOD"]
)


@pytest.fixture(autouse=True)
def no_proxy_environment(monkeypatch):
    """Each test starts from an environment that names no proxy at all."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


# --------------------------------------------------------------------------- item 8


@pytest.mark.parametrize(
    "base_url",
    [
        "http://evil.localhost",
        "http://evil.localhost:8080/api",
        "http://localhost.",  # the absolute name goes to the resolver as is
        "http://localhost.evil.example",
        "http://127.1",  # resolvers read it as 127.0.0.1, but it is no IP literal
        "http://2130706433",
        "http://0x7f000001",
        "http://127.0.0.1.nip.io",
        "http://[::ffff:127.0.0.1]",
        "http://0.0.0.0",
    ],
)
def test_clear_text_to_anything_but_localhost_or_a_loopback_literal_is_refused(base_url):
    """Only localhost itself and loopback IP literals are exempt from the https rule."""
    with pytest.raises(ValueError, match="clear text"):
        SegmentsClient(base_url, TOKEN)


@pytest.mark.parametrize(
    "base_url",
    [
        "http://localhost",
        "http://LocalHost:8080",
        "http://127.0.0.1",
        "http://127.9.8.7:1",
        "http://[::1]",
    ],
)
def test_clear_text_to_localhost_and_loopback_literals_is_allowed(base_url):
    """These never leave the machine."""
    assert SegmentsClient(base_url, TOKEN).base_url.startswith("http://")


# --------------------------------------------------------------------------- item 9

API = "https://api.segments.test"


def test_no_proxy_in_the_environment_means_none():
    """Nothing set: direct connections."""
    assert env_proxy(API) is None


@pytest.mark.parametrize("name", ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"])
def test_the_https_or_all_proxy_is_used_for_an_https_api(monkeypatch, name):
    """HTTPS_PROXY (or ALL_PROXY), in either case, names the proxy."""
    monkeypatch.setenv(name, "http://proxy.corp:3128")
    assert yarl.URL("http://proxy.corp:3128") == env_proxy(API)


def test_lower_case_wins_over_upper_case(monkeypatch):
    """As in curl, requests and the standard library: https_proxy over HTTPS_PROXY."""
    monkeypatch.setenv("HTTPS_PROXY", "http://upper:1")
    monkeypatch.setenv("https_proxy", "http://lower:2")
    assert yarl.URL("http://lower:2") == env_proxy(API)


def test_a_proxy_without_a_scheme_is_an_http_proxy(monkeypatch):
    """proxy.corp:3128 is read as curl reads it."""
    monkeypatch.setenv("HTTPS_PROXY", "proxy.corp:3128")
    assert yarl.URL("http://proxy.corp:3128") == env_proxy(API)


def test_http_proxy_alone_is_not_used_for_an_https_api(monkeypatch):
    """HTTP_PROXY is for http:// URLs, which never use a proxy here."""
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.corp:3128")
    assert env_proxy(API) is None


@pytest.mark.parametrize("base_url", ["http://127.0.0.1:8080", "http://localhost", "http://x.test"])
def test_an_http_api_never_uses_a_proxy(monkeypatch, base_url):
    """A proxy would read the token of an http:// API: none is used, whatever is set."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://proxy.corp:3128")
    assert env_proxy(base_url) is None


@pytest.mark.parametrize(
    ("no_proxy", "base_url"),
    [
        ("api.segments.test", API),
        ("API.Segments.Test", API),
        (".segments.test", API),
        ("segments.test", API),
        ("*", API),
        ("other.test, api.segments.test", API),
        ("api.segments.test:8443", "https://api.segments.test:8443"),
        ("127.0.0.1", "https://127.0.0.1:8443"),
    ],
)
def test_no_proxy_bypasses_the_proxy(monkeypatch, no_proxy, base_url):
    """NO_PROXY names hosts (and domains, or *) that are reached directly."""
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    monkeypatch.setenv("NO_PROXY", no_proxy)
    assert env_proxy(base_url) is None


@pytest.mark.parametrize("no_proxy", ["other.test", "segments.test.evil", "api.segments.test:1"])
def test_no_proxy_for_other_hosts_keeps_the_proxy(monkeypatch, no_proxy):
    """NO_PROXY entries that do not match the API's host leave the proxy in use."""
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    monkeypatch.setenv("NO_PROXY", no_proxy)
    assert yarl.URL("http://proxy.corp:3128") == env_proxy(API)


@pytest.mark.parametrize(
    "proxy", ["socks5://127.0.0.1:1080", "socks5h://proxy:1080", "socks4://proxy:1080"]
)
@pytest.mark.parametrize("name", ["HTTPS_PROXY", "ALL_PROXY"])
def test_a_socks_proxy_is_a_clear_value_error(monkeypatch, name, proxy):
    """aiohttp cannot tunnel through SOCKS: say so at construction, naming the scheme."""
    monkeypatch.setenv(name, proxy)
    scheme = proxy.split(":")[0]
    with pytest.raises(ValueError, match=f"{scheme}://"):
        SegmentsClient(API, TOKEN)


def test_a_socks_proxy_the_api_bypasses_is_no_error(monkeypatch):
    """NO_PROXY for the API's host: its proxy's scheme does not matter."""
    monkeypatch.setenv("HTTPS_PROXY", "socks5://127.0.0.1:1080")
    monkeypatch.setenv("NO_PROXY", "api.segments.test")
    assert not SegmentsClient(API, TOKEN).closed


def test_a_proxy_password_is_not_repeated_in_errors(monkeypatch):
    """A proxy URL's credentials stay out of the error about it."""
    monkeypatch.setenv("HTTPS_PROXY", "socks5://user:pr0xy-secret@127.0.0.1:1080")
    with pytest.raises(ValueError, match="socks5") as info:
        SegmentsClient(API, TOKEN)
    assert "pr0xy-secret" not in str(info.value)


def test_an_unreadable_proxy_url_is_a_value_error(monkeypatch):
    """HTTPS_PROXY that is not a URL: a ValueError naming the variable."""
    monkeypatch.setenv("HTTPS_PROXY", "http://[::1")
    with pytest.raises(ValueError, match="HTTPS_PROXY"):
        SegmentsClient(API, TOKEN)


def test_the_environment_is_read_once_at_construction(monkeypatch):
    """A client keeps the proxy it was made with; changing the environment later does nothing."""
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    client = SegmentsClient(API, TOKEN)
    monkeypatch.setenv("HTTPS_PROXY", "http://other:1")
    assert yarl.URL("http://proxy.corp:3128") == client._shared.transport._proxy


BASE_URL = "https://api.segments.test"


def hook(event: object) -> None:
    pass


async def async_hook(event: object) -> None:
    pass


def stable_repr(value: object) -> str:
    """A test id without memory addresses, the same in every process (pytest-xdist)."""
    return re.sub(r" at 0x[0-9a-f]+", "", repr(value))


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

    @pytest.mark.parametrize("functions", [[hook], (hook,), {hook}, iter([hook])], ids=stable_repr)
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
        "functions",
        [hook, "hook", b"hook", None, 3, [hook, None], [hook, "print"]],
        ids=stable_repr,
    )
    def test_non_callables_are_a_type_error(self, functions):
        """A bare function (not in a list), a string or a non-callable in the list."""
        with pytest.raises(TypeError, match=r"event_hooks\['response'\]"):
            SegmentsClient(BASE_URL, TOKEN, event_hooks={"response": functions})

    @pytest.mark.parametrize(
        "hooks", [[hook], hook, "response", ("response", [hook])], ids=stable_repr
    )
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
        """sock_read and connect survive the cut; sock_connect stays within 90 % of it."""
        timeout = aiohttp.ClientTimeout(total=30, sock_read=5, sock_connect=2, connect=3)
        cut = cut_timeout(timeout, self.NOW + 1, self.NOW)
        assert (5, 0.9, 3) == (cut.sock_read, cut.sock_connect, cut.connect)

    def test_a_short_sock_connect_is_kept(self):
        """A sock_connect well within the cut is the caller's and stays."""
        timeout = aiohttp.ClientTimeout(total=30, sock_connect=0.2)
        assert 0.2 == cut_timeout(timeout, self.NOW + 1, self.NOW).sock_connect


class TestWireTimeout:
    def test_a_connection_gets_ninety_percent_of_the_total(self):
        """timeout=10: a connection not made within 9 s fails as a connect timeout."""
        wire = to_wire_timeout(aiohttp.ClientTimeout(total=10))
        assert (10, 9) == (wire.total, wire.sock_connect)

    def test_the_callers_sock_connect_is_kept(self):
        """A sock_connect of the caller's own is not replaced."""
        timeout = aiohttp.ClientTimeout(total=10, sock_connect=1)
        assert to_wire_timeout(timeout) is timeout

    def test_no_total_no_sock_connect(self):
        """timeout=None stays without any timeout."""
        timeout = aiohttp.ClientTimeout(total=None)
        assert to_wire_timeout(timeout) is timeout

    def test_views_recompute_it(self):
        """A view's wire timeout follows its own timeout."""
        options = ClientOptions(timeout=10)
        view = attrs.evolve(options, timeout=4)
        assert (9, 3.6) == (options.wire_timeout.sock_connect, view.wire_timeout.sock_connect)


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


class TestCheckBaseUrl:
    @pytest.mark.parametrize(
        ("base_url", "expected"),
        [
            ("https://api.example.com", "https://api.example.com"),
            ("https://api.example.com/", "https://api.example.com"),
            ("https://api.example.com/prefix", "https://api.example.com/prefix"),
            ("https://api.example.com/prefix/", "https://api.example.com/prefix"),
            ("https://api.example.com:8443/a/b/", "https://api.example.com:8443/a/b"),
            ("  https://api.example.com/  ", "https://api.example.com"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
            ("http://127.1.2.3", "http://127.1.2.3"),
            ("http://localhost:9000/api/", "http://localhost:9000/api"),
            ("http://LOCALHOST", "http://localhost"),
            ("http://[::1]:8080/", "http://[::1]:8080"),
        ],
    )
    def test_ok(self, base_url, expected):
        """https anywhere and http to loopback are accepted, trailing slashes dropped."""
        assert expected == check_base_url(base_url, allow_insecure_http=False)

    @pytest.mark.parametrize(
        "base_url",
        [
            "http://example.com",
            "http://api.example.com/",
            "http://10.0.0.1",
            "http://192.168.1.10:8080",
            "http://[::2]",
            "http://localhost.example.com",
            "http://127.0.0.1.example.com",
        ],
    )
    def test_insecure_refused(self, base_url):
        """http to anything but loopback is refused by default."""
        with pytest.raises(ValueError, match="clear text"):
            check_base_url(base_url, allow_insecure_http=False)

    def test_insecure_opt_in(self):
        """allow_insecure_http=True lets http through."""
        assert "http://example.com" == check_base_url(
            "http://example.com/", allow_insecure_http=True
        )

    @pytest.mark.parametrize("allow_insecure_http", [False, True])
    @pytest.mark.parametrize(
        "base_url",
        [
            "ftp://api.example.com",
            "ws://api.example.com",
            "file:///etc/passwd",
            "/v2.3",
            "api.example.com",
            "//api.example.com",
            "https://",
            "https:///path",
            "",
        ],
    )
    def test_not_absolute_http(self, base_url, allow_insecure_http):
        """Other schemes, relative URLs and URLs without a host are refused."""
        with pytest.raises(ValueError, match="absolute http"):
            check_base_url(base_url, allow_insecure_http=allow_insecure_http)

    @pytest.mark.parametrize(
        "base_url",
        ["https://user:pass@api.example.com", "https://user@api.example.com", "https://:p@a.io"],
    )
    def test_credentials(self, base_url):
        """Credentials in the URL are refused, and not echoed."""
        with pytest.raises(ValueError, match="credentials") as info:
            check_base_url(base_url, allow_insecure_http=False)

        assert "@" not in str(info.value)
        assert "user" not in str(info.value)

    @pytest.mark.parametrize(
        "base_url",
        ["https://api.example.com/?page=1", "https://api.example.com#frag", "https://a.io/p?x#y"],
    )
    def test_query_or_fragment(self, base_url):
        """A query or fragment is refused."""
        with pytest.raises(ValueError, match="query or fragment"):
            check_base_url(base_url, allow_insecure_http=False)

    @pytest.mark.parametrize("base_url", [None, b"https://api.example.com", 1])
    def test_not_str(self, base_url):
        """A non-str base URL is a TypeError."""
        with pytest.raises(TypeError, match="base_url must be a str"):
            check_base_url(base_url, allow_insecure_http=False)


class TestIsLoopback:
    @pytest.mark.parametrize(
        "host",
        ["localhost", "LOCALHOST", "127.0.0.1", "127.255.255.254", "::1", "[::1]"],
    )
    def test_loopback(self, host):
        """localhost itself and loopback IP literals are loopback."""
        assert is_loopback(host) is True

    @pytest.mark.parametrize(
        "host",
        [
            "example.com",
            "localhost.example.com",
            "notlocalhost",
            "evil.localhost",  # a resolver may send it to DNS, which may answer anything
            "app.localhost",
            "localhost.",
            "127.0.0.1.nip.io",
            "128.0.0.1",
            "10.0.0.1",
            "0.0.0.0",  # noqa: S104
            "::",
            "::2",
            "",
        ],
    )
    def test_not_loopback(self, host):
        """Anything else is not."""
        assert is_loopback(host) is False


class TestCheckToken:
    @pytest.mark.parametrize("token", ["tok", "abc.DEF-123_~+/==", "eyJhbGciOi.eyJzdWIi.sig"])
    def test_ok(self, token):
        """A Bearer-shaped token comes back unchanged."""
        assert token == check_token(token)

    @pytest.mark.parametrize(
        "token",
        [
            " XyZ",
            "XyZ ",
            "a XyZ",
            "XyZ\n",
            "XyZ\r\nX-Evil: 1",
            "\tXyZ",
            "XyZ\x00",
            "XyZ\x7f",
            "a\u00a0XyZ",
            "a\u200bXyZ",
        ],
    )
    def test_rejected(self, token):
        """Spaces and control characters are a ValueError whose message doesn't quote the token."""
        with pytest.raises(ValueError, match="token must be") as info:
            check_token(token)

        assert "XyZ" not in str(info.value)
        assert "XyZ" not in repr(info.value)

    def test_empty(self):
        """An empty token is a ValueError."""
        with pytest.raises(ValueError, match="non-empty"):
            check_token("")

    def test_rejected_secret_not_echoed(self):
        """A realistic secret with a stray newline is not repeated in the message."""
        with pytest.raises(ValueError, match="token must be") as info:
            check_token("sk_live_SECRET123\n")

        assert "SECRET123" not in str(info.value)
        assert "SECRET123" not in repr(info.value)

    @pytest.mark.parametrize("token", [None, b"tok", 1])
    def test_not_str(self, token):
        """A non-str token is a TypeError that names only the type."""
        with pytest.raises(TypeError, match="token must be a str") as info:
            check_token(token)

        assert f"token must be a str, got {type(token).__name__}" == str(info.value)
