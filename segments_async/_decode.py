"""Answers, without I/O: what ``(status, headers, body)`` means.

Everything here is a pure function of its arguments: it turns an answer into a model
through the one cattrs converter, or into the exception the answer means.
"""

from __future__ import annotations

import http
import re
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

import cattrs
import orjson
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


def _strict_str(value: Any, _: type) -> str:
    if value.__class__ is str:
        return value
    raise TypeError(f"expected a string, got {type(value).__name__}")


def _strict_int(value: Any, _: type) -> int:
    # bool is an int subclass and a float would be truncated: neither is a page number.
    if value.__class__ is int:
        return value
    raise TypeError(f"expected an integer, got {type(value).__name__}")


#: Python attribute name -> wire name, where they differ.
_WIRE_NAMES: Final = {
    "current_page": "currentPage",
    "per_page": "perPage",
    "last_page": "lastPage",
}


def _require_list(value: Any) -> None:
    # cattrs iterates whatever it is given: a string or an object would become a list.
    if value.__class__ is not list:
        raise TypeError(f"expected a list, got {type(value).__name__}")


def _strict_list(conv: OrjsonConverter, list_type: Any) -> Callable[[Any, Any], Any]:
    structure_list = conv.get_structure_hook(list_type)

    def structure(value: Any, type_: Any) -> Any:
        _require_list(value)
        return structure_list(value, type_)

    return structure


# Setting a frozen, slotted instance's slots directly is what attrs' own __init__ does
# (through object.__setattr__); tests check that Segment has no validator or converter
# that this would skip, and that both paths build equal objects.
_new_object = object.__new__
_set_segment_id = Segment.__dict__["id"].__set__
_set_segment_name = Segment.__dict__["name"].__set__


def _fast_segment_list(value: Any, _: Any) -> list[Segment]:
    """A page's items on the hot path: one loop, the same strict checks, no per-field calls.

    Any failure (a non-list, a non-object item, a missing key, a non-string) raises, and
    the explaining converter, built by cattrs alone, then names the field.
    """
    _require_list(value)
    segments: list[Segment] = []
    append = segments.append
    for item in value:
        segment_id = item["id"]
        name = item["name"]
        if segment_id.__class__ is not str or name.__class__ is not str:
            raise TypeError("expected a string")
        segment = _new_object(Segment)
        _set_segment_id(segment, segment_id)
        _set_segment_name(segment, name)
        append(segment)
    return segments


def _make_converter(*, detailed_validation: bool) -> OrjsonConverter:
    """The one converter configuration for every wire shape.

    Scalars and lists are checked, not coerced: cattrs would turn a numeric name into a
    string, truncate a float page number and make a list of a string's characters,
    hiding a server bug behind plausible data.
    """
    conv = make_converter(detailed_validation=detailed_validation, forbid_extra_keys=False)
    conv.register_structure_hook(str, _strict_str)
    conv.register_structure_hook(int, _strict_int)
    overrides = {attr: override(rename=wire) for attr, wire in _WIRE_NAMES.items()}
    overrides["items"] = override(
        struct_hook=_strict_list(conv, list[Segment]) if detailed_validation else _fast_segment_list
    )
    overrides["filters"] = override(struct_hook=_strict_list(conv, list[Any]))
    conv.register_structure_hook(
        SegmentPage,
        make_dict_structure_fn(SegmentPage, conv, **overrides),  # type: ignore[arg-type]
    )
    return conv


#: Detailed validation off on the hot path (about twice as fast) ...
_converter: Final = _make_converter(detailed_validation=False)
#: ... and on, only to name the offending field once a body has failed.
_explaining_converter: Final = _make_converter(detailed_validation=True)


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


#: The hot path's structure functions, looked up once rather than dispatched per call.
_fast_hooks: Final[dict[type, Callable[[Any, type], Any]]] = {
    cls: _converter.get_structure_hook(cls) for cls in (Segment, SegmentPage)
}


def _structure(result: Any, cls: type[_T]) -> _T:
    try:
        return _fast_hooks[cls](result, cls)  # type: ignore[no-any-return]
    except Exception:  # noqa: S110 - any failure is a malformed body: explained below
        pass
    try:
        _explaining_converter.structure(result, cls)
    except Exception as exc:
        field, message = _explain(exc, result)
        raise InvalidResponse(message, field=field, body=None) from None
    # Only reachable if the two converters disagree, which would be a bug here.
    raise InvalidResponse("response does not match the expected shape", field="result")


_PATH_RE: Final = re.compile(r"^(?P<message>.*) @ \$(?P<path>.*)$")
_STEP_RE: Final = re.compile(r"\.(\w+)|\[(\d+)\]")


def _explain(exc: BaseException, result: Any) -> tuple[str, str]:
    """(field path under ``result``, in wire names, and message) of the first error."""
    path = ""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, cattrs.BaseValidationError):
        for line in cattrs.transform_error(exc):
            match = _PATH_RE.match(line)
            if match:
                path, message = match["path"], match["message"]
                break
    # cattrs blames a value that is not an object on the object's first field; walk the
    # path through the body to blame the value itself.
    node, where = result, "result"
    for step in _STEP_RE.finditer(path):
        if step[1] is not None:
            if node.__class__ is not dict:
                return where, f"expected an object, got {_json_type(node)}"
            name = _WIRE_NAMES.get(step[1], step[1])
            where = f"{where}.{name}"
            node = node.get(name)
        else:
            index = int(step[2])
            if node.__class__ is not list or index >= len(node):
                break
            where = f"{where}[{index}]"
            node = node[index]
    return where, message


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        value.__class__, "number"
    )


def decode_segment_page(body: bytes) -> SegmentPage:
    """A list answer's body as a ``SegmentPage``; ``InvalidResponse`` if malformed."""
    return _structure(_envelope_result(body), SegmentPage)


def decode_segment(body: bytes) -> Segment:
    """A create or update answer's body as a ``Segment``; ``InvalidResponse`` if malformed."""
    return _structure(_envelope_result(body), Segment)


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

    ``now`` is the Unix time, for a ``Retry-After`` given as a date.
    """
    if 200 <= status < 300:
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
