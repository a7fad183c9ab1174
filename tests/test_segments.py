"""The segments resource's pagination window, driven through the in-memory fake of the seam.

Every page request is a ``Sent`` that the test answers when it wants, in the order it
wants: what is in flight, what is held, and what is cancelled are checked exactly,
without sockets or sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from segments_async import (
    APIConnectionError,
    APIResponseValidationError,
    RetryPolicy,
    SegmentPage,
    SegmentsClient,
    _segments,
)
from segments_async._flow import Flow
from segments_async._retry import Failure

from .fakes import FakeTransport, Sent, install, page_body

BASE_URL = "https://api.segments.test"
TOKEN = "tok-3f9a7c1d5e"


@pytest.fixture
async def client():
    async with SegmentsClient(BASE_URL, TOKEN, retry=RetryPolicy(max_retries=0)) as c:
        yield c


def page_of(sent: Sent) -> int:
    """The page number a request asks for."""
    return int(sent.path.split("page=")[1].split("&")[0])


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def answer_first_page(fake: FakeTransport, total: int, per_page: int = 10) -> None:
    sent = await fake.next()
    assert 1 == page_of(sent)
    sent.answer(200, page_body(1, per_page, total))


class TestWindow:
    async def test_at_most_concurrency_in_flight_then_one_per_page_consumed(self, client):
        """After page 1, concurrency requests are in flight; each page consumed adds one."""
        fake = install(client)
        pages = client.segments.iter_pages(per_page=10, concurrency=3)
        first = asyncio.create_task(anext(pages))
        await answer_first_page(fake, total=100)
        assert 1 == (await first).current_page

        second = asyncio.create_task(anext(pages))
        await settle()
        assert [2, 3, 4] == [page_of(sent) for sent in fake.pending()]
        for sent in fake.pending():
            sent.answer(200, page_body(page_of(sent), 10, 100))
        assert 2 == (await second).current_page
        await settle()
        assert [] == fake.pending()  # 3 and 4 are held while the consumer holds 2
        assert 3 == (await anext(pages)).current_page
        await settle()
        assert [5] == [page_of(sent) for sent in fake.pending()]  # 4 held, 5 in flight
        await pages.aclose()

    async def test_pages_yielded_in_order_whatever_the_answer_order(self, client):
        """Answers in reverse order still yield pages 1, 2, 3, 4, 5."""
        fake = install(client)
        numbers = []

        async def consume() -> None:
            async for page in client.segments.iter_pages(per_page=10, concurrency=4):
                numbers.append(page.current_page)

        task = asyncio.create_task(consume())
        await answer_first_page(fake, total=50)
        await settle()
        for sent in reversed(fake.pending()):
            sent.answer(200, page_body(page_of(sent), 10, 50))
        await settle()
        for sent in fake.pending():
            sent.answer(200, page_body(page_of(sent), 10, 50))
        await task

        assert [1, 2, 3, 4, 5] == numbers

    async def test_concurrency_one_is_a_plain_loop(self, client):
        """With concurrency=1, the next page is asked for only when it is wanted."""
        fake = install(client)
        pages = client.segments.iter_pages(per_page=10, concurrency=1)
        first = asyncio.create_task(anext(pages))
        await answer_first_page(fake, total=30)
        await first
        await settle()

        assert [] == fake.pending()
        await pages.aclose()

    async def test_clamped_per_page_is_followed(self, client):
        """A server that clamps per_page to 10 is asked for 10 a page afterwards."""
        fake = install(client)
        pages = client.segments.iter_pages(per_page=500, concurrency=2)
        first = asyncio.create_task(anext(pages))
        sent = await fake.next()
        assert "per_page=500" in sent.path
        sent.answer(200, page_body(1, 10, 30))
        await first
        second = asyncio.create_task(anext(pages))
        await settle()

        assert all("per_page=10" in sent.path for sent in fake.pending())
        for sent in fake.pending():
            sent.answer(200, page_body(page_of(sent), 10, 30))
        await second
        await pages.aclose()


class TestAutoWindow:
    """``"auto"`` holds the pool's worth of pages (4 here) besides the one the iteration is
    on, and twice the pool once a quarter of that window (2 of 5 here) waits behind a page
    that has not come, while places are free at the adaptive limit."""

    @staticmethod
    async def past_the_first_page(client: SegmentsClient):
        """An ``"auto"`` iteration of 100 pages, its first page read, and the task awaiting
        the second; with the fake transport."""
        fake = install(client)
        pages = client.segments.iter_pages(per_page=10, concurrency="auto")
        first = asyncio.create_task(anext(pages))
        await answer_first_page(fake, total=1000)
        assert 1 == (await first).current_page
        second = asyncio.create_task(anext(pages))
        await settle()
        return fake, pages, second

    async def test_a_busy_consumer_is_read_ahead_of_by_the_pool(self):
        retry = RetryPolicy(max_retries=0)
        async with SegmentsClient(BASE_URL, TOKEN, retry=retry, max_connections=4) as client:
            fake, pages, second = await self.past_the_first_page(client)
            for sent in fake.pending():  # in order: nothing waits behind a missing page
                sent.answer(200, page_body(page_of(sent), 10, 1000))
                await settle()
            assert 2 == (await second).current_page
            await settle()

            assert [2, 3, 4, 5, 6] == [page_of(sent) for sent in fake.sent[1:]]
            await pages.aclose()

    async def test_a_pool_of_one_fetches_the_next_page_while_the_iteration_is_on_one(self):
        retry = RetryPolicy(max_retries=0)
        async with SegmentsClient(BASE_URL, TOKEN, retry=retry, max_connections=1) as client:
            fake, pages, second = await self.past_the_first_page(client)
            (sent,) = fake.pending()
            sent.answer(200, page_body(page_of(sent), 10, 1000))
            assert 2 == (await second).current_page
            await settle()

            assert [3] == [page_of(sent) for sent in fake.pending()]
            await pages.aclose()

    @staticmethod
    def asked(fake: FakeTransport) -> list[int]:
        """The pages asked for after the first, in order."""
        return [page_of(sent) for sent in fake.sent[1:]]

    @staticmethod
    async def answered(*requests: Sent) -> None:
        """Answer those requests with their pages, one at a time."""
        for sent in requests:
            sent.answer(200, page_body(page_of(sent), 10, 1000))
            await settle()

    @classmethod
    async def answered_until_quiet(cls, fake: FakeTransport) -> None:
        """Answer whatever is asked for, until nothing more is for 50 ms (the limit's pause
        after a refusal is a round trip)."""
        async with asyncio.timeout(10):
            while True:
                if fake.pending():
                    await cls.answered(*fake.pending())
                    continue
                await asyncio.sleep(0.05)
                if not fake.pending():
                    return

    @staticmethod
    async def stopped(second: asyncio.Task[SegmentPage], pages) -> None:
        second.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await second
        await pages.aclose()

    async def test_a_page_waiting_out_a_retry_after_widens_it_to_16_pools(self):
        """Unpaced, the server's capacity bounds what is sent while the page waits: the
        window holds up to 16 pools (64 pages) behind it."""
        async with SegmentsClient(BASE_URL, TOKEN, retry=RetryPolicy(), max_connections=4) as c:
            fake, pages, second = await self.past_the_first_page(c)
            head, *_ = fake.pending()
            assert 2 == page_of(head)
            head.answer(429, {"success": False}, **{"Retry-After": "60"})
            await self.answered_until_quiet(fake)

            assert list(range(2, 66)) == sorted(set(self.asked(fake)))
            assert [] == fake.pending()  # 1 + 63: the widened window is full
            await self.stopped(second, pages)

    async def test_paced_it_holds_what_the_pace_sends_while_a_page_waits_out_a_retry_after(
        self,
    ):
        """Paced (here by ``rate_limit=400``), the window holds what the pace sends in the
        refused page's ``Retry-After`` (0.05 s: 20 pages) besides the pool: 24 pages."""
        async with SegmentsClient(
            BASE_URL, TOKEN, retry=RetryPolicy(), max_connections=4, rate_limit=400
        ) as client:
            fake, pages, second = await self.past_the_first_page(client)
            head, *_ = fake.pending()
            head.answer(429, {"success": False}, **{"Retry-After": "0.05"})
            async with asyncio.timeout(10):
                while not second.done():  # until its retry is answered too
                    await self.answered_until_quiet(fake)
            assert 2 == (await second).current_page

            assert list(range(2, 26)) == sorted(set(self.asked(fake)))
            await pages.aclose()

    async def test_it_widens_though_the_pages_it_looks_at_wait_out_a_retry_after_too(self):
        """The late page and those behind it (where the window is looked at) all refused:
        it widens at the first backoff, instead of waiting a minute for them."""
        async with SegmentsClient(BASE_URL, TOKEN, retry=RetryPolicy(), max_connections=4) as c:
            fake, pages, second = await self.past_the_first_page(c)
            for sent in fake.pending():  # 2-5
                sent.answer(429, {"success": False}, **{"Retry-After": "60"})
            await self.answered_until_quiet(fake)

            assert list(range(2, 66)) == sorted(set(self.asked(fake)))
            await self.stopped(second, pages)

    async def test_a_slow_page_widens_it_once_a_quarter_waits_behind_it(self):
        retry = RetryPolicy(max_retries=0)
        async with SegmentsClient(BASE_URL, TOKEN, retry=retry, max_connections=4) as client:
            fake, pages, second = await self.past_the_first_page(client)
            head, third, fourth, *_ = fake.pending()  # 2-5: the limit starts at 4
            await self.answered(third)
            assert [2, 3, 4, 5, 6] == self.asked(fake)  # one behind: a late answer

            await self.answered(fourth)  # two: the window blocks
            assert [2, 3, 4, 5, 6, 7] == self.asked(fake)
            await self.answered(*fake.pending()[1:3])  # 5 and 6: 8 and 9 in their places
            assert [2, 3, 4, 5, 6, 7, 8, 9] == self.asked(fake)
            head.answer(200, page_body(2, 10, 1000))
            assert 2 == (await second).current_page
            assert [3, 4] == [(await anext(pages)).current_page for _ in range(2)]
            await pages.aclose()

    async def test_one_answer_behind_it_is_a_late_answer_not_a_blocked_window(
        self, monkeypatch: pytest.MonkeyPatch
    ):
        """The page two behind the late one (where the window is first looked at) comes
        first: one done behind it is not yet a quarter of the window, places free or not."""
        monkeypatch.setattr(Flow, "spare", lambda _self: 1)
        retry = RetryPolicy(max_retries=0)
        async with SegmentsClient(BASE_URL, TOKEN, retry=retry, max_connections=4) as client:
            fake, pages, second = await self.past_the_first_page(client)
            await self.answered(fake.pending()[2])

            assert [2, 3, 4, 5, 6] == self.asked(fake)
            assert 0 == client._shared.flow._gate.waiting  # no more pages asked for
            await self.stopped(second, pages)

    async def test_a_late_page_that_comes_leaves_it_as_it_was(self):
        retry = RetryPolicy(max_retries=0)
        async with SegmentsClient(BASE_URL, TOKEN, retry=retry, max_connections=4) as client:
            fake, pages, second = await self.past_the_first_page(client)
            head, third, *_ = fake.pending()
            await self.answered(third)
            await self.answered(head)
            assert 2 == (await second).current_page
            await settle()

            assert [2, 3, 4, 5, 6] == self.asked(fake)
            await pages.aclose()

    async def test_not_while_every_place_at_the_limit_is_taken(
        self, monkeypatch: pytest.MonkeyPatch
    ):
        """Pages wait behind a late one, but the limit has no place free (other calls of
        the client hold them): a wider window would only queue more at the limit."""
        monkeypatch.setattr(Flow, "spare", lambda _self: 0)
        retry = RetryPolicy(max_retries=0)
        async with SegmentsClient(BASE_URL, TOKEN, retry=retry, max_connections=4) as client:
            fake, pages, second = await self.past_the_first_page(client)
            await self.answered(*fake.pending()[1:])

            assert [2, 3, 4, 5, 6] == self.asked(fake)
            await self.stopped(second, pages)

    async def test_closing_it_while_it_waits_on_a_late_page_cancels_every_request(self):
        retry = RetryPolicy(max_retries=0)
        async with SegmentsClient(BASE_URL, TOKEN, retry=retry, max_connections=4) as client:
            fake, pages, second = await self.past_the_first_page(client)
            await self.stopped(second, pages)
            await settle()

            assert 4 == len(self.asked(fake))  # the limit's 4, the fifth page waiting there
            assert [] == fake.pending()  # cancelled, none left waiting for an answer


class TestDecodedWhenReached:
    """Pages fetched ahead are held as their answers and decoded when the iteration
    reaches them: the decoder runs once per page taken, never for a page only fetched."""

    @pytest.fixture
    def decoded(self, monkeypatch: pytest.MonkeyPatch) -> list[int]:
        numbers: list[int] = []
        real = _segments._PAGE_LATER.decode

        def counting(body: bytes) -> SegmentPage:
            page = real(body)
            numbers.append(page.current_page)
            return page

        monkeypatch.setattr(_segments._PAGE_LATER, "decode", counting)
        return numbers

    @pytest.mark.parametrize("concurrency", [3, "auto"])
    async def test_a_page_fetched_ahead_is_decoded_when_reached(self, client, decoded, concurrency):
        fake = install(client)
        pages = client.segments.iter_pages(per_page=10, concurrency=concurrency)
        first = asyncio.create_task(anext(pages))
        await answer_first_page(fake, total=100)
        assert 1 == (await first).current_page
        second = asyncio.create_task(anext(pages))
        await settle()
        ahead = fake.pending()
        assert len(ahead) >= 2
        for sent in ahead:
            sent.answer(200, page_body(page_of(sent), 10, 100))

        assert 2 == (await second).current_page
        await settle()
        answered = {page_of(sent) for sent in ahead}
        assert {3, 4} <= answered
        assert not answered - {2} & set(decoded)  # answered, none decoded but page 2
        assert 3 == (await anext(pages)).current_page
        assert 3 == decoded[-1]
        assert not answered - {2, 3} & set(decoded)
        await pages.aclose()

    @pytest.mark.parametrize("concurrency", [3, "auto"])
    async def test_a_malformed_page_ahead_raises_when_reached_with_its_status_and_url(
        self, client, concurrency
    ):
        fake = install(client)
        seen = []

        async def consume() -> None:
            async for page in client.segments.iter_pages(per_page=10, concurrency=concurrency):
                seen.append(page.current_page)

        task = asyncio.create_task(consume())
        await answer_first_page(fake, total=100)
        await settle()
        for sent in fake.pending():
            number = page_of(sent)
            if number == 3:
                sent.answer(203, page_body(3, 10, 100, items="nope"))
            else:
                sent.answer(200, page_body(number, 10, 100))
        with pytest.raises(APIResponseValidationError) as info:
            await task

        assert [1, 2] == seen
        assert "result.items" == info.value.field
        assert 203 == info.value.status_code
        assert "page=3&" in info.value.url
        await settle()
        assert ([], 0) == (fake.pending(), fake.in_flight)  # the others were cancelled


class TestLeavingEarly:
    async def test_aclose_cancels_what_is_in_flight(self, client):
        """Closing the iterator cancels its requests and leaves no task behind."""
        fake = install(client)
        pages = client.segments.iter_pages(per_page=10, concurrency=4)
        first = asyncio.create_task(anext(pages))
        await answer_first_page(fake, total=100)
        await first
        second = asyncio.create_task(anext(pages))
        await settle()
        in_flight = fake.pending()
        assert 4 == len(in_flight)
        second.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await second
        await pages.aclose()

        assert all(sent.future.cancelled() for sent in in_flight)
        assert 0 == fake.in_flight
        assert {asyncio.current_task()} == {t for t in asyncio.all_tasks() if not t.done()}

    async def test_failing_page_raises_after_the_rest_are_cancelled(self, client):
        """A page that fails raises from the iterator once the others are cancelled."""
        fake = install(client)
        pages = client.segments.iter_pages(per_page=10, concurrency=3)
        first = asyncio.create_task(anext(pages))
        await answer_first_page(fake, total=100)
        await first
        second = asyncio.create_task(anext(pages))
        await settle()
        page_two, *others = fake.pending()
        page_two.fail(Failure.DISCONNECT)

        with pytest.raises(APIConnectionError):
            await second
        assert all(sent.future.cancelled() for sent in others)
        assert 0 == fake.in_flight


class TestLimitAndStart:
    async def test_limit_asks_for_no_page_beyond_those_needed(self, client):
        """limit=25 with 10 a page: pages 1-3 only, even with 8 in flight allowed."""
        fake = install(client)
        segments = client.segments.iterate(per_page=10, concurrency=8, limit=25)
        task = asyncio.create_task(_collect(segments))
        await answer_first_page(fake, total=1000)
        await settle()
        assert [2, 3] == [page_of(sent) for sent in fake.pending()]
        for sent in fake.pending():
            sent.answer(200, page_body(page_of(sent), 10, 1000))

        assert 25 == len(await task)
        assert 3 == len(fake.sent)

    async def test_start_page_is_asked_for_first(self, client):
        """start_page=4 asks for page 4 first and goes on from there."""
        fake = install(client)
        segments = client.segments.iter_pages(per_page=10, concurrency=2, start_page=4)
        task = asyncio.create_task(_collect(segments))
        sent = await fake.next()
        assert 4 == page_of(sent)
        sent.answer(200, page_body(4, 10, 50))
        await settle()
        for sent in fake.pending():
            sent.answer(200, page_body(page_of(sent), 10, 50))

        assert [4, 5] == [page.current_page for page in await task]


class TestMetadata:
    async def test_wrong_current_page_is_an_error(self, client):
        """A server that answers page 1 to a request for page 2 is caught."""
        fake = install(client)
        task = asyncio.create_task(_collect(client.segments.iter_pages(per_page=10, concurrency=1)))
        await answer_first_page(fake, total=30)
        (await fake.next()).answer(200, page_body(1, 10, 30))

        with pytest.raises(APIResponseValidationError, match="asked for page 2"):
            await task

    async def test_short_page_ends_a_huge_last_page(self, client):
        """lastPage=10**9 with 25 items: the short page 3 ends it, a few requests in all."""
        fake = install(client)
        task = asyncio.create_task(_collect(client.segments.iterate(per_page=10, concurrency=2)))
        sent = await fake.next()
        sent.answer(200, page_body(1, 10, 25, lastPage=10**9))
        while not task.done():
            await settle()
            for sent in fake.pending():
                sent.answer(200, page_body(page_of(sent), 10, 25, lastPage=10**9))

        assert 25 == len(await task)
        assert len(fake.sent) <= 4  # pages 1-3, and at most one beyond in flight


async def _collect(iterator):  # type: ignore[no-untyped-def]
    return [item async for item in iterator]
