"""Run the fake Segments API standalone: ``python -m segments_async.testing --segments 1000``.

Prints ``SEGMENTS_BASE_URL=...`` and ``SEGMENTS_API_TOKEN=...`` (the client's environment
variables), one per line, then serves until Ctrl-C or SIGTERM. A bad option, or an address
it cannot listen on, is one line on stderr and exit status 2. The request log is off
(``record_requests=0``), so a long run stays in bounded memory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from .._cli_core import positive_float_arg
from ._api import check_token
from ._server import FakeSegmentsServer

PROG = "python -m segments_async.testing"


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


def _host(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def _token(text: str) -> str:
    try:
        return check_token(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Serve a fake Segments API.", allow_abbrev=False)
    add = parser.add_argument
    add("--host", type=_host, default="127.0.0.1", help="address to bind (127.0.0.1)")
    add("--port", type=_int_at_least(0, 65535), default=0, help="port; 0 picks a free one")
    add("--segments", type=_int_at_least(0), default=None, metavar="N", help="segments to create")
    add("--seed", type=_int_at_least(0), metavar="N", help="deprecated: use --segments")
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
        type=positive_float_arg,
        default=None,
        metavar="PER_SECOND",
        help="answer 429 beyond this many requests a second (a burst of one second's worth)",
    )
    return parser


def _segment_count(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """--segments, or the deprecated --seed (with a note on stderr)."""
    if args.seed is None:
        return int(args.segments or 0)
    if args.segments is not None:
        parser.error("--seed is the deprecated spelling of --segments: give only --segments")
    print(f"{PROG}: warning: --seed N is deprecated, use --segments N", file=sys.stderr)
    return int(args.seed)


def _reason(exc: OSError) -> str:
    # asyncio wraps bind errors in a long message; the errno's text says it all.
    if exc.errno is not None and exc.errno > 0:
        return os.strerror(exc.errno)
    return exc.strerror or str(exc)  # a resolver error (gaierror) has a negative errno


async def _serve(args: argparse.Namespace, segments: int) -> str | None:
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
        # Not on Windows: there Ctrl-C raises KeyboardInterrupt, caught in main().
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    try:
        server.add_segments(segments)
        if args.concurrency_limit is not None:
            server.limit_concurrency(args.concurrency_limit)
        if args.rate_limit is not None:
            server.limit_rate(args.rate_limit)
        print(f"SEGMENTS_BASE_URL={server.base_url}", flush=True)
        print(f"SEGMENTS_API_TOKEN={server.token}", flush=True)
        await stop.wait()
    finally:
        await server.close()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(signum)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and serve until interrupted; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    segments = _segment_count(parser, args)
    error = None
    with contextlib.suppress(KeyboardInterrupt):
        error = asyncio.run(_serve(args, segments))
    if error is not None:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
