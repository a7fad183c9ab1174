"""A near-free HTTP/1.1 keep-alive server for the benchmarks, in its own process.

It is written on a raw ``asyncio.Protocol`` and answers from precomputed bytes, so
the client under test is what the numbers measure. It serves the four Segments
operations over a synthetic data set of ``--total`` items:

- ``GET /v2.3/data/segments?page=N&per_page=M`` pages, built on first use and cached;
- ``POST /v2.3/data/segments`` -> 200 with one segment;
- ``PUT /v2.3/data/segments/{id}`` -> 200 with that segment;
- ``DELETE /v2.3/data/segments/{id}`` -> 204 without a body.

Requests may be pipelined; bodies are read by ``Content-Length``. The process binds
an OS-chosen loopback port, writes ``PORT <n>`` on stdout, and exits when its stdin
closes, so it never outlives the parent. Run with ``python -m benchmarks._server``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import select
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

PATH = b"/v2.3/data/segments"
ITEM_PATH_PREFIX = PATH + b"/"
DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100
# Header blocks beyond this are refused, so a confused client cannot grow the buffer forever.
MAX_HEAD = 64 * 1024

REPO_ROOT = Path(__file__).resolve().parent.parent


def segment_id(index: int) -> str:
    """A deterministic UUID4-shaped id for item ``index`` (0-based)."""
    return str(uuid.UUID(int=(0x7F2D6E6DA4AD4B58 << 64) | index, version=4))


def segment_name(index: int) -> str:
    return f"Segment {index:07d}"


def page_body(total: int, page: int, per_page: int) -> bytes:
    """The JSON body of one list page, exactly as the spec shapes it."""
    last_page = max(1, -(-total // per_page))
    start = (page - 1) * per_page
    stop = min(start + per_page, total)
    items = [{"id": segment_id(i), "name": segment_name(i)} for i in range(start, stop)]
    envelope = {
        "success": True,
        "result": {
            "currentPage": page,
            "perPage": per_page,
            "lastPage": last_page,
            "total": total,
            "items": items,
            "filters": [],
        },
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


def _response(status: bytes, body: bytes) -> bytes:
    head = b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    return head % (status, len(body)) + body


def _error(status: bytes, message: str) -> bytes:
    body = json.dumps({"success": False, "message": message}, separators=(",", ":"))
    return _response(status, body.encode())


_NO_CONTENT = b"HTTP/1.1 204 No Content\r\n\r\n"
_CREATED = _response(
    b"200 OK",
    json.dumps(
        {"success": True, "result": {"id": segment_id(0), "name": "Created"}},
        separators=(",", ":"),
    ).encode(),
)
# The PUT answer echoes the path's id; only that slice varies, so it is spliced in.
_UPDATED_PREFIX = b'{"success":true,"result":{"id":"'
_UPDATED_SUFFIX = b'","name":"Updated"}}'


class Routes:
    """Maps a request to its complete response bytes; every list page is built once."""

    __slots__ = ("_pages", "total")

    def __init__(self, total: int) -> None:
        self.total = total
        self._pages: dict[tuple[int, int], bytes] = {}

    def list_page(self, query: bytes) -> bytes:
        page, per_page = 1, DEFAULT_PER_PAGE
        for pair in query.split(b"&"):
            name, _, value = pair.partition(b"=")
            try:
                if name == b"page":
                    page = int(value)
                elif name == b"per_page":
                    per_page = int(value)
            except ValueError:
                return _error(b"400 Bad Request", f"{name.decode()} must be an integer")
        if page < 1 or per_page < 1:
            return _error(b"400 Bad Request", "page and per_page must be >= 1")
        per_page = min(per_page, MAX_PER_PAGE)  # real servers clamp; clients must cope
        key = (page, per_page)
        cached = self._pages.get(key)
        if cached is None:
            cached = self._pages[key] = _response(b"200 OK", page_body(self.total, page, per_page))
        return cached

    def respond(self, method: bytes, target: bytes) -> bytes:
        path, _, query = target.partition(b"?")
        if path == PATH:
            if method == b"GET":
                return self.list_page(query)
            if method == b"POST":
                return _CREATED
            return _error(b"405 Method Not Allowed", "method not allowed")
        if path.startswith(ITEM_PATH_PREFIX):
            segment = path[len(ITEM_PATH_PREFIX) :]
            if not segment or b"/" in segment:
                return _error(b"404 Not Found", "not found")
            if method == b"PUT":
                return _response(b"200 OK", _UPDATED_PREFIX + segment + _UPDATED_SUFFIX)
            if method == b"DELETE":
                return _NO_CONTENT
            return _error(b"405 Method Not Allowed", "method not allowed")
        return _error(b"404 Not Found", "not found")


class HttpProtocol(asyncio.Protocol):
    """One keep-alive connection: parses (possibly pipelined) requests, answers in order."""

    __slots__ = ("_buffer", "_routes", "_transport")

    def __init__(self, routes: Routes) -> None:
        self._routes = routes
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        if transport is None:
            return
        buffer = self._buffer
        buffer += data
        out: list[bytes] = []
        close = False
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    out.append(_error(b"431 Request Header Fields Too Large", "head too large"))
                    close = True
                break
            parsed = self._parse_head(bytes(buffer[:end]))
            if isinstance(parsed, bytes):  # a malformed request: answer and hang up
                out.append(parsed)
                close = True
                break
            method, target, content_length, close = parsed
            request_end = end + 4 + content_length
            if len(buffer) < request_end:
                break  # wait for the rest of the body
            del buffer[:request_end]  # the body itself is not needed to answer
            out.append(self._routes.respond(method, target))
            if close:
                break
        if out:
            transport.write(b"".join(out))
        if close:
            buffer.clear()
            transport.close()

    @staticmethod
    def _parse_head(head: bytes) -> tuple[bytes, bytes, int, bool] | bytes:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            return _error(b"400 Bad Request", "malformed request line")
        method, target, version = parts
        content_length = 0
        close = version == b"HTTP/1.0"
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                try:
                    content_length = int(value)
                except ValueError:
                    return _error(b"400 Bad Request", "bad Content-Length")
                if content_length < 0:
                    return _error(b"400 Bad Request", "bad Content-Length")
            elif name == b"connection":
                token = value.strip().lower()
                if token == b"close":
                    close = True
                elif token == b"keep-alive":
                    close = False
            elif name == b"transfer-encoding":
                # Every contender sends sized bodies; refuse loudly rather than misparse.
                return _error(b"501 Not Implemented", "chunked request bodies are not supported")
        return method, target, content_length, close


async def _serve(total: int) -> None:
    loop = asyncio.get_running_loop()
    routes = Routes(total)
    server = await loop.create_server(
        lambda: HttpProtocol(routes), "127.0.0.1", 0, backlog=1024, reuse_address=True
    )
    port = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"PORT {port}\n")
    sys.stdout.flush()

    # The parent holds our stdin open; EOF means it is gone or done with us.
    stdin_closed = loop.create_future()

    class _StdinWatcher(asyncio.Protocol):
        def connection_lost(self, exc: Exception | None) -> None:
            if not stdin_closed.done():
                stdin_closed.set_result(None)

    await loop.connect_read_pipe(_StdinWatcher, sys.stdin)
    async with server:
        await stdin_closed


def pin_to_cpu(cpu: int | None) -> None:
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._server")
    parser.add_argument("--total", type=int, required=True, help="items in the data set")
    parser.add_argument("--cpu", type=int, default=None, help="CPU to pin this process to")
    args = parser.parse_args(argv)
    pin_to_cpu(args.cpu)
    asyncio.run(_serve(args.total))


@contextlib.contextmanager
def serve(total: int, cpu: int | None = None) -> Iterator[str]:
    """Run a server over ``total`` items in a child process; yields its base URL."""
    argv = [sys.executable, "-m", "benchmarks._server", "--total", str(total)]
    with child_server(argv, "benchmark server", cpu) as (_proc, base_url):
        yield base_url


@contextlib.contextmanager
def child_server(
    argv: list[str], what: str, cpu: int | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Run ``argv`` (a server that writes ``PORT <n>`` and exits when its stdin closes) as
    a child process, pinned to ``cpu`` if given; yields it and its base URL."""
    if cpu is not None:
        argv = [*argv, "--cpu", str(cpu)]
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        bufsize=0,
        cwd=REPO_ROOT,
        env=child_env(),
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        line = read_line(proc, timeout=60.0)  # some build their pages first
        if not line.startswith("PORT "):
            raise RuntimeError(f"{what} failed to start (said {line!r})")
        yield proc, f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def read_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    """One line from the child's unbuffered stdout, or RuntimeError after ``timeout``."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    line = bytearray()
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise RuntimeError(f"the server did not answer within {timeout}s")
        chunk = os.read(fd, 1)  # byte by byte: nothing past the line is taken from the pipe
        if not chunk:
            raise RuntimeError(f"the server exited (said {bytes(line)!r})")
        line += chunk
    return line.decode()


def child_env(extra_paths: list[str] | None = None) -> dict[str, str]:
    """The environment for child processes: the repo (and any extras) importable."""
    env = dict(os.environ)
    paths = [str(REPO_ROOT), *(extra_paths or [])]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


if __name__ == "__main__":
    main()
