"""What the integration tests share: a token, tiny backoff, clients of a raw server."""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import re
import types
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from segments_async import RetryPolicy, SegmentsClient
from segments_async.testing import FakeSegmentsServer

from ..rawserver import RawRequest, RawServer, json_response

#: A token that shows up nowhere but where the client puts it.
TOKEN = "tok-adversity-5d1c9e7b3a"
SEGMENT_ID = "7f2d6e6d-a4ad-4b58-abfe-bd8b918ebec2"
SEGMENT = {"id": SEGMENT_ID, "name": "EMEA"}

#: Retries in tests wait microseconds, not seconds.
FAST_RETRY = RetryPolicy(backoff_initial=0.001, backoff_max=0.002)


def make_client(url: str, **kwargs: Any) -> SegmentsClient:
    """A client of ``url`` with tiny backoff, unless told otherwise."""
    kwargs.setdefault("retry", FAST_RETRY)
    return SegmentsClient(url, TOKEN, **kwargs)


def envelope(result: object) -> dict[str, object]:
    return {"success": True, "result": result}


def not_found() -> bytes:
    return json_response(404, {"success": False, "message": "no such segment"})


class Held:
    """A handler that holds each request until ``release`` is set (or forever)."""

    def __init__(self, answer: Callable[[RawRequest], Awaitable[bytes | None]] | None = None):
        self.answer = answer
        self.release = asyncio.Event()
        self.count = 0
        self._arrived = asyncio.Event()

    async def __call__(self, request: RawRequest) -> bytes | None:
        self.count += 1
        self._arrived.set()
        await self.release.wait()
        if self.answer is None:
            return None
        return await self.answer(request)

    async def arrivals(self, count: int) -> None:
        """Wait until ``count`` requests have arrived in all."""
        while self.count < count:
            self._arrived.clear()
            await self._arrived.wait()


@contextlib.asynccontextmanager
async def closed_port() -> AsyncIterator[str]:
    """The URL of a loopback port that nobody listens on (any more)."""

    async def nothing(request: RawRequest) -> bytes:
        return b""

    async with RawServer(nothing) as server:
        url = server.url
    yield url


async def outcome_of(call: Awaitable[object]) -> BaseException | object:
    """What ``call`` raised, or what it returned."""
    try:
        return await call
    except BaseException as error:  # CancelledError included, on purpose
        return error


def client_for(server: FakeSegmentsServer, **options: Any) -> SegmentsClient:
    """A client of ``server`` with tiny backoff unless ``retry`` is given."""
    options.setdefault("retry", FAST_RETRY)
    return SegmentsClient(server.base_url, server.token, allow_insecure_http=True, **options)


class Recorder:
    """Collects the events of every kind, in order; sync hooks by default, async on request."""

    def __init__(self) -> None:
        self.events: list[object] = []

    def hook(self, event: object) -> None:
        self.events.append(event)

    async def async_hook(self, event: object) -> None:
        self.events.append(event)

    def hooks(self, *, asynchronous: bool = False) -> dict[str, list[Any]]:
        hook = self.async_hook if asynchronous else self.hook
        return {"request": [hook], "response": [hook], "retry": [hook]}

    def of(self, kind: type) -> list[Any]:
        return [event for event in self.events if type(event) is kind]


README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def recipe(name: str) -> str:
    """The code of the README's recipe ``name``."""
    pattern = rf"<!-- recipe: {re.escape(name)} -->\n```python\n(.*?)\n```"
    found = re.findall(pattern, README.read_text(encoding="utf-8"), flags=re.DOTALL)
    assert 1 == len(found), f"README.md has {len(found)} recipes named {name!r}"
    return found[0]


def recipe_names() -> list[str]:
    """The names of the README's recipes (the ``<!-- recipe: NAME -->`` lines)."""
    return re.findall(r"<!-- recipe: ([\w-]+) -->", README.read_text(encoding="utf-8"))


def section(heading: str) -> str:
    """The text of the README's section ``## heading``, up to the next ``##``."""
    text = README.read_text(encoding="utf-8")
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def section_blocks(heading: str) -> list[tuple[str, str]]:
    """The (language, code) blocks of the README's section ``## heading``."""
    return re.findall(r"```(\w+)\n(.*?)```", section(heading), flags=re.DOTALL)


def run_recipe(name: str, monkeypatch: pytest.MonkeyPatch, base_url: str, token: str) -> Any:
    """Execute a recipe as a module configured by the environment; returns its namespace."""
    monkeypatch.setenv("SEGMENTS_BASE_URL", base_url)
    monkeypatch.setenv("SEGMENTS_API_TOKEN", token)
    module = types.ModuleType(f"readme_recipe_{name.replace('-', '_')}")
    exec(compile(recipe(name), f"README.md <{name}>", "exec"), module.__dict__)  # noqa: S102
    return module
