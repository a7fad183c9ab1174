"""A loopback server with a hidden capacity, in its own process, for section e.

Same wire as ``_server.py`` (raw ``asyncio.Protocol``, precomputed list pages), but each
request passes an ``Admission`` (``_admission.py``) and, once admitted, is answered
``--service`` seconds later by a timer (no CPU is burnt, so the client stays what is
measured). Modes: ``queue`` (at most ``--capacity`` in service, the rest wait in FIFO
order), ``reject`` (the rest get 429 at once) and ``quota`` (a token bucket of ``--rate``
requests a second with a burst of ``--burst``; the rest get 429 at once). A 429 carries
``Retry-After: 1`` and the API's error envelope.

Routes: ``GET /v2.3/data/segments`` pages (every page of ``--prebuild-per-page`` built
at start), ``POST`` -> 200 with the name sent and a fresh UUID, ``PUT`` -> 200, ``DELETE``
-> 204. A connection's requests are served one after another (aiohttp never pipelines,
so this only keeps a pipelining client's answers in order).

Control is on the pipes, so it never counts as traffic: the process writes ``PORT <n>``
on stdout, then answers each stdin line ``STATS`` or ``RESET`` with one JSON line, and
exits when stdin closes. Run with ``python -m benchmarks._capacity_server``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import uuid
from collections import deque
from collections.abc import Iterator
from typing import Any

import orjson

from ._admission import MODES, Admission, Decision
from ._server import (
    MAX_HEAD,
    PATH,
    HttpProtocol,
    Routes,
    _error,
    _response,
    child_server,
    pin_to_cpu,
    read_line,
)

_TOO_MANY_BODY = orjson.dumps(
    {
        "success": False,
        "error": {"code": "too_many_requests", "message": "Too many requests, slow down"},
    }
)
TOO_MANY = (
    b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
    b"Retry-After: 1\r\nContent-Length: %d\r\n\r\n" % len(_TOO_MANY_BODY)
) + _TOO_MANY_BODY

# Longer than any service time here: a server still busy after it has lost count.
IDLE_TIMEOUT = 10.0

Request = tuple[bytes, bytes, bytes, bool]  # method, target, body, close after answering


def created(body: bytes) -> bytes:
    """The answer to a create: the name sent, under a fresh UUID."""
    try:
        name = orjson.loads(body)["name"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        name = None
    if not isinstance(name, str):
        return _error(b"422 Unprocessable Entity", "name must be a string")
    result = {"success": True, "result": {"id": str(uuid.uuid4()), "name": name}}
    return _response(b"200 OK", orjson.dumps(result))


class App:
    """What every connection shares: routes, admission, the service time."""

    __slots__ = ("admission", "loop", "routes", "service")

    def __init__(self, routes: Routes, admission: Admission[CapacityProtocol], service: float):
        self.routes = routes
        self.admission = admission
        self.service = service
        self.loop = asyncio.get_running_loop()

    def answer(self, request: Request) -> bytes:
        method, target, body, _close = request
        if method == b"POST" and target.partition(b"?")[0] == PATH:
            return created(body)
        return self.routes.respond(method, target)


class CapacityProtocol(asyncio.Protocol):
    """One connection: its requests go through admission one at a time, in order."""

    __slots__ = ("_app", "_buffer", "_current", "_pending", "_queued", "_transport")

    def __init__(self, app: App) -> None:
        self._app = app
        self._buffer = bytearray()
        self._pending: deque[Request] = deque()
        self._current: Request | None = None  # admitted or queued, not yet answered
        self._queued = False
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._pending.clear()
        if self._queued and self._app.admission.abandon(self):
            self._queued = False
            self._current = None
        # A request in service keeps its slot until its timer ends, as on a real server.

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._parse():
            self._advance()

    def _parse(self) -> bool:
        """Move every complete request from the buffer to ``_pending``; False on a bad one."""
        buffer = self._buffer
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    return self._refuse(_error(b"431 Request Header Fields Too Large", "too large"))
                return True
            parsed = HttpProtocol._parse_head(bytes(buffer[:end]))
            if isinstance(parsed, bytes):
                return self._refuse(parsed)
            method, target, content_length, close = parsed
            request_end = end + 4 + content_length
            if len(buffer) < request_end:
                return True
            body = bytes(buffer[end + 4 : request_end])
            del buffer[:request_end]
            self._pending.append((method, target, body, close))

    def _refuse(self, answer: bytes) -> bool:
        if self._transport is not None:
            self._transport.write(answer)
            self._transport.close()
            self._transport = None
        self._buffer.clear()
        self._pending.clear()
        return False

    def _advance(self) -> None:
        """Admit the next request unless one is already admitted or queued."""
        admission = self._app.admission
        while self._current is None and self._pending and self._transport is not None:
            request = self._current = self._pending.popleft()
            decision = admission.arrive(self, self._app.loop.time())
            if decision is Decision.START:
                self.start()
            elif decision is Decision.QUEUE:
                self._queued = True
            else:
                self._current = None
                self._write(TOO_MANY, request[3])

    def start(self) -> None:
        """Begin the service time of the current request (now, or when a slot frees)."""
        self._queued = False
        self._app.loop.call_later(self._app.service, self._served)

    def _served(self) -> None:
        # The slot is freed before the answer is written, so a client that sends its next
        # request on receipt never finds the slot still taken.
        following = self._app.admission.finish()
        if following is not None:
            following.start()
        request, self._current = self._current, None
        if request is None or self._transport is None:
            return
        self._write(self._app.answer(request), request[3])
        self._advance()

    def _write(self, answer: bytes, close: bool) -> None:
        if self._transport is None:
            return
        self._transport.write(answer)
        if close:
            self._transport.close()
            self._transport = None
            self._pending.clear()


class _Control(asyncio.Protocol):
    """Reads ``STATS`` / ``RESET`` lines from stdin; EOF ends the server."""

    def __init__(self, app: App, done: asyncio.Future[None]) -> None:
        self._app = app
        self._done = done
        self._buffer = b""

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            command = line.strip()
            admission = self._app.admission
            if command == b"RESET":
                admission.reset(self._app.loop.time())
            elif command != b"STATS":
                sys.stdout.write(json.dumps({"error": f"unknown command {command!r}"}) + "\n")
                sys.stdout.flush()
                continue
            sys.stdout.write(json.dumps(admission.stats()) + "\n")
            sys.stdout.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._done.done():
            self._done.set_result(None)


async def _serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    routes = Routes(args.total)
    if args.prebuild_per_page:
        last_page = max(1, -(-args.total // args.prebuild_per_page))
        for page in range(1, last_page + 1):
            routes.list_page(b"page=%d&per_page=%d" % (page, args.prebuild_per_page))
    admission: Admission[CapacityProtocol] = Admission(
        args.mode, capacity=args.capacity, rate=args.rate, burst=args.burst, now=loop.time()
    )
    app = App(routes, admission, args.service)
    server = await loop.create_server(
        lambda: CapacityProtocol(app), "127.0.0.1", 0, backlog=1024, reuse_address=True
    )
    sys.stdout.write(f"PORT {server.sockets[0].getsockname()[1]}\n")
    sys.stdout.flush()
    done: asyncio.Future[None] = loop.create_future()
    await loop.connect_read_pipe(lambda: _Control(app, done), sys.stdin)
    async with server:
        await done


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._capacity_server")
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--total", type=int, required=True, help="items in the data set")
    parser.add_argument("--capacity", type=int, default=16, help="queue/reject: C")
    parser.add_argument("--service", type=float, default=0.010, help="seconds per request")
    parser.add_argument("--rate", type=float, default=200.0, help="quota: requests/second")
    parser.add_argument("--burst", type=float, default=None, help="quota: bucket size (rate/10)")
    parser.add_argument("--prebuild-per-page", type=int, default=100, help="0: build lazily")
    parser.add_argument("--cpu", type=int, default=None, help="CPU to pin this process to")
    args = parser.parse_args(argv)
    if args.burst is None:
        args.burst = max(1.0, args.rate / 10)
    pin_to_cpu(args.cpu)
    asyncio.run(_serve(args))


class CapacityServer:
    """The parent's handle: the base URL, and the counters over the control pipe."""

    def __init__(self, proc: subprocess.Popen[bytes], base_url: str) -> None:
        self._proc = proc
        self.base_url = base_url

    def _ask(self, command: bytes, timeout: float = 10.0) -> dict[str, Any]:
        assert self._proc.stdin is not None
        self._proc.stdin.write(command + b"\n")
        answer: dict[str, Any] = json.loads(read_line(self._proc, timeout))
        return answer

    def stats(self) -> dict[str, Any]:
        return self._ask(b"STATS")

    def reset(self) -> dict[str, Any]:
        return self._ask(b"RESET")

    async def wait_idle(self) -> dict[str, Any]:
        """Stats once nothing is in service or queued (requests of a cancelled run end).

        It sleeps on the caller's loop between polls, so that the closing client's
        sockets really close and the server sees its queued requests abandoned.
        """
        stats = self.stats()
        try:
            async with asyncio.timeout(IDLE_TIMEOUT):
                while stats["in_service"] or stats["queued"]:
                    await asyncio.sleep(0.01)
                    stats = self.stats()
        except TimeoutError:
            raise RuntimeError(
                f"capacity server still busy after {IDLE_TIMEOUT}s: {stats}"
            ) from None
        return stats


@contextlib.contextmanager
def serve_capacity(
    mode: str,
    *,
    total: int,
    capacity: int = 16,
    service: float = 0.010,
    rate: float = 200.0,
    burst: float | None = None,
    cpu: int | None = None,
) -> Iterator[CapacityServer]:
    """Run a hidden-capacity server in a child process; yields its handle."""
    argv = [sys.executable, "-m", "benchmarks._capacity_server", "--mode", mode]
    argv += ["--total", str(total), "--capacity", str(capacity), "--service", str(service)]
    argv += ["--rate", str(rate)]
    if burst is not None:
        argv += ["--burst", str(burst)]
    with child_server(argv, "capacity server", cpu) as (proc, base_url):
        yield CapacityServer(proc, base_url)


if __name__ == "__main__":
    main()
