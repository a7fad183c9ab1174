"""The README's OpenTelemetry recipe, run as written with the real SDK and aiohttp's
auto-instrumentation, header capture on: every attempt traced, the token in no span.

Each test instruments aiohttp (a process-wide patch of ``ClientSession.__init__``) and
undoes it; the capture variables are set through ``monkeypatch``, so that what the recipe
writes to ``os.environ`` is undone too.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from segments_async import APIConnectionError, NotFoundError, RetryPolicy, SegmentsClient
from segments_async.testing import FakeSegmentsServer, Fault

from .support import run_recipe

CAPTURE = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST"
SANITIZE = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS"
TOKEN = "tok-traced-4c1e8b2a9f"
MISSING_ID = "7f2d6e6d-a4ad-4b58-abfe-bd8b918ebec2"
FAST = RetryPolicy(backoff_initial=0.001, backoff_max=0.002)


@pytest.fixture(autouse=True)
def capture_every_header(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Header capture on, as an operator might set it; aiohttp uninstrumented afterwards."""
    monkeypatch.setenv(CAPTURE, ".*")
    monkeypatch.delenv(SANITIZE, raising=False)
    try:
        yield
    finally:
        instrumentor = AioHttpClientInstrumentor()
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()


@pytest.fixture
async def api() -> Any:
    async with FakeSegmentsServer(seed=31, token=TOKEN) as server:
        server.add_segments(5)
        yield server


def attributes(spans: tuple[ReadableSpan, ...]) -> list[dict[str, Any]]:
    return [dict(span.attributes or {}) for span in spans]


def assert_no_token(spans: tuple[ReadableSpan, ...]) -> None:
    """No attribute, event or status of any span holds the token."""
    assert spans
    for span in spans:
        assert TOKEN not in span.to_json(), span.to_json()


async def test_every_attempt_is_a_span_and_no_span_holds_the_token(api, monkeypatch):
    """CRUD, pages fetched concurrently, a retry and failures: one span per attempt, each
    with the Authorization header captured as [REDACTED]."""
    recipe = run_recipe("opentelemetry-aiohttp", monkeypatch, api.base_url, api.token)
    api.inject(Fault.status(503, retry_after=0), method="PUT")
    async with recipe.client.with_options(retry=FAST) as client:
        segment = await client.segments.create("EMEA")
        await client.segments.update(segment.id, "DACH")  # a 503, then the answer
        assert 6 == len([s async for s in client.segments.iterate(per_page=2, concurrency=3)])
        with pytest.raises(NotFoundError):
            await client.segments.delete(MISSING_ID)
        api.inject(Fault.reset_after(), method="POST")
        with pytest.raises(APIConnectionError):
            await client.segments.create("lost")
    await recipe.client.aclose()

    spans = recipe.exporter.get_finished_spans()
    found = [(a.get("http.method"), a.get("http.status_code")) for a in attributes(spans)]
    assert [
        ("POST", 200),
        ("PUT", 503),
        ("PUT", 200),
        *[("GET", 200)] * 3,
        ("DELETE", 404),
        ("POST", None),
    ] == found
    assert {("[REDACTED]",)} == {a["http.request.header.authorization"] for a in attributes(spans)}
    assert_no_token(spans)
    assert "authorization" == os.environ[SANITIZE]


async def test_the_recipe_keeps_what_was_already_sanitized(api, monkeypatch):
    """An operator's own SANITIZE_FIELDS stays, with authorization added."""
    monkeypatch.setenv(SANITIZE, "set-cookie,x-api-.*")
    recipe = run_recipe("opentelemetry-aiohttp", monkeypatch, api.base_url, api.token)
    async with recipe.client as client:
        await client.segments.list()

    assert "set-cookie,x-api-.*,authorization" == os.environ[SANITIZE]
    assert_no_token(recipe.exporter.get_finished_spans())


async def test_without_sanitizing_capture_records_the_token(api):
    """Why the recipe sets SANITIZE_FIELDS: without it, the token is in every span."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    AioHttpClientInstrumentor().instrument(tracer_provider=provider)
    async with SegmentsClient(api.base_url, api.token) as client:
        await client.segments.list()

    (span,) = exporter.get_finished_spans()
    assert (f"Bearer {TOKEN}",) == dict(span.attributes or {})["http.request.header.authorization"]


async def test_instrument_after_the_first_request_traces_nothing(api, monkeypatch):
    """The client's session predates instrument(): none of its requests is traced; a client
    created afterwards is."""
    monkeypatch.setenv(SANITIZE, "authorization")
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with SegmentsClient(api.base_url, api.token) as early:
        await early.segments.list()
        AioHttpClientInstrumentor().instrument(tracer_provider=provider)
        await early.segments.list()
        assert () == exporter.get_finished_spans()
        async with SegmentsClient(api.base_url, api.token) as late:
            await late.segments.list()

    assert 1 == len(exporter.get_finished_spans())


async def test_attempt_spans_are_children_of_the_call_span(api, monkeypatch):
    """With a span around the call (the hook recipe's way), each attempt is its child."""
    recipe = run_recipe("opentelemetry-aiohttp", monkeypatch, api.base_url, api.token)
    tracer = recipe.provider.get_tracer("test")
    api.inject(Fault.status(503, retry_after=0), method="GET")
    async with recipe.client.with_options(retry=FAST) as client:
        with tracer.start_as_current_span("segments.iterate") as call:
            assert 5 == len([s async for s in client.segments.iterate(per_page=2, concurrency=3)])
    await recipe.client.aclose()

    spans = recipe.exporter.get_finished_spans()
    attempts = [span for span in spans if span.name != "segments.iterate"]
    assert 4 == len(attempts)  # a 503 and three pages
    call_id = call.get_span_context().span_id
    assert {call_id} == {span.parent.span_id for span in attempts if span.parent is not None}
    assert all(span.parent is not None for span in attempts)
