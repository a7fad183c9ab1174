"""An in-memory fake of the I/O seam, for tests of the call loop and the pagination window.

``FakeTransport`` replaces a client's ``Transport``: every ``send`` becomes a ``Sent`` whose
outcome the test decides, when it decides, so that the loop and the window are driven by
futures instead of sleeps. Lifecycle (``enter``/``leave``/``aclose``) is the real one.

    fake = install(client)
    task = asyncio.create_task(client.segments.list())
    sent = await fake.next()
    sent.answer(200, page_body(...))
    page = await task
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import aiohttp
import orjson
from yarl import URL

from segments_async import APIConnectionError, SegmentsClient, SegmentsError
from segments_async._flow import RateLimit
from segments_async._options import RequestHeaders
from segments_async._retry import Failure, Outcome
from segments_async._transport import Transport, _closed


class Sent:
    """One attempt the client made, waiting for the test to say how it ends."""

    def __init__(
        self,
        method: str,
        url: str,
        headers: RequestHeaders,
        body: bytes | None,
        attempt_timeout: aiohttp.ClientTimeout,
        until: float | None,
    ) -> None:
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.attempt_timeout = attempt_timeout
        self.until = until
        self.future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()

    @property
    def path(self) -> str:
        """The URL's path and query."""
        return URL(self.url, encoded=True).path_qs

    def answer(self, status: int, body: bytes | object = b"", **headers: str) -> None:
        """End the attempt with an HTTP answer (a non-bytes body is sent as JSON)."""
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        self.future.set_result(Outcome(status, headers, raw))

    def fail(
        self, failure: Failure, error: SegmentsError | None = None, *, sent: bool = True
    ) -> None:
        """End the attempt without an answer."""
        if error is None:
            error = APIConnectionError(failure.value, method=self.method, url=self.url)
        self.future.set_result(Outcome(failure=failure, error=error, sent=sent))


class FakeTransport(Transport):
    """A ``Transport`` whose ``send`` is a ``Sent`` for the test to settle."""

    def __init__(self, max_connections: int = 100, rate: RateLimit | None = None) -> None:
        super().__init__(session=None, max_connections=max_connections, proxy=None, rate=rate)
        self.sent: list[Sent] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._arrivals: collections.deque[Sent] = collections.deque()
        self._arrived = asyncio.Event()

    async def send(  # type: ignore[override]
        self,
        method: str,
        url: str,
        headers: RequestHeaders,
        body: bytes | None,
        *,
        attempt_timeout: aiohttp.ClientTimeout,
        until: float | None,
    ) -> Outcome:
        if self.closed:
            return _closed(method, url, sent=False)
        # The real waits for a connection and a rate slot: only the exchange is faked.
        held = await self.hold(
            method, url, until, attempt_timeout, connected=self._gate.try_acquire()
        )
        if isinstance(held, Outcome):
            return held
        sent = Sent(method, url, headers, body, held, until)
        self.sent.append(sent)
        self._arrivals.append(sent)
        self._arrived.set()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await sent.future
        except asyncio.CancelledError:
            if self.closed_under(asyncio.current_task()):
                return _closed(method, url, sent=method != "GET")
            raise
        finally:
            self.in_flight -= 1
            self._gate.release()

    async def next(self) -> Sent:
        """The next attempt the client makes (waits for it)."""
        while not self._arrivals:
            self._arrived.clear()
            await self._arrived.wait()
        return self._arrivals.popleft()

    def pending(self) -> list[Sent]:
        """Attempts made and not yet settled, oldest first."""
        return [sent for sent in self.sent if not sent.future.done()]


def install(client: SegmentsClient, max_connections: int = 100) -> FakeTransport:
    """Swap the client's transport (before first use) for a fake; returns the fake."""
    fake = FakeTransport(max_connections, rate=client._shared.flow.rate)
    client._shared.transport = fake
    return fake


def page_body(number: int, per_page: int, total: int, **overrides: Any) -> dict[str, Any]:
    """A list answer for page ``number`` of ``total`` items ``s<i>``; fields may be overridden."""
    first = (number - 1) * per_page
    count = max(0, min(per_page, total - first))
    result: dict[str, Any] = {
        "currentPage": number,
        "perPage": per_page,
        "lastPage": max(1, -(-total // per_page)),
        "total": total,
        "items": [
            {"id": f"00000000-0000-4000-8000-{first + i:012d}", "name": f"s{first + i}"}
            for i in range(count)
        ],
        "filters": [],
    }
    result.update(overrides)
    return {"success": True, "result": result}
