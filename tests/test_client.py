"""The call loop, driven through an in-memory fake of the I/O seam: no sockets, no sleeps."""

from __future__ import annotations

import asyncio

import pytest

from segments_async import APIConnectionError, ClientClosedError, RetryPolicy, SegmentsClient
from segments_async._retry import Failure

from .fakes import install, page_body

BASE_URL = "https://api.segments.test"
TOKEN = "tok-3f9a7c1d5e"
NO_WAIT = RetryPolicy(backoff_initial=0, backoff_max=0)


@pytest.fixture
async def client():
    async with SegmentsClient(BASE_URL, TOKEN, retry=NO_WAIT) as c:
        yield c


async def test_one_attempt_one_answer(client):
    """A call sends once and returns the decoded answer."""
    fake = install(client)
    task = asyncio.create_task(client.segments.list(page=2, per_page=10))
    sent = await fake.next()
    sent.answer(200, page_body(2, 10, 25))

    page = await task
    assert ("GET", "/v2.3/data/segments?page=2&per_page=10") == (sent.method, sent.path)
    assert 2 == page.current_page


async def test_retry_then_answer(client):
    """A lost connection on GET is retried; the second attempt's answer is returned."""
    fake = install(client)
    task = asyncio.create_task(client.segments.list())
    (await fake.next()).fail(Failure.DISCONNECT)
    (await fake.next()).answer(200, page_body(1, 20, 0))

    assert 0 == (await task).total
    assert 2 == len(fake.sent)


async def test_post_not_retried_after_it_may_have_acted(client):
    """A POST whose connection was lost after sending is raised, marked outcome unknown."""
    fake = install(client)
    task = asyncio.create_task(client.segments.create("EMEA"))
    (await fake.next()).fail(Failure.DISCONNECT)

    with pytest.raises(APIConnectionError) as info:
        await task
    assert info.value.outcome_unknown is True
    assert 1 == len(fake.sent)


async def test_close_ends_a_call_in_flight(client):
    """aclose() ends an in-flight call with ClientClosedError, not CancelledError."""
    fake = install(client)
    task = asyncio.create_task(client.segments.create("EMEA"))
    await fake.next()
    await client.aclose()

    with pytest.raises(ClientClosedError) as info:
        await task
    assert info.value.outcome_unknown is True
