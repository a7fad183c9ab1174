"""The public surface: the names users import and the promises DESIGN.md makes about them."""

from __future__ import annotations

import collections.abc
import importlib
import importlib.metadata
import importlib.resources
import sys
import textwrap
import typing
from pathlib import Path

import attrs
import pytest

import segments_async
from segments_async import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RetryPolicy,
    Segment,
    SegmentPage,
    SegmentsError,
    SegmentsResource,
    UnprocessableEntityError,
)

CONTRACT = {
    "BulkResult",
    "ClientClosedError",
    "RequestEvent",
    "ResponseEvent",
    "RetryEvent",
    "APIConnectionError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "InternalServerError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RetryPolicy",
    "Segment",
    "SegmentPage",
    "SegmentsClient",
    "SegmentsError",
    "UnprocessableEntityError",
}

STATUS_SUBCLASSES = [
    BadRequestError,
    AuthenticationError,
    PermissionDeniedError,
    NotFoundError,
    ConflictError,
    UnprocessableEntityError,
    RateLimitError,
    InternalServerError,
]

ALL_ERRORS = [
    SegmentsError,
    APIConnectionError,
    APITimeoutError,
    APIResponseValidationError,
    APIStatusError,
    *STATUS_SUBCLASSES,
]


#: Public names beyond DESIGN.md's lists: the resource's type, the version, and the two
#: classes a BulkResult is.
ADDED = {"SegmentsResource", "__version__", "BulkSuccess", "BulkFailure"}


class TestAll:
    def test_sorted(self):
        """__all__ is kept sorted."""
        assert sorted(segments_async.__all__) == segments_async.__all__

    def test_no_duplicates(self):
        """No name is listed twice."""
        assert len(set(segments_async.__all__)) == len(segments_async.__all__)

    def test_exact_set(self):
        """__all__ is the contract and the names added beside it: nothing less or more."""
        assert CONTRACT | ADDED == set(segments_async.__all__)

    @pytest.mark.parametrize("name", sorted(CONTRACT | ADDED))
    def test_importable(self, name):
        """Every public name can be imported from the package."""
        module = importlib.import_module("segments_async")

        assert getattr(module, name) is not None

    def test_star_import(self):
        """`from segments_async import *` binds exactly __all__."""
        namespace: dict[str, object] = {}
        exec("from segments_async import *", namespace)  # noqa: S102

        assert set(segments_async.__all__) == set(namespace) - {"__builtins__"}


class TestVersion:
    def test_is_str(self):
        """__version__ is a str."""
        assert isinstance(segments_async.__version__, str)

    def test_matches_distribution(self):
        """__version__ is the installed distribution's version."""
        assert importlib.metadata.version("segments-async") == segments_async.__version__


def test_py_typed_ships():
    """The PEP 561 marker is part of the package."""
    assert importlib.resources.files("segments_async").joinpath("py.typed").is_file()


class TestModels:
    def test_segment_frozen(self):
        """Assigning to a Segment raises."""
        segment = Segment(id="7f2d6e6d-a4ad-4b58-abfe-bd8b918ebec2", name="EMEA")

        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            segment.name = "DACH"  # type: ignore[misc]

        assert "EMEA" == segment.name

    def test_segment_slotted(self):
        """Segment has __slots__ and no instance __dict__."""
        segment = Segment(id="x", name="y")

        assert "__slots__" in Segment.__dict__
        assert not hasattr(segment, "__dict__")

    def test_segment_page_frozen(self):
        """Assigning to a SegmentPage raises."""
        page = SegmentPage(current_page=1, per_page=20, last_page=1, total=0, items=[])

        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            page.total = 3  # type: ignore[misc]

        assert 0 == page.total

    def test_segment_page_fields(self):
        """SegmentPage has the snake_case fields of the contract, filters defaulting to ()."""
        page = SegmentPage(current_page=2, per_page=20, last_page=3, total=41, items=[])

        assert [
            "current_page",
            "per_page",
            "last_page",
            "total",
            "items",
            "filters",
        ] == [a.name for a in attrs.fields(SegmentPage)]
        assert () == page.filters

    def test_segment_page_sequences_are_tuples(self):
        """items and filters are tuples, whatever iterable the page was built from."""
        segment = Segment(id="a", name="b")
        page = SegmentPage(1, 20, 1, 1, items=[segment], filters=iter(["f"]))

        assert ((segment,), ("f",)) == (page.items, page.filters)
        with pytest.raises(AttributeError):
            page.items.append(segment)  # type: ignore[attr-defined]

    def test_segment_equality(self):
        """Segments compare by value."""
        assert Segment(id="a", name="b") == Segment(id="a", name="b")
        assert Segment(id="a", name="b") != Segment(id="a", name="c")


class TestRetryPolicy:
    def test_frozen(self):
        """Assigning to a RetryPolicy raises."""
        policy = RetryPolicy()

        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            policy.max_retries = 5  # type: ignore[misc]

        assert 2 == policy.max_retries

    def test_defaults(self):
        """The defaults are the contract's."""
        policy = RetryPolicy()

        assert 2 == policy.max_retries
        assert 0.5 == policy.backoff_initial
        assert 8.0 == policy.backoff_max
        assert 60.0 == policy.retry_after_max
        assert policy.retry_post is False

    def test_max_retries_zero(self):
        """RetryPolicy(max_retries=0) is accepted (it disables retries)."""
        assert 0 == RetryPolicy(max_retries=0).max_retries


class TestHierarchy:
    @pytest.mark.parametrize("cls", ALL_ERRORS)
    def test_everything_is_segments_error(self, cls):
        """Every error the library raises on purpose is a SegmentsError."""
        assert issubclass(cls, SegmentsError)

    def test_segments_error_is_exception(self):
        """SegmentsError is an ordinary Exception."""
        assert issubclass(SegmentsError, Exception)

    def test_timeout_is_connection_error(self):
        """A timeout is caught by `except APIConnectionError`."""
        assert issubclass(APITimeoutError, APIConnectionError)

    @pytest.mark.parametrize("cls", STATUS_SUBCLASSES)
    def test_status_subclasses(self, cls):
        """Each per-status error is an APIStatusError."""
        assert issubclass(cls, APIStatusError)

    @pytest.mark.parametrize("cls", [APIConnectionError, APIResponseValidationError])
    def test_not_status_errors(self, cls):
        """Connection and validation errors are not status errors."""
        assert not issubclass(cls, APIStatusError)

    def test_validation_is_not_connection_error(self):
        """A malformed body is not a connection error (it would be retried as one)."""
        assert not issubclass(APIResponseValidationError, APIConnectionError)


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


TYPED_RESULTS = textwrap.dedent(
    """
    import uuid
    from typing import assert_type

    from segments_async import BulkFailure, BulkResult, BulkSuccess, Segment, SegmentsClient


    async def narrowing(client: SegmentsClient, names: list[str]) -> list[str]:
        unknown: list[str] = []
        async for result in client.segments.create_many(names):
            assert_type(result.input, str)
            if result.ok:
                print(result.value.id)
            elif result.outcome_unknown:
                unknown.append(result.input)
            match result:
                case BulkSuccess(value=segment):
                    assert_type(segment, Segment)
                case BulkFailure(error=error):
                    assert_type(error, Exception)
        return unknown


    async def inputs(client: SegmentsClient, ids: list[uuid.UUID]) -> None:
        async for deleted in client.segments.delete_many(ids):
            assert_type(deleted.input, uuid.UUID)
            if isinstance(deleted, BulkSuccess):
                assert_type(deleted.value, None)
        async for renamed in client.segments.update_many([("7f2d6e6d", "x")]):
            assert_type(renamed.input, tuple[str, str])


    def old_annotation(result: BulkResult[Segment]) -> str | None:
        # BulkResult[Segment] still type-checks; the input is then Any.
        return result.value.name if result.ok else None
    """
)

#: What mypy must refuse, each on its line: a frozen page's items are not a list.
TYPED_MISUSE = textwrap.dedent(
    """
    from segments_async import BulkResult, Segment, SegmentPage


    def misuse(page: SegmentPage, result: BulkResult[Segment, str]) -> None:
        page.items.append(Segment(id="a", name="b"))
        print(result.value.id)
        number: int = result.input
    """
)


def test_bulk_results_and_pages_type_check_as_documented(tmp_path: Path):
    """mypy --strict narrows BulkResult on ok, types its input, and refuses misuse."""
    api = pytest.importorskip("mypy.api")
    (tmp_path / "typed_results.py").write_text(TYPED_RESULTS)
    (tmp_path / "typed_misuse.py").write_text(TYPED_MISUSE)
    cache = Path(__file__).parent.parent / ".mypy_cache"
    options = ["--strict", "--cache-dir", str(cache), "--python-executable", sys.executable]
    stdout, stderr, _ = api.run([*options, "--no-error-summary", str(tmp_path)])
    errors = [line.split(": error: ")[0].rsplit("/", 1)[-1] for line in stdout.splitlines()]
    assert ["typed_misuse.py:6", "typed_misuse.py:7", "typed_misuse.py:8"] == errors, (
        stdout + stderr
    )
