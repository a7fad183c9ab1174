"""A fake Segments API: a real aiohttp server on loopback, with seeded data and faults.

Usage::

    from segments_async.testing import FakeSegmentsServer, Fault

    async with FakeSegmentsServer(seed=0) as server:  # 127.0.0.1, a free port
        server.add_segments(1000)                     # 1000 deterministic segments
        client = SegmentsClient(server.base_url, server.token)
        server.inject(Fault.status(503, retry_after=1), method="GET", times=2)
        server.inject(Fault.reset_after(), method="POST", probability=0.1)
        server.limit_concurrency(4)                   # a 5th request at once is a 429
        server.limit_rate(50, clock=my_clock)         # a token bucket, 50 a second
        ...
        server.segments()        # id -> name, the default tenant's state
        server.requests          # the last 1000 requests, with the fault applied to each
        server.counts.by_status  # counters of every request: {200: 97, 503: 2}

Tenants are isolated: ``server.add_tenant()`` returns the token of a new, empty one.
The same ``seed`` gives the same segment names and ids, and the same sequence of
probabilistic faults for the same sequence of requests.

Every error is in the API's envelope, ``{"success": false, "error": {"code", "message"}}``,
with ``Content-Type: application/json``; the order of checks is documented on
``_api.dispatch``. A ``page``/``per_page`` that is not an integer in 1..2**31-1, or that
is repeated, is a 400 ``invalid_query``; a body over 1 MiB is a 413 ``payload_too_large``;
a request aiohttp cannot parse is a 400 ``bad_request`` and a bug in the fake a 500
``internal_error`` (logged), both also in the envelope.

Capacity limits model a server with finite capacity, for testing bulk jobs:
``server.limit_concurrency(n)`` answers 429 to a request while ``n`` others are in
progress (a latency fault included), ``server.limit_rate(per_second, burst=None)`` to
requests beyond a token bucket's rate. Both send ``Retry-After: 1`` (``retry_after=``)
and the ``too_many_requests`` error, are active until ``.cancel()`` or
``server.clear_limits()``, count ``.admitted`` / ``.rejected``, and take ``method=`` /
``path=`` like ``inject``. Limits are checked before faults: a refused request changes
nothing, draws no fault and takes nothing from other limits.

Faults: the first active rule (in injection order) whose method and path match, and
whose probability draw (if any) succeeds, applies; a rule with ``times`` is consumed
when applied. ``reset_*`` faults close the socket without an answer (aiohttp's client
raises ServerDisconnectedError, or ClientOSError ECONNRESET with ``rst=True``);
``truncated_body`` sends half the body and closes (ClientPayloadError). aiohttp's client
retries GET/PUT/DELETE once by itself when a connection drops, so a single reset on
those is invisible to it: inject ``times=2`` or more.

``delete_body=True`` writes the spec's ``{"success":true,"result":[]}`` after a DELETE's
204, with its Content-Length, on a kept-alive connection. aiohttp's default (C) response
parser rejects those bytes ("Bad status line"), failing the DELETE; its pure-Python
parser (``AIOHTTP_NO_EXTENSIONS=1``) reads the body and carries on.
"""

from __future__ import annotations

import asyncio
import random
import re
import secrets
import socket
import struct
import time
import warnings
from collections.abc import Callable
from email.utils import formatdate
from types import TracebackType
from typing import Self

import attrs
from aiohttp import hdrs, web
from aiohttp.abc import AbstractStreamWriter
from multidict import CIMultiDict, CIMultiDictProxy

from ._api import (
    DELETE_SPEC_BODY,
    MAX_BODY_BYTES,
    SEGMENTS_PATH,
    Reply,
    Store,
    Tenant,
    bearer_token,
    check_token,
    dispatch,
    error_reply,
    status_error_code,
    status_phrase,
)
from ._faults import Fault, FaultRule
from ._limits import (
    CapacityLimit,
    ConcurrencyLimit,
    RateLimit,
    RetryAfter,
    admit,
    retry_after_headers,
)
from ._log import DEFAULT_RECORD_REQUESTS, RecordedRequest, RequestCounts, RequestLog

__all__ = ["FakeSegmentsServer"]

_SERVER_HEADER = "FakeSegmentsServer"
_NOT_JSON_BODY = b"<p>this is not JSON</p>\n"
_NGINX_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


class _Disconnect(web.StreamResponse):
    """Drops the connection instead of answering, after writing ``raw`` if given.

    aiohttp treats the ConnectionResetError raised from prepare() as a client that went
    away: it logs at DEBUG only and closes the connection.
    """

    def __init__(self, raw: bytes = b"", *, rst: bool = False) -> None:
        super().__init__(status=500)
        self._raw = raw
        self._rst = rst

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        transport = request.transport
        if transport is not None and not transport.is_closing():
            if self._raw:
                transport.write(self._raw)
                transport.close()  # flushes what was written, then FIN
            else:
                if self._rst:
                    sock = transport.get_extra_info("socket")
                    if sock is not None:
                        # Linger 0: close() sends a TCP RST instead of a FIN.
                        sock.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                transport.abort()
        raise ConnectionResetError("connection dropped by an injected fault")


class _RawResponse(web.StreamResponse):
    """Writes pre-built response bytes to the socket, bypassing aiohttp's HTTP rules.

    Used for a 204 that carries a body, which aiohttp.web would strip.
    """

    def __init__(self, raw: bytes, *, keep_alive: bool) -> None:
        super().__init__(status=204)
        self._raw = raw
        self._raw_keep_alive = keep_alive

    @property
    def keep_alive(self) -> bool:
        return self._raw_keep_alive

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        transport = request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("connection lost before the response")
        transport.write(self._raw)
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


class _EnvelopeRequestHandler(web.RequestHandler):
    """aiohttp's connection handler, answering its own errors in the API's envelope.

    aiohttp answers a request it cannot parse (bad request line, header too long) and an
    exception escaping the handler with a text/plain page of its own; a careful API
    answers those in its JSON envelope too.
    """

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # The parent logs the error and refuses if a response was already under way.
        super().handle_error(request, status, exc, message)
        # aiohttp's message can quote the raw request, Authorization header included.
        if status == 500:
            reply = error_reply(500, "internal_error", "The fake server failed; see its log")
        elif status == 400:
            reply = error_reply(400, "bad_request", "The request is not valid HTTP/1.1")
        else:
            reply = error_reply(status, status_error_code(status), status_phrase(status))
        response = _json_response(reply)
        response.force_close()
        return response


class _EnvelopeServer(web.Server):
    """A low-level aiohttp server whose connections answer errors in the envelope."""

    def __call__(self) -> web.RequestHandler:
        return _EnvelopeRequestHandler(self, loop=self._loop, **self._kwargs)


def _json_response(reply: Reply) -> web.Response:
    headers = CIMultiDict(reply.headers)
    headers.setdefault(hdrs.SERVER, _SERVER_HEADER)
    if reply.content_type is not None:
        headers[hdrs.CONTENT_TYPE] = reply.content_type
    return web.Response(status=reply.status, body=reply.body or None, headers=headers)


def _raw_http(
    request: web.BaseRequest,
    reply: Reply,
    body: bytes,
    *,
    content_length: int,
    keep_alive: bool,
) -> bytes:
    """Serialize a response by hand: the status line, headers, and ``body``."""
    version = request.version
    lines = [f"HTTP/{version.major}.{version.minor} {reply.status} {status_phrase(reply.status)}"]
    if reply.content_type is not None or content_length:
        lines.append(f"Content-Type: {reply.content_type or 'application/json'}")
    lines.append(f"Content-Length: {content_length}")
    lines.extend(f"{name}: {value}" for name, value in reply.headers)
    lines.append(f"Date: {formatdate(usegmt=True)}")
    lines.append(f"Server: {_SERVER_HEADER}")
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class FakeSegmentsServer:
    """An in-process Segments API on loopback, for tests; an async context manager.

    A real aiohttp server with Bearer tenants, the spec's Accept/Content-Type rules,
    ``per_page`` clamped, 422 for an invalid name, 404 for an unknown id, and every
    refusal in the API's JSON error envelope. Faults (``inject``) and capacity limits
    (``limit_concurrency``, ``limit_rate``) make it misbehave on purpose.

    Example::

        async with FakeSegmentsServer(seed=1) as server:
            server.add_segments(250)
            server.inject(Fault.status(503, retry_after=0), method="GET", times=2)
            async with SegmentsClient(server.base_url, server.token) as client:
                names = [segment.name async for segment in client.segments.iterate()]
            assert len(names) == 250
            assert server.counts.by_status[503] == 2

    Args:
        host: The address to listen on (loopback by default).
        port: The port to listen on; 0 (the default) picks a free one.
        token: The default tenant's token (random if None); like every token, it must
            be non-empty printable ASCII without spaces, as the client requires.
        seed: The RNG seed of the generated data and of probabilistic faults: the same
            seed gives the same segments and the same fault draws.
        max_per_page: ``per_page`` above it is clamped, as the real API does (100).
        delete_body: Send the spec's JSON body with a DELETE's 204, as the spec shows.
            aiohttp's default (C) parser rejects it, so each DELETE of the client costs a
            retry, whose 404 reads as done.
        record_requests: How many of the latest requests ``requests`` keeps (1000, a
            ring buffer of about 2.5 KB a request; 0 keeps none). ``counts`` counts every
            request whatever this is, so a long run (the standalone mode) stays in
            bounded memory.

    Raises:
        ValueError: ``port`` is not in 0..65535, ``max_per_page`` is below 1,
            ``record_requests`` is negative, or ``token`` is not a valid token.
        TypeError: ``token`` or ``record_requests`` is of the wrong type.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        seed: int = 0,
        max_per_page: int = 100,
        delete_body: bool = False,
        record_requests: int = DEFAULT_RECORD_REQUESTS,
    ) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an int in 0..65535, got {port!r}")
        if isinstance(max_per_page, bool) or not isinstance(max_per_page, int) or max_per_page < 1:
            raise ValueError(f"max_per_page must be an int >= 1, got {max_per_page!r}")
        self._log = RequestLog(record_requests)
        self._host = host
        self._requested_port = port
        self._max_per_page = max_per_page
        self._delete_body = delete_body
        # Separate streams, so how much data was seeded does not shift the fault draws.
        # Not for security: the point is reproducibility.
        self._store = Store(random.Random(f"data:{seed}"))  # noqa: S311
        self._fault_rng = random.Random(f"faults:{seed}")  # noqa: S311
        self._token = secrets.token_urlsafe(24) if token is None else check_token(token)
        self._store.tenants[self._token] = Tenant()
        self._rules: list[FaultRule] = []
        self._limits: list[CapacityLimit] = []
        self._runner: web.ServerRunner | None = None
        self._port: int | None = None
        self._closed = False
        self._closing = asyncio.Event()

    # Lifecycle

    async def start(self) -> None:
        """Bind and start serving; a second call does nothing. ``async with`` calls it.

        Raises:
            RuntimeError: The server was closed: make a new one.
            OSError: The address cannot be listened on (the port is taken, say).
        """
        if self._closed:
            raise RuntimeError("this FakeSegmentsServer is closed")
        if self._runner is not None:
            return
        server = _EnvelopeServer(self._handle, access_log=None)
        runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._requested_port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def close(self) -> None:
        """Stop serving and drop open connections; idempotent. Leaving ``async with`` calls it.

        Requests waiting out a latency fault are cut short (their connection dropped).
        """
        self._closed = True
        self._closing.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        """The server, started."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the server."""
        await self.close()

    # Addresses and tenants

    @property
    def port(self) -> int:
        """The port the server listens on (the one picked, for ``port=0``).

        Raises:
            RuntimeError: The server is not started.
        """
        if self._port is None:
            raise RuntimeError("the server is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://host:port``, no trailing slash: the client's ``base_url``.

        The API lives under ``/v2.3/data/segments``.

        Raises:
            RuntimeError: The server is not started.
        """
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    @property
    def segments_url(self) -> str:
        """The collection's URL: ``base_url + "/v2.3/data/segments"``.

        Raises:
            RuntimeError: The server is not started.
        """
        return self.base_url + SEGMENTS_PATH

    @property
    def token(self) -> str:
        """The default tenant's bearer token: the client's ``token``."""
        return self._token

    def add_tenant(self, token: str | None = None) -> str:
        """Create an empty tenant, isolated from the others, and return its token.

        Args:
            token: The new tenant's token, or None for a random one. It must be what the
                client sends: non-empty printable ASCII without spaces.

        Returns:
            The tenant's token, for ``SegmentsClient(token=...)`` and the ``token=`` of
            ``add_segments`` and ``segments``.

        Raises:
            ValueError: The token is not valid, or is another tenant's already.
            TypeError: The token is not a ``str``.
        """
        token = secrets.token_urlsafe(24) if token is None else check_token(token)
        if token in self._store.tenants:
            raise ValueError("a tenant with this token exists")
        self._store.tenants[token] = Tenant()
        return token

    def _tenant(self, token: str | None) -> Tenant:
        tenant = self._store.tenants.get(self._token if token is None else token)
        if tenant is None:
            raise KeyError("no tenant with this token")
        return tenant

    def add_segments(self, count: int, *, token: str | None = None) -> dict[str, str]:
        """Add ``count`` deterministic segments to a tenant.

        The names and ids follow from the ``seed=`` given to the server and from what was
        added before.

        Args:
            count: How many segments to add (>= 0).
            token: The tenant's token; None: the default tenant.

        Returns:
            The segments added, id -> name, in order.

        Raises:
            TypeError: ``count`` is not an ``int``.
            ValueError: ``count`` is negative.
            KeyError: No tenant has this token.
        """
        if isinstance(count, bool) or not isinstance(count, int):
            raise TypeError(f"count must be an int, got {type(count).__name__}")
        if count < 0:
            raise ValueError("count must be >= 0")
        return self._store.add_segments(self._tenant(token), count)

    def seed(self, count: int, *, token: str | None = None) -> dict[str, str]:
        """Deprecated alias of :meth:`add_segments`, to be removed in the next release.

        Args:
            count: How many segments to add.
            token: The tenant's token; None: the default tenant.

        Returns:
            What ``add_segments`` returns, after a ``DeprecationWarning``.
        """
        warnings.warn(
            "FakeSegmentsServer.seed(n) is deprecated: use add_segments(n); "
            "seed= in the constructor remains the RNG seed",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.add_segments(count, token=token)

    def segments(self, token: str | None = None) -> dict[str, str]:
        """A copy of a tenant's segments, for assertions: id -> name, in creation order.

        Args:
            token: The tenant's token; None: the default tenant.

        Returns:
            A new dict; changing it changes nothing on the server.

        Raises:
            KeyError: No tenant has this token.
        """
        return self._tenant(token).names()

    # Faults and the request log

    def inject(
        self,
        fault: Fault,
        *,
        method: str | None = None,
        path: str | re.Pattern[str] | None = None,
        times: int | None = None,
        probability: float | None = None,
    ) -> FaultRule:
        """Apply ``fault`` to the matching requests to come.

        The first active rule (in injection order) that matches a request, and wins its
        probability draw if it has one, applies. Without ``probability`` the fault applies
        to the next ``times`` (default 1) matching requests; with it, each matching
        request is faulted with that probability (seeded), at most ``times`` times if
        given.

        Example::

            server.inject(Fault.status(503, retry_after=0), method="GET", times=2)
            rule = server.inject(Fault.reset_after(), method="POST", probability=0.1)
            ...
            rule.cancel()

        Args:
            fault: What goes wrong: a ``Fault`` made by its classmethods.
            method: The method of the requests to fault (any case), or None for all.
            path: A prefix of the request path, or a compiled pattern searched in it, or
                None for all.
            times: How many requests to fault at most (>= 1).
            probability: The chance each matching request is faulted, in [0, 1].

        Returns:
            The ``FaultRule``: ``.hits`` counts the requests it faulted, ``.cancel()``
            stops it.

        Raises:
            ValueError: ``times`` is below 1, or ``probability`` not in [0, 1].
        """
        if times is not None and times < 1:
            raise ValueError("times must be >= 1")
        if probability is not None and not 0.0 <= probability <= 1.0:
            raise ValueError("probability must be in [0, 1]")
        if times is None and probability is None:
            times = 1
        rule = FaultRule(
            fault,
            method=None if method is None else method.upper(),
            path=path,
            probability=probability,
            remaining=times,
        )
        self._rules.append(rule)
        return rule

    def clear_faults(self) -> None:
        """Cancel and forget every injected fault (capacity limits stay: see ``clear_limits``)."""
        for rule in self._rules:
            rule.cancel()
        self._rules.clear()

    # Capacity limits

    def limit_concurrency(
        self,
        max_in_flight: int,
        *,
        retry_after: RetryAfter = 1,
        method: str | None = None,
        path: str | re.Pattern[str] | None = None,
    ) -> ConcurrencyLimit:
        """Answer 429 to a matching request while ``max_in_flight`` others are in progress.

        A request is in progress from its admission (after its body is read) until its
        answer, an injected latency included. The 429 carries ``Retry-After`` and the
        ``too_many_requests`` error; the request is not processed. Limits are checked
        before faults: a refused request draws no fault and takes nothing from other
        limits.

        Example::

            limit = server.limit_concurrency(4)
            ...  # run the code under test
            assert limit.rejected == 0

        Args:
            max_in_flight: The most matching requests in progress at once (>= 1).
            retry_after: The 429's ``Retry-After``: seconds, a string sent as it is, or
                None for none.
            method: The method of the requests to limit, or None for all.
            path: A path prefix or compiled pattern, as for ``inject()``, or None for all.

        Returns:
            The ``ConcurrencyLimit``, active until ``.cancel()``: ``.admitted``,
            ``.rejected`` and ``.in_flight`` count.

        Raises:
            TypeError: ``max_in_flight`` is not an ``int``, or ``retry_after`` of a wrong
                type.
            ValueError: ``max_in_flight`` is below 1, or ``retry_after`` is negative.
        """
        limit = ConcurrencyLimit(max_in_flight, retry_after=retry_after, method=method, path=path)
        self._limits.append(limit)
        return limit

    def limit_rate(
        self,
        per_second: float,
        *,
        burst: float | None = None,
        retry_after: RetryAfter = 1,
        method: str | None = None,
        path: str | re.Pattern[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> RateLimit:
        """Answer 429 to matching requests beyond ``per_second`` a second (a token bucket).

        The bucket holds ``burst`` tokens, starts full, and gains ``per_second`` a second;
        each admitted request takes one. Otherwise like :meth:`limit_concurrency`.

        Args:
            per_second: The sustained rate, requests a second (> 0).
            burst: The most requests admitted at once after a pause (>= 1); None: one
                second's worth, at least 1.
            retry_after: The 429's ``Retry-After``: seconds, a string, or None for none.
            method: The method of the requests to limit, or None for all.
            path: A path prefix or compiled pattern, or None for all.
            clock: Returns the time in seconds, like ``time.monotonic`` (the default): a
                test can pass its own to drive the bucket without waiting.

        Returns:
            The ``RateLimit``, active until ``.cancel()``: ``.admitted`` and ``.rejected``
            count.

        Raises:
            TypeError: ``per_second`` is not a number, or ``retry_after`` of a wrong type.
            ValueError: ``per_second`` is not > 0, ``burst`` not >= 1, or ``retry_after``
                is negative.
        """
        limit = RateLimit(
            per_second, burst=burst, retry_after=retry_after, method=method, path=path,
            clock=clock,
        )  # fmt: skip
        self._limits.append(limit)
        return limit

    def clear_limits(self) -> None:
        """Cancel and forget every capacity limit (injected faults stay)."""
        for limit in self._limits:
            limit.cancel()
        self._limits.clear()

    # The request log

    @property
    def requests(self) -> list[RecordedRequest]:
        """The last ``record_requests`` requests received, oldest first (a copy).

        Each ``RecordedRequest`` holds the method, path, query, headers, body, tenant and
        the fault applied (or the limit that refused it).
        """
        return self._log.entries()

    @property
    def record_requests(self) -> int:
        """How many of the latest requests ``requests`` keeps (``record_requests=``)."""
        return self._log.capacity

    @property
    def counts(self) -> RequestCounts:
        """Counters of every request since the server was created (a ``RequestCounts`` snapshot).

        Never reset: not by the log's bound, nor by ``clear_requests()``.
        """
        return self._log.counts()

    def clear_requests(self) -> None:
        """Forget the recorded requests (``requests`` is then empty); ``counts`` keeps counting."""
        self._log.clear()

    def _pick_fault(self, method: str, path: str) -> Fault | None:
        fault = None
        for rule in self._rules:
            if rule.try_apply(method, path, self._fault_rng):
                fault = rule.fault
                break
        if any(not rule.active for rule in self._rules):
            self._rules = [rule for rule in self._rules if rule.active]
        return fault

    # Serving

    def _token_of(self, authorization: str | None) -> str | None:
        token = bearer_token(authorization)
        return token if token in self._store.tenants else None

    def _record(
        self,
        request: web.BaseRequest,
        body: bytes,
        token: str | None,
        fault: Fault | None = None,
        *,
        rejected_by: CapacityLimit | None = None,
    ) -> None:
        self._log.count(request.method, fault, limited=rejected_by is not None)
        if not self._log.capacity:
            self._log.skip()
            return
        self._log.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                raw_path=request.rel_url.raw_path,
                query=dict(request.query),
                headers=CIMultiDictProxy(CIMultiDict(request.headers)),
                body=body,
                token=token,
                fault=fault,
                rejected_by=rejected_by,
            )
        )

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        token = self._token_of(request.headers.get(hdrs.AUTHORIZATION))
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            self._record(request, b"", token)
            message = f"The request body is larger than {MAX_BODY_BYTES} bytes"
            return self._respond(request, error_reply(413, "payload_too_large", message))
        # Limits before faults: a refused request draws no fault and holds nothing.
        if any(not limit.active for limit in self._limits):
            self._limits = [limit for limit in self._limits if limit.active]
        admission = admit(self._limits, request.method, request.path)
        limit = admission.rejected_by
        if limit is not None:
            self._record(request, body, token, rejected_by=limit)
            return self._respond(request, limit.rejection())
        try:
            fault = self._pick_fault(request.method, request.path)
            self._record(request, body, token, fault)
            if fault is None:
                return self._respond(request, self._process(request, token, body))
            return await self._apply(fault, request, token, body)
        finally:
            # Released before aiohttp writes the answer: a client that has read its answer
            # always finds the slot free again.
            admission.release()

    def _process(self, request: web.BaseRequest, token: str | None, body: bytes) -> Reply:
        return dispatch(
            self._store,
            None if token is None else self._store.tenants[token],
            request.method,
            request.path,
            request.query,
            accept=request.headers.get(hdrs.ACCEPT),
            content_type=request.headers.get(hdrs.CONTENT_TYPE),
            body=body,
            max_per_page=self._max_per_page,
        )

    def _respond(self, request: web.BaseRequest, reply: Reply) -> web.StreamResponse:
        self._log.count_status(reply.status)
        if reply.status == 204 and self._delete_body and request.method == "DELETE":
            raw = _raw_http(
                request,
                reply,
                DELETE_SPEC_BODY,
                content_length=len(DELETE_SPEC_BODY),
                keep_alive=request.keep_alive,
            )
            return _RawResponse(raw, keep_alive=request.keep_alive)
        return _json_response(reply)

    async def _apply(
        self, fault: Fault, request: web.BaseRequest, token: str | None, body: bytes
    ) -> web.StreamResponse:
        kind = fault.kind
        if kind == "status":
            return self._respond(request, _status_reply(fault))
        if kind == "latency":
            if await self._sleep(fault.seconds):
                return _Disconnect()  # the server is closing
            return self._respond(request, self._process(request, token, body))
        if kind == "reset_before":
            return _Disconnect(rst=fault.rst)
        if kind == "reset_after":
            self._process(request, token, body)
            return _Disconnect(rst=fault.rst)
        if kind == "truncated_body":
            reply = self._process(request, token, body)
            raw = _raw_http(
                request,
                reply,
                reply.body[: len(reply.body) // 2],
                content_length=len(reply.body),
                keep_alive=True,
            )
            return _Disconnect(raw)
        if kind == "non_json_body":
            return self._respond(request, Reply(200, _NOT_JSON_BODY))
        assert kind == "html_502"
        return self._respond(
            request,
            Reply(502, _NGINX_502, content_type="text/html", headers=(("Server", "nginx"),)),
        )

    async def _sleep(self, seconds: float) -> bool:
        """Sleep, cut short if the server closes; True if it did."""
        try:
            async with asyncio.timeout(seconds):
                await self._closing.wait()
        except TimeoutError:
            return False
        return True


def _status_reply(fault: Fault) -> Reply:
    status = fault.status_code or 500
    headers = retry_after_headers(fault.retry_after)
    if fault.body is not None:
        return Reply(status, fault.body, content_type=fault.content_type, headers=headers)
    message = f"Injected fault: {status} {status_phrase(status)}"
    reply = error_reply(status, fault.error_code(), message, headers)
    return attrs.evolve(reply, content_type=fault.content_type)
