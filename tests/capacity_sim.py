"""A discrete-event simulation of ``"auto"`` (or fixed) clients against simulated servers.

Pure and deterministic (simulated time, a seeded RNG, no loop, no sockets), so that how the
adaptive limit behaves can be asserted in a unit test. Server kinds (``Server.kind``):

- ``queue``: at most ``capacity`` requests in service for ``service`` seconds, the rest
  wait in one FIFO queue;
- ``reject``: the same, but the rest are answered 429 at once;
- ``quota``: a token bucket of ``rate`` requests a second (burst ``rate / 10``), the rest
  answered 429; admitted requests take ``service`` each, in any number;
- ``batch``: one single-threaded event loop doing the work in Python: each wakeup takes
  every request waiting, costs ``batch_cost`` plus ``item_cost`` per request, and answers
  them one after another; with ``awaited`` each request also awaits that long (a database
  call) between two halves of its work. Answers per second grow with load up to a knee
  (the per-wakeup cost is shared), while latency grows all along;
- ``slope``: answers per second grow as the load to the power ``elasticity`` all along,
  with no knee (a request takes ``service`` times the requests in service, itself
  included, to the power ``1 - elasticity``): a machine whose every layer batches a
  little more under load (the benchmark's Python app awaiting 3 ms, on 2 cores shared with
  its client, where a fixed 64 is best and each doubling from 8 brings about a fifth
  more);
- ``delay``: no capacity limit: each request takes a latency drawn from ``latency``
  (``("uniform", low, high)`` or ``("lognormal", median, sigma)``).

A refused request is retried ``retry_after`` seconds later. Workloads (``Client.workload``):
``iterate`` fetches the first page alone, then keeps requests in flight within a window
ahead of an in-order consumer, as ``iter_pages`` does: ``fixed`` for a fixed concurrency;
for ``"auto"``, ``max_connections``, and twice that from the first time a request finds
the window full while a quarter of it is done and waits behind a missing result
(head-of-line blocking). ``create`` is one request per input, with as many workers as the
pool (``"auto"``) or ``fixed``, and results in order within twice that, as the bulk
operations do. From a refusal on, an ``"auto"`` client of either holds what it may send in
a ``retry_after`` (at its pace, or unpaced 16 pools) besides the pool (``auto_window``).
Several clients may share one server, each with its own adaptive limit (processes without
coordination).

``client_cost`` is the client's own work per request, on its one event loop, run as
asyncio runs it: each turn of the loop (``loop_cost`` of its own) runs the steps of the
tasks woken by the turn before, then reads the answers that had arrived when it began. An
answer is read in one turn and handled ``hops`` turns later (a task wakes the next one:
the response, the call, the worker), each part costing ``client_cost / (hops + 1)``; the
last one sends the next request. So a round trip grows with all the loop has to do
meanwhile, requests sent after it included (a request meets the load of its whole round
trip, not only the load when it was sent), and with few in flight the turns are many and
short: a client-bound app answers more per second up to a knee. ``stalls`` makes that
CPU noisy (other processes take it now and then).
"""

from __future__ import annotations

import collections
import heapq
import itertools
import math
import random
from collections.abc import Sequence
from typing import Any

import attrs

from segments_async._flow import MIN_RATE, AdaptiveLimit, Ticket, auto_window
from segments_async._sharing import SHARE_EVERY, PaceReport, capped_start, pace_report


@attrs.frozen
class Server:
    kind: str
    capacity: int = 16
    service: float = 0.010
    rate: float = 200.0
    batch_cost: float = 0.0
    item_cost: float = 0.0
    awaited: float = 0.0
    latency: tuple[str, float, float] = ("uniform", 0.010, 0.050)
    elasticity: float = 0.25
    retry_after: float = 1.0


@attrs.frozen
class Client:
    requests: int
    workload: str = "iterate"
    fixed: int | None = None
    max_connections: int = 100
    overhead: float = 0.0025  # the network and the client, per round trip, in parallel
    client_cost: float = 0.0  # the client's own work per request, on its event loop
    loop_cost: float = 0.0  # ...and per turn of that loop (waiting for I/O, the turn's own)
    hops: int = 1  # turns of the loop an answer takes after the one that reads it
    # A noisy machine: other processes take the client's CPU this many times a second
    # (at random), for this long each time.
    stalls: tuple[float, float] = (0.0, 0.0)


@attrs.frozen
class Run:
    seconds: float
    requests: int
    rejected: int
    max_outstanding: int
    limit: int
    start_peak: int = 0  # the highest limit slow start reached ("auto")

    @property
    def rejected_share(self) -> float:
        return self.rejected / self.requests


class _ClientState:
    def __init__(self, index: int, spec: Client) -> None:
        self.index = index
        self.spec = spec
        self.adaptive = AdaptiveLimit(spec.max_connections) if spec.fixed is None else None
        auto = spec.fixed is None
        size = spec.max_connections if auto else spec.fixed
        assert size is not None
        self.wide = 0  # what an "auto" iteration's window widens to, until it has
        if spec.workload == "iterate":
            self.workers = spec.max_connections
            self.window = size
            if auto:  # the pool's worth, and twice that on head-of-line blocking
                self.wide = 2 * size
        else:
            self.workers = size
            self.window = 2 * size
        self.in_flight = 0
        self.next = 0
        self.yielded = 0
        self.requests = 0
        self.rejected = 0
        self.done: set[int] = set()
        self.retry: collections.deque[tuple[float, int]] = collections.deque()
        self.inbox: list[Any] = []  # answers arrived, for the loop's next iteration
        self.steps: list[Any] = []  # tasks woken, likewise
        self.looping = False
        self.next_stall = math.inf
        self.finished: float | None = None
        self.start_peak = 0
        self.epoch = 0  # in a fleet: the limit's epoch when it last heard the others
        self.share: int | None = None  # in a fleet: an even share of the members' limits

    def limit(self) -> int:
        if self.adaptive is not None:
            share = self.share
            return min(self.workers, self.adaptive.limit if share is None else share)
        assert self.spec.fixed is not None
        return min(self.workers, self.spec.fixed)

    def next_item(self, now: float) -> int | None:
        if self.retry and self.retry[0][0] <= now:
            return self.retry.popleft()[1]
        first_pending = self.spec.workload == "iterate" and self.yielded == 0 and self.next == 1
        if first_pending or self.next >= self.spec.requests:
            return None
        if self.next >= self.yielded + self.window:
            # Called with a place free at the limit: widen if a quarter of the window is
            # done and held behind the missing result the consumer waits for.
            held = len(self.done)
            if not self.wide or self.yielded in self.done or 4 * held < self.window:
                return None
            self.window, self.wide = self.wide, 0
        self.next += 1
        return self.next - 1


def simulate(
    server: Server,
    clients: Sequence[Client],
    *,
    seed: int = 0,
    fleet: str | None = None,
    hear_within: float = 0.0,
) -> list[Run]:
    """Run every client to its end against one ``server``; what each took.

    ``fleet``: None, the clients know nothing of each other; ``"local"``, they are a
    fleet whose news reaches every member at once (``_fleet.FleetLimit`` without Redis's
    delays): a refusal that lowers one member's limit lowers the unpaced others', a member
    that begins to pace takes the other paced members' mean pace, and when a member ends
    the others take over its share (``AdaptiveLimit.rescale``); each paces at its own
    rate (the fleet before its shared pace). ``"shared"``: the same, but the paced members
    start their requests through one GCRA at the fleet's pace (``_fleet.FleetLimit``: one
    sum that each member's learning moves, each taking an even share), each within its cap
    of one and a half shares, instead of each at its own. ``hear_within`` (a fleet's): the
    others hear of a refusal this long after it lowered a member's limit (an exchange with
    Redis each way, ``_sharing.HEAR_WITHIN`` at most), not at once; and every
    ``_sharing.SHARE_EVERY`` each member exchanges: it keeps in flight an even share of the
    members' limits once no refusal was heard for two exchanges (``Flow.fleet_share``), its
    own limit until then, and hears their sum (``AdaptiveLimit.fleet_heard``).
    """
    rng = random.Random(seed)
    events: list[tuple[float, int, str, Any]] = []
    order = itertools.count()
    states = [_ClientState(i, spec) for i, spec in enumerate(clients)]
    if fleet is not None:
        for state in states:
            if state.adaptive is not None:
                state.adaptive._member = True  # as Flow.share makes it
    busy = 0
    queue: collections.deque[Any] = collections.deque()
    cpu_jobs: collections.deque[tuple[Any, str]] = collections.deque()
    cpu = {"busy": False}
    tokens_max = max(1.0, server.rate / 10)
    bucket = {"tokens": tokens_max, "at": 0.0}
    stats = collections.Counter[str]()

    def push(when: float, kind: str, data: Any) -> None:
        heapq.heappush(events, (when, next(order), kind, data))

    def answer(now: float, request: Any, ok: bool) -> None:
        push(now + clients[request[0]].overhead / 2, "answer", (request, ok))

    def outstanding() -> None:
        held = busy + len(queue) + len(cpu_jobs)
        stats["max_out"] = max(stats["max_out"], held)

    def cpu_wake(now: float) -> None:
        if cpu["busy"] or not cpu_jobs:
            return
        cpu["busy"] = True
        batch = list(cpu_jobs)
        cpu_jobs.clear()
        at = now + server.batch_cost
        share = server.item_cost / 2 if server.awaited else server.item_cost
        for request, stage in batch:
            at += share
            if stage == "in" and server.awaited:
                push(at + server.awaited, "awaited", request)
            else:
                answer(at, request, True)
        push(at, "cpu_free", None)

    def arrive(now: float, request: Any) -> None:
        nonlocal busy
        kind = server.kind
        if kind == "quota":
            bucket["tokens"] = min(
                tokens_max, bucket["tokens"] + (now - bucket["at"]) * server.rate
            )
            bucket["at"] = now
            if bucket["tokens"] < 1:
                refuse(now, request)
                return
            bucket["tokens"] -= 1
            push(now + server.service, "served", request)
            return
        if kind == "delay":
            shape, a, b = server.latency
            if shape == "uniform":
                latency = rng.uniform(a, b)
            else:
                latency = a * math.exp(b * rng.gauss(0.0, 1.0))
            answer(now + latency, request, True)
            return
        if kind == "slope":
            busy += 1
            push(now + server.service * busy ** (1 - server.elasticity), "served", request)
            outstanding()
            return
        if kind == "batch":
            cpu_jobs.append((request, "in"))
            outstanding()
            cpu_wake(now)
            return
        if busy < server.capacity:
            busy += 1
            push(now + server.service, "served", request)
        elif kind == "queue":
            queue.append(request)
        else:
            refuse(now, request)
            return
        outstanding()

    def refuse(now: float, request: Any) -> None:
        states[request[0]].rejected += 1
        answer(now, request, False)

    shared = {"tat": 0.0, "told": -math.inf, "pace": 0.0}

    def members() -> list[AdaptiveLimit]:
        return [s.adaptive for s in states if s.adaptive is not None and s.finished is None]

    taken: dict[int, float] = {}  # each paced member's share, as it took it

    def share_paces() -> float:
        """The fleet's pace, as Redis keeps it (``_fleet.REFUSALS_SCRIPT``), told of what
        each paced member learnt since it took its share; each takes its share again."""
        paced = [member for member in members() if member.rate is not None]
        for gone in set(taken) - {id(member) for member in paced}:
            del taken[gone]
        pace = shared.get("pace", 0.0)
        for member in paced:
            told, how = pace_report(
                member.rate, taken.get(id(member)), member.rate_measured, member.refused_rate
            )
            pace = max(pace, told) if how == PaceReport.JOIN_LARGER else pace + told
        pace = shared["pace"] = max(MIN_RATE, pace)
        for member in paced:
            member.share_pace(pace / len(paced))
            taken[id(member)] = member.rate or 0.0
        return pace

    def fleet_pace(adaptive: AdaptiveLimit, now: float) -> float:
        """The wait for the next start time of the fleet's shared pace (a GCRA at the
        fleet's pace), within this member's cap (``_sharing.capped_start``)."""
        start = now + adaptive.hold(now)
        pace = share_paces()
        slot = max(shared["tat"], start)
        shared["tat"] = slot + 1.0 / pace
        key = id(adaptive)
        paced = sum(member.rate is not None for member in members())
        when, earliest[key] = capped_start(slot, earliest.get(key, 0.0), pace / paced)
        return when - now

    earliest: dict[int, float] = {}

    def send(state: _ClientState, now: float) -> None:
        while state.in_flight < state.limit():
            item = state.next_item(now)
            if item is None:
                return
            state.in_flight += 1
            state.requests += 1
            ticket: Ticket | None = None
            delay = 0.0
            if state.adaptive is not None:
                ticket = state.adaptive.ticket(state.in_flight)
                if fleet == "shared" and state.adaptive.rate is not None:
                    delay = fleet_pace(state.adaptive, now)
                else:
                    delay = state.adaptive.reserve(now)
                ticket.sent = now + delay
            request = (state.index, item, now + delay, ticket)
            push(now + delay + state.spec.overhead / 2, "arrive", request)

    def handle(now: float, request: Any, ok: bool) -> None:
        index, item, sent, ticket = request
        state = states[index]
        state.in_flight -= 1
        adaptive = state.adaptive
        if adaptive is not None:
            rtt = now - sent if ok else None
            epoch, unpaced = adaptive.epoch, adaptive.rate is None
            adaptive.record(ticket, rtt=rtt, refused=not ok, now=now)
            if adaptive.starting:
                state.start_peak = max(state.start_peak, adaptive.limit)
            if fleet is not None and adaptive.epoch != epoch:
                tell(state, sent, now, began_pacing=unpaced and adaptive.rate is not None)
        if ok:
            state.done.add(item)
            while state.yielded in state.done:
                state.done.discard(state.yielded)
                state.yielded += 1
            if state.yielded == state.spec.requests:
                before = len(members())
                state.finished = now
                if fleet is not None and members():
                    for member in members():
                        member.rescale(before / len(members()))
                        if id(member) in taken:  # the fleet's pace stays: no news
                            taken[id(member)] = member.rate or 0.0
        else:
            state.retry.append((now + server.retry_after, item))
            push(now + server.retry_after, "wake", index)
            if adaptive is not None:
                # The window holds what the client may send in the backoff besides the
                # pool (Flow.backing_off): at its pace, or, unpaced, 16 pools.
                pool = state.spec.max_connections
                held = auto_window(pool, adaptive.rate, server.retry_after)
                if held > 2 * pool and held > state.window:
                    state.window, state.wide = held, 0
        send(state, now)

    def tell(state: _ClientState, sent: float, now: float, *, began_pacing: bool) -> None:
        """A refusal lowered ``state``'s limit: the fleet hears of it at once."""
        adaptive = state.adaptive
        assert adaptive is not None
        others = [s for s in states if s is not state and s.adaptive is not None]
        others = [s for s in others if s.finished is None]
        if began_pacing and fleet == "local":
            paces = [s.adaptive.rate for s in others if s.adaptive and s.adaptive.rate]
            if paces:
                adaptive.share_pace(sum(paces) / len(paces))
        if sent <= shared["told"] + 0.1:  # _sharing.HEAR_WITHIN: the same overload
            return
        shared["told"] = now
        # Each hears it as news unless its own limit was lowered since it last heard.
        heard = [(other, other.epoch if hear_within else other.adaptive.epoch) for other in others]
        if hear_within:
            state.share = None  # its own, lowered, until the fleet's have settled
            push(now + hear_within, "news", heard)
        else:
            news(heard, now)

    def news(heard: list[tuple[_ClientState, int]], now: float) -> None:
        """Another member's refusal, heard (``Flow.refused_elsewhere``)."""
        for other, epoch in heard:
            limit = other.adaptive
            assert limit is not None
            if other.finished is None and limit.rate is None:
                level = max(1, other.in_flight)
                limit.record(Ticket(epoch, level, -1, now), rtt=None, refused=True, now=now)
                other.share = None

    def exchange(now: float) -> None:
        """Every member's exchange with Redis: an even share of the members' limits, and
        their sum, once settled (``_sharing.RefusalNews.share``)."""
        live = [s for s in states if s.adaptive is not None and s.finished is None]
        if not live:
            return
        # (RefusalNews: two calm exchanges after the first, or after news.)
        settled = now - max(shared["told"], 0.0) >= 2 * SHARE_EVERY + hear_within
        total = sum(s.adaptive.limit for s in live if s.adaptive is not None)
        for member in live:
            assert member.adaptive is not None
            member.epoch = member.adaptive.epoch
            member.share = max(1, round(total / len(live))) if settled else None
            member.adaptive.fleet_heard(total, len(live), settled=settled)
            send(member, now)
        push(now + SHARE_EVERY, "exchange", None)

    def stall_until(state: _ClientState, start: float) -> float:
        """When the client's CPU can start work that is ready at ``start``."""
        frequency, duration = state.spec.stalls
        while state.next_stall <= start:
            start = max(start, state.next_stall + duration)
            state.next_stall += duration + rng.expovariate(frequency)
        return start

    def iteration(state: _ClientState, now: float) -> None:
        """One turn of the client's event loop: the tasks woken by the last one, then the
        answers that arrived before this one began (they wake their tasks for the next)."""
        if not (state.steps or state.inbox):
            state.looping = False  # idle until an answer comes
            return
        hops = state.spec.hops
        share = state.spec.client_cost / (hops + 1)
        steps, state.steps = state.steps, []
        reads, state.inbox = state.inbox, []
        now = stall_until(state, now) + state.spec.loop_cost
        for left, request, ok in steps:
            now = stall_until(state, now) + share
            if left > 1:
                state.steps.append((left - 1, request, ok))
            else:
                handle(now, request, ok)  # the last also builds and sends the next request
        for request, ok in reads:
            now = stall_until(state, now) + share
            state.steps.append((hops, request, ok))
        push(now, "iteration", state)

    if fleet is not None and hear_within:
        push(0.0, "exchange", None)  # (at the first request, as ``FleetLimit.wake``)
    for state in states:
        if state.spec.stalls[0]:
            state.next_stall = rng.expovariate(state.spec.stalls[0])
        send(state, 0.0)
    now = 0.0
    while events and any(state.finished is None for state in states):
        now, _, kind, data = heapq.heappop(events)
        if kind == "arrive":
            arrive(now, data)
        elif kind == "served":
            if server.kind != "quota":
                busy -= 1
                if queue and server.kind != "slope":
                    busy += 1
                    push(now + server.service, "served", queue.popleft())
            answer(now, data, True)
        elif kind == "awaited":
            cpu_jobs.append((data, "out"))
            cpu_wake(now)
        elif kind == "cpu_free":
            cpu["busy"] = False
            cpu_wake(now)
        elif kind == "answer":
            request, ok = data
            state = states[request[0]]
            if state.spec.client_cost or state.spec.stalls[0]:
                state.inbox.append(data)
                if not state.looping:
                    state.looping = True
                    push(now, "iteration", state)
            else:
                handle(now, request, ok)
        elif kind == "iteration":
            iteration(data, now)
        elif kind == "news":
            news(data, now)
        elif kind == "exchange":
            exchange(now)
        else:
            send(states[data], now)
    return [
        Run(
            state.finished if state.finished is not None else now,
            state.requests,
            state.rejected,
            stats["max_out"],
            state.limit(),
            state.start_peak,
        )
        for state in states
    ]


def run(server: Server, client: Client, *, seed: int = 0) -> Run:
    """One client alone against ``server``."""
    return simulate(server, [client], seed=seed)[0]


def best_fixed(
    server: Server, client: Client, choices: Sequence[int] = (4, 8, 16, 32, 64), *, seed: int = 0
) -> float:
    """The fastest time of a fixed concurrency among ``choices``."""
    return min(run(server, attrs.evolve(client, fixed=c), seed=seed).seconds for c in choices)
