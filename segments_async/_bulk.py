"""Bulk work: many calls at once over a lazy input, a result per input, bounded memory.

``bulk_results`` runs one call per input with worker tasks pulling from the input, and
yields a ``BulkResult`` per input, in input order or as they finish. Workers take a place
in a ``Gate`` before pulling an input, and the consumer gives it back once the result is
yielded: at most ``window`` inputs and results are held, however long the input (or,
given ``widen``, what it says once a call backs off: see ``_Run.backing_off``).

There are ``workers`` workers, or, given ``spare`` (the places free at the adaptive
limit's gate beyond those waited for), as many as that gate lets in: a worker starts
another while places are free and ends when it would have to wait for one. Workers parked
at the gate would each take the place of one that just finished (a task switch per
request that a fixed concurrency never makes), and a worker waiting out a ``Retry-After``
holds no place, so another takes it meanwhile: its call says so (``backing_off``), and
workers start for the places free then. Were the others to start only as calls end, the
calls in flight refused together (a limit of two or three, after a refusal) would leave
every worker asleep and nothing sent until the first backoff ended, however much room the
window had: a second of nothing for a ``Retry-After: 1``.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
)
from typing import Any, Final, Generic, TypeVar

from ._errors import (
    AuthenticationError,
    ClientClosedError,
    PermissionDeniedError,
    SegmentsError,
    _RequestError,
)
from ._flow import Gate
from ._models import BulkFailure, BulkResult, BulkSuccess

__all__ = ["backing_off", "bulk_results"]

_I = TypeVar("_I")
_T = TypeVar("_T")

#: Failures that end the whole operation: every further item would fail the same way.
_FATAL: tuple[type[SegmentsError], ...] = (
    AuthenticationError,
    PermissionDeniedError,
    ClientClosedError,
)

_EXHAUSTED = object()

#: The ``spare``-staffed run (``"auto"``) whose worker the running task is, if any.
_WORKER_OF: Final[contextvars.ContextVar[_Run[Any, Any] | None]] = contextvars.ContextVar(
    "segments_async_bulk_worker", default=None
)


def backing_off() -> None:
    """The call under way waits out a backoff, holding no place at the adaptive limit: if
    it is an ``"auto"`` bulk operation's, workers start for the places free meanwhile."""
    run = _WORKER_OF.get()
    if run is not None:
        run.backing_off()


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


async def bulk_results(
    inputs: Iterable[_I] | AsyncIterable[_I],
    call: Callable[[_I], Awaitable[_T]],
    *,
    workers: int,
    window: int,
    ordered: bool = True,
    spare: Callable[[], int] | None = None,
    widen: Callable[[], int] | None = None,
) -> AsyncGenerator[BulkResult[_T, _I], None]:
    """A ``BulkSuccess`` or ``BulkFailure`` for each input: in input order, or as they end.

    ``call(item)`` raises ``ValueError``/``TypeError`` for an input it refuses, at once
    (before returning the awaitable that sends), and the awaitable raises ``SegmentsError``
    for a call that failed: both become that item's ``error``, and a failed write that may
    have been carried out is ``outcome_unknown`` (the error says so).
    Authentication and permission failures, and the client being closed, stop the
    operation: no further input is pulled, and once the calls in flight have ended and
    every input pulled has its result yielded, that error is raised. Anything else (a
    hook's exception, a bug) cancels the rest and is raised at once. With ``spare``,
    ``workers`` is the most that run at once, and ``widen``, if given, says how many
    inputs and results may be held from the first backoff on (never fewer than
    ``window``).
    """
    run: _Run[_I, _T] = _Run(_Input(inputs), call, window, ordered, workers, spare, widen)
    run.hire(workers if spare is None else max(1, min(workers, spare())))
    try:
        while True:
            result = run.next_result()
            while result is None:
                if run.failure is not None:
                    raise run.failure
                if not run.working:
                    if run.stop is not None:
                        raise run.stop
                    return
                run.ready.clear()
                await run.ready.wait()
                result = run.next_result()
            yield result
            run.room.release()
    finally:
        await _cancel(run.tasks)


class _Run(Generic[_I, _T]):
    """The state the workers and the consumer of one bulk operation share."""

    __slots__ = (
        "call",
        "failure",
        "finished",
        "following",
        "most",
        "ordered",
        "ready",
        "results",
        "room",
        "source",
        "spare",
        "starting",
        "stop",
        "tasks",
        "widen",
        "working",
    )

    def __init__(
        self,
        source: _Input[_I],
        call: Callable[[_I], Awaitable[_T]],
        window: int,
        ordered: bool,
        most: int,
        spare: Callable[[], int] | None,
        widen: Callable[[], int] | None = None,
    ) -> None:
        self.source = source
        self.call = call
        self.ordered = ordered
        self.most = most  # workers at most
        self.spare = spare
        self.widen = widen
        self.starting = 0  # workers started that have not yet asked for a place
        self.tasks: set[asyncio.Task[None]] = set()  # workers running (or ended by an error)
        self.room = Gate(window)  # inputs pulled and not yet yielded
        self.results: dict[int, BulkResult[_T, _I]] = {}  # ordered: by index
        self.finished: collections.deque[BulkResult[_T, _I]] = collections.deque()  # unordered
        self.ready = asyncio.Event()  # a result the consumer can take was stored, or a worker ended
        self.following = 0  # ordered: the index the consumer yields next
        self.working = 0  # workers not yet ended
        self.stop: SegmentsError | None = None  # what ends the operation once drained
        self.failure: BaseException | None = None  # what ends it at once

    def hire(self, count: int) -> None:
        """Start ``count`` more workers."""
        for _ in range(count):
            self.tasks.add(asyncio.create_task(self.work()))
        self.working += count
        self.starting += count

    def staffed(self) -> bool:
        """After a call: whether this worker goes on (or the gate has no place for it), and
        start others for the places free beyond its own."""
        if self.spare is None:
            return True
        spare = self.spare() - self.starting
        if spare <= 0:
            return self.working == 1  # the last one waits for a place
        self.staff(spare - 1)  # the places beyond its own
        return True

    def backing_off(self) -> None:
        """A worker's call waits out a backoff and gave its place back: start workers for
        the places free beyond those starting (else, were every worker asleep so, nothing
        would be sent until a backoff ended); and widen the window if ``widen`` says so
        (the others go on while the call waits, and their results wait behind it)."""
        assert self.spare is not None
        if self.widen is not None:
            room = self.room
            wider = self.widen()
            if wider > room.capacity:
                room.capacity = wider
        self.staff(self.spare() - self.starting)

    def staff(self, free: int) -> None:
        """Start workers for ``free`` places (``most`` working at most), while the input
        lasts."""
        count = min(free, self.most - self.working)
        if count > 0 and not self.source.exhausted:
            self.hire(count)

    def next_result(self) -> BulkResult[_T, _I] | None:
        """The result to yield now, if it is there."""
        if not self.ordered:
            return self.finished.popleft() if self.finished else None
        result = self.results.pop(self.following, None)
        if result is not None:
            self.following += 1
        return result

    async def work(self) -> None:
        """Pull an input, make its call, store its result; until the input runs dry."""
        room, source, call = self.room, self.source, self.call
        self.starting -= 1  # it asks for its place in this step (unless the window is full)
        if self.spare is not None:
            _WORKER_OF.set(self)  # this task's context: its calls' backoffs find the run
        try:
            while True:
                if not room.try_acquire():
                    await room.acquire()
                index, item = source.pull_now() if source.ready else await source.pull()
                if item is _EXHAUSTED:  # or the operation stopped: see _failed
                    room.release()
                    break
                # What was pulled is owed a result, even if the operation stopped meanwhile.
                # The call is settled inline (no coroutine per item: this is the hot path).
                result: BulkResult[_T, _I]
                try:
                    pending = call(item)  # type: ignore[arg-type]
                except (ValueError, TypeError) as refused:  # refused before anything is sent
                    result = BulkFailure(index, item, refused)  # type: ignore[arg-type]
                else:
                    try:
                        # Whatever else is raised (a hook's ValueError too) is no refusal.
                        result = BulkSuccess(index, item, await pending)  # type: ignore[arg-type]
                    except SegmentsError as error:
                        result = self._failed(index, item, error)  # type: ignore[arg-type]
                self._store(result)
                if not self.staffed():
                    break
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError) and self.failure is None:
                self.failure = exc
            raise
        else:
            self.tasks.discard(asyncio.current_task())
        finally:
            self.working -= 1
            self.ready.set()

    def _failed(self, index: int, item: _I, error: SegmentsError) -> BulkFailure[_I]:
        if isinstance(error, _FATAL) and self.stop is None:
            self.stop = error
            self.source.exhausted = True  # nothing more is pulled
        unknown = isinstance(error, _RequestError) and error.outcome_unknown
        return BulkFailure(index, item, error, unknown)

    def _store(self, result: BulkResult[_T, _I]) -> None:
        if not self.ordered:
            self.finished.append(result)
            self.ready.set()
            return
        self.results[result.index] = result
        if result.index == self.following:  # only the awaited result is worth a wake-up
            self.ready.set()


async def _cancel(tasks: set[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks)
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log it as lost
