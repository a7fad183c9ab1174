"""``SegmentsClient``: the connection pool, timeouts, and the send-with-retries loop.

This is the only module that does I/O. It asks ``_wire`` what to send and what an answer
means, asks ``_retry`` whether and when to try again, and maps aiohttp's exceptions to
ours at the edge.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import platform
import time
from collections.abc import Callable
from types import TracebackType
from typing import Final, TypeVar, final

import aiohttp
from aiohttp import ClientRequest, ClientResponse
from aiohttp.client_middlewares import ClientHandlerType, ClientMiddlewareType
from yarl import URL

from . import _decode, _options, _retry, _wire
from ._errors import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    RateLimitError,
    SegmentsError,
)
from ._retry import Failure, RetryBudget, RetryPolicy
from ._segments import SegmentsResource
from ._version import __version__

__all__ = ["SegmentsClient"]

logger: Final = logging.getLogger("segments_async")

_T = TypeVar("_T")

USER_AGENT: Final = (
    f"segments-async/{__version__} aiohttp/{aiohttp.__version__} "
    f"{platform.python_implementation()}/{platform.python_version()}"
)


class _NotGiven:
    """Tells "not given" from ``None`` (which is a real timeout value: no timeout)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Final = _NotGiven()


def _client_timeout(timeout: object) -> aiohttp.ClientTimeout:
    if isinstance(timeout, aiohttp.ClientTimeout):
        return timeout
    if timeout is None:
        return aiohttp.ClientTimeout(total=None)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(
            f"timeout must be seconds (float), an aiohttp.ClientTimeout or None, "
            f"got {type(timeout).__name__}"
        )
    if not math.isfinite(timeout) or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    return aiohttp.ClientTimeout(total=float(timeout))


class _Pool:
    """What a client and its ``with_options`` views share: the session and the budget."""

    __slots__ = (
        "borrowed",
        "budget",
        "budget_spent",
        "closed",
        "loop",
        "max_connections",
        "session",
    )

    def __init__(self, session: aiohttp.ClientSession | None, max_connections: int) -> None:
        self.session = session
        self.borrowed = session is not None
        self.max_connections = max_connections
        self.loop: asyncio.AbstractEventLoop | None = None
        self.closed = False
        self.budget = RetryBudget()
        self.budget_spent = False  # the budget ran dry and that was logged

    def get(self) -> aiohttp.ClientSession:
        """The session, created on first use inside the running loop."""
        if self.closed:
            raise RuntimeError("this SegmentsClient is closed; create a new one")
        session = self.session
        if session is None:
            self.loop = asyncio.get_running_loop()
            session = self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.max_connections),
                # Cookies have no place in a Bearer-token API, and a jar would let one
                # tenant's responses steer another's requests through a shared pool.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        elif self.loop is not None and asyncio.get_running_loop() is not self.loop:
            raise RuntimeError(
                "this SegmentsClient's connection pool belongs to another event loop: "
                "create the client inside the loop that uses it (e.g. in your app's lifespan)"
            )
        return session

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        session, self.session = self.session, None
        if session is not None and not self.borrowed:
            await session.close()


@final
class SegmentsClient:
    """An asyncio client for the Segments API.

    One client holds one connection pool: create it once (per app, per lifespan) and
    share it; it is safe to use from many tasks at once. Use it as ``async with`` or call
    ``await client.aclose()``.

    ``base_url`` and ``token`` default to the environment variables ``SEGMENTS_BASE_URL``
    and ``SEGMENTS_API_TOKEN``. ``timeout`` applies to each attempt. ``session`` lends the
    client an ``aiohttp.ClientSession`` that it uses but never closes.
    """

    __slots__ = (
        "_base_url",
        "_headers",
        "_json_headers",
        "_pool",
        "_retry",
        "_timeout",
        "_token",
        "_view",
        "segments",
    )

    segments: SegmentsResource
    """The ``/v2.3/data/segments`` endpoints: list, iterate, create, update, delete."""

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        timeout: float | aiohttp.ClientTimeout | None = 30.0,
        retry: RetryPolicy | None = None,
        max_connections: int = 100,
        session: aiohttp.ClientSession | None = None,
        allow_insecure_http: bool = False,
    ) -> None:
        if base_url is None:
            base_url = os.environ.get("SEGMENTS_BASE_URL") or None
        if base_url is None:
            raise ValueError("no base URL: pass base_url='https://...' or set SEGMENTS_BASE_URL")
        if token is None:
            token = os.environ.get("SEGMENTS_API_TOKEN") or None
        if token is None:
            raise ValueError("no API token: pass token='...' or set SEGMENTS_API_TOKEN")
        if not isinstance(allow_insecure_http, bool):
            raise TypeError("allow_insecure_http must be a bool")
        self._base_url = _options.check_base_url(base_url, allow_insecure_http=allow_insecure_http)
        self._token = _options.check_token(token)
        self._timeout = _client_timeout(timeout)
        self._retry = _check_retry(retry)
        _wire.check_positive_int("max_connections", max_connections)
        if session is not None and not isinstance(session, aiohttp.ClientSession):
            raise TypeError(
                f"session must be an aiohttp.ClientSession, got {type(session).__name__}"
            )
        self._pool = _Pool(session, max_connections)
        self._view = False
        # The token goes into each request's own headers: aiohttp drops those on a
        # cross-origin redirect (and redirects are not followed anyway), whereas a session
        # default or a middleware would carry it to wherever a redirect pointed.
        self._headers: dict[str, str] = {
            "Authorization": f"Bearer {self._token}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        self._json_headers = {**self._headers, "Content-Type": "application/json"}
        self.segments = SegmentsResource(self)

    def __repr__(self) -> str:
        view = ", view" if self._view else ""
        return f"<SegmentsClient base_url={self._base_url!r} token='***'{view}>"

    @property
    def base_url(self) -> str:
        """The API's base URL, without a trailing slash."""
        return self._base_url

    @property
    def timeout(self) -> aiohttp.ClientTimeout:
        """The timeout of each attempt."""
        return self._timeout

    @property
    def retry(self) -> RetryPolicy:
        """The retry policy."""
        return self._retry

    @property
    def closed(self) -> bool:
        """True once the client (or the client this is a view of) has been closed."""
        return self._pool.closed

    def with_options(
        self,
        *,
        timeout: float | aiohttp.ClientTimeout | _NotGiven | None = NOT_GIVEN,
        retry: RetryPolicy | _NotGiven | None = NOT_GIVEN,
    ) -> SegmentsClient:
        """A view of this client with other options, sharing its pool and retry budget.

        Closing the view does nothing; closing the client it came from closes the pool.
        """
        view = object.__new__(SegmentsClient)
        view._base_url = self._base_url
        view._token = self._token
        view._headers = self._headers
        view._json_headers = self._json_headers
        view._pool = self._pool
        view._view = True
        view._timeout = (
            self._timeout if isinstance(timeout, _NotGiven) else _client_timeout(timeout)
        )
        view._retry = self._retry if isinstance(retry, _NotGiven) else _check_retry(retry)
        view.segments = SegmentsResource(view)
        return view

    async def aclose(self) -> None:
        """Close the connection pool (unless it was lent to the client). Idempotent.

        On a ``with_options`` view this does nothing: the pool is its parent's.
        """
        if not self._view:
            await self._pool.close()

    async def __aenter__(self) -> SegmentsClient:
        if self._pool.closed:
            raise RuntimeError("this SegmentsClient is closed; create a new one")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # ----------------------------------------------------------------------- sending

    async def _request(
        self,
        method: str,
        path: str,
        decode: Callable[[bytes], _T],
        body: bytes | None = None,
    ) -> _T:
        """Send one API call, retrying as the policy allows, and decode its answer."""
        session = self._pool.get()
        url_text = self._base_url + path
        url = URL(url_text, encoded=True)
        headers = self._headers if body is None else self._json_headers
        policy = self._retry
        budget = self._pool.budget
        loop = asyncio.get_running_loop()
        middlewares: tuple[ClientMiddlewareType, ...] | None = None
        sends = _SendCounter()
        if method == "DELETE":
            # aiohttp silently re-sends an idempotent request once when a pooled
            # connection turns out dead; a 404 after such a re-send may mean the first
            # send deleted it. Count the real sends to know.
            middlewares = (*getattr(session, "_middlewares", ()), sends)
        retries = 0
        last_cost: int | None = None
        maybe_acted = False  # an earlier attempt may have changed the server's state
        while True:
            started = loop.time()
            sends.count = 0
            failure: Failure
            status: int | None = None
            error: SegmentsError
            try:
                async with session.request(
                    method,
                    url,
                    data=body,
                    headers=headers,
                    timeout=self._timeout,
                    allow_redirects=False,
                    middlewares=middlewares,
                ) as response:
                    status = response.status
                    raw = await _read_body(response, method, url_text)
                    response_headers = response.headers
            except aiohttp.ClientError as exc:
                status = None  # a body cut short had a status, but no usable answer
                failure, error = _map_client_error(exc, method, url_text)
            except TimeoutError:
                status = None
                failure = Failure.TIMEOUT
                total = self._timeout.total
                error = APITimeoutError(
                    f"request timed out after {total}s" if total else "request timed out",
                    method=method,
                    url=url_text,
                )
            else:
                if logger.isEnabledFor(logging.DEBUG):
                    logger.debug(
                        "%s %s -> %d in %.1f ms (attempt %d)",
                        method,
                        path,
                        status,
                        (loop.time() - started) * 1000,
                        retries + 1,
                    )
                if status < 300 or status not in _retry.RETRYABLE_STATUSES:
                    if status == 404 and method == "DELETE" and (maybe_acted or sends.count > 1):
                        logger.debug("DELETE %s -> 404 after an unknown outcome: deleted", path)
                        budget.record_success(last_cost)
                        return decode(b"")
                    result = _decode.read_response(
                        decode,
                        method=method,
                        url=url_text,
                        status=status,
                        headers=response_headers,
                        body=raw,
                        now=time.time(),
                    )
                    budget.record_success(last_cost)
                    return result
                failure = Failure.STATUS
                error = _decode.status_error(
                    method=method,
                    url=url_text,
                    status=status,
                    headers=response_headers,
                    body=raw,
                    now=time.time(),
                )
            if status is None and logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "%s %s -> %s in %.1f ms (attempt %d)",
                    method,
                    path,
                    failure.value,
                    (loop.time() - started) * 1000,
                    retries + 1,
                )

            # ------------------------------------------------------------ retry or raise
            if sends.count > 1 or _retry.outcome_unknown(failure, status):
                maybe_acted = True
            reason = (
                _retry.retry_reason(policy, method, failure, status)
                if retries < policy.max_retries
                else None
            )
            if reason is None:
                raise error
            retry_after = _retry_after(error)
            delay = _retry.retry_delay(policy, retries, retry_after, _retry.default_draw())
            if delay is None:
                logger.warning(
                    "not retrying %s %s: the server asks to wait %.0fs, longer than "
                    "retry_after_max=%.0fs",
                    method,
                    path,
                    retry_after,
                    policy.retry_after_max,
                )
                raise error
            if failure is Failure.PROTOCOL:
                # A garbled answer is not a sign of load: try again at once.
                delay = 0.0
            cost = budget.acquire(failure)
            if cost is None:
                # Once per outage at WARNING, not once per failing call: an outage must
                # not also flood the logs.
                level = logging.DEBUG if self._pool.budget_spent else logging.WARNING
                self._pool.budget_spent = True
                logger.log(
                    level,
                    "not retrying %s %s after %s: the client's retry budget is spent",
                    method,
                    path,
                    reason,
                )
                raise error
            self._pool.budget_spent = False
            last_cost = cost
            retries += 1
            logger.warning(
                "retrying %s %s after %s in %.3fs (retry %d of %d)",
                method,
                path,
                reason,
                delay,
                retries,
                policy.max_retries,
            )
            await asyncio.sleep(delay)


class _SendCounter:
    """A per-request aiohttp middleware that counts the real sends of one request."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    async def __call__(self, request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        self.count += 1
        return await handler(request)


def _check_retry(retry: object) -> RetryPolicy:
    if retry is None:
        return RetryPolicy()
    if not isinstance(retry, RetryPolicy):
        raise TypeError(f"retry must be a RetryPolicy or None, got {type(retry).__name__}")
    return retry


def _retry_after(error: SegmentsError) -> float | None:
    if isinstance(error, RateLimitError):
        return error.retry_after
    if isinstance(error, APIStatusError):
        return _retry.parse_retry_after(error.headers.get("Retry-After"), time.time())
    return None


async def _read_body(response: ClientResponse, method: str, url: str) -> bytes:
    """The whole body, refusing one larger than ``MAX_RESPONSE_BYTES``.

    An uncompressed body with a Content-Length is read in one go (aiohttp reads exactly
    that many bytes); anything else is counted as it is inflated, so that a small gzip
    bomb cannot grow past the limit in memory.
    """
    limit = _wire.MAX_RESPONSE_BYTES
    length = response.content_length
    if length is not None:
        if length > limit:
            raise _too_large(response.status, method, url)
        if "Content-Encoding" not in response.headers:
            return await response.read()
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise _too_large(response.status, method, url)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(status: int, method: str, url: str) -> APIResponseValidationError:
    return APIResponseValidationError(
        f"response body larger than {_wire.MAX_RESPONSE_BYTES} bytes; not read",
        method=method,
        url=url,
        status_code=status,
    )


def _map_client_error(
    exc: aiohttp.ClientError, method: str, url: str
) -> tuple[Failure, SegmentsError]:
    """Our exception for aiohttp's, and how the attempt failed.

    The new exception is raised ``from`` aiohttp's, except for ``ClientResponseError``:
    its ``request_info`` holds the request headers, token included, and its ``repr``
    prints them, so it is left out of the chain altogether.
    """
    failure: Failure
    error: SegmentsError
    if isinstance(exc, aiohttp.ServerTimeoutError):
        connecting = isinstance(exc, aiohttp.ConnectionTimeoutError)
        failure = Failure.CONNECT if connecting else Failure.TIMEOUT
        error = APITimeoutError(
            "timed out connecting" if connecting else "timed out reading the response",
            method=method,
            url=url,
        )
    elif isinstance(exc, aiohttp.ClientSSLError | aiohttp.ServerFingerprintMismatch):
        # Certificate trouble does not go away by retrying, and must not be papered over.
        failure = Failure.STATUS  # with status None: never retried
        error = APIConnectionError(f"TLS failure: {exc}", method=method, url=url)
    elif isinstance(exc, aiohttp.ClientConnectorError):
        failure = Failure.CONNECT
        error = APIConnectionError(f"cannot connect: {exc.os_error}", method=method, url=url)
    elif isinstance(exc, aiohttp.ClientPayloadError):
        failure = Failure.TRUNCATED
        error = APIConnectionError("the response body was cut short", method=method, url=url)
    elif isinstance(exc, aiohttp.ClientResponseError):
        failure = Failure.PROTOCOL
        error = APIConnectionError(
            f"malformed HTTP response: {_first_line(exc.message)}", method=method, url=url
        )
        error.__cause__ = None
        error.__suppress_context__ = True
        return failure, error
    elif isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        failure = Failure.DISCONNECT
        error = APIConnectionError(
            "the server closed the connection before answering", method=method, url=url
        )
    else:
        failure = Failure.DISCONNECT
        error = APIConnectionError(
            f"connection failed: {type(exc).__name__}", method=method, url=url
        )
    error.__cause__ = exc
    return failure, error


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:200] if text.strip() else "unreadable"
