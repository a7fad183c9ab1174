"""A scriptable HTTP/1.1 server on 127.0.0.1 that writes exactly the bytes a test asks for.

For what neither a mock nor a well-behaved server can show: a 204 followed by a body, a
body cut short, a connection dropped after the request was read, a redirect to another
origin, an answer that never comes.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import orjson


@attrs.frozen
class RawRequest:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


class ThenClose(bytes):
    """Bytes to write before dropping the connection (a body cut short, say)."""


#: What a handler returns: the bytes to write, ``None`` to drop the connection unanswered.
Handler = Callable[[RawRequest], Awaitable[bytes | None]]


def response(
    status: int,
    body: bytes = b"",
    *,
    reason: str = "OK",
    headers: dict[str, str] | None = None,
    content_length: int | None = None,
) -> bytes:
    """A response's bytes; ``content_length`` may lie about ``body``."""
    lines = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    lines.append(f"Content-Length: {len(body) if content_length is None else content_length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def json_response(status: int, payload: Any, **kwargs: Any) -> bytes:
    return response(status, orjson.dumps(payload), **kwargs)


class RawServer:
    """``async with RawServer(handler) as server``: ``server.url``, ``server.requests``;
    over TLS with ``tls`` (``https://`` then)."""

    def __init__(self, handler: Handler, *, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self._tls = tls
        self.requests: list[RawRequest] = []
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def open_connections(self) -> int:
        """Connections the server holds open now (a client that closed its end is gone)."""
        return len(self._writers)

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"{'https' if self._tls else 'http'}://127.0.0.1:{port}"

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._tls)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                method, target, _ = request_line.split(" ", 2)
                headers = {}
                for line in header_lines:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                request = RawRequest(method, target, headers, body)
                self.requests.append(request)
                answer = await self.handler(request)
                if answer is None:
                    writer.transport.abort()
                    return
                writer.write(answer)
                await writer.drain()
                if isinstance(answer, ThenClose):
                    writer.transport.abort()
                    return
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            self._writers.discard(writer)
            writer.transport.abort()
