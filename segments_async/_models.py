"""The API's resources as frozen, slotted attrs classes (snake_case in Python)."""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["Segment", "SegmentPage"]


@attrs.frozen
class Segment:
    """A segment: a named group of the tenant's data."""

    id: str
    name: str


@attrs.frozen
class SegmentPage:
    """One page of the segment list, as the server numbered and sized it.

    ``per_page`` and ``last_page`` are the server's: it may clamp the ``per_page`` asked for.
    """

    current_page: int
    per_page: int
    last_page: int
    total: int
    items: list[Segment]
    filters: list[Any] = attrs.field(factory=list)
