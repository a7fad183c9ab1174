"""Retry warnings do not reach the stderr of an app that never configured logging.

Run in a fresh interpreter, since the test runner configures logging itself: a GET that
is retried after a 503 logs a WARNING, which only the library's NullHandler keeps from
logging's last-resort handler (and so from stderr).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import asyncio, logging, sys
    from segments_async import RetryPolicy, SegmentsClient

    HEAD = "HTTP/1.1 {status}\\r\\nContent-Length: {n}\\r\\n\\r\\n"
    PAGE = b'{"success":true,"result":{"currentPage":1,"perPage":20,"lastPage":1,"total":0,' \\
           b'"items":[],"filters":[]}}'
    answers = [(503, b'{"success":false}'), (200, PAGE)]

    async def serve(reader, writer):
        while answers:
            await reader.readuntil(b"\\r\\n\\r\\n")
            status, body = answers.pop(0)
            writer.write(HEAD.format(status=status, n=len(body)).encode() + body)
            await writer.drain()
        writer.close()

    async def main():
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        retry = RetryPolicy(backoff_initial=0.001, backoff_max=0.002)
        async with SegmentsClient(f"http://127.0.0.1:{port}", "tok", retry=retry) as client:
            page = await client.segments.list()
        server.close()
        seen = logging.getLogger("segments_async").handlers
        print(page.total, [type(h).__name__ for h in seen])

    asyncio.run(main())
    """
)


def test_retry_warnings_stay_off_stderr_without_logging_configured():
    """The retry happens (two answers read), and stderr stays empty."""
    done = subprocess.run(  # noqa: S603 - our own interpreter, our own script
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=False
    )
    assert 0 == done.returncode, done.stderr
    assert "0 ['NullHandler']" == done.stdout.strip()
    assert "" == done.stderr
