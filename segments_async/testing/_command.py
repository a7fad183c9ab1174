"""The fake server's command line: ``python -m segments_async.testing --segments 1000``.

One definition of its options (``add_options``) serves both ``python -m
segments_async.testing`` and ``segments-async serve-fake``; ``serve`` runs what they
parsed. It prints ``SEGMENTS_BASE_URL=...`` and ``SEGMENTS_API_TOKEN=...`` (the client's
environment variables), one per line, then serves until Ctrl-C or SIGTERM. A bad option
(a bad ``--fault`` spec included), or an address it cannot listen on, is one line on
stderr and exit status 2. The request log is off (``record_requests=0``), so a long run
stays in bounded memory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Final, NoReturn

from ._api import check_token
from ._fault_spec import FAULT_SPEC_HELP, FaultSpec, parse_fault_spec
from ._server import FakeSegmentsServer

__all__ = ["PROG", "add_options", "main", "serve"]

PROG: Final = "python -m segments_async.testing"

#: Where the namespace notes which spelling of the segment count was given.
_SPELLING: Final = "segments_spelling"


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, without the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _int_at_least(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low or (high is not None and value > high):
            bounds = f"in {low}..{high}" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {value}")
        return value

    return parse


def _positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number above 0, got {text!r}")
    return value


def _host(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def _token(text: str) -> str:
    try:
        return check_token(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _fault(text: str) -> FaultSpec:
    try:
        return parse_fault_spec(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc} in {text!r}") from None


class _SegmentCount(argparse.Action):
    """``--segments N``, or its deprecated spelling ``--seed N``: not both."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        if getattr(namespace, _SPELLING, option_string) != option_string:
            parser.error("--seed is the deprecated spelling of --segments: give only --segments")
        setattr(namespace, _SPELLING, option_string)
        setattr(namespace, self.dest, values)


def add_options(parser: argparse.ArgumentParser) -> None:
    """The fake server's options, on ``parser``."""
    add = parser.add_argument
    add("--host", type=_host, default="127.0.0.1", help="address to bind (127.0.0.1)")
    add("--port", type=_int_at_least(0, 65535), default=0, help="port; 0 picks a free one")
    add(
        "--segments",
        type=_int_at_least(0),
        default=0,
        action=_SegmentCount,
        metavar="N",
        help="segments to create (0)",
    )
    add(
        "--seed",
        dest="segments",
        type=_int_at_least(0),
        action=_SegmentCount,
        metavar="N",
        help="deprecated: use --segments",
    )
    add("--random-seed", type=int, default=0, help="seed of the data and fault RNG (0)")
    add("--token", type=_token, default=None, help="the tenant's token (default: random)")
    add("--max-per-page", type=_int_at_least(1), default=100, help="per_page cap (100)")
    add("--delete-body", action="store_true", help="send a JSON body with DELETE's 204")
    add(
        "--concurrency-limit",
        type=_int_at_least(1),
        default=None,
        metavar="N",
        help="answer 429 while N requests are in progress",
    )
    add(
        "--rate-limit",
        type=_positive_number,
        default=None,
        metavar="PER_SECOND",
        help="answer 429 beyond this many requests a second (a burst of one second's worth)",
    )
    add(
        "--fault",
        type=_fault,
        action="append",
        default=[],
        dest="faults",
        metavar="SPEC",
        help=f"inject a fault: {FAULT_SPEC_HELP}",
    )


def _reason(exc: OSError) -> str:
    # asyncio wraps bind errors in a long message; the errno's text says it all.
    if exc.errno is not None and exc.errno > 0:
        return os.strerror(exc.errno)
    return exc.strerror or str(exc)  # a resolver error (gaierror) has a negative errno


async def _serve(args: argparse.Namespace) -> str | None:
    """Serve until SIGINT/SIGTERM; the error that stopped it from starting, or None."""
    server = FakeSegmentsServer(
        host=args.host,
        port=args.port,
        token=args.token,
        seed=args.random_seed,
        max_per_page=args.max_per_page,
        delete_body=args.delete_body,
        record_requests=0,
    )
    try:
        await server.start()
    except OSError as exc:
        return f"cannot listen on {args.host} port {args.port}: {_reason(exc)}"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Not on Windows: there Ctrl-C raises KeyboardInterrupt, caught in serve().
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    try:
        server.add_segments(args.segments)
        if args.concurrency_limit is not None:
            server.limit_concurrency(args.concurrency_limit)
        if args.rate_limit is not None:
            server.limit_rate(args.rate_limit)
        for spec in args.faults:
            server.inject(
                spec.fault,
                method=spec.method,
                path=spec.path,
                times=spec.times,
                probability=spec.probability,
            )
        print(f"SEGMENTS_BASE_URL={server.base_url}", flush=True)
        print(f"SEGMENTS_API_TOKEN={server.token}", flush=True)
        await stop.wait()
    finally:
        await server.close()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(signum)
    return None


def serve(args: argparse.Namespace, prog: str) -> int:
    """Serve what ``add_options`` parsed until interrupted; the exit status. Messages on
    stderr start with ``prog``."""
    if getattr(args, _SPELLING, None) == "--seed":
        print(f"{prog}: warning: --seed N is deprecated, use --segments N", file=sys.stderr)
    error = None
    with contextlib.suppress(KeyboardInterrupt):
        error = asyncio.run(_serve(args))
    if error is not None:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and serve until interrupted; returns the exit status."""
    parser = _Parser(prog=PROG, description="Serve a fake Segments API.", allow_abbrev=False)
    add_options(parser)
    return serve(parser.parse_args(argv), PROG)
