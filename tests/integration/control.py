"""Helpers of the call-control tests (deadline, hooks, headers, resume) over loopback."""

from __future__ import annotations

from typing import Any

from segments_async import SegmentsClient
from segments_async.testing import FakeSegmentsServer

from ..conftest import FAST_RETRY


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
