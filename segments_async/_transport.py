"""The only aiohttp code: the session and its pool, one attempt, aiohttp's errors -> ours.

``Transport.send`` makes one attempt and returns a plain ``Outcome`` (status, headers, body,
or how it failed, and whether the request may have reached the server); it never retries
and never raises for what the server or the network did. Above it, the call loop decides.

Four things here exist because of how aiohttp (and asyncio under it) works:

- The wait for a pooled connection happens in a ``Gate`` of our own, before aiohttp sees
  the request: aiohttp's timeout would count that wait as part of the attempt, and a call
  that never left the pool would look like one whose outcome is unknown. The ``rate_limit``
  slot is taken after it, so that no queue stands between the slot and the send.
- A per-request middleware (``_SendProbe``) counts the real sends (aiohttp silently sends
  an idempotent request again when a pooled connection turns out dead) and notes whether
  the request was written at all.
- aiohttp's frames hold the request's headers, token included: no exception that leaves
  this module references them (a fresh ``CancelledError`` is raised in place of theirs,
  and our errors chain only tracebackless causes).
- The owned pool's connections read at most 64 KiB at a time (``_read_in_64k``): asyncio
  asks the socket for 256 KiB per read, and in a process whose allocator maps blocks that
  large afresh, every response paid for mapping, faulting in and unmapping its buffer.

A pool belongs to the event loop it was opened in. When that loop shuts down (an
``asyncio.run()`` returning), the pool is closed on it (``_LoopEnd``) and the next loop
opens another; using it from a second loop while the first still runs is an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import traceback
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from typing import Any, Final

import aiohttp
from aiohttp import ClientRequest, ClientResponse, hdrs
from aiohttp.client_middlewares import ClientHandlerType, ClientMiddlewareType
from aiohttp.client_proto import ResponseHandler
from aiohttp.connector import Connection
from aiohttp.tracing import Trace
from yarl import URL

from ._errors import (
    APIConnectionError,
    APIResponseValidationError,
    APITimeoutError,
    ClientClosedError,
    SegmentsError,
)
from ._flow import ARRIVAL, Gate, Pace, loop_clock
from ._options import RequestHeaders, cut_timeout
from ._retry import Failure, Outcome
from ._wire import MAX_RESPONSE_BYTES

__all__ = ["Transport", "held_back"]


class _SendProbe:
    """A per-attempt aiohttp middleware: how often the request was sent, and if at all."""

    __slots__ = ("sends", "written")

    def __init__(self) -> None:
        self.sends = 0
        self.written = False

    @property
    def maybe_written(self) -> bool:
        """False only if the request certainly never reached a socket.

        A probe that never ran (a mock that bypasses aiohttp's pipeline) knows nothing,
        so it says "maybe".
        """
        return self.written or self.sends == 0

    async def __call__(self, request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        self.sends += 1
        try:
            return await handler(request)
        finally:
            # aiohttp sets request.response once the request's head is handed to the socket.
            if getattr(request, "response", None) is not None:
                self.written = True


#: Bytes asked of the socket (or the TLS layer) per read, as httpcore asks. asyncio asks
#: 256 KiB, above glibc's first threshold for mapping a block rather than taking it from
#: the heap (128 KiB), which only rises once the process frees a larger mapped block. Until
#: then each read maps 256 KiB, faults in what it fills, shrinks the block and unmaps it
#: (python/cpython#85451; TLS allocates twice per read): 14 us for a 2 KB response and
#: 22 us for 20 KB here, against 1.6 us and 3.0 us when reading 64 KiB.
_READ_SIZE = 64 * 1024


def _read_in_64k(transport: object) -> None:
    """Have ``transport`` (asyncio's, plain or TLS) read ``_READ_SIZE`` bytes at a time.

    asyncio's size is ``max_size``: the selector transport's for plain TCP, the TLS layer's
    (``_ssl_protocol``) for TLS, whose socket reads go into one buffer made once. A
    transport without one (uvloop's, a later asyncio's) is left as it is.
    """
    target = getattr(transport, "_ssl_protocol", transport)
    size = getattr(target, "max_size", None)
    if isinstance(size, int) and size > _READ_SIZE:
        with contextlib.suppress(AttributeError):  # a class without a settable attribute
            target.max_size = _READ_SIZE  # type: ignore[attr-defined]


class _Connector(aiohttp.TCPConnector):
    """The owned pool's connector: aiohttp's, with no limit of its own (``Gate`` bounds the
    connections), its connections reading 64 KiB at a time (``_read_in_64k``), telling the
    adaptive limit where each request stood when it got its connection (``ARRIVAL``): the
    connections in use then, it included, less those still being made (aiohttp counts them
    in use from the start), and when.

    A request waiting for a new connection is counted in flight by the limit, and is not
    at the server yet. ``Flow.done`` reads this for a refusal in slow start, when every new
    level needs new connections: a refusal met 41 at a server of 40 slots and was counted
    at 44-52, and its ceiling cost a second ``Retry-After``. The cost is an ``await`` more
    per request (within the noise of 12 rounds of 8,000 creates on the near-free server:
    1.01x).
    """

    def __init__(self) -> None:
        super().__init__(limit=0)
        self._connecting = 0
        self._clock = loop_clock(self._loop)
        # aiohttp's own set of the connections in use; were a later aiohttp to keep them
        # otherwise, nothing is told (and the limit counts as it did before) rather than
        # every request failing. tests/integration/test_adaptive.py would show it.
        acquired = getattr(self, "_acquired", None)
        self._in_use: set[object] | None = acquired if isinstance(acquired, set) else None

    # (aiohttp's signatures, a ``timeout`` included.)
    async def _create_connection(
        self,
        req: ClientRequest,
        traces: list[Trace],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109
    ) -> ResponseHandler:
        self._connecting += 1
        try:
            protocol = await super()._create_connection(req, traces, timeout)
        finally:
            self._connecting -= 1
        _read_in_64k(protocol.transport)
        return protocol

    async def connect(
        self,
        req: ClientRequest,
        traces: list[Trace],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109
    ) -> Connection:
        """A connection for ``req``, from the pool or new; where it stands now, told."""
        connection = await super().connect(req, traces, timeout)
        if self._in_use is not None:
            ARRIVAL.set((len(self._in_use) - self._connecting, self._clock()))
        return connection


class _TooLarge(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


async def _without_cookies(request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
    """Send no cookies: a borrowed session's jar is the app's, not the client's."""
    request.headers.popall(hdrs.COOKIE, None)
    return await handler(request)


#: The ``_LoopEnd`` generators still waiting: an unfinished async generator that is
#: garbage-collected makes asyncio schedule its ``aclose()`` on its loop, which may be
#: gone by then, so each is held here until it has finished.
_WAITING: Final[set[AsyncGenerator[None, None]]] = set()


def _run_now(step: Coroutine[Any, Any, object]) -> None:
    """Run a step of an async generator that cannot suspend (it awaits nothing)."""
    try:
        step.send(None)
    except StopIteration:
        return
    raise RuntimeError("an async generator step that must not suspend did")


class _LoopEnd:
    """Awaits ``then()`` on the running event loop when that loop shuts down.

    ``asyncio.run()`` and ``asyncio.Runner`` close every open async generator of their
    loop (``loop.shutdown_asyncgens()``) after the last task and before closing the loop.
    A generator paused here is one of them, so ``then`` runs on the loop while it still
    works: the pool's sockets are closed properly, not left to a loop that is gone.
    """

    __slots__ = ("_generator", "_then")

    def __init__(self, then: Callable[[], Awaitable[None]]) -> None:
        self._then: Callable[[], Awaitable[None]] | None = then
        self._generator = self._wait()
        # Its first step registers it with the running loop (the loop's firstiter hook).
        _run_now(self._generator.asend(None))
        _WAITING.add(self._generator)

    async def _wait(self) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            _WAITING.discard(self._generator)
            then, self._then = self._then, None
            if then is not None:
                await then()

    def cancel(self) -> None:
        """Stop waiting, at once and without running ``then``."""
        self._then = None
        _run_now(self._generator.aclose())


class Transport:
    """The connection pool of one client and its views, and the sending of one attempt."""

    __slots__ = (
        "_active",
        "_borrowed",
        "_closing",
        "_gate",
        "_loop",
        "_loop_end",
        "_middlewares",
        "_proxy",
        "_request_options",
        "_session",
        "closed",
        "max_connections",
        "rate",
    )

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession | None,
        max_connections: int,
        proxy: URL | None,
        rate: Pace | None = None,
    ) -> None:
        self._session = session
        #: ``rate_limit``: every request takes a slot once it has a connection.
        self.rate = rate
        self._borrowed = session is not None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_end: _LoopEnd | None = None
        if session is not None:
            # The session's own loop; aiohttp has no public accessor but the deprecated one.
            self._loop = getattr(session, "_loop", None)
            connector = session.connector
            # Every request goes to one host: its per-host limit binds as much as the total.
            limits = [connector.limit, connector.limit_per_host] if connector is not None else []
            max_connections = min([max_connections, *(n for n in limits if n)])
        self.max_connections = max_connections
        self._gate = Gate(max_connections)
        # The API's cookies (set for one tenant, sent by every client sharing the session)
        # and the app's own have no place in a Bearer-token request.
        self._middlewares: tuple[ClientMiddlewareType, ...] = ()
        if session is not None and not isinstance(session.cookie_jar, aiohttp.DummyCookieJar):
            self._middlewares = (_without_cookies,)
        self._proxy = proxy
        # What every request passes to aiohttp besides its own: the owned session already
        # has the defaults the client needs; a borrowed session's are overridden.
        self._request_options: dict[str, object] = {"allow_redirects": False}
        if proxy is not None or session is not None:
            self._request_options["proxy"] = proxy
        if session is not None:
            self._request_options.update(
                raise_for_status=False, auto_decompress=True, middlewares=self._middlewares
            )
        self.closed = False
        # Tasks inside a call, and those aclose() cancelled: see ``enter`` and ``closed_under``.
        self._active: dict[asyncio.Task[object], int] = {}
        self._closing: set[asyncio.Task[object]] = set()

    def __repr__(self) -> str:
        return f"<Transport max_connections={self.max_connections} closed={self.closed}>"

    @property
    def opened(self) -> bool:
        """Whether a session exists (an owned one is made on first use)."""
        return self._session is not None

    @property
    def session(self) -> aiohttp.ClientSession | None:
        """The session in use, if any."""
        return self._session

    def _open(self) -> aiohttp.ClientSession:
        running = asyncio.get_running_loop()
        session = self._session
        if session is not None and self._loop is not running:
            self._check_loop_ended("use this SegmentsClient")
            if self._borrowed:
                raise RuntimeError(
                    "the aiohttp.ClientSession lent to this SegmentsClient belongs to an "
                    "event loop that has ended: lend it one made in the loop that uses it"
                )
            # Its loop was closed without shutting down its async generators (loop.close()
            # without asyncio.run), so the pool was not closed on it: drop what is left.
            self._drop_pool()
            session = None
        if session is None:
            self._loop = running
            session = self._session = aiohttp.ClientSession(
                # Our Gate bounds the connections; an aiohttp limit would add a second,
                # hidden wait inside the attempt's timeout.
                connector=_Connector(),
                # Cookies have no place in a Bearer-token API, and a jar would let one
                # tenant's responses steer another's requests through a shared pool.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            self._loop_end = _LoopEnd(self._close_at_loop_end)
        return session

    def _check_loop_ended(self, action: str) -> None:
        """Raise unless the pool's event loop has ended (so that the pool can be dropped)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            raise RuntimeError(
                f"cannot {action} from another event loop than the one its connection pool "
                "belongs to, which has not ended (it is not closed): create the client inside "
                "the loop that uses it (e.g. in your app's lifespan), one client per loop"
            )

    async def _close_at_loop_end(self) -> None:
        """The pool's loop is shutting down: close the pool on it, and forget it."""
        session, self._session = self._session, None
        self._loop = None
        self._loop_end = None
        if session is not None:
            await session.close()

    def _drop_pool(self) -> None:
        """Close the pool's connections now, without awaiting, and forget the pool.

        For a pool whose loop is closed (nothing can be awaited on it), or one whose client
        was garbage-collected (nothing may be scheduled from a finalizer). A borrowed
        session is only forgotten.
        """
        session, self._session = self._session, None
        self._loop = None
        if self._loop_end is not None:
            self._loop_end.cancel()
            self._loop_end = None
        # The tasks of a loop that is gone can be neither cancelled nor awaited.
        self._active.clear()
        self._closing.clear()
        connector = session.connector if session is not None and not self._borrowed else None
        if connector is not None:
            # What aiohttp's own finalizer does: close each connection's transport, and
            # mark the connector (so the session) closed. Its close() would also schedule
            # a task to wait for the transports.
            connector._close()

    def abandon(self) -> bool:
        """The client was garbage-collected unclosed: close its pool now, without awaiting.

        True if it held a pool of its own on a loop still alive: a leak worth a warning.
        A borrowed session is not ours to close, and a pool whose loop has ended is dead
        already.
        """
        if self.closed or self._borrowed or self._session is None:
            return False
        loop = self._loop
        self.closed = True
        self._drop_pool()
        return loop is not None and not loop.is_closed()

    # ----------------------------------------------------------------------- lifecycle

    def enter(self) -> asyncio.Task[object] | None:
        """Note that the current task is inside a call, so that ``aclose`` can end it."""
        task = asyncio.current_task()
        if task is not None:
            self._active[task] = self._active.get(task, 0) + 1
        return task

    def leave(self, task: asyncio.Task[object] | None) -> None:
        """The call that ``enter`` returned ``task`` for is over."""
        if task is None:
            return
        depth = self._active.pop(task, 1) - 1
        if depth:
            self._active[task] = depth

    def closed_under(self, task: asyncio.Task[object] | None) -> bool:
        """After a ``CancelledError``: True if ``aclose`` caused it (and it is now undone).

        A task that the caller cancelled as well stays cancelled: then this is False and
        the ``CancelledError`` must propagate.
        """
        if task is None or task not in self._closing:
            return False
        self._closing.discard(task)
        task.uncancel()
        return task.cancelling() == 0

    async def aclose(self) -> None:
        """End every call in progress with ``ClientClosedError``, then close the pool."""
        if self.closed:
            return
        if self._loop is not None and self._loop is not asyncio.get_running_loop():
            self._check_loop_ended("close this SegmentsClient")
            self._drop_pool()
        self.closed = True
        current = asyncio.current_task()
        for task in self._active:
            if task is not current and not task.done():
                self._closing.add(task)
                task.cancel()
        # Let the calls meet their cancellation and give their connections back first.
        await asyncio.sleep(0)
        session, self._session = self._session, None
        if self._loop_end is not None:
            self._loop_end.cancel()
            self._loop_end = None
        if session is not None and not self._borrowed:
            await session.close()

    # ----------------------------------------------------------------------- one attempt

    async def send(
        self,
        method: str,
        url: str,
        headers: RequestHeaders,
        body: bytes | None,
        *,
        attempt_timeout: aiohttp.ClientTimeout,
        until: float | None,
    ) -> Outcome:
        """Make one attempt: wait for a connection, then for a rate slot (until ``until``,
        loop time), send, read."""
        session = self._usable_session(method, url)
        if isinstance(session, Outcome):
            return session
        connected = self._gate.try_acquire()
        if not connected or self.rate is not None:
            held = await self.hold(method, url, until, attempt_timeout, connected=connected)
            if isinstance(held, Outcome):
                return held
            attempt_timeout = held
        started = asyncio.get_running_loop().time()
        # Only a DELETE's sends are counted: aiohttp silently sends an idempotent request
        # again after a dead pooled connection, and a 404 after that may mean the first one
        # deleted it. Whether any other request was sent is told apart by the kind of
        # failure: a connection not made in time is a connect timeout (see to_wire_timeout).
        probe = _SendProbe() if method == "DELETE" else None
        options = self._request_options
        if probe is not None:
            options = {**options, "middlewares": (*self._middlewares, probe)}
        failed: tuple[Failure, SegmentsError, int | None] | None = None
        cancelled: tuple[object, ...] | None = None
        try:
            async with session.request(
                method,
                url,
                data=body,
                headers=headers.plain if body is None else headers.json,
                timeout=attempt_timeout,
                **options,  # type: ignore[arg-type]
            ) as response:
                raw = await _read_body(response)
                return Outcome(
                    response.status,
                    response.headers,
                    raw,
                    resent=probe is not None and probe.sends > 1,
                    elapsed=asyncio.get_running_loop().time() - started,
                )
        except (aiohttp.ClientError, TimeoutError, _TooLarge) as exc:
            # Mapped here, so that no local outlives the block holding aiohttp's exception.
            failed = _failure(exc, attempt_timeout, method, url, written=_written(probe))
        except asyncio.CancelledError as exc:
            cancelled = exc.args
        except Exception as exc:
            # Not an aiohttp error we know (a bug, or a borrowed session's own parts): it is
            # raised as it is, but without the locals of aiohttp's frames, which hold the
            # request headers.
            _clear_frames(exc)
            raise
        finally:
            self._gate.release()
        return self._unanswered(method, url, probe, failed, cancelled, started)

    def _usable_session(self, method: str, url: str) -> aiohttp.ClientSession | Outcome:
        """The session to send through, or the outcome of a client or session closed."""
        if self.closed:
            return _closed(method, url, sent=False)
        session = self._session
        if session is None or self._loop is not asyncio.get_running_loop():
            session = self._open()  # the first use, or a clear error about loops
        if session.closed:
            # A borrowed session its owner closed: aiohttp would raise a RuntimeError from
            # frames that hold the request headers.
            error = ClientClosedError(
                "the borrowed aiohttp.ClientSession was closed by its owner", method=method, url=url
            )
            return Outcome(failure=Failure.CLOSED, error=error, sent=False)
        return session

    async def hold(
        self,
        method: str,
        url: str,
        until: float | None,
        attempt_timeout: aiohttp.ClientTimeout,
        *,
        connected: bool,
    ) -> aiohttp.ClientTimeout | Outcome:
        """Wait for a connection (unless ``connected``), then for a rate slot, until ``until``.

        The attempt's timeout, cut to what the waits left of the call's deadline; or, when
        the deadline came first, the outcome (nothing sent, no connection held). The rate
        slot is taken last, when nothing else can hold the request back: slots taken before
        a queue would pile up in it and go out together.
        """
        if not connected:
            waited = await self._wait_for_connection(method, url, until)
            if waited is not None:
                return waited
        if self.rate is not None:
            waited = await self._wait_for_rate(self.rate, method, url, until)
            if waited is not None:
                return waited
        return cut_timeout(attempt_timeout, until, asyncio.get_running_loop().time())

    async def _wait_for_connection(
        self, method: str, url: str, until: float | None
    ) -> Outcome | None:
        waited = await _wait(self._gate.acquire, until)
        if waited is None:
            return None
        what = f"no connection free within {waited:.3g}s (the call's deadline); "
        return held_back(f"{what}the pool of {self.max_connections} is busy", method, url)

    async def _wait_for_rate(
        self, rate: Pace, method: str, url: str, until: float | None
    ) -> Outcome | None:
        """Wait for a rate slot while holding a connection; give it back if none comes."""
        try:
            waited = await _wait(rate.acquire, until)
        except BaseException:
            self._gate.release()
            raise
        if waited is None:
            return None
        self._gate.release()
        what = "no request slot came free before the call's deadline"
        return held_back(
            f"{what} (rate_limit={rate.per_second:g}/s); nothing was sent", method, url
        )

    def _unanswered(
        self,
        method: str,
        url: str,
        probe: _SendProbe | None,
        failed: tuple[Failure, SegmentsError, int | None] | None,
        cancelled: tuple[object, ...] | None,
        started: float,
    ) -> Outcome:
        """The outcome of an attempt that raised instead of answering."""
        sent = _written(probe) and method != "GET"
        if cancelled is not None:
            if not self.closed_under(asyncio.current_task()):
                # A fresh one: aiohttp's, with its traceback, holds the request headers.
                raise asyncio.CancelledError(*cancelled)
            return _closed(method, url, sent=sent)
        if self.closed:
            # The pool went away under the attempt: say so, not "connection lost".
            return _closed(method, url, sent=sent)
        assert failed is not None
        failure, error, status = failed
        return Outcome(
            status,
            failure=failure,
            error=error,
            sent=_written(probe) and failure not in (Failure.CONNECT, Failure.TLS),
            resent=probe is not None and probe.sends > 1,
            elapsed=asyncio.get_running_loop().time() - started,
        )


async def _wait(acquire: Callable[[], Awaitable[None]], until: float | None) -> float | None:
    """Await ``acquire()``; None once done, or the seconds waited if ``until`` came first."""
    if until is None:
        await acquire()
        return None
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        async with asyncio.timeout_at(until):
            await acquire()
    except TimeoutError:
        return loop.time() - started
    return None


def held_back(message: str, method: str, url: str) -> Outcome:
    """The outcome of a request held back past the call's deadline: nothing was sent."""
    error = APITimeoutError(message, method=method, url=url)
    return Outcome(failure=Failure.QUEUE_TIMEOUT, error=error, sent=False)


def _written(probe: _SendProbe | None) -> bool:
    """Whether the request may have been written (unprobed requests: maybe)."""
    return probe is None or probe.maybe_written


def _failure(
    exc: Exception,
    attempt_timeout: aiohttp.ClientTimeout,
    method: str,
    url: str,
    *,
    written: bool,
) -> tuple[Failure, SegmentsError, int | None]:
    """How an attempt that raised ``exc`` failed, our error for it, and the status if any."""
    if isinstance(exc, aiohttp.ClientError):
        return (*_map_client_error(exc, method, url), None)
    if isinstance(exc, _TooLarge):
        return Failure.TOO_LARGE, _too_large_error(exc.status, method, url), exc.status
    return Failure.TIMEOUT, _timeout_error(attempt_timeout, method, url, written=written), None


def _closed(method: str, url: str, *, sent: bool) -> Outcome:
    if sent:
        message = "the client was closed while the request was in flight; it may have been done"
    else:
        message = "the client was closed before the request was sent"
    error = ClientClosedError(message, method=method, url=url)
    return Outcome(failure=Failure.CLOSED, error=error, sent=sent)


async def _read_body(response: ClientResponse) -> bytes:
    """The whole body, refusing one larger than ``MAX_RESPONSE_BYTES``.

    An uncompressed body with a Content-Length is read in one go (aiohttp reads exactly
    that many bytes); anything else is counted as it is inflated, so that a small gzip
    bomb cannot grow past the limit in memory.
    """
    limit = MAX_RESPONSE_BYTES
    length = response.content_length
    if length is not None:
        if length > limit:
            raise _TooLarge(response.status)
        if "Content-Encoding" not in response.headers:
            return await response.read()
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise _TooLarge(response.status)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large_error(status: int | None, method: str, url: str) -> SegmentsError:
    return APIResponseValidationError(
        f"response body larger than {MAX_RESPONSE_BYTES} bytes; not read",
        method=method,
        url=url,
        status_code=status or 0,
    )


def _timeout_error(
    timeout: aiohttp.ClientTimeout, method: str, url: str, *, written: bool
) -> APITimeoutError:
    total = timeout.total
    after = f" after {total:.3g}s" if total else ""  # a cut timeout: 0.999993 -> 1
    if not written:
        return APITimeoutError(
            f"request timed out{after} before it was sent", method=method, url=url
        )
    return APITimeoutError(f"request timed out{after}", method=method, url=url)


def _map_client_error(
    exc: aiohttp.ClientError, method: str, url: str
) -> tuple[Failure, SegmentsError]:
    """Our exception for aiohttp's, and how the attempt failed.

    The cause chained to ours has no traceback (aiohttp's frames hold the request headers,
    token included). ``ClientResponseError`` is not chained at all (its ``request_info``
    holds those headers), nor are connector errors (their connection key can hold a
    proxy's credentials): their ``OSError`` is chained instead.
    """
    failure, message, cause = _what_failed(exc, method)
    timed_out = isinstance(exc, aiohttp.ServerTimeoutError)
    error = (APITimeoutError if timed_out else APIConnectionError)(message, method=method, url=url)
    error.__cause__ = _without_tracebacks(cause)
    error.__suppress_context__ = True
    return failure, error


def _what_failed(
    exc: aiohttp.ClientError, method: str
) -> tuple[Failure, str, BaseException | None]:
    """How an attempt that raised ``exc`` failed, in words, and the cause safe to chain."""
    if isinstance(exc, aiohttp.ServerTimeoutError):
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            return Failure.CONNECT, "timed out connecting", exc
        return Failure.TIMEOUT, "timed out reading the response", exc
    if isinstance(exc, aiohttp.ClientSSLError | aiohttp.ServerFingerprintMismatch):
        # Certificate trouble does not go away by retrying, and must not be papered over.
        return Failure.TLS, f"TLS failure: {exc}", getattr(exc, "os_error", None)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return Failure.CONNECT, f"cannot connect: {exc.os_error}", exc.os_error
    if isinstance(exc, aiohttp.ClientPayloadError):
        return Failure.TRUNCATED, "the response body was cut short", exc
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        # The proxy refused the tunnel: the API never saw the request. Not chained: its
        # request_info holds the CONNECT's headers, the proxy's credentials included.
        message = f"the proxy refused the tunnel: {exc.status} {_first_line(exc.message)}"
        return Failure.CONNECT, message, None
    if isinstance(exc, aiohttp.ClientResponseError):
        # Malformed HTTP. The common case is a 204 that carries a body, as the spec's own
        # DELETE example does: aiohttp's C parser (llhttp) ends a 204 at its head and reads
        # the body as the next response's status line ("Bad status line") in the same read,
        # so the 204 is lost with the error. No public aiohttp setting reads it: the
        # pure-Python parser accepts it, but choosing it means replacing the connection's
        # protocol through private attributes, or AIOHTTP_NO_EXTENSIONS for the whole
        # process. So a DELETE is retried at once (a garbled answer is not a sign of load)
        # and its 404 read as done; without retries, the error says the outcome is unknown.
        acted = "" if method == "GET" else "; the server may have acted on the request"
        return (
            Failure.PROTOCOL,
            f"malformed HTTP response ({_first_line(exc.message)}){acted}",
            None,
        )
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        return Failure.DISCONNECT, "the server closed the connection before answering", exc
    return Failure.DISCONNECT, f"connection failed: {type(exc).__name__}", exc


def _without_tracebacks(exc: BaseException | None) -> BaseException | None:
    """``exc`` and every exception chained to it, stripped of their tracebacks."""
    seen: set[int] = set()
    pending = [exc]
    while pending:
        node = pending.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        node.__traceback__ = None
        pending += (node.__cause__, node.__context__)
    return exc


def _clear_frames(exc: BaseException) -> None:
    """Clear the locals of the finished frames of ``exc`` and of everything chained to it."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        node = pending.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        traceback.clear_frames(node.__traceback__)
        pending += (node.__cause__, node.__context__)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:200] if text.strip() else "unreadable"
