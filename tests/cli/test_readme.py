"""The README's "Command line" section says what the command line does."""

from __future__ import annotations

import json
import re

from segments_async import BulkResult, Segment
from segments_async._cli import definition, report

from ..conftest import SEGMENT_ID
from ..integration.support import section

SEGMENTS = [
    Segment(SEGMENT_ID, "EMEA"),
    Segment("00000000-0000-4000-8000-000000000001", 'a, "quoted"\nname ✓'),
]


def report_of(result: BulkResult[object], line: int | None = None) -> dict[str, object]:
    return json.loads(report.report_line(report.result_entry(result, result.index, line)))


def readme_section() -> str:
    return section("Command line")


def test_the_readme_shows_every_command_and_exit_status():
    """The README's "Command line" section names each command and each exit status."""
    section = readme_section()

    for command in definition.COMMANDS:
        assert f"segments-async {command}" in section
    for status in (0, 1, 2, 3, 4, 130):
        assert f"\n| {status} |" in section


def test_the_readmes_report_lines_are_what_the_command_writes():
    """The report example has the keys and statuses report_record gives."""
    (example,) = re.findall(r"```json\n(.*?)```", readme_section(), flags=re.DOTALL)
    records = [json.loads(line) for line in example.splitlines()]

    assert ["ok", "failed", "unknown"] == [record["status"] for record in records]
    written = [
        report_of(BulkResult(0, "EMEA", value=SEGMENTS[0]), line=2),
        report_of(BulkResult(1, "", error=TypeError("x")), line=3),
        report_of(BulkResult(2, "DACH", error=TypeError("x"), outcome_unknown=True), line=4),
    ]
    assert [set(record) for record in written] == [set(record) for record in records]


def test_the_readme_names_every_global_option():
    """--version, --quiet and the connection options are all in the README's section."""
    section = readme_section()
    parser = definition.build_parser()
    options = {o for a in parser._actions for o in a.option_strings if o.startswith("--")}

    for option in options - {"--help", "--token"}:
        assert re.search(re.escape(option) + r"(?![\w-])", section), option
