"""stderr: messages, failed items, the library's log, and whether a bar is drawn.

stdout carries only data; everything said to the user goes through ``Ui``. ``say`` is for
what must be read whatever the options (errors, failed items, what an interrupt or a
closed stdout left undone); ``summary`` for what ``--quiet`` silences, with the bar.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import IO, Final

from .progress import Bar, NoBar, rich_bar
from .status import PROG

__all__ = ["Ui", "library_log"]

#: Failed items named on stderr; the rest are only counted (the report has them all).
_FAILURES_SHOWN: Final = 10


class Ui:
    """stderr: messages, failed items, the progress bar, and the note of an interruption."""

    def __init__(self, *, quiet: bool = False) -> None:
        self.quiet = quiet
        self.stdout_is_terminal = _isatty(sys.stdout)
        self.stderr_is_terminal = _isatty(sys.stderr)
        self.interrupted_note = ""
        self._failures_shown = 0

    def say(self, text: str) -> None:
        print(f"{PROG}: {text}", file=sys.stderr, flush=True)

    def summary(self, text: str) -> None:
        """A line that sums up what was done, unless ``--quiet``."""
        if not self.quiet:
            self.say(text)

    def bar(self, label: str, *, data_on_stdout: bool) -> Bar:
        """A bar if stderr is a terminal, unless the data is scrolling on that terminal too
        or ``--quiet`` was given."""
        if self.quiet or not self.stderr_is_terminal:
            return NoBar()
        if data_on_stdout and self.stdout_is_terminal:
            return NoBar()
        return rich_bar(label)

    def item_failed(self, line: str) -> None:
        """A failed item's line (``report.failure_line``), for the first few of them."""
        self._failures_shown += 1
        if self._failures_shown <= _FAILURES_SHOWN:
            self.say(line)

    def more_failures(self, hint: str) -> None:
        hidden = self._failures_shown - _FAILURES_SHOWN
        if hidden > 0:
            self.say(f"... and {hidden:,} more not shown{hint}")


def _isatty(stream: IO[str] | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except ValueError:  # closed
        return False


class _StderrLog(logging.Handler):
    """The library's log records, a line each, on whatever ``sys.stderr`` is at the time
    (rich wraps it while a bar is shown, to print above the bar)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(f"{PROG}: {record.levelname.lower()}: {record.getMessage()}\n")
        except Exception:  # logging must not end the command
            self.handleError(record)


@contextlib.contextmanager
def library_log(*, debug: bool, quiet: bool) -> Iterator[None]:
    """The library's WARNINGs (a retry, a total that changed), or with ``--debug`` every
    request, on stderr while a command runs (``--quiet``: its errors only); the logger is
    left as it was found."""
    logger = logging.getLogger("segments_async")
    handler = _StderrLog()
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.ERROR if quiet else logging.WARNING)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
