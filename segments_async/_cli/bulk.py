"""How a bulk command runs (``create``, ``delete``, ``import``, ``delete-many``): items in,
results out as they finish, a report line for each, a summary, the exit status.

``Bulk`` hands the input's items to a bulk operation of the client (skipping, or failing
alone, those it cannot send) and settles each as its result comes: a report line, a line
on stderr if it failed, the bar; created segments go to stdout. The first Ctrl-C closes
the client, so that every result that came back is still reported and counted (writes in
flight become "unknown"), then the status is 130; a second one stops at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import IO, Any, Literal

from .._client import SegmentsClient
from .._errors import AuthenticationError, ClientClosedError, PermissionDeniedError, SegmentsError
from .._models import BulkResult, Segment
from .console import Ui
from .inputs import Unreadable
from .outputs import jsonl_lines, quiet_stdout
from .progress import Bar
from .reader import Items
from .report import Entry, Tally, failure_line, report_line, result_entry, unreadable_entry
from .status import EXIT_INTERRUPTED

__all__ = ["Bulk", "Job", "Operation", "Printer", "creates", "deletes"]

#: What a command does once it has a client; its exit status.
Job = Callable[[SegmentsClient], Awaitable[int]]
_Results = AsyncGenerator[BulkResult[Any], None]
#: A bulk operation of the client over the inputs the command hands it.
Operation = Callable[[SegmentsClient, AsyncIterable[Any]], _Results]


def creates(concurrency: int | Literal["auto"], *, ordered: bool = False) -> Operation:
    """Results as they finish, by default: one slow item holds back no line of the report,
    and an interrupt loses none (``ordered`` for output whose order is the arguments')."""

    def operation(client: SegmentsClient, names: AsyncIterable[Any]) -> _Results:
        # A name that is not a str is passed on on purpose: it fails only its own item.
        segments = client.segments
        return segments.create_many(names, concurrency=concurrency, ordered=ordered)

    return operation


def deletes(concurrency: int | Literal["auto"]) -> Operation:
    def operation(client: SegmentsClient, ids: AsyncIterable[Any]) -> _Results:
        return client.segments.delete_many(ids, concurrency=concurrency, ordered=False)

    return operation


class Printer:
    """Created segments on stdout, a line each as they come. Once the reader is gone (a
    broken pipe: `| head -1`), the rest are counted, not printed: the work goes on."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.lost = 0

    def print(self, segment: Segment) -> None:
        if self.lost:
            self.lost += 1
            return
        try:
            self.out.write(jsonl_lines([segment]))
            self.out.flush()
        except BrokenPipeError:
            quiet_stdout()
            self.lost = 1


class Bulk:
    """Runs a bulk command: hands the input's items to the operation (skipping, or
    failing alone, those it cannot send), then writes a report line per item as results
    come, created segments on stdout, failures on stderr, the bar and a summary; the exit
    status from the tally. The first Ctrl-C closes the client: every result that came back
    is still reported and counted (writes in flight become "unknown"), then status 130.

    ``skip_existing`` (a concurrency) reads the existing names first, with it, and sends
    none of them, nor a name twice: those are "skipped".
    """

    def __init__(
        self,
        label: str,
        ui: Ui,
        report: IO[bytes] | None,
        bar: Bar,
        *,
        printer: Printer | None = None,
        total: int | None = None,
        source: str | None = None,
        skip_existing: int | Literal["auto"] | None = None,
    ) -> None:
        self.label = label
        self.read_existing_with = skip_existing
        self.ui = ui
        self.report = report
        self.bar = bar
        self.printer = printer
        self.total = total
        self.source = source
        self.tally = Tally(skipping=skip_existing is not None)
        self.existing: set[str] | None = None if skip_existing is None else set()
        self.interrupted = False
        self._read = 0  # items read from the input
        self._sent = 0  # items handed to the operation, which numbers them from 0 as well
        self._handed: dict[int, tuple[int, int | None]] = {}  # its index -> ours, and the line

    def job(self, items: Items, operation: Operation) -> Job:
        async def run(client: SegmentsClient) -> int:
            async with first_ctrl_c(client, lambda: self._interrupt(items)):
                try:
                    if self.existing is not None:
                        await self._read_existing(client)
                    await self._consume(operation(client, self._inputs(items)))
                except ClientClosedError:
                    if not self.interrupted:
                        raise
                except asyncio.CancelledError:
                    self.ui.interrupted_note = (
                        f": {self.tally.summary()} before it; requests in flight were "
                        f"cancelled and may have been carried out"
                    )
                    raise
                except SegmentsError:
                    self._summarize(stopped=True)
                    raise
            self._summarize(stopped=self.interrupted or items.error is not None)
            if self.interrupted:
                self.ui.say("interrupted: the results that came back are counted above")
                return EXIT_INTERRUPTED
            if items.error is not None:
                raise items.error
            return self.tally.exit_status()

        return run

    def _interrupt(self, items: Items) -> None:
        self.interrupted = True
        items.stop()  # the operation may be waiting for input, with nothing in flight
        self.ui.say("interrupted: finishing the report (Ctrl-C again to stop at once)")

    async def _read_existing(self, client: SegmentsClient) -> None:
        assert self.existing is not None
        assert self.read_existing_with is not None
        segments = client.segments.iterate(concurrency=self.read_existing_with)
        async with contextlib.aclosing(segments):
            async for segment in segments:
                self.existing.add(segment.name)

    async def _inputs(self, items: Items) -> AsyncGenerator[object]:
        """The items the operation is to send; the others are settled here, unsent."""
        read = aiter(items)
        async with contextlib.aclosing(read):
            async for line, value in read:
                index = self._read
                self._read += 1
                if isinstance(value, Unreadable):
                    self._settle(unreadable_entry(index, line, value))
                    continue
                if self.existing is not None and isinstance(value, str):
                    if value in self.existing:
                        self._settle(Entry(index, line, value, "skipped"))
                        continue
                    self.existing.add(value)  # a name twice in the input is created once
                self._handed[self._sent] = (index, line)
                self._sent += 1
                yield value

    async def _consume(self, results: _Results) -> None:
        self.bar.start(self.total)
        try:
            async with contextlib.aclosing(results):
                async for result in results:
                    index, line = self._handed.pop(result.index)
                    entry = result_entry(result, index, line)
                    stops = isinstance(result.error, AuthenticationError | PermissionDeniedError)
                    self._settle(entry, quiet=stops)
                    if self.printer is not None and isinstance(result.value, Segment):
                        self.printer.print(result.value)
        finally:
            self.bar.close()

    def _settle(self, entry: Entry, *, quiet: bool = False) -> None:
        self.tally.add(entry)
        if self.report is not None:
            self.report.write(report_line(entry))
        if entry.status in ("failed", "unknown") and not quiet:
            self.ui.item_failed(failure_line(entry, self.source))
        self.bar.advance(1)

    def _summarize(self, *, stopped: bool) -> None:
        """The failures not shown, and the tally: under ``--quiet`` only when the command
        was stopped (an interrupt, an error), as part of saying what it had done."""
        hint = "" if self.report is not None else " (--report FILE records every item)"
        self.ui.more_failures(hint)
        tell = self.ui.say if stopped else self.ui.summary
        tell(f"{self.label}: {self.tally.summary()}")
        if self.printer is not None and self.printer.lost:
            self.ui.say(
                f"stdout was closed: {self.printer.lost:,} created segments were not printed{hint}"
            )


@contextlib.asynccontextmanager
async def first_ctrl_c(
    client: SegmentsClient, interrupted: Callable[[], None]
) -> AsyncIterator[None]:
    """While a bulk command runs, the first Ctrl-C closes the client (each call in progress
    then ends with ``ClientClosedError``, so its result is still reported) and restores
    the usual handling, under which a second Ctrl-C cancels at once."""
    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGINT)
    closing: list[asyncio.Task[None]] = []

    def restore() -> None:
        loop.remove_signal_handler(signal.SIGINT)
        signal.signal(signal.SIGINT, previous)

    def first() -> None:
        restore()
        interrupted()
        closing.append(loop.create_task(client.aclose()))

    if previous is signal.SIG_IGN or previous is None:  # Ctrl-C is not ours to handle
        yield
        return
    try:
        loop.add_signal_handler(signal.SIGINT, first)
    except (NotImplementedError, RuntimeError):  # no signal handlers here (Windows, a thread)
        yield
        return
    try:
        yield
    finally:
        if closing:
            await closing[0]
        else:
            restore()
