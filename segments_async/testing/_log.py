"""The fake's request log: a bounded record of recent requests, and counters of all of them."""

from __future__ import annotations

from collections import Counter, deque
from typing import Any

import attrs
import orjson
from multidict import CIMultiDictProxy

from ._faults import Fault
from ._limits import CapacityLimit

__all__ = ["DEFAULT_RECORD_REQUESTS", "RecordedRequest", "RequestCounts", "RequestLog"]

# About 2.5 KB a request, so the default log stays within a few MB.
DEFAULT_RECORD_REQUESTS = 1000


@attrs.frozen
class RecordedRequest:
    """A request as the server received it, and the fault applied to it (if any).

    ``FakeSegmentsServer.requests`` lists them, oldest first.

    Attributes:
        method: The HTTP method.
        path: The path, percent-decoded.
        raw_path: The path as sent, query included.
        query: The query's parameters (the first value of each).
        headers: The request's headers, a read-only case-insensitive copy.
        body: The body; empty when it was over the size limit (and so never read).
        token: The tenant's token, or None when the request carried no known token.
        fault: The ``Fault`` applied to it, or None.
        rejected_by: The capacity limit that answered it 429, if one did (then no fault
            applied).
    """

    method: str
    path: str
    raw_path: str
    query: dict[str, str]
    headers: CIMultiDictProxy[str]
    body: bytes
    token: str | None
    fault: Fault | None
    rejected_by: CapacityLimit | None = None

    def json(self) -> Any:
        """The body, decoded as JSON (``orjson.JSONDecodeError`` if it is not JSON)."""
        return orjson.loads(self.body)


@attrs.frozen
class RequestCounts:
    """How many requests a server has received, since it was created.

    ``FakeSegmentsServer.counts`` takes a snapshot. Counters are never dropped: not by the
    log's bound, nor by ``clear_requests()``.

    Attributes:
        total: Every request that reached the fake's handler (requests aiohttp could not
            parse are answered before that, and not counted).
        by_method: Requests by method, ``{"GET": 10, ...}``.
        by_status: The status of each answer sent whole (a reset or truncated answer
            counts under its fault kind only), ``{200: 97, 503: 2}``.
        by_fault: Requests an injected fault applied to, by kind (``"latency"``, ...).
        rejected_by_limit: Requests a capacity limit answered 429.
        unrecorded: Requests no longer (or never) in ``server.requests`` because of the
            log's bound; ``clear_requests()`` does not add to it.
    """

    total: int
    by_method: dict[str, int]
    by_status: dict[int, int]
    by_fault: dict[str, int]
    rejected_by_limit: int
    unrecorded: int


class RequestLog:
    """The last ``capacity`` requests (a ring buffer), and counters of every request."""

    __slots__ = (
        "_by_fault",
        "_by_method",
        "_by_status",
        "_entries",
        "_limited",
        "_total",
        "_unrecorded",
    )

    def __init__(self, capacity: int) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int):
            raise TypeError(f"record_requests must be an int, got {type(capacity).__name__}")
        if capacity < 0:
            raise ValueError("record_requests must be >= 0")
        self._entries: deque[RecordedRequest] = deque(maxlen=capacity)
        self._total = 0
        self._limited = 0
        self._unrecorded = 0
        self._by_method: Counter[str] = Counter()
        self._by_status: Counter[int] = Counter()
        self._by_fault: Counter[str] = Counter()

    @property
    def capacity(self) -> int:
        """How many requests are kept."""
        return self._entries.maxlen or 0

    def count(self, method: str, fault: Fault | None, *, limited: bool = False) -> None:
        """Count a request as it arrives (``limited``: a capacity limit refused it)."""
        self._total += 1
        self._limited += limited
        self._by_method[method] += 1
        if fault is not None:
            self._by_fault[fault.kind] += 1

    def count_status(self, status: int) -> None:
        """Count an answer sent whole."""
        self._by_status[status] += 1

    def append(self, entry: RecordedRequest) -> None:
        """Keep a request, letting the oldest go past the capacity."""
        if len(self._entries) == self.capacity:
            self._unrecorded += 1
        if self.capacity:
            self._entries.append(entry)

    def skip(self) -> None:
        """Note a request that was not kept (the log keeps none)."""
        self._unrecorded += 1

    def entries(self) -> list[RecordedRequest]:
        """The kept requests, oldest first (a copy)."""
        return list(self._entries)

    def clear(self) -> None:
        """Forget the kept requests; the counters stay."""
        self._entries.clear()

    def counts(self) -> RequestCounts:
        """A snapshot of the counters."""
        return RequestCounts(
            total=self._total,
            by_method=dict(self._by_method),
            by_status=dict(self._by_status),
            by_fault=dict(self._by_fault),
            rejected_by_limit=self._limited,
            unrecorded=self._unrecorded,
        )
