"""Where segments are written, and how: JSON lines, CSV or a table, to stdout or to an
``--output FILE`` that is replaced only when the command succeeded; and the report file.

``AtomicOutput`` writes ``FILE`` under a temporary name beside it and renames it over
``FILE`` only once everything is written, flushed and synced, so a failed or interrupted
command leaves the previous file as it was.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import stat
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from typing import IO, Final, Literal, cast

import orjson

from .._models import Segment
from .inputs import format_of
from .status import UsageError
from .text import terminal_safe

__all__ = [
    "FILE_BUFFER",
    "AtomicOutput",
    "OutputFormat",
    "SegmentsOutput",
    "csv_header",
    "csv_lines",
    "jsonl_lines",
    "open_report",
    "output_format",
    "quiet_stdout",
    "table_header",
    "table_lines",
]

OutputFormat = Literal["jsonl", "csv", "table"]

#: Bytes buffered before a write to an output or report file.
FILE_BUFFER: Final = 1 << 16


def output_format(path: str | None, given: str | None, *, terminal: bool = False) -> OutputFormat:
    """The format segments are written in: ``--format``; else the output file's extension
    (``.csv``), else a table if the data goes to a terminal (``terminal``), else JSON lines."""
    if given is not None:
        return cast("OutputFormat", given)  # one of argparse's choices
    if path is not None and path != "-":
        return "csv" if format_of(path) == "csv" else "jsonl"
    return "table" if terminal else "jsonl"


def jsonl_lines(segments: Iterable[Segment]) -> bytes:
    """Segments as JSON lines, ``{"id": ..., "name": ...}``, each ending in a newline."""
    dumps, option = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    return b"".join([dumps({"id": s.id, "name": s.name}, option=option) for s in segments])


def csv_header() -> bytes:
    return b"id,name\r\n"


def csv_lines(segments: Iterable[Segment]) -> bytes:
    """Segments as CSV rows (RFC 4180, quoted where needed), without the header.

    Lines end in CRLF, csv's default: with a bare LF as the line end, csv would leave a
    name holding a bare CR unquoted, and a reader would split the row there.
    """
    buffer = io.StringIO()
    csv.writer(buffer).writerows([(s.id, s.name) for s in segments])
    return buffer.getvalue().encode("utf-8")


def table_header() -> bytes:
    return f"{'ID':<36}  NAME\n".encode()


def table_lines(segments: Iterable[Segment]) -> bytes:
    """Segments as the rows of a plain two-column table (``ID``, ``NAME``) for a terminal,
    every character that could drive the terminal escaped."""
    rows = [f"{terminal_safe(s.id):<36}  {terminal_safe(s.name)}\n" for s in segments]
    return "".join(rows).encode()


_Encoder = Callable[[Iterable[Segment]], bytes]
_ENCODINGS: Final[dict[OutputFormat, tuple[Callable[[], bytes], _Encoder]]] = {
    "jsonl": (lambda: b"", jsonl_lines),
    "csv": (csv_header, csv_lines),
    "table": (table_header, table_lines),
}


class SegmentsOutput:
    """Segments in a format on stdout, or in ``--output FILE``, which ``commit`` replaces
    (with the header alone if none came); if the command ends first, FILE is left as it
    was and ``say`` tells what became of it."""

    def __init__(
        self,
        path: str | None,
        fmt: OutputFormat,
        files: contextlib.ExitStack,
        say: Callable[[str], None],
        *,
        label: str,
    ) -> None:
        self.path = None if path == "-" else path
        self.written = 0
        self._header, self._encode = _ENCODINGS[fmt]
        self._started = False
        self._file: AtomicOutput | None = None
        if self.path is not None:
            try:
                self._file = AtomicOutput(self.path, FILE_BUFFER)
            except OSError as error:
                raise UsageError(f"cannot write {self.path}: {error.strerror}") from None
            files.callback(self._discard, say, label)
        self.out: IO[bytes] = sys.stdout.buffer if self._file is None else self._file.file

    @property
    def to_file(self) -> bool:
        return self._file is not None

    def write(self, segments: Sequence[Segment]) -> None:
        if not self._started:
            self._started = True
            self.out.write(self._header())
        self.out.write(self._encode(segments))
        self.written += len(segments)

    def commit(self) -> None:
        if not self._started:
            self.write(())
        if self._file is None:
            self.out.flush()
        else:
            self._file.commit()

    def flush(self) -> None:
        """What was written so far out to stdout (a file is replaced only on ``commit``)."""
        if self._file is None:
            self.out.flush()

    def _discard(self, say: Callable[[str], None], label: str) -> None:
        assert self._file is not None
        if self._file.discard():
            kept = "was left as it was" if self._file.existed else "was not created"
            say(f"{self.path} {kept}; the partial {label} ({self.written:,} segments) was removed")


def quiet_stdout() -> None:
    """After a broken pipe: stdout to /dev/null, so the interpreter's final flush of
    stdout cannot fail again (the Python docs' recipe for SIGPIPE)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def open_report(path: str | None, files: contextlib.ExitStack) -> IO[bytes] | None:
    """``--report FILE``, written as results come (a crash leaves what was done)."""
    if path is None:
        return None
    if path == "-":
        raise UsageError("--report needs a file: stdout carries the command's data")
    try:
        return files.enter_context(open(path, "wb", buffering=FILE_BUFFER))
    except OSError as error:
        raise UsageError(f"cannot write {path}: {error.strerror}") from None


class AtomicOutput:
    """``path`` written under a temporary name in its directory, renamed over it on
    ``commit``; ``discard`` removes the temporary file, leaving ``path`` as it was.

    The file gets the mode ``open()`` would have given it: an existing file's own, or a
    new file's under the umask (not ``mkstemp``'s 0600). A path that is not a regular
    file (``/dev/stdout``, a pipe) is written in place: it cannot be replaced.
    """

    def __init__(self, path: str, buffering: int) -> None:
        self.path = path
        self.existed = os.path.exists(path)
        target = os.path.realpath(path)  # through a symlink: the link stays
        if self.existed and not stat.S_ISREG(os.stat(target).st_mode):
            self._temp: str | None = None
            self._target = target
            self.file: IO[bytes] = open(path, "wb", buffering=buffering)  # noqa: SIM115
            return
        directory, name = os.path.split(target)
        mode = stat.S_IMODE(os.stat(target).st_mode) if self.existed else _new_file_mode()
        fd, self._temp = tempfile.mkstemp(prefix=f"{name}.", suffix=".tmp", dir=directory)
        self._target = target
        with contextlib.suppress(OSError):  # a file system without modes: still written
            os.chmod(self._temp, mode)
        self.file = os.fdopen(fd, "wb", buffering=buffering)

    @property
    def replaces(self) -> bool:
        """Whether ``path`` is replaced at the end (a regular file), not written in place."""
        return self._temp is not None

    def commit(self) -> None:
        """Flush, sync, and rename the temporary file over ``path``."""
        self.file.flush()
        if self._temp is None:
            self.file.close()
            return
        os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self._temp, self._target)
        self._temp = None
        _sync_directory(os.path.dirname(self._target))

    def discard(self) -> bool:
        """Remove the temporary file unless committed; whether there was one to remove."""
        self.file.close()
        if self._temp is None:
            return False
        os.unlink(self._temp)
        self._temp = None
        return True


def _new_file_mode() -> int:
    # The umask can only be read by setting it; the command line is single-threaded here.
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _sync_directory(directory: str) -> None:
    """Make the rename durable; not every system can open a directory (then skipped)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
