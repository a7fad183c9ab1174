"""Targets and the human-readable table, both computed from the JSON document."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

HEADINGS = {
    "a": "[a] Pagination throughput",
    "b": "[b] Page decoding",
    "c": "[c] Peak RSS while iterating",
    "d": "[d] Per-call latency",
}

Doc = dict[str, Any]


def _get(doc: Doc, *path: str) -> Any:
    node: Any = doc
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _target(
    name: str, value: Any, passes: Callable[[float], bool], unit: str, note: str = ""
) -> dict[str, Any]:
    status = "n/a" if value is None else "PASS" if passes(value) else "FAIL"
    return {"target": name, "value": value, "unit": unit, "status": status, "note": note}


def targets(doc: Doc) -> list[dict[str, Any]]:
    """Informational PASS/FAIL against the project's goals; never an exit status."""
    smoke = "smoke sizes: indicative only" if _get(doc, "config", "smoke") else ""
    a = ("sections", "a", "modes")
    sizes = _get(doc, "sections", "c", "sizes") or ["small", "large"]
    return [
        _target(
            "a sequential: ours >= 0.90x floor throughput",
            _get(doc, *a, "sequential", "ours_speedup", "floor"),
            lambda v: v >= 0.90,
            "x",
            smoke,
        ),
        _target(
            "a concurrent: ours >= 0.90x floor throughput",
            _get(doc, *a, "concurrent", "ours_speedup", "floor"),
            lambda v: v >= 0.90,
            "x",
            smoke,
        ),
        _target(
            "a sequential: ours >= 3.5x openapi-python-client",
            _get(doc, *a, "sequential", "ours_speedup", "openapi-python-client"),
            lambda v: v >= 3.5,
            "x",
            smoke,
        ),
        _target(
            "a concurrent: ours >= 10x openapi-python-client",
            _get(doc, *a, "concurrent", "ours_speedup", "openapi-python-client"),
            lambda v: v >= 10.0,
            "x",
            smoke,
        ),
        _target(
            "b decode time <= 1.0x pydantic v2",
            _get(doc, "sections", "b", "ours_time_ratio", "pydantic"),
            lambda v: v <= 1.0,
            "x",
            smoke,
        ),
        _target(
            "b stretch: decode time <= 0.8x pydantic v2",
            _get(doc, "sections", "b", "ours_time_ratio", "pydantic"),
            lambda v: v <= 0.8,
            "x",
            smoke,
        ),
        _target(
            f"c peak RSS growth {sizes[0]:,}->{sizes[1]:,} items < 16 MiB"
            if all(isinstance(s, int) for s in sizes)
            else "c peak RSS growth < 16 MiB",
            _get(doc, "sections", "c", "contenders", "ours", "growth_mib"),
            lambda v: v < 16.0,
            " MiB",
            smoke,
        ),
    ]


def _problems(section: Doc) -> list[str]:
    lines = [f"  skipped {name}: {why}" for name, why in section.get("skipped", {}).items()]
    lines += [f"  FAILED  {name}: {why}" for name, why in section.get("failed", {}).items()]
    return lines


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _section_a(section: Doc) -> list[str]:
    lines = [
        f"{HEADINGS['a']}: {section['total']:,} items in pages of {section['per_page']},"
        f" a fresh client per run, {section['rounds']} rounds",
        f"  {'mode':<16} {'contender':<22} {'median s':>9} {'items/s':>10} {'ours is':>9}",
    ]
    for mode, data in section["modes"].items():
        label = f"{mode} ({data['concurrency']})"
        for name, stats in data["contenders"].items():
            speedup = None if name == "ours" else data["ours_speedup"].get(name)
            lines.append(
                f"  {label:<16} {name:<22} {stats['median_s']:>9.4f}"
                f" {stats['items_per_s']:>10,.0f} {_x(speedup):>9}"
            )
            label = ""
    lines.append("  'ours is': median per-round ratio, their time / ours (>1: ours faster)")
    return lines + _problems(section)


def _section_b(section: Doc) -> list[str]:
    lines = [
        f"{HEADINGS['b']}: one {section['items']}-item page ({section['body_bytes']:,} bytes)"
        f" -> page object, {section['loops']:,} decodes x {section['rounds']} rounds",
        f"  {'decoder':<22} {'us/decode':>10} {'ours time / this':>17}",
    ]
    for name, stats in section["contenders"].items():
        ratio = None if name == "ours" else section["ours_time_ratio"].get(name)
        lines.append(f"  {name:<22} {stats['median_us']:>10.1f} {_x(ratio):>17}")
    lines.append("  'ours time / this': median per-round ratio (<1: ours faster)")
    return lines + _problems(section)


def _section_c(section: Doc) -> list[str]:
    small, large = section["sizes"]
    lines = [
        f"{HEADINGS['c']}: iterate(per_page=100, concurrency=16), items discarded,"
        f" fresh process per measurement, median of {section['repeats']} (MiB, ru_maxrss)",
        f"  {'contender':<10} {'baseline':>9} {f'peak {small:,}':>13} {f'peak {large:,}':>13}"
        f" {'growth':>7} {f'VmHWM {large:,}':>14} {f'secs {large:,}':>13}",
    ]
    for name, stats in section["contenders"].items():
        lo, hi = stats[str(small)], stats[str(large)]
        lines.append(
            f"  {name:<10} {lo['baseline_mib']:>9.1f} {lo['peak_mib']:>13.1f}"
            f" {hi['peak_mib']:>13.1f} {stats['growth_mib']:>7.2f} {hi['vm_hwm_mib']:>14.1f}"
            f" {hi['seconds']:>13.2f}"
        )
    lines.append("  growth: peak at the larger size minus peak at the smaller one")
    return lines + _problems(section)


def _section_d(section: Doc) -> list[str]:
    contenders = section["contenders"]
    lines = [
        f"{HEADINGS['d']}: {section['calls']:,} sequential calls per operation per round,"
        f" {section['rounds']} rounds (us; medians over rounds)",
        f"  {'operation':<10} {'contender':<10} {'median us':>10} {'p90 us':>9}"
        f" {'ours / floor':>13}",
    ]
    for op in ("create", "update", "delete"):
        label = op
        for name, stats in contenders.items():
            ratio = section["ours_over_floor"].get(op) if name == "ours" else None
            lines.append(
                f"  {label:<10} {name:<10} {stats[op]['median_us']:>10.1f}"
                f" {stats[op]['p90_us']:>9.1f} {_x(ratio):>13}"
            )
            label = ""
    return lines + _problems(section)


RENDERERS = {"a": _section_a, "b": _section_b, "c": _section_c, "d": _section_d}


def render(doc: Doc) -> str:
    machine = doc["machine"]
    config = doc["config"]
    pinning = (
        f"server on CPU {machine['server_cpu']}, client on CPU {machine['client_cpu']}"
        if machine["server_cpu"] is not None
        else "no CPU pinning"
    )
    lines = [
        f"segments_async benchmarks ({'smoke' if config['smoke'] else 'full'},"
        f" {config['rounds']} rounds)",
        f"machine: {machine['cpu']}, {machine['cpus']} CPUs ({pinning});"
        f" Python {machine['python']}; {machine['platform']}",
        "versions: " + ", ".join(f"{k} {v}" for k, v in machine["versions"].items()),
        "",
    ]
    for key, section in doc["sections"].items():
        lines += RENDERERS[key](section)
        lines.append("")
    lines.append("Targets (informational)")
    for target in doc["targets"]:
        value = target["value"]
        shown = "-" if value is None else f"{value:.2f}{target['unit']}"
        note = f"  ({target['note']})" if target["note"] else ""
        lines.append(f"  {target['status']:<4}  {target['target']:<52} {shown:>9}{note}")
    return "\n".join(lines)
