"""The README's hook recipes, run exactly as written there, against loopback servers.

Each recipe is the ```python block after a ``<!-- recipe: NAME -->`` line of README.md; it
is executed as a module would be, with SEGMENTS_BASE_URL and SEGMENTS_API_TOKEN pointing
at a test server. The OpenTelemetry recipe runs against a small stand-in for
``opentelemetry.trace`` that checks attribute types as the real API does.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest

from segments_async import APIConnectionError, NotFoundError
from segments_async.testing import FakeSegmentsServer, Fault

from ..conftest import TOKEN, page_payload
from ..rawserver import RawRequest, RawServer, json_response
from .support import recipe, run_recipe

MISSING_ID = "7f2d6e6d-a4ad-4b58-abfe-bd8b918ebec2"


def test_every_recipe_is_found():
    """The three recipes are in the README, each once."""
    for name in ("request-ids", "metrics", "opentelemetry"):
        assert "SegmentsClient(" in recipe(name)


# --------------------------------------------------------------------------- request ids


async def test_request_ids_and_rate_limit_headers(monkeypatch, caplog):
    """Every answer's request id is logged; the rate limit follows successful answers only."""
    answers = [
        (200, {"X-Request-Id": "req-1", "X-RateLimit-Limit": "100", "X-RateLimit-Reset": "30"}),
        (503, {"X-Request-Id": "req-2", "X-RateLimit-Reset": "999", "Retry-After": "0"}),
        (200, {"X-Request-Id": "req-3", "X-RateLimit-Remaining": "97"}),
    ]

    async def handler(request: RawRequest) -> bytes:
        status, headers = answers[len(server.requests) - 1]
        payload = page_payload(1, 20, 1) if status == 200 else {"success": False}
        return json_response(status, payload, headers=headers)

    caplog.set_level(logging.INFO, logger="myapp.segments")
    async with RawServer(handler) as server:
        url = server.url
        module = run_recipe("request-ids", monkeypatch, url, TOKEN)
        async with module.client as client:
            await client.segments.list()
            assert (100, None, 30.0) == (
                module.rate_limit.limit,
                module.rate_limit.remaining,
                module.rate_limit.reset_seconds,
            )
            await client.segments.list()  # a 503, retried

    assert (100, 97, 30.0) == (  # the 503's headers were not taken
        module.rate_limit.limit,
        module.rate_limit.remaining,
        module.rate_limit.reset_seconds,
    )
    lines = [r.getMessage() for r in caplog.records if r.name == "myapp.segments"]
    assert 3 == len(lines)
    assert ["req-1", "req-2", "req-3"] == [line.rsplit(" ", 1)[1] for line in lines]
    assert f"GET {url}/v2.3/data/segments?page=1&per_page=20 -> 503 in " in lines[1]
    assert all(TOKEN not in line for line in lines)


async def test_request_ids_recipe_survives_odd_headers(monkeypatch, caplog):
    """No request id is logged as '-'; an unreadable rate limit is a warning, not an error."""

    async def handler(request: RawRequest) -> bytes:
        headers = {"X-RateLimit-Limit": "lots"}
        return json_response(200, page_payload(1, 20, 1), headers=headers)

    caplog.set_level(logging.INFO, logger="myapp.segments")
    async with RawServer(handler) as server:
        module = run_recipe("request-ids", monkeypatch, server.url, TOKEN)
        async with module.client as client:
            await client.segments.list()

    assert module.rate_limit.limit is None
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert messages[0][1].endswith("request id -")
    assert logging.WARNING == messages[1][0]


# --------------------------------------------------------------------------- metrics


async def test_per_endpoint_latency_and_retry_counters(monkeypatch):
    """Answers by endpoint and status, failures by error type, retries by reason."""
    async with FakeSegmentsServer(seed=17) as server:
        server.add_segments(5)
        module = run_recipe("metrics", monkeypatch, server.base_url, server.token)
        server.inject(Fault.status(503, retry_after=0), method="GET")
        async with module.client as client:
            segment = await client.segments.create("EMEA")
            await client.segments.update(segment.id, "DACH")
            await client.segments.list()
            with pytest.raises(NotFoundError):
                await client.segments.delete(MISSING_ID)
            server.inject(Fault.reset_before(), method="POST")
            with pytest.raises(APIConnectionError):
                await client.segments.create("lost")

    metrics = module.metrics
    collection, one = "/v2.3/data/segments", "/v2.3/data/segments/{id}"
    assert {
        (f"POST {collection}", "200"): 1,
        (f"PUT {one}", "200"): 1,
        (f"GET {collection}", "503"): 1,
        (f"GET {collection}", "200"): 1,
        (f"DELETE {one}", "404"): 1,
        (f"POST {collection}", "APIConnectionError"): 1,
    } == dict(metrics.attempts)
    assert {(f"GET {collection}", "HTTP 503"): 1} == dict(metrics.retries)
    assert {f"POST {collection}", f"PUT {one}", f"GET {collection}", f"DELETE {one}"} == set(
        metrics.seconds
    )
    assert metrics.mean_latency(f"GET {collection}") > 0
    assert 0.0 == metrics.mean_latency("GET /elsewhere")


# --------------------------------------------------------------------------- OpenTelemetry

_ATTRIBUTE_TYPES = (str, bool, int, float)


class StandInSpan:
    """Records what the recipe does to a span; refuses values OpenTelemetry refuses."""

    def __init__(self, name: str, kind: object) -> None:
        self.name = name
        self.kind = kind
        self.attributes: dict[str, object] = {}
        self.events: list[tuple[str, dict[str, object]]] = []
        self.exception: BaseException | None = None
        self.ended = False

    def set_attribute(self, key: str, value: object) -> None:
        assert isinstance(key, str)
        assert isinstance(value, _ATTRIBUTE_TYPES), f"{key}={value!r}"
        self.attributes[key] = value

    def add_event(self, name: str, attributes: dict[str, object] | None = None) -> None:
        attributes = dict(attributes or {})
        for key, value in attributes.items():
            assert isinstance(value, _ATTRIBUTE_TYPES), f"{name}.{key}={value!r}"
        self.events.append((name, attributes))


class StandInTrace(types.ModuleType):
    """``opentelemetry.trace``: get_tracer, get_current_span, SpanKind; spans in a list."""

    def __init__(self) -> None:
        super().__init__("opentelemetry.trace")
        self.SpanKind = types.SimpleNamespace(CLIENT="CLIENT", INTERNAL="INTERNAL")
        self.spans: list[StandInSpan] = []
        self.outside = StandInSpan("(no span)", None)  # what hooks outside any span record to
        self._current: contextvars.ContextVar[StandInSpan | None] = contextvars.ContextVar(
            "span", default=None
        )

    def get_tracer(self, name: str) -> Any:
        return types.SimpleNamespace(start_as_current_span=self._start_as_current_span)

    def get_current_span(self) -> StandInSpan:
        return self._current.get() or self.outside

    @contextlib.contextmanager
    def _start_as_current_span(self, name: str, kind: object = None) -> Iterator[StandInSpan]:
        span = StandInSpan(name, kind)
        self.spans.append(span)
        token = self._current.set(span)
        try:
            yield span
        except BaseException as exc:
            span.exception = exc  # the real one records it and sets an error status
            raise
        finally:
            self._current.reset(token)
            span.ended = True


@pytest.fixture
def trace(monkeypatch) -> StandInTrace:
    """A stand-in for the opentelemetry-api package, in sys.modules for the test."""
    stand_in = StandInTrace()
    package = types.ModuleType("opentelemetry")
    package.__path__ = []  # a package, as the real one is
    package.trace = stand_in  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "opentelemetry", package)
    monkeypatch.setitem(sys.modules, "opentelemetry.trace", stand_in)
    return stand_in


async def test_an_opentelemetry_span_per_call(monkeypatch, trace):
    """One span per call, ended, with every attempt and retry on it, and its failure."""
    async with FakeSegmentsServer(seed=18) as server:
        module = run_recipe("opentelemetry", monkeypatch, server.base_url, server.token)
        server.inject(Fault.status(503, retry_after=0), method="PUT")
        async with module.client as client:
            segment = await client.segments.create("EMEA")
            renamed = await module.rename(segment.id, "DACH")
            with pytest.raises(NotFoundError) as caught:
                await module.rename(MISSING_ID, "gone")

    assert "DACH" == renamed.name
    ok, failed = trace.spans
    assert [("segments.update", "CLIENT", True)] * 2 == [
        (span.name, span.kind, span.ended) for span in (ok, failed)
    ]
    assert {
        "http.request.method": "PUT",
        "url.full": f"{server.segments_url}/{segment.id}",
        "http.request.resend_count": 1,
        "http.response.status_code": 200,
    } == ok.attributes
    assert [
        ("attempt", {"attempt": 1, "outcome": "503"}),
        ("retry", {"reason": "HTTP 503", "delay_s": 0.0}),
        ("attempt", {"attempt": 2, "outcome": "200"}),
    ] == ok.events
    assert ok.exception is None
    assert caught.value is failed.exception
    assert 404 == failed.attributes["http.response.status_code"]
    # The create, made outside any span, recorded only to the no-op current span.
    assert [("attempt", {"attempt": 1, "outcome": "200"})] == trace.outside.events
