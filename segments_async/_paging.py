"""Pagination, without I/O: which pages to ask for, and whether the answers add up.

The server's page metadata is checked, not trusted: a page must be the one asked for,
keep the first page's ``perPage``, and, while ``total`` stays the same, hold exactly the
items that ``total`` and ``perPage`` promise for its number. An empty or short page ends
the iteration, so a huge ``lastPage`` cannot make it run on; a ``total`` that changes
(segments created or deleted meanwhile) is reported once, as items may then shift
between pages.
"""

from __future__ import annotations

import math

from ._models import SegmentPage

__all__ = ["PageError", "Pages"]


class PageError(Exception):
    """A page that does not add up; the resource adds the request's method and URL."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class Pages:
    """The plan and the checks of one iteration, from its first page on.

    ``last`` is the last page worth asking for: the server's ``lastPage``, or fewer when
    ``limit`` segments need fewer pages.
    """

    __slots__ = ("_previous_first_id", "last", "per_page", "total", "total_changed")

    def __init__(self, first: SegmentPage, number: int, *, limit: int | None = None) -> None:
        if first.per_page < 1:
            raise PageError("result.perPage", f"perPage must be >= 1, got {first.per_page}")
        self.per_page = first.per_page
        self.total = first.total
        self.total_changed = False
        self._previous_first_id: str | None = None
        self.last = first.last_page
        if limit is not None:
            beyond_first = max(0, limit - len(first.items))
            self.last = min(self.last, number + math.ceil(beyond_first / self.per_page))
        self.check(first, number)

    def check(self, page: SegmentPage, number: int) -> None:
        """Raise ``PageError`` unless ``page`` is a plausible page ``number``."""
        if page.current_page != number:
            raise PageError(
                "result.currentPage",
                f"asked for page {number}, the server answered page {page.current_page} "
                f"(does it ignore ?page?)",
            )
        if page.per_page != self.per_page:
            raise PageError(
                "result.perPage",
                f"perPage changed from {self.per_page} to {page.per_page} during the iteration",
            )
        count = len(page.items)
        if count > self.per_page:
            raise PageError(
                "result.items",
                f"page {number} has {count} items, more than perPage={self.per_page}",
            )
        if page.total != self.total:
            self.total_changed = True
        elif count != (promised := self._promised(number)):
            raise PageError(
                "result.items",
                f"page {number} has {count} items, but total={self.total} and "
                f"perPage={self.per_page} promise {promised}: items would be lost or repeated",
            )
        if count:
            first_id = page.items[0].id
            if first_id == self._previous_first_id:
                raise PageError(
                    "result.items",
                    f"page {number} repeats the previous page's items (does it ignore ?page?)",
                )
            self._previous_first_id = first_id

    def _promised(self, number: int) -> int:
        return max(0, min(self.per_page, self.total - (number - 1) * self.per_page))

    def wanted(self, page: SegmentPage, number: int) -> bool:
        """Whether to yield a checked page: an empty one only if it is page 1."""
        return bool(page.items) or number == 1

    def ends(self, page: SegmentPage, number: int) -> bool:
        """Whether nothing follows a checked page: it is empty, short or the last."""
        return len(page.items) < self.per_page or number >= self.last
