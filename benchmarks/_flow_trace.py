"""A trace of a fleet worker's flow control, for looking into section h's runs.

``SEGMENTS_TRACE_FLOW=PATH python -m benchmarks --only h ...``: each ``_fleet_worker``
writes ``PATH.<its start page>`` (the last run of a section overwrites the earlier ones:
``4 x auto, fleet`` in the queue and reject modes), one JSON line per event or sample,
``t`` in seconds from the worker's start:

- ``s`` every 20 ms: items seen, the adaptive limit (``lim``, ``L``, ``cap``, ``ceil``,
  ``ep``, ``ss`` slow start, ``ph`` phase, ``rate`` when paced), the fleet's share, the
  gate (capacity, in use, waiting), tasks, CPU seconds, and the answers since the last
  sample with their mean round trip;
- ``refused`` per answer that is not a 200, ``cut`` per decrease (the state before it, the
  fleet's sum of limits heard, settled and at the last refusal, and whether it began a
  pace), ``elsewhere`` per refusal heard from the fleet, ``share`` per
  change of the fleet's share, ``sync`` per exchange with Redis, ``retry`` per backoff.

It wraps private methods of ``_flow`` and ``_fleet`` (a debugging aid, not an API): it is
installed only when the variable is set, and must follow their signatures.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from segments_async import _fleet, _flow

T0 = [time.perf_counter()]
OUT: list[str] = []
RTTS = [0, 0.0]  # answers, and the sum of their round trips, since the last sample


def _t() -> float:
    return round(time.perf_counter() - T0[0], 4)


def emit(kind: str, **fields: Any) -> None:
    OUT.append(json.dumps({"t": _t(), "k": kind, **fields}))


def install() -> None:
    done = _flow.Flow.done

    def traced_done(self: _flow.Flow, ticket: Any, outcome: Any) -> None:
        epoch = self._adaptive._epoch
        rtts = RTTS
        rtts[0] += 1
        rtts[1] += time.monotonic() - ticket.sent
        done(self, ticket, outcome)
        if outcome.failure is not None or outcome.status != 200:
            a = self._adaptive
            emit(
                "refused",
                status=outcome.status,
                lvl=ticket.level,
                tep=ticket.epoch,
                ep0=epoch,
                ep=a._epoch,
                lim=a.limit,
                ceil=a.ceiling,
                share=self._fleet_share,
            )

    _flow.Flow.done = traced_done  # type: ignore[method-assign]

    refused = _flow.AdaptiveLimit._refused

    def traced_refused(self: _flow.AdaptiveLimit, level: int, now: float) -> None:
        before = (self._ceiling, self._limit, self._sustained, self._rate, self._epoch)
        fleet = (self._fleet_sum, self._fleet_total, self._fleet_ceiling)
        refused(self, level, now)
        emit(
            "cut",
            lvl=level,
            before=before,
            ceil=self._ceiling,
            L=self._limit,
            rate=self._rate,
            ep=self._epoch,
            fleet=fleet,
        )

    _flow.AdaptiveLimit._refused = traced_refused  # type: ignore[method-assign]

    elsewhere = _flow.Flow.refused_elsewhere

    def traced_elsewhere(self: _flow.Flow, epoch: int) -> None:
        ep0 = self._adaptive._epoch
        inflight = self._gate.in_use
        elsewhere(self, epoch)
        a = self._adaptive
        emit(
            "elsewhere",
            ep_then=epoch,
            ep0=ep0,
            ep=a._epoch,
            inflight=inflight,
            lim=a.limit,
            ceil=a.ceiling,
        )

    _flow.Flow.refused_elsewhere = traced_elsewhere  # type: ignore[method-assign]

    fleet_share = _flow.Flow.fleet_share

    def traced_share(self: _flow.Flow, share: int | None) -> None:
        before = self._fleet_share
        fleet_share(self, share)
        if before != self._fleet_share:
            emit("share", share=self._fleet_share, lim=self._adaptive.limit)

    _flow.Flow.fleet_share = traced_share  # type: ignore[method-assign]

    sync = _fleet.FleetLimit._sync

    async def traced_sync(self: _fleet.FleetLimit, now: float) -> None:
        await sync(self, now)
        n = self._news
        emit(
            "sync",
            members=n.members,
            quiet=n.quiet,
            counted=n.counted,
            lim=self._flow.adaptive.limit,
        )

    _fleet.FleetLimit._sync = traced_sync  # type: ignore[method-assign]

    class Retries(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            delay = getattr(record, "segments_delay", None)
            if delay is not None:
                emit(
                    "retry", delay=round(delay, 3), status=getattr(record, "segments_status", None)
                )

    logger = logging.getLogger("segments_async")
    logger.addHandler(Retries())
    logger.setLevel(logging.WARNING)


async def sample(client: Any, seen: Any, every: float = 0.02) -> None:
    flow = client._shared.flow
    while True:
        a = flow._adaptive
        g = flow._gate
        n, total = RTTS
        RTTS[0], RTTS[1] = 0, 0.0
        emit(
            "s",
            seen=seen(),
            lim=a.limit,
            L=round(a._limit, 2),
            cap=round(a._cap, 2),
            ceil=a.ceiling,
            ep=a._epoch,
            ss=a._slow_start,
            ph=a._phase,
            share=flow._fleet_share,
            gcap=g.capacity,
            inuse=g.in_use,
            wait=g.waiting,
            probe_at=round(a._probe_at, 3),
            cpu=round(time.process_time(), 4),
            tasks=len(asyncio.all_tasks()),
            answers=n,
            rtt=round(total / n, 5) if n else None,
            srtt=a._rtt and round(a._rtt, 5),
            rate=a._rate and round(a._rate, 2),
        )
        await asyncio.sleep(every)


def write(path: str) -> None:
    with open(path, "w") as f:
        f.write("\n".join(OUT) + "\n")
