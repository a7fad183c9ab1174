"""How a command ends: its exit status, and the one line that explains an error.

Exit statuses (DESIGN.md, "Command line")::

    0    everything was done
    1    some items of a bulk command failed, or their outcome is unknown
    2    usage: a bad option or id, an unreadable file, a file not in its format
    3    the API refused (a 4xx, a 429 after the retries included)
    4    no usable answer (connection, timeout, 5xx, an answer that cannot be read)
    130  interrupted (Ctrl-C)
"""

from __future__ import annotations

from typing import Final

from .._errors import (
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
from .text import one_line

__all__ = [
    "EXIT_FAILED_ITEMS",
    "EXIT_INTERRUPTED",
    "EXIT_NO_ANSWER",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "PROG",
    "InputError",
    "UsageError",
    "error_message",
    "exit_status",
]

#: The command's name, which starts every line it writes on stderr.
PROG: Final = "segments-async"

EXIT_OK: Final = 0
EXIT_FAILED_ITEMS: Final = 1
EXIT_USAGE: Final = 2
EXIT_REFUSED: Final = 3
EXIT_NO_ANSWER: Final = 4
EXIT_INTERRUPTED: Final = 130


class UsageError(Exception):
    """The command cannot run as given: exit status 2, one line, nothing sent."""


class InputError(UsageError):
    """A line of an input file that is not in the file's format."""

    def __init__(self, source: str, line: int, message: str) -> None:
        super().__init__(f"{source}, line {line}: {message}")
        self.source = source
        self.line = line


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
        return one_line(f"cannot read or write{where}: {error.strerror}")
    return one_line(f"unexpected {type(error).__name__}: {error} (--debug shows the traceback)")
