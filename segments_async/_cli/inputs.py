"""Input files, parsed without I/O: lines read with a cap, then names or ids, each with
the 1-based line it starts on.

The readers take an iterable of the file's lines as bytes (``capped_lines`` of its
chunks), so they are tested without a process or a file; ``reader`` feeds them from a
thread. A line over ``MAX_LINE_BYTES`` is only measured (memory stays bounded whatever
the input) and fails alone; a line not in the file's format stops the items there with
an ``InputError`` naming it.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterable, Iterator
from pathlib import PurePath
from typing import Final, Literal

import attrs
import orjson

from .. import _wire
from .status import InputError, UsageError
from .text import EXCERPT_CHARS, excerpt

__all__ = [
    "MAX_LINE_BYTES",
    "Format",
    "InputItems",
    "Item",
    "LongLine",
    "Unreadable",
    "capped_lines",
    "format_of",
    "input_format",
    "read_ids",
    "read_names",
]

Format = Literal["csv", "jsonl"]

#: What a file's extension says about its format.
_FORMAT_BY_SUFFIX: Final[dict[str, Format]] = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


def format_of(path: str) -> Format | None:
    """The format a file's extension names (``.csv``, ``.jsonl``, ``.ndjson``), if any."""
    return _FORMAT_BY_SUFFIX.get(PurePath(path).suffix.lower())


def input_format(path: str, given: str | None) -> Format:
    """The format of an input file: ``--format``, or else the file's extension."""
    if given is not None:
        return "csv" if given == "csv" else "jsonl"
    if path == "-":
        raise UsageError("reading stdin (-) needs --format csv or --format jsonl")
    found = format_of(path)
    if found is None:
        raise UsageError(
            f"cannot tell the format of {path} from its extension (.csv, .jsonl or .ndjson): "
            f"pass --format csv or --format jsonl"
        )
    return found


#: The longest input line read whole: above the fake's (and aiohttp's) 1 MiB body limit,
#: so no line the API could accept is cut; a longer one fails alone, read in passing.
MAX_LINE_BYTES: Final = 1 << 20
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
