"""The command line in-process: parsing, configuration, and the pure core (readers, report
lines, exit statuses); tests/integration/test_cli.py runs the real console script."""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import re
import sys
from collections.abc import Iterable
from pathlib import Path

import hypothesis
import hypothesis.strategies
import pytest

from segments_async import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BulkResult,
    ClientClosedError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    Segment,
    UnprocessableEntityError,
    _cli,
    _cli_core,
)
from segments_async._cli_core import InputError, UsageError

from .conftest import SEGMENT_ID, TOKEN

COMMANDS = ("list", "export", "create", "rename", "delete", "import", "delete-many")
URL = "https://api.segments.test/v2.3/data/segments"


def parse(*argv: str) -> argparse.Namespace:
    return _cli.build_parser().parse_args(argv)


def status_error(cls: type[APIStatusError], status: int) -> APIStatusError:
    return cls("refused", method="GET", url=URL, status_code=status)


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("command", [*COMMANDS, "demo", "serve-fake"])
def test_every_command_has_help_with_an_example(command, capsys):
    """`segments-async COMMAND --help` exits 0 and shows an example of the command."""
    assert 0 == _cli.main([command, "--help"])

    shown = capsys.readouterr().out
    assert "example:" in shown
    assert f"segments-async {command}" in shown.split("example:", 1)[1]


def test_no_command_prints_help_on_stderr_and_exits_2(capsys):
    """A bare `segments-async` lists the commands on stderr, status 2."""
    assert 2 == _cli.main([])

    captured = capsys.readouterr()
    assert "" == captured.out
    for command in COMMANDS:
        assert command in captured.err


@pytest.mark.parametrize(
    "argv",
    [
        ["--timeout", "5", "list"],
        ["list", "--timeout", "5"],
        ["--timeout", "9", "list", "--timeout", "5"],
    ],
)
def test_global_options_work_before_or_after_the_command(argv):
    """A global option is read on either side; after the command, it wins."""
    args = parse(*argv)

    assert 5.0 == args.timeout


def test_global_defaults_hold_when_no_option_is_given():
    """Defaults: 30 s per attempt, 2 retries, no deadline or rate limit, concurrency 16."""
    args = parse("export")

    assert (30.0, 2, None, None, False) == (
        args.timeout,
        args.retries,
        args.deadline,
        args.rate_limit,
        args.debug,
    )
    assert (16, 100, None) == (args.concurrency, args.per_page, args.limit)


@pytest.mark.parametrize(
    "argv",
    [
        ["--token", "x", "list"],
        ["list", "--token", "x"],
        ["list", "--token=x"],
        ["list", "--token"],
        ["--token-f", "x", "list"],
        ["list", "--base", "https://api.example.com"],
        ["export", "--conc", "4"],
    ],
)
def test_tokens_and_abbreviations_are_usage_errors(argv, capsys):
    """--token is refused, and no prefix stands for a longer option (--token-file)."""
    assert 2 == _cli.main(argv)

    err = capsys.readouterr().err
    assert 1 == len(err.splitlines())
    assert "error:" in err


def test_token_option_explains_where_a_token_goes(capsys):
    """The refusal of --token points at --token-file and SEGMENTS_API_TOKEN."""
    assert 2 == _cli.main(["list", "--token", "sekret"])

    err = capsys.readouterr().err
    assert "--token-file" in err
    assert "SEGMENTS_API_TOKEN" in err
    assert "sekret" not in err


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["export", "--concurrency", "0"], "--concurrency"),
        (["export", "--concurrency", "many"], "--concurrency"),
        (["export", "--limit", "0"], "--limit"),
        (["list", "--per-page", "-1"], "--per-page"),
        (["--timeout", "0", "list"], "--timeout"),
        (["--timeout", "nan", "list"], "--timeout"),
        (["--deadline", "inf", "list"], "--deadline"),
        (["--retries", "-1", "list"], "--retries"),
        (["--rate-limit", "0", "list"], "--rate-limit"),
        (["export", "--format", "xml"], "--format"),
        (["rename", SEGMENT_ID], "NAME"),
        (["delete"], "SEGMENT_ID"),
    ],
)
def test_bad_options_are_one_line_usage_errors(argv, complaint, capsys):
    """A bad value is status 2 and one line naming the option."""
    assert 2 == _cli.main(argv)

    err = capsys.readouterr().err
    assert 1 == len(err.splitlines())
    assert complaint in err


def test_concurrency_takes_auto_or_a_count():
    """--concurrency auto or N >= 1."""
    assert "auto" == parse("export", "--concurrency", "auto").concurrency
    assert 3 == parse("import", "x.csv", "--concurrency", "3").concurrency


# --------------------------------------------------------------------------- configuration


def client_for(monkeypatch, env: dict[str, str], *argv: str):
    for name in ("SEGMENTS_BASE_URL", "SEGMENTS_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return _cli._client(parse(*argv, "list"))


def test_configuration_comes_from_the_environment(monkeypatch):
    """SEGMENTS_BASE_URL and SEGMENTS_API_TOKEN configure the client, options map over."""
    env = {"SEGMENTS_BASE_URL": "https://env.example", "SEGMENTS_API_TOKEN": TOKEN}
    client = client_for(
        monkeypatch,
        env,
        "--timeout",
        "7",
        "--deadline",
        "60",
        "--retries",
        "0",
        "--rate-limit",
        "5",
    )

    assert "https://env.example" == client.base_url
    assert (7.0, 60.0, 0, 5.0) == (
        client.timeout.total,
        client.deadline,
        client.retry.max_retries,
        client.rate_limit,
    )


def test_flags_win_over_the_environment(monkeypatch, tmp_path):
    """--base-url and --token-file replace the environment's values."""
    token_file = tmp_path / "token"
    token_file.write_text(f"{TOKEN}\n")
    env = {"SEGMENTS_BASE_URL": "https://env.example", "SEGMENTS_API_TOKEN": "env-token"}

    client = client_for(
        monkeypatch, env, "--base-url", "https://flag.example", "--token-file", str(token_file)
    )

    assert "https://flag.example" == client.base_url
    assert TOKEN == client._shared.token


@pytest.mark.parametrize(
    ("env", "argv", "complaint"),
    [
        ({"SEGMENTS_API_TOKEN": TOKEN}, [], "SEGMENTS_BASE_URL"),
        ({"SEGMENTS_BASE_URL": "https://x.example"}, [], "SEGMENTS_API_TOKEN"),
        ({"SEGMENTS_API_TOKEN": TOKEN}, ["--base-url", "ftp://x"], "http"),
        ({"SEGMENTS_API_TOKEN": TOKEN}, ["--base-url", "http://x.example"], "--allow-insecure"),
        ({"SEGMENTS_API_TOKEN": "has space"}, ["--base-url", "https://x.example"], "token"),
    ],
)
def test_missing_or_bad_configuration_is_a_usage_error(monkeypatch, env, argv, complaint):
    """No base URL or token, a bad URL, or a bad token: UsageError, never the token."""
    with pytest.raises(UsageError, match=complaint) as raised:
        client_for(monkeypatch, env, *argv)

    assert "has space" not in str(raised.value)


def test_insecure_http_can_be_allowed(monkeypatch):
    """--allow-insecure-http lets http:// reach a host that is not this machine."""
    env = {"SEGMENTS_API_TOKEN": TOKEN}
    client = client_for(monkeypatch, env, "--base-url", "http://x.example", "--allow-insecure-http")

    assert "http://x.example" == client.base_url


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        (b"", "is empty"),
        (b" \n\n", "is empty"),
        (b"two words\n", "does not hold one token"),
        ("tøken".encode(), "does not hold one token"),
        (b"\xff\xfe", "is not text"),
        (b"x" * 9000, "too large"),
    ],
)
def test_a_bad_token_file_is_a_usage_error_that_never_shows_it(data, complaint):
    """Empty, several words, not ASCII, not text, huge: refused without echoing a byte."""
    with pytest.raises(UsageError, match=complaint) as raised:
        _cli_core.token_from_bytes(data, "tok.txt")

    assert "tok.txt" in str(raised.value)
    assert "word" not in str(raised.value)


def test_a_token_file_may_end_in_a_newline_and_start_with_a_bom():
    """White space around the token and a UTF-8 BOM are dropped."""
    assert TOKEN == _cli_core.token_from_bytes(b"\xef\xbb\xbf  " + TOKEN.encode() + b"\r\n", "t")


def test_a_missing_token_file_is_a_usage_error(tmp_path):
    """A token file that cannot be read: UsageError naming it."""
    with pytest.raises(UsageError, match=r"cannot read the token file .*missing"):
        _cli._read_token(str(tmp_path / "missing"))


# --------------------------------------------------------------------------- argument checks


def test_ids_are_checked_and_the_bad_one_named():
    """Every id must be a UUID; the first that is not is named."""
    assert [SEGMENT_ID] == _cli_core.segment_ids([SEGMENT_ID])
    with pytest.raises(UsageError, match=re.escape("'../etc'")):
        _cli_core.segment_ids([SEGMENT_ID, "../etc", "x"])


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
    assert expected == _cli_core.input_format(path, given)


@pytest.mark.parametrize("path", ["names.txt", "names.json", "names", "-"])
def test_an_input_format_that_cannot_be_told_is_a_usage_error(path):
    """Another extension, or stdin, needs --format."""
    with pytest.raises(UsageError, match="--format"):
        _cli_core.input_format(path, None)


@pytest.mark.parametrize(
    ("path", "given", "expected"),
    [
        (None, None, "jsonl"),
        ("out.csv", None, "csv"),
        ("out.txt", None, "jsonl"),
        ("out.csv", "jsonl", "jsonl"),
        (None, "csv", "csv"),
    ],
)
def test_output_format_defaults_to_json_lines(path, given, expected):
    """Export writes JSON lines unless --format or a .csv output says otherwise."""
    assert expected == _cli_core.output_format(path, given)


# --------------------------------------------------------------------------- input files


def lines(text: str | bytes) -> list[bytes]:
    data = text.encode() if isinstance(text, str) else text
    return io.BytesIO(data).readlines()


def values(items: Iterable[tuple[int | None, object]]) -> list[object]:
    return [value for _, value in items]


def test_csv_names_come_from_the_name_column():
    """The name column wherever it is, any case, BOM and blank lines tolerated, quotes read;
    each name with the line its record starts on."""
    text = '\ufeffid,Name,note\n1,EMEA,x\n\n2,"Central, ""Europe""\nwest",y\n3,,z\n'
    items = _cli_core.read_names(lines(text), "csv", "in.csv")

    assert [(2, "EMEA"), (4, 'Central, "Europe"\nwest'), (6, "")] == list(items)
    assert items.error is None


def test_an_empty_csv_has_no_names():
    """A file with nothing in it is no names, not an error."""
    items = _cli_core.read_names([], "csv", "in.csv")

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
    items = _cli_core.read_names(lines(text), "csv", "in.csv")
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
    items = _cli_core.read_names(lines(text), "jsonl", "in.jsonl")

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
    items = _cli_core.read_names(lines(text), "jsonl", "stdin")

    assert ["a"] == values(items)
    assert isinstance(items.error, InputError)
    assert f"stdin, line {line}: {complaint}" == str(items.error)


def test_ids_are_read_one_a_line():
    """Stripped, blank lines skipped; a line that is not a UUID is passed on (it fails alone)."""
    text = f"\ufeff{SEGMENT_ID}\n\n  not-an-id \n{SEGMENT_ID.upper()}"
    items = _cli_core.read_ids(lines(text), "ids.txt")

    assert [(1, SEGMENT_ID), (3, "not-an-id"), (4, SEGMENT_ID.upper())] == list(items)
    assert items.error is None


def test_an_id_line_that_is_not_text_stops_the_ids():
    """Bytes that are not UTF-8 are not an id file: the error names the line."""
    items = _cli_core.read_ids(lines(f"{SEGMENT_ID}\n\xff\n".encode("latin-1")), "ids.txt")

    assert [SEGMENT_ID] == values(items)
    assert "ids.txt, line 2: not UTF-8 text" == str(items.error)


# --------------------------------------------------------------------------- capped lines


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[start : start + size] for start in range(0, len(data), size)]


@pytest.mark.parametrize("size", [1, 3, 7, 64, 10_000])
def test_capped_lines_are_the_lines_whatever_the_chunks(size):
    """Lines keep their newline (LF or CRLF); the last may have none; chunks cut anywhere."""
    data = b'a\r\nbb\n\n"c"\nlast'

    assert [b"a\r\n", b"bb\n", b"\n", b'"c"\n', b"last"] == list(
        _cli_core.capped_lines(chunked(data, size), cap=10)
    )


@pytest.mark.parametrize("size", [1, 4, 1000])
def test_a_line_over_the_cap_is_only_measured(size):
    """A line over the cap is its size (without the newline), its head and its quotes;
    the lines around it are whole."""
    long = b'"' + b"x" * 2000 + b'"",'
    data = b"before\n" + long + b"\nafter\n" + long

    got = list(_cli_core.capped_lines(chunked(data, size), cap=100))

    head = long[: 4 * _cli_core.EXCERPT_CHARS]
    assert [
        b"before\n",
        _cli_core.LongLine(len(long), head, 3),
        b"after\n",
        _cli_core.LongLine(len(long), head, 3),
    ] == got


def test_a_line_exactly_at_the_cap_is_whole():
    """The cap counts the newline: a line of cap bytes is read whole, one more is not."""
    got = list(_cli_core.capped_lines([b"abc\nabcd\n"], cap=4))

    assert [b"abc\n", _cli_core.LongLine(4, b"abcd\n", 0)] == got


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

    items = list(_cli_core.read_names(_cli_core.capped_lines(chunked(data, 1 << 16)), fmt, "in"))

    (start, first), (number, unreadable), (end, last) = items
    assert first in ("before",)
    assert last == "after"
    assert isinstance(unreadable, _cli_core.Unreadable)
    assert (start + 1, start + 2) == (number, end)
    assert f"({3 << 20:,} bytes)" in unreadable.reason
    assert unreadable.excerpt.startswith("z" * _cli_core.EXCERPT_CHARS + "...")
    assert len(unreadable.excerpt) < 250


def test_a_long_line_inside_a_quoted_csv_field_keeps_the_reader_in_step():
    """A long line within a record spanning lines fails that record; the next is read."""
    data = b'name\n"starts\n' + b"y" * 300 + b'"\nnext\n"two\n' + b'""' * 200 + b'\nends"\n'

    items = list(_cli_core.read_names(_cli_core.capped_lines([data], cap=100), "csv", "in.csv"))

    assert [2, 4, 5] == [number for number, _ in items]
    assert isinstance(items[0][1], _cli_core.Unreadable)
    assert "next" == items[1][1]
    assert isinstance(items[2][1], _cli_core.Unreadable)


def test_a_csv_field_over_csvs_limit_fails_alone_and_the_reader_goes_on():
    """csv's own 128 KiB field limit (left as it is, process-wide) fails one record,
    even when its quoted field goes on over more lines."""
    limit = csv.field_size_limit()
    big = "x" * (limit // 2)
    text = f'name\nbefore\n"{big}\n{big}\n{big}"\nmiddle\n{big}{big}{big}\nafter\n'

    items = list(_cli_core.read_names(lines(text), "csv", "in.csv"))

    assert [2, 3, 6, 7, 8] == [number for number, _ in items]
    assert ["before", "middle", "after"] == [v for v in values(items) if isinstance(v, str)]
    failed = [v for v in values(items) if isinstance(v, _cli_core.Unreadable)]
    assert 2 == len(failed)
    assert f"{limit:,} characters" in failed[0].reason
    assert failed[0].excerpt.endswith(f"... ({3 * len(big) + 4:,} bytes)")  # quotes, newlines
    assert failed[1].excerpt == "x" * 200 + f"... ({3 * len(big):,} bytes)"
    assert limit == csv.field_size_limit()


@pytest.mark.parametrize(
    ("text", "shown"),
    [("short", "short"), ("é" * 300, "é" * 200 + "... (600 bytes)")],
)
def test_an_excerpt_is_the_text_or_its_start_and_size(text, shown):
    """Inputs up to 256 characters are echoed whole; longer, 200 and the size in bytes."""
    assert shown == _cli_core.excerpt(text)


# --------------------------------------------------------------------------- output


SEGMENTS = [
    Segment(SEGMENT_ID, "EMEA"),
    Segment("00000000-0000-4000-8000-000000000001", 'a, "quoted"\nname ✓'),
]


def test_json_lines_are_one_object_a_line():
    """Each segment is {"id", "name"} on its own line."""
    written = _cli_core.jsonl_lines(SEGMENTS).decode()

    assert [{"id": s.id, "name": s.name} for s in SEGMENTS] == [
        json.loads(line) for line in written.splitlines()
    ]


def test_csv_lines_read_back_as_written():
    """The header and rows read back through the csv module, quotes and newlines included."""
    written = (_cli_core.csv_header() + _cli_core.csv_lines(SEGMENTS)).decode()

    rows = list(csv.DictReader(io.StringIO(written, newline="")))
    assert [{"id": s.id, "name": s.name} for s in SEGMENTS] == rows


@hypothesis.given(hypothesis.strategies.lists(hypothesis.strategies.text(min_size=1)))
@hypothesis.settings(max_examples=300, deadline=None)
def test_any_name_survives_csv_export_and_import(names):
    """CR, LF, quotes, commas, spaces, a BOM, non-BMP: export -> import gives them back."""
    names = [name for name in names if "\x00" not in name and not _is_surrogate(name)]
    segments = [Segment(SEGMENT_ID, name) for name in names]
    written = _cli_core.csv_header() + _cli_core.csv_lines(segments)

    read_back = _cli_core.read_names(_cli_core.capped_lines(chunked(written, 7)), "csv", "x")
    by_csv = [row["name"] for row in csv.DictReader(io.StringIO(written.decode(), newline=""))]

    assert names == values(read_back)
    assert names == by_csv


def _is_surrogate(text: str) -> bool:
    return any("\ud800" <= char <= "\udfff" for char in text)


def test_a_table_cannot_carry_terminal_escapes():
    """Control characters in a name are shown escaped, never sent to the terminal."""
    table = _cli_core.table_lines([Segment(SEGMENT_ID, "evil\x1b[2J\rname\u202e")])

    assert "ID" == table[0].split()[0]
    assert f"{SEGMENT_ID}  evil\\x1b[2J\\rname\\u202e" == table[1]
    assert "Zürich" == _cli_core.terminal_safe("Zürich")


def report(result: BulkResult[object], line: int | None = None) -> dict[str, object]:
    return json.loads(_cli_core.report_line(_cli_core.result_entry(result, result.index, line)))


def test_report_lines_say_what_became_of_each_input():
    """ok with the id, failed or unknown with the error (without the request's URL)."""
    refused = UnprocessableEntityError("name is invalid", method="POST", url=URL, status_code=422)
    lost = APIConnectionError("connection lost", method="POST", url=URL)

    assert {"index": 0, "line": 2, "input": "EMEA", "status": "ok", "id": SEGMENT_ID} == report(
        BulkResult(0, "EMEA", value=SEGMENTS[0]), line=2
    )
    assert {"index": 1, "input": "", "status": "failed", "error": "422 name is invalid"} == report(
        BulkResult(1, "", error=refused)
    )
    assert {"index": 2, "input": "x", "status": "unknown", "error": "connection lost"} == report(
        BulkResult(2, "x", error=lost, outcome_unknown=True)
    )
    assert {"index": 3, "input": 5, "status": "failed", "error": "name must be a str"} == report(
        BulkResult(3, 5, error=TypeError("name must be a str"))
    )


@pytest.mark.parametrize(
    ("unknown", "said"),
    [
        (True, "interrupted while in flight: it may have been carried out"),
        (False, "interrupted before it was sent"),
    ],
)
def test_a_closed_client_is_an_interrupt(unknown, said):
    """The command line closes its client only on Ctrl-C: its items say so."""
    closed = ClientClosedError("the client was closed", method="POST", url=URL)
    closed.outcome_unknown = unknown

    assert said == report(BulkResult(0, "x", error=closed, outcome_unknown=unknown))["error"]


def test_a_delete_report_gives_the_deleted_id():
    """A delete has no value: the id is the input's, lower case as sent."""
    assert {"index": 0, "input": SEGMENT_ID.upper(), "status": "ok", "id": SEGMENT_ID} == report(
        BulkResult(0, SEGMENT_ID.upper(), value=None)
    )


def test_a_long_input_is_echoed_as_an_excerpt():
    """The report and stderr show a long input's start and size, never all of it."""
    name = "n" * 100_000
    refused = UnprocessableEntityError("too long", method="POST", url=URL, status_code=422)
    entry = _cli_core.result_entry(BulkResult(4, name, error=refused), 4, 7)

    shown = "n" * 200 + "... (100,000 bytes)"
    assert shown == report(BulkResult(4, name, error=refused))["input"]
    assert f"in.csv, line 7: {shown!r}: failed: 422 too long" == _cli_core.failure_line(
        entry, "in.csv"
    )
    assert {"name": [1] * 100} == json.loads(
        _cli_core.report_line(_cli_core.Entry(0, 1, {"name": [1] * 100}, "failed"))
    )["input"]


def test_a_servers_long_message_is_echoed_as_an_excerpt():
    """A server may explain a refusal at length: the report and stderr get its start."""
    refused = UnprocessableEntityError("no " * 50_000, method="POST", url=URL, status_code=422)

    error = report(BulkResult(0, "x", error=refused))["error"]

    assert error.startswith("422 no no")
    assert error.endswith("... (150,003 bytes)")
    assert len(error) < 250


def test_a_failure_names_the_line_or_the_argument():
    """1-based: a file's line, or the argument's position; never a 0-based index."""
    entry = _cli_core.Entry(0, None, "x", "unknown", error="lost")

    assert "argument 1: 'x': unknown outcome: lost" == _cli_core.failure_line(entry, None)


def test_the_tally_sums_up_and_sets_the_exit_status():
    """All ok or skipped is 0; any failed or unknown item is 1; skipped are counted when
    the command skips."""
    tally = _cli_core.Tally(skipping=True)
    tally.add(_cli_core.Entry(0, None, "a", "ok"))
    tally.add(_cli_core.Entry(1, None, "a", "skipped"))
    assert 0 == tally.exit_status()

    tally.add(_cli_core.Entry(2, None, "b", "failed"))
    tally.add(_cli_core.Entry(3, None, "c", "unknown"))
    assert 1 == tally.exit_status()
    assert "1 succeeded, 1 failed, 1 unknown, 1 skipped" == tally.summary()
    assert "0 succeeded, 0 failed, 0 unknown" == _cli_core.Tally().summary()


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (UsageError("bad"), 2),
        (InputError("in.csv", 3, "bad"), 2),
        (status_error(AuthenticationError, 401), 3),
        (status_error(PermissionDeniedError, 403), 3),
        (status_error(NotFoundError, 404), 3),
        (status_error(UnprocessableEntityError, 422), 3),
        (status_error(RateLimitError, 429), 3),
        (status_error(APIStatusError, 409), 3),
        (status_error(InternalServerError, 500), 4),
        (status_error(InternalServerError, 503), 4),
        (status_error(APIStatusError, 302), 4),
        (APIConnectionError("refused", method="GET", url=URL), 4),
        (APITimeoutError("timed out", method="GET", url=URL), 4),
        (APIResponseValidationError("bad", method="GET", url=URL, status_code=200), 4),
        (KeyboardInterrupt(), 130),
        (OSError(28, "No space left on device"), 1),
    ],
)
def test_every_error_maps_to_its_exit_status(error, status):
    """2 usage, 3 refused (4xx), 4 no usable answer, 130 interrupted, 1 anything else."""
    assert status == _cli_core.exit_status(error)


def test_a_refused_token_says_so():
    """A 401 is "the token was refused (401)", pointing at where the token came from."""
    message = _cli_core.error_message(status_error(AuthenticationError, 401))

    assert message.startswith("the token was refused (401)")


@pytest.mark.parametrize(
    ("error", "start"),
    [
        (status_error(PermissionDeniedError, 403), "the token may not do this (403)"),
        (status_error(NotFoundError, 404), "the API refused the request: 404"),
        (status_error(RateLimitError, 429), "the API is limiting the rate"),
        (status_error(InternalServerError, 502), "the API failed: 502"),
        (APITimeoutError("timed out", method="GET", url=URL), "no answer from the API in time"),
        (APIConnectionError("refused", method="GET", url=URL), "no answer from the API: refused"),
        (
            APIResponseValidationError("bad", method="GET", url=URL, status_code=200),
            "the API's answer could not be read",
        ),
        (OSError(28, "No space left on device"), "cannot read or write: No space left"),
        (RuntimeError("boom\nmore"), "unexpected RuntimeError: boom more"),
    ],
)
def test_error_messages_are_one_line(error, start):
    """Each error is explained in one line."""
    message = _cli_core.error_message(error)

    assert message.startswith(start)
    assert "\n" not in message


# --------------------------------------------------------------------------- the bar


def test_no_bar_off_a_terminal(monkeypatch):
    """Off a terminal there is no bar, and rich is not imported for one."""
    monkeypatch.delitem(sys.modules, "rich", raising=False)
    ui = _cli._Ui()
    ui.stderr_is_terminal = False

    assert isinstance(ui.bar("export", data_on_stdout=False), _cli._NoBar)
    assert "rich" not in sys.modules


def test_no_bar_when_the_data_scrolls_on_the_same_terminal():
    """Export to a terminal shows the data, not a bar fighting it."""
    ui = _cli._Ui()
    ui.stderr_is_terminal = ui.stdout_is_terminal = True

    assert isinstance(ui.bar("export", data_on_stdout=True), _cli._NoBar)


def test_without_rich_the_command_line_works_without_a_bar(monkeypatch):
    """The cli extra is optional: without rich, a terminal gets no bar, and nothing fails."""
    monkeypatch.setitem(sys.modules, "rich", None)
    monkeypatch.setitem(sys.modules, "rich.console", None)
    ui = _cli._Ui()
    ui.stderr_is_terminal = True

    assert isinstance(ui.bar("import", data_on_stdout=False), _cli._NoBar)


# --------------------------------------------------------------------------- the README


def readme_section() -> str:
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    return text.split("## Command line\n", 1)[1].split("\n## ", 1)[0]


def test_the_readme_shows_every_command_and_exit_status():
    """The README's "Command line" section names each command and each exit status."""
    section = readme_section()

    for command in _cli._COMMANDS:
        assert f"segments-async {command}" in section
    for status in (0, 1, 2, 3, 4, 130):
        assert f"\n| {status} |" in section


def test_the_readmes_report_lines_are_what_the_command_writes():
    """The report example has the keys and statuses report_record gives."""
    (example,) = re.findall(r"```json\n(.*?)```", readme_section(), flags=re.DOTALL)
    records = [json.loads(line) for line in example.splitlines()]

    assert ["ok", "failed", "unknown"] == [record["status"] for record in records]
    written = [
        report(BulkResult(0, "EMEA", value=SEGMENTS[0]), line=2),
        report(BulkResult(1, "", error=TypeError("x")), line=3),
        report(BulkResult(2, "DACH", error=TypeError("x"), outcome_unknown=True), line=4),
    ]
    assert [set(record) for record in written] == [set(record) for record in records]


# --------------------------------------------------------------------------- main, in-process


def test_stdin_cannot_be_the_token_and_the_input(monkeypatch, capsys):
    """`import - --token-file -` is a usage error, before stdin is read."""
    monkeypatch.setenv("SEGMENTS_BASE_URL", "https://x.example")
    monkeypatch.setattr(sys, "stdin", None)  # reading it would fail loudly

    assert 2 == _cli.main(["import", "-", "--format", "csv", "--token-file", "-"])
    assert "stdin cannot be both" in capsys.readouterr().err


def test_a_missing_token_leaves_the_output_file_alone(monkeypatch, tmp_path, capsys):
    """The configuration is checked before --output is opened (and emptied)."""
    monkeypatch.setenv("SEGMENTS_BASE_URL", "https://x.example")
    monkeypatch.delenv("SEGMENTS_API_TOKEN", raising=False)
    output = tmp_path / "keep.jsonl"
    output.write_text("precious\n")

    assert 2 == _cli.main(["export", "--output", str(output)])
    assert "precious\n" == output.read_text()
    assert "no API token" in capsys.readouterr().err


def test_the_library_logger_is_left_as_it_was_found(monkeypatch, capsys):
    """main() logs the library's records to stderr while it runs, then restores the logger."""
    monkeypatch.setenv("SEGMENTS_API_TOKEN", TOKEN)
    logger = logging.getLogger("segments_async")
    before = (list(logger.handlers), logger.level, logger.propagate)

    assert 2 == _cli.main(["--debug", "delete", "not-an-id", "--base-url", "https://x.example"])

    assert before == (list(logger.handlers), logger.level, logger.propagate)
    assert "not a segment id" in capsys.readouterr().err


def test_a_report_cannot_overwrite_its_input(monkeypatch, tmp_path, capsys):
    """`import names.csv --report names.csv` is refused before the file is emptied."""
    monkeypatch.setenv("SEGMENTS_BASE_URL", "https://x.example")
    monkeypatch.setenv("SEGMENTS_API_TOKEN", TOKEN)
    names = tmp_path / "names.csv"
    names.write_text("name\nEMEA\n")

    assert 2 == _cli.main(["import", str(names), "--report", str(tmp_path / "." / "names.csv")])
    assert "name\nEMEA\n" == names.read_text()
    assert "would overwrite the input file" in capsys.readouterr().err
