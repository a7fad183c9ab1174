"""What a client leaves behind: garbage-collected unclosed, and used from one loop after
another (the script and notebook patterns of the README, run as written).

Garbage-collected with its pool open, a client closes its sockets and emits one
``ResourceWarning`` naming itself, and aiohttp none. A client whose loop has ended (an
``asyncio.run()`` returned) had its pool closed on that loop, and opens another in the
next. Tests of the latter are plain functions that call ``asyncio.run()`` themselves,
against a server that runs on a loop of its own thread.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import gc
import os
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from segments_async import SegmentsClient
from segments_async.testing import FakeSegmentsServer

from ..conftest import page_payload
from ..rawserver import RawRequest, RawServer, json_response
from .support import make_client, recipe, run_recipe


async def empty_page(request: RawRequest) -> bytes:
    return json_response(200, page_payload(1, 20, 0))


class Recorded:
    """The warnings of a block, every one of them (none is turned into an error)."""

    def __init__(self, caught: list[warnings.WarningMessage]) -> None:
        self.caught = caught

    @property
    def ours(self) -> list[warnings.WarningMessage]:
        return [w for w in self.caught if "SegmentsClient" in str(w.message)]

    @property
    def others(self) -> list[str]:
        return [str(w.message) for w in self.caught if "SegmentsClient" not in str(w.message)]


@contextlib.contextmanager
def recorded_warnings() -> Iterator[Recorded]:
    """Every warning of the block, none turned into an error; garbage collected at its end."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield Recorded(caught)
        finally:
            gc.collect()


async def until(condition: Callable[[], bool]) -> None:
    """Let the loop run until ``condition`` holds (bounded: at most about 5 s)."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")


# --------------------------------------------------------------------------- garbage-collected


async def test_a_client_dropped_with_its_pool_open_warns_once_naming_itself():
    """One ResourceWarning naming SegmentsClient; none from aiohttp; the sockets closed."""
    async with RawServer(empty_page) as server:
        url = server.url
        client = make_client(url)
        await client.segments.list()
        session = client._shared.transport.session
        assert session is not None
        assert 1 == server.open_connections
        with recorded_warnings() as seen:
            del client
            gc.collect()
        await until(lambda: server.open_connections == 0)

    (warning,) = seen.ours
    assert ResourceWarning is warning.category
    assert str(warning.message).startswith(
        f"unclosed <SegmentsClient base_url='{url}' token='***'>"
    )
    assert "aclose()" in str(warning.message)
    assert [] == seen.others
    assert session.closed


async def test_a_view_keeps_its_client_and_never_warns():
    """Dropping the client while a view is used closes nothing; the view's end does."""
    async with RawServer(empty_page) as server:
        client = make_client(server.url)
        await client.segments.list()
        view = client.with_options(timeout=5)
        with recorded_warnings() as while_viewed:
            del client
            gc.collect()
            await view.segments.list()
        assert [] == while_viewed.caught
        inner = view.with_options(timeout=6)
        with recorded_warnings() as dropped:
            del view
            gc.collect()
            await inner.segments.list()  # a view of a view keeps the client too
            del inner
            gc.collect()

    assert 1 == len(dropped.ours)
    assert [] == dropped.others
    assert 1 == server.connections


async def test_a_closed_client_a_view_and_an_unused_one_never_warn():
    """Closed, a view dropped on its own, or never used: nothing to close, nothing said."""
    async with RawServer(empty_page) as server:
        closed = make_client(server.url)
        async with closed:
            await closed.segments.list()
        used = make_client(server.url)
        await used.segments.list()
        with recorded_warnings() as seen:
            view = used.with_options(timeout=5)
            await view.segments.list()
            del view, closed
            unused = make_client(server.url)
            del unused
            gc.collect()
        await used.aclose()

    assert [] == seen.caught


async def test_a_borrowed_session_is_neither_closed_nor_warned_about():
    """The app's session stays open and usable; the client says nothing."""
    async with RawServer(empty_page) as server, aiohttp.ClientSession() as session:
        client = make_client(server.url, session=session)
        await client.segments.list()
        with recorded_warnings() as seen:
            del client
            gc.collect()
        assert not session.closed
        async with session.get(server.url) as response:
            assert 200 == response.status

    assert [] == seen.caught


async def test_a_client_per_request_is_one_warning_each_and_none_from_aiohttp():
    """The FastAPI ``Depends(lambda: SegmentsClient())`` mistake, in an aiohttp app: 40
    requests, 40 clients never closed, 40 warnings naming SegmentsClient, no socket left."""
    async with FakeSegmentsServer(seed=21) as api:
        api.add_segments(3)

        async def count(request: web.Request) -> web.Response:
            client = SegmentsClient(api.base_url, api.token)  # never closed
            page = await client.segments.list()
            return web.json_response({"total": page.total})

        app = web.Application()
        app.router.add_get("/count", count)
        with recorded_warnings() as seen:
            async with TestServer(app) as web_server, aiohttp.ClientSession() as browser:
                for _ in range(40):
                    async with browser.get(web_server.make_url("/count")) as response:
                        assert {"total": 3} == await response.json()
                gc.collect()

    assert 40 == len(seen.ours)
    assert {ResourceWarning} == {w.category for w in seen.ours}
    assert [] == seen.others


def test_the_warning_says_where_the_client_was_made_under_tracemalloc(tmp_path):
    """``python -X tracemalloc``: the warning shows the line that created the client."""
    script = tmp_path / "forgetful.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio, gc, os
            from segments_async import SegmentsClient

            PAGE = b'{"success":true,"result":{"currentPage":1,"perPage":20,"lastPage":1,' \\
                   b'"total":0,"items":[],"filters":[]}}'

            ended = asyncio.Event()

            async def serve(reader, writer):
                try:
                    while await reader.readuntil(b"\\r\\n\\r\\n"):
                        writer.write(b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\n"
                                     b"Content-Length: %d\\r\\n\\r\\n" % len(PAGE) + PAGE)
                except asyncio.IncompleteReadError:
                    ended.set()  # the client closed its end
                finally:
                    writer.close()

            async def main():
                server = await asyncio.start_server(serve, "127.0.0.1", 0)
                port = server.sockets[0].getsockname()[1]
                client = SegmentsClient(f"http://127.0.0.1:{port}", os.environ["TOKEN"])
                await client.segments.list()
                del client
                gc.collect()
                await asyncio.wait_for(ended.wait(), 30)
                server.close()
                await server.wait_closed()

            asyncio.run(main())
            """
        )
    )
    made_at = next(
        number
        for number, line in enumerate(script.read_text().splitlines(), start=1)
        if "client = SegmentsClient(" in line
    )
    done = subprocess.run(  # noqa: S603 - our own interpreter, our own script
        [sys.executable, "-X", "tracemalloc", "-W", "default", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "TOKEN": "tok-forgotten"},
    )

    assert 0 == done.returncode, done.stderr
    assert 1 == done.stderr.count("ResourceWarning"), done.stderr
    assert "ResourceWarning: unclosed <SegmentsClient base_url='http://127.0.0.1:" in done.stderr
    assert "Object allocated at (most recent call last):" in done.stderr
    assert f'File "{script}", lineno {made_at}' in done.stderr
    assert "nclosed client session" not in done.stderr
    assert "tok-forgotten" not in done.stderr


# --------------------------------------------------------------------------- one loop after another


class _AsyncServer(Protocol):
    async def __aenter__(self) -> Any: ...
    async def __aexit__(self, *exc: object) -> Any: ...


class InAThread:
    """A test server on an event loop of its own thread, so that the test can run
    ``asyncio.run()`` as a script does."""

    def __init__(self, server: _AsyncServer) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> InAThread:
        self.thread.start()
        self.call(self.server.__aenter__())
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.call(self.server.__aexit__(None, None, None))
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join()
            self.loop.close()

    def call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)


def wait_for(condition: Callable[[], bool]) -> None:
    """Wait (bounded: about 5 s) for the server's thread to see what the client did."""
    for _ in range(500):
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError("the condition never held")


@pytest.fixture
def raw_server() -> Iterator[RawServer]:
    server = RawServer(empty_page)
    with InAThread(server):
        yield server


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSegmentsServer]:
    """The fake API in a thread, and the environment that points a client at it."""
    server = FakeSegmentsServer(seed=22)
    with InAThread(server):
        server.add_segments(4)
        monkeypatch.setenv("SEGMENTS_BASE_URL", server.base_url)
        monkeypatch.setenv("SEGMENTS_API_TOKEN", server.token)
        yield server


def test_asyncio_run_per_call_reuses_the_client(raw_server):
    """Each asyncio.run() gets a pool of its own, closed as its loop ends; aclose() after
    the last one works; nothing warns."""
    client = make_client(raw_server.url)
    with recorded_warnings() as seen:
        for run in range(1, 4):
            assert 0 == asyncio.run(client.segments.list()).total
            wait_for(lambda: raw_server.open_connections == 0)  # closed with its loop
            assert run == raw_server.connections
        asyncio.run(client.aclose())
        assert client.closed
        del client

    assert [] == seen.caught
    assert 3 == len(raw_server.requests)


def test_aclose_in_the_next_loop_after_a_loop_closed_by_hand(raw_server):
    """A loop closed without asyncio.run keeps its pool: the next loop drops it and goes on,
    and aclose() from yet another loop works; neither the client nor aiohttp warns."""
    client = make_client(raw_server.url)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(client.segments.list())
    loop.close()
    with recorded_warnings() as seen:
        assert 0 == asyncio.run(client.segments.list()).total
        asyncio.run(client.aclose())
        assert client.closed

    assert [] == seen.ours
    # Only asyncio's own word on the transport its closed loop left behind, if anything.
    assert [] == [m for m in seen.others if "unclosed transport" not in m and "socket" not in m]
    assert 2 == raw_server.connections


def test_rate_limit_and_auto_work_in_the_next_loop(api):
    """What flow control binds to a loop (aiolimiter, waiters) does not outlive it."""
    client = SegmentsClient(api.base_url, api.token, rate_limit=1000)
    with recorded_warnings() as seen:
        for _ in range(3):
            names = asyncio.run(_names(client))
            assert 4 == len(names)
        asyncio.run(client.aclose())

    assert [] == seen.caught


async def _names(client: SegmentsClient) -> list[str]:
    return [s.name async for s in client.segments.iterate(per_page=1, concurrency="auto")]


def test_two_running_loops_at_once_is_a_clear_error(raw_server):
    """A loop in another thread still runs: its pool is not dropped; the error says why."""
    client = make_client(raw_server.url)
    with InAThread(RawServer(empty_page)) as other:
        other.call(client.segments.list())  # the pool belongs to that running loop
        with pytest.raises(RuntimeError, match="another event loop") as info:
            asyncio.run(client.segments.list())
        assert "has not ended" in str(info.value)
        with pytest.raises(RuntimeError, match="another event loop"):
            asyncio.run(client.aclose())
        other.call(client.aclose())
    assert 1 == len(raw_server.requests)


def test_a_borrowed_session_whose_loop_ended_is_a_clear_error(raw_server):
    """A lent session cannot be replaced by the client: it says which session is dead."""

    async def make() -> aiohttp.ClientSession:
        return aiohttp.ClientSession()

    session = asyncio.run(make())
    client = make_client(raw_server.url, session=session)
    with pytest.raises(RuntimeError, match="lent to this SegmentsClient belongs to an event"):
        asyncio.run(client.segments.list())
    asyncio.run(client.aclose())  # never closes what it borrowed, and does not fail
    assert not session.closed
    assert [] == raw_server.requests
    asyncio.run(session.close())


# --------------------------------------------------------------------------- the README


def test_the_script_recipes_run_as_written(api, monkeypatch, capsys):
    """One asyncio.run(main()), then asyncio.run() per call with one client."""
    with recorded_warnings() as seen:
        run_recipe("script-main", monkeypatch, api.base_url, api.token)
        assert "created EMEA; 5 segments in all\n" == capsys.readouterr().out
        per_call = run_recipe("script-per-call", monkeypatch, api.base_url, api.token)
        assert "EMEA" == per_call.segment.name
        assert 6 == per_call.page.total
        assert per_call.client.closed
        del per_call

    assert [] == seen.caught
    assert 2 == list(api.segments().values()).count("EMEA")


async def test_the_notebook_recipe_runs_as_a_notebook_would(monkeypatch):
    """The cell's top-level awaits, compiled as IPython compiles them, in a running loop."""
    async with FakeSegmentsServer(seed=23) as api:
        api.add_segments(2)
        monkeypatch.setenv("SEGMENTS_BASE_URL", api.base_url)
        monkeypatch.setenv("SEGMENTS_API_TOKEN", api.token)
        cell = compile(
            recipe("notebook"), "README.md <notebook>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        )
        namespace: dict[str, Any] = {}
        result = eval(cell, namespace)  # noqa: S307 - the README's own code
        await result

    assert 2 == namespace["page"].total
    assert namespace["client"].closed


def test_a_fleet_client_shares_its_quota_in_one_loop_after_another(api, redis_server, redis_url):
    """Redis's connections close with their loop, as the pool's do, and the next loop's
    calls go through Redis again; nothing warns."""
    # At most two start times a lease, each usable for 50 ms: every loop leases anew.
    client = SegmentsClient(api.base_url, api.token, rate_limit=20, fleet=redis_url)
    with recorded_warnings() as seen:
        for _ in range(3):
            time.sleep(0.1)
            assert "+OK" == redis_server.command("FLUSHALL")
            assert 4 == len(asyncio.run(_names(client)))
            assert redis_server.command("KEYS", "*quota") not in (None, "*0")
        asyncio.run(client.aclose())
        del client

    assert [] == seen.caught


async def test_a_fleet_client_dropped_unclosed_warns_once_and_redis_py_not_at_all(redis_url):
    async with RawServer(empty_page) as server:
        with recorded_warnings() as seen:
            client = make_client(server.url, rate_limit=100, fleet=redis_url)
            await client.segments.list()
            del client
            gc.collect()
            await asyncio.sleep(0.01)

    assert 1 == len(seen.ours)
    assert [] == [m for m in seen.others if "nclosed" in m]
