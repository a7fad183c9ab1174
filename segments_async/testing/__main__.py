"""Run the fake Segments API standalone: ``python -m segments_async.testing --seed 1000``.

Prints ``SEGMENTS_BASE_URL=...`` and ``SEGMENTS_API_TOKEN=...`` (the client's environment
variables), one per line, then serves until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence

from ._server import FakeSegmentsServer


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m segments_async.testing", description="Serve a fake Segments API."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="segments to create")
    parser.add_argument("--random-seed", type=int, default=0, help="seed of the data RNG")
    parser.add_argument("--token", default=None, help="the tenant's token (default: random)")
    parser.add_argument("--max-per-page", type=int, default=100, help="per_page cap (100)")
    parser.add_argument(
        "--delete-body", action="store_true", help="send a JSON body with DELETE's 204"
    )
    return parser


async def _serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Not on Windows: there Ctrl-C raises KeyboardInterrupt, caught in main().
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    async with FakeSegmentsServer(
        host=args.host,
        port=args.port,
        token=args.token,
        seed=args.random_seed,
        max_per_page=args.max_per_page,
        delete_body=args.delete_body,
    ) as server:
        server.add_segments(args.seed)
        print(f"SEGMENTS_BASE_URL={server.base_url}", flush=True)
        print(f"SEGMENTS_API_TOKEN={server.token}", flush=True)
        await stop.wait()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.remove_signal_handler(signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and serve until interrupted; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.seed < 0:
        print("--seed must be >= 0", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
