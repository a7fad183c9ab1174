"""Reliability over real sockets against the fake server: soak under faults, an outage,
cancellation mid-iteration, a 204 with a body, and idempotency under lost answers."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import time

import attrs
import pytest

from segments_async import (
    APIConnectionError,
    InternalServerError,
    RetryPolicy,
    Segment,
    SegmentPage,
    SegmentsClient,
    SegmentsError,
)
from segments_async.testing import FakeSegmentsServer, Fault

from ..leaks import acquired_connections, client_tasks, settle, unclosed_warnings_after_gc

#: Retries that wait milliseconds at most.
TINY_RETRY = RetryPolicy(max_retries=4, backoff_initial=0.001, backoff_max=0.005)

#: (fault, method or None, probability): about 15% of requests are faulted in all.
SOAK_FAULTS: list[tuple[Fault, str | None, float]] = [
    (Fault.status(429, retry_after=0), None, 0.012),
    (Fault.status(500), None, 0.018),
    (Fault.status(502), None, 0.012),
    (Fault.status(503, retry_after=0), None, 0.018),
    (Fault.status(503), None, 0.006),
    (Fault.status(504), None, 0.012),
    (Fault.html_502(), None, 0.012),
    (Fault.reset_before(), None, 0.012),
    (Fault.reset_before(rst=True), None, 0.006),
    (Fault.reset_after(), None, 0.018),
    (Fault.truncated_body(), None, 0.018),
    (Fault.latency(0.002), None, 0.012),
    (Fault.non_json_body(), "GET", 0.020),
]
SOAK_OPS = 3000
SOAK_WORKERS = 30


def make_client(server: FakeSegmentsServer, **kwargs: object) -> SegmentsClient:
    """A client of the fake server with tiny backoff (unless told otherwise)."""
    kwargs.setdefault("retry", TINY_RETRY)
    return SegmentsClient(server.base_url, server.token, **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- soak


@attrs.define
class SoakLedger:
    """What the client was told: every acknowledged write, and every unknown outcome."""

    #: create name -> the id acknowledged for it, or None if the create raised.
    creates: dict[str, str | None] = attrs.field(factory=dict)
    #: live acknowledged id -> the names it may have (the last acknowledged one, plus any
    #: update that raised since and may have been applied).
    live: dict[str, set[str]] = attrs.field(factory=dict)
    deleted: set[str] = attrs.field(factory=set)
    #: id -> possible names, for deletes that raised (it may or may not be gone).
    maybe_deleted: dict[str, set[str]] = attrs.field(factory=dict)
    outcomes: collections.Counter[str] = attrs.field(factory=collections.Counter)
    unexpected: list[BaseException] = attrs.field(factory=list)


async def soak_worker(
    client: SegmentsClient, ledger: SoakLedger, worker: int, ops: int, rng: random.Random
) -> None:
    """Run ``ops`` mixed operations; each segment is only touched by the worker owning it."""
    own: list[str] = []
    for n in range(ops):
        roll = rng.random()
        if roll < 0.30 or not own:
            op = "create"
        elif roll < 0.55:
            op = "update"
        elif roll < 0.70:
            op = "delete"
        elif roll < 0.97:
            op = "list"
        else:
            op = "iterate"
        try:
            if op == "create":
                name = f"soak-w{worker}-c{n}"
                ledger.creates[name] = None
                segment = await client.segments.create(name)
                assert isinstance(segment, Segment)
                assert name == segment.name
                ledger.creates[name] = segment.id
                ledger.live[segment.id] = {name}
                own.append(segment.id)
            elif op == "update":
                segment_id = rng.choice(own)
                name = f"soak-w{worker}-u{n}"
                ledger.live[segment_id].add(name)  # applied or not, if this raises
                segment = await client.segments.update(segment_id, name)
                assert Segment(segment_id, name) == segment
                ledger.live[segment_id] = {name}
            elif op == "delete":
                segment_id = own.pop(rng.randrange(len(own)))
                names = ledger.live.pop(segment_id)
                ledger.maybe_deleted[segment_id] = names
                assert await client.segments.delete(segment_id) is None
                del ledger.maybe_deleted[segment_id]
                ledger.deleted.add(segment_id)
            elif op == "list":
                page = await client.segments.list(
                    page=rng.randint(1, 4), per_page=rng.choice([10, 20, 50, 100])
                )
                assert isinstance(page, SegmentPage)
            else:
                count = 0
                async for segment in client.segments.iterate(per_page=100, concurrency=4):
                    assert isinstance(segment, Segment)
                    count += 1
                assert count > 0
        except SegmentsError as exc:
            ledger.outcomes[f"{op}: {type(exc).__name__}"] += 1
        except Exception as exc:  # anything else escaping the library is a bug
            ledger.unexpected.append(exc)
            ledger.outcomes[f"{op}: UNEXPECTED {type(exc).__name__}"] += 1
        else:
            ledger.outcomes[f"{op}: ok"] += 1


async def test_soak_mixed_operations_under_faults():
    """Thousands of concurrent ops under ~15% faults: no lost or duplicated write, no leak."""
    async with FakeSegmentsServer(seed=11) as server:
        server.add_segments(300)
        for fault, method, probability in SOAK_FAULTS:
            server.inject(fault, method=method, probability=probability)
        ledger = SoakLedger()
        client = make_client(server, max_connections=16)
        started = time.perf_counter()
        async with client:
            before = client_tasks()
            per_worker = SOAK_OPS // SOAK_WORKERS
            await asyncio.gather(
                *(
                    soak_worker(client, ledger, w, per_worker, random.Random(f"soak:{w}"))
                    for w in range(SOAK_WORKERS)
                )
            )
            await settle()
            leaked = client_tasks() - before
            held = acquired_connections(client)
            tokens_left = client._shared.budget.tokens
        elapsed = time.perf_counter() - started
        requests = server.requests
        state = server.segments()

    faulted = sum(1 for r in requests if r.fault is not None)
    total_ok = sum(n for key, n in ledger.outcomes.items() if key.endswith(": ok"))
    report = (
        f"{SOAK_OPS} ops in {elapsed:.2f}s, {total_ok} ok, {len(requests)} requests "
        f"({faulted} faulted), budget left {tokens_left}: {sorted(ledger.outcomes.items())}"
    )
    print(report)  # shown with -s or on failure, for the figures

    assert [] == ledger.unexpected, report
    assert set() == leaked
    assert 0 == held
    assert [] == unclosed_warnings_after_gc()
    assert SOAK_OPS == sum(ledger.outcomes.values())
    assert total_ok > SOAK_OPS // 2, report
    assert 0.10 < faulted / len(requests) < 0.20, report

    # Every acknowledged create or update is there with its last acknowledged name (or
    # the name of a later update that raised and may have been applied).
    for segment_id, names in ledger.live.items():
        assert segment_id in state, f"acknowledged segment {segment_id} is missing"
        assert state[segment_id] in names
    # Every acknowledged delete is gone.
    assert set() == ledger.deleted & state.keys()
    # Every soak segment on the server is accounted for, and no create happened twice.
    unacknowledged = collections.Counter[str]()
    for segment_id, name in state.items():
        if not name.startswith("soak-"):
            continue
        if segment_id in ledger.live:
            continue
        if segment_id in ledger.maybe_deleted:
            assert name in ledger.maybe_deleted[segment_id]
            continue
        assert name in ledger.creates, f"{segment_id} {name!r} was never created by us"
        assert ledger.creates[name] is None, (
            f"{name!r} was created twice: acknowledged as {ledger.creates[name]}, "
            f"and again as {segment_id}"
        )
        unacknowledged[name] += 1
    assert [] == [name for name, count in unacknowledged.items() if count > 1]
    assert any(name.endswith(": ok") and name.startswith("iterate") for name in ledger.outcomes)


# --------------------------------------------------------------------------- outage


async def test_outage_spends_the_retry_budget_then_fails_fast_and_recovers():
    """Under a total 503 outage retries stop after the budget; successes refill it."""
    async with FakeSegmentsServer(seed=5) as server, make_client(server) as client:
        server.add_segments(3)
        outage = server.inject(Fault.status(503), probability=1.0)

        async def call() -> None:
            with pytest.raises(InternalServerError):
                await client.segments.list()

        # A crowd first, 10 at a time ...
        for _ in range(20):
            await asyncio.gather(*(call() for _ in range(10)))
        assert 0 == client._shared.budget.tokens
        # ... then, the budget spent, every call is exactly one request.
        for _ in range(100):
            before = len(server.requests)
            await call()
            assert 1 == len(server.requests) - before
        calls = 300
        budget_retries = 500 // 5
        assert calls < len(server.requests) <= calls + budget_retries + 5

        outage.cancel()
        # Still spent: a lone 503 is not retried.
        server.inject(Fault.status(503), times=1)
        before = len(server.requests)
        with pytest.raises(InternalServerError):
            await client.segments.list()
        assert 1 == len(server.requests) - before

        # Each clean success puts a token back; five pay for one retry.
        for _ in range(5):
            assert 3 == (await client.segments.list()).total
        server.inject(Fault.status(503), times=1)
        before = len(server.requests)
        assert 3 == (await client.segments.list()).total
        assert 2 == len(server.requests) - before


# --------------------------------------------------------------------------- cancellation


@pytest.fixture
async def big_server():
    """5,000 segments, every GET slowed down a little."""
    async with FakeSegmentsServer(seed=2) as server:
        server.add_segments(5000)
        server.inject(Fault.latency(0.003), method="GET", probability=1.0)
        yield server


async def assert_nothing_left(client: SegmentsClient, server: FakeSegmentsServer, before) -> None:
    """No client task left, no connection held, nothing sent after, and the pool works."""
    await settle()
    assert set() == client_tasks() - before
    assert 0 == acquired_connections(client)
    sent = len(server.requests)
    await asyncio.sleep(0.02)
    assert sent == len(server.requests)
    assert 5000 == (await client.segments.list(per_page=100)).total
    assert 5000 == len([s async for s in client.segments.iterate(per_page=100, concurrency=8)])


@pytest.mark.parametrize("where", ["in-anext", "in-loop-body"])
async def test_cancelling_the_consumer_mid_iterate(big_server, where):
    """Cancelling the consuming task mid-iterate(concurrency=8) leaks nothing."""
    async with make_client(big_server) as client:
        before = client_tasks()
        seen = 0
        halfway = asyncio.Event()

        async def consume() -> None:
            nonlocal seen
            async for _ in client.segments.iterate(per_page=100, concurrency=8):
                seen += 1
                if seen == 1500:
                    halfway.set()
                    if where == "in-loop-body":
                        await asyncio.sleep(10)  # cancelled here, the iterator suspended

        task = asyncio.create_task(consume())
        await asyncio.wait_for(halfway.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert 1500 <= seen < 5000
        assert len(big_server.requests) < 50
        await assert_nothing_left(client, big_server, before)


async def test_timeout_around_iterate_cancels_it(big_server):
    """An asyncio.timeout around the whole iteration cancels it cleanly."""
    async with make_client(big_server) as client:
        before = client_tasks()
        seen = 0
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(None) as deadline:
                async for _ in client.segments.iterate(per_page=100, concurrency=8):
                    seen += 1
                    if seen == 1200:  # expire while pages are in flight
                        deadline.reschedule(asyncio.get_running_loop().time() + 0.001)
        assert 1200 <= seen < 5000
        await assert_nothing_left(client, big_server, before)


@pytest.mark.parametrize("closing", [True, False], ids=["aclosing", "plain-break"])
async def test_breaking_out_of_iterate_early(big_server, closing):
    """Leaving `async for` early (with or without aclosing) cancels the prefetch."""
    async with make_client(big_server) as client:
        before = client_tasks()
        found = None
        iterator = client.segments.iterate(per_page=100, concurrency=8)
        async with contextlib.AsyncExitStack() as stack:
            if closing:
                iterator = await stack.enter_async_context(contextlib.aclosing(iterator))
            async for segment in iterator:
                if segment.name.endswith(" 777"):
                    found = segment
                    break
        del iterator
        assert found is not None
        assert len(big_server.requests) <= 8 + 8 + 1
        await assert_nothing_left(client, big_server, before)


# --------------------------------------------------------------------------- idempotency


async def test_delete_with_lost_answers_then_404_is_success():
    """DELETE reset twice after acting (aiohttp re-sends once) then 404: deleted, no error."""
    async with FakeSegmentsServer(seed=6) as server, make_client(server) as client:
        segment = await client.segments.create("EMEA")
        server.inject(Fault.reset_after(), method="DELETE", times=2)
        assert await client.segments.delete(segment.id) is None
        deletes = [r for r in server.requests if r.method == "DELETE"]
        assert 3 == len(deletes)
        assert segment.id not in server.segments()
        assert () == (await client.segments.list()).items


async def test_post_with_a_lost_answer_is_not_resent():
    """A POST whose answer was lost raises APIConnectionError and is sent exactly once."""
    async with FakeSegmentsServer(seed=6) as server, make_client(server) as client:
        server.inject(Fault.reset_after(), method="POST", times=3)
        with pytest.raises(APIConnectionError):
            await client.segments.create("only once")
        assert ["POST"] == [r.method for r in server.requests]
        assert ["only once"] == list(server.segments().values())


async def test_put_with_lost_answers_succeeds_with_the_final_name():
    """PUT reset three times after acting is retried and returns the final name."""
    async with FakeSegmentsServer(seed=6) as server, make_client(server) as client:
        segment = await client.segments.create("before")
        server.inject(Fault.reset_after(), method="PUT", times=3)
        updated = await client.segments.update(segment.id, "after")
        assert Segment(segment.id, "after") == updated
        assert {segment.id: "after"} == server.segments()
        assert 4 == len([r for r in server.requests if r.method == "PUT"])
