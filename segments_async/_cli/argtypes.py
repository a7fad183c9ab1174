"""Small value parsers for argparse (``type=``), and the check of ids given as arguments.

A parser raises ``argparse.ArgumentTypeError``, which argparse turns into a one-line usage
error naming the option.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from typing import Literal

from .. import _wire
from .status import UsageError

__all__ = [
    "concurrency_arg",
    "non_negative_int_arg",
    "positive_float_arg",
    "positive_int_arg",
    "segment_ids",
]


def positive_int_arg(text: str) -> int:
    """An int >= 1."""
    value = _int_arg(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def non_negative_int_arg(text: str) -> int:
    """An int >= 0."""
    value = _int_arg(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _int_arg(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def positive_float_arg(text: str) -> float:
    """A finite number of seconds (or requests a second) above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number above 0, got {text!r}")
    return value


def concurrency_arg(text: str) -> int | Literal["auto"]:
    """``auto`` or an int >= 1."""
    if text == "auto":
        return "auto"
    try:
        return positive_int_arg(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"must be an integer >= 1 or 'auto', got {text!r}"
        ) from None


def segment_ids(texts: Sequence[str]) -> list[str]:
    """Ids given as arguments, each checked: a ``UsageError`` names the first bad one."""
    for text in texts:
        try:
            _wire.segment_path(text)
        except ValueError:
            raise UsageError(
                f"not a segment id: {_wire.short_repr(text)} (ids are UUIDs like "
                f"7f2d6e6d-a4ad-4b58-abfe-bd8b918ebec2)"
            ) from None
    return list(texts)
