"""The fake's API logic, without I/O: tenants, segments, and request -> reply."""

from __future__ import annotations

import math
import random
import re
import uuid
from http import HTTPStatus
from typing import Any

import attrs
import orjson
from multidict import MultiMapping

__all__ = [
    "DELETE_SPEC_BODY",
    "MAX_BODY_BYTES",
    "MAX_PAGE",
    "SEGMENTS_PATH",
    "Reply",
    "Store",
    "Tenant",
    "bearer_token",
    "check_token",
    "dispatch",
    "error_reply",
    "status_error_code",
    "status_phrase",
]

SEGMENTS_PATH = "/v2.3/data/segments"
MAX_NAME_LENGTH = 255
DEFAULT_PER_PAGE = 20
# The largest page and per_page accepted (a signed 32-bit int, as many real APIs use);
# a larger value is a 400 rather than a number the server cannot represent.
MAX_PAGE = 2**31 - 1
# The largest request body read (aiohttp's default client_max_size); more is a 413.
MAX_BODY_BYTES = 1024 * 1024
# The body the spec shows for a DELETE's 204; sent only when the server is asked to.
DELETE_SPEC_BODY = b'{"success":true,"result":[]}'

# The only id form the client sends; uuid.UUID() would also take braces, urn:uuid: and
# 32 bare hex digits, which a careful server answers 404 like any unknown id.
_CANONICAL_ID = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE | re.ASCII
)
_JSON_TYPES = frozenset({"application/json", "application/*", "*/*"})
_NAME_WORDS = (
    "EMEA", "DACH", "APAC", "LATAM", "Nordics", "Benelux", "Iberia", "Baltics",
    "North America", "Middle East", "Oceania", "Central Europe", "Balkans", "Maghreb",
)  # fmt: skip


@attrs.frozen
class Reply:
    """A response to send: status, headers and body."""

    status: int
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


def status_phrase(status: int) -> str:
    """The reason phrase of a status: 404 -> ``Not Found``."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def status_error_code(status: int) -> str:
    """The snake_case error code of a status: 404 -> ``not_found``; ``error`` if unknown."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        return "error"
    return phrase.lower().replace(" ", "_").replace("-", "_").replace("'", "")


def error_reply(
    status: int, code: str, message: str, headers: tuple[tuple[str, str], ...] = ()
) -> Reply:
    """A reply with the API's error envelope."""
    body = {"success": False, "error": {"code": code, "message": message}}
    return Reply(status, orjson.dumps(body), headers=headers)


def _ok(result: Any) -> Reply:
    return Reply(200, orjson.dumps({"success": True, "result": result}))


class Tenant:
    """One tenant's segments, in insertion order."""

    __slots__ = ("_items", "_rows")

    def __init__(self) -> None:
        # id -> {"id", "name"}; the row dicts are shared with the cached list, so a
        # rename updates both and only a delete invalidates the list.
        self._rows: dict[str, dict[str, str]] = {}
        self._items: list[dict[str, str]] | None = None

    def __len__(self) -> int:
        return len(self._rows)

    def names(self) -> dict[str, str]:
        """A copy of the state: id -> name."""
        return {segment_id: row["name"] for segment_id, row in self._rows.items()}

    def page(self, page: int, per_page: int) -> list[dict[str, str]]:
        """The rows of a page (1-based); empty past the last page."""
        if self._items is None:
            self._items = list(self._rows.values())
        start = (page - 1) * per_page
        return self._items[start : start + per_page]

    def get(self, segment_id: str) -> dict[str, str] | None:
        """The row of a segment, or None."""
        return self._rows.get(segment_id)

    def create(self, segment_id: str, name: str) -> dict[str, str]:
        """Add a segment; returns its row."""
        row = {"id": segment_id, "name": name}
        self._rows[segment_id] = row
        if self._items is not None:
            self._items.append(row)
        return row

    def delete(self, segment_id: str) -> bool:
        """Remove a segment; False if there was none."""
        if self._rows.pop(segment_id, None) is None:
            return False
        self._items = None
        return True


class Store:
    """All tenants, by token, and the seeded RNG that names and numbers segments."""

    __slots__ = ("_rng", "tenants")

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self.tenants: dict[str, Tenant] = {}

    def new_id(self) -> str:
        """A UUID4 string drawn from the seeded RNG."""
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def add_segments(self, tenant: Tenant, count: int) -> dict[str, str]:
        """Add ``count`` generated segments to ``tenant``; returns them, id -> name."""
        created: dict[str, str] = {}
        start = len(tenant) + 1
        for number in range(start, start + count):
            name = f"{self._rng.choice(_NAME_WORDS)} {number}"
            row = tenant.create(self.new_id(), name)
            created[row["id"]] = name
        return created


def accepts_json(accept: str | None) -> bool:
    """Whether an Accept header admits application/json (a ``q=0`` range excludes)."""
    if not accept:
        return False
    for media_range in accept.split(","):
        media_type, *params = media_range.split(";")
        if media_type.strip().lower() not in _JSON_TYPES:
            continue
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = 0.0
        if quality > 0:
            return True
    return False


def is_json_content_type(content_type: str | None) -> bool:
    """Whether a Content-Type header is application/json (parameters ignored)."""
    if content_type is None:
        return False
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


def _query_int(query: MultiMapping[str], key: str, default: int) -> int | None:
    """A positive int of at most MAX_PAGE given at most once, the default if absent, or None."""
    values = query.getall(key, [])
    if not values:
        return default
    if len(values) > 1:
        return None
    raw = values[0]
    # Compare as text first: int() of thousands of digits is slow, or refused.
    if not (raw.isascii() and raw.isdigit()) or len(raw.lstrip("0")) > len(str(MAX_PAGE)):
        return None
    value = int(raw)
    return value if 0 < value <= MAX_PAGE else None


def _canonical_id(raw: str) -> str | None:
    return raw.lower() if _CANONICAL_ID.fullmatch(raw) else None


def check_token(token: object) -> str:
    """A tenant's token, refused as the client refuses it: ValueError, TypeError.

    A token is a non-empty string of printable ASCII without spaces, so that
    ``Bearer <token>`` is a valid header. The message never repeats the token.
    """
    if not isinstance(token, str):
        raise TypeError(f"token must be a str, got {type(token).__name__}")
    if not token or not token.isascii() or not token.isprintable() or " " in token:
        raise ValueError(
            "token must be a non-empty ASCII string without spaces or control characters"
        )
    return token


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme in any case), or None.

    Exactly one space separates scheme and token; anything else is no token.
    """
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    try:
        return check_token(token)
    except ValueError:
        return None


def _route(method: str, path: str) -> tuple[str | None, Reply | None]:
    """Match a path: (segment id or None, None) or (None, an error reply)."""
    if path == SEGMENTS_PATH:
        if method in ("GET", "POST"):
            return None, None
        return None, _method_not_allowed(method, "GET, POST")
    prefix = SEGMENTS_PATH + "/"
    if path.startswith(prefix) and "/" not in path[len(prefix) :] and len(path) > len(prefix):
        if method in ("PUT", "DELETE"):
            return path[len(prefix) :], None
        return None, _method_not_allowed(method, "PUT, DELETE")
    return None, error_reply(404, "not_found", f"No route for {method} {path}")


def _method_not_allowed(method: str, allow: str) -> Reply:
    return error_reply(
        405,
        "method_not_allowed",
        f"Method {method} is not allowed here; allowed: {allow}",
        headers=(("Allow", allow),),
    )


def _read_name(body: bytes) -> str | Reply:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return error_reply(400, "invalid_json", "The request body is not valid JSON")
    if not isinstance(data, dict):
        return error_reply(400, "invalid_body", "The request body must be a JSON object")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LENGTH:
        return error_reply(
            422,
            "validation_error",
            f"name must be a non-empty string of at most {MAX_NAME_LENGTH} characters",
        )
    return name


def dispatch(
    store: Store,
    tenant: Tenant | None,
    method: str,
    path: str,
    query: MultiMapping[str],
    *,
    accept: str | None,
    content_type: str | None,
    body: bytes,
    max_per_page: int,
) -> Reply:
    """Answer one request as the Segments API would, changing ``tenant``'s state.

    Checks, first failure wins: route (404/405), auth (401), Accept (406), Content-Type
    of POST/PUT (415), GET query (400 ``invalid_query``: ``page``/``per_page`` not an
    integer in 1..MAX_PAGE, or repeated), segment id (404), JSON body (400), name (422).
    ``per_page`` above ``max_per_page`` is clamped, as real APIs do.
    """
    segment_id, routing_error = _route(method, path)
    if routing_error is not None:
        return routing_error
    if tenant is None:
        return error_reply(
            401,
            "unauthenticated",
            "A valid bearer token is required",
            headers=(("WWW-Authenticate", 'Bearer realm="segments"'),),
        )
    if not accepts_json(accept):
        return error_reply(406, "not_acceptable", "The Accept header must admit application/json")
    if method in ("POST", "PUT") and not is_json_content_type(content_type):
        return error_reply(415, "unsupported_media_type", "Content-Type must be application/json")

    if segment_id is None:
        if method == "GET":
            return _list(tenant, query, max_per_page)
        name = _read_name(body)
        if isinstance(name, Reply):
            return name
        return _ok(tenant.create(store.new_id(), name))

    canonical = _canonical_id(segment_id)
    row = None if canonical is None else tenant.get(canonical)
    if canonical is None or row is None:
        return error_reply(404, "segment_not_found", "No segment with this id")
    if method == "DELETE":
        tenant.delete(canonical)
        return Reply(204, content_type=None)
    name = _read_name(body)
    if isinstance(name, Reply):
        return name
    row["name"] = name
    return _ok(row)


def _list(tenant: Tenant, query: MultiMapping[str], max_per_page: int) -> Reply:
    page = _query_int(query, "page", 1)
    per_page = _query_int(query, "per_page", DEFAULT_PER_PAGE)
    if page is None or per_page is None:
        return error_reply(
            400,
            "invalid_query",
            f"page and per_page must be given at most once, as integers in 1..{MAX_PAGE}",
        )
    per_page = min(per_page, max_per_page)
    total = len(tenant)
    return _ok(
        {
            "currentPage": page,
            "perPage": per_page,
            "lastPage": max(1, math.ceil(total / per_page)),
            "total": total,
            "items": tenant.page(page, per_page),
            "filters": [],
        }
    )
