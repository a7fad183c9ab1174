"""Pytest fixtures for code that uses segments_async.

Opt in from a ``conftest.py``::

    pytest_plugins = ["segments_async.testing.pytest_plugin"]

``segments_server`` is a started :class:`FakeSegmentsServer`; ``segments_client`` is a
``SegmentsClient`` pointed at it, with tiny retry backoff. Both are function-scoped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest_asyncio

from ._server import FakeSegmentsServer

if TYPE_CHECKING:
    from segments_async import SegmentsClient

__all__ = ["segments_client", "segments_server"]


@pytest_asyncio.fixture
async def segments_server() -> AsyncIterator[FakeSegmentsServer]:
    """A started fake Segments API on loopback, closed after the test."""
    async with FakeSegmentsServer() as server:
        yield server


@pytest_asyncio.fixture
async def segments_client(segments_server: FakeSegmentsServer) -> AsyncIterator[SegmentsClient]:
    """A client of ``segments_server`` with near-zero retry backoff, closed after the test."""
    # Imported here so the server fixture works without loading the client.
    from segments_async import RetryPolicy, SegmentsClient

    client = SegmentsClient(
        base_url=segments_server.base_url,
        token=segments_server.token,
        retry=RetryPolicy(backoff_initial=0.001, backoff_max=0.01),
        allow_insecure_http=True,
    )
    async with client:
        yield client
