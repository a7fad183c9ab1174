"""How a bulk command's items reach the event loop: an input file read in a thread.

Waiting on a pipe (a producer that writes a line a minute) or a disk must never
block the event loop, or every request in flight stalls and times out. ``ThreadItems``
runs the blocking reader (``os.read`` of the file descriptor, split into capped lines,
parsed) in a daemon thread and hands its items to the loop in batches, at most a few
batches ahead: a batch goes as soon as the reader is about to wait for more bytes, so a
slow producer's lines arrive one by one, and a fast file's by the thousand. The thread
is a daemon reading the descriptor itself (no buffered object, whose lock could hang the
interpreter's exit): a command that stops while stdin stays open does not wait for it.
(``asyncio.to_thread`` or aiofiles would use the default executor, which ``asyncio.run``
joins on the way out: a read of a silent stdin would then hold the command as long as
the read lasts, or up to 5 minutes from Python 3.12.)

``FileItems`` are an input file's items so read and parsed (``inputs``); ``ArgumentItems``
the command's arguments, in the same shape (``Items``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import sys
import threading
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator, Sequence
from typing import IO, Final, Generic, Protocol, TypeVar

from .inputs import InputItems, Item, LongLine, capped_lines
from .status import InputError, UsageError

__all__ = [
    "ArgumentItems",
    "FileItems",
    "Items",
    "ThreadItems",
    "count_lines",
    "open_input",
    "read_chunks",
    "source_name",
]

_T = TypeVar("_T")

#: Bytes asked of the file at a time: also the most a batch of items is parsed from.
CHUNK_BYTES: Final = 1 << 16
#: Batches of items held between the reader thread and the loop.
_BATCHES_AHEAD: Final = 4


def read_chunks(fd: int, before_read: Callable[[], None]) -> Iterator[bytes]:
    """The bytes of ``fd`` as they come, calling ``before_read`` before each (blocking) read."""
    while True:
        before_read()
        chunk = os.read(fd, CHUNK_BYTES)
        if not chunk:
            return
        yield chunk


class _Closed(Exception):
    """The consumer went away: the reader thread ends."""


class _Failed:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


_END: Final = object()


class _Handover(Generic[_T]):
    """Batches of items from the reader thread to the loop, at most a few held."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._room = threading.Semaphore(_BATCHES_AHEAD)
        self._queue: collections.deque[object] = collections.deque()
        self._arrived = asyncio.Event()
        self._batch: list[_T] = []
        self.closed = False

    # The reader thread's side.

    def add(self, item: _T) -> None:
        self._batch.append(item)

    def flush(self) -> None:
        if self.closed:  # checked before every read: a closed file's number may be reused
            raise _Closed
        if self._batch:
            batch, self._batch = self._batch, []
            self.send(batch)

    def send(self, message: object) -> None:
        self._room.acquire()
        if self.closed:
            raise _Closed
        try:
            self._loop.call_soon_threadsafe(self._deliver, message)
        except RuntimeError:  # the loop is closed
            raise _Closed from None

    # The loop's side.

    def _deliver(self, message: object) -> None:
        self._queue.append(message)
        self._arrived.set()

    async def receive(self) -> object:
        """The next message, or ``_END`` once closed."""
        while not self._queue:
            if self.closed:
                return _END
            self._arrived.clear()
            await self._arrived.wait()
        self._room.release()
        return self._queue.popleft()

    def close(self) -> None:
        self.closed = True
        self._room.release()  # a reader waiting for room wakes up, and ends
        self._arrived.set()  # a receiver waiting for a message too


class ThreadItems(Generic[_T]):
    """The items ``items(flush)`` yields, iterated in a daemon thread; ``flush`` hands
    over what was read so far, and ``items`` calls it before it waits (``read_chunks``).

    An exception from ``items`` is raised from the iteration, after the items before it.
    ``stop()`` ends the iteration at once, even while it waits for input; leaving it, or
    stopping it, ends the thread at its next hand-over (or when its read returns).
    """

    def __init__(self, items: Callable[[Callable[[], None]], Iterable[_T]]) -> None:
        self._items = items
        self._handover: _Handover[_T] | None = None
        self._stopped = False

    def stop(self) -> None:
        self._stopped = True
        if self._handover is not None:
            self._handover.close()

    async def __aiter__(self) -> AsyncGenerator[_T]:
        handover = self._handover = _Handover(asyncio.get_running_loop())
        if self._stopped:
            return
        items = self._items

        def read() -> None:
            try:
                try:
                    for item in items(handover.flush):
                        handover.add(item)
                    handover.flush()
                except _Closed:
                    raise
                except BaseException as error:  # handed to the loop, raised there
                    handover.flush()
                    handover.send(_Failed(error))
                else:
                    handover.send(_END)
            except _Closed:
                return

        threading.Thread(target=read, name="segments-async input", daemon=True).start()
        try:
            while True:
                message = await handover.receive()
                if message is _END:
                    return
                if isinstance(message, _Failed):
                    raise message.error
                for item in message:  # type: ignore[attr-defined]
                    yield item
        finally:
            handover.close()


class Items(Protocol):
    """The items of a bulk command's input, each with its line; ``error`` once they end
    early at a line not in the input's format; ``stop()`` ends them at once (Ctrl-C)."""

    def __aiter__(self) -> AsyncGenerator[Item]: ...

    def stop(self) -> None: ...

    @property
    def error(self) -> InputError | None: ...


class ArgumentItems:
    """The command's arguments as items (no line numbers)."""

    error = None

    def __init__(self, values: Sequence[str]) -> None:
        self._values = values
        self._stopped = False

    def stop(self) -> None:
        self._stopped = True

    async def __aiter__(self) -> AsyncGenerator[Item]:
        for value in self._values:
            if self._stopped:
                return
            yield None, value


class FileItems:
    """An input file's items, read and parsed in a thread (never on the event loop)."""

    def __init__(
        self, file: IO[bytes], parse: Callable[[Iterable[bytes | LongLine]], InputItems]
    ) -> None:
        self._fd = file.fileno()
        self._parse = parse
        self._items: InputItems | None = None
        self._threaded = ThreadItems(self._read)

    def _read(self, flush: Callable[[], None]) -> InputItems:
        self._items = self._parse(capped_lines(read_chunks(self._fd, flush)))
        return self._items

    def __aiter__(self) -> AsyncGenerator[Item]:
        return aiter(self._threaded)

    def stop(self) -> None:
        self._threaded.stop()

    @property
    def error(self) -> InputError | None:
        return None if self._items is None else self._items.error


def source_name(path: str) -> str:
    """What messages call an input file: its path, or stdin for ``-``."""
    return "stdin" if path == "-" else path


def open_input(path: str, files: contextlib.ExitStack) -> IO[bytes]:
    """The input file (stdin for ``-``), closed with ``files``; a usage error if unreadable."""
    if path == "-":
        return sys.stdin.buffer
    try:
        return files.enter_context(open(path, "rb"))
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None


def count_lines(path: str) -> int | None:
    """Lines in a regular file, for the bar's total; None for stdin or a pipe."""
    if path == "-" or not os.path.isfile(path):
        return None
    count = 0
    with open(path, "rb") as source:
        while chunk := source.read(1 << 20):
            count += chunk.count(b"\n")
    return count
