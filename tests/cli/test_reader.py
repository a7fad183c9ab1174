"""Input read in a thread: the loop never waits for it, and it stops when told."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable, Iterator

import pytest

from segments_async._cli import reader


def lines_of(fd: int) -> Callable[[Callable[[], None]], Iterator[bytes]]:
    def read(flush: Callable[[], None]) -> Iterator[bytes]:
        for chunk in reader.read_chunks(fd, flush):
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
    items = aiter(reader.ThreadItems(lines_of(read_end)))
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
    threaded = reader.ThreadItems(lines_of(read_end))
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
        async for item in reader.ThreadItems(read):
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

    items = aiter(reader.ThreadItems(read))
    assert 1 == await anext(items)
    await items.aclose()

    assert await asyncio.to_thread(ended.wait, 10)
    assert pulled < 10  # a few batches ahead at most
