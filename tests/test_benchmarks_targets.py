"""How the benchmark turns section e's and f's results into targets (pure, no run)."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

import segments_async
from benchmarks import _adaptive, _kinds, _sweep
from benchmarks._adaptive import Plan, _auto_over_best_fixed, _status
from benchmarks._common import cpu_ticks, stolen_share
from benchmarks._kinds import gate_bookkeeping
from benchmarks._report import _gate_lines, _steal_lines, targets
from segments_async import _flow
from segments_async._retry import Outcome


def _run(seconds: float, error: str | None = None) -> dict[str, Any]:
    return {"seconds": seconds, "error": error}


def _auto(errors: list[str], **fields: Any) -> dict[str, Any]:
    base = {
        "errors": errors,
        "status": "ok" if not errors else f"{errors[0]} after 2.0 s",
        "median_s": 5.5,
        "max_outstanding": 20,
        "rejected_pct": 1.0,
    }
    return base | fields


def _doc(mode: str, auto: dict[str, Any], ratio: float | None = 1.1) -> dict[str, Any]:
    data = {"auto_over_best_fixed": ratio, "ideal_s": 5.0, "contenders": {"auto": auto}}
    return {"config": {"smoke": False}, "sections": {"e": {"capacity": 16, "modes": {mode: data}}}}


def _by_name(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {target["target"]: target for target in targets(doc)}


def test_auto_over_best_fixed_compares_within_each_round() -> None:
    """Each round's auto time is divided by that round's fastest fixed time; then the median."""
    rounds = [
        {"2": _run(10.0), "16": _run(2.0), "auto": _run(2.2)},
        {"2": _run(20.0), "16": _run(4.0), "auto": _run(6.0)},
        {"2": _run(10.0), "16": _run(2.0, "RateLimitError"), "auto": _run(12.0)},
    ]

    ratio = _auto_over_best_fixed(rounds, ["2", "16"])

    assert 1.2 == ratio  # median of 1.1, 1.5 and 1.2 (the failed 16 is no best)


def test_auto_over_best_fixed_skips_rounds_where_auto_failed() -> None:
    """A round whose auto run failed gives no ratio; none at all gives None."""
    rounds = [{"16": _run(2.0), "auto": _run(1.0, "RateLimitError")}]

    assert None is _auto_over_best_fixed(rounds, ["16"])


def test_status_names_the_error_its_time_and_how_many_runs_it_ended() -> None:
    """A failed contender's result says what, after how long, and in how many runs."""
    runs = [_run(2.0, "RateLimitError"), _run(9.0), _run(4.0, "RateLimitError")]

    assert "RateLimitError after 3.0 s (2/3 runs)" == _status(runs)
    assert "ok" == _status([_run(1.0)])


def test_a_failed_auto_fails_its_time_target_whatever_the_ratio() -> None:
    """Auto's time target fails when any of its runs failed, even with a good ratio."""
    found = _by_name(_doc("reject", _auto(["RateLimitError"]), ratio=1.1))

    target = found["e reject: auto time <= 1.6x the best fixed"]
    assert "FAIL" == target["status"]
    assert "RateLimitError" in target["note"]


def test_quota_targets_pass_for_a_clean_auto_near_the_ideal() -> None:
    """5.5 s for a 5 s quota (1.1x), 1 % rejected and no failure pass all three quota targets."""
    found = _by_name(_doc("quota", _auto([])))

    assert "PASS" == found["e quota: auto time <= 1.1x ideal (pages / R)"]["status"]
    assert "PASS" == found["e quota: auto rejected <= 5% of requests"]["status"]
    assert "PASS" == found["e quota: auto never fails (failed runs)"]["status"]


def test_queue_target_fails_when_auto_floods_the_server() -> None:
    """Holding more than 3x C requests at the server fails the queue target."""
    found = _by_name(_doc("queue", _auto([], max_outstanding=49)))

    assert "FAIL" == found["e queue: auto max outstanding <= 3x C (48)"]["status"]


def test_skipped_auto_and_create_many_show_no_verdict() -> None:
    """Without auto or create_many in the results, their targets are n/a, not FAIL."""
    found = _by_name({"config": {"smoke": False}, "sections": {}})

    verdicts = {t["status"] for name, t in found.items() if name.startswith(("e ", "f "))}
    assert {"n/a"} == verdicts


def test_every_ordinary_server_and_job_gets_its_target() -> None:
    """auto <= 1.2x the best fixed per kind and job; the gate's cost <= 1.05x fixed 64."""
    job = {"contenders": {"auto": {"errors": []}}, "auto_over_best_fixed": 1.3}
    failed = {"contenders": {"auto": {"errors": ["TimeoutError"]}}, "auto_over_best_fixed": 1.0}
    e = {
        "kinds": {"app": {"create_many": job, "iterate": failed}},
        "gate": {"iterate": {"frozen_over_fixed": 1.04}},
    }
    found = _by_name({"config": {"smoke": False}, "sections": {"e": e}})

    assert "FAIL" == found["e app create_many: auto <= 1.2x the best fixed"]["status"]
    assert "FAIL" == found["e app iterate: auto <= 1.2x the best fixed"]["status"]
    assert "PASS" == found["e gate cost, iterate: frozen auto <= 1.05x fixed 64"]["status"]


def test_the_gate_lines_show_the_rounds_spread_and_the_gates_own_share() -> None:
    """The gate's figure comes with its rounds' spread and its bookkeeping's share."""
    e = {
        "gate": {
            "create_many": {
                "size": 20_000,
                "contenders": {"64": {"median_s": 3.0}, "auto frozen at 64": {"median_s": 3.1}},
                "frozen_over_fixed": 1.03,
                "per_round": [1.2, 0.9, 1.03, 0.95, 1.1, 1.0, 1.05, 0.97],
                "cpu_over_fixed": 1.02,
                "cpu_per_round": [1.06, 0.98, 1.0, 1.02, 1.04, 0.99, 1.03, 1.01],
            }
        },
        "gate_bookkeeping_us": 1.5,
    }

    lines = "\n".join(_gate_lines(e))

    assert "per round 0.90x to 1.20x, middle half 0.97x to 1.05x" in lines
    assert (
        "in CPU time (the host's steal left out): ratio 1.02x,"
        " per round 0.98x to 1.06x, middle half 1.00x to 1.03x"
    ) in lines
    # 3.0 s / 20,000 = 150 us a request; 1.5 us of it is 1 %.
    assert "1.50 us a request, is 1.0% of fixed 64's 150 us a request" in lines
    assert "the gate alone" not in lines  # a run without the gate-off contender


def test_the_gate_lines_show_the_gate_alone_against_the_same_paginator_without_it() -> None:
    """Frozen over frozen-with-the-gate-off, in time and CPU, with the CPU rounds' spread."""
    data = {
        "size": 5_000,
        "contenders": {"64": {"median_s": 1.2}},
        "frozen_over_fixed": 1.08,
        "over_ungated": 1.03,
        "over_ungated_per_round": [1.03, 0.99, 1.05],
        "cpu_over_ungated": 1.02,
        "cpu_over_ungated_per_round": [1.04, 1.0, 1.02, 1.01],
    }

    lines = "\n".join(_gate_lines({"gate": {"iterate": data}}))

    assert (
        "the gate alone (auto frozen at 64 / the same with the gate's work taken out):"
        " ratio 1.03x, in CPU time 1.02x, per round 1.00x to 1.04x, middle half 1.01x to 1.02x"
    ) in lines


async def test_a_frozen_flow_with_the_gate_off_lets_every_request_in_and_learns_nothing() -> None:
    """The gate-off contender: past the frozen level and after refusals, try_admit still
    hands out a ticket at once, no place is taken, and spare reports the level. (Gated, the
    ninth request would wait for a place, and a refusal would pause sending.)"""
    flow = _flow.Flow(rate=None, max_connections=8)
    _kinds._freeze_flow(flow, 8)
    _kinds._ungate_flow(flow, 8)
    refusal = Outcome(status=429, headers={"Retry-After": "1"}, body=b"")

    tickets = [flow.try_admit() for _ in range(20)]
    assert None not in tickets
    for ticket in tickets:
        assert ticket is not None
        flow.done(ticket, refusal)
    assert flow.try_admit() is not None
    assert flow.busy is False
    assert flow.spare() == 8


async def test_the_gate_runs_under_its_own_time_limit_not_the_kinds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fixed 64 creating 20,000 names took 9.4-10 s on a slow host: under the kinds' 10 s
    it was cut off, and the gate's figure with it. The gate's jobs get a minute."""
    limits: list[float] = []

    async def bench_gate(lib: Any, sizes: Any, rounds: int, limit: float, *rest: Any) -> Any:
        limits.append(limit)
        return {}

    monkeypatch.setattr(_adaptive, "MODES", ())
    monkeypatch.setattr(_kinds, "bench_gate", bench_gate)
    monkeypatch.setattr(_kinds, "gate_bookkeeping", lambda lib: 1.0)
    plan = Plan(
        capacity=16,
        service=0.01,
        pages={},
        rate=200.0,
        rounds=1,
        timeout=60.0,
        kind_timeout=10.0,
        gate={"create_many": 20_000},
    )

    await _adaptive.bench(plan, None, lambda message: None)

    assert [60.0] == limits


async def test_the_gates_bookkeeping_is_measured_frozen_with_every_place_taken() -> None:
    """It runs the real gate frozen at 64 (a request turned away would raise) and gives a
    time per request."""
    microseconds = gate_bookkeeping(segments_async, requests=2_000)

    assert 0 < microseconds < 1_000


def test_a_plan_runs_the_fixed_levels_it_names_or_the_default_ones() -> None:
    """The sweep's plans name their fixed levels; section e's own default to 2, C and 64."""
    plan = Plan(capacity=40, service=0.02, pages={"reject": 10}, rate=200.0, rounds=1, timeout=1.0)

    assert ["2", "40", "64", "auto"] == [c.label for c in plan.contenders("reject")]
    named = attrs.evolve(plan, fixed=(40, 16))
    assert ["16", "40", "auto"] == [c.label for c in named.contenders("reject")]


def test_the_sweep_line_shows_a_fixed_level_that_never_finished() -> None:
    """A fixed level with no finished run shows as '-', auto's figures beside it."""
    data = {
        "ideal_s": 2.5,
        "auto_over_best_fixed": 1.25,
        "contenders": {
            "4": {"median_s": 3.67},
            "8": {"median_s": None},
            "auto": {"median_s": 4.58, "rejected_pct": 0.05, "max_outstanding": 4},
        },
    }

    line = _sweep._line("reject 4 x 5 ms", data)

    assert "fixed 4: 3.67, 8: -; auto 4.58 s, 1.25x the best fixed, 0.05 % refused" in line
    assert "at most 4 at the server" in line


def test_a_sections_steal_is_the_hosts_share_of_the_cpus_time_and_warns_when_high() -> None:
    # (every tick, stolen ticks) read before and after a section
    assert stolen_share((1_000, 10), (2_000, 60)) == 0.05
    assert stolen_share(None, (2_000, 60)) is None
    assert stolen_share((2_000, 60), (2_000, 60)) is None  # no time passed
    quiet, busy = _steal_lines(0.012), _steal_lines(0.331)
    assert quiet == ["  the host took 1.2 % of the CPUs' time during this section (steal)"]
    assert busy[0].startswith("  the host took 33.1 %")
    assert "the host's as much as the code's" in busy[0]
    assert _steal_lines(None) == []


def test_cpu_ticks_reads_every_tick_and_the_stolen_ones_where_linux_tells_them() -> None:
    ticks = cpu_ticks()
    if ticks is None:
        pytest.skip("no /proc/stat here")
    total, stolen = ticks
    assert 0 <= stolen <= total
    later = cpu_ticks()
    assert later is not None
    assert later[0] >= total
