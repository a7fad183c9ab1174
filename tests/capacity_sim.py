"""A discrete-event simulation of an ``"auto"`` page iteration against hidden capacities.

Pure and deterministic (simulated time, no loop, no sockets), so that how the adaptive
limit behaves against the three kinds of servers of the benchmarks can be asserted in a
unit test: ``queue`` (at most ``capacity`` served at once, the rest wait), ``reject`` (the
rest answered 429 at once) and ``quota`` (a token bucket of ``rate`` requests per second,
the rest answered 429). A refused page is retried after ``retry_after`` seconds. Pages are
consumed in order, with at most ``held`` pages fetched or in flight ahead of the consumer,
as ``iter_pages`` does. ``fixed`` replaces the adaptive limit by a fixed concurrency
(whose window is then ``fixed`` pages, as for a fixed ``concurrency``).
"""

from __future__ import annotations

import collections
import heapq
import itertools
from typing import Any

import attrs

from segments_async._flow import AdaptiveLimit


@attrs.frozen
class Run:
    seconds: float
    requests: int
    rejected: int
    max_outstanding: int
    limit: int

    @property
    def rejected_share(self) -> float:
        return self.rejected / self.requests


def simulate(
    mode: str,
    pages: int,
    *,
    capacity: int = 16,
    service: float = 0.010,
    rate: float = 200.0,
    burst: float | None = None,
    overhead: float = 0.0025,
    retry_after: float = 1.0,
    fixed: int | None = None,
    max_connections: int = 100,
) -> Run:
    """Iterate ``pages`` pages against a ``mode`` server; what it took."""
    events: list[tuple[float, int, str, Any]] = []
    order = itertools.count()
    adaptive = AdaptiveLimit(max_connections) if fixed is None else None
    held = 2 * max_connections if fixed is None else fixed
    state = collections.Counter[str]()
    done: set[int] = set()
    waiting_retry: collections.deque[tuple[float, int]] = collections.deque()
    queue: collections.deque[Any] = collections.deque()
    tokens = burst if burst is not None else rate / 10
    bucket = {"tokens": tokens, "at": 0.0}

    def push(when: float, kind: str, data: Any) -> None:
        heapq.heappush(events, (when, next(order), kind, data))

    def limit() -> int:
        return adaptive.limit if adaptive is not None else fixed  # type: ignore[return-value]

    def arrive(now: float, request: Any) -> None:
        if mode == "quota":
            bucket["tokens"] = min(tokens, bucket["tokens"] + (now - bucket["at"]) * rate)
            bucket["at"] = now
            if bucket["tokens"] < 1:
                state["rejected"] += 1
                push(now + overhead / 2, "answer", (request, False))
                return
            bucket["tokens"] -= 1
            push(now + service + overhead / 2, "answer", (request, True))
            return
        if state["busy"] < capacity:
            state["busy"] += 1
            push(now + service, "served", request)
        elif mode == "queue":
            queue.append(request)
        else:
            state["rejected"] += 1
            push(now + overhead / 2, "answer", (request, False))
            return
        state["max_out"] = max(state["max_out"], state["busy"] + len(queue))

    def send(now: float) -> None:
        while state["in_flight"] < limit():
            if waiting_retry and waiting_retry[0][0] <= now:
                page = waiting_retry.popleft()[1]
            elif state["next"] < pages and state["next"] < state["yielded"] + held:
                page = state["next"]
                state["next"] += 1
            else:
                return
            state["in_flight"] += 1
            state["requests"] += 1
            ticket = adaptive.ticket(state["in_flight"]) if adaptive is not None else None
            delay = adaptive.reserve(now) if adaptive is not None else 0.0
            push(now + delay + overhead / 2, "arrive", (page, now + delay, ticket))

    send(0.0)
    now = 0.0
    while events and state["yielded"] < pages:
        now, _, kind, data = heapq.heappop(events)
        if kind == "arrive":
            arrive(now, data)
        elif kind == "served":
            state["busy"] -= 1
            if queue:
                state["busy"] += 1
                push(now + service, "served", queue.popleft())
            push(now + overhead / 2, "answer", (data, True))
        elif kind == "answer":
            (page, sent, ticket), ok = data
            state["in_flight"] -= 1
            if adaptive is not None:
                adaptive.record(ticket, rtt=now - sent if ok else None, refused=not ok, now=now)
            if ok:
                done.add(page)
                while state["yielded"] in done:
                    done.discard(state["yielded"])
                    state["yielded"] += 1
            else:
                waiting_retry.append((now + retry_after, page))
                push(now + retry_after, "wake", None)
            send(now)
        else:
            send(now)
    return Run(now, state["requests"], state["rejected"], state["max_out"], limit())
