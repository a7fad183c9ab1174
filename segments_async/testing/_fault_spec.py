"""Faults written on a command line: ``--fault 503,retry-after=2,method=POST,times=3``.

A spec is a comma-separated list: one fault, then where and how often it applies, in
any order. The fault is a status code (``503``, or ``status=503``), ``latency=SECONDS``,
``reset-before``, ``reset-after``, ``truncated-body``, ``non-json-body`` or ``html-502``
(the ``Fault`` classmethods); ``retry-after=SECONDS`` goes with a status, ``rst`` (a TCP
reset instead of a close) with a reset. ``method=``, ``path=`` (a prefix), ``times=`` and
``probability=`` select requests as ``FakeSegmentsServer.inject`` does: without either
count, the next matching request. Pure: a bad spec is a ``ValueError`` saying why.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final

import attrs

from ._faults import Fault

__all__ = ["FAULT_SPEC_HELP", "FaultSpec", "parse_fault_spec"]

#: The grammar in a paragraph, for ``--help``.
FAULT_SPEC_HELP: Final = (
    "FAULT[,KEY=VALUE...]: FAULT is a status code (503; retry-after=SECONDS adds a "
    "Retry-After), latency=SECONDS, reset-before, reset-after (the request is carried out, "
    "the answer lost; rst for a TCP reset), truncated-body, non-json-body or html-502; "
    "method=GET|POST|PUT|DELETE, path=PREFIX, times=N (default 1) and probability=P "
    "choose the requests. Repeatable; the first fault given that matches a request applies."
)

_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

#: The faults that take no value, by their name on the command line.
_NAMED: Final[dict[str, Callable[[bool], Fault]]] = {
    "reset-before": lambda rst: Fault.reset_before(rst=rst),
    "reset-after": lambda rst: Fault.reset_after(rst=rst),
    "truncated-body": lambda rst: Fault.truncated_body(),
    "non-json-body": lambda rst: Fault.non_json_body(),
    "html-502": lambda rst: Fault.html_502(),
}


@attrs.frozen
class FaultSpec:
    """A fault and the requests it applies to: the arguments of ``server.inject``."""

    fault: Fault
    method: str | None = None
    path: str | None = None
    times: int | None = None
    probability: float | None = None


def parse_fault_spec(text: str) -> FaultSpec:
    """The fault a spec describes; ``ValueError`` naming the part that is wrong."""
    options: dict[str, str] = {}
    faults: list[str] = []
    for part in (piece.strip() for piece in text.split(",")):
        key, has_value, value = part.partition("=")
        key = key.strip().lower()
        if key in ("status", "latency") or (not has_value and (key in _NAMED or key.isdigit())):
            faults.append(part)
        elif key in options:
            raise ValueError(f"{key} is given twice")
        elif key == "rst" and not has_value:
            options[key] = ""
        elif key in ("retry-after", "method", "path", "times", "probability") and has_value:
            options[key] = value.strip()
        else:
            raise ValueError(f"not a fault or an option: {part!r}")
    if len(faults) != 1:
        found = "no fault" if not faults else f"{len(faults)} faults ({', '.join(faults)})"
        raise ValueError(f"a spec holds one fault, found {found}")
    return FaultSpec(
        _fault(faults[0], options),
        method=_method(options.get("method")),
        path=_path(options.get("path")),
        times=_times(options.get("times")),
        probability=_probability(options.get("probability")),
    )


def _fault(text: str, options: dict[str, str]) -> Fault:
    key, _, value = text.partition("=")
    key = key.strip().lower()
    rst = "rst" in options
    if rst and key not in ("reset-before", "reset-after"):
        raise ValueError("rst goes with reset-before or reset-after")
    retry_after = options.get("retry-after")
    is_status = key.isdigit() or key == "status"
    if retry_after is not None and not is_status:
        raise ValueError("retry-after goes with a status code")
    if key in _NAMED:
        return _NAMED[key](rst)
    if key == "latency":
        return Fault.latency(_seconds("latency", value))
    code = _integer("status", key if key.isdigit() else value)
    if not 200 <= code <= 599:
        raise ValueError(f"a status code is in 200..599, got {code}")
    seconds = None if retry_after is None else _seconds("retry-after", retry_after)
    return Fault.status(code, retry_after=seconds)


def _method(text: str | None) -> str | None:
    if text is None:
        return None
    if text.upper() not in _METHODS:
        raise ValueError(f"method={text} is not an HTTP method ({', '.join(sorted(_METHODS))})")
    return text.upper()


def _path(text: str | None) -> str | None:
    if text is not None and not text.startswith("/"):
        raise ValueError(f"path={text} is not a path (a prefix such as /v2.3/data/segments)")
    return text


def _times(text: str | None) -> int | None:
    if text is None:
        return None
    times = _integer("times", text)
    if times < 1:
        raise ValueError(f"times must be >= 1, got {times}")
    return times


def _probability(text: str | None) -> float | None:
    if text is None:
        return None
    value = _number("probability", text)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"probability must be in 0..1, got {text}")
    return value


def _seconds(key: str, text: str) -> float:
    value = _number(key, text)
    if value < 0:
        raise ValueError(f"{key} must be seconds >= 0, got {text}")
    return value


def _number(key: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{key} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{key} must be a finite number, got {text!r}")
    return value


def _integer(key: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{key} must be an integer, got {text!r}") from None
