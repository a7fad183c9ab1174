"""Faults written on a command line (``--fault``): each kind of the kit, and every refusal."""

from __future__ import annotations

import re

import pytest

from segments_async.testing import Fault
from segments_async.testing._fault_spec import FaultSpec, parse_fault_spec

from .integration.support import README


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("503", FaultSpec(Fault.status(503))),
        ("status=429", FaultSpec(Fault.status(429))),
        (
            "503,retry-after=2,method=post,times=3",
            FaultSpec(Fault.status(503, retry_after=2.0), method="POST", times=3),
        ),
        ("retry-after=0.5, 429", FaultSpec(Fault.status(429, retry_after=0.5))),
        ("latency=0.25,probability=1", FaultSpec(Fault.latency(0.25), probability=1.0)),
        ("reset-before", FaultSpec(Fault.reset_before())),
        ("reset-after,rst,method=DELETE", FaultSpec(Fault.reset_after(rst=True), method="DELETE")),
        (
            "truncated-body,path=/v2.3/data/segments",
            FaultSpec(Fault.truncated_body(), path="/v2.3/data/segments"),
        ),
        ("non-json-body,times=2", FaultSpec(Fault.non_json_body(), times=2)),
        ("HTML-502,probability=0.1", FaultSpec(Fault.html_502(), probability=0.1)),
    ],
)
def test_a_spec_names_a_fault_and_the_requests_it_applies_to(text, spec):
    """Every kind of the kit; options in any order, any case, spaces around the commas."""
    assert spec == parse_fault_spec(text)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "not a fault or an option: ''"),
        ("503,", "not a fault or an option: ''"),
        ("teapot", "not a fault or an option: 'teapot'"),
        ("method=GET", "a spec holds one fault, found no fault"),
        ("503,502", "a spec holds one fault, found 2 faults (503, 502)"),
        ("600", "a status code is in 200..599, got 600"),
        ("status=x", "status must be an integer, got 'x'"),
        ("latency", "latency must be a number, got ''"),
        ("latency=-1", "latency must be seconds >= 0, got -1"),
        ("latency=inf", "latency must be a finite number"),
        ("503,retry-after=soon", "retry-after must be a number, got 'soon'"),
        ("latency=1,retry-after=1", "retry-after goes with a status code"),
        ("503,rst", "rst goes with reset-before or reset-after"),
        ("503,method=FETCH", "method=FETCH is not an HTTP method"),
        ("503,path=segments", "path=segments is not a path"),
        ("503,times=0", "times must be >= 1, got 0"),
        ("503,times=1,times=2", "times is given twice"),
        ("503,probability=1.5", "probability must be in 0..1, got 1.5"),
        ("503,times", "not a fault or an option: 'times'"),
    ],
)
def test_a_bad_spec_says_what_is_wrong(text, complaint):
    """A ValueError naming the part that is wrong, never a guess at what was meant."""
    with pytest.raises(ValueError, match=re.escape(complaint)):
        parse_fault_spec(text)


def test_every_fault_in_the_readme_is_a_valid_spec():
    """The README's --fault examples parse as written."""
    readme = README.read_text(encoding="utf-8")
    specs = [spec for spec in re.findall(r"--fault ([^`\s]+)", readme) if "SPEC" not in spec]

    assert len(specs) >= 5
    for spec in specs:
        parse_fault_spec(spec)
