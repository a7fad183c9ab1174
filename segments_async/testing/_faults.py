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


@attrs.frozen
class Fault:
    """What goes wrong with a request; build one with the classmethods."""

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

        ``retry_after`` is sent as the Retry-After header: seconds, or a string such as an
        HTTP date.
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
        """Wait ``seconds``, then process and answer normally."""
        if not seconds >= 0:
            raise ValueError(f"seconds must be >= 0, got {seconds!r}")
        return cls("latency", seconds=float(seconds))

    @classmethod
    def reset_before(cls, *, rst: bool = False) -> Fault:
        """Drop the connection without processing or answering.

        By default the socket is closed (the client reads EOF); ``rst=True`` makes it a TCP
        reset (the client gets ECONNRESET).
        """
        return cls("reset_before", rst=rst)

    @classmethod
    def reset_after(cls, *, rst: bool = False) -> Fault:
        """Process the request (state changes happen), then drop the connection unanswered."""
        return cls("reset_after", rst=rst)

    @classmethod
    def truncated_body(cls) -> Fault:
        """Process, then send the headers (full Content-Length) and half the body, and close.

        A response without a body (a DELETE's 204) is sent whole before the close.
        """
        return cls("truncated_body")

    @classmethod
    def non_json_body(cls) -> Fault:
        """Answer 200 with ``Content-Type: application/json`` and a body that is not JSON."""
        return cls("non_json_body")

    @classmethod
    def html_502(cls) -> Fault:
        """Answer 502 with an nginx-style ``text/html`` page, as a proxy would."""
        return cls("html_502")

    @property
    def processes(self) -> bool:
        """Whether the server acts on the request (and changes state) under this fault."""
        return self.kind in ("latency", "reset_after", "truncated_body")

    def error_code(self) -> str:
        """The snake_case error code sent with a ``status`` fault's default body."""
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
    """An injected fault: where it applies, and how many more times.

    ``remaining`` is ``None`` for a rule without a ``times`` limit.
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
        """Whether the rule can still apply."""
        return not self.cancelled and (self.remaining is None or self.remaining > 0)

    def cancel(self) -> None:
        """Stop the rule from applying again."""
        self.cancelled = True

    def matches(self, method: str, path: str) -> bool:
        """Whether the request's method and path are the ones this rule targets."""
        return request_matches(self.method, self.path, method, path)

    def try_apply(self, method: str, path: str, rng: random.Random) -> bool:
        """Apply the rule to a request if it matches (and wins its draw); count the hit."""
        if not self.active or not self.matches(method, path):
            return False
        if self.probability is not None and rng.random() >= self.probability:
            return False
        self.hits += 1
        if self.remaining is not None:
            self.remaining -= 1
        return True
