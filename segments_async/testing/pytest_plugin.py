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
    """A started ``FakeSegmentsServer`` on loopback, closed after the test.

    Yields:
        The server: its ``base_url`` and ``token`` configure a client, its ``segments()``,
        ``requests`` and ``counts`` tell what the code under test did.
    """
    async with FakeSegmentsServer() as server:
        yield server


@pytest_asyncio.fixture
async def segments_client(segments_server: FakeSegmentsServer) -> AsyncIterator[SegmentsClient]:
    """A ``SegmentsClient`` of ``segments_server`` with near-zero retry backoff, closed after.

    Args:
        segments_server: The fixture's server, which the client talks to.

    Yields:
        The client (``allow_insecure_http=True``: the fake speaks ``http://`` on loopback).
    """
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
