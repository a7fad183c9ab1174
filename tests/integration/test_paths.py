"""A ``uuid.UUID`` subclass whose text says ../../admin is sent as the
canonical UUID of its value, and a hollow one is refused before anything is sent."""

from __future__ import annotations

import uuid

import pytest

from ..rawserver import RawRequest, RawServer, json_response, response
from .support import SEGMENT, SEGMENT_ID, envelope, make_client


class Evil(uuid.UUID):
    def __str__(self) -> str:
        return "../../admin"

    def __format__(self, spec: str) -> str:
        return "../../admin"


class Hollow(uuid.UUID):
    def __init__(self) -> None:
        pass


async def test_the_path_is_the_uuids_value_not_its_text():
    """update and delete with the subclass: the server sees /segments/<uuid>, nothing else."""

    async def handler(request: RawRequest) -> bytes:
        if request.method == "DELETE":
            return response(204, reason="No Content")
        return json_response(200, envelope(SEGMENT))

    async with RawServer(handler) as server, make_client(server.url) as client:
        await client.segments.update(Evil(SEGMENT_ID), "EMEA")
        await client.segments.delete(Evil(SEGMENT_ID))

    expected = f"/v2.3/data/segments/{SEGMENT_ID}"
    assert [("PUT", expected), ("DELETE", expected)] == [
        (r.method, r.target) for r in server.requests
    ]


async def test_a_hollow_uuid_is_refused_unsent():
    """A subclass that never set its value: ValueError, and no request."""

    async def handler(request: RawRequest) -> bytes:
        return json_response(200, envelope(SEGMENT))

    async with RawServer(handler) as server, make_client(server.url) as client:
        with pytest.raises(ValueError, match="segment_id"):
            await client.segments.delete(Hollow())

    assert [] == server.requests
