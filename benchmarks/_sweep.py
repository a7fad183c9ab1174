"""Section e's hidden-capacity server on other parameters than the benchmark's.

``python -m benchmarks._sweep [--rounds N] [NAME ...]``: for each shape (a mode, a
capacity and service time, or a quota), one server process on CPU 0 and the client on
CPU 1, ``iterate(per_page=100)`` with ``"auto"`` and with fixed concurrencies around the
capacity, in rotated order, as section e runs its own. Prints, per shape, each fixed
level's median time and ``auto``'s: its time over the fastest fixed time of each round
(the median over rounds), the share of requests refused, the most requests the server
held at once, and the share of the CPUs' time the host took meanwhile (steal). Not part
of ``python -m benchmarks``: it takes about ten minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

from ._adaptive import AUTO, Plan, _bench_mode
from ._capacity_server import serve_capacity
from ._common import cpu_plan, cpu_ticks, load_ours, stolen_share
from ._report import _num

#: name -> (mode, capacity, service seconds, quota per second, pages, fixed levels)
SHAPES: dict[str, tuple[str, int, float, float, int, tuple[int, ...]]] = {
    "queue 4 x 5 ms": ("queue", 4, 0.005, 200.0, 2_000, (4, 8, 16, 64)),
    "queue 16 x 2 ms": ("queue", 16, 0.002, 200.0, 10_000, (8, 16, 32, 64)),
    "queue 40 x 20 ms": ("queue", 40, 0.020, 200.0, 5_000, (16, 32, 40, 64)),
    "reject 4 x 5 ms": ("reject", 4, 0.005, 200.0, 2_000, (4, 8, 16)),
    "reject 16 x 10 ms": ("reject", 16, 0.010, 200.0, 4_000, (8, 16)),
    "reject 40 x 20 ms": ("reject", 40, 0.020, 200.0, 5_000, (16, 32, 40)),
    "reject 40 x 20 ms, 8,000 pages": ("reject", 40, 0.020, 200.0, 8_000, (32, 40)),
    "quota 100/s, 5 ms": ("quota", 16, 0.005, 100.0, 300, (2, 4, 8, 16)),
    "quota 1000/s, 5 ms": ("quota", 16, 0.005, 1000.0, 3_000, (4, 8, 16)),
}


async def sweep(names: list[str], rounds: int, server_cpu: int | None) -> dict[str, Any]:
    """Run each shape in ``names``; its section e data (``_bench_mode``) by name."""
    lib = load_ours()
    found: dict[str, Any] = {}
    for name in names:
        mode, capacity, service, rate, pages, fixed = SHAPES[name]
        plan = Plan(
            capacity=capacity,
            service=service,
            pages={mode: pages},
            rate=rate,
            rounds=rounds,
            timeout=30.0,
            fixed=fixed,
        )
        before = cpu_ticks()
        with serve_capacity(
            mode,
            total=pages * 100,
            capacity=capacity,
            service=service,
            rate=rate,
            cpu=server_cpu,
        ) as server:
            data, _skipped, _crashed = await _bench_mode(lib, server, plan, mode, _quiet)
        data["steal"] = stolen_share(before, cpu_ticks())
        found[name] = data
        print(_line(name, data), flush=True)
    return found


def _quiet(_message: str) -> None:
    pass


def _line(name: str, data: dict[str, Any]) -> str:
    contenders = data["contenders"]
    fixed = ", ".join(
        f"{label}: {_num(c['median_s'], '.2f')}" for label, c in contenders.items() if label != AUTO
    )
    auto = contenders.get(AUTO, {})
    return (
        f"{name:<32} ideal {data['ideal_s']:.2f} s; fixed {fixed}; auto"
        f" {_num(auto.get('median_s'), '.2f')} s,"
        f" {_num(data['auto_over_best_fixed'], '.2f')}x the best fixed,"
        f" {auto.get('rejected_pct', 0.0):.2f} % refused, at most {auto.get('max_outstanding')}"
        " at the server"
        + ("" if data.get("steal") is None else f"; the host took {100 * data['steal']:.0f} %")
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._sweep", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("names", nargs="*", metavar="NAME", help="shapes (default: all)")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in SHAPES]
    if unknown:
        parser.error(f"unknown shape {unknown[0]!r}; one of: {', '.join(SHAPES)}")
    server_cpu, client_cpu = cpu_plan()
    if client_cpu is not None:
        os.sched_setaffinity(0, {client_cpu})
    asyncio.run(sweep(args.names or list(SHAPES), args.rounds, server_cpu))


if __name__ == "__main__":
    main()
