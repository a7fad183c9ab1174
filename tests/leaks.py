"""What a test checks after cancelling or leaving an iteration: tasks and pooled connections."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import warnings
from collections.abc import Iterator

from segments_async import SegmentsClient


def _is_servers(task: asyncio.Task[object]) -> bool:
    coro = task.get_coro()
    qualname = getattr(coro, "__qualname__", "")
    return qualname.startswith(("RequestHandler.", "FakeSegmentsServer.", "RawServer."))


def client_tasks() -> set[asyncio.Task[object]]:
    """Every task but this one and the test servers' connection handlers."""
    return {
        t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not _is_servers(t)
    }


def acquired_connections(client: SegmentsClient) -> int:
    """Connections taken from the client's pool and not given back."""
    session = client._shared.transport.session
    if session is None:
        return 0
    assert session.connector is not None
    return len(session.connector._acquired)  # type: ignore[attr-defined]


async def settle() -> None:
    """Let cancellations, finalizers and connection releases run."""
    for _ in range(5):
        await asyncio.sleep(0)
    await asyncio.sleep(0.01)


@contextlib.contextmanager
def unclosed_warnings() -> Iterator[list[str]]:
    """The "Unclosed ..." warnings raised in the block, or when collecting after it."""
    found: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield found
        gc.collect()
    found.extend(str(w.message) for w in caught if "nclosed" in str(w.message))


def unclosed_warnings_after_gc() -> list[str]:
    """Collect garbage and return any "Unclosed ..." warning it raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    return [str(w.message) for w in caught if "nclosed" in str(w.message)]
