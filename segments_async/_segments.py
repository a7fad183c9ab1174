"""The segments resource: CRUD and pagination over ``/v2.3/data/segments``."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING, final

from . import _decode, _wire
from ._models import Segment, SegmentPage

if TYPE_CHECKING:
    from ._client import SegmentsClient

__all__ = ["SegmentsResource"]


@final
class SegmentsResource:
    """``client.segments``: list, iterate, create, update and delete segments."""

    __slots__ = ("_client",)

    def __init__(self, client: SegmentsClient) -> None:
        self._client = client

    async def list(self, page: int = 1, per_page: int = 20) -> SegmentPage:
        """One page of the tenant's segments (the server may clamp ``per_page``)."""
        query = _wire.list_query(page, per_page)
        return await self._client._request(
            "GET", f"{_wire.SEGMENTS_PATH}?{query}", _decode.decode_segment_page
        )

    async def create(self, name: str) -> Segment:
        """Create a segment.

        Not retried once the server may have acted on it (unless the client's
        ``RetryPolicy(retry_post=True)`` accepts the risk of a duplicate).
        """
        body = _wire.name_body(name)
        return await self._client._request(
            "POST", _wire.SEGMENTS_PATH, _decode.decode_segment, body
        )

    async def update(self, segment_id: str | uuid.UUID, name: str) -> Segment:
        """Rename a segment."""
        path = _wire.segment_path(segment_id)
        body = _wire.name_body(name)
        return await self._client._request("PUT", path, _decode.decode_segment, body)

    async def delete(self, segment_id: str | uuid.UUID) -> None:
        """Delete a segment.

        A retry that finds the segment gone (404) after an attempt whose outcome was
        unknown counts as success: that attempt deleted it.
        """
        path = _wire.segment_path(segment_id)
        await self._client._request("DELETE", path, _decode.decode_delete)

    def iter_pages(self, per_page: int = 100, concurrency: int = 4) -> AsyncIterator[SegmentPage]:
        """Every page, in order, with up to ``concurrency`` requests in flight.

        Page 1 comes first and tells the server's real ``perPage`` and ``lastPage``. Then
        at most ``concurrency`` requests are in flight, counting the one the iterator is
        waiting on; while the consumer holds a page, up to ``concurrency - 1`` more are
        fetched ahead, so at most ``concurrency`` pages are held whatever the total.
        ``concurrency=1`` fetches each page when it is asked for. Leaving the loop early
        cancels what is in flight; for cleanup at a precise point, wrap the iterator in
        ``contextlib.aclosing``. A page that fails raises from the iterator after the
        others are cancelled.
        """
        per_page = _wire.check_positive_int("per_page", per_page)
        concurrency = _wire.check_positive_int("concurrency", concurrency)
        return self._iter_pages(per_page, concurrency)

    def iterate(self, per_page: int = 100, concurrency: int = 4) -> AsyncIterator[Segment]:
        """Every segment, in the server's order, fetching pages as ``iter_pages`` does."""
        per_page = _wire.check_positive_int("per_page", per_page)
        concurrency = _wire.check_positive_int("concurrency", concurrency)
        return self._iterate(self._iter_pages(per_page, concurrency))

    async def _iterate(self, pages: AsyncGenerator[SegmentPage, None]) -> AsyncIterator[Segment]:
        async with contextlib.aclosing(pages):
            async for page in pages:
                for segment in page.items:
                    yield segment

    async def _iter_pages(
        self, per_page: int, concurrency: int
    ) -> AsyncGenerator[SegmentPage, None]:
        first = await self.list(1, per_page)
        yield first
        last_page = first.last_page
        if last_page <= 1:
            return
        # Servers clamp per_page: ask for the size they actually use, so that their
        # lastPage stays true for the pages asked for next.
        per_page = first.per_page if first.per_page >= 1 else per_page
        loop = asyncio.get_running_loop()
        # Tasks for the pages after the one awaited next: with that one, at most
        # `concurrency` requests are in flight, and while the consumer holds a page at
        # most `concurrency - 1` are fetched ahead. With concurrency=1 no task is made:
        # each page is awaited directly, as a hand-written loop would.
        in_flight: collections.deque[asyncio.Task[SegmentPage]] = collections.deque()
        ahead = concurrency - 1
        page_number = 2
        try:
            while page_number <= last_page:
                current = in_flight.popleft() if in_flight else None
                next_ahead = page_number + 1 + len(in_flight)
                while len(in_flight) < ahead and next_ahead <= last_page:
                    in_flight.append(loop.create_task(self.list(next_ahead, per_page)))
                    next_ahead += 1
                if current is None:
                    page = await self.list(page_number, per_page)
                else:
                    page = await current
                page_number += 1
                yield page
        finally:
            for task in in_flight:
                task.cancel()
            if in_flight:
                await asyncio.wait(in_flight)
            for task in in_flight:
                if not task.cancelled():
                    task.exception()  # retrieved, so asyncio does not log it as lost
