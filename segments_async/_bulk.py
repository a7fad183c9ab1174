"""Bulk work: many calls at once over a lazy input, results in input order, bounded memory.

``ordered_results`` runs one call per input with a fixed number of worker tasks pulling
from the input, and yields a ``BulkResult`` per input in input order. Workers take a place
in a ``Gate`` before pulling an input, and the consumer gives it back once the result is
yielded: at most ``window`` inputs and results are held, however long the input.
"""

from __future__ import annotations

import asyncio
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
)
from typing import Generic, TypeVar

from ._errors import (
    AuthenticationError,
    ClientClosedError,
    PermissionDeniedError,
    SegmentsError,
    _RequestError,
)
from ._flow import Gate
from ._models import BulkResult

__all__ = ["ordered_results"]

_I = TypeVar("_I")
_T = TypeVar("_T")

#: Failures that end the whole operation: every further item would fail the same way.
_FATAL: tuple[type[SegmentsError], ...] = (
    AuthenticationError,
    PermissionDeniedError,
    ClientClosedError,
)

_EXHAUSTED = object()


class _Input(Generic[_I]):
    """The input, pulled one item at a time by several workers, numbered as pulled."""

    __slots__ = ("_async", "_lock", "_sync", "exhausted", "pulled")

    def __init__(self, inputs: Iterable[_I] | AsyncIterable[_I]) -> None:
        self._sync: Iterator[_I] | None = None
        self._async: AsyncIterator[_I] | None = None
        if isinstance(inputs, AsyncIterable):
            self._async = aiter(inputs)
        else:
            self._sync = iter(inputs)
        # An async iterator may not be awaited by two workers at once.
        self._lock = asyncio.Lock()
        self.pulled = 0
        self.exhausted = False

    @property
    def ready(self) -> bool:
        """Whether ``pull_now`` can be used: the input is a plain iterable."""
        return self._sync is not None

    def pull_now(self) -> tuple[int, object]:
        """``pull`` for a plain iterable, without a coroutine per item."""
        assert self._sync is not None
        return self._numbered(_EXHAUSTED if self.exhausted else next(self._sync, _EXHAUSTED))

    async def pull(self) -> tuple[int, object]:
        """The next item and its index, or ``_EXHAUSTED`` as the item."""
        if self._async is None:
            return self.pull_now()
        async with self._lock:  # numbered under the lock too, so indexes follow the input
            item = _EXHAUSTED if self.exhausted else await anext(self._async, _EXHAUSTED)
            return self._numbered(item)

    def _numbered(self, item: object) -> tuple[int, object]:
        if item is _EXHAUSTED:
            self.exhausted = True
            return -1, _EXHAUSTED
        index = self.pulled
        self.pulled += 1
        return index, item


async def ordered_results(
    inputs: Iterable[_I] | AsyncIterable[_I],
    call: Callable[[_I], Awaitable[_T]],
    *,
    workers: int,
    window: int,
    may_create: bool = False,
) -> AsyncGenerator[BulkResult[_T], None]:
    """``BulkResult(index, input, value | error)`` for each input, in input order.

    ``call(item)`` raises ``ValueError``/``TypeError`` for an input it refuses, at once
    (before returning the awaitable that sends), and the awaitable raises ``SegmentsError``
    for a call that failed: both become that item's ``error``.
    Authentication and permission failures, and the client being closed, stop the
    operation: no further input is pulled, and once the calls in flight have ended and
    their results are yielded, that error is raised. Anything else (a hook's exception,
    a bug) cancels the rest and is raised at once. ``may_create`` marks a failed call
    whose outcome is unknown as ``outcome_unknown``.
    """
    run = _Run(_Input(inputs), call, window, may_create)
    tasks = [asyncio.create_task(run.work()) for _ in range(workers)]
    run.working = workers
    try:
        while True:
            following = run.following
            while following not in run.results:
                if run.failure is not None:
                    raise run.failure
                if not run.working:
                    if run.stop is not None:
                        raise run.stop
                    return
                run.ready.clear()
                await run.ready.wait()
            result = run.results.pop(following)
            run.following = following + 1
            yield result
            run.room.release()
    finally:
        await _cancel(tasks)


class _Run(Generic[_I, _T]):
    """The state the workers and the consumer of one bulk operation share."""

    __slots__ = (
        "call",
        "failure",
        "following",
        "may_create",
        "ready",
        "results",
        "room",
        "source",
        "stop",
        "working",
    )

    def __init__(
        self,
        source: _Input[_I],
        call: Callable[[_I], Awaitable[_T]],
        window: int,
        may_create: bool,
    ) -> None:
        self.source = source
        self.call = call
        self.may_create = may_create
        self.room = Gate(window)  # inputs pulled and not yet yielded
        self.results: dict[int, BulkResult[_T]] = {}
        self.ready = asyncio.Event()  # the awaited result was stored, or a worker ended
        self.following = 0  # the index the consumer yields next
        self.working = 0  # workers not yet ended
        self.stop: SegmentsError | None = None  # what ends the operation once drained
        self.failure: BaseException | None = None  # what ends it at once

    async def work(self) -> None:
        """Pull an input, make its call, store its result; until the input runs dry."""
        room, source, results, call = self.room, self.source, self.results, self.call
        try:
            while self.stop is None:
                if not room.try_acquire():
                    await room.acquire()
                index, item = source.pull_now() if source.ready else await source.pull()
                if item is _EXHAUSTED or self.stop is not None:
                    room.release()
                    return
                result: BulkResult[_T]
                try:
                    pending = call(item)  # type: ignore[arg-type]
                except (ValueError, TypeError) as refused:  # refused before anything is sent
                    result = BulkResult(index, item, error=refused)
                else:
                    try:
                        # Whatever else is raised (a hook's ValueError too) is no refusal.
                        result = BulkResult(index, item, value=await pending)
                    except SegmentsError as error:
                        result = self._failed(index, item, error)
                results[index] = result
                if index == self.following:  # only the awaited result is worth a wake-up
                    self.ready.set()
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError) and self.failure is None:
                self.failure = exc
            raise
        finally:
            self.working -= 1
            self.ready.set()

    def _failed(self, index: int, item: object, error: SegmentsError) -> BulkResult[_T]:
        if isinstance(error, _FATAL) and self.stop is None:
            self.stop = error
        unknown = self.may_create and isinstance(error, _RequestError) and error.outcome_unknown
        return BulkResult(index, item, error=error, outcome_unknown=unknown)


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks)
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log it as lost
