"""Faults the fake server can inject, and the rules that decide when they apply."""

from __future__ import annotations

import random
import re
from typing import Literal

import attrs

from ._api import status_error_code

__all__ = ["Fault", "FaultKind", "FaultRule", "request_matches"]

FaultKind = Literal[
    "status",
    "latency",
    "reset_before",
    "reset_after",
    "truncated_body",
    "non_json_body",
    "html_502",
]
"""The kinds of ``Fault``: one per ``Fault`` classmethod, and the keys of ``counts.by_fault``."""


@attrs.frozen
class Fault:
    """What goes wrong with a request; build one with the classmethods, give it to ``inject``.

    Example::

        server.inject(Fault.status(503, retry_after=1), method="GET", times=2)
        server.inject(Fault.latency(0.5), path="/v2.3/data/segments")
        server.inject(Fault.reset_after(), method="POST", probability=0.1)

    Attributes:
        kind: Which fault (a ``FaultKind``).
        status_code: The status a ``status`` fault answers, else None.
        retry_after: The ``Retry-After`` a ``status`` fault sends (seconds or a string),
            or None.
        body: The body a ``status`` fault sends instead of a JSON error, or None.
        content_type: The ``Content-Type`` a ``status`` fault sends.
        seconds: How long a ``latency`` fault waits.
        rst: Whether a ``reset_*`` fault resets the connection (TCP RST) rather than
            closing it.
    """

    kind: FaultKind
    status_code: int | None = None
    retry_after: int | float | str | None = None
    body: bytes | None = None
    content_type: str = "application/json"
    seconds: float = 0.0
    rst: bool = False

    @classmethod
    def status(
        cls,
        code: int,
        *,
        retry_after: float | str | None = None,
        body: bytes | None = None,
        content_type: str = "application/json",
    ) -> Fault:
        """Answer ``code`` (a JSON error body unless ``body`` is given); nothing is processed.

        Args:
            code: The HTTP status to answer, in 200..599.
            retry_after: Sent as the ``Retry-After`` header: seconds, or a string such as
                an HTTP date; None: no header.
            body: The raw body to send instead of the API's JSON error envelope.
            content_type: The answer's ``Content-Type``.

        Returns:
            The ``Fault``.

        Raises:
            ValueError: ``code`` is not an ``int`` in 200..599, or ``retry_after`` holds a
                line break.
        """
        if isinstance(code, bool) or not isinstance(code, int) or not 200 <= code <= 599:
            raise ValueError(f"status code must be an int in 200..599, got {code!r}")
        if isinstance(retry_after, str) and ("\r" in retry_after or "\n" in retry_after):
            raise ValueError("retry_after must not contain line breaks")
        return cls(
            "status",
            status_code=code,
            retry_after=retry_after,
            body=body,
            content_type=content_type,
        )

    @classmethod
    def latency(cls, seconds: float) -> Fault:
        """Wait ``seconds``, then process and answer normally (a slow server).

        The request counts as in flight for ``limit_concurrency`` while it waits; closing
        the server cuts the wait short.

        Args:
            seconds: How long to wait before processing (>= 0).

        Returns:
            The ``Fault``.

        Raises:
            ValueError: ``seconds`` is negative (or NaN).
        """
        if not seconds >= 0:
            raise ValueError(f"seconds must be >= 0, got {seconds!r}")
        return cls("latency", seconds=float(seconds))

    @classmethod
    def reset_before(cls, *, rst: bool = False) -> Fault:
        """Drop the connection without processing or answering: the server never acted.

        Args:
            rst: False: the socket is closed (the client reads EOF); True: a TCP reset
                (the client gets ECONNRESET).

        Returns:
            The ``Fault``.
        """
        return cls("reset_before", rst=rst)

    @classmethod
    def reset_after(cls, *, rst: bool = False) -> Fault:
        """Process the request (state changes happen), then drop the connection unanswered.

        The client cannot tell whether a write happened: its outcome is unknown.

        Args:
            rst: False: the socket is closed (EOF); True: a TCP reset (ECONNRESET).

        Returns:
            The ``Fault``.
        """
        return cls("reset_after", rst=rst)

    @classmethod
    def truncated_body(cls) -> Fault:
        """Process, then send the headers (full Content-Length) and half the body, and close.

        A response without a body (a DELETE's 204) is sent whole before the close.

        Returns:
            The ``Fault``.
        """
        return cls("truncated_body")

    @classmethod
    def non_json_body(cls) -> Fault:
        """Answer 200 with ``Content-Type: application/json`` and a body that is not JSON.

        Nothing is processed. Returns the ``Fault``.
        """
        return cls("non_json_body")

    @classmethod
    def html_502(cls) -> Fault:
        """Answer 502 with an nginx-style ``text/html`` page, as a proxy would.

        Nothing is processed. Returns the ``Fault``.
        """
        return cls("html_502")

    @property
    def processes(self) -> bool:
        """Whether the server acts on the request (and changes state) under this fault.

        True for ``latency``, ``reset_after`` and ``truncated_body``.
        """
        return self.kind in ("latency", "reset_after", "truncated_body")

    def error_code(self) -> str:
        """The snake_case error code sent with a ``status`` fault's default body.

        E.g. ``"service_unavailable"`` for a 503.
        """
        return status_error_code(self.status_code or 500)


def request_matches(
    method_filter: str | None, path_filter: str | re.Pattern[str] | None, method: str, path: str
) -> bool:
    """Whether a request is selected by a method (upper case) and a path prefix or pattern."""
    if method_filter is not None and method_filter != method:
        return False
    if path_filter is None:
        return True
    if isinstance(path_filter, str):
        return path.startswith(path_filter)
    return path_filter.search(path) is not None


@attrs.define(eq=False)
class FaultRule:
    """An injected fault: where it applies, and how many more times. ``inject`` returns one.

    Attributes:
        fault: The ``Fault`` applied.
        method: The method of the requests it applies to (upper case), or None for all.
        path: The path prefix or compiled pattern it applies to, or None for all.
        probability: The chance it applies to each matching request, or None (always).
        remaining: How many more times it may apply; None for a rule without ``times``.
        hits: How many requests it was applied to.
        cancelled: Whether ``cancel()`` was called.
    """

    fault: Fault
    method: str | None
    path: str | re.Pattern[str] | None
    probability: float | None
    remaining: int | None
    hits: int = 0
    cancelled: bool = False

    @property
    def active(self) -> bool:
        """Whether the rule can still apply: not cancelled, and not used up."""
        return not self.cancelled and (self.remaining is None or self.remaining > 0)

    def cancel(self) -> None:
        """Stop the rule from applying again; requests it applied to are unchanged."""
        self.cancelled = True

    def matches(self, method: str, path: str) -> bool:
        """Whether a request's method and path are the ones this rule targets.

        Args:
            method: The request's method, upper case.
            path: The request's path, percent-decoded.

        Returns:
            True if both match (a None filter matches anything).
        """
        return request_matches(self.method, self.path, method, path)

    def try_apply(self, method: str, path: str, rng: random.Random) -> bool:
        """Apply the rule to a request if it matches (and wins its draw); count the hit.

        Args:
            method: The request's method, upper case.
            path: The request's path, percent-decoded.
            rng: The server's seeded random generator, for the probability draw.

        Returns:
            True if the rule applies to this request (``hits`` and ``remaining`` updated).
        """
        if not self.active or not self.matches(method, path):
            return False
        if self.probability is not None and rng.random() >= self.probability:
            return False
        self.hits += 1
        if self.remaining is not None:
            self.remaining -= 1
        return True
