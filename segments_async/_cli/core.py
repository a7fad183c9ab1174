"""The entry point: parse, run the chosen command, and turn how it ended into an exit
status and at most one line on stderr.

An API command runs in two steps (``commands``): its arguments are checked and its files
opened before anything is sent, then ``asyncio.run`` runs its job with a client. Ctrl-C:
``asyncio.run`` cancels the running job on the first SIGINT (bulk commands catch the first
one themselves), so requests in flight are cancelled and the client is closed as the job
unwinds; files are flushed and closed, one line goes to stderr, and the status is 130. A
closed stdout (``| head``) ends the command quietly with status 0, as the Python docs
recommend for SIGPIPE.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import traceback
from collections.abc import Sequence

from .._client import SegmentsClient
from . import config
from .bulk import Job
from .commands import PREPARE
from .console import Ui, library_log
from .definition import build_parser
from .outputs import quiet_stdout
from .status import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    UsageError,
    error_message,
    exit_status,
)

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (the console script exits with it)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    ui = Ui(quiet=args.quiet)
    # The demo shows the library's log in its report; on stderr it would say it twice.
    own_log = args.command == "demo" and not args.debug
    try:
        log = library_log(debug=args.debug, quiet=args.quiet)
        with contextlib.nullcontext() if own_log else log:
            return _run(args, ui)
    except KeyboardInterrupt:
        ui.say(f"interrupted{ui.interrupted_note}")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        quiet_stdout()
        return EXIT_OK
    except Exception as error:  # every error ends as one line and a status
        if args.debug:
            traceback.print_exc()
        ui.say(f"error: {error_message(error)}")
        return exit_status(error)


def _run(args: argparse.Namespace, ui: Ui) -> int:
    if args.command == "demo":
        from .demo import demo

        live = ui.stderr_is_terminal and not ui.quiet
        return asyncio.run(demo(args.segments, args.concurrency, sys.stdout, live=live))
    if args.command == "serve-fake":
        from ..testing._command import serve

        return serve(args, PROG)
    if args.token_file == "-" and getattr(args, "file", None) == "-":  # noqa: S105 - a path
        raise UsageError("stdin cannot be both the token file and the input file")
    # The configuration first: a missing token must not cost an output file its contents.
    client = config.client(args)
    with contextlib.ExitStack() as files:
        job = PREPARE[args.command](args, ui, files)
        return asyncio.run(_run_job(client, job))


async def _run_job(client: SegmentsClient, job: Job) -> int:
    async with client:
        return await job(client)
