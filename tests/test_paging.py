"""The pagination plan checks the server's page metadata instead of trusting it.

``walk`` drives ``Pages`` as the resource does, one page at a time, against a function
that plays the server, and records what was asked for and what came out: no sockets.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import pytest

from segments_async import Segment, SegmentPage
from segments_async._paging import PageError, Pages

Server = Callable[[int, int], SegmentPage]


def segment(index: int) -> Segment:
    return Segment(f"00000000-0000-4000-8000-{index:012d}", f"s{index}")


def honest(total: int, **lies: object) -> Server:
    """A server of ``total`` segments; ``lies`` override fields of every page it answers."""

    def answer(number: int, per_page: int) -> SegmentPage:
        first = (number - 1) * per_page
        items = [segment(i) for i in range(first, min(total, first + per_page))]
        page = SegmentPage(number, per_page, max(1, -(-total // per_page)), total, items)
        return attrs.evolve(page, **lies)

    return answer


@attrs.define
class Walk:
    asked: list[int] = attrs.Factory(list)
    seen: list[Segment] = attrs.Factory(list)
    error: PageError | None = None


def walk(server: Server, per_page: int = 10, *, start: int = 1, limit: int | None = None) -> Walk:
    """Iterate as the resource does (sequentially), at most 1,000 requests."""
    result = Walk()

    def fetch(number: int) -> SegmentPage:
        result.asked.append(number)
        assert len(result.asked) <= 1000, "the plan would not stop"
        return server(number, per_page)

    try:
        first = fetch(start)
        pages = Pages(first, start, limit=limit)
        if pages.wanted(first, start):
            result.seen += first.items
        number = start
        page = first
        while not pages.ends(page, number) and number < pages.last:
            number += 1
            page = fetch(number)
            pages.check(page, number)
            if pages.wanted(page, number):
                result.seen += page.items
    except PageError as error:
        result.error = error
    return result


def test_an_honest_server_is_read_whole():
    """25 segments in pages of 10: three requests, every segment once, in order."""
    result = walk(honest(25))
    assert [1, 2, 3] == result.asked
    assert [segment(i) for i in range(25)] == result.seen
    assert result.error is None


def test_a_huge_last_page_cannot_make_it_run_on():
    """lastPage=10**9 with 25 segments: the short third page ends it."""
    result = walk(honest(25, last_page=10**9))
    assert [1, 2, 3] == result.asked
    assert 25 == len(result.seen)


def test_a_huge_last_page_with_a_full_last_page_stops_at_the_empty_page():
    """lastPage=10**9 with exactly 30 segments: one empty page, then the end."""

    def server(number: int, per_page: int) -> SegmentPage:
        page = honest(30)(number, per_page)
        return attrs.evolve(page, last_page=10**9)

    result = walk(server)
    assert [1, 2, 3, 4] == result.asked
    assert 30 == len(result.seen)
    assert result.error is None


def test_a_server_that_ignores_page_is_caught():
    """Page 1 for every page: the second answer's currentPage is refused."""

    def server(number: int, per_page: int) -> SegmentPage:
        return honest(25)(1, per_page)

    result = walk(server)
    assert [1, 2] == result.asked
    assert result.error is not None
    assert "result.currentPage" == result.error.field
    assert [segment(i) for i in range(10)] == result.seen


def test_a_server_that_ignores_page_but_echoes_it_is_caught():
    """Page 1's items under every page number: the repeat is refused."""

    def server(number: int, per_page: int) -> SegmentPage:
        return attrs.evolve(honest(25)(1, per_page), current_page=number)

    result = walk(server)
    assert result.error is not None
    assert "repeats" in result.error.message
    assert 10 == len(result.seen)


def test_a_short_page_in_the_middle_is_caught():
    """Page 2 with 7 of its 10 items while total says 30: refused, nothing silently lost."""

    def server(number: int, per_page: int) -> SegmentPage:
        page = honest(30)(number, per_page)
        return attrs.evolve(page, items=page.items[:7]) if number == 2 else page

    result = walk(server)
    assert result.error is not None
    assert "result.items" == result.error.field
    assert "promise 10" in result.error.message


def test_a_changed_per_page_is_caught():
    """perPage 10 on page 1, then 5 on page 2: refused."""

    def server(number: int, per_page: int) -> SegmentPage:
        return honest(30)(number, 5 if number == 2 else per_page)

    result = walk(server)
    assert result.error is not None
    assert "result.perPage" == result.error.field


@pytest.mark.parametrize(("per_page", "field"), [(0, "result.perPage"), (-3, "result.perPage")])
def test_a_first_page_with_an_impossible_per_page_is_caught(per_page, field):
    """perPage below 1 cannot plan anything."""
    result = walk(honest(25, per_page=per_page))
    assert result.error is not None
    assert field == result.error.field
    assert [1] == result.asked


def test_more_items_than_per_page_is_caught():
    """A page of 12 items that says perPage=10."""

    def server(number: int, per_page: int) -> SegmentPage:
        page = honest(30)(number, per_page)
        return attrs.evolve(page, items=[*page.items, segment(98), segment(99)])

    result = walk(server)
    assert result.error is not None
    assert "more than perPage" in result.error.message


def test_a_first_page_that_contradicts_its_total_is_caught():
    """An empty page 1 while total says 25: items would be lost."""
    result = walk(honest(25, items=[]))
    assert result.error is not None
    assert "result.items" == result.error.field


def test_a_changed_total_is_tolerated_and_noted():
    """A segment created mid-way shifts items; the iteration carries on, noted once."""
    totals = {1: 30, 2: 31, 3: 31, 4: 31}

    def server(number: int, per_page: int) -> SegmentPage:
        return honest(totals[number])(number, per_page)

    first = server(1, 10)
    pages = Pages(first, 1)
    assert pages.total_changed is False
    for number in (2, 3, 4):
        pages.check(server(number, 10), number)
    assert pages.total_changed is True
    result = walk(server)
    assert result.error is None
    assert [1, 2, 3] == result.asked  # the first page's lastPage: the newcomer may be missed


def test_start_page_and_limit_plan_only_what_is_needed():
    """From page 3, 15 segments in pages of 10: pages 3 and 4, nothing after."""
    result = walk(honest(100, last_page=10**9), start=3, limit=15)
    assert [3, 4] == result.asked
    assert [segment(i) for i in range(20, 40)] == result.seen


def test_an_empty_first_page_is_yielded_and_ends_it():
    """No segments at all: one request, one (empty) page."""
    first = honest(0)(1, 10)
    pages = Pages(first, 1)
    assert pages.wanted(first, 1)
    assert pages.ends(first, 1)
