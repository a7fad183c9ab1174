"""``SegmentsClient``: its options, and the call loop (attempt, decide, wait, repeat).

Every decision is made elsewhere and without I/O: ``_retry.decide`` says whether to try
again and how long to wait, ``_decode`` reads answers, ``_flow`` says when a request may
start; ``_transport`` is the only aiohttp code. The loop here only puts them in order.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Final, TypeVar, final

import aiohttp
import attrs
from multidict import CIMultiDict, CIMultiDictProxy

from . import _decode, _retry
from ._bulk import backing_off
from ._errors import (
    APIStatusError,
    APITimeoutError,
    ClientClosedError,
    SegmentsError,
    _RequestError,
)
from ._fleet import Fleet, open_fleet
from ._flow import Flow, pace_of
from ._models import RequestEvent, ResponseEvent, RetryEvent
from ._options import (
    DEADLINE_SLACK,
    ClientOptions,
    RequestHeaders,
    check_base_url,
    check_session,
    check_token,
    cut_timeout,
    env_proxy,
)
from ._retry import Action, Call, Decision, Failure, Outcome, RetryBudget, RetryPolicy
from ._segments import SegmentsResource
from ._transport import Transport, held_back
from ._wire import check_positive_int

__all__ = ["SegmentsClient"]

logger: Final = logging.getLogger("segments_async")
# The logging HOWTO asks libraries for this: without it, an app that never configured
# logging would see our WARNINGs on stderr through logging's last-resort handler.
logger.addHandler(logging.NullHandler())

_T = TypeVar("_T")


#: What flow control learns from an attempt cancelled in flight: nothing about the load.
_ABANDONED: Final = Outcome(failure=Failure.CLOSED)


class _NotGiven:
    """Tells "not given" from ``None`` (which is a real value: no timeout, no deadline)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Final = _NotGiven()


class _Shared:
    """What a client and its ``with_options`` views share: one pool, budget and flow,
    and the fleet they belong to, if any."""

    __slots__ = (
        "base_url",
        "budget",
        "fleet",
        "flow",
        "garbled_deletes_logged",
        "token",
        "transport",
    )

    def __init__(
        self, base_url: str, token: str, transport: Transport, flow: Flow, fleet: Fleet | None
    ) -> None:
        self.base_url = base_url
        self.token = token
        self.transport = transport
        self.budget = RetryBudget()
        self.flow = flow
        # A server whose DELETE answers aiohttp cannot read says so once, not per delete.
        self.garbled_deletes_logged = False
        self.fleet = fleet
        if fleet is not None:
            fleet.share_budget(self.budget)

    def __repr__(self) -> str:
        return f"<_Shared base_url={self.base_url!r} token='***'>"


def _token_from(token: object) -> str:
    """The token argument, or $SEGMENTS_API_TOKEN, checked."""
    if token is None:
        token = os.environ.get("SEGMENTS_API_TOKEN") or None
    if token is None:
        raise ValueError("no API token: pass token='...' or set SEGMENTS_API_TOKEN")
    try:
        return check_token(token)
    finally:
        del token  # see SegmentsClient.__init__


@final
class SegmentsClient:
    """An asyncio client for the Segments API; its calls are on ``client.segments``.

    One client holds one connection pool: create it once (per app, per lifespan) and
    share it; it is safe to use from many tasks at once. Use it as ``async with`` or call
    ``await client.aclose()``. It may be created outside an event loop: its
    ``aiohttp.ClientSession`` is made on first use, in the loop that uses it.

    Example::

        async with SegmentsClient("https://api.example.com", token) as client:
            segment = await client.segments.create("EMEA")
            async for segment in client.segments.iterate(concurrency=8):
                print(segment.id, segment.name)

    Args:
        base_url: The API's base URL, e.g. ``"https://api.example.com"``; default:
            ``$SEGMENTS_BASE_URL``. ``http://`` is refused but for loopback hosts.
        token: The API token, sent as ``Authorization: Bearer ...`` to the base URL's
            origin only; default: ``$SEGMENTS_API_TOKEN``.
        timeout: Seconds per attempt (aiohttp's ``total``; a connection not made within
            90 % of it counts as never sent), an ``aiohttp.ClientTimeout``, or ``None``
            for none.
        retry: How failed calls are retried; ``None`` means ``RetryPolicy()``.
        max_connections: The size of the connection pool: at most this many requests in
            flight, the others wait for a connection in turn.
        session: An ``aiohttp.ClientSession`` to borrow: used, never closed. It must
            belong to the loop that makes the calls.
        allow_insecure_http: Allow ``http://`` to a host that is not loopback (the
            token then crosses the network in clear text).
        deadline: Seconds one whole call may take: the wait for a connection, every
            attempt and every backoff; ``None``: only ``timeout`` bounds each attempt.
        rate_limit: At most this many requests per second, client-wide, retries
            included; ``None``: no limit.
        event_hooks: Functions (plain or ``async``) by kind, ``{"request": [fn],
            "response": [fn], "retry": [fn]}``, called with a ``RequestEvent``,
            ``ResponseEvent`` or ``RetryEvent`` for every attempt; what they raise
            propagates to the caller.
        default_headers: Extra headers sent with every request (``User-Agent`` may be
            replaced; ``Authorization``, ``Accept``, ``Content-Type``, ``Host`` and the
            framing headers may not).
        fleet: A Redis URL (``redis://``, ``rediss://`` or ``unix://``) through which
            every client of the same API origin and token shares ``rate_limit`` (one
            quota) and the retry budget; default: ``$SEGMENTS_FLEET_URL``; ``None`` (or
            ``""``): this client's flow control is its own. Needs the ``fleet`` extra.

    Raises:
        ValueError: No base URL or token (neither argument nor environment variable);
            a token that cannot be a Bearer token; a base URL that is not an absolute
            ``http(s)`` URL, carries credentials, a query or a fragment, or is
            ``http://`` to a remote host without ``allow_insecure_http``; a ``timeout``,
            ``deadline``, ``rate_limit`` or ``max_connections`` that is not positive; an
            unknown hook kind; a reserved or malformed default header; a borrowed session
            that is closed or has ``trust_env=True``, ``auth=``, a proxy for ``http://``
            or framing headers; an ``HTTPS_PROXY`` that is not an ``http(s)`` URL; a
            ``fleet`` that is not a Redis URL.
        TypeError: An argument of the wrong type (a hook that is not callable, a
            ``retry`` that is not a ``RetryPolicy``, ...).
        ImportError: ``fleet`` without redis-py (``pip install 'segments-async[fleet]'``).
    """

    __slots__ = ("_headers", "_options", "_origin", "_owner", "_plain", "_shared", "segments")

    segments: SegmentsResource
    """The ``/v2.3/data/segments`` endpoints: list, iterate, create, update, delete, bulk.

    A ``SegmentsResource``: ``await client.segments.list()``, ``client.segments.iterate()``
    and so on; each call uses this client's (or view's) options.
    """

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
        deadline: float | None = None,
        rate_limit: float | None = None,
        event_hooks: Mapping[str, Iterable[Callable[[Any], object]]] | None = None,
        default_headers: Mapping[str, str] | None = None,
        fleet: str | None = None,
    ) -> None:
        # The token (and the fleet URL's password) is in none of this frame's locals when
        # an error leaves it: tools that record the locals of a traceback's frames would
        # record it.
        try:
            checked_token = _token_from(token)
        except BaseException:
            del fleet
            raise
        finally:
            del token
        try:
            if base_url is None:
                base_url = os.environ.get("SEGMENTS_BASE_URL") or None
            if base_url is None:
                raise ValueError(
                    "no base URL: pass base_url='https://...' or set SEGMENTS_BASE_URL"
                )
            if not isinstance(allow_insecure_http, bool):
                raise TypeError("allow_insecure_http must be a bool")
            checked_url = check_base_url(base_url, allow_insecure_http=allow_insecure_http)
            options = ClientOptions(
                timeout=timeout,
                retry=retry,
                deadline=deadline,
                event_hooks=event_hooks,
                default_headers=default_headers,
            )
            check_positive_int("max_connections", max_connections)
            if session is not None:
                check_session(session, checked_url)
            shared_fleet = open_fleet(fleet, checked_url, checked_token)
            rate = pace_of(rate_limit, None if shared_fleet is None else shared_fleet.quota)
            transport = Transport(
                session=session,
                max_connections=max_connections,
                proxy=env_proxy(checked_url),
                rate=rate,
            )
            flow = Flow(rate=rate, max_connections=transport.max_connections)
            if shared_fleet is not None:
                flow.share(shared_fleet.limit(flow))
            shared = _Shared(checked_url, checked_token, transport, flow, shared_fleet)
        finally:
            del checked_token, fleet
        self._setup(shared, options, origin=None)

    def _setup(
        self, shared: _Shared, options: ClientOptions, *, origin: SegmentsClient | None
    ) -> None:
        """Every field of a client or a view is set here, and only here.

        ``origin`` is the client a view was made from (None for the client itself): a view
        keeps it alive, so that its finalizer never closes a pool that a view still uses.
        """
        self._shared = shared
        self._options = options
        self._origin = origin
        self._owner = origin is None
        self._headers = RequestHeaders(shared.token, options.default_headers)
        # Nothing but the send itself to do around an attempt (see _request).
        self._plain = not (options.event_hooks or options.deadline is not None)
        self.segments = SegmentsResource(self._request, shared.flow, shared.base_url)

    def __repr__(self) -> str:
        view = "" if self._owner else ", view"
        fleet = self._shared.fleet
        shared = "" if fleet is None else f" fleet={fleet.url!r}"
        return f"<SegmentsClient base_url={self._shared.base_url!r} token='***'{shared}{view}>"

    @property
    def base_url(self) -> str:
        """The API's base URL, normalised: without a trailing slash (e.g. ``https://api.example.com``)."""
        return self._shared.base_url

    @property
    def timeout(self) -> aiohttp.ClientTimeout:
        """The timeout of each attempt, as an ``aiohttp.ClientTimeout``.

        A float given as ``timeout=`` is its ``total``; ``timeout=None`` is
        ``ClientTimeout(total=None)``. The wait for a pooled connection is not part of it.
        """
        return self._options.timeout

    @property
    def retry(self) -> RetryPolicy:
        """The ``RetryPolicy`` of this client or view (``RetryPolicy()`` unless one was given).

        It says how many times a failed call is retried, how long the backoff is, and
        whether a POST whose outcome is unknown may be sent again.
        """
        return self._options.retry

    @property
    def deadline(self) -> float | None:
        """Seconds one call may take in all (connection wait, attempts, backoffs), or ``None``."""
        return self._options.deadline

    @property
    def rate_limit(self) -> float | None:
        """The client-wide ceiling on requests per second (retries included), or ``None``."""
        return self._shared.flow.rate_limit

    @property
    def fleet(self) -> str | None:
        """The Redis URL (without its password) of the fleet this client is part of, or
        None when its flow control is its own."""
        fleet = self._shared.fleet
        return None if fleet is None else fleet.url

    @property
    def max_connections(self) -> int:
        """How many requests may be in flight at once, client-wide: the pool's size.

        A borrowed session's connector limits (``limit``, ``limit_per_host``) lower it.
        """
        return self._shared.transport.max_connections

    @property
    def event_hooks(self) -> dict[str, list[Callable[[Any], object]]]:
        """A copy of the event hooks, by kind: ``{"request": [...], "response": [...], ...}``.

        All three kinds are keys. Changing the copy changes nothing; use
        ``with_options(event_hooks=...)``.
        """
        hooks = self._options.event_hooks
        return {"request": [*hooks.request], "response": [*hooks.response], "retry": [*hooks.retry]}

    @property
    def default_headers(self) -> dict[str, str]:
        """A copy of the extra headers sent with every request (``default_headers=``).

        Changing the copy changes nothing; use ``with_options(default_headers=...)``.
        """
        return dict(self._options.default_headers)

    @property
    def closed(self) -> bool:
        """True once the client (or the client this is a view of) has been closed.

        A closed client cannot be used again: its calls raise ``ClientClosedError``.
        """
        return self._shared.transport.closed

    def with_options(
        self,
        *,
        timeout: float | aiohttp.ClientTimeout | _NotGiven | None = NOT_GIVEN,
        retry: RetryPolicy | _NotGiven | None = NOT_GIVEN,
        deadline: float | _NotGiven | None = NOT_GIVEN,
        event_hooks: Mapping[str, Iterable[Callable[[Any], object]]] | _NotGiven | None = NOT_GIVEN,
        default_headers: Mapping[str, str] | _NotGiven | None = NOT_GIVEN,
    ) -> SegmentsClient:
        """A view of this client with other options, sharing its pool, budget and flow.

        Only the options given change; each means what it means for ``SegmentsClient``.
        Closing the view does nothing; closing the client it came from closes the pool.

        Example::

            quick = client.with_options(timeout=5, retry=RetryPolicy(max_retries=0))
            page = await quick.segments.list()

        Args:
            timeout: Seconds per attempt, an ``aiohttp.ClientTimeout``, or ``None`` for
                none.
            retry: A ``RetryPolicy``; ``None`` means ``RetryPolicy()``.
            deadline: Seconds one whole call may take, or ``None`` for no deadline.
            event_hooks: Hooks by kind; they replace all of this client's hooks (kinds not
                given then have none); ``None`` removes them.
            default_headers: Headers merged over this client's (a header of the same name,
                in any case, is replaced); ``None`` drops them all.

        Returns:
            A new ``SegmentsClient`` view; this client is unchanged.

        Raises:
            ValueError: A ``timeout`` or ``deadline`` that is not positive, an unknown hook
                kind, or a reserved or malformed header.
            TypeError: An option of the wrong type.
        """
        given = {
            "timeout": timeout,
            "retry": retry,
            "deadline": deadline,
            "event_hooks": event_hooks,
        }
        changes: dict[str, Any] = {k: v for k, v in given.items() if v is not NOT_GIVEN}
        if not isinstance(default_headers, _NotGiven):
            changes["default_headers"] = _merge_headers(
                self._options.default_headers, default_headers
            )
        view = SegmentsClient.__new__(SegmentsClient)
        origin = self if self._origin is None else self._origin
        view._setup(self._shared, attrs.evolve(self._options, **changes), origin=origin)
        return view

    async def aclose(self) -> None:
        """Close the connection pool (unless it was lent to the client). Idempotent.

        Calls in progress, waiting or in flight, end with ``ClientClosedError``, and so do
        calls made afterwards. On a ``with_options`` view this does nothing: the pool is
        its parent's. After the event loop of the pool has ended (an ``asyncio.run()``
        returned), it closes what is left without error.

        Raises:
            RuntimeError: Called from another event loop than the pool's while that loop
                is still running: the pool stays open; close it in its own loop.
        """
        if self._owner:
            await self._shared.transport.aclose()
            if self._shared.fleet is not None:
                await self._shared.fleet.aclose()

    def __del__(self, _warn: Callable[..., object] = warnings.warn) -> None:
        # Garbage-collected with its pool open: close the sockets now (nothing may be
        # scheduled on a loop from here) and say so once, naming the client and, under
        # ``python -X tracemalloc``, where it was created (``source``), instead of the
        # anonymous "Unclosed client session" and "Unclosed connector" of aiohttp.
        try:
            owner, transport = self._owner, self._shared.transport
        except AttributeError:  # __init__ raised: nothing was opened
            return
        fleet = self._shared.fleet
        if owner and fleet is not None:
            fleet.abandon()
        if owner and transport.abandon():
            _warn(
                f"unclosed {self!r}: use 'async with SegmentsClient(...)' or "
                "'await client.aclose()'",
                ResourceWarning,
                source=self,
            )

    async def __aenter__(self) -> SegmentsClient:
        """The client itself; ``RuntimeError`` if it is closed already."""
        if self.closed:
            raise RuntimeError("this SegmentsClient is closed; create a new one")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the client (``aclose()``)."""
        await self.aclose()

    # ----------------------------------------------------------------------- the call loop

    async def _request(
        self,
        method: str,
        path: str,
        decode: Callable[[bytes], _T],
        body: bytes | None = None,
        *,
        adaptive: bool = False,
    ) -> _T:
        """One API call: attempt, decide, wait, repeat; then the answer or the error."""
        transport = self._shared.transport
        call = Call(method, path)
        url = self._shared.base_url + path
        deadline = self._options.deadline
        until = None if deadline is None else asyncio.get_running_loop().time() + deadline
        # No hooks or deadline: the attempt is the send itself, through the adaptive limit
        # for "auto" when a place is free at once (the hot path: no coroutine between the
        # call and the transport, which every answer would resume).
        plain = self._plain
        flow = self._shared.flow
        task = transport.enter()
        try:
            while True:
                if plain:
                    call.attempts += 1
                    ticket = flow.try_admit() if adaptive else None
                    if adaptive and ticket is None:  # waits for a place, or a pace
                        outcome = await self._send(call, url, body, None, adaptive)
                    else:
                        try:
                            outcome = await transport.send(
                                method,
                                url,
                                self._headers,
                                body,
                                attempt_timeout=self._options.wire_timeout,
                                until=None,
                            )
                        except BaseException:
                            if ticket is not None:
                                flow.done(ticket, _ABANDONED)  # the place goes back
                            raise
                        if ticket is not None:
                            flow.done(ticket, outcome)
                else:
                    outcome = await self._attempt(call, url, body, until, adaptive)
                decision = self._decide(call, outcome, until)
                if decision.action is not Action.RETRY:
                    break
                if adaptive:
                    flow.backing_off(decision.delay)  # the window covers what is sent meanwhile
                    backing_off()  # its place is free meanwhile: a bulk worker may take it
                await self._back_off(call, url, outcome, decision)
        except asyncio.CancelledError:
            if not transport.closed_under(task):
                raise
            # aclose() ended the call while it waited (for flow control, a hook, a backoff).
            outcome = Outcome(failure=Failure.CLOSED, error=_closed_error(method, url), sent=False)
            decision = Decision(Action.RAISE)
        finally:
            transport.leave(task)
        return self._conclude(call, url, outcome, decision, decode)

    async def _attempt(
        self, call: Call, url: str, body: bytes | None, until: float | None, adaptive: bool
    ) -> Outcome:
        """Emit the request event, wait for flow control, send, emit the response event."""
        call.attempts += 1
        hooks = self._options.event_hooks
        if hooks.request:
            await _emit(hooks.request, RequestEvent(call.method, url, call.attempts))
        outcome = await self._send(call, url, body, until, adaptive)
        if hooks.response:
            await _emit(hooks.response, _response_event(call, url, outcome))
        return outcome

    async def _send(
        self, call: Call, url: str, body: bytes | None, until: float | None, adaptive: bool
    ) -> Outcome:
        """Wait for flow control, mind the deadline, then send; held back past the deadline
        is an outcome too."""
        flow = self._shared.flow
        ticket = None
        if adaptive:
            ticket = flow.try_admit() or await flow.admit(until=until)
            if ticket is None:
                held_by = (
                    "no request slot came free before the call's deadline "
                    f"(adaptive limit {flow.adaptive.limit})"
                )
                return held_back(f"{held_by}; nothing was sent", call.method, url)
        if until is not None and until - asyncio.get_running_loop().time() <= DEADLINE_SLACK:
            # The hooks or the flow control took the time: sending now could not finish.
            if ticket is not None:
                flow.done(ticket, _ABANDONED)
            what = "the call's deadline ran out before sending; nothing was sent"
            return held_back(what, call.method, url)
        try:
            outcome = await self._shared.transport.send(
                call.method,
                url,
                self._headers,
                body,
                attempt_timeout=self._attempt_timeout(until),
                until=until,
            )
        except BaseException:
            if ticket is not None:
                flow.done(ticket, _ABANDONED)  # cancelled in flight: the place goes back
            raise
        if ticket is not None:
            flow.done(ticket, outcome)
        return outcome

    def _attempt_timeout(self, until: float | None) -> aiohttp.ClientTimeout:
        timeout = self._options.wire_timeout
        if until is None:
            return timeout
        return cut_timeout(timeout, until, asyncio.get_running_loop().time())

    def _decide(self, call: Call, outcome: Outcome, until: float | None) -> Decision:
        if logger.isEnabledFor(logging.DEBUG):
            _log_attempt(call, outcome)
        remaining = None
        if until is not None:
            remaining = until - asyncio.get_running_loop().time()
            if remaining <= DEADLINE_SLACK:
                remaining = 0.0
        decision = _retry.decide(
            self._options.retry,
            self._shared.budget,
            call,
            outcome,
            draw=_retry.default_draw(),
            now=time.time(),
            remaining=remaining,
        )
        level = decision.log_level
        if level is not None and logger.isEnabledFor(level):
            _log_decision(level, call, outcome, decision)
        if decision.action is Action.DELETED and call.garbled:
            self._log_garbled_deletes(call)
        return decision

    def _log_garbled_deletes(self, call: Call) -> None:
        shared = self._shared
        if shared.garbled_deletes_logged:
            return
        shared.garbled_deletes_logged = True
        logger.warning(
            "%s %s: this server's answers to DELETE cannot be read (a 204 with a body, as "
            "in the API's spec, which aiohttp rejects), so every DELETE costs a second "
            "request, whose 404 confirms it; said once per client",
            call.method,
            call.path,
            extra=_fields(call, reason=Failure.PROTOCOL.value),
        )

    async def _back_off(self, call: Call, url: str, outcome: Outcome, decision: Decision) -> None:
        hooks = self._options.event_hooks.retry
        if hooks:
            error = _attempt_error(call, url, outcome)
            event = RetryEvent(
                call.method, url, call.attempts, decision.reason, decision.delay, error
            )
            await _emit(hooks, event)
        await asyncio.sleep(decision.delay)

    def _conclude(
        self,
        call: Call,
        url: str,
        outcome: Outcome,
        decision: Decision,
        decode: Callable[[bytes], _T],
    ) -> _T:
        """The answer's model, or the error that ends the call."""
        if decision.action is Action.DELETED:
            return decode(b"")
        if decision.action is Action.ANSWER:
            status = outcome.status
            assert status is not None
            if status < 200 or status >= 300:
                raise _with_outcome(_attempt_error(call, url, outcome), call, outcome)
            try:
                return _decode.read_response(
                    decode,
                    method=call.method,
                    url=url,
                    status=status,
                    headers=outcome.headers,
                    body=outcome.body,
                    now=time.time(),
                )
            except _RequestError as error:
                # A 2xx that cannot be read was still carried out (a create did create),
                # unless its envelope says it failed.
                unsuccessful = isinstance(error, APIStatusError)
                error.outcome_unknown = call.method != "GET" and not unsuccessful
                if error.outcome_unknown:
                    _log_unknown(call, outcome, error)
                raise
        failed = _attempt_error(call, url, outcome)
        # A wait for a connection (or a request slot) is no attempt; its error names the
        # deadline and what held the call up, and alone it is the whole story.
        made = call.attempts - (outcome.failure is Failure.QUEUE_TIMEOUT)
        if decision.deadline and made:
            expired = APITimeoutError(
                f"the call's deadline of {self._options.deadline:g}s ran out after "
                f"{made} attempt{'s' if made > 1 else ''} ({failed.message})",
                method=call.method,
                url=url,
            )
            expired.__cause__ = failed
            failed = expired
        raise _with_outcome(failed, call, outcome)


def _closed_error(method: str, url: str) -> SegmentsError:
    return ClientClosedError("the client was closed during the call", method=method, url=url)


def _attempt_error(call: Call, url: str, outcome: Outcome) -> SegmentsError:
    """The error an attempt's outcome means (a failure's own, or the status's)."""
    if outcome.error is not None:
        return outcome.error
    assert outcome.status is not None
    return _decode.status_error(
        method=call.method,
        url=url,
        status=outcome.status,
        headers=outcome.headers,
        body=outcome.body,
        now=time.time(),
    )


def _with_outcome(error: SegmentsError, call: Call, outcome: Outcome) -> SegmentsError:
    if call.method != "GET" and call.maybe_acted and isinstance(error, _RequestError):
        error.outcome_unknown = True
        _log_unknown(call, outcome, error)
    return error


def _response_event(call: Call, url: str, outcome: Outcome) -> ResponseEvent:
    return ResponseEvent(
        call.method,
        url,
        call.attempts,
        outcome.status if outcome.failure is None else None,
        # A read-only copy: it outlives the response, and no hook can change what the
        # next one sees.
        CIMultiDictProxy(CIMultiDict(outcome.headers)),
        outcome.elapsed,
        outcome.error,
    )


async def _emit(hooks: tuple[Callable[[Any], object], ...], event: object) -> None:
    for hook in hooks:
        result = hook(event)
        if inspect.isawaitable(result):
            await result


# --------------------------------------------------------------------------- logging
# Every record is a template with arguments (handlers and error trackers group by it), and
# carries the call in ``extra`` as segments_* fields for structured (JSON) logging. They
# are built only for a level that is enabled.


def _fields(call: Call, outcome: Outcome | None = None, **more: object) -> dict[str, object]:
    """The structured fields of a record about ``call`` (and its latest ``outcome``)."""
    fields: dict[str, object] = {
        "segments_method": call.method,
        "segments_path": call.path,
        "segments_attempt": call.attempts,
    }
    if outcome is not None:
        failure = outcome.failure
        fields["segments_status"] = outcome.status
        fields["segments_failure"] = None if failure is None else failure.value
        fields["segments_elapsed_ms"] = round(outcome.elapsed * 1000, 3)
        if call.method != "GET":
            fields["segments_outcome_unknown"] = _retry.outcome_unknown(outcome)
    for name, value in more.items():
        fields[f"segments_{name}"] = value
    return fields


def _log_attempt(call: Call, outcome: Outcome) -> None:
    result = outcome.failure.value if outcome.failure is not None else outcome.status
    logger.debug(
        "%s %s -> %s in %.1f ms (attempt %d)",
        call.method,
        call.path,
        result,
        outcome.elapsed * 1000,
        call.attempts,
        extra=_fields(call, outcome),
    )


def _log_decision(level: int, call: Call, outcome: Outcome, decision: Decision) -> None:
    more: dict[str, object] = {"reason": decision.reason}
    if decision.action is Action.RETRY:
        more["delay"] = decision.delay
    logger.log(
        level, decision.log_template, *decision.log_args, extra=_fields(call, outcome, **more)
    )


def _log_unknown(call: Call, outcome: Outcome, error: SegmentsError) -> None:
    """A write failed after the server may have carried it out: the caller must reconcile."""
    if logger.isEnabledFor(logging.WARNING):
        logger.warning(
            "%s %s failed, but the server may have carried it out (outcome unknown): %s",
            call.method,
            call.path,
            error.message,
            extra=_fields(call, outcome, outcome_unknown=True, error=type(error).__name__),
        )


def _merge_headers(
    current: tuple[tuple[str, str], ...], new: Mapping[str, str] | None
) -> tuple[tuple[str, str], ...] | Mapping[str, str] | None:
    if new is None or not current or not isinstance(new, Mapping):
        return new  # the option's converter says what is wrong with anything odd
    replaced = {str(name).lower() for name in new}
    kept = {name: value for name, value in current if name.lower() not in replaced}
    return {**kept, **new}
