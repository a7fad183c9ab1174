"""A Retry-After of 400 digits is a very long wait, not an
unreadable one: the 429 is raised at once, unretried, and the log says the wait is too long."""

from __future__ import annotations

import logging
import math

import pytest

from segments_async import RateLimitError

from ..rawserver import RawRequest, RawServer, json_response
from .support import make_client


async def test_a_400_digit_retry_after_is_too_long(caplog):
    """One request, a RateLimitError with an infinite retry_after, a WARNING that says why."""
    caplog.set_level(logging.WARNING, logger="segments_async")

    async def handler(request: RawRequest) -> bytes:
        return json_response(429, {"success": False}, headers={"Retry-After": "9" * 400})

    async with RawServer(handler) as server, make_client(server.url) as client:
        with pytest.raises(RateLimitError) as info:
            await client.segments.list()

    assert math.inf == info.value.retry_after
    assert 1 == len(server.requests)
    (record,) = caplog.records
    assert "longer than retry_after_max" in record.getMessage()
