"""The client's configuration: the base URL and the token, checked once at construction."""

from __future__ import annotations

import ipaddress

import yarl

from ._wire import short_repr

__all__ = ["check_base_url", "check_token", "is_loopback"]


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
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
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
        raise ValueError(
            "token must be a non-empty ASCII string without spaces or control characters"
        )
    return token
