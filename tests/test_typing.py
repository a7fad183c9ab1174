"""Item 13: ``iterate()`` and ``iter_pages()`` return ``AsyncGenerator``, so that the README's
``contextlib.aclosing(...)`` type-checks under ``mypy --strict``."""

from __future__ import annotations

import collections.abc
import sys
import textwrap
import typing
from pathlib import Path

import pytest

from segments_async import Segment, SegmentPage, SegmentsResource

README_USE = textwrap.dedent(
    """
    import contextlib

    from segments_async import Segment, SegmentPage, SegmentsClient


    async def first_dach(client: SegmentsClient) -> Segment | None:
        async with contextlib.aclosing(client.segments.iterate(concurrency=16)) as segments:
            async for segment in segments:
                if segment.name == "DACH":
                    return segment
        return None


    async def first_page(client: SegmentsClient) -> SegmentPage | None:
        async with contextlib.aclosing(client.segments.iter_pages(per_page=100)) as pages:
            async for page in pages:
                return page
        return None
    """
)


@pytest.mark.parametrize(("method", "item"), [("iterate", Segment), ("iter_pages", SegmentPage)])
def test_the_iterators_are_typed_as_async_generators(method, item):
    """The declared return type is AsyncGenerator[item, None]."""
    hints = typing.get_type_hints(getattr(SegmentsResource, method))
    returned = hints["return"]
    assert collections.abc.AsyncGenerator is typing.get_origin(returned)
    assert (item, None) == typing.get_args(returned)


def test_aclosing_the_iterators_passes_mypy_strict(tmp_path: Path):
    """The README's aclosing pattern, checked by mypy --strict (about ten seconds, cold)."""
    api = pytest.importorskip("mypy.api")
    source = tmp_path / "uses_aclosing.py"
    source.write_text(README_USE)
    cache = Path(__file__).parent.parent / ".mypy_cache"  # warm from `mypy segments_async`
    stdout, stderr, status = api.run(
        ["--strict", "--cache-dir", str(cache), "--python-executable", sys.executable, str(source)]
    )
    assert 0 == status, stdout + stderr
