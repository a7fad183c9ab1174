"""What each API command does, in two steps: ``prepare`` checks its arguments and opens
its files before anything is sent (a problem there is a usage error, status 2), and
returns the ``Job`` that then runs with a ``SegmentsClient``.

stdout carries only data; messages go to stderr through ``Ui``. The bulk commands
(``create``, ``delete``, ``import``, ``delete-many``) run through ``bulk.Bulk``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import IO, Final, Literal

from .._client import SegmentsClient
from .._models import Segment
from .argtypes import segment_ids
from .bulk import Bulk, Job, Printer, creates, deletes
from .console import Ui
from .inputs import input_format, read_ids, read_names
from .outputs import SegmentsOutput, jsonl_lines, open_report, output_format
from .progress import Bar, NoBar
from .reader import ArgumentItems, FileItems, count_lines, open_input, source_name
from .status import EXIT_OK, UsageError

__all__ = ["PREPARE", "Prepare"]

#: A command's first step: its arguments checked and its files opened, the job to run.
Prepare = Callable[[argparse.Namespace, Ui, contextlib.ExitStack], Job]


def _prepare_list(args: argparse.Namespace, ui: Ui, files: contextlib.ExitStack) -> Job:
    to_terminal = args.output in (None, "-") and ui.stdout_is_terminal
    fmt = output_format(args.output, args.format, terminal=to_terminal)
    output = SegmentsOutput(args.output, fmt, files, ui.say, label="list")

    async def run(client: SegmentsClient) -> int:
        page = await client.segments.list(page=args.page, per_page=args.per_page)
        output.write(page.items)
        output.commit()
        shown = f"page {page.current_page} of {page.last_page}, {page.total:,} segments"
        if output.to_file and ui.stderr_is_terminal:
            ui.summary(f"wrote {output.written:,} segments ({shown}) to {args.output}")
        elif fmt == "table" and to_terminal:
            ui.summary(shown if page.items else f"no segments on page {page.current_page}; {shown}")
        return EXIT_OK

    return run


def _prepare_export(args: argparse.Namespace, ui: Ui, files: contextlib.ExitStack) -> Job:
    output = SegmentsOutput(
        args.output, output_format(args.output, args.format), files, ui.say, label="export"
    )
    bar = ui.bar("export", data_on_stdout=not output.to_file)
    export = _Export(args)

    async def run(client: SegmentsClient) -> int:
        batches = export.batches(client, bar)
        try:
            async with contextlib.aclosing(batches):
                async for segments in batches:
                    output.write(segments)
                    bar.advance(len(segments))
            output.commit()
        except asyncio.CancelledError:
            written = f"{output.written:,} segments"
            ui.interrupted_note = f" after {written}" + ("" if output.to_file else " were written")
            raise
        finally:
            bar.close()
            output.flush()
        if ui.stderr_is_terminal and output.to_file:
            ui.summary(f"exported {output.written:,} segments to {args.output}")
        return EXIT_OK

    return run


class _Export:
    """What an export asks for."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.limit: int | None = args.limit
        self.per_page: int = args.per_page if self.limit is None else min(args.per_page, self.limit)
        self.concurrency: int | Literal["auto"] = args.concurrency

    async def batches(self, client: SegmentsClient, bar: Bar) -> AsyncGenerator[Sequence[Segment]]:
        """The segments, a page's worth at a time; with ``--limit``, ``iterate(limit=)``
        asks for no page beyond those the limit needs."""
        segments = client.segments
        if self.limit is None:
            pages = segments.iter_pages(per_page=self.per_page, concurrency=self.concurrency)
            async with contextlib.aclosing(pages):
                started = False
                async for page in pages:
                    if not started:
                        started = True
                        bar.start(page.total)
                    yield page.items
            return
        bar.start(self.limit)
        batch: list[Segment] = []
        each = segments.iterate(
            per_page=self.per_page, concurrency=self.concurrency, limit=self.limit
        )
        async with contextlib.aclosing(each):
            async for segment in each:
                batch.append(segment)
                if len(batch) == self.per_page:
                    yield batch
                    batch = []
        if batch:
            yield batch


def _prepare_rename(args: argparse.Namespace, ui: Ui, files: contextlib.ExitStack) -> Job:
    (segment_id,) = segment_ids([args.segment_id])

    async def run(client: SegmentsClient) -> int:
        segment = await client.segments.update(segment_id, args.name)
        sys.stdout.buffer.write(jsonl_lines([segment]))
        sys.stdout.buffer.flush()
        return EXIT_OK

    return run


def _prepare_create(args: argparse.Namespace, ui: Ui, files: contextlib.ExitStack) -> Job:
    report = open_report(args.report, files)
    printer = Printer(sys.stdout.buffer)
    bulk = Bulk("create", ui, report, NoBar(), printer=printer)
    # Created segments are printed in the order of the arguments, as a script expects.
    return bulk.job(ArgumentItems(args.names), creates(args.concurrency, ordered=True))


def _prepare_delete(args: argparse.Namespace, ui: Ui, files: contextlib.ExitStack) -> Job:
    ids = segment_ids(args.segment_ids)
    report = open_report(args.report, files)
    bulk = Bulk("delete", ui, report, NoBar())
    return bulk.job(ArgumentItems(ids), deletes(args.concurrency))


def _prepare_import(args: argparse.Namespace, ui: Ui, files: contextlib.ExitStack) -> Job:
    fmt = input_format(args.file, args.format)
    source, report = _open_input_and_report(args.file, args.report, files)
    name = source_name(args.file)
    bar = ui.bar("import", data_on_stdout=False)
    lines = count_lines(args.file) if not isinstance(bar, NoBar) else None
    total = None if lines is None else max(0, lines - (fmt == "csv"))
    bulk = Bulk(
        "import",
        ui,
        report,
        bar,
        total=total,
        source=name,
        skip_existing=args.concurrency if args.skip_existing else None,
    )
    items = FileItems(source, lambda lines: read_names(lines, fmt, name))
    return bulk.job(items, creates(args.concurrency))


def _prepare_delete_many(args: argparse.Namespace, ui: Ui, files: contextlib.ExitStack) -> Job:
    source, report = _open_input_and_report(args.file, args.report, files)
    name = source_name(args.file)
    bar = ui.bar("delete-many", data_on_stdout=False)
    total = count_lines(args.file) if not isinstance(bar, NoBar) else None
    bulk = Bulk("delete-many", ui, report, bar, total=total, source=name)
    items = FileItems(source, lambda lines: read_ids(lines, name))
    return bulk.job(items, deletes(args.concurrency))


def _open_input_and_report(
    path: str, report: str | None, files: contextlib.ExitStack
) -> tuple[IO[bytes], IO[bytes] | None]:
    """The input file, and the report; refused when the report would overwrite the input."""
    if report is not None and path != "-" and os.path.realpath(report) == os.path.realpath(path):
        raise UsageError(f"--report {report} would overwrite the input file")
    return open_input(path, files), open_report(report, files)


PREPARE: Final[dict[str, Prepare]] = {
    "list": _prepare_list,
    "export": _prepare_export,
    "create": _prepare_create,
    "rename": _prepare_rename,
    "delete": _prepare_delete,
    "import": _prepare_import,
    "delete-many": _prepare_delete_many,
}
