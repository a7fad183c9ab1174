"""Segments as JSON lines, CSV or a table, the output formats, and output files replaced
atomically."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from collections.abc import Iterable

import hypothesis
import hypothesis.strategies
import pytest

from segments_async import Segment
from segments_async._cli import inputs, outputs

from ..conftest import SEGMENT_ID


def lines(text: str | bytes) -> list[bytes]:
    data = text.encode() if isinstance(text, str) else text
    return io.BytesIO(data).readlines()


def values(items: Iterable[tuple[int | None, object]]) -> list[object]:
    return [value for _, value in items]


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[start : start + size] for start in range(0, len(data), size)]


SEGMENTS = [
    Segment(SEGMENT_ID, "EMEA"),
    Segment("00000000-0000-4000-8000-000000000001", 'a, "quoted"\nname ✓'),
]


@pytest.mark.parametrize(
    ("path", "given", "expected"),
    [
        (None, None, "jsonl"),
        ("out.csv", None, "csv"),
        ("out.txt", None, "jsonl"),
        ("out.csv", "jsonl", "jsonl"),
        (None, "csv", "csv"),
        ("-", None, "jsonl"),
    ],
)
def test_output_format_defaults_to_json_lines(path, given, expected):
    """Export writes JSON lines unless --format or a .csv output says otherwise."""
    assert expected == outputs.output_format(path, given)


@pytest.mark.parametrize(
    ("path", "given", "expected"),
    [
        (None, None, "table"),
        ("-", None, "table"),
        (None, "jsonl", "jsonl"),
        ("out.csv", None, "csv"),
        ("out.txt", "table", "table"),
    ],
)
def test_a_list_for_a_terminal_is_a_table_unless_told(path, given, expected):
    """list to a terminal (stdout or -) defaults to a table; --format and a file's extension win."""
    terminal = path in (None, "-")
    assert expected == outputs.output_format(path, given, terminal=terminal)


def test_json_lines_are_one_object_a_line():
    """Each segment is {"id", "name"} on its own line."""
    written = outputs.jsonl_lines(SEGMENTS).decode()

    assert [{"id": s.id, "name": s.name} for s in SEGMENTS] == [
        json.loads(line) for line in written.splitlines()
    ]


def test_csv_lines_read_back_as_written():
    """The header and rows read back through the csv module, quotes and newlines included."""
    written = (outputs.csv_header() + outputs.csv_lines(SEGMENTS)).decode()

    rows = list(csv.DictReader(io.StringIO(written, newline="")))
    assert [{"id": s.id, "name": s.name} for s in SEGMENTS] == rows


@hypothesis.given(hypothesis.strategies.lists(hypothesis.strategies.text(min_size=1)))
@hypothesis.settings(max_examples=300, deadline=None)
def test_any_name_survives_csv_export_and_import(names):
    """CR, LF, quotes, commas, spaces, a BOM, non-BMP: export -> import gives them back."""
    names = [name for name in names if "\x00" not in name and not _is_surrogate(name)]
    segments = [Segment(SEGMENT_ID, name) for name in names]
    written = outputs.csv_header() + outputs.csv_lines(segments)

    read_back = inputs.read_names(inputs.capped_lines(chunked(written, 7)), "csv", "x")
    by_csv = [row["name"] for row in csv.DictReader(io.StringIO(written.decode(), newline=""))]

    assert names == values(read_back)
    assert names == by_csv


def _is_surrogate(text: str) -> bool:
    return any("\ud800" <= char <= "\udfff" for char in text)


def test_a_table_cannot_carry_terminal_escapes():
    """Control characters in a name are shown escaped, never sent to the terminal."""
    segments = [Segment(SEGMENT_ID, "evil\x1b[2J\rname\u202e")]
    table = (outputs.table_header() + outputs.table_lines(segments)).decode().splitlines()

    assert "ID" == table[0].split()[0]
    assert f"{SEGMENT_ID}  evil\\x1b[2J\\rname\\u202e" == table[1]


def umasked(mode: int) -> int:
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


def test_an_output_replaces_the_file_only_on_commit(tmp_path):
    """Before commit the old file is whole and the new bytes are in a file beside it."""
    path = tmp_path / "out.jsonl"
    path.write_bytes(b"old\n")
    path.chmod(0o604)

    output = outputs.AtomicOutput(str(path), 1024)
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

    output = outputs.AtomicOutput(str(path), 1024)
    output.file.write(b"partial")

    assert output.discard()
    assert [] == os.listdir(tmp_path)
    assert not output.existed


def test_a_new_output_gets_the_mode_open_would_give(tmp_path):
    """Not mkstemp's 0600: what the umask leaves of 0666."""
    path = tmp_path / "new.jsonl"

    output = outputs.AtomicOutput(str(path), 1024)
    output.commit()

    assert umasked(0o666) == stat.S_IMODE(path.stat().st_mode)


def test_an_output_through_a_symlink_replaces_its_target(tmp_path):
    """The link stays a link; the file it points to is replaced."""
    target = tmp_path / "real.jsonl"
    target.write_bytes(b"old\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)

    output = outputs.AtomicOutput(str(link), 1024)
    output.file.write(b"new\n")
    output.commit()

    assert link.is_symlink()
    assert b"new\n" == target.read_bytes()


def test_an_output_that_is_no_regular_file_is_written_in_place():
    """/dev/null cannot be replaced (nor a temporary file made beside it): written as is."""
    output = outputs.AtomicOutput(os.devnull, 1024)
    output.file.write(b"anything")
    output.commit()

    assert not output.replaces
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)
