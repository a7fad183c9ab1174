"""The API's resources, bulk results and the client's events: frozen, slotted attrs classes."""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, Literal

import attrs
from typing_extensions import TypeAliasType, TypeVar

from ._errors import SegmentsError

__all__ = [
    "BulkFailure",
    "BulkResult",
    "BulkSuccess",
    "RequestEvent",
    "ResponseEvent",
    "RetryEvent",
    "Segment",
    "SegmentPage",
]

_T_co = TypeVar("_T_co", covariant=True)
#: The input's type; ``Any`` by default, so that ``BulkResult[Segment]`` keeps meaning
#: "any input" (PEP 696).
_I_co = TypeVar("_I_co", covariant=True, default=Any)


@attrs.frozen
class Segment:
    """A segment: a named group of the tenant's data."""

    id: str
    name: str


# tuple() of a tuple is the tuple itself: the decoder's tuples pass through at no cost.
def _segments(items: Iterable[Segment]) -> tuple[Segment, ...]:
    return tuple(items)


def _filters(filters: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(filters)


@attrs.frozen
class SegmentPage:
    """One page of the segment list, as the server numbered and sized it.

    ``per_page`` and ``last_page`` are the server's: it may clamp the ``per_page`` asked for.
    ``items`` and ``filters`` are tuples, as frozen as the page (any iterable given to the
    constructor becomes one).

    Attributes:
        current_page: The page's number, from 1 (the wire's ``currentPage``).
        per_page: How many segments a full page holds (``perPage``).
        last_page: The number of the last page (``lastPage``).
        total: How many segments the tenant has in all.
        items: The page's segments, in the server's order.
        filters: The filters the server applied (the API sends an empty list).
    """

    current_page: int
    per_page: int
    last_page: int
    total: int
    items: tuple[Segment, ...] = attrs.field(converter=_segments)
    filters: tuple[Any, ...] = attrs.field(factory=tuple, converter=_filters)


@attrs.frozen
class BulkSuccess(Generic[_T_co, _I_co]):
    """An input of a bulk operation that was carried out.

    ``ok`` is ``True``, ``error`` is ``None`` and ``outcome_unknown`` is ``False``; they are
    there so that code can test any ``BulkResult`` the same way.

    Attributes:
        index: The input's 0-based position in the inputs.
        input: The input itself (a name, a ``(segment_id, name)`` pair, an id).
        value: The created or renamed ``Segment``; ``None`` for a delete.
    """

    index: int
    input: _I_co
    value: _T_co
    ok: Literal[True] = attrs.field(default=True, init=False, repr=False)
    error: None = attrs.field(default=None, init=False, repr=False)
    outcome_unknown: Literal[False] = attrs.field(default=False, init=False, repr=False)


@attrs.frozen
class BulkFailure(Generic[_I_co]):
    """An input of a bulk operation that failed, or whose outcome is unknown.

    ``ok`` is ``False`` and ``value`` is ``None``.

    Attributes:
        index: The input's 0-based position in the inputs.
        input: The input itself.
        error: The call's ``SegmentsError``, or the ``ValueError`` / ``TypeError`` of an
            input refused before anything was sent.
        outcome_unknown: True when the write (create, rename or delete) failed after it may
            have reached the server: it may have been carried out. Reconcile (list, or look
            for the name) before trying it again.
    """

    index: int
    input: _I_co
    error: Exception
    outcome_unknown: bool = False
    ok: Literal[False] = attrs.field(default=False, init=False, repr=False)
    value: None = attrs.field(default=None, init=False, repr=False)


if TYPE_CHECKING:
    BulkResult = TypeAliasType(
        "BulkResult", BulkSuccess[_T_co, _I_co] | BulkFailure[_I_co], type_params=(_T_co, _I_co)
    )
    """What became of one input of a bulk operation: ``BulkSuccess`` or ``BulkFailure``."""
else:

    class BulkResult(abc.ABC):  # noqa: B024 - an ABC for register(), with no abstract method
        """What became of one input of a bulk operation: ``BulkSuccess`` or ``BulkFailure``.

        For type checkers, ``BulkResult[V, I]`` is the union ``BulkSuccess[V, I] |
        BulkFailure[I]`` (``I`` defaults to ``Any``, so ``BulkResult[Segment]`` means what
        it always did). At run time ``isinstance(result, BulkResult)`` holds for both, and
        ``BulkResult(index, input, value=..., error=..., outcome_unknown=...)`` builds the
        right one, as it did when ``BulkResult`` was a class of its own.
        """

        __slots__ = ()

        def __new__(
            cls,
            index: int,
            input: object,
            value: object = None,
            error: Exception | None = None,
            outcome_unknown: bool = False,
        ) -> object:
            if error is None:
                if outcome_unknown:
                    raise ValueError("outcome_unknown=True needs an error: the input failed")
                return BulkSuccess(index, input, value)
            if value is not None:
                raise ValueError("a BulkResult has a value or an error, not both")
            return BulkFailure(index, input, error, outcome_unknown)

        def __class_getitem__(cls, params: object) -> type:
            return cls  # BulkResult[Segment] in annotations evaluated at run time

    BulkResult.register(BulkSuccess)
    BulkResult.register(BulkFailure)


@attrs.frozen
class RequestEvent:
    """Before each attempt of a call: ``attempt`` counts from 1. Never carries the token."""

    method: str
    url: str
    attempt: int


@attrs.frozen
class ResponseEvent:
    """After each attempt of a call.

    ``status_code`` is ``None`` when no HTTP answer came, and ``error`` then says why (the
    connection failed, the attempt timed out, the body was cut short or too large);
    otherwise ``error`` is ``None`` and the answer's status tells (a 503 is an answer).
    ``headers`` is a detached, case-insensitive copy of the answer's headers (empty when
    none came); ``elapsed`` is the seconds from sending to the end of the body, the wait
    for a pooled connection excluded.
    """

    method: str
    url: str
    attempt: int
    status_code: int | None
    headers: Mapping[str, str]
    elapsed: float
    error: SegmentsError | None = None


@attrs.frozen
class RetryEvent:
    """Before each backoff wait: the attempt that failed, why, and the seconds to wait."""

    method: str
    url: str
    attempt: int
    reason: str
    delay: float
    error: SegmentsError | None = None
