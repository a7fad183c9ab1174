"""Items 8 and 9, without sockets: which base URLs may go in clear text, and which proxy
the environment names for a base URL (the standard library's rules, https:// only)."""

from __future__ import annotations

import pytest
import yarl

from segments_async import SegmentsClient
from segments_async._options import env_proxy

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
