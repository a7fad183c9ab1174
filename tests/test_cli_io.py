"""The command line's file I/O: input read in a thread, output replaced atomically."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import threading
from collections.abc import Callable, Iterator

import pytest

from segments_async import _cli_io


def lines_of(fd: int) -> Callable[[Callable[[], None]], Iterator[bytes]]:
    def read(flush: Callable[[], None]) -> Iterator[bytes]:
        for chunk in _cli_io.read_chunks(fd, flush):
            yield from chunk.splitlines()

    return read


async def test_waiting_for_input_never_blocks_the_loop():
    """While the reader waits on an empty pipe, the loop runs; each line comes when written.

    Read on the loop, the wait would stall the ticker until the safety valve writes (5 s
    later), and "two" would be read before the ticker could tick again.
    """
    read_end, write_end = os.pipe()
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    ticker = asyncio.create_task(tick())
    items = aiter(_cli_io.ThreadItems(lines_of(read_end)))
    valve_wrote = []
    valve = threading.Timer(5, lambda: valve_wrote.append(os.write(write_end, b"two\n")))
    try:
        os.write(write_end, b"one\n")
        assert b"one" == await asyncio.wait_for(anext(items), 10)
        reading = asyncio.create_task(anext(items))
        valve.start()
        before = ticks
        while ticks < before + 20:  # noqa: ASYNC110 - counting the loop's turns
            await asyncio.sleep(0.001)
        assert not reading.done()
        valve.cancel()
        valve.join()
        if not valve_wrote:
            os.write(write_end, b"two\n")
        assert b"two" == await asyncio.wait_for(reading, 10)
        os.close(write_end)
        assert [] == [item async for item in items]
    finally:
        valve.cancel()
        ticker.cancel()
        await items.aclose()
        os.close(read_end)
        with contextlib.suppress(OSError):
            os.close(write_end)


async def test_stop_ends_the_items_while_they_wait_for_input():
    """stop() ends an iteration waiting on a pipe that stays open and silent."""
    read_end, write_end = os.pipe()
    threaded = _cli_io.ThreadItems(lines_of(read_end))
    items = aiter(threaded)
    try:
        os.write(write_end, b"one\n")
        assert b"one" == await asyncio.wait_for(anext(items), 10)
        waiting = asyncio.create_task(anext(items, None))
        await asyncio.sleep(0.01)
        threaded.stop()

        assert await asyncio.wait_for(waiting, 10) is None
    finally:
        await items.aclose()
        os.close(write_end)
        os.close(read_end)


async def test_a_reader_error_comes_after_the_items_before_it():
    """What the reader raises is raised on the loop, after the items it yielded."""

    def read(flush: Callable[[], None]) -> Iterator[int]:
        yield 1
        yield 2
        raise OSError(5, "Input/output error")

    got = []
    with pytest.raises(OSError, match="Input/output error"):
        async for item in _cli_io.ThreadItems(read):
            got.append(item)
    assert [1, 2] == got


async def test_leaving_early_ends_the_reader_thread():
    """Closing the items stops the thread at its next hand-over: it does not read on."""
    pulled = 0
    ended = threading.Event()

    def read(flush: Callable[[], None]) -> Iterator[int]:
        nonlocal pulled
        try:
            while True:
                flush()
                pulled += 1
                yield pulled
        finally:
            ended.set()

    items = aiter(_cli_io.ThreadItems(read))
    assert 1 == await anext(items)
    await items.aclose()

    assert await asyncio.to_thread(ended.wait, 10)
    assert pulled < 10  # a few batches ahead at most


# --------------------------------------------------------------------------- atomic output


def umasked(mode: int) -> int:
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


def test_an_output_replaces_the_file_only_on_commit(tmp_path):
    """Before commit the old file is whole and the new bytes are in a file beside it."""
    path = tmp_path / "out.jsonl"
    path.write_bytes(b"old\n")
    path.chmod(0o604)

    output = _cli_io.AtomicOutput(str(path), 1024)
    output.file.write(b"new\n")
    assert b"old\n" == path.read_bytes()
    assert 2 == len(os.listdir(tmp_path))
    output.commit()

    assert b"new\n" == path.read_bytes()
    assert 0o604 == stat.S_IMODE(path.stat().st_mode)
    assert ["out.jsonl"] == os.listdir(tmp_path)
    assert not output.discard()


def test_a_discarded_output_leaves_nothing_behind(tmp_path):
    """discard: the old file as it was (or none), the temporary one gone."""
    path = tmp_path / "out.csv"

    output = _cli_io.AtomicOutput(str(path), 1024)
    output.file.write(b"partial")

    assert output.discard()
    assert [] == os.listdir(tmp_path)
    assert not output.existed


def test_a_new_output_gets_the_mode_open_would_give(tmp_path):
    """Not mkstemp's 0600: what the umask leaves of 0666."""
    path = tmp_path / "new.jsonl"

    output = _cli_io.AtomicOutput(str(path), 1024)
    output.commit()

    assert umasked(0o666) == stat.S_IMODE(path.stat().st_mode)


def test_an_output_through_a_symlink_replaces_its_target(tmp_path):
    """The link stays a link; the file it points to is replaced."""
    target = tmp_path / "real.jsonl"
    target.write_bytes(b"old\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)

    output = _cli_io.AtomicOutput(str(link), 1024)
    output.file.write(b"new\n")
    output.commit()

    assert link.is_symlink()
    assert b"new\n" == target.read_bytes()


def test_an_output_that_is_no_regular_file_is_written_in_place():
    """/dev/null cannot be replaced (nor a temporary file made beside it): written as is."""
    output = _cli_io.AtomicOutput(os.devnull, 1024)
    output.file.write(b"anything")
    output.commit()

    assert not output.replaces
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)
