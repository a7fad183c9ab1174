"""Answers, without I/O: what ``(status, headers, body)`` means.

Everything here is a pure function of its arguments: it turns an answer into a model
through the one cattrs converter, or into the exception the answer means.
"""

from __future__ import annotations

import functools
import http
import re
from collections.abc import Callable, Mapping
from typing import Any, Final, Generic, TypeVar, cast, final

import cattrs
import orjson
from cattrs.errors import IterableValidationError, IterableValidationNote
from cattrs.gen import make_dict_structure_fn, override
from cattrs.preconf.orjson import OrjsonConverter, make_converter
from multidict import CIMultiDict

from ._errors import (
    APIResponseValidationError,
    APIStatusError,
    RateLimitError,
    status_error_class,
)
from ._models import Segment, SegmentPage
from ._retry import parse_retry_after

__all__ = [
    "InvalidResponse",
    "Later",
    "Unread",
    "decode_delete",
    "decode_segment",
    "decode_segment_page",
    "read_response",
    "status_error",
]

#: How much of a body an exception keeps, and how much of it goes into a message.
_BODY_EXCERPT: Final = 2048
_MESSAGE_EXCERPT: Final = 300
#: How much of a non-JSON body is scanned for text (an HTML page's CSS can be long).
_HTML_SCAN: Final = 64 * 1024

_T = TypeVar("_T")

# --------------------------------------------------------------------------- converter


def _json_type(value: object) -> str:
    """The JSON name of a decoded value's type, for messages about the wire."""
    if value is None:
        return "null"
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        value.__class__, "number"
    )


def _strict_str(value: Any, _: type) -> str:
    if value.__class__ is str:
        return value
    raise TypeError(f"expected a string, got {_json_type(value)}")


def _strict_int(value: Any, _: type) -> int:
    # bool is an int subclass and a float would be truncated: neither is a page number.
    if value.__class__ is int:
        return value
    raise TypeError(f"expected an integer, got {_json_type(value)}")


def _require_list(value: Any) -> None:
    # cattrs iterates whatever it is given: a string or an object would become a list.
    if value.__class__ is not list:
        raise TypeError(f"expected an array, got {_json_type(value)}")


def _strict_list(conv: OrjsonConverter, list_type: Any) -> Callable[[Any, Any], Any]:
    structure_list = conv.get_structure_hook(list_type)

    def structure(value: Any, type_: Any) -> Any:
        _require_list(value)
        return structure_list(value, type_)

    return structure


def _objects_only(structure: Callable[[Any, Any], _T]) -> Callable[[Any, Any], _T]:
    """``structure``, refusing anything but a JSON object.

    cattrs would index a string or a list by each field name in turn and blame the
    first field; the value itself is what is wrong.
    """

    def structure_object(value: Any, type_: Any) -> _T:
        if value.__class__ is not dict:
            raise TypeError(f"expected an object, got {_json_type(value)}")
        return structure(value, type_)

    return structure_object


# attrs' frozen __init__ sets each slot through object.__setattr__, bound anew per call;
# the slots' own descriptors do the same in two thirds of the time, and __init__ would
# make a whole page's decoding about 30% slower (measured: benchmarks/README.md). Tests
# check that Segment has no validator, converter or hook this would skip, and that both
# build equal objects.
_new_object = object.__new__
_set_segment_id = Segment.__dict__["id"].__set__
_set_segment_name = Segment.__dict__["name"].__set__


def _segment_list(conv: OrjsonConverter) -> Callable[[Any, Any], tuple[Segment, ...]]:
    """A page's items, the hot path of the library: one plain loop.

    An item the loop cannot take as it is goes through the converter's strict
    ``Segment`` hook alone, which builds it or explains it; the items after it are
    never looked at, so a page of bad items fails as fast as a good page decodes.
    """
    structure_segment = conv.get_structure_hook(Segment)

    def structure_items(value: Any, _: Any) -> tuple[Segment, ...]:
        _require_list(value)
        segments: list[Segment] = []
        for index, item in enumerate(value):
            try:
                segment_id = item["id"]
                name = item["name"]
            except (KeyError, TypeError):  # a key missing, or not an object at all
                segment_id = name = None
            if segment_id.__class__ is str and name.__class__ is str:
                segment = _new_object(Segment)
                _set_segment_id(segment, segment_id)
                _set_segment_name(segment, name)
                segments.append(segment)
                continue
            try:
                segments.append(structure_segment(item, Segment))
            except (cattrs.ClassValidationError, TypeError) as exc:
                # What cattrs' own list hook raises, for this one item.
                note = f"Structuring list[Segment] @ index {index}"
                exc.add_note(IterableValidationNote(note, index, Segment))
                raise IterableValidationError(
                    "While structuring list[Segment]", [exc], list[Segment]
                ) from None
        return tuple(segments)

    return structure_items


#: Python attribute name -> wire name, where they differ.
_WIRE_NAMES: Final = {
    "current_page": "currentPage",
    "per_page": "perPage",
    "last_page": "lastPage",
}


def _configure_converter(conv: OrjsonConverter) -> None:
    """The one configuration for every wire shape.

    Scalars and lists are checked, not coerced: cattrs would turn a numeric name into a
    string, truncate a float page number and make a list of a string's characters,
    hiding a server bug behind plausible data.
    """
    conv.register_structure_hook(str, _strict_str)
    conv.register_structure_hook(int, _strict_int)
    conv.register_structure_hook(Segment, _objects_only(make_dict_structure_fn(Segment, conv)))
    overrides = {attr: override(rename=wire) for attr, wire in _WIRE_NAMES.items()}
    overrides["items"] = override(struct_hook=_segment_list(conv))
    overrides["filters"] = override(struct_hook=_strict_list(conv, list[Any]))
    conv.register_structure_hook(
        SegmentPage,
        _objects_only(make_dict_structure_fn(SegmentPage, conv, **overrides)),  # type: ignore[arg-type]
    )


#: Detailed validation on: a failure carries the path to the offending value.
_converter: Final = make_converter(detailed_validation=True, forbid_extra_keys=False)
_configure_converter(_converter)
#: Looked up once rather than dispatched on every decode.
_structure_segment: Final = _converter.get_structure_hook(Segment)
_structure_page: Final = _converter.get_structure_hook(SegmentPage)


class InvalidResponse(Exception):
    """A 2xx body that does not fit the envelope or the model (``_client`` adds the context)."""

    def __init__(self, message: str, field: str | None = None, body: object = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.body = body


class _Unsuccessful(Exception):
    """A 2xx envelope that says ``"success": false``."""

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__()
        self.data = data


def _envelope_result(body: bytes) -> Any:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidResponse("response body is not valid JSON", body=_text_excerpt(body)) from None
    if data.__class__ is not dict:
        raise InvalidResponse("response body is not a JSON object", field=None, body=data)
    success = data.get("success")
    if success is True:
        try:
            return data["result"]
        except KeyError:
            raise InvalidResponse("missing field", field="result", body=data) from None
    if success is False:
        raise _Unsuccessful(data)
    raise InvalidResponse("'success' must be true or false", field="success", body=data)


def _structure(result: Any, structure: Callable[[Any, type[_T]], _T], cls: type[_T]) -> _T:
    try:
        return structure(result, cls)
    except (cattrs.BaseValidationError, TypeError) as exc:
        field, message = _explain(exc)
        raise InvalidResponse(message, field=field, body=None) from None


def _explain(exc: Exception) -> tuple[str, str]:
    """(path under ``result``, in wire names, and message) of the first failure in ``exc``."""
    path = "result"
    while isinstance(exc, cattrs.BaseValidationError):
        exc, step = _first_failure(exc)
        path += step
    if isinstance(exc, KeyError):
        return path, "missing field"
    return path, str(exc)


def _first_failure(group: cattrs.BaseValidationError) -> tuple[Exception, str]:
    """A cattrs group's first failure, and the step down the path that its note names."""
    if isinstance(group, cattrs.ClassValidationError):
        attributes, _ = group.group_exceptions()
        if attributes:
            exc, attribute = attributes[0]
            return exc, "." + _WIRE_NAMES.get(attribute.name, attribute.name)
    elif isinstance(group, IterableValidationError):
        elements, _ = group.group_exceptions()
        if elements:
            exc, element = elements[0]
            return exc, f"[{element.index}]"
    # A failure without a note (a class refusing its structured values) adds no step.
    return group.exceptions[0], ""


def decode_segment_page(body: bytes) -> SegmentPage:
    """A list answer's body as a ``SegmentPage``; ``InvalidResponse`` if malformed."""
    return _structure(_envelope_result(body), _structure_page, SegmentPage)


def decode_segment(body: bytes) -> Segment:
    """A create or update answer's body as a ``Segment``; ``InvalidResponse`` if malformed."""
    result = _envelope_result(body)
    # The well-formed answer in one step, as the page items' loop does (one per create:
    # benchmark section f measured it); anything else goes through the converter, which
    # builds or explains it.
    if result.__class__ is dict:
        segment_id, name = result.get("id"), result.get("name")
        if segment_id.__class__ is str and name.__class__ is str:
            segment = _new_object(Segment)
            _set_segment_id(segment, segment_id)
            _set_segment_name(segment, name)
            return segment
    return _structure(result, _structure_segment, Segment)


def decode_delete(body: bytes) -> None:
    """A delete answer: 204, with or without a body (the spec shows one), or another 2xx.

    A body is not needed, so one that is not JSON is ignored; only an envelope that says
    ``"success": false`` turns the answer into an error.
    """
    if not body:
        return
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return
    if data.__class__ is dict and data.get("success") is False:
        raise _Unsuccessful(data)


# --------------------------------------------------------------------------- answers


@final
class Later(Generic[_T]):
    """``decode`` put off: ``read_response`` given one returns the 2xx answer as an
    ``Unread``, decoded when its ``read()`` is called. The paginators read a page when the
    caller reaches it, not when it arrives: the pages fetched ahead are held as their
    bodies' bytes, and a page's objects are made just before the one before it is freed,
    which keeps the cyclic GC's count of young objects level (a fixed 64 spent 12-13 % of
    its CPU collecting pages decoded in bursts)."""

    __slots__ = ("decode",)

    def __init__(self, decode: Callable[[bytes], _T]) -> None:
        self.decode = decode

    def __call__(self, body: bytes) -> Unread[_T]:
        """Not used: ``read_response`` makes the ``Unread``, with the answer's details."""
        raise TypeError("a Later decoder is applied through read_response")


@final
class Unread(Generic[_T]):
    """A 2xx answer not yet decoded, with what its errors name (method, URL, status,
    headers): ``read()`` decodes it each time it is called, raising what
    ``read_response`` would have raised on arrival."""

    __slots__ = ("_read",)

    def __init__(self, read: Callable[[], _T]) -> None:
        self._read = read

    def read(self) -> _T:
        """The model; ``APIResponseValidationError`` or ``APIStatusError`` if the answer
        cannot be read or its envelope says it failed."""
        return self._read()


def read_response(
    decode: Callable[[bytes], _T],
    *,
    method: str,
    url: str,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
) -> _T:
    """The model for a 2xx answer, or the exception that any other answer means.

    ``now`` is the Unix time, for a ``Retry-After`` given as a date. With a ``Later``
    decoder, a 2xx answer is returned unread (``Unread``), to be decoded when asked.
    """
    if 200 <= status < 300:
        if isinstance(decode, Later):
            # A Later[M] is a Callable[[bytes], Unread[M]]: _T is Unread[M].
            read = functools.partial(
                read_response,
                decode.decode,
                method=method,
                url=url,
                status=status,
                headers=headers,
                body=body,
                now=now,
            )
            return cast(_T, Unread(read))
        try:
            return decode(body)
        except _Unsuccessful as unsuccessful:
            raise _status_error_from_data(
                unsuccessful.data, method=method, url=url, status=status, headers=headers, now=now
            ) from None
        except InvalidResponse as invalid:
            where = f" at {invalid.field}" if invalid.field else ""
            raise APIResponseValidationError(
                f"malformed response{where}: {invalid.message}",
                method=method,
                url=url,
                status_code=status,
                body=invalid.body,
                field=invalid.field,
            ) from None
    raise status_error(method=method, url=url, status=status, headers=headers, body=body, now=now)


def status_error(
    *,
    method: str,
    url: str,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
) -> APIStatusError:
    """The exception for an error answer (any status outside 2xx)."""
    data: object
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        data = _text_excerpt(body)
    return _status_error_from_data(
        data, method=method, url=url, status=status, headers=headers, now=now
    )


def _status_error_from_data(
    data: object,
    *,
    method: str,
    url: str,
    status: int,
    headers: Mapping[str, str],
    now: float,
) -> APIStatusError:
    # A detached, case-insensitive copy: the exception may outlive the response, and
    # must pickle (aiohttp's header proxy does not).
    headers = CIMultiDict(headers)
    fallback = 'the server answered "success": false' if 200 <= status < 300 else _reason(status)
    message = _error_message(data) or fallback
    if isinstance(data, str):
        excerpt = _collapse(data)
        if excerpt:
            message = f"{message}: {excerpt[:_MESSAGE_EXCERPT]}"
    cls = status_error_class(status)
    if status >= 300 and status < 400:
        location = headers.get("Location")
        message = f"{message} (redirect to {location!r} not followed)" if location else message
    if cls is RateLimitError:
        return RateLimitError(
            message,
            method=method,
            url=url,
            status_code=status,
            body=data,
            headers=headers,
            retry_after=parse_retry_after(headers.get("Retry-After"), now),
        )
    return cls(message, method=method, url=url, status_code=status, body=data, headers=headers)


def _error_message(data: object) -> str | None:
    """The server's own words: ``message``, ``error.message`` or a string ``error``."""
    if not isinstance(data, dict):
        return None
    candidates: list[object] = [data.get("message")]
    error = data.get("error")
    if isinstance(error, dict):
        candidates.append(error.get("message"))
    else:
        candidates.append(error)
    for candidate in candidates:
        if isinstance(candidate, str) and candidate.strip():
            return _collapse(candidate)[:_MESSAGE_EXCERPT]
    return None


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


_TAG_RE: Final = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.IGNORECASE | re.DOTALL)
_SPACE_RE: Final = re.compile(r"\s+")


#: A tag, script or style block cut off by the excerpt's bound.
_OPEN_TAG_RE: Final = re.compile(r"<(?:script|style)\b.*$|<[^>]*$", re.IGNORECASE | re.DOTALL)


def _text_excerpt(body: bytes) -> str:
    """A bounded, readable excerpt of a body that is not JSON (HTML tags dropped)."""
    text = body[:_HTML_SCAN].decode("utf-8", "replace")
    if "<" in text:
        text = _OPEN_TAG_RE.sub(" ", _TAG_RE.sub(" ", text))
    return _collapse(text)[:_BODY_EXCERPT]


def _collapse(text: str) -> str:
    return _SPACE_RE.sub(" ", text).strip()
