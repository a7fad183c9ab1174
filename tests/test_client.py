"""The call loop, driven through an in-memory fake of the I/O seam: no sockets, no sleeps."""

from __future__ import annotations

import asyncio
import math

import aiohttp
import pytest

from segments_async import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ClientClosedError,
    RequestEvent,
    ResponseEvent,
    RetryEvent,
    RetryPolicy,
    SegmentsClient,
)
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


SEGMENT_ID = "7f2d6e6d-a4ad-4b58-abfe-bd8b918ebec2"
RENAMED = {"id": SEGMENT_ID, "name": "x"}


def make_client(**options: object) -> SegmentsClient:
    options.setdefault("retry", NO_WAIT)
    return SegmentsClient(BASE_URL, TOKEN, **options)  # type: ignore[arg-type]


def aiohttp_end(timeout: aiohttp.ClientTimeout, now: float) -> float:
    """When aiohttp's total timer fires for ``timeout`` started at ``now`` (its rounding)."""
    assert timeout.total is not None
    when = now + timeout.total
    return math.ceil(when) if timeout.total > timeout.ceil_threshold else when


class TestAttemptTimeout:
    async def test_without_a_deadline_the_timeout_is_passed_as_is(self):
        """No deadline: the seam gets the client's own timeout (with its connect share)."""
        async with make_client(timeout=7) as client:
            fake = install(client)
            task = asyncio.create_task(client.segments.list())
            sent = await fake.next()
            sent.answer(200, page_body(1, 20, 0))
            await task

        assert (7.0, 0.9 * 7.0) == (sent.attempt_timeout.total, sent.attempt_timeout.sock_connect)
        assert client._options.wire_timeout is sent.attempt_timeout
        assert sent.until is None

    async def test_the_timeout_is_cut_to_the_deadline(self):
        """timeout=30, deadline=2: the attempt gets at most 2 s, without aiohttp's rounding."""
        async with make_client(timeout=30, deadline=2) as client:
            fake = install(client)
            started = asyncio.get_running_loop().time()
            task = asyncio.create_task(client.segments.list())
            sent = await fake.next()
            sent.answer(200, page_body(1, 20, 0))
            await task

        assert sent.attempt_timeout.total is not None
        assert 0 < sent.attempt_timeout.total <= 2
        assert math.inf == sent.attempt_timeout.ceil_threshold
        assert sent.until is not None
        assert started <= sent.until - 2 <= asyncio.get_running_loop().time()

    async def test_a_timeout_well_within_the_deadline_is_kept(self):
        """timeout=1, deadline=10: the client's own timeout (and its settings) is used."""
        timeout = aiohttp.ClientTimeout(total=1, sock_read=0.5)
        async with make_client(timeout=timeout, deadline=10) as client:
            fake = install(client)
            task = asyncio.create_task(client.segments.list())
            sent = await fake.next()
            sent.answer(200, page_body(1, 20, 0))
            await task

        assert client._options.wire_timeout is sent.attempt_timeout
        assert (1, 0.5) == (sent.attempt_timeout.total, sent.attempt_timeout.sock_read)

    async def test_other_timeout_fields_survive_the_cut(self):
        """Cutting the total keeps sock_read and sock_connect."""
        timeout = aiohttp.ClientTimeout(total=None, sock_read=3, sock_connect=2)
        async with make_client(timeout=timeout, deadline=5) as client:
            fake = install(client)
            task = asyncio.create_task(client.segments.list())
            sent = await fake.next()
            sent.answer(200, page_body(1, 20, 0))
            await task

        cut = sent.attempt_timeout
        assert (3, 2) == (cut.sock_read, cut.sock_connect)
        assert cut.total is not None
        assert cut.total <= 5

    async def test_aiohttp_rounding_cannot_carry_an_attempt_past_the_deadline(self):
        """timeout=10 with 10.5 s left: aiohttp would round 10 s up to a whole second."""
        async with make_client(timeout=10, deadline=10.5) as client:
            fake = install(client)
            task = asyncio.create_task(client.segments.list())
            sent = await fake.next()
            now = asyncio.get_running_loop().time()
            sent.answer(200, page_body(1, 20, 0))
            await task

        assert sent.until is not None
        # Whatever the fraction of the loop's clock, the timer fires by the deadline.
        for fraction in (0.0, 0.25, 0.5, 0.75, 0.999):
            start = math.floor(now) + fraction
            assert aiohttp_end(sent.attempt_timeout, start) <= start + 10.5

    async def test_a_retry_gets_only_what_remains(self):
        """After 0.3 s of a 1 s deadline, the retry's timeout is at most 0.7 s."""
        async with make_client(deadline=1) as client:
            fake = install(client)
            task = asyncio.create_task(client.segments.list())
            first = await fake.next()
            await asyncio.sleep(0.3)
            first.fail(Failure.CONNECT, sent=False)
            second = await fake.next()
            second.answer(200, page_body(1, 20, 0))
            await task

        assert first.until == second.until
        assert second.attempt_timeout.total is not None
        assert second.attempt_timeout.total <= 0.7


class TestExpiry:
    async def test_a_timeout_at_the_deadline_says_the_deadline_ran_out(self):
        """The attempt's timeout at the deadline is reported as the deadline, with its cause."""
        async with make_client(deadline=0.05) as client:
            fake = install(client)
            task = asyncio.create_task(client.segments.list())
            sent = await fake.next()
            await asyncio.sleep(0.06)
            cause = APITimeoutError("request timed out after 0.05s", method="GET", url=sent.url)
            sent.fail(Failure.TIMEOUT, cause)
            with pytest.raises(APITimeoutError) as caught:
                await task

        assert (
            "the call's deadline of 0.05s ran out after 1 attempt "
            "(request timed out after 0.05s)" == caught.value.message
        )
        assert cause is caught.value.__cause__
        assert (sent.method, sent.url) == (caught.value.method, caught.value.url)
        assert 1 == len(fake.sent)

    async def test_the_message_counts_the_attempts(self):
        """A failure retried at once, then a timeout at the deadline: two attempts."""
        async with make_client(deadline=0.3) as client:
            fake = install(client)
            task = asyncio.create_task(client.segments.update(SEGMENT_ID, "x"))
            (await fake.next()).fail(Failure.CONNECT, sent=False)
            second = await fake.next()
            await asyncio.sleep(0.31)
            second.fail(Failure.TIMEOUT)
            with pytest.raises(APITimeoutError, match="ran out after 2 attempts"):
                await task

    async def test_an_answer_that_arrives_after_the_deadline_is_still_returned(self):
        """A 200 is not thrown away because the deadline passed while it was read."""
        async with make_client(deadline=0.02) as client:
            fake = install(client)
            task = asyncio.create_task(client.segments.list())
            sent = await fake.next()
            await asyncio.sleep(0.03)
            sent.answer(200, page_body(1, 20, 3))

            assert 3 == (await task).total

    async def test_a_retryable_answer_with_no_time_left_is_raised_as_itself(self):
        """A 503 after the deadline passed: no retry, and the 503 is what the caller sees."""
        async with make_client(deadline=0.02) as client:
            fake = install(client)
            task = asyncio.create_task(client.segments.list())
            sent = await fake.next()
            await asyncio.sleep(0.03)
            sent.answer(503, {"success": False, "message": "busy"})
            with pytest.raises(APIStatusError) as caught:
                await task

        assert 503 == caught.value.status_code
        assert 1 == len(fake.sent)


class TestEvents:
    async def test_every_attempt_is_announced_answered_and_retried(self):
        """Two failures then an answer: three request and response events, two retry events."""
        events: list[object] = []
        hooks = {"request": [events.append], "response": [events.append], "retry": [events.append]}
        async with make_client(event_hooks=hooks) as client:
            fake = install(client)
            task = asyncio.create_task(client.segments.update(SEGMENT_ID, "x"))
            (await fake.next()).fail(Failure.CONNECT, sent=False)
            (await fake.next()).answer(503, {"success": False, "message": "busy"})
            (await fake.next()).answer(200, {"success": True, "result": RENAMED})
            await task

        kinds = [type(event).__name__ for event in events]
        assert [
            "RequestEvent", "ResponseEvent", "RetryEvent",
            "RequestEvent", "ResponseEvent", "RetryEvent",
            "RequestEvent", "ResponseEvent",
        ] == kinds  # fmt: skip
        requests = [e for e in events if isinstance(e, RequestEvent)]
        responses = [e for e in events if isinstance(e, ResponseEvent)]
        retries = [e for e in events if isinstance(e, RetryEvent)]
        url = f"{BASE_URL}/v2.3/data/segments/{SEGMENT_ID}"
        assert [("PUT", url, 1), ("PUT", url, 2), ("PUT", url, 3)] == [
            (e.method, e.url, e.attempt) for e in requests
        ]
        assert [None, 503, 200] == [e.status_code for e in responses]
        assert isinstance(responses[0].error, APIConnectionError)
        assert [None, None] == [e.error for e in responses[1:]]
        assert [(1, "connection failed"), (2, "HTTP 503")] == [
            (e.attempt, e.reason) for e in retries
        ]
        assert all(0 <= e.delay for e in retries)
        assert isinstance(retries[0].error, APIConnectionError)
        assert 503 == getattr(retries[1].error, "status_code", None)
        assert all(0 <= e.elapsed for e in responses)

    async def test_an_attempt_held_back_by_the_rate_limit_is_still_answered(self):
        """A RequestEvent is always followed by its ResponseEvent, even if never sent."""
        events: list[object] = []
        hooks = {"request": [events.append], "response": [events.append]}
        async with make_client(rate_limit=1, event_hooks=hooks) as client:
            fake = install(client)
            first = asyncio.create_task(client.segments.list())
            (await fake.next()).answer(200, page_body(1, 20, 0))
            await first
            # The limiter's one slot per second is spent: this call's 0.05 s run out queued.
            with pytest.raises(APITimeoutError, match="no request slot came free"):
                await client.with_options(deadline=0.05).segments.list()

        assert 1 == len(fake.sent)
        assert [RequestEvent, ResponseEvent, RequestEvent, ResponseEvent] == [
            type(e) for e in events
        ]
        last = events[-1]
        assert isinstance(last, ResponseEvent)
        assert (None, 2) == (last.status_code, len([e for e in events if type(e) is RequestEvent]))
        assert isinstance(last.error, APITimeoutError)


class TestCancellation:
    async def test_cancelling_an_auto_call_in_flight_gives_its_place_back(self):
        """A cancelled "auto" request frees its place in the adaptive limit."""
        async with make_client(max_connections=1) as client:
            fake = install(client, max_connections=1)
            for _ in range(3):
                pages = client.segments.iter_pages(concurrency="auto")
                first = asyncio.create_task(anext(pages))
                # Bounded: with the place never given back, no request would ever come.
                sent = await asyncio.wait_for(fake.next(), 2)
                first.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await first
                await pages.aclose()
                assert sent.future.cancelled() or not sent.future.done()
            pages = client.segments.iter_pages(concurrency="auto")
            following = asyncio.create_task(anext(pages))
            (await asyncio.wait_for(fake.next(), 2)).answer(200, page_body(1, 20, 3))
            assert 3 == (await following).total
            await pages.aclose()


class TestDeadlineBeforeSending:
    async def test_a_request_hook_that_takes_the_whole_deadline_sends_nothing(self):
        """A hook that outlasts the deadline: the call ends unsent, not with a 1 ms attempt."""

        async def slow(event: RequestEvent) -> None:
            await asyncio.sleep(0.06)

        async with make_client(deadline=0.05, event_hooks={"request": [slow]}) as client:
            fake = install(client)
            with pytest.raises(APITimeoutError, match="ran out before sending") as info:
                await client.segments.create("x")

        assert [] == fake.sent
        assert info.value.outcome_unknown is False

    async def test_a_deadline_spent_queued_after_an_attempt_says_how_many_were_made(self):
        """Out of time waiting after a real attempt: the error counts the attempts made."""
        retry = RetryPolicy(backoff_initial=0.03, backoff_max=0.03)
        async with make_client(deadline=0.05, rate_limit=1, retry=retry) as client:
            fake = install(client)
            task = asyncio.create_task(client.segments.list())
            (await fake.next()).fail(Failure.DISCONNECT)  # the retry waits for the limiter
            with pytest.raises(APITimeoutError, match="ran out after 1 attempt ") as info:
                await task

        assert "no request slot came free" in str(info.value)
        assert 1 == len(fake.sent)
