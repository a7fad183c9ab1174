"""What became of each item: report lines, failure lines, the tally."""

from __future__ import annotations

import json

import pytest

from segments_async import (
    APIConnectionError,
    BulkResult,
    ClientClosedError,
    Segment,
    UnprocessableEntityError,
)
from segments_async._cli import report

from ..conftest import SEGMENT_ID

URL = "https://api.segments.test/v2.3/data/segments"

SEGMENTS = [
    Segment(SEGMENT_ID, "EMEA"),
]


def report_of(result: BulkResult[object], line: int | None = None) -> dict[str, object]:
    return json.loads(report.report_line(report.result_entry(result, result.index, line)))


def test_report_lines_say_what_became_of_each_input():
    """ok with the id, failed or unknown with the error (without the request's URL)."""
    refused = UnprocessableEntityError("name is invalid", method="POST", url=URL, status_code=422)
    lost = APIConnectionError("connection lost", method="POST", url=URL)

    assert {"index": 0, "line": 2, "input": "EMEA", "status": "ok", "id": SEGMENT_ID} == report_of(
        BulkResult(0, "EMEA", value=SEGMENTS[0]), line=2
    )
    assert {
        "index": 1,
        "input": "",
        "status": "failed",
        "error": "422 name is invalid",
    } == report_of(BulkResult(1, "", error=refused))
    assert {"index": 2, "input": "x", "status": "unknown", "error": "connection lost"} == report_of(
        BulkResult(2, "x", error=lost, outcome_unknown=True)
    )
    assert {"index": 3, "input": 5, "status": "failed", "error": "name must be a str"} == report_of(
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

    assert said == report_of(BulkResult(0, "x", error=closed, outcome_unknown=unknown))["error"]


def test_a_delete_report_gives_the_deleted_id():
    """A delete has no value: the id is the input's, lower case as sent."""
    assert {"index": 0, "input": SEGMENT_ID.upper(), "status": "ok", "id": SEGMENT_ID} == report_of(
        BulkResult(0, SEGMENT_ID.upper(), value=None)
    )


def test_a_long_input_is_echoed_as_an_excerpt():
    """The report and stderr show a long input's start and size, never all of it."""
    name = "n" * 100_000
    refused = UnprocessableEntityError("too long", method="POST", url=URL, status_code=422)
    entry = report.result_entry(BulkResult(4, name, error=refused), 4, 7)

    shown = "n" * 200 + "... (100,000 bytes)"
    assert shown == report_of(BulkResult(4, name, error=refused))["input"]
    assert f"in.csv, line 7: {shown!r}: failed: 422 too long" == report.failure_line(
        entry, "in.csv"
    )
    assert {"name": [1] * 100} == json.loads(
        report.report_line(report.Entry(0, 1, {"name": [1] * 100}, "failed"))
    )["input"]


def test_a_servers_long_message_is_echoed_as_an_excerpt():
    """A server may explain a refusal at length: the report and stderr get its start."""
    refused = UnprocessableEntityError("no " * 50_000, method="POST", url=URL, status_code=422)

    error = report_of(BulkResult(0, "x", error=refused))["error"]

    assert error.startswith("422 no no")
    assert error.endswith("... (150,003 bytes)")
    assert len(error) < 250


def test_a_failure_names_the_line_or_the_argument():
    """1-based: a file's line, or the argument's position; never a 0-based index."""
    entry = report.Entry(0, None, "x", "unknown", error="lost")

    assert "argument 1: 'x': unknown outcome: lost" == report.failure_line(entry, None)


def test_the_tally_sums_up_and_sets_the_exit_status():
    """All ok or skipped is 0; any failed or unknown item is 1; skipped are counted when
    the command skips."""
    tally = report.Tally(skipping=True)
    tally.add(report.Entry(0, None, "a", "ok"))
    tally.add(report.Entry(1, None, "a", "skipped"))
    assert 0 == tally.exit_status()

    tally.add(report.Entry(2, None, "b", "failed"))
    tally.add(report.Entry(3, None, "c", "unknown"))
    assert 1 == tally.exit_status()
    assert "1 succeeded, 1 failed, 1 unknown, 1 skipped" == tally.summary()
    assert "0 succeeded, 0 failed, 0 unknown" == report.Tally().summary()
