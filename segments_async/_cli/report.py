"""What became of each item of a bulk command: report lines, failure lines, the tally.

Pure: an ``Entry`` is made from a bulk operation's result (or from an input that could not
be read), and becomes a JSON line of ``--report FILE``, a line on stderr if it failed, and
a count in the ``Tally`` that gives the summary and the exit status.
"""

from __future__ import annotations

from typing import Any, Literal

import attrs
import orjson

from .._errors import APIStatusError, ClientClosedError, SegmentsError
from .._models import BulkResult, Segment
from .inputs import Unreadable
from .status import EXIT_FAILED_ITEMS, EXIT_OK
from .text import ECHOED_WHOLE, excerpt, one_line, terminal_safe

__all__ = [
    "Entry",
    "Status",
    "Tally",
    "failure_line",
    "item_error",
    "report_line",
    "report_record",
    "result_entry",
    "unreadable_entry",
]

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
    return value if len(text) <= ECHOED_WHOLE else excerpt(text)


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
    return excerpt(one_line(text))


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
