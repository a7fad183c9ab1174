"""``python -m benchmarks``: run the sections, print the table (or ``--json``).

Exit status is 1 only when a contender crashed (a bug to look at); missing optional
contenders are skipped with a message, and targets are informational.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import attrs

from . import _adaptive, _bulk, _cli_export, _crud, _decode, _fleet, _pagination, _report, _rss
from ._common import Skipped, cpu_plan, cpu_ticks, load_ours, machine_facts, stolen_share
from ._peer import Peer, generated_peer
from ._profile import profile_ours
from ._server import serve

SECTIONS = ("a", "b", "c", "d", "e", "f", "g", "h")


@attrs.frozen
class Config:
    smoke: bool
    rounds: int
    a_total: int
    b_loops: int
    c_sizes: tuple[int, int]
    c_repeats: int
    d_calls: int
    e_plan: _adaptive.Plan
    f_count: int
    f_rss_sizes: tuple[int, int]
    f_rss_repeats: int
    g_total: int
    h_plan: _fleet.Plan

    @classmethod
    def make(
        cls,
        smoke: bool,
        rounds: int | None,
        e_rounds: int | None = None,
        h_rounds: int | None = None,
        h_parts: tuple[str, ...] = _fleet.PARTS,
    ) -> Config:
        if smoke:
            # A quota of 500/s keeps the smoke run short; R/10 = 50 still leaves most of the
            # 100 pages to the bucket's rate, so the quota is really met.
            e_plan = _adaptive.Plan(
                capacity=16,
                service=0.005,
                pages={"queue": 60, "reject": 60, "quota": 100},
                rate=500.0,
                rounds=e_rounds or 1,
                timeout=15.0,
                kinds={
                    kind: {"create_many": 200, "iterate": 20}
                    for kind in ("app", "app-3ms", "uniform", "lognormal")
                },
                gate={"create_many": 500, "iterate": 50},
                gate_rounds=1,
            )
            h_plan = _fleet.Plan(
                capacity=16,
                service=0.005,
                pages={"queue": 40, "reject": 40, "quota": 120},
                rate=200.0,
                rounds=h_rounds or 1,
                timeout=15.0,
                overhead_items=2_000,
                overhead_rounds=2,
                parts=h_parts,
            )
            return cls(
                True,
                rounds or 2,
                1_000,
                200,
                (300, 3_000),
                1,
                20,
                e_plan,
                300,
                (300, 3_000),
                1,
                3_000,
                h_plan,
            )
        e_plan = _adaptive.Plan(
            capacity=16,
            service=0.010,
            pages={"queue": 2_000, "reject": 4_000, "quota": 1_000},
            rate=200.0,
            rounds=e_rounds or 3,
            timeout=60.0,
            # Jobs of a second or more at the best fixed concurrency (a short job pays
            # the ramp, about 1 + 3 round trips / its duration).
            kinds={
                "app": {"create_many": 10_000, "iterate": 4_000},
                "app-3ms": {"create_many": 12_000, "iterate": 3_000},
                "uniform": {"create_many": 4_000, "iterate": 3_000},
                "lognormal": {"create_many": 4_000, "iterate": 3_000},
            },
            kind_timeout=10.0,
            # Five rounds (or --e-rounds, if more): each median of a second's job moves by
            # a tenth between rounds on this shared machine.
            kind_rounds=max(5, e_rounds or 0),
            # The machine's noise moves a round's ratio by up to a fifth (0.81-1.22x in
            # one run): over fifteen rounds the median's standard error is about 3 %.
            gate={"create_many": 20_000, "iterate": 5_000},
            gate_rounds=max(15, e_rounds or 0),
        )
        # Section e's servers and sizes; one round by default (about three minutes).
        h_plan = _fleet.Plan(
            capacity=e_plan.capacity,
            service=e_plan.service,
            pages=e_plan.pages,
            rate=e_plan.rate,
            rounds=h_rounds or 1,
            timeout=60.0,
            overhead_items=20_000,
            overhead_rounds=7,
            parts=h_parts,
        )
        return cls(
            False,
            rounds or 7,
            20_000,
            2_000,
            (50_000, 500_000),
            3,
            500,
            e_plan,
            20_000,
            (20_000, 200_000),
            1,  # one 200,000-create run takes 25-50 s; the growth barely moves between runs
            100_000,
            h_plan,
        )


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description="segments_async against raw aiohttp and peers"
    )
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 7; smoke 2)")
    parser.add_argument(
        "--e-rounds", type=int, default=None, help="rounds of section e (default 3; smoke 1)"
    )
    parser.add_argument(
        "--h-rounds", type=int, default=None, help="rounds of section h (default 1)"
    )
    parser.add_argument(
        "--h-modes",
        default=",".join(_fleet.PARTS),
        help=f"section h's parts to run, e.g. quota (default {','.join(_fleet.PARTS)})",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks it all runs")
    parser.add_argument("--only", default=",".join(SECTIONS), help="sections, e.g. a,b")
    parser.add_argument("--json", action="store_true", help="print a JSON document instead")
    parser.add_argument("--save", metavar="PATH", help="also write the JSON document to PATH")
    parser.add_argument(
        "--profile", action="store_true", help="profile ours in section a (pyinstrument) instead"
    )
    args = parser.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {','.join(SECTIONS)}")
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be >= 1")
    if args.e_rounds is not None and args.e_rounds < 1:
        parser.error("--e-rounds must be >= 1")
    if args.h_rounds is not None and args.h_rounds < 1:
        parser.error("--h-rounds must be >= 1")
    args.only = [s for s in SECTIONS if s in only]
    parts = [s.strip() for s in args.h_modes.split(",") if s.strip()]
    unknown = sorted(set(parts) - set(_fleet.PARTS))
    if unknown or not parts:
        parser.error(f"unknown --h-modes {unknown}; choose from {','.join(_fleet.PARTS)}")
    args.h_modes = tuple(p for p in _fleet.PARTS if p in parts)
    return args


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def _maybe_peer(wanted: bool) -> Iterator[tuple[Peer | None, str | None]]:
    if not wanted:
        yield None, None
        return
    try:
        with generated_peer() as peer:
            _progress(
                f"    generated the openapi-python-client peer in {peer.generate_seconds:.1f}s"
            )
            yield peer, None
    except Skipped as exc:
        yield None, str(exc)


def run(config: Config, only: list[str]) -> dict[str, Any]:
    server_cpu, client_cpu = cpu_plan()
    if client_cpu is not None:
        os.sched_setaffinity(0, {client_cpu})
    # Unconfigured, the library's WARNING per retry would reach stderr through logging's
    # last-resort handler: thousands of lines in section e. A handler that drops them
    # keeps the records' cost, as in an application that logs somewhere.
    logging.getLogger("segments_async").addHandler(logging.NullHandler())
    doc: dict[str, Any] = {
        "machine": machine_facts(server_cpu, client_cpu),
        "config": attrs.asdict(config) | {"sections": only},
        "sections": {},
    }
    sections: dict[str, Any] = {}
    # The share of the CPUs' time the host took during each section: on a shared virtual
    # machine, a section's timings are the host's as much as the code's when it is high.
    steal: dict[str, float | None] = {}

    @contextlib.contextmanager
    def section(key: str) -> Iterator[None]:
        before = cpu_ticks()
        try:
            yield
        finally:
            steal[key] = stolen_share(before, cpu_ticks())

    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        base_url = ""
        if "a" in only or "d" in only or "f" in only:
            base_url = stack.enter_context(serve(config.a_total, server_cpu))
        if "a" in only:
            _progress(f"[a] pagination, {config.rounds} rounds ...")
            peer, peer_skip = stack.enter_context(_maybe_peer(True))
            with section("a"):
                sections["a"] = asyncio.run(
                    _pagination.bench(base_url, config.a_total, config.rounds, peer, peer_skip)
                )
        if "b" in only:
            _progress(f"[b] decoding, {config.rounds} rounds ...")
            with section("b"):
                sections["b"] = _decode.bench(config.rounds, config.b_loops)
        if "c" in only:
            _progress("[c] peak RSS, one fresh process per measurement ...")
            with section("c"):
                sections["c"] = _rss.bench(config.c_sizes, config.c_repeats, server_cpu)
        if "d" in only:
            _progress(f"[d] per-call latency, {config.rounds} rounds ...")
            with section("d"):
                sections["d"] = asyncio.run(_crud.bench(base_url, config.rounds, config.d_calls))
        if "e" in only:
            plan = config.e_plan
            _progress(f"[e] adaptive concurrency, {plan.rounds} rounds, up to a minute a run ...")
            with section("e"):
                sections["e"] = asyncio.run(_adaptive.bench(plan, server_cpu, _progress))
        if "f" in only:
            _progress(f"[f] bulk create, {config.rounds} rounds, then peak RSS ...")
            with section("f"):
                sections["f"] = _bulk.bench(
                    base_url,
                    config.f_count,
                    config.rounds,
                    config.f_rss_sizes,
                    config.f_rss_repeats,
                )
        if "g" in only:
            _progress(f"[g] CLI export, {config.rounds} rounds, a fresh process per run ...")
            with serve(config.g_total, server_cpu) as g_url, section("g"):
                sections["g"] = _cli_export.bench(g_url, config.g_total, config.rounds)
        if "h" in only:
            h_plan = config.h_plan
            _progress(f"[h] a fleet of {_fleet.K} processes, {h_plan.rounds} round(s) ...")
            with section("h"):
                sections["h"] = asyncio.run(_fleet.bench(h_plan, server_cpu, _progress))
    doc["sections"] = sections
    doc["steal"] = steal
    doc["elapsed_s"] = time.perf_counter() - started
    doc["targets"] = _report.targets(doc)
    return doc


def profile(config: Config) -> int:
    server_cpu, client_cpu = cpu_plan()
    if client_cpu is not None:
        os.sched_setaffinity(0, {client_cpu})
    try:
        load_ours()
        with serve(config.a_total, server_cpu) as base_url:
            print(profile_ours(base_url, config.a_total))
    except Skipped as exc:
        print(f"cannot profile: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.profile:
        return profile(Config.make(args.smoke, args.rounds))
    config = Config.make(args.smoke, args.rounds, args.e_rounds, args.h_rounds, args.h_modes)
    doc = run(config, args.only)
    if args.save:
        with open(args.save, "w", encoding="utf-8") as saved:
            json.dump(doc, saved, indent=2)
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(_report.render(doc))
        print(f"\n(total {doc['elapsed_s']:.1f}s)")
    crashed = any(section.get("failed") for section in doc["sections"].values())
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
