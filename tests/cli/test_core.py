"""main() in-process: what is refused before anything is read, sent or written, and
commands against the mocked API (aioresponses), where a subprocess would add nothing."""

from __future__ import annotations

import csv
import io
import json
import logging
import sys
from typing import Any

import orjson
import pytest
from aioresponses import CallbackResult

from segments_async._cli import main

from ..conftest import (
    BASE_URL,
    LIST_URL,
    SEGMENT_ID,
    SEGMENTS_URL,
    TOKEN,
    CompatResponse,
    envelope,
    page_payload,
)


def test_stdin_cannot_be_the_token_and_the_input(monkeypatch, capsys):
    """`import - --token-file -` is a usage error, before stdin is read."""
    monkeypatch.setenv("SEGMENTS_BASE_URL", "https://x.example")
    monkeypatch.setattr(sys, "stdin", None)  # reading it would fail loudly

    assert 2 == main(["import", "-", "--format", "csv", "--token-file", "-"])
    assert "stdin cannot be both" in capsys.readouterr().err


def test_a_missing_token_leaves_the_output_file_alone(monkeypatch, tmp_path, capsys):
    """The configuration is checked before --output is opened (and emptied)."""
    monkeypatch.setenv("SEGMENTS_BASE_URL", "https://x.example")
    monkeypatch.delenv("SEGMENTS_API_TOKEN", raising=False)
    output = tmp_path / "keep.jsonl"
    output.write_text("precious\n")

    assert 2 == main(["export", "--output", str(output)])
    assert "precious\n" == output.read_text()
    assert "no API token" in capsys.readouterr().err


def test_the_library_logger_is_left_as_it_was_found(monkeypatch, capsys):
    """main() logs the library's records to stderr while it runs, then restores the logger."""
    monkeypatch.setenv("SEGMENTS_API_TOKEN", TOKEN)
    logger = logging.getLogger("segments_async")
    before = (list(logger.handlers), logger.level, logger.propagate)

    assert 2 == main(["--debug", "delete", "not-an-id", "--base-url", "https://x.example"])

    assert before == (list(logger.handlers), logger.level, logger.propagate)
    assert "not a segment id" in capsys.readouterr().err


def test_a_report_cannot_overwrite_its_input(monkeypatch, tmp_path, capsys):
    """`import names.csv --report names.csv` is refused before the file is emptied."""
    monkeypatch.setenv("SEGMENTS_BASE_URL", "https://x.example")
    monkeypatch.setenv("SEGMENTS_API_TOKEN", TOKEN)
    names = tmp_path / "names.csv"
    names.write_text("name\nEMEA\n")

    assert 2 == main(["import", str(names), "--report", str(tmp_path / "." / "names.csv")])
    assert "name\nEMEA\n" == names.read_text()
    assert "would overwrite the input file" in capsys.readouterr().err


@pytest.fixture
def api(monkeypatch, mock_api):
    """The mocked API, configured through the environment."""
    monkeypatch.setenv("SEGMENTS_BASE_URL", BASE_URL)
    monkeypatch.setenv("SEGMENTS_API_TOKEN", TOKEN)
    return mock_api


def test_list_writes_its_page_to_an_output_file_in_any_format(api, tmp_path, capsys):
    """list --output FILE: the page in the extension's format (CSV here); nothing on stdout."""
    api.get(LIST_URL, payload=page_payload(2, 3, 7))
    output = tmp_path / "page.csv"

    assert 0 == main(["list", "--page", "2", "--per-page", "3", "--output", str(output)])

    rows = list(csv.DictReader(io.StringIO(output.read_text(encoding="utf-8"), newline="")))
    assert ["s3", "s4", "s5"] == [row["name"] for row in rows]
    assert "" == capsys.readouterr().out


def test_a_failed_list_leaves_the_output_file_alone(api, tmp_path, capsys):
    """A refused list (401) leaves FILE as it was, says so, and writes no temporary file."""
    api.get(LIST_URL, status=401, payload={"success": False, "error": {"message": "no"}})
    output = tmp_path / "page.jsonl"
    output.write_text("precious\n")

    assert 3 == main(["list", "--output", str(output)])

    assert "precious\n" == output.read_text()
    assert ["page.jsonl"] == [path.name for path in tmp_path.iterdir()]
    assert f"{output} was left as it was" in capsys.readouterr().err


def test_list_prints_a_table_when_told_even_off_a_terminal(api, capsys):
    """--format table: the table, whatever stdout is."""
    api.get(LIST_URL, payload=page_payload(1, 2, 2))

    assert 0 == main(["list", "--format", "table"])

    lines = capsys.readouterr().out.splitlines()
    assert ["ID", "NAME"] == lines[0].split()
    assert lines[2].endswith("  s1")


def create_or_refuse_empty(url: object, **kwargs: Any) -> CallbackResult:
    """The API's create: a 422 for an empty name."""
    name = orjson.loads(kwargs["data"])["name"]
    if not name:
        refused = {"success": False, "error": {"code": "invalid_name", "message": "bad name"}}
        return CallbackResult(status=422, payload=refused, response_class=CompatResponse)
    created = envelope({"id": SEGMENT_ID, "name": name})
    return CallbackResult(payload=created, response_class=CompatResponse)


@pytest.mark.parametrize("where", ["before", "after"])
def test_quiet_keeps_the_errors_and_drops_the_summary(api, capsys, where):
    """--quiet: a failed item is still on stderr, the summary is not; status 1 as ever."""
    api.post(SEGMENTS_URL, callback=create_or_refuse_empty, repeat=True)
    quiet = ["--quiet"]
    argv = [*quiet, "create", "EMEA", ""] if where == "before" else ["create", "EMEA", "", *quiet]

    assert 1 == main(argv)

    captured = capsys.readouterr()
    assert ["segments-async: argument 2: '': failed: 422 bad name"] == captured.err.splitlines()
    assert [{"id": SEGMENT_ID, "name": "EMEA"}] == [
        json.loads(line) for line in captured.out.splitlines()
    ]
