"""Input files parsed without I/O: formats, names, ids, capped lines."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

import pytest

from segments_async._cli import inputs, text
from segments_async._cli.status import InputError, UsageError

from ..conftest import SEGMENT_ID


def lines(text: str | bytes) -> list[bytes]:
    data = text.encode() if isinstance(text, str) else text
    return io.BytesIO(data).readlines()


def values(items: Iterable[tuple[int | None, object]]) -> list[object]:
    return [value for _, value in items]


@pytest.mark.parametrize(
    ("path", "given", "expected"),
    [
        ("names.csv", None, "csv"),
        ("NAMES.CSV", None, "csv"),
        ("names.jsonl", None, "jsonl"),
        ("names.ndjson", None, "jsonl"),
        ("names.txt", "csv", "csv"),
        ("-", "jsonl", "jsonl"),
        ("names.csv", "jsonl", "jsonl"),
    ],
)
def test_input_format_from_the_flag_or_the_extension(path, given, expected):
    """--format wins; otherwise .csv, .jsonl and .ndjson tell."""
    assert expected == inputs.input_format(path, given)


@pytest.mark.parametrize("path", ["names.txt", "names.json", "names", "-"])
def test_an_input_format_that_cannot_be_told_is_a_usage_error(path):
    """Another extension, or stdin, needs --format."""
    with pytest.raises(UsageError, match="--format"):
        inputs.input_format(path, None)


def test_csv_names_come_from_the_name_column():
    """The name column wherever it is, any case, BOM and blank lines tolerated, quotes read;
    each name with the line its record starts on."""
    text = '\ufeffid,Name,note\n1,EMEA,x\n\n2,"Central, ""Europe""\nwest",y\n3,,z\n'
    items = inputs.read_names(lines(text), "csv", "in.csv")

    assert [(2, "EMEA"), (4, 'Central, "Europe"\nwest'), (6, "")] == list(items)
    assert items.error is None


def test_an_empty_csv_has_no_names():
    """A file with nothing in it is no names, not an error."""
    items = inputs.read_names([], "csv", "in.csv")

    assert [] == list(items)
    assert items.error is None


@pytest.mark.parametrize(
    ("text", "line", "complaint"),
    [
        ("id,label\n1,a\n", 1, 'no "name" column'),
        ("id,name\n1,a\n2\n3,c\n", 3, "no value in the name column"),
        ('name\na\n"b"x\nc\n', 3, "not valid CSV"),
        (b"name\na\n\xff\xfeb\nc\n", 3, "not UTF-8"),
        ('name\na\n"b\nc\n', 3, "not valid CSV (unexpected end of data)"),
    ],
)
def test_a_csv_line_not_in_the_format_stops_the_names_there(text, line, complaint):
    """Names before the bad line are read; then iteration stops, keeping the line's error."""
    items = inputs.read_names(lines(text), "csv", "in.csv")
    read = list(items)

    assert isinstance(items.error, InputError)
    assert line == items.error.line
    assert f"in.csv, line {line}: " in str(items.error)
    assert complaint in str(items.error)
    assert max(0, line - 2) == len(read)
    assert [] == list(items)  # stays stopped


def test_json_lines_names_are_passed_on_whatever_their_type():
    """Each object's name, even one that is not a string (it fails only its own item)."""
    text = '{"name": "EMEA"}\n\n  \n{"name": 5, "extra": true}\r\n{"name": null}\n'
    items = inputs.read_names(lines(text), "jsonl", "in.jsonl")

    assert [(1, "EMEA"), (4, 5), (5, None)] == list(items)
    assert items.error is None


@pytest.mark.parametrize(
    ("text", "line", "complaint"),
    [
        ('{"name": "a"}\nnot json\n{"name": "c"}\n', 2, "not valid JSON"),
        ('{"name": "a"}\n{"label": "b"}\n', 2, 'not a JSON object with a "name"'),
        ('{"name": "a"}\n\n["b"]\n', 3, 'not a JSON object with a "name"'),
        (b'{"name": "a"}\n{"name": "\xff"}\n', 2, "not valid JSON"),
    ],
)
def test_a_json_line_not_in_the_format_stops_the_names_there(text, line, complaint):
    """The error names the line (counting blank ones); the names before it were read."""
    items = inputs.read_names(lines(text), "jsonl", "stdin")

    assert ["a"] == values(items)
    assert isinstance(items.error, InputError)
    assert f"stdin, line {line}: {complaint}" == str(items.error)


def test_ids_are_read_one_a_line():
    """Stripped, blank lines skipped; a line that is not a UUID is passed on (it fails alone)."""
    text = f"\ufeff{SEGMENT_ID}\n\n  not-an-id \n{SEGMENT_ID.upper()}"
    items = inputs.read_ids(lines(text), "ids.txt")

    assert [(1, SEGMENT_ID), (3, "not-an-id"), (4, SEGMENT_ID.upper())] == list(items)
    assert items.error is None


def test_an_id_line_that_is_not_text_stops_the_ids():
    """Bytes that are not UTF-8 are not an id file: the error names the line."""
    items = inputs.read_ids(lines(f"{SEGMENT_ID}\n\xff\n".encode("latin-1")), "ids.txt")

    assert [SEGMENT_ID] == values(items)
    assert "ids.txt, line 2: not UTF-8 text" == str(items.error)


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[start : start + size] for start in range(0, len(data), size)]


@pytest.mark.parametrize("size", [1, 3, 7, 64, 10_000])
def test_capped_lines_are_the_lines_whatever_the_chunks(size):
    """Lines keep their newline (LF or CRLF); the last may have none; chunks cut anywhere."""
    data = b'a\r\nbb\n\n"c"\nlast'

    assert [b"a\r\n", b"bb\n", b"\n", b'"c"\n', b"last"] == list(
        inputs.capped_lines(chunked(data, size), cap=10)
    )


@pytest.mark.parametrize("size", [1, 4, 1000])
def test_a_line_over_the_cap_is_only_measured(size):
    """A line over the cap is its size (without the newline), its head and its quotes;
    the lines around it are whole."""
    long = b'"' + b"x" * 2000 + b'"",'
    data = b"before\n" + long + b"\nafter\n" + long

    got = list(inputs.capped_lines(chunked(data, size), cap=100))

    head = long[: 4 * text.EXCERPT_CHARS]
    assert [
        b"before\n",
        inputs.LongLine(len(long), head, 3),
        b"after\n",
        inputs.LongLine(len(long), head, 3),
    ] == got


def test_a_line_exactly_at_the_cap_is_whole():
    """The cap counts the newline: a line of cap bytes is read whole, one more is not."""
    got = list(inputs.capped_lines([b"abc\nabcd\n"], cap=4))

    assert [b"abc\n", inputs.LongLine(4, b"abcd\n", 0)] == got


@pytest.mark.parametrize(
    ("fmt", "before", "after"),
    [
        ("csv", b"name\nbefore\n", b"after\n"),
        ("jsonl", b'{"name": "before"}\n', b'{"name": "after"}\n'),
    ],
)
def test_a_line_over_the_cap_fails_alone(fmt, before, after):
    """A name line over the cap is an Unreadable item with its line and an excerpt."""
    data = before + b"z" * (3 << 20) + b"\n" + after

    items = list(inputs.read_names(inputs.capped_lines(chunked(data, 1 << 16)), fmt, "in"))

    (start, first), (number, unreadable), (end, last) = items
    assert first in ("before",)
    assert last == "after"
    assert isinstance(unreadable, inputs.Unreadable)
    assert (start + 1, start + 2) == (number, end)
    assert f"({3 << 20:,} bytes)" in unreadable.reason
    assert unreadable.excerpt.startswith("z" * text.EXCERPT_CHARS + "...")
    assert len(unreadable.excerpt) < 250


def test_a_long_line_inside_a_quoted_csv_field_keeps_the_reader_in_step():
    """A long line within a record spanning lines fails that record; the next is read."""
    data = b'name\n"starts\n' + b"y" * 300 + b'"\nnext\n"two\n' + b'""' * 200 + b'\nends"\n'

    items = list(inputs.read_names(inputs.capped_lines([data], cap=100), "csv", "in.csv"))

    assert [2, 4, 5] == [number for number, _ in items]
    assert isinstance(items[0][1], inputs.Unreadable)
    assert "next" == items[1][1]
    assert isinstance(items[2][1], inputs.Unreadable)


def test_a_csv_field_over_csvs_limit_fails_alone_and_the_reader_goes_on():
    """csv's own 128 KiB field limit (left as it is, process-wide) fails one record,
    even when its quoted field goes on over more lines."""
    limit = csv.field_size_limit()
    big = "x" * (limit // 2)
    text = f'name\nbefore\n"{big}\n{big}\n{big}"\nmiddle\n{big}{big}{big}\nafter\n'

    items = list(inputs.read_names(lines(text), "csv", "in.csv"))

    assert [2, 3, 6, 7, 8] == [number for number, _ in items]
    assert ["before", "middle", "after"] == [v for v in values(items) if isinstance(v, str)]
    failed = [v for v in values(items) if isinstance(v, inputs.Unreadable)]
    assert 2 == len(failed)
    assert f"{limit:,} characters" in failed[0].reason
    assert failed[0].excerpt.endswith(f"... ({3 * len(big) + 4:,} bytes)")  # quotes, newlines
    assert failed[1].excerpt == "x" * 200 + f"... ({3 * len(big):,} bytes)"
    assert limit == csv.field_size_limit()
