"""Ordinary servers for section e, each in its own process: no hidden capacity, no 429.

Where ``_capacity_server.py`` has a capacity the client must find, these are servers as
they come, on which ``concurrency="auto"`` must be about as good as a good fixed guess:

- ``app``: a plain ``aiohttp.web`` application doing its work in Python, no sleeps: each
  list page is built from its items and serialized with ``json`` per request, each
  create parses its body and makes a UUID. One event loop serves many requests per
  wakeup, so answers per second grow with load up to a knee while latency grows all
  along;
- ``app-3ms``: the same, plus 3 ms awaited per request (a database call);
- ``uniform``: no capacity limit, each answer after a latency drawn uniformly from
  10-50 ms;
- ``lognormal``: no capacity limit, latency lognormal with a median of 20 ms and
  sigma 0.5 (a tail of slow answers).

Routes: ``GET /v2.3/data/segments`` pages of ``--total`` items, ``POST`` -> 200 with the
name sent under a fresh UUID. The process writes ``PORT <n>`` on stdout and exits when
stdin closes. Run with ``python -m benchmarks._app_server --kind KIND``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import sys
import uuid
from collections.abc import Iterator

from aiohttp import web

from ._server import MAX_PER_PAGE, child_server, page_body, pin_to_cpu

KINDS = ("app", "app-3ms", "uniform", "lognormal")
#: What each kind waits per request besides its work: (how, its two parameters).
_LATENCY = {
    "app": None,
    "app-3ms": ("fixed", 0.003, 0.0),
    "uniform": ("uniform", 0.010, 0.050),
    "lognormal": ("lognormal", 0.020, 0.5),
}


def make_app(kind: str, total: int, seed: int = 0) -> web.Application:
    latency = _LATENCY[kind]
    rng = random.Random(seed)

    async def wait() -> None:
        if latency is None:
            return
        how, a, b = latency
        if how == "fixed":
            delay = a
        elif how == "uniform":
            delay = rng.uniform(a, b)
        else:
            delay = a * math.exp(b * rng.gauss(0.0, 1.0))
        await asyncio.sleep(delay)

    async def list_segments(request: web.Request) -> web.Response:
        await wait()
        page = int(request.query.get("page", "1"))
        per_page = min(MAX_PER_PAGE, int(request.query.get("per_page", "20")))
        return web.Response(body=page_body(total, page, per_page), content_type="application/json")

    async def create(request: web.Request) -> web.Response:
        body = await request.json()
        await wait()
        result = {"success": True, "result": {"id": str(uuid.uuid4()), "name": body["name"]}}
        return web.Response(text=json.dumps(result), content_type="application/json")

    app = web.Application()
    app.router.add_get("/v2.3/data/segments", list_segments)
    app.router.add_post("/v2.3/data/segments", create)
    return app


async def _serve(args: argparse.Namespace) -> None:
    runner = web.AppRunner(make_app(args.kind, args.total), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    port = runner.addresses[0][1]
    sys.stdout.write(f"PORT {port}\n")
    sys.stdout.flush()
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    class _Stdin(asyncio.Protocol):
        def connection_lost(self, exc: Exception | None) -> None:
            if not done.done():
                done.set_result(None)

    await loop.connect_read_pipe(_Stdin, sys.stdin)
    try:
        await done
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._app_server")
    parser.add_argument("--kind", choices=KINDS, required=True)
    parser.add_argument("--total", type=int, required=True, help="items in the data set")
    parser.add_argument("--cpu", type=int, default=None, help="CPU to pin this process to")
    args = parser.parse_args(argv)
    pin_to_cpu(args.cpu)
    asyncio.run(_serve(args))


@contextlib.contextmanager
def serve_app(kind: str, *, total: int, cpu: int | None = None) -> Iterator[str]:
    """Run a ``kind`` server in a child process; yields its base URL."""
    argv = [sys.executable, "-m", "benchmarks._app_server", "--kind", kind, "--total", str(total)]
    with child_server(argv, f"{kind} server", cpu) as (_proc, base_url):
        yield base_url


if __name__ == "__main__":
    main()
