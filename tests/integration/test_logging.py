"""What the library logs in an app: nothing on stderr unless configured, one WARNING where
one is due (not one per delete), and the README's JSON-logging recipe as written.

The first test runs in a fresh interpreter, since the test runner configures logging
itself: a GET that is retried after a 503 logs a WARNING, which only the library's
NullHandler keeps from logging's last-resort handler (and so from stderr).
"""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

from segments_async import APIConnectionError
from segments_async.testing import FakeSegmentsServer, Fault

from .support import client_for, run_recipe

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


# --------------------------------------------------------------------------- in a running app


@pytest.fixture
def library_log() -> Iterator[logging.Logger]:
    """The library's logger; its level and handlers are restored after the test."""
    logger = logging.getLogger("segments_async")
    level, handlers = logger.level, list(logger.handlers)
    try:
        yield logger
    finally:
        logger.setLevel(level)
        for handler in logger.handlers:
            if handler not in handlers:
                logger.removeHandler(handler)


async def test_deletes_the_server_answers_with_a_body_warn_once(caplog):
    """delete_many against the spec's 204 with a body: two requests per id, as before, but
    one WARNING for the client instead of one per delete; each retry is a DEBUG line."""
    caplog.set_level(logging.DEBUG, logger="segments_async")
    async with FakeSegmentsServer(seed=13, delete_body=True) as server:
        ids = list(server.add_segments(500))
        async with client_for(server) as client:
            results = [r async for r in client.segments.delete_many(ids)]

        assert [True] * 500 == [r.ok for r in results]
        assert {} == server.segments()
        assert 1000 == server.counts.total

    records = [r for r in caplog.records if r.name == "segments_async"]
    warnings = [r for r in records if r.levelno == logging.WARNING]
    assert 1 == len(warnings), [r.getMessage() for r in warnings]
    assert "every DELETE costs a second request" in warnings[0].getMessage()
    retries = [r for r in records if r.getMessage().startswith("retrying DELETE")]
    assert 500 == len(retries)
    assert {logging.DEBUG} == {r.levelno for r in retries}


async def test_the_json_logging_recipe(monkeypatch, library_log):
    """The README's JSON formatter: one object per record, with the template and fields."""
    stream = io.StringIO()
    async with FakeSegmentsServer(seed=14) as server:
        recipe = run_recipe("json-logging", monkeypatch, server.base_url, server.token)
        recipe.handler.setStream(stream)
        server.inject(Fault.status(503, retry_after=0), method="GET")
        server.inject(Fault.reset_after(), method="POST")
        async with client_for(server) as client:
            await client.segments.list()
            with pytest.raises(APIConnectionError):
                await client.segments.create("EMEA")
            await client.segments.list()  # at WARNING, a call that succeeds logs nothing

    retry, lost = [json.loads(line) for line in stream.getvalue().splitlines()]
    path = "/v2.3/data/segments?page=1&per_page=20"
    assert {
        "level": "WARNING",
        "logger": "segments_async",
        "message": f"retrying GET {path} after HTTP 503 in 0.000s (retry 1 of 2)",
        "template": "retrying %s %s after %s in %.3fs (retry %d of %d)",
        "segments_method": "GET",
        "segments_path": path,
        "segments_attempt": 1,
        "segments_status": 503,
        "segments_failure": None,
        "segments_reason": "HTTP 503",
        "segments_delay": 0.0,
    }.items() <= retry.items()
    assert {"time", "segments_elapsed_ms"} <= retry.keys()
    assert {
        "level": "WARNING",
        "segments_method": "POST",
        "segments_path": "/v2.3/data/segments",
        "segments_status": None,
        "segments_failure": "connection lost",
        "segments_outcome_unknown": True,
        "segments_error": "APIConnectionError",
    }.items() <= lost.items()
    assert lost["message"].startswith("POST /v2.3/data/segments failed, but the server may")
    assert 1 == len(server.segments())  # the create it warned about did happen
