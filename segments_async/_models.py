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
    """A segment: a named group of the tenant's data, as the API returned it.

    Frozen and slotted; two segments are equal when their ``id`` and ``name`` are.

    Attributes:
        id: The segment's UUID, as the server spelled it (a ``str``).
        name: The segment's name.
    """

    id: str
    name: str


@attrs.frozen(init=False)
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
    items: tuple[Segment, ...]
    filters: tuple[Any, ...] = ()

    # A hand-written __init__ rather than attrs converters, which type checkers see as
    # synthesized descriptor classes (pyright --verifytypes counts them as undocumented).
    def __init__(
        self,
        current_page: int,
        per_page: int,
        last_page: int,
        total: int,
        items: Iterable[Segment],
        filters: Iterable[Any] = (),
    ) -> None:
        """A page; ``items`` and ``filters`` may be any iterables: they become tuples.

        Args:
            current_page: The page's number, from 1.
            per_page: How many segments a full page holds.
            last_page: The number of the last page.
            total: How many segments there are in all.
            items: The page's segments (a tuple is kept as it is, at no cost).
            filters: The filters the server applied.
        """
        self.__attrs_init__(  # pyright: ignore[reportAttributeAccessIssue]
            current_page, per_page, last_page, total, tuple(items), tuple(filters)
        )


@attrs.frozen
class BulkSuccess(Generic[_T_co, _I_co]):
    """An input of a bulk operation that was carried out: one kind of ``BulkResult``.

    ``create_many`` and ``update_many`` yield ``BulkSuccess[Segment, I]``, ``delete_many``
    ``BulkSuccess[None, I]``, where ``I`` is the type of the inputs given.

    Attributes:
        index: The input's 0-based position in the inputs.
        input: The input itself (a name, a ``(segment_id, name)`` pair, an id).
        value: The created or renamed ``Segment``; ``None`` for a delete.
        ok: Always ``True`` (``Literal[True]``: ``if result.ok:`` narrows a ``BulkResult``
            to this class under mypy).
        error: Always ``None``.
        outcome_unknown: Always ``False``.
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

    One kind of ``BulkResult``; a failed input never raises from the bulk operation, its
    error is here.

    Attributes:
        index: The input's 0-based position in the inputs.
        input: The input itself.
        error: The call's ``SegmentsError`` (e.g. ``UnprocessableEntityError`` for a name
            the server refused, ``NotFoundError`` for a delete of an unknown id), or the
            ``ValueError`` / ``TypeError`` of an input refused before anything was sent.
        outcome_unknown: True when the write (create, rename or delete) failed after it may
            have reached the server: it may have been carried out. Reconcile (list, or look
            for the name) before trying it again.
        ok: Always ``False`` (``Literal[False]``).
        value: Always ``None``.
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
    """What became of one input of a bulk operation: ``BulkSuccess`` or ``BulkFailure``.

    ``BulkResult[V, I]`` is the union ``BulkSuccess[V, I] | BulkFailure[I]``; ``I``, the
    input's type, defaults to ``Any``. ``if result.ok:`` narrows it under mypy, ``match``
    and ``isinstance`` under every type checker::

        async for result in client.segments.create_many(names):
            if result.ok:
                print(result.index, result.value.id)  # value: Segment
            elif result.outcome_unknown:
                unknown.append(result.input)  # input: str; it may exist
            else:
                print(result.index, "failed:", result.error)
    """
else:

    class BulkResult(abc.ABC):  # noqa: B024 - an ABC for register(), with no abstract method
        """What became of one input of a bulk operation: ``BulkSuccess`` or ``BulkFailure``.

        For type checkers, ``BulkResult[V, I]`` is the union ``BulkSuccess[V, I] |
        BulkFailure[I]`` (``I`` defaults to ``Any``, so ``BulkResult[Segment]`` means what
        it always did). At run time ``isinstance(result, BulkResult)`` holds for both, and
        ``BulkResult(index, input, value=..., error=..., outcome_unknown=...)`` builds the
        right one, as it did when ``BulkResult`` was a class of its own. ``if result.ok:``
        tells them apart; see ``BulkSuccess`` and ``BulkFailure`` for their attributes.

        Args:
            index: The input's 0-based position in the inputs.
            input: The input itself.
            value: The result of a success (a ``Segment``, or ``None`` for a delete).
            error: The error of a failure; ``None`` makes a ``BulkSuccess``.
            outcome_unknown: Whether a failed write may have been carried out.

        Raises:
            ValueError: Both a value and an error, or ``outcome_unknown=True`` without an
                error.
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
    """What a ``"request"`` event hook receives, before each attempt of a call is sent.

    Never carries the token.

    Attributes:
        method: The HTTP method (``"GET"``, ``"POST"``, ``"PUT"``, ``"DELETE"``).
        url: The request's full URL, query included.
        attempt: Which attempt of the call this is, from 1.
    """

    method: str
    url: str
    attempt: int


@attrs.frozen
class ResponseEvent:
    """What a ``"response"`` event hook receives, after each attempt of a call.

    Never carries the token: the headers are the answer's, not the request's.

    Attributes:
        method: The HTTP method.
        url: The request's full URL, query included.
        attempt: Which attempt of the call this was, from 1.
        status_code: The answer's HTTP status (a 404 or a 503 too), or ``None`` when no
            HTTP answer came.
        headers: A detached, read-only, case-insensitive copy of the answer's headers
            (empty when none came); it outlives the response.
        elapsed: Seconds from sending to the end of the body, the wait for a pooled
            connection excluded.
        error: Why no usable answer came (the connection failed, the attempt timed out,
            the body was cut short or too large), as the ``SegmentsError`` the attempt
            ended with; ``None`` for an answer, whatever its status.
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
    """What a ``"retry"`` event hook receives, before each backoff wait of a call.

    Attributes:
        method: The HTTP method.
        url: The request's full URL, query included.
        attempt: The attempt that failed and is about to be retried, from 1.
        reason: Why it is retried, e.g. ``"HTTP 503"`` or ``"timeout"``.
        delay: The seconds about to be waited (the backoff, or the server's
            ``Retry-After``).
        error: What the failed attempt means, as the ``SegmentsError`` it would raise (an
            ``APIStatusError`` for an answer).
    """

    method: str
    url: str
    attempt: int
    reason: str
    delay: float
    error: SegmentsError | None = None
