"""Bulk create, update and delete, driven through the in-memory fake of the I/O seam."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncGenerator, Iterable

import attrs
import pytest

from segments_async import (
    APIConnectionError,
    AuthenticationError,
    BulkFailure,
    BulkResult,
    BulkSuccess,
    ClientClosedError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RetryPolicy,
    Segment,
    SegmentsClient,
)
from segments_async._bulk import backing_off, bulk_results
from segments_async._retry import Failure

from .fakes import FakeTransport, Sent, install

BASE_URL = "https://api.segments.test"
TOKEN = "tok-3f9a7c1d5e"
ID = "7f2d6e6d-a4ad-4b58-abfe-bd8b918ebec2"
NO_RETRY = RetryPolicy(max_retries=0)


@pytest.fixture
async def client():
    async with SegmentsClient(BASE_URL, TOKEN, retry=NO_RETRY) as c:
        yield c


def created(sent: Sent, number: int) -> None:
    """Answer a create with a segment whose id encodes ``number``."""
    name = sent.body.decode()[9:-2] if sent.body else ""
    segment = {"id": f"00000000-0000-4000-8000-{number:012d}", "name": name}
    sent.answer(200, {"success": True, "result": segment})


async def answer_all(fake: FakeTransport, stop: asyncio.Event) -> None:
    """Answer every create as it comes, until ``stop`` is set."""
    number = itertools.count()
    while not stop.is_set():
        created(await fake.next(), next(number))


async def collect(generator) -> list[BulkResult]:
    return [result async for result in generator]


class TestOrderAndWindow:
    async def test_results_in_input_order_whatever_the_answer_order(self, client):
        """Answers in reverse order still come out in input order."""
        fake = install(client)
        results = asyncio.create_task(collect(client.segments.create_many(["a", "b", "c", "d"])))
        sends = [await fake.next() for _ in range(4)]
        for number, sent in reversed(list(enumerate(sends))):
            created(sent, number)

        got = await results
        assert [0, 1, 2, 3] == [r.index for r in got]
        assert ["a", "b", "c", "d"] == [r.value.name for r in got]
        assert ["a", "b", "c", "d"] == [r.input for r in got]

    async def test_at_most_concurrency_in_flight(self, client):
        """With concurrency=3, a fourth request waits for one of three to end."""
        fake = install(client)
        gen = client.segments.create_many((f"n{i}" for i in range(10)), concurrency=3)
        first = asyncio.create_task(anext(gen))
        for _ in range(3):
            await fake.next()
        for _ in range(5):
            await asyncio.sleep(0)

        assert 3 == len(fake.pending())
        for number, sent in enumerate(fake.pending()):
            created(sent, number)
        assert 0 == (await first).index
        await gen.aclose()

    async def test_held_results_are_bounded(self, client):
        """A stuck first item lets at most 2x concurrency inputs be pulled."""
        fake = install(client)
        pulled = itertools.count()

        def names():
            for i in range(1000):
                next(pulled)
                yield f"n{i}"

        gen = client.segments.create_many(names(), concurrency=2)
        head = asyncio.create_task(anext(gen))
        stuck = await fake.next()
        for number in range(10):  # answer everything but the first
            sent = await asyncio.wait_for(fake.next(), 0.5) if number < 3 else None
            if sent is None:
                break
            created(sent, number + 1)
        for _ in range(10):
            await asyncio.sleep(0)

        assert 4 == next(pulled)  # 4 pulled: 2 x concurrency
        created(stuck, 0)
        assert 0 == (await head).index
        await gen.aclose()

    async def test_async_iterable_input(self, client):
        """An async generator of names is consumed lazily and in order."""
        fake = install(client)
        stop = asyncio.Event()
        responder = asyncio.create_task(answer_all(fake, stop))

        async def names():
            for i in range(50):
                await asyncio.sleep(0)
                yield f"n{i}"

        got = await collect(client.segments.create_many(names(), concurrency=8))
        stop.set()
        responder.cancel()
        assert [f"n{i}" for i in range(50)] == [r.value.name for r in got]

    async def test_empty_input(self, client):
        """No inputs, no results, no requests."""
        fake = install(client)

        assert [] == await collect(client.segments.create_many([]))
        assert [] == fake.sent


class TestUnordered:
    async def test_results_as_they_finish_each_with_its_index(self, client):
        """ordered=False yields each result when its answer comes, with its index."""
        fake = install(client)
        gen = client.segments.create_many(["a", "b", "c"], ordered=False)
        results = asyncio.create_task(collect(gen))
        sends = [await fake.next() for _ in range(3)]
        for number in (2, 0, 1):
            created(sends[number], number)
            await asyncio.sleep(0)

        got = await results
        assert [2, 0, 1] == [r.index for r in got]
        assert ["c", "a", "b"] == [r.input for r in got]
        assert ["c", "a", "b"] == [r.value.name for r in got]

    async def test_a_slow_item_holds_back_nothing(self, client):
        """With item 0 unanswered, the others still come out (and more are pulled)."""
        fake = install(client)
        gen = client.segments.create_many(
            (f"n{i}" for i in range(100)), concurrency=4, ordered=False
        )
        got: list[BulkResult] = []
        others_done = asyncio.Event()

        async def consume() -> None:
            async for result in gen:
                got.append(result)
                if len(got) == 99:
                    others_done.set()

        consumer = asyncio.create_task(consume())
        slow = await fake.next()
        for number in range(1, 100):
            created(await fake.next(), number)
        await others_done.wait()

        assert list(range(1, 100)) == sorted(r.index for r in got)
        assert not consumer.done()
        created(slow, 0)
        await consumer
        assert 0 == got[-1].index
        assert 100 == len(got)

    async def test_held_results_stay_bounded(self, client):
        """Unordered too, a consumer that does not read stops the pulling at the window."""
        fake = install(client)
        pulled = []

        def names():
            for i in range(1000):
                pulled.append(i)
                yield f"n{i}"

        gen = client.segments.create_many(names(), concurrency=3, ordered=False)
        first = asyncio.create_task(anext(gen))
        stop = asyncio.Event()
        responder = asyncio.create_task(answer_all(fake, stop))
        await first
        for _ in range(50):
            await asyncio.sleep(0)
        stop.set()
        responder.cancel()

        assert len(pulled) <= 2 * 3 + 1
        await gen.aclose()

    @pytest.mark.parametrize("bad", [None, 0, "no"])
    def test_ordered_must_be_a_bool(self, client, bad):
        """ordered=None or 0 is a TypeError at the call, not a silent choice."""
        with pytest.raises(TypeError, match="ordered"):
            client.segments.delete_many([ID], ordered=bad)


class TestPerItemFailures:
    async def test_bad_items_fail_alone_unsent(self, client):
        """A non-str name is its own TypeError; the others are created; it is never sent."""
        fake = install(client)
        stop = asyncio.Event()
        responder = asyncio.create_task(answer_all(fake, stop))
        got = await collect(client.segments.create_many(["a", 7, "c"]))
        stop.set()
        responder.cancel()

        assert [True, False, True] == [r.ok for r in got]
        assert isinstance(got[1].error, TypeError)
        assert 2 == len(fake.sent)

    async def test_bad_ids_fail_alone(self, client):
        """An id that is not a UUID is its own ValueError in delete_many."""
        fake = install(client)
        results = asyncio.create_task(collect(client.segments.delete_many([ID, "../x"])))
        (await fake.next()).answer(204)

        got = await results
        assert [True, False] == [r.ok for r in got]
        assert isinstance(got[1].error, ValueError)

    @pytest.mark.parametrize("change", [("only-one",), "ab", None, (ID, "n", "x")])
    async def test_malformed_changes_fail_alone(self, client, change):
        """update_many wants (segment_id, name) pairs; anything else fails alone."""
        fake = install(client)
        got = await collect(client.segments.update_many([change]))

        assert isinstance(got[0].error, TypeError)
        assert [] == fake.sent

    async def test_outcome_unknown_only_where_a_create_may_have_happened(self, client):
        """A create whose answer was lost is outcome_unknown; a refused one is not."""
        fake = install(client)
        results = asyncio.create_task(collect(client.segments.create_many(["lost", "refused"])))
        lost, refused = await fake.next(), await fake.next()
        lost.fail(Failure.DISCONNECT)
        refused.answer(422, {"success": False, "error": {"message": "bad name"}})

        got = await results
        assert [True, False] == [r.outcome_unknown for r in got]
        assert isinstance(got[0].error, APIConnectionError)

    @pytest.mark.parametrize("kind", ["update", "delete"])
    async def test_every_write_whose_answer_was_lost_is_outcome_unknown(self, client, kind):
        """A rename or a delete whose answer was lost may have happened: outcome_unknown."""
        fake = install(client)
        bulk = (
            client.segments.update_many([(ID, "x"), (ID, "y")])
            if kind == "update"
            else client.segments.delete_many([ID, ID])
        )
        results = asyncio.create_task(collect(bulk))
        lost, refused = await fake.next(), await fake.next()
        lost.fail(Failure.DISCONNECT)
        refused.answer(409, {"success": False, "error": {"message": "conflict"}})

        got = await results
        assert [True, False] == [r.outcome_unknown for r in got]
        assert isinstance(got[0].error, APIConnectionError)
        assert got[0].error.outcome_unknown

    @pytest.mark.parametrize("kind", ["create", "update", "delete"])
    async def test_a_write_never_sent_is_not_outcome_unknown(self, client, kind):
        """A connection that was never made: the write certainly did not happen."""
        fake = install(client)
        bulk = {
            "create": lambda: client.segments.create_many(["a"]),
            "update": lambda: client.segments.update_many([(ID, "x")]),
            "delete": lambda: client.segments.delete_many([ID]),
        }[kind]()
        results = asyncio.create_task(collect(bulk))
        (await fake.next()).fail(Failure.CONNECT, sent=False)

        got = await results
        assert [False] == [r.outcome_unknown for r in got]
        assert not got[0].ok

    async def test_delete_404_is_a_failure(self, client):
        """A 404 on a first delete is that id's NotFoundError."""
        fake = install(client)
        results = asyncio.create_task(collect(client.segments.delete_many([ID])))
        (await fake.next()).answer(404, {"success": False, "error": {"message": "no"}})

        assert isinstance((await results)[0].error, NotFoundError)

    async def test_delete_404_after_unknown_outcome_is_success(self):
        """The DELETE-404 rule holds per item."""
        retry = RetryPolicy(backoff_initial=0, backoff_max=0)
        async with SegmentsClient(BASE_URL, TOKEN, retry=retry) as client:
            fake = install(client)
            results = asyncio.create_task(collect(client.segments.delete_many([ID])))
            (await fake.next()).fail(Failure.TIMEOUT)
            (await fake.next()).answer(404, {"success": False})

            assert [True] == [r.ok for r in await results]


class TestStopping:
    @pytest.mark.parametrize(
        ("status", "error"), [(401, AuthenticationError), (403, PermissionDeniedError)]
    )
    async def test_auth_failure_stops_after_in_flight_end(self, client, status, error):
        """A 401/403 stops pulling inputs; the in-flight results come out, then it raises."""
        fake = install(client)
        gen = client.segments.create_many((f"n{i}" for i in range(100)), concurrency=2)
        got: list[BulkResult] = []

        async def consume() -> None:
            async for result in gen:
                got.append(result)

        consumer = asyncio.create_task(consume())
        first, second = await fake.next(), await fake.next()
        first.answer(status, {"success": False})
        await asyncio.sleep(0)
        created(second, 1)

        with pytest.raises(error):
            await consumer
        assert [0, 1] == [r.index for r in got]
        assert 2 == len(fake.sent)

    @pytest.mark.parametrize("ordered", [True, False])
    async def test_nothing_is_pulled_after_a_stop(self, client, ordered):
        """After a 401, no input is pulled, and every input pulled has its result first."""
        fake = install(client)
        pulled: list[int] = []

        def names():
            for i in range(100):
                pulled.append(i)
                yield f"n{i}"

        gen = client.segments.create_many(names(), concurrency=4, ordered=ordered)
        got: list[BulkResult] = []

        async def consume() -> None:
            async for result in gen:
                got.append(result)

        consumer = asyncio.create_task(consume())
        sends = [await fake.next() for _ in range(4)]
        sends[0].answer(401, {"success": False})
        for _ in range(20):  # the consumer takes results, workers get room
            await asyncio.sleep(0)
        pulled_at_stop = len(pulled)
        for number, sent in enumerate(sends[1:], 1):
            created(sent, number)
            await asyncio.sleep(0)

        with pytest.raises((AuthenticationError, TimeoutError)) as info:
            async with asyncio.timeout(5):  # a bound: inputs sent after the stop hang here
                await consumer
        assert isinstance(info.value, AuthenticationError)
        assert pulled_at_stop == len(pulled)
        assert sorted(pulled) == sorted(r.index for r in got)
        assert 4 == len(fake.sent)

    async def test_an_input_pulled_during_the_stop_still_gets_its_result(self, client):
        """A slow async input whose pull was under way at the stop: that item is not lost."""
        fake = install(client)
        release = asyncio.Event()

        async def names():
            yield "first"
            await release.wait()  # the second pull is under way when the 401 comes
            yield "second"
            yield "never"

        got: list[BulkResult] = []

        async def consume() -> None:
            async for result in client.segments.create_many(names(), concurrency=2):
                got.append(result)

        consumer = asyncio.create_task(consume())
        (await fake.next()).answer(401, {"success": False})
        for _ in range(10):
            await asyncio.sleep(0)
        release.set()
        async with asyncio.timeout(5):  # a bound, should the item be lost
            (await fake.next()).answer(401, {"success": False})

        with pytest.raises(AuthenticationError):
            await consumer
        assert ["first", "second"] == [r.input for r in got]
        assert 2 == len(fake.sent)

    async def test_hook_error_propagates_and_cancels_the_rest(self):
        """An exception from a hook is not a per-item failure: it is raised, the rest cancelled."""
        calls = itertools.count(1)

        def hook(event):
            if next(calls) == 3:
                raise RuntimeError("hook failed")

        async with SegmentsClient(
            BASE_URL, TOKEN, retry=NO_RETRY, event_hooks={"request": [hook]}
        ) as client:
            fake = install(client)
            gen = client.segments.create_many([f"n{i}" for i in range(10)], concurrency=2)
            results = asyncio.create_task(collect(gen))
            first = await fake.next()
            await fake.next()
            created(first, 0)  # its worker moves on: the third request's hook raises

            with pytest.raises(RuntimeError, match="hook failed"):
                await results
            assert 0 == fake.in_flight
            assert 2 == len(fake.sent)

    async def test_leaving_early_cancels_in_flight(self, client):
        """Breaking out cancels the requests in flight and leaves no task behind."""
        fake = install(client)
        gen = client.segments.create_many((f"n{i}" for i in range(100)), concurrency=4)
        consumer = asyncio.create_task(anext(gen))
        sends = [await fake.next() for _ in range(4)]
        created(sends[0], 0)
        assert 0 == (await consumer).index
        await gen.aclose()

        assert all(sent.future.cancelled() or sent.future.done() for sent in sends)
        assert 0 == fake.in_flight
        assert {asyncio.current_task()} == {task for task in asyncio.all_tasks() if not task.done()}

    async def test_close_raises_client_closed(self, client):
        """aclose() under a bulk operation ends it with ClientClosedError."""
        fake = install(client)
        results = asyncio.create_task(collect(client.segments.create_many(["a", "b"])))
        await fake.next()
        await fake.next()
        await client.aclose()

        with pytest.raises(ClientClosedError):
            await results


class TestArguments:
    @pytest.mark.parametrize("bad", ["abc", b"abc", 42, None])
    def test_inputs_must_be_iterable_not_a_string(self, client, bad):
        """A str (an iterable of letters) or a non-iterable is a TypeError at the call."""
        with pytest.raises(TypeError, match="iterable"):
            client.segments.create_many(bad)

    @pytest.mark.parametrize("bad", [0, -1, "fast"])
    def test_bad_concurrency(self, client, bad):
        """concurrency below 1 or an unknown word is a ValueError at the call."""
        with pytest.raises(ValueError, match="concurrency"):
            client.segments.delete_many([ID], concurrency=bad)

    async def test_auto_concurrency(self, client):
        """concurrency='auto' works for bulk operations."""
        fake = install(client)
        stop = asyncio.Event()
        responder = asyncio.create_task(answer_all(fake, stop))
        got = await collect(client.segments.create_many(["a", "b"], concurrency="auto"))
        stop.set()
        responder.cancel()

        assert [Segment, Segment] == [type(r.value) for r in got]


class Places:
    """The adaptive limit's gate as the workers see it: ``free`` places beyond those waited
    for, taken by each call and given back when it ends (``answer``)."""

    def __init__(self, free: int) -> None:
        self.free = free
        self.calls: list[asyncio.Future[str]] = []
        self.backing_off = 0  # how many calls to come back off first (backing_off_call)

    def spare(self) -> int:
        return self.free

    async def call(self, item: str) -> str:
        self.free -= 1
        future = asyncio.get_running_loop().create_future()
        self.calls.append(future)
        try:
            return await future
        finally:
            self.free += 1

    async def backing_off_call(self, item: str) -> str:
        """A call that gives its place back and waits out a backoff (its answer: a retry),
        as the client's call loop does after a 429 with ``Retry-After``; then ``call``.
        Only the first ``self.backing_off`` calls do, the others are plain ``call``s."""
        if self.backing_off <= 0:
            return await self.call(item)
        self.backing_off -= 1
        self.free -= 1
        retry = asyncio.get_running_loop().create_future()
        self.calls.append(retry)
        self.free += 1
        backing_off()
        await retry
        return await self.call(item)

    def answer(self, index: int, *, free_after: int | None = None) -> None:
        self.calls[index].set_result(f"done {index}")
        if free_after is not None:
            self.free = free_after - 1  # the place given back when the call returns

    def run(
        self,
        inputs: Iterable[str] | None = None,
        *,
        workers: int = 100,
        backing_off: int = 0,
    ) -> tuple[AsyncGenerator[BulkResult[str, str], None], asyncio.Task[BulkResult[str, str]]]:
        """``bulk_results`` of ``inputs`` (20 names by default) through these places, and a
        task awaiting its first result; ``backing_off``: how many calls first wait out a
        backoff (``backing_off_call``)."""
        names = (f"n{i}" for i in range(20)) if inputs is None else inputs
        self.backing_off = backing_off
        call = self.call if not backing_off else self.backing_off_call
        results = bulk_results(names, call, workers=workers, window=200, spare=self.spare)
        return results, asyncio.create_task(anext(results))


class TestWorkersFollowTheAdaptiveLimit:
    """With ``spare``, there are as many workers as the gate has places, not the pool's
    worth parked at it (each answer would hand its place to another task)."""

    async def test_as_many_workers_as_places(self):
        """Three places: three calls, whatever the most."""
        places = Places(3)
        results, first = places.run()
        await settle()

        assert 3 == len(places.calls)
        await stop(first, results)

    async def test_a_place_more_starts_a_worker_more(self):
        """A call ends and the gate grew by two: the worker goes on, and two more start."""
        places = Places(3)
        results, first = places.run()
        await settle()
        places.answer(0, free_after=3)
        await settle()

        assert 3 + 3 == len(places.calls)  # one each for the three still in flight
        assert "done 0" == (await first).value
        await results.aclose()

    async def test_no_place_ends_the_worker(self):
        """A call ends and no place is free: its worker ends instead of waiting for one."""
        places = Places(3)
        results, first = places.run()
        await settle()
        places.answer(0, free_after=0)
        await settle()

        assert 3 == len(places.calls)
        assert "done 0" == (await first).value
        await results.aclose()

    async def test_the_last_worker_waits_for_a_place(self):
        """One worker, no place free: it goes on (and waits at the gate), the input is not
        abandoned."""
        places = Places(1)
        results, first = places.run(["a", "b"])
        await settle()
        places.answer(0, free_after=0)
        await settle()

        assert 2 == len(places.calls)
        places.answer(1)
        assert ["done 0", "done 1"] == [(await first).value, (await anext(results)).value]
        await results.aclose()

    async def test_never_more_than_workers(self):
        """However many places, at most ``workers`` calls at once."""
        places = Places(50)
        results, first = places.run(workers=4)
        await settle()
        places.answer(0, free_after=50)
        await settle()

        assert 4 + 1 == len(places.calls)
        await stop(first, results)

    async def test_a_call_backing_off_gives_its_place_to_a_new_worker(self):
        """Every call in flight refused and waiting out a ``Retry-After``: workers start for
        the places they gave back, instead of nothing being sent until a backoff ends."""
        places = Places(2)
        results, first = places.run(backing_off=2)
        await settle()

        assert 2 + 2 == len(places.calls)  # the two backing off, and two more in flight
        assert 0 == places.free
        await stop(first, results)

    async def test_no_new_worker_without_a_free_place(self):
        """A call backs off but the gate's places are all taken: no worker starts."""
        places = Places(1)
        places.free = 0  # taken by another operation of the client, once the call is sent
        results, first = places.run(["a", "b", "c"], backing_off=1)
        await settle()

        assert 1 == len(places.calls)  # the first one's backoff only
        await stop(first, results)

    async def test_a_fixed_concurrency_starts_no_worker_on_a_backoff(self):
        """Without ``spare`` (a fixed concurrency) the workers are all there already."""
        places = Places(5)
        places.backing_off = 1
        results = bulk_results(["a", "b", "c"], places.backing_off_call, workers=1, window=2)
        first = asyncio.create_task(anext(results))
        await settle()

        assert 1 == len(places.calls)
        await stop(first, results)

    async def test_auto_sends_while_every_call_waits_out_a_retry_after(self):
        """ "auto", the four requests in flight all refused with ``Retry-After``: the next
        pages are asked for meanwhile (before the fix, nothing until the backoff ended)."""
        async with SegmentsClient(BASE_URL, TOKEN, retry=RetryPolicy()) as client:
            fake = install(client)
            results = client.segments.create_many((f"n{i}" for i in range(100)), concurrency="auto")
            first = asyncio.create_task(anext(results))
            refused = [await fake.next() for _ in range(4)]
            for sent in refused:
                sent.answer(429, {"success": False}, **{"Retry-After": "60"})
            async with asyncio.timeout(5):  # the backoffs last a minute
                after = await fake.next()

            assert after.body not in {sent.body for sent in refused}
            await stop(first, results)

    @staticmethod
    async def held_while_the_first_calls_back_off(client: SegmentsClient, names: int) -> int:
        """``create_many`` of ``names`` with "auto", its four first calls refused with
        ``Retry-After: 0.03`` and the rest answered as they come, the consumer waiting on
        the first result: how many names were sent, once none more is for 0.3 s."""
        fake = install(client)
        results = client.segments.create_many((f"n{i}" for i in range(names)), concurrency="auto")
        first = asyncio.create_task(anext(results))
        for _ in range(4):
            sent = await fake.next()
            sent.answer(429, {"success": False}, **{"Retry-After": "0.03"})
        for number in itertools.count():  # answer every create, until none comes
            try:
                sent = await asyncio.wait_for(fake.next(), 0.3)
            except TimeoutError:
                break
            created(sent, number)
        assert first.done()  # the retries answered: the consumer has its first result
        await stop(first, results)
        return len({sent.body for sent in fake.sent})

    async def test_auto_holds_16_pools_while_calls_wait_out_a_retry_after(self):
        """Unpaced, the window grows from twice the pool (200) to 16 pools, and holds that
        many names while the consumer waits on the first result."""
        async with SegmentsClient(BASE_URL, TOKEN, retry=RetryPolicy()) as client:
            assert 1600 == await self.held_while_the_first_calls_back_off(client, 3000)

    async def test_auto_paced_holds_what_the_pace_sends_while_calls_wait_out_a_retry_after(
        self,
    ):
        """Paced (here by ``rate_limit=10_000``), it grows to what the pace sends in the
        backoff besides the pool: 100 + 300."""
        async with SegmentsClient(BASE_URL, TOKEN, retry=RetryPolicy(), rate_limit=10_000) as c:
            assert 400 == await self.held_while_the_first_calls_back_off(c, 3000)

    async def test_auto_keeps_no_worker_parked(self, client):
        """With "auto", as many tasks as the adaptive limit's places (4 to start with), not
        one per connection of the pool."""
        fake = install(client)
        before = len(asyncio.all_tasks())
        results = client.segments.create_many((f"n{i}" for i in range(1000)), concurrency="auto")
        first = asyncio.create_task(anext(results))
        for _ in range(4):
            await fake.next()
        await settle()

        assert 4 == fake.in_flight
        assert before + 1 + 4 == len(asyncio.all_tasks())  # `first`, and a worker per place
        await stop(first, results)


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def stop(waiting: asyncio.Task[object], results) -> None:
    """Cancel the ``anext`` under way, then close the generator."""
    waiting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiting
    await results.aclose()


class TestBulkResultClasses:
    def test_ok_is_true_exactly_when_there_is_no_error(self):
        """ok is True exactly when there is no error."""
        error = InternalServerError("x", method="POST", url="u", status_code=500)
        assert BulkResult(0, "a", value=None).ok is True
        assert BulkResult(0, "a", error=error).ok is False

    def test_calling_bulk_result_builds_one_of_the_two(self):
        """BulkResult(...) still builds results: a BulkSuccess or a BulkFailure."""
        segment = Segment(id=ID, name="a")
        error = TypeError("x")

        assert BulkSuccess(0, "a", segment) == BulkResult(0, "a", value=segment)
        assert BulkFailure(1, 5, error, True) == BulkResult(1, 5, error=error, outcome_unknown=True)

    @pytest.mark.parametrize(
        "result", [BulkSuccess(0, "a", None), BulkFailure(0, "a", ValueError("x"))]
    )
    def test_both_are_bulk_results(self, result):
        """isinstance(result, BulkResult) holds for both classes, and BulkResult[...] too."""
        assert isinstance(result, BulkResult)
        assert BulkResult[Segment] is BulkResult
        assert BulkResult[Segment, str] is BulkResult

    def test_a_failure_has_no_value_and_a_success_no_error(self):
        """value and error are both there, None where they do not apply."""
        success, failure = BulkSuccess(0, "a", 1), BulkFailure(1, "b", ValueError("x"))

        assert (True, None, False) == (success.ok, success.error, success.outcome_unknown)
        assert (False, None) == (failure.ok, failure.value)

    @pytest.mark.parametrize(
        "kwargs",
        [{"value": 1, "error": ValueError("x")}, {"outcome_unknown": True}],
        ids=["value-and-error", "unknown-without-error"],
    )
    def test_impossible_combinations_are_refused(self, kwargs):
        """A value and an error, or an unknown outcome without an error, is a ValueError."""
        with pytest.raises(ValueError, match="error"):
            BulkResult(0, "a", **kwargs)

    def test_match_tells_them_apart(self):
        """match with the two classes, as pyright narrows it."""

        def describe(result: BulkResult[int, str]) -> str:
            match result:
                case BulkSuccess(index, name, value):
                    return f"{index} {name} {value}"
                case BulkFailure(index=index, error=error):
                    return f"{index} {error}"

        assert "0 a 1" == describe(BulkSuccess(0, "a", 1))
        assert "1 x" == describe(BulkFailure(1, "b", ValueError("x")))

    def test_frozen(self):
        """Results cannot be changed once made."""
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            BulkSuccess(0, "a", 1).value = 2  # type: ignore[misc]


async def test_nothing_is_sent_before_iteration(client):
    """Creating a bulk generator sends nothing; only iterating it does."""
    fake = install(client)
    gen = client.segments.create_many(["a"])
    await asyncio.sleep(0)

    assert [] == fake.sent
    await gen.aclose()
