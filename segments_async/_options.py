"""The client's configuration, checked once: base URL, token, options, headers, proxy.

``ClientOptions`` is the frozen value a client and each of its ``with_options`` views
hold; its converters are the only place where an option is checked, so a view made with
``attrs.evolve`` is checked exactly as the client was. What the views share (the pool,
the budget, the flow control) lives on the client's shared connection state instead.
"""

from __future__ import annotations

import ipaddress
import math
import platform
import re
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import aiohttp
import attrs
import yarl

from ._models import RequestEvent, ResponseEvent, RetryEvent
from ._retry import RetryPolicy
from ._version import __version__
from ._wire import short_repr

__all__ = [
    "DEADLINE_SLACK",
    "ClientOptions",
    "EventHooks",
    "RequestHeaders",
    "check_base_url",
    "check_session",
    "check_token",
    "cut_timeout",
    "env_proxy",
    "is_loopback",
    "to_wire_timeout",
]


def check_base_url(base_url: object, *, allow_insecure_http: bool) -> str:
    """The normalised base URL (no trailing slash); ``ValueError`` if unusable or unsafe.

    ``http://`` would send the token in clear text, so it is refused for any host but the
    loopback ones unless the caller opts in.
    """
    if not isinstance(base_url, str):
        raise TypeError(f"base_url must be a str, got {type(base_url).__name__}")
    try:
        url = yarl.URL(base_url.strip())
    except ValueError as exc:
        raise ValueError(f"base_url is not a valid URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(
            f"base_url must be an absolute http(s) URL such as 'https://api.example.com', "
            f"got {short_repr(base_url)}"
        )
    if any(char.isspace() for char in url.host):
        raise ValueError(f"base_url has white space in its host: {short_repr(base_url)}")
    if url.user is not None or url.password is not None:
        raise ValueError("base_url must not carry credentials: pass the token as token=")
    if url.query_string or url.fragment:
        raise ValueError(f"base_url must not have a query or fragment, got {short_repr(base_url)}")
    if url.scheme == "http" and not allow_insecure_http and not is_loopback(url.host):
        raise ValueError(
            f"refusing to send the token in clear text to {url.host!r}: use https:// "
            f"(or pass allow_insecure_http=True for a trusted network)"
        )
    return str(url.with_path(url.path.rstrip("/"))).rstrip("/")


def is_loopback(host: str) -> bool:
    """True for ``localhost`` itself and loopback IP literals (127.0.0.0/8, ::1).

    Not for names under ``.localhost``: a resolver may send those to DNS, and DNS may
    answer with any address.
    """
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_token(token: object) -> str:
    """The API token; ``ValueError`` for one that cannot be a Bearer token.

    The message never repeats the token.
    """
    if not isinstance(token, str):
        raise TypeError(f"token must be a str, got {type(token).__name__}")
    if not token or not token.isascii() or not token.isprintable() or " " in token:
        # Out of this frame before the error leaves it: a nearly valid token (one with a
        # newline read from a file) is still a secret, and tools record frame locals.
        del token
        raise ValueError(
            "token must be a non-empty ASCII string without spaces or control characters"
        )
    return token


# --------------------------------------------------------------------------- options


def to_timeout(timeout: object) -> aiohttp.ClientTimeout:
    """Seconds per attempt (aiohttp's ``total``), an ``aiohttp.ClientTimeout``, or None."""
    if isinstance(timeout, aiohttp.ClientTimeout):
        return timeout
    if timeout is None:
        return aiohttp.ClientTimeout(total=None)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(
            f"timeout must be seconds (float), an aiohttp.ClientTimeout or None, "
            f"got {type(timeout).__name__}"
        )
    if not math.isfinite(timeout) or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    return aiohttp.ClientTimeout(total=float(timeout))


#: A timer may fire a hair before its time: a deadline this close counts as run out.
DEADLINE_SLACK: Final = 1e-3


def cut_timeout(
    timeout: aiohttp.ClientTimeout, until: float | None, now: float
) -> aiohttp.ClientTimeout:
    """``timeout``, with its total cut to what is left before ``until`` (loop time)."""
    if until is None:
        return timeout
    remaining = max(until - now, DEADLINE_SLACK)
    total = math.inf if timeout.total is None else timeout.total
    # aiohttp rounds the end of a total above ceil_threshold up to a whole second.
    rounding = 1.0 if total > timeout.ceil_threshold else 0.0
    if total + rounding <= remaining:
        return timeout
    cut = min(total, remaining)
    sock_connect = timeout.sock_connect
    if sock_connect is not None:  # a connection not made in time stays known unsent
        sock_connect = min(sock_connect, _CONNECT_SHARE * cut)
    return attrs.evolve(timeout, total=cut, sock_connect=sock_connect, ceil_threshold=math.inf)


def to_retry(retry: object) -> RetryPolicy:
    """A ``RetryPolicy``; None means the default one."""
    if retry is None:
        return RetryPolicy()
    if not isinstance(retry, RetryPolicy):
        raise TypeError(f"retry must be a RetryPolicy or None, got {type(retry).__name__}")
    return retry


def to_deadline(deadline: object) -> float | None:
    """Seconds for one whole call, or None for no deadline."""
    if deadline is None:
        return None
    if isinstance(deadline, bool) or not isinstance(deadline, int | float):
        raise TypeError(f"deadline must be seconds (a number) or None, got {deadline!r}")
    if not math.isfinite(deadline) or deadline <= 0:
        raise ValueError(f"deadline must be a positive number of seconds, got {deadline!r}")
    return float(deadline)


Hook = Callable[[Any], object]


@attrs.frozen
class EventHooks:
    """The hooks of each kind, in the order they are called."""

    request: tuple[Callable[[RequestEvent], object], ...] = ()
    response: tuple[Callable[[ResponseEvent], object], ...] = ()
    retry: tuple[Callable[[RetryEvent], object], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.request or self.response or self.retry)


_HOOK_KINDS: Final = ("request", "response", "retry")


def to_event_hooks(hooks: object) -> EventHooks:
    """``{"request": [...], "response": [...], "retry": [...]}`` as ``EventHooks``."""
    if hooks is None:
        return EventHooks()
    if isinstance(hooks, EventHooks):
        return hooks
    if not isinstance(hooks, Mapping):
        raise TypeError(
            f"event_hooks must be a dict such as {{'response': [fn]}}, got {type(hooks).__name__}"
        )
    unknown = sorted(str(kind) for kind in hooks if kind not in _HOOK_KINDS)
    if unknown:
        raise ValueError(
            f"unknown event hook kinds {unknown}; the kinds are {', '.join(_HOOK_KINDS)}"
        )
    found: dict[str, tuple[Hook, ...]] = {}
    for kind, functions in hooks.items():
        if (
            callable(functions)
            or isinstance(functions, str | bytes)
            or not isinstance(functions, Iterable)
        ):
            raise TypeError(f"event_hooks[{kind!r}] must be a list of functions")
        listed = tuple(functions)
        for function in listed:
            if not callable(function):
                raise TypeError(
                    f"event_hooks[{kind!r}] holds {short_repr(function)}, which is not callable"
                )
        found[kind] = listed
    return EventHooks(**found)


#: RFC 9110 token characters: what a header name may be made of.
_HEADER_NAME_RE: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: Printable ASCII, spaces and tabs: nothing that could end a header line or the head.
_HEADER_VALUE_RE: Final = re.compile(r"[\t\x20-\x7e]*")
#: Headers the client sets itself, or that frame the message: not the caller's to set.
_RESERVED_HEADERS: Final = frozenset(
    {
        "authorization",
        "content-type",
        "accept",
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
    }
)


def to_default_headers(headers: object) -> tuple[tuple[str, str], ...]:
    """Extra headers for every request, checked: no line breaks, nothing reserved."""
    if headers is None:
        return ()
    if isinstance(headers, tuple):
        items: Iterable[Any] = headers
    elif isinstance(headers, Mapping):
        items = headers.items()
    else:
        raise TypeError(
            f"default_headers must be a dict of str to str, got {type(headers).__name__}"
        )
    checked: list[tuple[str, str]] = []
    for name, value in items:
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(
                f"default_headers must map str to str, got {short_repr(name)}: {short_repr(value)}"
            )
        if not _HEADER_NAME_RE.fullmatch(name):
            raise ValueError(f"default_headers: {short_repr(name)} is not a valid header name")
        if not _HEADER_VALUE_RE.fullmatch(value):
            raise ValueError(
                f"default_headers[{name!r}] must be printable ASCII without line breaks"
            )
        if name.lower() in _RESERVED_HEADERS:
            raise ValueError(f"default_headers cannot set {name}: the client sets it itself")
        if name.lower() in (given.lower() for given, _ in checked):
            # Header names are case-insensitive: one of the two values would be lost.
            raise ValueError(f"default_headers names {name!r} twice, in different cases")
        checked.append((name, value))
    return tuple(checked)


_DEFAULT_TIMEOUT: Final = aiohttp.ClientTimeout(total=30.0)


@attrs.frozen
class ClientOptions:
    """What a call needs to know that a ``with_options`` view may change.

    ``wire_timeout`` is what aiohttp gets for ``timeout`` (see ``to_wire_timeout``).
    """

    timeout: aiohttp.ClientTimeout = attrs.field(default=_DEFAULT_TIMEOUT, converter=to_timeout)
    retry: RetryPolicy = attrs.field(default=None, converter=to_retry)
    deadline: float | None = attrs.field(default=None, converter=to_deadline)
    event_hooks: EventHooks = attrs.field(default=None, converter=to_event_hooks)
    default_headers: tuple[tuple[str, str], ...] = attrs.field(
        default=None, converter=to_default_headers
    )
    wire_timeout: aiohttp.ClientTimeout = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "wire_timeout", to_wire_timeout(self.timeout))


#: The share of an attempt's time a new connection may take before it counts as not made.
_CONNECT_SHARE: Final = 0.9


def to_wire_timeout(timeout: aiohttp.ClientTimeout) -> aiohttp.ClientTimeout:
    """``timeout`` as aiohttp gets it: a connection that is not made within 90 % of the
    total fails as a connect timeout (``sock_connect``), known unsent, instead of running
    into the total, after which nobody could tell whether the request went out.

    A ``sock_connect`` of the caller's own is kept.
    """
    if timeout.total is None or timeout.sock_connect is not None:
        return timeout
    return attrs.evolve(timeout, sock_connect=_CONNECT_SHARE * timeout.total)


USER_AGENT: Final = (
    f"segments-async/{__version__} aiohttp/{aiohttp.__version__} "
    f"{platform.python_implementation()}/{platform.python_version()}"
)


class RequestHeaders:
    """The headers of every request of a client or view, token included.

    Deliberately not a ``Mapping``: error reporters that record frame locals walk mappings
    but only ``repr`` other objects, and this one's ``repr`` hides the token.
    """

    __slots__ = ("json", "plain")

    def __init__(self, token: str, extra: tuple[tuple[str, str], ...]) -> None:
        plain = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        plain.update(extra)
        self.plain: Final = plain
        self.json: Final = {**plain, "Content-Type": "application/json"}

    def __repr__(self) -> str:
        return "<RequestHeaders Authorization='Bearer ***'>"


# --------------------------------------------------------------------------- sessions, proxies


#: Session default headers that would change how a request is framed or which host reads
#: it; the client cannot override them per request, so a session with them is refused.
_FRAMING_HEADERS: Final = ("Host", "Content-Length", "Transfer-Encoding", "Content-Encoding")


def check_session(session: object, base_url: str) -> aiohttp.ClientSession:
    """A borrowed session, refused where its own defaults would change what is sent.

    Per request the client overrides the timeout, redirects, ``raise_for_status``,
    decompression, middlewares and its own headers; what it cannot override is refused.
    """
    if not isinstance(session, aiohttp.ClientSession):
        raise TypeError(f"session must be an aiohttp.ClientSession, got {type(session).__name__}")
    if session.closed:
        raise ValueError("the borrowed session is closed")
    if session.trust_env:
        raise ValueError(
            "a borrowed session with trust_env=True would send the token in clear text to "
            "an HTTP proxy and read ~/.netrc on every request; pass a session without "
            "trust_env (the client honours HTTPS_PROXY and NO_PROXY itself)"
        )
    if session.auth is not None:
        raise ValueError(
            "a borrowed session with auth= would add a second Authorization to every "
            "request; pass a session without auth"
        )
    # aiohttp has no public accessor for the session's default proxy.
    if getattr(session, "_default_proxy", None) is not None and base_url.startswith("http:"):
        raise ValueError(
            "a borrowed session with a default proxy would send the token in clear text to "
            "that proxy for an http:// base URL; use https:// or a session without proxy="
        )
    _check_session_headers(session.headers)
    return session


def _check_session_headers(headers: Mapping[str, str]) -> None:
    for name in _FRAMING_HEADERS:
        if name in headers:
            raise ValueError(
                f"a borrowed session with a default {name} header would change how every "
                f"request is framed or routed; pass a session without it"
            )
    for name, value in headers.items():
        if any(char in value for char in "\r\n\x00"):
            # aiohttp would refuse it on every request, from frames that hold the token.
            raise ValueError(f"the borrowed session's default header {name} has a line break")


def env_proxy(base_url: str) -> yarl.URL | None:
    """The proxy for an ``https://`` base URL from the environment, or None.

    The standard library's rules, as requests and httpx follow them: ``HTTPS_PROXY`` (or
    ``ALL_PROXY``), unless ``NO_PROXY`` names the host. A CONNECT tunnel keeps the token
    encrypted; ``http://`` base URLs never go through a proxy, which would read it.
    """
    url = yarl.URL(base_url)
    if url.scheme != "https" or url.host is None:
        return None
    proxies = urllib.request.getproxies()
    proxy = proxies.get("https") or proxies.get("all")
    if not proxy:
        return None
    where = url.host if url.explicit_port is None else f"{url.host}:{url.port}"
    if urllib.request.proxy_bypass(where):
        return None
    if "://" not in proxy:
        proxy = f"http://{proxy}"  # "proxy:3128" means an HTTP proxy, as curl reads it
    try:
        proxy_url = yarl.URL(proxy)
    except ValueError:
        raise ValueError("HTTPS_PROXY is not a valid URL") from None
    if proxy_url.scheme not in ("http", "https") or not proxy_url.host:
        raise ValueError(
            f"HTTPS_PROXY uses {proxy_url.scheme}://, which aiohttp cannot tunnel through: "
            f"use an http:// proxy, or name {url.host} in NO_PROXY"
        )
    return proxy_url
