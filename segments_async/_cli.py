"""The ``segments-async`` command line (also ``python -m segments_async``).

One argparse parser with a subcommand per job (DESIGN.md, "Command line"). An API command
runs in two steps: ``_prepare_*`` checks its arguments and opens its files before anything
is sent (a problem there is a usage error, exit status 2), and returns the job that
``asyncio.run`` then runs with a ``SegmentsClient``. stdout carries only data; messages,
the bulk summary and the progress bar go to stderr. rich draws the bar, imported only when
one is shown (stderr is a terminal and the ``cli`` extra is installed).

Ctrl-C: ``asyncio.run`` cancels the running job on the first SIGINT, so requests in flight
are cancelled and the client is closed as the job unwinds; files are flushed and closed,
one line goes to stderr, and the status is 130. A closed stdout (``| head``) ends the
command quietly with status 0, as the Python docs recommend for SIGPIPE.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import textwrap
import traceback
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Sequence,
)
from typing import IO, Any, Final, Literal, NoReturn, Protocol

from . import _cli_core as core
from . import _cli_io
from ._cli_core import UsageError
from ._client import SegmentsClient
from ._errors import AuthenticationError, ClientClosedError, PermissionDeniedError, SegmentsError
from ._models import BulkResult, Segment
from ._retry import RetryPolicy
from ._version import __version__

__all__ = ["PROG", "build_parser", "main"]

PROG: Final = "segments-async"

#: Failed items named on stderr; the rest are only counted (the report has them all).
_FAILURES_SHOWN: Final = 10
_FILE_BUFFER: Final = 1 << 16

Job = Callable[[SegmentsClient], Awaitable[int]]
_Results = AsyncGenerator[BulkResult[Any], None]

# --------------------------------------------------------------------------- the parser

_EXAMPLES: Final = {
    "list": "segments-async list --page 2 --per-page 50\n"
    "  segments-async list --json | jq -r .name",
    "export": "segments-async export --format csv --output segments.csv\n"
    "  segments-async export --limit 1000 | jq -r .id",
    "create": 'segments-async create "EMEA" "Central Europe"',
    "rename": 'segments-async rename 7f2d6e6d-a4ad-4b58-abfe-bd8b918ebec2 "DACH"',
    "delete": "segments-async delete 7f2d6e6d-a4ad-4b58-abfe-bd8b918ebec2",
    "import": "segments-async import names.csv --report import-report.jsonl\n"
    "  segments-async import names.csv --skip-existing   # again, after a crash\n"
    "  jq -c '{name: .title}' items.jsonl | segments-async import - --format jsonl",
    "delete-many": "segments-async delete-many ids.txt --report deleted.jsonl\n"
    "  segments-async export | jq -r 'select(.name | startswith(\"tmp\")) | .id'"
    " | segments-async delete-many -",
    "demo": "segments-async demo --segments 2000",
    "serve-fake": "segments-async serve-fake --port 8080 --segments 1000",
}

_BULK_DETAILS: Final = (
    " An item that fails (refused by the API, not a name, not an id, a 404, a line over"
    " 1 MiB) fails only itself: the status is then 1. A summary goes to stderr; --report"
    ' FILE writes a JSON line per input as its result comes: {"index", "line", "input",'
    ' "status": "ok"|"failed"|"unknown"|"skipped", "id"|"error"}. The first Ctrl-C stops'
    " sending and keeps every result that came back (status 130)."
)
_DETAILS: Final = {
    "export": " Streamed: memory stays the same whatever the number of segments. --output"
    " FILE is replaced only once the export has succeeded.",
    "create": _BULK_DETAILS,
    "delete": " Every id is checked before anything is sent." + _BULK_DETAILS,
    "import": " Nothing is printed on stdout; a line not in the file's format stops the command"
    " (status 2) after the items before it." + _BULK_DETAILS,
    "delete-many": " Nothing is printed on stdout; blank lines are skipped." + _BULK_DETAILS,
}

_MAIN_EPILOG: Final = """\
configuration:
  SEGMENTS_BASE_URL and SEGMENTS_API_TOKEN, or --base-url and --token-file FILE (- for
  stdin); the flags win. A token is never accepted on the command line.

exit status:
  0 done; 1 some items failed or their outcome is unknown; 2 usage error; 3 the API
  refused (4xx); 4 no usable answer (connection, timeout, 5xx); 130 interrupted.

example:
  export SEGMENTS_BASE_URL=https://api.example.com
  segments-async export --output segments.jsonl --token-file ~/.segments-token
"""


class _Parser(argparse.ArgumentParser):
    """Errors in one line (with where to look), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(core.EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _RefuseToken(argparse.Action):
    """``--token``: refused outright, so a token never sits in ``ps`` or shell history."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        parser.error(
            f"{option_string} is not accepted: a token on the command line is visible to "
            f"other users; use --token-file FILE (or - for stdin) or SEGMENTS_API_TOKEN"
        )


def _connection_options(parser: argparse.ArgumentParser, *, in_command: bool) -> None:
    """The global options; in a command their defaults stay unset, so that the value
    given before the command is kept unless the option is given again after it."""

    def default(value: object) -> object:
        return argparse.SUPPRESS if in_command else value

    group = parser.add_argument_group("connection options (before or after the command)")
    add = group.add_argument
    add("--base-url", metavar="URL", default=default(None), help="the API (SEGMENTS_BASE_URL)")
    add(
        "--token-file",
        metavar="FILE",
        default=default(None),
        help="a file holding the token, - for stdin (default: SEGMENTS_API_TOKEN)",
    )
    add(
        "--timeout",
        type=core.positive_float_arg,
        metavar="SECONDS",
        default=default(30.0),
        help="per attempt (default 30)",
    )
    add(
        "--deadline",
        type=core.positive_float_arg,
        metavar="SECONDS",
        default=default(None),
        help="per call, retries and waits included (default: none)",
    )
    add(
        "--retries",
        type=core.non_negative_int_arg,
        metavar="N",
        default=default(2),
        help="retries of a failed attempt (default 2)",
    )
    add(
        "--rate-limit",
        type=core.positive_float_arg,
        metavar="PER_SECOND",
        default=default(None),
        help="at most this many requests a second (default: no limit)",
    )
    add(
        "--allow-insecure-http",
        action="store_true",
        default=default(False),
        help="allow http:// to a host that is not this machine",
    )
    _debug_option(parser, in_command=in_command)


def _debug_option(parser: argparse.ArgumentParser, *, in_command: bool) -> None:
    parser.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS if in_command else False,
        help="log every request, and show the traceback of an error",
    )
    parser.add_argument("--token", nargs="?", action=_RefuseToken, help=argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: global options, then one subparser per command."""
    parser = _Parser(
        prog=PROG,
        description="The Segments API from the command line.",
        epilog=_MAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    _connection_options(parser, in_command=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (summary, add_arguments, uses_api) in _COMMANDS.items():
        sub = commands.add_parser(
            name,
            help=summary,
            description=textwrap.fill(
                f"{summary[0].upper()}{summary[1:]}.{_DETAILS.get(name, '')}"
            ),
            epilog=f"example:\n  {_EXAMPLES[name]}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
            allow_abbrev=False,
        )
        add_arguments(sub)
        if uses_api:
            _connection_options(sub, in_command=True)
        else:
            _debug_option(sub, in_command=True)
    return parser


def _concurrency(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--concurrency",
        type=core.concurrency_arg,
        default=16,
        metavar="N|auto",
        help=f"{what} in flight at once, or auto to adapt to the server (default 16)",
    )


def _report(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--report", metavar="FILE", help="write one JSON line per item: its status, id or error"
    )


def _add_list(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--page", type=core.positive_int_arg, default=1, help="default 1")
    parser.add_argument(
        "--per-page", type=core.positive_int_arg, default=20, help="default 20 (at most 100)"
    )
    parser.add_argument(
        "--json", action="store_true", help="JSON lines even on a terminal (the default elsewhere)"
    )


def _add_export(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=("jsonl", "csv"),
        help="default: from the --output extension (.csv), else jsonl",
    )
    parser.add_argument("--output", "-o", metavar="FILE", help="write here (default: stdout)")
    _concurrency(parser, "page requests")
    parser.add_argument(
        "--limit", type=core.positive_int_arg, metavar="N", help="stop after N segments"
    )
    parser.add_argument(
        "--per-page", type=core.positive_int_arg, default=100, help="page size (default 100)"
    )


def _add_create(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="+", metavar="NAME", help="a segment name")
    _concurrency(parser, "creates")
    _report(parser)


def _add_rename(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("segment_id", metavar="SEGMENT_ID")
    parser.add_argument("name", metavar="NAME")


def _add_delete(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("segment_ids", nargs="+", metavar="SEGMENT_ID")
    _concurrency(parser, "deletes")
    _report(parser)


def _add_import(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE|-", help="CSV with a name column, or JSON lines")
    parser.add_argument(
        "--format", choices=("csv", "jsonl"), help="default: from the extension (.csv, .jsonl)"
    )
    _concurrency(parser, "creates")
    _report(parser)
    parser.add_argument(
        "--skip-existing",
        action="store_true",
        help="read the existing names first and create only the missing ones (and each name once)",
    )


def _add_delete_many(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE|-", help="segment ids, one a line")
    _concurrency(parser, "deletes")
    _report(parser)


def _add_demo(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--segments", type=core.positive_int_arg, default=10_000, help="10000")
    parser.add_argument("--concurrency", type=core.positive_int_arg, default=16, help="16")


def _add_serve_fake(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--port", type=core.non_negative_int_arg, default=0, help="default: a free one"
    )
    parser.add_argument(
        "--segments", type=core.non_negative_int_arg, default=0, help="segments to create"
    )


_COMMANDS: Final[dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], bool]]] = {
    "list": ("print one page of segments (a table on a terminal)", _add_list, True),
    "export": ("write every segment as JSON lines or CSV, streamed", _add_export, True),
    "create": ("create segments, printing each as a JSON line", _add_create, True),
    "rename": ("rename a segment, printing it as a JSON line", _add_rename, True),
    "delete": ("delete segments by id", _add_delete, True),
    "import": ("create a segment for each name in a CSV or JSON lines file", _add_import, True),
    "delete-many": ("delete the segments a file lists by id, one a line", _add_delete_many, True),
    "demo": ("run the library against a local fake API and print a report", _add_demo, False),
    "serve-fake": ("serve a fake Segments API on this machine", _add_serve_fake, False),
}

# --------------------------------------------------------------------------- stderr


class _Bar(Protocol):
    def start(self, total: int | None) -> None: ...
    def advance(self, count: int) -> None: ...
    def close(self) -> None: ...


class _NoBar:
    """No progress shown (off a terminal, or without rich)."""

    def start(self, total: int | None) -> None:
        pass

    def advance(self, count: int) -> None:
        pass

    def close(self) -> None:
        pass


def _rich_bar(label: str) -> _Bar:
    """A rich progress bar on stderr: count, rate and ETA; ``_NoBar`` without rich."""
    try:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            Task,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text
    except ImportError:
        return _NoBar()

    class RateColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text("" if speed is None else f"{speed:,.0f}/s", style="progress.data.speed")

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        redirect_stdout=False,  # stdout is data: it must never pass through the console
    )
    task = progress.add_task(label, total=None)

    class RichBar:
        def start(self, total: int | None) -> None:
            progress.update(task, total=total)
            progress.start()

        def advance(self, count: int) -> None:
            progress.advance(task, count)

        def close(self) -> None:
            if progress.live.is_started:
                done = progress.tasks[0].completed
                progress.update(task, total=done, completed=done)  # an estimate, now exact
                progress.stop()

    return RichBar()


class _Ui:
    """stderr: messages, failed items, the progress bar, and the note of an interruption."""

    def __init__(self) -> None:
        self.stdout_is_terminal = _isatty(sys.stdout)
        self.stderr_is_terminal = _isatty(sys.stderr)
        self.interrupted_note = ""
        self._failures_shown = 0

    def say(self, text: str) -> None:
        print(f"{PROG}: {text}", file=sys.stderr, flush=True)

    def bar(self, label: str, *, data_on_stdout: bool) -> _Bar:
        """A bar if stderr is a terminal, unless the data is scrolling on that terminal too."""
        if not self.stderr_is_terminal or (data_on_stdout and self.stdout_is_terminal):
            return _NoBar()
        return _rich_bar(label)

    def item_failed(self, line: str) -> None:
        """A failed item's line (``core.failure_line``), for the first few of them."""
        self._failures_shown += 1
        if self._failures_shown <= _FAILURES_SHOWN:
            self.say(line)

    def more_failures(self, hint: str) -> None:
        hidden = self._failures_shown - _FAILURES_SHOWN
        if hidden > 0:
            self.say(f"... and {hidden:,} more not shown{hint}")


def _isatty(stream: IO[str] | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except ValueError:  # closed
        return False


class _StderrLog(logging.Handler):
    """The library's log records, a line each, on whatever ``sys.stderr`` is at the time
    (rich wraps it while a bar is shown, to print above the bar)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(f"{PROG}: {record.levelname.lower()}: {record.getMessage()}\n")
        except Exception:  # logging must not end the command
            self.handleError(record)


@contextlib.contextmanager
def _library_log(debug: bool) -> Iterator[None]:
    """The library's WARNINGs (a retry, a total that changed), or with ``--debug`` every
    request, on stderr while a command runs; the logger is left as it was found."""
    logger = logging.getLogger("segments_async")
    handler = _StderrLog()
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.WARNING)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


# --------------------------------------------------------------------------- files


def _open_atomic(
    path: str | None,
    files: contextlib.ExitStack,
    discarded: Callable[[_cli_io.AtomicOutput], None],
) -> _cli_io.AtomicOutput | None:
    """``--output FILE``, written beside FILE and renamed over it on success; ``discarded``
    says so if the command ends first. None for stdout."""
    if path is None or path == "-":
        return None
    try:
        output = _cli_io.AtomicOutput(path, _FILE_BUFFER)
    except OSError as error:
        raise UsageError(f"cannot write {path}: {error.strerror}") from None

    def discard() -> None:
        if output.discard():
            discarded(output)

    files.callback(discard)
    return output


def _open_report(path: str | None, files: contextlib.ExitStack) -> IO[bytes] | None:
    """``--report FILE``, written as results come (a crash leaves what was done)."""
    if path is None:
        return None
    if path == "-":
        raise UsageError("--report needs a file: stdout carries the command's data")
    try:
        return files.enter_context(open(path, "wb", buffering=_FILE_BUFFER))
    except OSError as error:
        raise UsageError(f"cannot write {path}: {error.strerror}") from None


def _open_input_and_report(
    path: str, report: str | None, files: contextlib.ExitStack
) -> tuple[IO[bytes], IO[bytes] | None]:
    """The input file, and the report; refused when the report would overwrite the input."""
    if report is not None and path != "-" and os.path.realpath(report) == os.path.realpath(path):
        raise UsageError(f"--report {report} would overwrite the input file")
    return _open_input(path, files), _open_report(report, files)


def _open_input(path: str, files: contextlib.ExitStack) -> IO[bytes]:
    if path == "-":
        return sys.stdin.buffer
    try:
        return files.enter_context(open(path, "rb"))
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None


def _count_lines(path: str) -> int | None:
    """Lines in a regular file, for the bar's total; None for stdin or a pipe."""
    if path == "-" or not os.path.isfile(path):
        return None
    count = 0
    with open(path, "rb") as source:
        while chunk := source.read(1 << 20):
            count += chunk.count(b"\n")
    return count


def _read_token(path: str) -> str:
    try:
        if path == "-":
            data = sys.stdin.buffer.read(core.MAX_TOKEN_FILE_BYTES + 1)
        else:
            with open(path, "rb") as source:
                data = source.read(core.MAX_TOKEN_FILE_BYTES + 1)
    except OSError as error:
        raise UsageError(f"cannot read the token file {path}: {error.strerror}") from None
    try:
        return core.token_from_bytes(data, path)
    finally:
        del data  # out of this frame before a traceback could show it


# --------------------------------------------------------------------------- the client


def _client(args: argparse.Namespace) -> SegmentsClient:
    """The client the options describe; a usage error for a missing or bad setting."""
    base_url = args.base_url or os.environ.get("SEGMENTS_BASE_URL") or None
    if base_url is None:
        raise UsageError("no API address: set SEGMENTS_BASE_URL or pass --base-url URL")
    if args.token_file is None and not os.environ.get("SEGMENTS_API_TOKEN"):
        raise UsageError("no API token: set SEGMENTS_API_TOKEN or pass --token-file FILE")
    concurrency = getattr(args, "concurrency", 16)
    try:
        return SegmentsClient(
            base_url,
            # Read here, so that the token lives in no local variable of ours.
            _read_token(args.token_file)
            if args.token_file is not None
            else os.environ["SEGMENTS_API_TOKEN"],
            timeout=args.timeout,
            deadline=args.deadline,
            retry=RetryPolicy(max_retries=args.retries),
            rate_limit=args.rate_limit,
            allow_insecure_http=args.allow_insecure_http,
            max_connections=max(100, concurrency if isinstance(concurrency, int) else 0),
        )
    except (TypeError, ValueError) as error:
        message = str(error).replace("pass allow_insecure_http=True", "pass --allow-insecure-http")
        raise UsageError(message) from None


async def _run_job(client: SegmentsClient, job: Job) -> int:
    async with client:
        return await job(client)


# --------------------------------------------------------------------------- commands


def _prepare_list(args: argparse.Namespace, ui: _Ui, files: contextlib.ExitStack) -> Job:
    as_table = not args.json and ui.stdout_is_terminal

    async def run(client: SegmentsClient) -> int:
        page = await client.segments.list(page=args.page, per_page=args.per_page)
        out = sys.stdout.buffer
        if as_table:
            out.write("".join(f"{line}\n" for line in core.table_lines(page.items)).encode())
            shown = f"page {page.current_page} of {page.last_page}, {page.total:,} segments"
            ui.say(shown if page.items else f"no segments on page {page.current_page}; {shown}")
        else:
            out.write(core.jsonl_lines(page.items))
        out.flush()
        return core.EXIT_OK

    return run


def _prepare_export(args: argparse.Namespace, ui: _Ui, files: contextlib.ExitStack) -> Job:
    fmt = core.output_format(args.output, args.format)
    export = _Export(args, ui)
    output = _open_atomic(args.output, files, export.discarded)
    out = sys.stdout.buffer if output is None else output.file
    bar = ui.bar("export", data_on_stdout=output is None)
    encode = core.csv_lines if fmt == "csv" else core.jsonl_lines

    async def run(client: SegmentsClient) -> int:
        if fmt == "csv":
            out.write(core.csv_header())
        batches = export.batches(client, bar)
        try:
            async with contextlib.aclosing(batches):
                async for segments in batches:
                    out.write(encode(segments))
                    export.written += len(segments)
                    bar.advance(len(segments))
            if output is not None:
                output.commit()
        except asyncio.CancelledError:
            ui.interrupted_note = export.interrupted_note(output)
            raise
        finally:
            bar.close()
            if output is None:
                out.flush()
        if ui.stderr_is_terminal and output is not None:
            ui.say(f"exported {export.written:,} segments to {args.output}")
        return core.EXIT_OK

    return run


class _Export:
    """What an export asks for, and how far it got."""

    def __init__(self, args: argparse.Namespace, ui: _Ui) -> None:
        self.ui = ui
        self.limit: int | None = args.limit
        self.per_page: int = args.per_page if self.limit is None else min(args.per_page, self.limit)
        self.concurrency: int | Literal["auto"] = args.concurrency
        self.written = 0

    async def batches(self, client: SegmentsClient, bar: _Bar) -> AsyncGenerator[Sequence[Segment]]:
        """The segments, a page's worth at a time; with ``--limit``, ``iterate(limit=)``
        asks for no page beyond those the limit needs."""
        segments = client.segments
        if self.limit is None:
            pages = segments.iter_pages(per_page=self.per_page, concurrency=self.concurrency)
            async with contextlib.aclosing(pages):
                async for page in pages:
                    if not self.written:
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

    def interrupted_note(self, output: _cli_io.AtomicOutput | None) -> str:
        if output is None:
            return f" after {self.written:,} segments were written"
        return f" after {self.written:,} segments"

    def discarded(self, output: _cli_io.AtomicOutput) -> None:
        """The export did not finish: say what became of the file and of the partial one."""
        kept = "was left as it was" if output.existed else "was not created"
        self.ui.say(
            f"{output.path} {kept}; the partial export ({self.written:,} segments) was removed"
        )


def _prepare_rename(args: argparse.Namespace, ui: _Ui, files: contextlib.ExitStack) -> Job:
    (segment_id,) = core.segment_ids([args.segment_id])

    async def run(client: SegmentsClient) -> int:
        segment = await client.segments.update(segment_id, args.name)
        sys.stdout.buffer.write(core.jsonl_lines([segment]))
        sys.stdout.buffer.flush()
        return core.EXIT_OK

    return run


def _prepare_create(args: argparse.Namespace, ui: _Ui, files: contextlib.ExitStack) -> Job:
    report = _open_report(args.report, files)
    bulk = _Bulk("create", ui, report, _NoBar(), printer=_Printer(sys.stdout.buffer))
    # Created segments are printed in the order of the arguments, as a script expects.
    return bulk.job(_ArgumentItems(args.names), _creates(args.concurrency, ordered=True))


def _prepare_delete(args: argparse.Namespace, ui: _Ui, files: contextlib.ExitStack) -> Job:
    ids = core.segment_ids(args.segment_ids)
    report = _open_report(args.report, files)
    bulk = _Bulk("delete", ui, report, _NoBar())
    return bulk.job(_ArgumentItems(ids), _deletes(args.concurrency))


def _prepare_import(args: argparse.Namespace, ui: _Ui, files: contextlib.ExitStack) -> Job:
    fmt = core.input_format(args.file, args.format)
    source, report = _open_input_and_report(args.file, args.report, files)
    name = _source_name(args.file)
    bar = ui.bar("import", data_on_stdout=False)
    lines = _count_lines(args.file) if not isinstance(bar, _NoBar) else None
    total = None if lines is None else max(0, lines - (fmt == "csv"))
    bulk = _Bulk(
        "import",
        ui,
        report,
        bar,
        total=total,
        source=name,
        skip_existing=args.skip_existing,
        concurrency=args.concurrency,
    )
    items = _FileItems(source, lambda lines: core.read_names(lines, fmt, name))
    return bulk.job(items, _creates(args.concurrency))


def _prepare_delete_many(args: argparse.Namespace, ui: _Ui, files: contextlib.ExitStack) -> Job:
    source, report = _open_input_and_report(args.file, args.report, files)
    name = _source_name(args.file)
    bar = ui.bar("delete-many", data_on_stdout=False)
    total = _count_lines(args.file) if not isinstance(bar, _NoBar) else None
    bulk = _Bulk("delete-many", ui, report, bar, total=total, source=name)
    items = _FileItems(source, lambda lines: core.read_ids(lines, name))
    return bulk.job(items, _deletes(args.concurrency))


def _source_name(path: str) -> str:
    return "stdin" if path == "-" else path


#: A bulk operation of the client over the inputs the command hands it.
_Operation = Callable[[SegmentsClient, AsyncIterable[Any]], _Results]


def _creates(concurrency: int | Literal["auto"], *, ordered: bool = False) -> _Operation:
    """Results as they finish, by default: one slow item holds back no line of the report,
    and an interrupt loses none (``ordered`` for output whose order is the arguments')."""

    def operation(client: SegmentsClient, names: AsyncIterable[Any]) -> _Results:
        # A name that is not a str is passed on on purpose: it fails only its own item.
        segments = client.segments
        return segments.create_many(names, concurrency=concurrency, ordered=ordered)

    return operation


def _deletes(concurrency: int | Literal["auto"]) -> _Operation:
    def operation(client: SegmentsClient, ids: AsyncIterable[Any]) -> _Results:
        return client.segments.delete_many(ids, concurrency=concurrency, ordered=False)

    return operation


class _Items(Protocol):
    """The items of a bulk command's input, each with its line; ``error`` once they end
    early at a line not in the input's format; ``stop()`` ends them at once (Ctrl-C)."""

    def __aiter__(self) -> AsyncGenerator[core.Item]: ...

    def stop(self) -> None: ...

    @property
    def error(self) -> core.InputError | None: ...


class _ArgumentItems:
    """The command's arguments as items (no line numbers)."""

    error = None

    def __init__(self, values: Sequence[str]) -> None:
        self._values = values
        self._stopped = False

    def stop(self) -> None:
        self._stopped = True

    async def __aiter__(self) -> AsyncGenerator[core.Item]:
        for value in self._values:
            if self._stopped:
                return
            yield None, value


class _FileItems:
    """An input file's items, read and parsed in a thread (never on the event loop)."""

    def __init__(
        self, file: IO[bytes], parse: Callable[[Iterable[bytes | core.LongLine]], core.InputItems]
    ) -> None:
        self._fd = file.fileno()
        self._parse = parse
        self._items: core.InputItems | None = None
        self._threaded = _cli_io.ThreadItems(self._read)

    def _read(self, flush: Callable[[], None]) -> core.InputItems:
        self._items = self._parse(core.capped_lines(_cli_io.read_chunks(self._fd, flush)))
        return self._items

    def __aiter__(self) -> AsyncGenerator[core.Item]:
        return aiter(self._threaded)

    def stop(self) -> None:
        self._threaded.stop()

    @property
    def error(self) -> core.InputError | None:
        return None if self._items is None else self._items.error


class _Printer:
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
            self.out.write(core.jsonl_lines([segment]))
            self.out.flush()
        except BrokenPipeError:
            _quiet_stdout()
            self.lost = 1


class _Bulk:
    """Runs a bulk command: hands the input's items to the operation (skipping, or
    failing alone, those it cannot send), then writes a report line per item as results
    come, created segments on stdout, failures on stderr, the bar and a summary; the exit
    status from the tally. The first Ctrl-C closes the client: every result that came back
    is still reported and counted (writes in flight become "unknown"), then status 130."""

    def __init__(
        self,
        label: str,
        ui: _Ui,
        report: IO[bytes] | None,
        bar: _Bar,
        *,
        printer: _Printer | None = None,
        total: int | None = None,
        source: str | None = None,
        skip_existing: bool = False,
        concurrency: int | Literal["auto"] = 16,
    ) -> None:
        self.label = label
        self.concurrency = concurrency
        self.ui = ui
        self.report = report
        self.bar = bar
        self.printer = printer
        self.total = total
        self.source = source
        self.tally = core.Tally(skipping=skip_existing)
        self.existing: set[str] | None = set() if skip_existing else None
        self.interrupted = False
        self._read = 0  # items read from the input
        self._sent = 0  # items handed to the operation, which numbers them from 0 as well
        self._handed: dict[int, tuple[int, int | None]] = {}  # its index -> ours, and the line

    def job(self, items: _Items, operation: _Operation) -> Job:
        async def run(client: SegmentsClient) -> int:
            async with _first_ctrl_c(client, lambda: self._interrupt(items)):
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
                    self._summarize()
                    raise
            self._summarize()
            if self.interrupted:
                self.ui.say("interrupted: the results that came back are counted above")
                return core.EXIT_INTERRUPTED
            if items.error is not None:
                raise items.error
            return self.tally.exit_status()

        return run

    def _interrupt(self, items: _Items) -> None:
        self.interrupted = True
        items.stop()  # the operation may be waiting for input, with nothing in flight
        self.ui.say("interrupted: finishing the report (Ctrl-C again to stop at once)")

    async def _read_existing(self, client: SegmentsClient) -> None:
        assert self.existing is not None
        segments = client.segments.iterate(concurrency=self.concurrency)
        async with contextlib.aclosing(segments):
            async for segment in segments:
                self.existing.add(segment.name)

    async def _inputs(self, items: _Items) -> AsyncGenerator[object]:
        """The items the operation is to send; the others are settled here, unsent."""
        read = aiter(items)
        async with contextlib.aclosing(read):
            async for line, value in read:
                index = self._read
                self._read += 1
                if isinstance(value, core.Unreadable):
                    self._settle(core.unreadable_entry(index, line, value))
                    continue
                if self.existing is not None and isinstance(value, str):
                    if value in self.existing:
                        self._settle(core.Entry(index, line, value, "skipped"))
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
                    entry = core.result_entry(result, index, line)
                    stops = isinstance(result.error, AuthenticationError | PermissionDeniedError)
                    self._settle(entry, quiet=stops)
                    if self.printer is not None and isinstance(result.value, Segment):
                        self.printer.print(result.value)
        finally:
            self.bar.close()

    def _settle(self, entry: core.Entry, *, quiet: bool = False) -> None:
        self.tally.add(entry)
        if self.report is not None:
            self.report.write(core.report_line(entry))
        if entry.status in ("failed", "unknown") and not quiet:
            self.ui.item_failed(core.failure_line(entry, self.source))
        self.bar.advance(1)

    def _summarize(self) -> None:
        hint = "" if self.report is not None else " (--report FILE records every item)"
        self.ui.more_failures(hint)
        self.ui.say(f"{self.label}: {self.tally.summary()}")
        if self.printer is not None and self.printer.lost:
            self.ui.say(
                f"stdout was closed: {self.printer.lost:,} created segments were not printed{hint}"
            )


@contextlib.asynccontextmanager
async def _first_ctrl_c(
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


_PREPARE: Final[dict[str, Callable[[argparse.Namespace, _Ui, contextlib.ExitStack], Job]]] = {
    "list": _prepare_list,
    "export": _prepare_export,
    "create": _prepare_create,
    "rename": _prepare_rename,
    "delete": _prepare_delete,
    "import": _prepare_import,
    "delete-many": _prepare_delete_many,
}

# --------------------------------------------------------------------------- main


def _run(args: argparse.Namespace, ui: _Ui) -> int:
    if args.command == "demo":
        from ._demo import demo

        return asyncio.run(demo(args.segments, args.concurrency, sys.stdout))
    if args.command == "serve-fake":
        from .testing.__main__ import main as serve

        return serve(["--port", str(args.port), "--segments", str(args.segments)])
    if args.token_file == "-" and getattr(args, "file", None) == "-":  # noqa: S105 - a path
        raise UsageError("stdin cannot be both the token file and the input file")
    # The configuration first: a missing token must not cost an output file its contents.
    client = _client(args)
    with contextlib.ExitStack() as files:
        job = _PREPARE[args.command](args, ui, files)
        return asyncio.run(_run_job(client, job))


def _quiet_stdout() -> None:
    """After a broken pipe: stdout to /dev/null, so the interpreter's final flush of
    stdout cannot fail again (the Python docs' recipe for SIGPIPE)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (the console script exits with it)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else core.EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return core.EXIT_USAGE
    ui = _Ui()
    # The demo shows the library's log in its report; on stderr it would say it twice.
    own_log = args.command == "demo" and not args.debug
    try:
        with contextlib.nullcontext() if own_log else _library_log(args.debug):
            return _run(args, ui)
    except KeyboardInterrupt:
        ui.say(f"interrupted{ui.interrupted_note}")
        return core.EXIT_INTERRUPTED
    except BrokenPipeError:
        _quiet_stdout()
        return core.EXIT_OK
    except Exception as error:  # every error ends as one line and a status
        if args.debug:
            traceback.print_exc()
        ui.say(f"error: {core.error_message(error)}")
        return core.exit_status(error)
