"""Requests, without I/O: what to send, and the checks on what a caller passes in.

Everything here is a pure function of its arguments: it builds paths, query strings and
bodies and checks user input before anything is sent. ``_decode`` reads the answers.
"""

from __future__ import annotations

import re
import uuid
from typing import Final

import orjson

__all__ = [
    "MAX_RESPONSE_BYTES",
    "SEGMENTS_PATH",
    "check_name",
    "check_positive_int",
    "list_query",
    "name_body",
    "segment_path",
    "short_repr",
]

SEGMENTS_PATH: Final = "/v2.3/data/segments"

#: The largest body read from the server; a bigger one is refused unread.
MAX_RESPONSE_BYTES: Final = 32 * 1024 * 1024

# --------------------------------------------------------------------------- requests

_UUID_RE: Final = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


def segment_path(segment_id: object) -> str:
    """The path of one segment; ``ValueError`` unless ``segment_id`` holds a UUID.

    Only the canonical 8-4-4-4-12 form is accepted (``uuid.UUID`` itself accepts braces,
    a ``urn:`` prefix and more), so no input can change the path that is requested.
    """
    if isinstance(segment_id, uuid.UUID):
        return f"{SEGMENTS_PATH}/{_uuid_text(segment_id)}"
    if isinstance(segment_id, str) and _UUID_RE.fullmatch(segment_id):
        # str.lower, not the value's own: a str subclass cannot rewrite what is sent.
        return f"{SEGMENTS_PATH}/{str.lower(segment_id)}"
    raise ValueError(
        f"segment_id must be a UUID (a str like '7f2d6e6d-a4ad-4b58-abfe-bd8b918ebec2' "
        f"or a uuid.UUID), got {short_repr(segment_id)}"
    )


#: The 128-bit value slot of ``uuid.UUID``: read through it, a subclass's ``int`` property
#: or ``__str__`` cannot change what is sent.
_UUID_INT: Final = uuid.UUID.__dict__["int"]


def _uuid_text(value: uuid.UUID) -> str:
    try:
        number = _UUID_INT.__get__(value)
    except AttributeError:  # a subclass that never ran UUID.__init__
        number = None
    if number.__class__ is not int or not 0 <= number < 1 << 128:
        # Not repr(value): a UUID's repr formats the very value that is broken.
        raise ValueError(f"segment_id is a {type(value).__name__} without a valid 128-bit value")
    digits = f"{number:032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def check_positive_int(name: str, value: object) -> int:
    """``value`` as an int >= 1: ``TypeError`` for a non-int (bools too), else ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {short_repr(value)}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value!r}")
    return value


def check_name(name: object) -> str:
    """A segment name: ``TypeError`` unless it is a ``str``.

    Whether a name is acceptable (empty, too long) is the server's call: it answers 422.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    return name


def name_body(name: object) -> bytes:
    """The JSON body of a create or update; ``ValueError`` for a name JSON cannot carry."""
    name = check_name(name)
    try:
        return orjson.dumps({"name": name})
    except orjson.JSONEncodeError as exc:  # lone surrogates are not valid UTF-8
        raise ValueError(f"name cannot be encoded as JSON: {exc}") from None


def list_query(page: object, per_page: object) -> str:
    """The query string of a list request (without the ``?``)."""
    page = check_positive_int("page", page)
    per_page = check_positive_int("per_page", per_page)
    return f"page={page}&per_page={per_page}"


def short_repr(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
