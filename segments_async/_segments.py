"""The segments resource: CRUD, pagination and bulk work over ``/v2.3/data/segments``.

It talks to the client through the small ``Requester`` protocol (one call, with retries)
and reads the adaptive limit through ``Window``: it never sees the client's privates, so
it can be tested against fakes of both.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import uuid
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
)
from typing import Any, Final, Literal, Protocol, TypeVar, final

from . import _decode, _wire
from ._bulk import bulk_results
from ._errors import APIResponseValidationError
from ._models import BulkResult, Segment, SegmentPage
from ._paging import PageError, Pages

__all__ = ["Concurrency", "Requester", "SegmentsResource", "Window"]

logger = logging.getLogger("segments_async")

_T = TypeVar("_T")
_I = TypeVar("_I")

#: A page fetched ahead is decoded when the iteration reaches it (``_list_unread``).
_PAGE_LATER: Final = _decode.Later(_decode.decode_segment_page)

#: The inputs' types, so that each ``BulkResult.input`` has the type of what was given.
_Name = TypeVar("_Name", bound=str)
_Id = TypeVar("_Id", bound="str | uuid.UUID")
_Change = TypeVar("_Change", bound="tuple[str | uuid.UUID, str]")

#: A fixed number of requests in flight, or ``"auto"`` to let the client learn it.
Concurrency = int | Literal["auto"]


class Requester(Protocol):
    """One API call, retried as the client's policy says: the client's ``_request``.

    It sends ``method`` to ``path`` (with ``body``), retries as the policy allows, and
    returns ``decode(body)`` of the answer or raises the call's ``SegmentsError``;
    ``adaptive`` puts the request under the client's adaptive limit (``"auto"``).
    """

    def __call__(
        self,
        method: str,
        path: str,
        decode: Callable[[bytes], _T],
        body: bytes | None = None,
        *,
        adaptive: bool = False,
    ) -> Coroutine[Any, Any, _T]: ...


class Window(Protocol):
    """How many pages or items an ``"auto"`` operation may hold (the client's ``Flow``)."""

    max_connections: int

    def auto_window(self) -> int:
        """How many pages or items an ``"auto"`` operation may hold in flight or done."""
        ...

    def spare(self) -> int:
        """Places free at the adaptive limit beyond those waited for (negative: fewer)."""
        ...

    def widened(self) -> asyncio.Future[None]:
        """Done once ``auto_window`` is more than twice the pool (done already if it is)."""
        ...


def _check_inputs(name: str, inputs: object) -> None:
    """An iterable or async iterable of inputs, and not a string (an iterable of letters)."""
    if isinstance(inputs, str | bytes) or not isinstance(inputs, Iterable | AsyncIterable):
        raise TypeError(
            f"{name} must be an iterable or async iterable of inputs, got {type(inputs).__name__}"
        )


def check_concurrency(value: object) -> Concurrency:
    """``concurrency`` as an int >= 1 or ``"auto"``."""
    if value == "auto" and isinstance(value, str):
        return "auto"
    if isinstance(value, str):
        # "auto" is a str: another str is a wrong value, not a wrong type.
        raise ValueError(f"concurrency must be an int >= 1 or 'auto', got {value!r}")  # noqa: TRY004
    return _wire.check_positive_int("concurrency", value)


@final
class SegmentsResource:
    """``client.segments``: list, iterate, create, update and delete segments, one or many.

    Every call uses the options of the client (or ``with_options`` view) it came from:
    its timeout, retry policy, deadline, hooks and headers. Arguments are checked before
    anything is sent: a ``segment_id`` that is not a UUID, a ``page``, ``per_page`` or
    ``concurrency`` below 1 is a ``ValueError``; a name that is not a ``str`` or a
    number that is not an ``int`` is a ``TypeError``.

    Example::

        page = await client.segments.list(page=1, per_page=20)
        segment = await client.segments.create("EMEA")
        segment = await client.segments.update(segment.id, "Central Europe")
        await client.segments.delete(segment.id)
    """

    __slots__ = ("_base_url", "_request", "_window")

    def __init__(self, request: Requester, window: Window, base_url: str) -> None:
        """Made by ``SegmentsClient``, which is how to get one: ``client.segments``.

        Args:
            request: The client's call: one request, retried as its policy says.
            window: The client's flow control, for ``concurrency="auto"``.
            base_url: The client's base URL, for the URLs in error messages.
        """
        self._request = request
        self._window = window
        self._base_url = base_url

    async def list(self, page: int = 1, per_page: int = 20) -> SegmentPage:
        """One page of the tenant's segments: ``GET /v2.3/data/segments``.

        Args:
            page: The page's number, from 1.
            per_page: Segments per page; the server may clamp it (the API to 100).

        Returns:
            The ``SegmentPage``, with the server's ``per_page``, ``last_page`` and ``total``.

        Raises:
            AuthenticationError: The token was refused (401).
            PermissionDeniedError: The token may not do this (403).
            RateLimitError: 429 once the retries are spent, or with a ``Retry-After`` over
                the policy's ``retry_after_max``.
            InternalServerError: A 5xx once the retries are spent.
            APIStatusError: Any other error answer (the classes above are subclasses).
            APITimeoutError: An attempt timed out once the retries are spent, or the
                client's ``deadline`` ran out.
            APIConnectionError: No usable answer once the retries are spent (the
                connection failed or was lost, the body was cut short).
            APIResponseValidationError: The answer could not be read.
            ClientClosedError: The client was closed before or during the call.
            RuntimeError: The client's pool belongs to another event loop, still running.
            ValueError: ``page`` or ``per_page`` is below 1 (nothing is sent).
            TypeError: ``page`` or ``per_page`` is not an ``int`` (nothing is sent).
        """
        return await self._list(_wire.list_query(page, per_page))

    def _list(self, query: str, *, adaptive: bool = False) -> Coroutine[Any, Any, SegmentPage]:
        path = f"{_wire.SEGMENTS_PATH}?{query}"
        return self._request("GET", path, _decode.decode_segment_page, adaptive=adaptive)

    def _list_unread(
        self, query: str, *, adaptive: bool = False
    ) -> Coroutine[Any, Any, _decode.Unread[SegmentPage]]:
        """``_list`` for a page fetched ahead: its answer, decoded when the iteration
        reaches it (``Unread.read()``), which raises what ``_list`` would have."""
        path = f"{_wire.SEGMENTS_PATH}?{query}"
        return self._request("GET", path, _PAGE_LATER, adaptive=adaptive)

    async def create(self, name: str) -> Segment:
        """Create a segment: ``POST /v2.3/data/segments``.

        Not retried once the server may have acted on it (unless the client's
        ``RetryPolicy(retry_post=True)`` accepts the risk of a duplicate): then the error
        has ``outcome_unknown=True``, and the segment may exist. Reconcile (look for the
        name) before creating it again.

        Args:
            name: The new segment's name; whether it is acceptable (empty, too long) is the
                server's call.

        Returns:
            The created ``Segment``, with the id the server gave it.

        Raises:
            UnprocessableEntityError: The server refused the name (422), e.g. an empty one.
            AuthenticationError: The token was refused (401).
            PermissionDeniedError: The token may not do this (403).
            RateLimitError: 429 once the retries are spent, or with a ``Retry-After`` over
                the policy's ``retry_after_max``.
            InternalServerError: A 5xx once the retries are spent.
            APIStatusError: Any other error answer (the classes above are subclasses).
            APITimeoutError: An attempt timed out once the retries are spent, or the
                client's ``deadline`` ran out.
            APIConnectionError: No usable answer once the retries are spent (the
                connection failed or was lost, the body was cut short).
            APIResponseValidationError: The answer could not be read.
            ClientClosedError: The client was closed before or during the call.
            RuntimeError: The client's pool belongs to another event loop, still running.
            TypeError: ``name`` is not a ``str`` (nothing is sent).
            ValueError: ``name`` cannot be encoded as JSON (a lone surrogate; nothing is
                sent).
        """
        body = _wire.name_body(name)
        return await self._request("POST", _wire.SEGMENTS_PATH, _decode.decode_segment, body)

    async def update(self, segment_id: str | uuid.UUID, name: str) -> Segment:
        """Rename a segment: ``PUT /v2.3/data/segments/{segment_id}``.

        Retried like any idempotent call. An error after the request may have reached the
        server has ``outcome_unknown=True``: the rename may have happened.

        Args:
            segment_id: The segment's UUID, a ``str`` in the 8-4-4-4-12 form or a
                ``uuid.UUID``.
            name: The new name.

        Returns:
            The renamed ``Segment``.

        Raises:
            NotFoundError: No segment of this tenant has this id (404).
            UnprocessableEntityError: The server refused the name (422), e.g. an empty one.
            AuthenticationError: The token was refused (401).
            PermissionDeniedError: The token may not do this (403).
            RateLimitError: 429 once the retries are spent, or with a ``Retry-After`` over
                the policy's ``retry_after_max``.
            InternalServerError: A 5xx once the retries are spent.
            APIStatusError: Any other error answer (the classes above are subclasses).
            APITimeoutError: An attempt timed out once the retries are spent, or the
                client's ``deadline`` ran out.
            APIConnectionError: No usable answer once the retries are spent (the
                connection failed or was lost, the body was cut short).
            APIResponseValidationError: The answer could not be read.
            ClientClosedError: The client was closed before or during the call.
            RuntimeError: The client's pool belongs to another event loop, still running.
            ValueError: ``segment_id`` is not a UUID, or ``name`` cannot be encoded as JSON
                (nothing is sent).
            TypeError: ``name`` is not a ``str`` (nothing is sent).
        """
        path = _wire.segment_path(segment_id)
        body = _wire.name_body(name)
        return await self._request("PUT", path, _decode.decode_segment, body)

    async def delete(self, segment_id: str | uuid.UUID) -> None:
        """Delete a segment: ``DELETE /v2.3/data/segments/{segment_id}``.

        A retry that finds the segment gone (404) after a send whose outcome was unknown
        counts as success: that send deleted it.

        Args:
            segment_id: The segment's UUID, a ``str`` in the 8-4-4-4-12 form or a
                ``uuid.UUID``.

        Raises:
            NotFoundError: No segment of this tenant has this id (404), and no earlier
                attempt of this call may have deleted it.
            AuthenticationError: The token was refused (401).
            PermissionDeniedError: The token may not do this (403).
            RateLimitError: 429 once the retries are spent, or with a ``Retry-After`` over
                the policy's ``retry_after_max``.
            InternalServerError: A 5xx once the retries are spent.
            APIStatusError: Any other error answer (the classes above are subclasses).
            APITimeoutError: An attempt timed out once the retries are spent, or the
                client's ``deadline`` ran out.
            APIConnectionError: No usable answer once the retries are spent (the
                connection failed or was lost, the body was cut short).
            APIResponseValidationError: The answer could not be read.
            ClientClosedError: The client was closed before or during the call.
            RuntimeError: The client's pool belongs to another event loop, still running.
            ValueError: ``segment_id`` is not a UUID (nothing is sent).
        """
        path = _wire.segment_path(segment_id)
        await self._request("DELETE", path, _decode.decode_delete)

    # ----------------------------------------------------------------------- bulk

    def create_many(
        self,
        names: Iterable[_Name] | AsyncIterable[_Name],
        *,
        concurrency: Concurrency = 16,
        ordered: bool = True,
    ) -> AsyncGenerator[BulkResult[Segment, _Name], None]:
        """Create a segment per name; a ``BulkResult`` per name.

        Example::

            unknown: list[str] = []
            async with contextlib.aclosing(client.segments.create_many(names)) as results:
                async for result in results:
                    if result.ok:
                        print(result.index, result.value.id)
                    elif result.outcome_unknown:
                        unknown.append(result.input)  # it may exist: reconcile
                    else:
                        print(result.index, "failed:", result.error)

        Args:
            names: Any iterable or async iterable of names, consumed lazily: at most about
                twice ``concurrency`` names and results are held. A plain iterable is pulled
                on the event loop, so it must not block (see the README's bulk section).
            concurrency: Creates in flight at once, or ``"auto"`` to let the client's
                adaptive limit decide (it holds twice ``max_connections`` names and
                results, and while a request waits out a backoff up to 16 times
                ``max_connections``: paced, what the pace sends in it besides the pool).
            ordered: ``True``: results in input order. ``False``: results as they finish
                (each carries its ``index``), so that one slow create holds back nothing.

        Yields:
            A ``BulkSuccess`` (``value`` is the created ``Segment``) or a ``BulkFailure``
            per name. A name refused before sending (not a ``str``) fails only itself with
            its ``TypeError``; a create that failed after it may have reached the server
            has ``outcome_unknown=True``: the segment may exist. No name is sent twice
            unless the client's ``RetryPolicy(retry_post=True)`` says so.

        Raises:
            AuthenticationError: The token was refused (401): nothing more is sent, and
                it is raised once the results of the creates in flight are yielded.
            PermissionDeniedError: Likewise for a 403.
            ClientClosedError: Likewise when the client is closed during the operation.
            RuntimeError: The client's pool belongs to another event loop, still running
                (raised at once, the creates in flight cancelled; so is an exception raised
                by an event hook or by the iteration of ``names``).
            TypeError: ``names`` is not an iterable, ``concurrency`` is neither an ``int``
                nor ``"auto"``, or ``ordered`` is not a ``bool`` (raised by the call
                itself, before anything is sent).
            ValueError: ``concurrency`` is below 1 or a ``str`` other than ``"auto"``
                (likewise).
        """
        checked = check_concurrency(concurrency)
        _check_inputs("names", names)
        adaptive = checked == "auto"

        def create(name: _Name) -> Coroutine[Any, Any, Segment]:
            body = _wire.name_body(name)  # a refused name raises here, before any call
            path = _wire.SEGMENTS_PATH
            return self._request("POST", path, _decode.decode_segment, body, adaptive=adaptive)

        return self._bulk(names, create, checked, ordered)

    def update_many(
        self,
        changes: Iterable[_Change] | AsyncIterable[_Change],
        *,
        concurrency: Concurrency = 16,
        ordered: bool = True,
    ) -> AsyncGenerator[BulkResult[Segment, _Change], None]:
        """Rename segments from ``(segment_id, name)`` pairs; a ``BulkResult`` per pair.

        Args:
            changes: Any iterable or async iterable of ``(segment_id, name)`` pairs,
                consumed lazily, as ``create_many`` consumes names.
            concurrency: Renames in flight at once, or ``"auto"``.
            ordered: ``True``: results in input order; ``False``: as they finish.

        Yields:
            A ``BulkSuccess`` (``value`` is the renamed ``Segment``) or a ``BulkFailure``
            per pair. A pair refused before sending (not a pair, a bad id, a name that is
            not a ``str``) fails only itself; a rename that failed after it may have been
            carried out has ``outcome_unknown=True``.

        Raises:
            AuthenticationError: As for ``create_many``.
            PermissionDeniedError: As for ``create_many``.
            ClientClosedError: As for ``create_many``.
            RuntimeError: As for ``create_many``.
            TypeError: ``changes`` is not an iterable, or ``concurrency`` or ``ordered``
                is of the wrong type (raised by the call itself).
            ValueError: ``concurrency`` is below 1 or not ``"auto"`` (likewise).
        """
        checked = check_concurrency(concurrency)
        _check_inputs("changes", changes)
        adaptive = checked == "auto"

        def update(change: _Change) -> Coroutine[Any, Any, Segment]:
            if not isinstance(change, tuple | list) or len(change) != 2:
                raise TypeError(
                    f"each change must be a (segment_id, name) pair, got {_wire.short_repr(change)}"
                )
            segment_id, name = change
            path = _wire.segment_path(segment_id)
            body = _wire.name_body(name)
            return self._request("PUT", path, _decode.decode_segment, body, adaptive=adaptive)

        return self._bulk(changes, update, checked, ordered)

    def delete_many(
        self,
        segment_ids: Iterable[_Id] | AsyncIterable[_Id],
        *,
        concurrency: Concurrency = 16,
        ordered: bool = True,
    ) -> AsyncGenerator[BulkResult[None, _Id], None]:
        """Delete segments by id; a ``BulkResult`` per id.

        Args:
            segment_ids: Any iterable or async iterable of ids (``str`` or ``uuid.UUID``),
                consumed lazily, as ``create_many`` consumes names.
            concurrency: Deletes in flight at once, or ``"auto"``.
            ordered: ``True``: results in input order; ``False``: as they finish.

        Yields:
            A ``BulkSuccess`` (``value`` is ``None``) or a ``BulkFailure`` per id. An id
            that is not a UUID fails only itself, unsent; a 404 is that id's failure
            (unless an earlier send of the same delete may have done it: then it is a
            success); a delete that failed after it may have been carried out has
            ``outcome_unknown=True``.

        Raises:
            AuthenticationError: As for ``create_many``.
            PermissionDeniedError: As for ``create_many``.
            ClientClosedError: As for ``create_many``.
            RuntimeError: As for ``create_many``.
            TypeError: ``segment_ids`` is not an iterable, or ``concurrency`` or ``ordered``
                is of the wrong type (raised by the call itself).
            ValueError: ``concurrency`` is below 1 or not ``"auto"`` (likewise).
        """
        checked = check_concurrency(concurrency)
        _check_inputs("segment_ids", segment_ids)
        adaptive = checked == "auto"

        def delete(segment_id: _Id) -> Coroutine[Any, Any, None]:
            path = _wire.segment_path(segment_id)
            return self._request("DELETE", path, _decode.decode_delete, adaptive=adaptive)

        return self._bulk(segment_ids, delete, checked, ordered)

    def _bulk(
        self,
        inputs: Iterable[_I] | AsyncIterable[_I],
        call: Callable[[_I], Awaitable[_T]],
        concurrency: Concurrency,
        ordered: object,
    ) -> AsyncGenerator[BulkResult[_T, _I], None]:
        if not isinstance(ordered, bool):
            raise TypeError(f"ordered must be True or False, got {_wire.short_repr(ordered)}")
        if concurrency == "auto":
            # As many workers as the adaptive limit lets in, up to the pool.
            window = self._window.auto_window()
            return bulk_results(
                inputs,
                call,
                workers=self._window.max_connections,
                window=window,
                ordered=ordered,
                spare=self._window.spare,
                widen=self._window.auto_window,
            )
        workers, window = int(concurrency), 2 * int(concurrency)
        return bulk_results(inputs, call, workers=workers, window=window, ordered=ordered)

    # ----------------------------------------------------------------------- pagination

    def iter_pages(
        self, per_page: int = 100, concurrency: Concurrency = 4, *, start_page: int = 1
    ) -> AsyncGenerator[SegmentPage, None]:
        """Every page from ``start_page`` on, in order, with up to ``concurrency`` in flight.

        Page ``start_page`` comes first and tells the server's real ``perPage`` and
        ``lastPage``. Then at most ``concurrency`` requests are in flight, counting the one
        the iterator is waiting on, so at most ``concurrency`` pages are held whatever the
        total; ``concurrency=1`` fetches each page when it is asked for. ``"auto"`` keeps
        as many in flight as the client's adaptive limit allows, and holds
        ``max_connections`` pages besides the one the iteration is on, or at most twice
        ``max_connections`` once pages wait behind a late one (a slow answer, a
        ``Retry-After``); while a request waits out a backoff, up to 16 times
        ``max_connections`` (paced against a quota or by ``rate_limit``, what the pace
        sends in the backoff besides the pool), so that in-order work goes on behind a
        refused page. A page fetched ahead is held as the answer's body and decoded when
        the iteration reaches it. The server's page metadata is checked, not trusted: a
        page other than the one asked for, or a changed ``perPage``, raises; an empty page
        ends the iteration; a ``total`` that changes meanwhile is logged once at WARNING.
        Leaving the loop early cancels what is in flight; for cleanup at a precise point,
        wrap the generator in ``contextlib.aclosing``. Each page is one call (the client's
        ``deadline`` applies to each); bound a whole iteration with ``asyncio.timeout()``.

        Example::

            async with contextlib.aclosing(client.segments.iter_pages(per_page=100)) as pages:
                async for page in pages:
                    save(page.items)  # resume later with start_page=page.current_page + 1

        Args:
            per_page: Segments per page asked for; the server may clamp it (the API to
                100), and the pages after the first ask for the server's size.
            concurrency: Page requests in flight at once, or ``"auto"`` to let the
                client's adaptive limit decide.
            start_page: The first page to fetch, from 1 (to resume an export); one past
                the last page yields nothing.

        Yields:
            Each ``SegmentPage``, in page order.

        Raises:
            APIResponseValidationError: A page could not be read, or its metadata does not
                add up; raised from the iteration, the other requests cancelled.
            SegmentsError: Any error of ``list()`` for a page, raised from the iteration
                once the other requests are cancelled (``AuthenticationError``,
                ``APIConnectionError``, ``APITimeoutError``, ``ClientClosedError``, ...).
            RuntimeError: The client's pool belongs to another event loop, still running.
            ValueError: ``per_page``, ``start_page`` or ``concurrency`` is below 1 (raised
                by the call itself, before anything is sent).
            TypeError: One of them is not an ``int`` (``concurrency`` may be ``"auto"``;
                likewise).
        """
        per_page = _wire.check_positive_int("per_page", per_page)
        checked = check_concurrency(concurrency)
        start_page = _wire.check_positive_int("start_page", start_page)
        return self._iter_pages(per_page, checked, start_page, None)

    def iterate(
        self,
        per_page: int = 100,
        concurrency: Concurrency = 4,
        *,
        start_page: int = 1,
        limit: int | None = None,
    ) -> AsyncGenerator[Segment, None]:
        """Every segment from page ``start_page`` on, in the server's order.

        Pages are fetched as ``iter_pages`` does, up to ``concurrency`` at once, and their
        segments yielded in order, in memory bounded by ``concurrency`` pages.

        Example::

            async with contextlib.aclosing(client.segments.iterate(concurrency=8)) as segments:
                async for segment in segments:
                    if segment.name == "DACH":
                        break  # the requests in flight are cancelled

        Args:
            per_page: Segments per page asked for (the server may clamp it).
            concurrency: Page requests in flight at once, or ``"auto"``.
            start_page: The page to start from, from 1.
            limit: Stop after this many segments, mid-page if need be, requesting no page
                beyond those it needs; ``None``: every segment.

        Yields:
            Each ``Segment``, in the server's order.

        Raises:
            APIResponseValidationError: As for ``iter_pages``.
            SegmentsError: As for ``iter_pages``: a page's error, raised from the iteration.
            RuntimeError: The client's pool belongs to another event loop, still running.
            ValueError: ``per_page``, ``start_page``, ``limit`` or ``concurrency`` is below
                1 (raised by the call itself, before anything is sent).
            TypeError: One of them is not an ``int`` (``concurrency`` may be ``"auto"``;
                likewise).
        """
        per_page = _wire.check_positive_int("per_page", per_page)
        checked = check_concurrency(concurrency)
        start_page = _wire.check_positive_int("start_page", start_page)
        if limit is not None:
            limit = _wire.check_positive_int("limit", limit)
        return self._iterate(self._iter_pages(per_page, checked, start_page, limit), limit)

    async def _iterate(
        self, pages: AsyncGenerator[SegmentPage, None], limit: int | None
    ) -> AsyncGenerator[Segment, None]:
        async with contextlib.aclosing(pages):
            left = limit
            async for page in pages:
                items = page.items if left is None else page.items[:left]
                for segment in items:
                    yield segment
                if left is not None:
                    left -= len(items)
                    if left <= 0:
                        return

    async def _iter_pages(
        self, per_page: int, concurrency: Concurrency, start_page: int, limit: int | None
    ) -> AsyncGenerator[SegmentPage, None]:
        adaptive = concurrency == "auto"
        first = await self._list(_wire.list_query(start_page, per_page), adaptive=adaptive)
        try:
            pages = Pages(first, start_page, limit=limit)
        except PageError as error:
            raise self._invalid(error, start_page, per_page) from None
        if pages.wanted(first, start_page):
            yield first
        if pages.ends(first, start_page):
            return
        # Ask for the size the server uses, so that its lastPage stays true.
        per_page = pages.per_page
        # A task for each page from the one awaited next, and ``ahead`` after it: while
        # the iteration is on a page, ``ahead`` pages are in flight or held. A page fetched
        # ahead is held as its answer's body and decoded when reached (see _decode.Later).
        # A fixed window counts the page awaited, and a window of 1 makes no task: each
        # page is awaited directly, as a plain loop would. "auto" holds the pool's worth,
        # each request let in by the adaptive limit (those beyond it wait there, in page
        # order), and ``wide`` once pages wait behind a late one (head-of-line blocking: a
        # slow answer, a ``Retry-After``) while places are free at the limit: twice the
        # pool with the page the iteration is on, or, while a request waits out a
        # backoff, what the client may send meanwhile (Flow.auto_window: read whenever
        # the page awaited is late), from the moment that is more. (Not bulk_results'
        # workers: with the client its own bottleneck, pages come in faster than they are
        # read, and a worker parked at the full window for each page cost a frozen limit
        # 6-7 % more CPU than a fixed 64, a task per page 3 %.)
        ahead = self._window.max_connections if adaptive else int(concurrency) - 1
        tasks: collections.deque[asyncio.Task[_decode.Unread[SegmentPage]]] = collections.deque()
        loop = asyncio.get_running_loop()
        number = following = start_page + 1
        try:
            while number <= pages.last:
                while ahead and len(tasks) <= ahead and following <= pages.last:
                    query = _wire.list_query(following, per_page)
                    tasks.append(loop.create_task(self._list_unread(query, adaptive=adaptive)))
                    following += 1
                if not tasks:
                    query = _wire.list_query(number, per_page)
                    page = await self._list(query, adaptive=adaptive)
                else:
                    head = tasks[0]
                    if (
                        adaptive
                        and not head.done()
                        and len(tasks) > ahead
                        and (wide := self._window.auto_window() - 1) > ahead
                        and await self._blocked(tasks, ahead + 1)
                    ):
                        ahead = wide  # (more at the next late page, if it grew meanwhile)
                        continue  # fetch the pages the wider window holds, then wait
                    tasks.popleft()
                    page = (await head).read()
                self._check(pages, page, number, per_page)
                if pages.wanted(page, number):
                    yield page
                if pages.ends(page, number):
                    return
                number += 1
        finally:
            await _cancel_all(tasks)

    async def _blocked(
        self, tasks: collections.deque[asyncio.Task[_decode.Unread[SegmentPage]]], places: int
    ) -> bool:
        """Wait for the late page ``tasks[0]``, or until the window should widen: the pages
        behind it say it blocks (a quarter of the ``places``, those ahead and the
        iteration's, done behind it while places are free at the limit), or the window
        is wide (a request waits out a backoff: see ``Flow.auto_window``). The pages
        are looked at when the task a quarter of the way behind it is done, and again
        when the last is: not at each answer, which would cost a look at the whole
        window."""
        head = tasks[0]
        window = self._window
        widened = window.widened()  # done already if the window is wide
        for behind in (tasks[min(-(-places // 4), len(tasks) - 1)], tasks[-1]):
            await asyncio.wait((head, behind, widened), return_when=asyncio.FIRST_COMPLETED)
            if head.done():
                return False
            if widened.done():
                return True
            if 4 * sum(task.done() for task in tasks) >= places and window.spare() > 0:
                return True
        await asyncio.wait((head, widened), return_when=asyncio.FIRST_COMPLETED)
        return not head.done()

    def _check(self, pages: Pages, page: SegmentPage, number: int, per_page: int) -> None:
        changed = pages.total_changed
        try:
            pages.check(page, number)
        except PageError as error:
            raise self._invalid(error, number, per_page) from None
        if pages.total_changed and not changed:
            logger.warning(
                "the segment total changed from %d to %d during the iteration: segments "
                "created or deleted meanwhile may be missed or seen twice",
                pages.total,
                page.total,
                extra={
                    "segments_method": "GET",
                    "segments_path": f"{_wire.SEGMENTS_PATH}?{_wire.list_query(number, per_page)}",
                    "segments_total_before": pages.total,
                    "segments_total": page.total,
                },
            )

    def _invalid(self, error: PageError, number: int, per_page: int) -> APIResponseValidationError:
        url = f"{self._base_url}{_wire.SEGMENTS_PATH}?{_wire.list_query(number, per_page)}"
        return APIResponseValidationError(
            f"malformed response at {error.field}: {error.message}",
            method="GET",
            url=url,
            status_code=200,
            field=error.field,
        )


async def _cancel_all(tasks: collections.deque[asyncio.Task[_T]]) -> None:
    """Cancel ``tasks`` and wait for them, so that no task and no connection is left."""
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks)
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log it as lost
