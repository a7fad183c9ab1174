"""The command line's core, without I/O: checks, input readers, output lines, exit statuses.

Everything here is a pure function of its arguments (readers take an iterable of the
file's lines as bytes), so it is tested without a process, a terminal or a network;
``_cli`` does the reading, writing, parsing and running.

Exit statuses (DESIGN.md, "Command line")::

    0    everything was done
    1    some items of a bulk command failed, or their outcome is unknown
    2    usage: a bad option or id, an unreadable file, a file not in its format
    3    the API refused (a 4xx, a 429 after the retries included)
    4    no usable answer (connection, timeout, 5xx, an answer that cannot be read)
    130  interrupted (Ctrl-C)
"""

from __future__ import annotations

import argparse
import codecs
import csv
import io
import math
from collections.abc import Iterable, Iterator, Sequence
from pathlib import PurePath
from typing import Any, Final, Literal

import attrs
import orjson

from . import _wire
from ._errors import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    ClientClosedError,
    InternalServerError,
    PermissionDeniedError,
    RateLimitError,
    SegmentsError,
)
from ._models import BulkResult, Segment
from ._options import check_token

__all__ = [
    "EXCERPT_CHARS",
    "EXIT_FAILED_ITEMS",
    "EXIT_INTERRUPTED",
    "EXIT_NO_ANSWER",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "MAX_LINE_BYTES",
    "Entry",
    "InputError",
    "InputItems",
    "Item",
    "LongLine",
    "Tally",
    "Unreadable",
    "UsageError",
    "capped_lines",
    "concurrency_arg",
    "csv_header",
    "csv_lines",
    "error_message",
    "excerpt",
    "exit_status",
    "failure_line",
    "input_format",
    "jsonl_lines",
    "non_negative_int_arg",
    "output_format",
    "positive_float_arg",
    "positive_int_arg",
    "read_ids",
    "read_names",
    "report_line",
    "report_record",
    "result_entry",
    "segment_ids",
    "table_lines",
    "terminal_safe",
    "token_from_bytes",
    "unreadable_entry",
]

EXIT_OK: Final = 0
EXIT_FAILED_ITEMS: Final = 1
EXIT_USAGE: Final = 2
EXIT_REFUSED: Final = 3
EXIT_NO_ANSWER: Final = 4
EXIT_INTERRUPTED: Final = 130

Format = Literal["csv", "jsonl"]

#: What a file's extension says about its format.
_FORMAT_BY_SUFFIX: Final[dict[str, Format]] = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}

#: A token file is a few dozen bytes; anything much bigger is the wrong file.
MAX_TOKEN_FILE_BYTES: Final = 8192


class UsageError(Exception):
    """The command cannot run as given: exit status 2, one line, nothing sent."""


class InputError(UsageError):
    """A line of an input file that is not in the file's format."""

    def __init__(self, source: str, line: int, message: str) -> None:
        super().__init__(f"{source}, line {line}: {message}")
        self.source = source
        self.line = line


# --------------------------------------------------------------------------- arguments


def positive_int_arg(text: str) -> int:
    """argparse type: an int >= 1."""
    value = _int_arg(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def non_negative_int_arg(text: str) -> int:
    """argparse type: an int >= 0."""
    value = _int_arg(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _int_arg(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def positive_float_arg(text: str) -> float:
    """argparse type: a finite number of seconds (or requests a second) above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number above 0, got {text!r}")
    return value


def concurrency_arg(text: str) -> int | Literal["auto"]:
    """argparse type: ``auto`` or an int >= 1."""
    if text == "auto":
        return "auto"
    try:
        return positive_int_arg(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"must be an integer >= 1 or 'auto', got {text!r}"
        ) from None


def segment_ids(texts: Sequence[str]) -> list[str]:
    """Ids given as arguments, each checked: a ``UsageError`` names the first bad one."""
    for text in texts:
        try:
            _wire.segment_path(text)
        except ValueError:
            raise UsageError(
                f"not a segment id: {_wire.short_repr(text)} (ids are UUIDs like "
                f"7f2d6e6d-a4ad-4b58-abfe-bd8b918ebec2)"
            ) from None
    return list(texts)


def token_from_bytes(data: bytes, source: str) -> str:
    """The token a token file holds (surrounding white space dropped), never echoed."""
    if len(data) > MAX_TOKEN_FILE_BYTES:
        raise UsageError(f"the token file {source} is too large to hold a token")
    try:
        text = data.decode("utf-8-sig").strip()
    except UnicodeDecodeError:
        raise UsageError(f"the token file {source} is not text") from None
    if not text:
        raise UsageError(f"the token file {source} is empty")
    try:
        return check_token(text)
    except (TypeError, ValueError):
        raise UsageError(
            f"the token file {source} does not hold one token (printable ASCII, no spaces)"
        ) from None


def input_format(path: str, given: str | None) -> Format:
    """The format of an input file: ``--format``, or else the file's extension."""
    if given is not None:
        return "csv" if given == "csv" else "jsonl"
    if path == "-":
        raise UsageError("reading stdin (-) needs --format csv or --format jsonl")
    found = _FORMAT_BY_SUFFIX.get(PurePath(path).suffix.lower())
    if found is None:
        raise UsageError(
            f"cannot tell the format of {path} from its extension (.csv, .jsonl or .ndjson): "
            f"pass --format csv or --format jsonl"
        )
    return found


def output_format(path: str | None, given: str | None) -> Format:
    """The format of an export: ``--format``, else the output file's extension, else jsonl."""
    if given is not None:
        return "csv" if given == "csv" else "jsonl"
    if path is not None:
        return _FORMAT_BY_SUFFIX.get(PurePath(path).suffix.lower(), "jsonl")
    return "jsonl"


# --------------------------------------------------------------------------- input files

#: The longest input line read whole: above the fake's (and aiohttp's) 1 MiB body limit,
#: so no line the API could accept is cut; a longer one fails alone, read in passing.
MAX_LINE_BYTES: Final = 1 << 20
#: How much of an input is echoed (in the report, on stderr) when it is longer.
EXCERPT_CHARS: Final = 200
#: An input up to this long is echoed whole.
_ECHOED_WHOLE: Final = 256
#: Enough of a long line's start for an excerpt of ``EXCERPT_CHARS`` characters.
_HEAD_BYTES: Final = 4 * EXCERPT_CHARS


@attrs.frozen
class LongLine:
    """A line over ``MAX_LINE_BYTES``, read in passing: its size, its first bytes, and how
    many double quotes it held (so that a CSV reader can stay in step with the file)."""

    size: int
    head: bytes
    quotes: int


@attrs.frozen
class Unreadable:
    """An input item that cannot be sent (a line too long, a CSV field over csv's limit):
    it fails alone, with ``reason``; ``excerpt`` stands for it in the report."""

    reason: str
    excerpt: str


#: An input item and the 1-based line it starts on (``None`` for a command-line argument).
Item = tuple[int | None, object]


def capped_lines(chunks: Iterable[bytes], cap: int = MAX_LINE_BYTES) -> Iterator[bytes | LongLine]:
    """The lines of a stream of chunks, each with its newline; a line longer than ``cap``
    bytes is a ``LongLine``, so that memory stays bounded whatever the input."""
    pending = _Pending(cap)
    for chunk in chunks:
        *complete, rest = chunk.split(b"\n")
        for piece in complete:
            line = piece + b"\n"
            if not pending.size and len(line) <= cap:
                yield line
            else:
                pending.add(line)
                yield pending.take()
        if rest:
            pending.add(rest)
    if pending.size:
        yield pending.take()


class _Pending:
    """The line being read: its pieces while within the cap, then only its size and head."""

    __slots__ = ("_cap", "_head", "_last", "_parts", "_quotes", "size")

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._parts: list[bytes] | None = []
        self._head = b""
        self._last = b""
        self._quotes = 0
        self.size = 0

    def add(self, piece: bytes) -> None:
        self.size += len(piece)
        self._last = piece
        if self._parts is None:
            self._quotes += piece.count(b'"')
            if len(self._head) < _HEAD_BYTES:
                self._head += piece[: _HEAD_BYTES - len(self._head)]
            return
        self._parts.append(piece)
        if self.size > self._cap:
            whole = b"".join(self._parts)
            self._head, self._quotes, self._parts = whole[:_HEAD_BYTES], whole.count(b'"'), None

    def take(self) -> bytes | LongLine:
        if self._parts is None:
            # The size of what the line holds, as a user counts it: without its newline.
            newline = self._last.endswith(b"\n")
            line: bytes | LongLine = LongLine(self.size - newline, self._head, self._quotes)
        else:
            line = b"".join(self._parts)
        self._parts, self._head, self._quotes, self.size = [], b"", 0, 0
        return line


def excerpt(text: str, size: int | None = None) -> str:
    """``text`` if it is short, else its start and its size: what is echoed of an input."""
    if size is None and len(text) <= _ECHOED_WHOLE:
        return text
    size = len(text.encode("utf-8", "surrogatepass")) if size is None else size
    return f"{text[:EXCERPT_CHARS]}... ({size:,} bytes)"


def _too_long(line: LongLine) -> Unreadable:
    text = line.head.decode("utf-8", "backslashreplace")
    return Unreadable(
        f"longer than the {MAX_LINE_BYTES >> 20} MiB a line may have ({line.size:,} bytes)",
        excerpt(text, line.size),
    )


class InputItems:
    """The items of an input file, read lazily, one line at a time, with their line numbers.

    Iteration stops at the first line that is not in the file's format and keeps that
    line's ``InputError`` in ``error``: the bulk operation then finishes the items before
    it, and the command reports them before failing with the error.
    """

    __slots__ = ("_items", "error")

    def __init__(self, items: Iterator[Item]) -> None:
        self._items = items
        self.error: InputError | None = None

    def __iter__(self) -> InputItems:
        return self

    def __next__(self) -> Item:
        if self.error is not None:
            raise StopIteration
        try:
            return next(self._items)
        except InputError as error:
            self.error = error
            raise StopIteration from None


def read_names(lines: Iterable[bytes | LongLine], fmt: Format, source: str) -> InputItems:
    """The names of a CSV file (its ``name`` column) or of JSON lines (``{"name": ...}``).

    A name that is not a string (``{"name": 5}``) is passed on: it fails only its own item,
    as does an ``Unreadable`` one (a line over the cap, a CSV field over csv's limit).
    """
    if fmt == "csv":
        return InputItems(_csv_names(lines, source))
    return InputItems(_jsonl_names(lines, source))


def read_ids(lines: Iterable[bytes | LongLine], source: str) -> InputItems:
    """Segment ids, one a line; blank lines are skipped, a bad id fails only its item."""
    return InputItems(_ids(lines, source))


def _numbered(lines: Iterable[bytes | LongLine]) -> Iterator[tuple[int, bytes | LongLine]]:
    """(line number, line) from 1, with a UTF-8 byte order mark dropped from line 1."""
    for number, line in enumerate(lines, 1):
        if number == 1 and isinstance(line, bytes) and line.startswith(codecs.BOM_UTF8):
            yield number, line[len(codecs.BOM_UTF8) :]
        else:
            yield number, line


def _text(line: bytes, source: str, number: int) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(source, number, "not UTF-8 text") from None


def _ids(lines: Iterable[bytes | LongLine], source: str) -> Iterator[Item]:
    for number, line in _numbered(lines):
        if isinstance(line, LongLine):
            yield number, _too_long(line)
        elif text := _text(line, source, number).strip():
            yield number, text


def _jsonl_names(lines: Iterable[bytes | LongLine], source: str) -> Iterator[Item]:
    for number, line in _numbered(lines):
        if isinstance(line, LongLine):
            yield number, _too_long(line)
            continue
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise InputError(source, number, "not valid JSON") from None
        if not isinstance(record, dict) or "name" not in record:
            raise InputError(source, number, 'not a JSON object with a "name"')
        yield number, record["name"]


class _CsvFeed:
    """The lines csv.reader reads, tracked record by record: where the record started,
    its size, its quotes, and a line over the cap in it (which csv is given as a stub with
    the same quote parity, so that it stays in step with the file)."""

    __slots__ = (
        "_ending",
        "_lines",
        "_source",
        "chars",
        "head",
        "long",
        "number",
        "quotes",
        "size",
        "start",
    )

    def __init__(self, lines: Iterable[bytes | LongLine], source: str) -> None:
        self._lines = _numbered(lines)
        self._source = source
        self.number = 0  # the last line handed out
        self.new_record()

    def new_record(self) -> None:
        self.start = self.number + 1
        self.chars = self.quotes = self.size = self._ending = 0
        self.head = ""
        self.long: LongLine | None = None

    def __iter__(self) -> _CsvFeed:
        return self

    def __next__(self) -> str:
        self.number, line = next(self._lines)
        if isinstance(line, LongLine):
            self.long = self.long or line
            self.quotes += line.quotes
            self.chars += line.size
            self.size += line.size
            self._ending = 0
            return '"' if line.quotes % 2 else ""
        text = _text(line, self._source, self.number)
        self.quotes += text.count('"')
        self.chars += len(text)
        self.size += len(line)
        self._ending = len(line) - len(line.rstrip(b"\r\n"))
        if len(self.head) < EXCERPT_CHARS:
            self.head += text[:EXCERPT_CHARS]
        return text

    def long_line(self) -> LongLine | None:
        """The first line of the record over the cap, if any."""
        return self.long

    def excerpt(self) -> str:
        """The record's start and its size in bytes (without its line end)."""
        return excerpt(self.head, self.size - self._ending)

    def skip_quoted_rest(self) -> None:
        """After csv gave up on a record, drop its lines up to where its quotes close."""
        while self.quotes % 2:
            try:
                next(self)
            except StopIteration:
                return


def _csv_names(lines: Iterable[bytes | LongLine], source: str) -> Iterator[Item]:
    feed = _CsvFeed(lines, source)
    reader = csv.reader(feed, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as error:
        raise InputError(source, 1, f"not valid CSV ({error})") from None
    if header is None:
        return
    if feed.long_line() is not None:
        raise InputError(source, 1, f"the header is longer than {MAX_LINE_BYTES >> 20} MiB")
    column = _name_column(header, source)
    # csv's field limit is process-wide state: read, never raised, so a field over it
    # fails its own record instead (the API would refuse such a name anyway).
    limit = csv.field_size_limit()
    while True:
        feed.new_record()
        try:
            row = next(reader, None)
        except csv.Error as error:
            if feed.chars < limit:
                raise InputError(source, feed.start, f"not valid CSV ({error})") from None
            feed.skip_quoted_rest()
            reason = f"a field longer than the {limit:,} characters csv reads"
            yield feed.start, Unreadable(reason, feed.excerpt())
            continue
        if row is None:
            return
        if (long := feed.long_line()) is not None:
            yield feed.start, _too_long(long)
        elif not row:
            continue  # a blank line
        elif len(row) <= column:
            raise InputError(source, feed.start, "no value in the name column")
        else:
            yield feed.start, row[column]


def _name_column(header: list[str], source: str) -> int:
    names = [cell.strip().lower() for cell in header]
    if "name" not in names:
        found = ", ".join(_wire.short_repr(cell) for cell in header[:5]) or "nothing"
        raise InputError(source, 1, f'the header has no "name" column (found {found})')
    return names.index("name")


# --------------------------------------------------------------------------- output


def jsonl_lines(segments: Iterable[Segment]) -> bytes:
    """Segments as JSON lines, ``{"id": ..., "name": ...}``, each ending in a newline."""
    dumps, option = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    return b"".join([dumps({"id": s.id, "name": s.name}, option=option) for s in segments])


def csv_header() -> bytes:
    return b"id,name\r\n"


def csv_lines(segments: Iterable[Segment]) -> bytes:
    """Segments as CSV rows (RFC 4180, quoted where needed), without the header.

    Lines end in CRLF, csv's default: with a bare LF as the line end, csv would leave a
    name holding a bare CR unquoted, and a reader would split the row there.
    """
    buffer = io.StringIO()
    csv.writer(buffer).writerows([(s.id, s.name) for s in segments])
    return buffer.getvalue().encode("utf-8")


def terminal_safe(text: str) -> str:
    """``text`` with every non-printable character escaped, so a name cannot drive the
    terminal (escape sequences, bidi overrides, carriage returns)."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in text)


def table_lines(segments: Sequence[Segment]) -> list[str]:
    """A plain two-column table for a terminal: ``ID`` and ``NAME``."""
    lines = [f"{'ID':<36}  NAME"]
    lines += [f"{terminal_safe(s.id):<36}  {terminal_safe(s.name)}" for s in segments]
    return lines


Status = Literal["ok", "failed", "unknown", "skipped"]


@attrs.frozen
class Entry:
    """What became of one input item: a line of the report, and what the tally counts.

    ``index`` is the item's 0-based position in the input, ``line`` the 1-based line of
    the input file it starts on (``None`` for a command-line argument).
    """

    index: int
    line: int | None
    input: object
    status: Status
    id: str | None = None
    error: str | None = None


def result_entry(result: BulkResult[Any], index: int, line: int | None) -> Entry:
    """The entry of a bulk operation's result; a delete's id is its input, as sent."""
    if result.error is None:
        value = result.value
        found = value.id if isinstance(value, Segment) else str(result.input).lower()
        return Entry(index, line, result.input, "ok", id=found)
    status: Status = "unknown" if result.outcome_unknown else "failed"
    return Entry(index, line, result.input, status, error=item_error(result.error))


def unreadable_entry(index: int, line: int | None, item: Unreadable) -> Entry:
    """The entry of an item that could not be read whole: failed, and never sent."""
    return Entry(index, line, item.excerpt, "failed", error=item.reason)


def report_record(entry: Entry) -> dict[str, object]:
    """One report line: index, line, input (an excerpt if long), status, id or error."""
    record: dict[str, object] = {"index": entry.index}
    if entry.line is not None:
        record["line"] = entry.line
    record["input"] = _echoed(entry.input)
    record["status"] = entry.status
    if entry.id is not None:
        record["id"] = entry.id
    if entry.error is not None:
        record["error"] = entry.error
    return record


def report_line(entry: Entry) -> bytes:
    """``report_record`` as a JSON line."""
    return orjson.dumps(report_record(entry), option=orjson.OPT_APPEND_NEWLINE)


def failure_line(entry: Entry, source: str | None) -> str:
    """A failed item on stderr: where it is in the input (the 1-based line of a file, or
    the argument), an excerpt of it, and what went wrong."""
    where = f"argument {entry.index + 1}" if entry.line is None else f"{source}, line {entry.line}"
    shown = terminal_safe(repr(_echoed(entry.input)))
    status = "unknown outcome" if entry.status == "unknown" else entry.status
    return f"{where}: {shown}: {status}: {entry.error}"


def _echoed(value: object) -> object:
    """An input as the report and stderr show it: whole if short, else an excerpt."""
    if isinstance(value, str):
        return excerpt(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    text = orjson.dumps(value, option=orjson.OPT_PASSTHROUGH_SUBCLASS, default=repr).decode()
    return value if len(text) <= _ECHOED_WHOLE else excerpt(text)


def item_error(error: BaseException) -> str:
    """What went wrong with one item, in one line (an excerpt of a server's long message),
    without the request's URL."""
    if isinstance(error, APIStatusError):
        text = f"{error.status_code} {error.message}"
    elif isinstance(error, ClientClosedError):  # the command line closes its client on Ctrl-C
        if error.outcome_unknown:
            return "interrupted while in flight: it may have been carried out"
        return "interrupted before it was sent"
    elif isinstance(error, SegmentsError):
        text = error.message
    else:
        text = str(error) or type(error).__name__
    return excerpt(_one_line(text))


def _one_line(text: str) -> str:
    return " ".join(text.split())


class Tally:
    """How many items of a bulk command succeeded, failed, have an unknown outcome, or
    were skipped (``skipping``: the summary counts those too)."""

    __slots__ = ("failed", "skipped", "skipping", "succeeded", "unknown")

    def __init__(self, *, skipping: bool = False) -> None:
        self.skipping = skipping
        self.succeeded = 0
        self.failed = 0
        self.unknown = 0
        self.skipped = 0

    def add(self, entry: Entry) -> None:
        if entry.status == "ok":
            self.succeeded += 1
        elif entry.status == "failed":
            self.failed += 1
        elif entry.status == "unknown":
            self.unknown += 1
        else:
            self.skipped += 1

    def summary(self) -> str:
        said = f"{self.succeeded:,} succeeded, {self.failed:,} failed, {self.unknown:,} unknown"
        return f"{said}, {self.skipped:,} skipped" if self.skipping else said

    def exit_status(self) -> int:
        return EXIT_OK if self.failed == self.unknown == 0 else EXIT_FAILED_ITEMS


# --------------------------------------------------------------------------- errors


def exit_status(error: BaseException) -> int:
    """The exit status an error that ended a command means."""
    if isinstance(error, UsageError):
        return EXIT_USAGE
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(error, APIStatusError):
        refused = 400 <= error.status_code < 500
        return EXIT_REFUSED if refused else EXIT_NO_ANSWER
    if isinstance(error, SegmentsError):
        return EXIT_NO_ANSWER  # connection, timeout, an unreadable answer
    return EXIT_FAILED_ITEMS  # anything else (a full disk, a bug): Python's own status


def error_message(error: BaseException) -> str:
    """The one line that explains an error that ended a command (never the token)."""
    if isinstance(error, UsageError):
        return str(error)
    if isinstance(error, AuthenticationError):
        return "the token was refused (401): check --token-file or SEGMENTS_API_TOKEN"
    if isinstance(error, PermissionDeniedError):
        return f"the token may not do this (403): {error}"
    if isinstance(error, RateLimitError):
        return f"the API is limiting the rate of requests, still after the retries: {error}"
    if isinstance(error, InternalServerError):
        return f"the API failed: {error}"
    if isinstance(error, APIStatusError):
        verb = "refused the request" if error.status_code >= 400 else "gave no usable answer"
        return f"the API {verb}: {error}"
    if isinstance(error, APITimeoutError):
        return f"no answer from the API in time: {error}"
    if isinstance(error, APIConnectionError):
        return f"no answer from the API: {error}"
    if isinstance(error, APIResponseValidationError):
        return f"the API's answer could not be read: {error}"
    if isinstance(error, ClientClosedError | SegmentsError):
        return str(error)
    if isinstance(error, OSError) and error.strerror:
        where = f" {error.filename}" if error.filename else ""
        return _one_line(f"cannot read or write{where}: {error.strerror}")
    return _one_line(f"unexpected {type(error).__name__}: {error} (--debug shows the traceback)")
