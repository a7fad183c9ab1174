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
from typing import Any, Literal, Protocol, TypeVar, final

from . import _decode, _wire
from ._bulk import bulk_results
from ._errors import APIResponseValidationError
from ._models import BulkResult, Segment, SegmentPage
from ._paging import PageError, Pages

__all__ = ["Concurrency", "Requester", "SegmentsResource", "Window"]

logger = logging.getLogger("segments_async")

_T = TypeVar("_T")
_I = TypeVar("_I")
#: The inputs' types, so that each ``BulkResult.input`` has the type of what was given.
_Name = TypeVar("_Name", bound=str)
_Id = TypeVar("_Id", bound="str | uuid.UUID")
_Change = TypeVar("_Change", bound="tuple[str | uuid.UUID, str]")

#: A fixed number of requests in flight, or ``"auto"`` to let the client learn it.
Concurrency = int | Literal["auto"]


class Requester(Protocol):
    """One API call, retried as the client's policy says: the client's ``_request``."""

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

    def auto_window(self) -> int: ...


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
    """``client.segments``: list, iterate, create, update and delete segments."""

    __slots__ = ("_base_url", "_request", "_window")

    def __init__(self, request: Requester, window: Window, base_url: str) -> None:
        self._request = request
        self._window = window
        self._base_url = base_url

    async def list(self, page: int = 1, per_page: int = 20) -> SegmentPage:
        """One page of the tenant's segments (the server may clamp ``per_page``)."""
        return await self._list(_wire.list_query(page, per_page))

    def _list(self, query: str, *, adaptive: bool = False) -> Coroutine[Any, Any, SegmentPage]:
        path = f"{_wire.SEGMENTS_PATH}?{query}"
        return self._request("GET", path, _decode.decode_segment_page, adaptive=adaptive)

    async def create(self, name: str) -> Segment:
        """Create a segment.

        Not retried once the server may have acted on it (unless the client's
        ``RetryPolicy(retry_post=True)`` accepts the risk of a duplicate).
        """
        body = _wire.name_body(name)
        return await self._request("POST", _wire.SEGMENTS_PATH, _decode.decode_segment, body)

    async def update(self, segment_id: str | uuid.UUID, name: str) -> Segment:
        """Rename a segment."""
        path = _wire.segment_path(segment_id)
        body = _wire.name_body(name)
        return await self._request("PUT", path, _decode.decode_segment, body)

    async def delete(self, segment_id: str | uuid.UUID) -> None:
        """Delete a segment.

        A retry that finds the segment gone (404) after a send whose outcome was unknown
        counts as success: that send deleted it.
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

        Args:
            names: Any iterable or async iterable of names, consumed lazily: at most about
                twice ``concurrency`` names and results are held. A plain iterable is pulled
                on the event loop, so it must not block (see the README's bulk section).
            concurrency: Creates in flight at once, or ``"auto"`` to let the client's
                adaptive limit decide.
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
            TypeError: ``names`` is not an iterable (raised at once).
            ValueError: ``concurrency`` is not an int >= 1 or ``"auto"`` (raised at once).
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
            TypeError: ``changes`` is not an iterable (raised at once).
            ValueError: ``concurrency`` is not an int >= 1 or ``"auto"`` (raised at once).
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
            TypeError: ``segment_ids`` is not an iterable (raised at once).
            ValueError: ``concurrency`` is not an int >= 1 or ``"auto"`` (raised at once).
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
            # As many workers as the pool; the adaptive limit says how many are in flight.
            workers, window = self._window.max_connections, self._window.auto_window()
        else:
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
        as many in flight as the client's adaptive limit allows, and holds at most twice
        ``max_connections`` pages. The server's page metadata is checked (see
        the README). Leaving the loop early cancels what is in flight; for cleanup at a
        precise point, wrap the generator in ``contextlib.aclosing``. A page that fails
        raises from the iterator after the others are cancelled. Each page is one call
        (the client's ``deadline`` applies to each); bound a whole iteration with
        ``asyncio.timeout()``.
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

        Pages are fetched as ``iter_pages`` does; with ``limit``, iteration stops after
        that many segments, and no page beyond those it needs is requested.
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
        # Tasks for the pages after the one awaited next: with that one, at most `window`
        # pages are in flight or held, and while the consumer holds a page, one fewer are
        # fetched ahead. A window of 1 makes no task: each page is awaited directly, as a
        # plain loop would. For "auto" the window is wider than what is in flight (the
        # adaptive limit says that), so a page waiting out a Retry-After stalls nothing.
        window = self._window.auto_window() if adaptive else int(concurrency)
        in_flight: collections.deque[asyncio.Task[SegmentPage]] = collections.deque()
        loop = asyncio.get_running_loop()
        number = start_page + 1
        try:
            while number <= pages.last:
                current = in_flight.popleft() if in_flight else None
                ahead = window - 1
                following = number + 1 + len(in_flight)
                while len(in_flight) < ahead and following <= pages.last:
                    query = _wire.list_query(following, per_page)
                    in_flight.append(loop.create_task(self._list(query, adaptive=adaptive)))
                    following += 1
                if current is None:
                    page = await self._list(_wire.list_query(number, per_page), adaptive=adaptive)
                else:
                    page = await current
                self._check(pages, page, number, per_page)
                if pages.wanted(page, number):
                    yield page
                if pages.ends(page, number):
                    return
                number += 1
        finally:
            await _cancel_all(in_flight)

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
