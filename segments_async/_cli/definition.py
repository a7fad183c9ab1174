"""The command line's parser: commands, options, help texts and examples.

One argparse parser with a subcommand per job (DESIGN.md, "Command line"). The global
options work before or after the command: in a command their defaults stay unset
(``SUPPRESS``), so that a value given before the command is kept unless given again
after it. A command's own options are added when it is chosen, so that a command pays
only for its own: ``serve-fake`` takes the testing kit's (``python -m
segments_async.testing``), whose import, aiohttp's server, the others do not need.
"""

from __future__ import annotations

import argparse
import functools
import textwrap
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal, NoReturn, cast

import attrs

from .._version import __version__
from .argtypes import concurrency_arg, non_negative_int_arg, positive_float_arg, positive_int_arg
from .status import EXIT_USAGE, PROG

__all__ = ["COMMANDS", "DEFAULT_CONCURRENCY", "build_parser"]

#: The bulk commands' and export's --concurrency when none is given.
DEFAULT_CONCURRENCY: Final[int | Literal["auto"]] = 16

_EXAMPLES: Final = {
    "list": "segments-async list --page 2 --per-page 50\n"
    "  segments-async list --format jsonl | jq -r .name\n"
    "  segments-async list --per-page 100 --output first-100.csv",
    "export": "segments-async export --format csv --output segments.csv\n"
    "  segments-async export --limit 1000 | jq -r .id",
    "create": 'segments-async create "EMEA" "Central Europe"',
    "rename": 'segments-async rename 7f2d6e6d-a4ad-4b58-abfe-bd8b918ebec2 "DACH"',
    "delete": "segments-async delete 7f2d6e6d-a4ad-4b58-abfe-bd8b918ebec2",
    "import": "segments-async import names.csv --report import-report.jsonl\n"
    "  segments-async import names.csv --skip-existing   # again, after a crash\n"
    "  jq -c '{name: .title}' items.jsonl | segments-async import - --format jsonl",
    "delete-many": "segments-async delete-many ids.txt --report deleted.jsonl\n"
    "  segments-async export | jq -r 'select(.name | startswith(\"tmp\")) | .id'"
    " | segments-async delete-many -",
    "demo": "segments-async demo --segments 2000",
    "serve-fake": "segments-async serve-fake --port 8080 --segments 1000\n"
    "  segments-async serve-fake --fault 503,retry-after=1,method=POST,times=3\n"
    "  segments-async serve-fake --fault latency=0.05,probability=1 --concurrency-limit 8",
}

_BULK_DETAILS: Final = (
    " An item that fails (refused by the API, not a name, not an id, a 404, a line over"
    " 1 MiB) fails only itself: the status is then 1. A summary goes to stderr; --report"
    ' FILE writes a JSON line per input as its result comes: {"index", "line", "input",'
    ' "status": "ok"|"failed"|"unknown"|"skipped", "id"|"error"}. The first Ctrl-C stops'
    " sending and keeps every result that came back (status 130)."
)
_DETAILS: Final = {
    "list": " --output FILE is replaced only once the page has come.",
    "export": " Streamed: memory stays the same whatever the number of segments. --output"
    " FILE is replaced only once the export has succeeded.",
    "create": _BULK_DETAILS,
    "delete": " Every id is checked before anything is sent." + _BULK_DETAILS,
    "import": " Nothing is printed on stdout; a line not in the file's format stops the command"
    " (status 2) after the items before it." + _BULK_DETAILS,
    "delete-many": " Nothing is printed on stdout; blank lines are skipped." + _BULK_DETAILS,
    "demo": " The report goes to stdout and says which failures the demo causes on purpose;"
    " progress shows on stderr only on a terminal.",
    "serve-fake": " It prints SEGMENTS_BASE_URL=... and SEGMENTS_API_TOKEN=... and serves until"
    " Ctrl-C. The same options as python -m segments_async.testing; --fault injects the"
    " testing kit's faults (--delete-body sends the spec's 204 with a body).",
}

_MAIN_EPILOG: Final = """\
configuration:
  SEGMENTS_BASE_URL and SEGMENTS_API_TOKEN, or --base-url and --token-file FILE (- for
  stdin); the flags win. A token is never accepted on the command line.

output:
  data on stdout; messages, warnings and the progress bar on stderr (with --quiet, no
  bar and no summary: only errors).

exit status:
  0 done; 1 some items failed or their outcome is unknown; 2 usage error; 3 the API
  refused (4xx); 4 no usable answer (connection, timeout, 5xx); 130 interrupted.

example:
  export SEGMENTS_BASE_URL=https://api.example.com
  segments-async export --output segments.jsonl --token-file ~/.segments-token
"""


class _Parser(argparse.ArgumentParser):
    """Errors in one line (with where to look), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _RefuseToken(argparse.Action):
    """``--token``: refused outright, so a token never sits in ``ps`` or shell history."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        parser.error(
            f"{option_string} is not accepted: a token on the command line is visible to "
            f"other users; use --token-file FILE (or - for stdin) or SEGMENTS_API_TOKEN"
        )


if TYPE_CHECKING:
    _SubParsersAction = argparse._SubParsersAction[argparse.ArgumentParser]
else:  # not subscriptable at run time
    _SubParsersAction = argparse._SubParsersAction


class _Commands(_SubParsersAction):
    """Subcommands whose arguments are added to a command's parser when it is chosen."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pending: dict[str, Callable[[], None]] = {}

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        if values:
            add_arguments = self.pending.pop(values[0], None)
            if add_arguments is not None:
                add_arguments()
        super().__call__(parser, namespace, values, option_string)


def _connection_options(parser: argparse.ArgumentParser, *, in_command: bool) -> None:
    """The options of the client, before or after an API command."""

    def default(value: object) -> object:
        return argparse.SUPPRESS if in_command else value

    group = parser.add_argument_group("connection options (before or after the command)")
    add = group.add_argument
    add("--base-url", metavar="URL", default=default(None), help="the API (SEGMENTS_BASE_URL)")
    add(
        "--token-file",
        metavar="FILE",
        default=default(None),
        help="a file holding the token, - for stdin (default: SEGMENTS_API_TOKEN)",
    )
    add(
        "--timeout",
        type=positive_float_arg,
        metavar="SECONDS",
        default=default(30.0),
        help="per attempt (default 30)",
    )
    add(
        "--deadline",
        type=positive_float_arg,
        metavar="SECONDS",
        default=default(None),
        help="per call, retries and waits included (default: none)",
    )
    add(
        "--retries",
        type=non_negative_int_arg,
        metavar="N",
        default=default(2),
        help="retries of a failed attempt (default 2)",
    )
    add(
        "--rate-limit",
        type=positive_float_arg,
        metavar="PER_SECOND",
        default=default(None),
        help="at most this many requests a second (default: no limit)",
    )
    add(
        "--fleet",
        metavar="URL",
        default=default(None),
        help="share rate limit and retry budget with other processes through this Redis"
        " (SEGMENTS_FLEET_URL)",
    )
    add(
        "--allow-insecure-http",
        action="store_true",
        default=default(False),
        help="allow http:// to a host that is not this machine",
    )
    parser.add_argument("--token", nargs="?", action=_RefuseToken, help=argparse.SUPPRESS)


def _output_options(parser: argparse.ArgumentParser, *, in_command: bool) -> None:
    """What goes to stderr, before or after any command."""
    parser.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS if in_command else False,
        help="log every request, and show the traceback of an error",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS if in_command else False,
        help="no progress bar and no summary (errors still go to stderr)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: global options, then one subparser per command."""
    parser = _Parser(
        prog=PROG,
        description="The Segments API from the command line.",
        epilog=_MAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    _connection_options(parser, in_command=False)
    _output_options(parser, in_command=False)
    commands = cast(
        _Commands,
        parser.add_subparsers(
            action=_Commands, dest="command", metavar="COMMAND", parser_class=_Parser
        ),
    )
    for name, command in COMMANDS.items():
        sub = commands.add_parser(
            name,
            help=command.summary,
            description=textwrap.fill(
                f"{command.summary[0].upper()}{command.summary[1:]}.{_DETAILS.get(name, '')}"
            ),
            epilog=f"example:\n  {_EXAMPLES[name]}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
            allow_abbrev=False,
        )
        commands.pending[name] = functools.partial(_complete, sub, command)
    return parser


def _complete(parser: argparse.ArgumentParser, command: _Command) -> None:
    command.add_arguments(parser)
    if command.uses_api:
        _connection_options(parser, in_command=True)
    _output_options(parser, in_command=True)


def _concurrency(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--concurrency",
        type=concurrency_arg,
        default=DEFAULT_CONCURRENCY,
        metavar="N|auto",
        help=f"{what} in flight at once, or auto to adapt to the server "
        f"(default {DEFAULT_CONCURRENCY})",
    )


def _report(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--report", metavar="FILE", help="write one JSON line per item: its status, id or error"
    )


def _add_list(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--page", type=positive_int_arg, default=1, help="default 1")
    parser.add_argument(
        "--per-page", type=positive_int_arg, default=20, help="default 20 (at most 100)"
    )
    formats = parser.add_mutually_exclusive_group()
    formats.add_argument(
        "--format",
        choices=("table", "jsonl", "csv"),
        help="default: a table on a terminal, else JSON lines (CSV for an --output ending in .csv)",
    )
    formats.add_argument(
        "--json", dest="format", action="store_const", const="jsonl", help="--format jsonl"
    )
    parser.add_argument("--output", "-o", metavar="FILE", help="write here (default: stdout)")


def _add_export(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=("jsonl", "csv"),
        help="default: from the --output extension (.csv), else jsonl",
    )
    parser.add_argument("--output", "-o", metavar="FILE", help="write here (default: stdout)")
    _concurrency(parser, "page requests")
    parser.add_argument("--limit", type=positive_int_arg, metavar="N", help="stop after N segments")
    parser.add_argument(
        "--per-page", type=positive_int_arg, default=100, help="page size (default 100)"
    )


def _add_create(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="+", metavar="NAME", help="a segment name")
    _concurrency(parser, "creates")
    _report(parser)


def _add_rename(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("segment_id", metavar="SEGMENT_ID")
    parser.add_argument("name", metavar="NAME")


def _add_delete(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("segment_ids", nargs="+", metavar="SEGMENT_ID")
    _concurrency(parser, "deletes")
    _report(parser)


def _add_import(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE|-", help="CSV with a name column, or JSON lines")
    parser.add_argument(
        "--format", choices=("csv", "jsonl"), help="default: from the extension (.csv, .jsonl)"
    )
    _concurrency(parser, "creates")
    _report(parser)
    parser.add_argument(
        "--skip-existing",
        action="store_true",
        help="read the existing names first and create only the missing ones (and each name once)",
    )


def _add_delete_many(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE|-", help="segment ids, one a line")
    _concurrency(parser, "deletes")
    _report(parser)


def _add_demo(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--segments", type=positive_int_arg, default=10_000, help="10000")
    parser.add_argument("--concurrency", type=positive_int_arg, default=16, help="16")


def _add_serve_fake(parser: argparse.ArgumentParser) -> None:
    from ..testing._command import add_options

    add_options(parser)


@attrs.frozen
class _Command:
    summary: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    uses_api: bool = True


COMMANDS: Final = {
    "list": _Command("print one page of segments (a table on a terminal)", _add_list),
    "export": _Command("write every segment as JSON lines or CSV, streamed", _add_export),
    "create": _Command("create segments, printing each as a JSON line", _add_create),
    "rename": _Command("rename a segment, printing it as a JSON line", _add_rename),
    "delete": _Command("delete segments by id", _add_delete),
    "import": _Command("create a segment for each name in a CSV or JSON lines file", _add_import),
    "delete-many": _Command("delete the segments a file lists by id, one a line", _add_delete_many),
    "demo": _Command(
        "run the library against a local fake API and print a report", _add_demo, uses_api=False
    ),
    "serve-fake": _Command(
        "serve a fake Segments API on this machine", _add_serve_fake, uses_api=False
    ),
}
