"""The API's resources, bulk results and the client's events: frozen, slotted attrs classes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, TypeVar

import attrs

from ._errors import SegmentsError

__all__ = [
    "BulkResult",
    "RequestEvent",
    "ResponseEvent",
    "RetryEvent",
    "Segment",
    "SegmentPage",
]

_T = TypeVar("_T")


@attrs.frozen
class Segment:
    """A segment: a named group of the tenant's data."""

    id: str
    name: str


@attrs.frozen
class SegmentPage:
    """One page of the segment list, as the server numbered and sized it.

    ``per_page`` and ``last_page`` are the server's: it may clamp the ``per_page`` asked for.
    """

    current_page: int
    per_page: int
    last_page: int
    total: int
    items: list[Segment]
    filters: list[Any] = attrs.field(factory=list)


@attrs.frozen
class BulkResult(Generic[_T]):
    """What became of one input of a bulk operation (``create_many`` and the like).

    ``index`` is the input's 0-based position and ``input`` the input itself. Exactly one of
    ``value`` (the created or renamed ``Segment``; ``None`` for a delete) and ``error`` tells
    the outcome: ``error`` is the call's ``SegmentsError``, or the ``ValueError`` /
    ``TypeError`` of an input that was refused before anything was sent.
    ``outcome_unknown`` is True only for a create that failed after it may have reached the
    server: the segment may exist, so reconcile (list, or look for the name) before retrying.
    """

    index: int
    input: object
    value: _T | None = None
    error: Exception | None = None
    outcome_unknown: bool = False

    @property
    def ok(self) -> bool:
        """True when the input was carried out (no error)."""
        return self.error is None


@attrs.frozen
class RequestEvent:
    """Before each attempt of a call: ``attempt`` counts from 1. Never carries the token."""

    method: str
    url: str
    attempt: int


@attrs.frozen
class ResponseEvent:
    """After each attempt of a call.

    ``status_code`` is ``None`` when no HTTP answer came, and ``error`` then says why (the
    connection failed, the attempt timed out, the body was cut short or too large);
    otherwise ``error`` is ``None`` and the answer's status tells (a 503 is an answer).
    ``headers`` is a detached, case-insensitive copy of the answer's headers (empty when
    none came); ``elapsed`` is the seconds from sending to the end of the body, the wait
    for a pooled connection excluded.
    """

    method: str
    url: str
    attempt: int
    status_code: int | None
    headers: Mapping[str, str]
    elapsed: float
    error: SegmentsError | None = None


@attrs.frozen
class RetryEvent:
    """Before each backoff wait: the attempt that failed, why, and the seconds to wait."""

    method: str
    url: str
    attempt: int
    reason: str
    delay: float
    error: SegmentsError | None = None
