"""The value parsers of options, and ids given as arguments, checked before anything is sent."""

from __future__ import annotations

import argparse
import re

import pytest

from segments_async._cli import argtypes
from segments_async._cli.status import UsageError

from ..conftest import SEGMENT_ID


def test_ids_are_checked_and_the_bad_one_named():
    """Every id must be a UUID; the first that is not is named."""
    assert [SEGMENT_ID] == argtypes.segment_ids([SEGMENT_ID])
    with pytest.raises(UsageError, match=re.escape("'../etc'")):
        argtypes.segment_ids([SEGMENT_ID, "../etc", "x"])


@pytest.mark.parametrize(
    ("parse", "text", "value"),
    [
        (argtypes.positive_int_arg, "1", 1),
        (argtypes.non_negative_int_arg, "0", 0),
        (argtypes.positive_float_arg, "0.25", 0.25),
        (argtypes.concurrency_arg, "auto", "auto"),
        (argtypes.concurrency_arg, "8", 8),
    ],
)
def test_value_parsers_take_what_they_name(parse, text, value):
    """Each parser returns the value its text spells."""
    assert value == parse(text)


@pytest.mark.parametrize(
    ("parse", "text", "complaint"),
    [
        (argtypes.positive_int_arg, "0", "must be >= 1, got 0"),
        (argtypes.positive_int_arg, "1.5", "not an integer: '1.5'"),
        (argtypes.non_negative_int_arg, "-1", "must be >= 0, got -1"),
        (argtypes.positive_float_arg, "nan", "must be a number above 0, got 'nan'"),
        (argtypes.positive_float_arg, "x", "not a number: 'x'"),
        (argtypes.concurrency_arg, "Auto", "must be an integer >= 1 or 'auto', got 'Auto'"),
    ],
)
def test_value_parsers_refuse_with_a_reason(parse, text, complaint):
    """A refusal is an ArgumentTypeError whose message argparse shows as is."""
    with pytest.raises(argparse.ArgumentTypeError, match=re.escape(complaint)):
        parse(text)
