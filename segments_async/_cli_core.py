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
    "EXIT_FAILED_ITEMS",
    "EXIT_INTERRUPTED",
    "EXIT_NO_ANSWER",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "InputError",
    "InputItems",
    "Tally",
    "UsageError",
    "concurrency_arg",
    "csv_header",
    "csv_lines",
    "error_message",
    "exit_status",
    "input_format",
    "jsonl_lines",
    "non_negative_int_arg",
    "output_format",
    "page_window",
    "positive_float_arg",
    "positive_int_arg",
    "read_ids",
    "read_names",
    "report_line",
    "report_record",
    "segment_ids",
    "table_lines",
    "terminal_safe",
    "token_from_bytes",
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


def page_window(
    concurrency: int | Literal["auto"], per_page: int, limit: int | None
) -> int | Literal["auto"]:
    """Pages in flight for an export: no more than the pages ``limit`` segments need."""
    if limit is None or concurrency == "auto":
        return concurrency
    return max(1, min(concurrency, math.ceil(limit / per_page)))


# --------------------------------------------------------------------------- input files


class InputItems:
    """The items of an input file, read lazily, one line at a time.

    Iteration stops at the first line that is not in the file's format and keeps that
    line's ``InputError`` in ``error``: the bulk operation then finishes the items before
    it, and the command reports them before failing with the error.
    """

    __slots__ = ("_items", "error")

    def __init__(self, items: Iterator[object]) -> None:
        self._items = items
        self.error: InputError | None = None

    def __iter__(self) -> InputItems:
        return self

    def __next__(self) -> object:
        if self.error is not None:
            raise StopIteration
        try:
            return next(self._items)
        except InputError as error:
            self.error = error
            raise StopIteration from None


def read_names(lines: Iterable[bytes], fmt: Format, source: str) -> InputItems:
    """The names of a CSV file (its ``name`` column) or of JSON lines (``{"name": ...}``).

    A name that is not a string (``{"name": 5}``) is passed on: it fails only its own item.
    """
    if fmt == "csv":
        return InputItems(_csv_names(lines, source))
    return InputItems(_jsonl_names(lines, source))


def read_ids(lines: Iterable[bytes], source: str) -> InputItems:
    """Segment ids, one a line; blank lines are skipped, a bad id fails only its item."""
    return InputItems(_ids(lines, source))


def _numbered(lines: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes) from 1, with a UTF-8 byte order mark dropped from line 1."""
    for number, line in enumerate(lines, 1):
        if number == 1 and line.startswith(codecs.BOM_UTF8):
            yield number, line[len(codecs.BOM_UTF8) :]
        else:
            yield number, line


def _text(line: bytes, source: str, number: int) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(source, number, "not UTF-8 text") from None


def _ids(lines: Iterable[bytes], source: str) -> Iterator[object]:
    for number, line in _numbered(lines):
        text = _text(line, source, number).strip()
        if text:
            yield text


def _jsonl_names(lines: Iterable[bytes], source: str) -> Iterator[object]:
    for number, line in _numbered(lines):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise InputError(source, number, "not valid JSON") from None
        if not isinstance(record, dict) or "name" not in record:
            raise InputError(source, number, 'not a JSON object with a "name"')
        yield record["name"]


def _csv_names(lines: Iterable[bytes], source: str) -> Iterator[object]:
    texts = (_text(line, source, number) for number, line in _numbered(lines))
    reader = csv.reader(texts, strict=True)
    start = 1  # the line a record starts on (a quoted field may span lines)
    try:
        header = next(reader, None)
        if header is None:
            return
        column = _name_column(header, source)
        while True:
            start = reader.line_num + 1
            row = next(reader, None)
            if row is None:
                return
            if not row:
                continue  # a blank line
            if len(row) <= column:
                raise InputError(source, start, "no value in the name column")
            yield row[column]
    except csv.Error as error:
        raise InputError(source, start, f"not valid CSV ({error})") from None


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
    return b"id,name\n"


def csv_lines(segments: Iterable[Segment]) -> bytes:
    """Segments as CSV rows (quoted where needed), without the header."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([(s.id, s.name) for s in segments])
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


def report_record(result: BulkResult[Any]) -> dict[str, object]:
    """One report line: index, input, status (ok, failed, unknown), and id or error."""
    record: dict[str, object] = {"index": result.index, "input": result.input}
    if result.error is None:
        record["status"] = "ok"
        value = result.value
        record["id"] = value.id if isinstance(value, Segment) else str(result.input).lower()
    else:
        record["status"] = "unknown" if result.outcome_unknown else "failed"
        record["error"] = item_error(result.error)
    return record


def report_line(result: BulkResult[Any]) -> bytes:
    """``report_record`` as a JSON line."""
    return orjson.dumps(report_record(result), option=orjson.OPT_APPEND_NEWLINE)


def item_error(error: BaseException) -> str:
    """What went wrong with one item, in one line, without the request's URL."""
    if isinstance(error, APIStatusError):
        return _one_line(f"{error.status_code} {error.message}")
    if isinstance(error, SegmentsError):
        return _one_line(error.message)
    return _one_line(str(error) or type(error).__name__)


def _one_line(text: str) -> str:
    return " ".join(text.split())


class Tally:
    """How many items of a bulk command succeeded, failed, or have an unknown outcome."""

    __slots__ = ("failed", "succeeded", "unknown")

    def __init__(self) -> None:
        self.succeeded = 0
        self.failed = 0
        self.unknown = 0

    def add(self, result: BulkResult[Any]) -> None:
        if result.error is None:
            self.succeeded += 1
        elif result.outcome_unknown:
            self.unknown += 1
        else:
            self.failed += 1

    @property
    def total(self) -> int:
        return self.succeeded + self.failed + self.unknown

    def summary(self) -> str:
        return f"{self.succeeded:,} succeeded, {self.failed:,} failed, {self.unknown:,} unknown"

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
