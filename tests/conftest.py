"""Shared fixtures: the aioresponses compatibility shim, tiny backoff, test constants.

Where a test goes (the map):

- ``tests/test_<module>.py``: the unit tests of one module, without sockets or sleeps.
  Pure ones: ``test_wire`` (requests, input checks), ``test_decode`` (answers), ``test_retry``
  (the retry decision table), ``test_errors``, ``test_options`` (configuration), ``test_paging``
  (page metadata), ``test_flow`` (the adaptive limit, fed scripted answers and simulated
  servers), ``test_sharing`` (a fleet member's decisions: leases, slots, refusals, the circuit),
  ``test_public_api`` (``__init__``: names, models, types), ``test_docstrings``
  (every public name's docstring: arguments, raises), ``test_recipe_types`` (every Python
  block of the README under ``mypy --strict``). Through the in-memory
  I/O seam of ``fakes.py``: ``test_client`` (the call loop: retries, deadline, hooks),
  ``test_client_logging`` (what the call loop logs), ``test_segments`` (the pagination
  window), ``test_bulk``. ``test_transport`` is the
  aiohttp level, with aioresponses. ``test_fault_spec``: the testing kit's ``--fault``
  grammar. ``test_benchmarks_*``: the benchmarks' logic and a smoke run.
- ``tests/cli/``: the command line (``segments_async/_cli/``), one file per module
  (``test_<module>``), in-process: ``test_core`` runs ``main()`` against the mocked API,
  ``test_readme`` checks the README's "Command line" section.
- ``tests/integration/``: real sockets on 127.0.0.1, one file per concern: the fake server
  and testing kit, pagination, the pool, the rate limit, closing, deadlines, hooks,
  borrowed sessions, proxies, security and frames, reliability soak, fuzzing, the console
  script, logging, tracing (OpenTelemetry), the lifecycle (clients never closed, one event
  loop after another), and the fleet (``test_fleet``: a real ``redis-server``, started once
  per session by the ``redis_server`` fixture; ``redis_url`` empties it for each test).
- Helpers: ``fakes.py`` (the in-memory seam), ``rawserver.py`` (a scriptable raw HTTP
  server), ``leaks.py`` (tasks, connections, warnings left behind), ``capacity_sim.py``
  (simulated servers and clients, ``"auto"`` or fixed), ``redisserver.py`` (a real Redis
  on loopback), ``integration/support.py``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses

from segments_async import RetryPolicy, SegmentsClient

from .redisserver import RedisServer, redis_binary_or_skip

BASE_URL = "https://api.segments.test"
TOKEN = "tok-3f9a7c1d5e"
SEGMENTS_URL = f"{BASE_URL}/v2.3/data/segments"
SEGMENT_ID = "7f2d6e6d-a4ad-4b58-abfe-bd8b918ebec2"
SEGMENT_URL = f"{SEGMENTS_URL}/{SEGMENT_ID}"
LIST_URL = re.compile(re.escape(SEGMENTS_URL) + r"\?.*")

#: Retries in tests wait microseconds, not seconds.
FAST_RETRY = RetryPolicy(backoff_initial=0.001, backoff_max=0.002)


class CompatResponse(aiohttp.ClientResponse):
    """aioresponses 0.7.9 predates aiohttp 3.14's required ``stream_writer`` argument."""

    def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", _NoStreamWriter())
        super().__init__(method, url, **kwargs)


class _NoStreamWriter:
    """What ``ClientResponse`` reads of a stream writer: nothing was written by a mock."""

    output_size = 0


class CompatAioresponses(aioresponses):
    """aioresponses with the compatible response class as every mock's default.

    Note that it bypasses aiohttp's request pipeline: client middlewares and trace hooks
    never run under it, so what they do is tested over real sockets instead.
    """

    def add(self, url: Any, method: str = "GET", *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("response_class", CompatResponse)
        super().add(url, method, *args, **kwargs)


@pytest.fixture
def mock_api() -> Iterator[CompatAioresponses]:
    """Intercept every aiohttp request; nothing reaches the network."""
    with CompatAioresponses() as mocked:
        yield mocked


@pytest.fixture
async def client() -> AsyncIterator[SegmentsClient]:
    """A client on the mocked base URL with tiny backoff."""
    async with SegmentsClient(BASE_URL, TOKEN, retry=FAST_RETRY) as c:
        yield c


def envelope(result: object) -> dict[str, object]:
    """The API's success envelope around ``result``."""
    return {"success": True, "result": result}


def page_payload(
    page: int, per_page: int, total: int, *, start: int = 0, count: int | None = None
) -> dict[str, object]:
    """A list answer for ``page`` of ``total`` items named ``s<i>``."""
    last = max(1, -(-total // per_page))
    first = (page - 1) * per_page
    n = max(0, min(per_page, total - first)) if count is None else count
    items = [
        {"id": f"00000000-0000-4000-8000-{start + first + i:012d}", "name": f"s{start + first + i}"}
        for i in range(n)
    ]
    return envelope(
        {
            "currentPage": page,
            "perPage": per_page,
            "lastPage": last,
            "total": total,
            "items": items,
            "filters": [],
        }
    )


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real ``redis-server`` for the session, on a free loopback port, nothing saved."""
    server = RedisServer(redis_binary_or_skip()).start()
    yield server
    server.stop()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A ``redis-server`` of the test's own, to stop, start again or freeze (skipped, or
    failed in CI, as ``redis_server``)."""
    server = RedisServer(redis_binary_or_skip()).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied: no test sees another's keys."""
    if not redis_server.running:  # a test stopped it
        redis_server.start()
    assert "+OK" == redis_server.command("FLUSHALL")
    return redis_server.url
