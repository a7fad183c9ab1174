"""The README's web-backend recipes map the library's errors to sensible statuses.

The aiohttp recipe is run as the README prints it (its code blocks are executed), in an
aiohttp app on loopback whose client talks to the fake API; so is the FastAPI recipe, its
lifespan included, through httpx's ASGI transport.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from segments_async import RetryPolicy, SegmentsClient
from segments_async.testing import FakeSegmentsServer, Fault

from .support import closed_port, section_blocks

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


def recipes() -> list[str]:
    return [code for language, code in section_blocks("In a web backend") if language == "python"]


def recipe(containing: str) -> str:
    (block,) = [block for block in recipes() if containing in block]
    return block


@pytest.fixture(scope="module")
def aiohttp_recipe() -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "readme_recipe"}  # AppKey reads it
    exec(recipe("def http_status"), namespace)  # noqa: S102 - the README's own code
    exec(recipe("async def segments_errors"), namespace)  # noqa: S102
    return namespace


async def test_the_fastapi_recipe(api, monkeypatch):
    """The FastAPI app as written: its lifespan's client renames; errors map as aiohttp's."""
    monkeypatch.setenv("SEGMENTS_BASE_URL", api.base_url)
    monkeypatch.setenv("SEGMENTS_API_TOKEN", api.token)
    namespace: dict[str, Any] = {"__name__": "readme_fastapi_recipe"}
    exec(recipe("def http_status"), namespace)  # noqa: S102 - the README's own code
    exec(recipe("FastAPI(lifespan=lifespan)"), namespace)  # noqa: S102
    app = namespace["app"]
    (segment_id,) = api.add_segments(1)

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as http,
    ):
        ok = await http.put(f"/segments/{segment_id}", params={"name": "DACH"})
        unknown = await http.put(f"/segments/{UNKNOWN_ID}", params={"name": "DACH"})
        empty = await http.put(f"/segments/{segment_id}", params={"name": ""})
        api.clear_requests()
        bad_id = await http.put("/segments/not-a-uuid", params={"name": "x"})

    assert (200, {"id": segment_id, "name": "DACH"}) == (ok.status_code, ok.json())
    assert (404, 422, 422) == (unknown.status_code, empty.status_code, bad_id.status_code)
    assert [] == api.requests  # FastAPI refused the bad id itself
    assert namespace["app"].state.segments.closed  # the lifespan closed its client


@pytest.fixture
async def api() -> AsyncIterator[FakeSegmentsServer]:
    async with FakeSegmentsServer(seed=19) as server:
        yield server


async def answer(
    recipe_namespace: dict[str, Any], client: SegmentsClient, path: str
) -> tuple[int, dict[str, Any], str | None]:
    """PUT ``path`` to the recipe's app, whose client is ``client``: status, body, Retry-After."""
    app = web.Application(middlewares=[recipe_namespace["segments_errors"]])
    app[recipe_namespace["segments_key"]] = client
    app.router.add_put("/segments/{segment_id}", recipe_namespace["rename"])
    async with TestServer(app) as server, aiohttp.ClientSession() as http:
        response = await http.put(server.make_url(path))
        body = await response.json()
        return response.status, body, response.headers.get("Retry-After")


def quick(api: FakeSegmentsServer, **options: Any) -> SegmentsClient:
    options.setdefault("retry", RetryPolicy(max_retries=0, retry_after_max=1))
    return SegmentsClient(api.base_url, api.token, **options)


async def test_success_and_the_api_own_answers(aiohttp_recipe, api):
    """200 with the segment; an unknown id is 404; an empty name is the API's 422."""
    (segment_id,) = api.add_segments(1)
    async with quick(api) as client:
        ok = await answer(aiohttp_recipe, client, f"/segments/{segment_id}?name=DACH")
        unknown = await answer(aiohttp_recipe, client, f"/segments/{UNKNOWN_ID}?name=DACH")
        empty = await answer(aiohttp_recipe, client, f"/segments/{segment_id}?name=")

    assert (200, {"id": segment_id, "name": "DACH"}) == ok[:2]
    assert 404 == unknown[0]
    assert 422 == empty[0]


async def test_bad_arguments_are_422_and_never_sent(aiohttp_recipe, api):
    """An id that is not a UUID, or no name at all: 422, and the API sees nothing."""
    async with quick(api) as client:
        bad_id = await answer(aiohttp_recipe, client, "/segments/..%2F..%2Fadmin?name=x")
        no_name = await answer(aiohttp_recipe, client, f"/segments/{UNKNOWN_ID}")

    assert 422 == bad_id[0]
    assert "segment_id" in bad_id[1]["detail"]
    assert 422 == no_name[0]
    assert [] == api.requests


@pytest.mark.parametrize(
    ("retry_after", "expected"), [(7, "7"), (0.2 + 1, "2"), ("9" * 400, None), (None, None)]
)
async def test_rate_limits_are_429_with_a_usable_retry_after(
    aiohttp_recipe, api, retry_after, expected
):
    """429 with the server's wait, rounded up; none when the server's is absent or absurd."""
    api.inject(Fault.status(429, retry_after=retry_after), method="PUT")
    async with quick(api) as client:
        status, _, header = await answer(aiohttp_recipe, client, f"/segments/{UNKNOWN_ID}?name=x")

    assert (429, expected) == (status, header)


async def test_upstream_failures_are_502_and_timeouts_504(aiohttp_recipe, api):
    """A 500, a lost connection and a refused one are 502; a timeout is 504."""
    path = f"/segments/{UNKNOWN_ID}?name=x"
    async with quick(api) as client:
        api.inject(Fault.status(500), method="PUT")
        failed = await answer(aiohttp_recipe, client, path)
        api.inject(Fault.reset_before(), method="PUT", times=2)
        reset = await answer(aiohttp_recipe, client, path)
        api.inject(Fault.latency(1.0), method="PUT")
        timed_out = await answer(aiohttp_recipe, client.with_options(timeout=0.05), path)
    async with closed_port() as url:
        nobody = SegmentsClient(url, api.token, retry=RetryPolicy(max_retries=0))
        async with nobody:
            refused = await answer(aiohttp_recipe, nobody, path)

    assert [502, 502, 504, 502] == [failed[0], reset[0], timed_out[0], refused[0]]


async def test_a_closed_client_is_503(aiohttp_recipe, api):
    """The app is shutting down: 503."""
    client = quick(api)
    await client.aclose()
    status, _, _ = await answer(aiohttp_recipe, client, f"/segments/{UNKNOWN_ID}?name=x")
    assert 503 == status
