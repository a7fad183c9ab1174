"""The command line's files: input read in a thread, output replaced atomically.

Input. Waiting on a pipe (a producer that writes a line a minute) or a disk must never
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

Output. ``AtomicOutput`` writes ``FILE`` under a temporary name beside it and renames it
over ``FILE`` only once everything is written, flushed and synced, so a failed or
interrupted export leaves the previous file as it was.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import stat
import tempfile
import threading
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator
from typing import IO, Final, Generic, TypeVar

__all__ = ["AtomicOutput", "ThreadItems", "read_chunks"]

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


class AtomicOutput:
    """``path`` written under a temporary name in its directory, renamed over it on
    ``commit``; ``discard`` removes the temporary file, leaving ``path`` as it was.

    The file gets the mode ``open()`` would have given it: an existing file's own, or a
    new file's under the umask (not ``mkstemp``'s 0600). A path that is not a regular
    file (``/dev/stdout``, a pipe) is written in place: it cannot be replaced.
    """

    def __init__(self, path: str, buffering: int) -> None:
        self.path = path
        self.existed = os.path.exists(path)
        target = os.path.realpath(path)  # through a symlink: the link stays
        if self.existed and not stat.S_ISREG(os.stat(target).st_mode):
            self._temp: str | None = None
            self._target = target
            self.file: IO[bytes] = open(path, "wb", buffering=buffering)  # noqa: SIM115
            return
        directory, name = os.path.split(target)
        mode = stat.S_IMODE(os.stat(target).st_mode) if self.existed else _new_file_mode()
        fd, self._temp = tempfile.mkstemp(prefix=f"{name}.", suffix=".tmp", dir=directory)
        self._target = target
        with contextlib.suppress(OSError):  # a file system without modes: still written
            os.chmod(self._temp, mode)
        self.file = os.fdopen(fd, "wb", buffering=buffering)

    @property
    def replaces(self) -> bool:
        """Whether ``path`` is replaced at the end (a regular file), not written in place."""
        return self._temp is not None

    def commit(self) -> None:
        """Flush, sync, and rename the temporary file over ``path``."""
        self.file.flush()
        if self._temp is None:
            self.file.close()
            return
        os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self._temp, self._target)
        self._temp = None
        _sync_directory(os.path.dirname(self._target))

    def discard(self) -> bool:
        """Remove the temporary file unless committed; whether there was one to remove."""
        self.file.close()
        if self._temp is None:
            return False
        os.unlink(self._temp)
        self._temp = None
        return True


def _new_file_mode() -> int:
    # The umask can only be read by setting it; the command line is single-threaded here.
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _sync_directory(directory: str) -> None:
    """Make the rename durable; not every system can open a directory (then skipped)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
