"""Property-based fuzzing: whatever the server answers, and whatever the caller passes,
the library returns the right model or raises one of its own errors (or a ValueError /
TypeError before anything is sent)."""

from __future__ import annotations

import asyncio
import email.utils
import gzip
import json
import math
import pickle
import re
import string
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
import yarl
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from segments_async import (
    APIStatusError,
    RateLimitError,
    RetryPolicy,
    Segment,
    SegmentPage,
    SegmentsClient,
    SegmentsError,
    _decode,
    _wire,
)
from segments_async._errors import status_error_class

from ..conftest import TOKEN
from ..rawserver import RawRequest, RawServer, ThenClose, json_response

SEGMENT_ID = "7f2d6e6d-a4ad-4b58-abfe-bd8b918ebec2"
URL = "https://api.segments.test/v2.3/data/segments"
NOW = 1_750_000_000.0

#: Deterministic in CI: the same examples every run, nothing written to disk.
PURE = settings(max_examples=500, deadline=None, derandomize=True, database=None)
SOCKETS = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

DECODERS: dict[str, tuple[Callable[[bytes], Any], str, type | None]] = {
    "page": (_decode.decode_segment_page, "GET", SegmentPage),
    "segment": (_decode.decode_segment, "POST", Segment),
    "delete": (_decode.decode_delete, "DELETE", None),
}

# --------------------------------------------------------------------------- strategies

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)

segment_objects = st.fixed_dictionaries(
    {"id": st.one_of(st.uuids().map(str), st.text(max_size=10)), "name": st.text(max_size=20)},
    optional={"extra": json_values},
)
page_objects = st.fixed_dictionaries(
    {
        "currentPage": st.integers(1, 10),
        "perPage": st.integers(1, 100),
        "lastPage": st.integers(1, 10),
        "total": st.integers(0, 1000),
        "items": st.lists(segment_objects, max_size=4),
    },
    optional={"filters": st.lists(json_scalars, max_size=2), "sort": json_values},
)


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[Any]) -> Any:
    """``base``, with up to three random edits deep inside: a key dropped, a value replaced."""
    value = draw(base)
    for _ in range(draw(st.integers(0, 3))):
        value = _mutate_once(draw, value)
    return value


def _mutate_once(draw: st.DrawFn, value: Any) -> Any:
    containers = []

    def walk(node: Any) -> None:
        if isinstance(node, dict | list) and node:
            containers.append(node)
            for child in node.values() if isinstance(node, dict) else node:
                walk(child)

    walk(value)
    if not containers:
        return draw(json_values)
    node = draw(st.sampled_from(containers))
    key = draw(st.sampled_from(list(node.keys()) if isinstance(node, dict) else range(len(node))))
    action = draw(st.sampled_from(["drop", "replace", "null", "huge", "stringify"]))
    if action == "drop":
        del node[key]
    elif action == "replace":
        node[key] = draw(json_values)
    elif action == "null":
        node[key] = None
    elif action == "huge":
        node[key] = draw(st.sampled_from([2**64, -(2**63) - 1, 10**30, 1e308, 1.5, True]))
    else:
        node[key] = str(node[key])
    return value


envelope_results = st.one_of(
    mutated(page_objects), mutated(segment_objects), page_objects, segment_objects, json_values
)
envelopes = st.one_of(
    st.builds(lambda result: {"success": True, "result": result}, envelope_results),
    mutated(st.builds(lambda result: {"success": True, "result": result}, envelope_results)),
    st.fixed_dictionaries(
        {"success": st.sampled_from([False, None, 1, 0, "true", "false"])},
        optional={
            "result": json_values,
            "message": json_values,
            "error": st.one_of(
                json_values, st.fixed_dictionaries({"code": json_values, "message": json_values})
            ),
        },
    ),
    st.dictionaries(st.text(max_size=8), json_values, max_size=3),
)
HTML_PAGE = (
    "<html><head><title>{0}</title><style>p {{ x: y }}</style></head><body>{1}{2}</body></html>"
)
html_bodies = st.builds(
    HTML_PAGE.format,
    st.text(max_size=20),
    st.sampled_from(["<h1>502 Bad Gateway</h1>", "<script>alert(1)</script>", "<p", "", "<<>>"]),
    st.text(max_size=40),
)


def _dumps(value: Any) -> bytes:
    # The stdlib encoder writes what orjson will not (integers over 64 bits, lone
    # surrogates as escapes): all of it must be read safely.
    return json.dumps(value).encode()


valid_envelopes = st.builds(
    lambda result: {"success": True, "result": result},
    st.one_of(page_objects, segment_objects),
)
SPEC_DELETE_BODY = b'{"success":true,"result":[]}'
bodies = st.one_of(
    valid_envelopes.map(_dumps),
    valid_envelopes.map(_dumps),
    st.just(SPEC_DELETE_BODY),
    envelopes.map(_dumps),
    json_values.map(_dumps),
    st.binary(max_size=200),
    html_bodies.map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"", b"null", b"{", b"[]", b'{"success":true}', b"\xff\xfe", b"NaN"]),
)

header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30
).map(str.strip)
http_dates = st.floats(min_value=-1e10, max_value=2.5e11).map(
    lambda t: email.utils.formatdate(t, usegmt=True) if -62e9 < t < 253e9 else str(t)
)
retry_after_values = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats().map(repr),
    http_dates,
    header_text,
    st.sampled_from(
        ["0", "1.5", "-1", "1e999", "inf", "nan", "9" * 400, "Fri, 31 Dec 9999 23:59:59 -2359"]
    ),
    st.sampled_from(["Mon, 01 Jan 0001 00:00:00 +2359", "Sun, 06 Nov 1994 08:49:37 GMT"]),
    st.sampled_from(["Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", " 3 "]),
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "text/html",
        "text/plain",
        "application/problem+json",
        "application/octet-stream",
        "",
    ]
)
header_sets = st.fixed_dictionaries(
    {},
    optional={
        "Content-Type": content_types,
        "Retry-After": retry_after_values,
        "Location": st.one_of(st.just("https://elsewhere.test/x"), header_text),
        "X-Request-Id": header_text,
    },
)
statuses = st.one_of(
    st.sampled_from([200, 200, 200, 201, 204]),
    st.sampled_from([200, 201, 204, 301, 302, 307, 400, 401, 404, 408, 409, 422, 429, 500, 503]),
    st.integers(min_value=100, max_value=599),
)

# --------------------------------------------------------------------------- oracles


def _is_int(value: object) -> bool:
    return type(value) is int


def _segment_or_none(value: object) -> Segment | None:
    if not isinstance(value, dict) or "id" not in value or "name" not in value:
        return None
    if type(value["id"]) is not str or type(value["name"]) is not str:
        return None
    return Segment(value["id"], value["name"])


def _page_or_none(value: object) -> SegmentPage | None:
    if not isinstance(value, dict):
        return None
    wire = ("currentPage", "perPage", "lastPage", "total")
    if not all(key in value and _is_int(value[key]) for key in wire):
        return None
    items = value.get("items")
    if not isinstance(items, list):
        return None
    segments = [_segment_or_none(item) for item in items]
    if None in segments:
        return None
    filters = value.get("filters", [])
    if not isinstance(filters, list):
        return None
    return SegmentPage(*(value[key] for key in wire), items=segments, filters=filters)  # type: ignore[arg-type]


def expected_success(kind: str, body: bytes) -> tuple[bool, object]:
    """What a 2xx answer with ``body`` must give: (is it a success, the model)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return kind == "delete", None
    if kind == "delete":
        return not (isinstance(data, dict) and data.get("success") is False), None
    if not isinstance(data, dict) or data.get("success") is not True or "result" not in data:
        return False, None
    model = (_page_or_none if kind == "page" else _segment_or_none)(data["result"])
    return model is not None, model


def check_error(error: BaseException, status: int) -> None:
    """An error is one of ours, renders, pickles, and says what it is."""
    assert isinstance(error, SegmentsError), repr(error)
    assert isinstance(str(error), str)
    assert isinstance(repr(error), str)
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 (our own bytes)
    assert type(error) is type(copy)
    assert str(error) == str(copy)
    if isinstance(error, APIStatusError):
        assert status == error.status_code
    if isinstance(error, RateLimitError) and error.retry_after is not None:
        assert math.isfinite(error.retry_after)
        assert error.retry_after >= 0


# --------------------------------------------------------------------------- pure fuzzing


def outcome(
    catch: type[BaseException] | tuple[type[BaseException], ...],
    function: Callable[..., Any],
    *args: Any,
    **kwargs: Any,
) -> tuple[Any, BaseException | None]:
    """``(result, None)``, or ``(None, error)`` if ``function`` raised one of ``catch``."""
    try:
        return function(*args, **kwargs), None
    except catch as error:
        return None, error


@PURE
@given(
    kind=st.sampled_from(sorted(DECODERS)),
    status=statuses,
    headers=header_sets,
    body=bodies,
    now=st.one_of(st.just(NOW), st.floats(min_value=0, max_value=4e9)),
)
def test_read_response_gives_the_model_or_a_segments_error(kind, status, headers, body, now):
    """Any (status, headers, body): the exact model for a well-formed 2xx, else our error."""
    decode, method, model_type = DECODERS[kind]
    result, error = outcome(
        SegmentsError,
        _decode.read_response,
        decode,
        method=method,
        url=URL,
        status=status,
        headers=CIMultiDict(headers),
        body=body,
        now=now,
    )
    event(f"{kind}: {'ok' if error is None else type(error).__name__}")
    if error is not None:
        check_error(error, status)
        assert not (200 <= status < 300 and expected_success(kind, body)[0]), repr(error)
        if not 200 <= status < 300:
            assert status_error_class(status) is type(error)
        return
    assert 200 <= status < 300
    ok, model = expected_success(kind, body)
    assert ok, f"accepted a malformed body: {body!r} -> {result!r}"
    if model_type is None:
        assert result is None
    else:
        assert isinstance(result, model_type)
        assert model == result


@PURE
@given(value=retry_after_values, now=st.floats(min_value=0, max_value=4e9))
def test_retry_after_of_a_429_is_none_or_seconds(value, now):
    """Any Retry-After header gives a 429 whose retry_after is None or seconds >= 0.

    A number too large for a float is infinite: still a number, and too long to wait for.
    """
    error = _decode.status_error(
        method="GET", url=URL, status=429, headers={"Retry-After": value}, body=b"", now=now
    )
    assert isinstance(error, RateLimitError)
    assert error.retry_after is None or (
        not math.isnan(error.retry_after) and error.retry_after >= 0
    )


@PURE
@given(
    kind=st.sampled_from(sorted(DECODERS)),
    status=st.integers(min_value=100, max_value=599).filter(lambda s: not 200 <= s < 300),
    body=st.sampled_from([b"", b"null", b"{}", b"[]", b"<html></html>"]),
)
def test_error_message_does_not_invent_what_the_server_said(kind, status, body):
    """A non-2xx answer without an envelope is not described as '"success": false'."""
    decode, method, _ = DECODERS[kind]
    _, error = outcome(
        APIStatusError,
        _decode.read_response,
        decode,
        method=method,
        url=URL,
        status=status,
        headers=CIMultiDict(),
        body=body,
        now=NOW,
    )
    assert isinstance(error, APIStatusError)
    assert "success" not in error.message, f"{status}: {error.message!r}"


# --------------------------------------------------------------------------- over sockets

FRAMINGS = ["length", "chunked", "close", "gzip", "short", "bad-gzip"]
#: Framings a conforming server may use: the client reads them exactly like the bytes.
CLEAN_FRAMINGS = {"length", "chunked", "close", "gzip"}


def raw_answer(status: int, headers: dict[str, str], body: bytes, framing: str) -> bytes:
    """The response bytes: ``body`` framed as told (a 204 or 304 carries no body, no framing)."""
    lines = [f"HTTP/1.1 {status} Whatever"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if status in (204, 304):
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    payload = body
    close = False
    if framing == "chunked":
        lines.append("Transfer-Encoding: chunked")
        chunks = [body[i : i + 7] for i in range(0, len(body), 7)]
        payload = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    elif framing == "close":
        lines.append("Connection: close")
        close = True
    elif framing in ("gzip", "bad-gzip"):
        lines.append("Content-Encoding: gzip")
        payload = gzip.compress(body) if framing == "gzip" else body + b"\x00not gzip"
        lines.append(f"Content-Length: {len(payload)}")
    elif framing == "short":
        lines.append(f"Content-Length: {len(body) + 10}")
        close = True
    else:
        lines.append(f"Content-Length: {len(body)}")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload
    return ThenClose(raw) if close else raw


async def call(client: SegmentsClient, kind: str) -> object:
    if kind == "page":
        return await client.segments.list()
    if kind == "segment":
        return await client.segments.update(SEGMENT_ID, "EMEA")
    if kind == "create":
        return await client.segments.create("EMEA")
    return await client.segments.delete(SEGMENT_ID)


async def over_sockets(kind: str, answer: bytes) -> tuple[object, BaseException | None, int]:
    async def handler(request: RawRequest) -> bytes:
        return answer

    async with RawServer(handler) as server:
        client = SegmentsClient(server.url, TOKEN, retry=RetryPolicy(max_retries=0), timeout=5)
        async with client:
            try:
                result = await call(client, kind)
            except Exception as error:  # judged by the caller
                return None, error, len(server.requests)
    return result, None, len(server.requests)


@SOCKETS
@given(
    kind=st.sampled_from(["page", "segment", "create", "delete"]),
    status=statuses.filter(lambda s: s >= 200),
    headers=header_sets,
    body=bodies,
    framing=st.sampled_from(FRAMINGS),
)
def test_client_over_sockets_gives_the_model_or_a_segments_error(
    kind, status, headers, body, framing
):
    """Real answers, well or badly framed: the client agrees with read_response or raises ours."""
    answer = raw_answer(status, headers, body, framing)
    result, error, sent = asyncio.run(over_sockets(kind, answer))

    event(f"{kind}: {'ok' if error is None else type(error).__name__}")
    assert 1 == sent
    if error is not None:
        check_error(error, status)
    decoder = DECODERS["segment" if kind == "create" else kind][0]
    try:
        expected: object = _decode.read_response(
            decoder,
            method="GET",
            url=URL,
            status=status,
            headers=CIMultiDict(headers),
            body=b"" if status in (204, 304) else body,
            now=time.time(),
        )
    except SegmentsError as wire_error:
        expected = type(wire_error)
    if framing in CLEAN_FRAMINGS or status in (204, 304):
        if error is None:
            assert expected == result
        else:
            assert expected is type(error), repr(error)
    else:
        assert error is not None
        assert "APIConnectionError" == type(error).__name__, repr(error)


# --------------------------------------------------------------------------- user inputs

_INJECTIONS = ["/", "../", "?x=1", "#f", "%2e%2e", "\n", " ", "{", "}", "urn:uuid:", "\x00", "/.."]
ids = st.one_of(
    st.uuids(),
    st.uuids().map(str),
    st.uuids().map(str),
    st.uuids().map(lambda u: str(u).upper()),
    st.uuids().map(lambda u: u.hex),
    st.builds(
        lambda u, a, b: a + str(u) + b,
        st.uuids(),
        st.sampled_from([*_INJECTIONS, ""]),
        st.sampled_from([*_INJECTIONS, ""]),
    ),
    st.uuids().map(lambda u: str(u).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))),
    st.text(max_size=40),
    st.text(alphabet=string.hexdigits + "-", min_size=30, max_size=40),
    st.binary(max_size=40),
    st.integers(),
    st.none(),
    st.floats(),
    st.booleans(),
)
names = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1),
    st.binary(max_size=10),
    st.integers(),
    st.none(),
    st.floats(),
    st.lists(st.text(max_size=3), max_size=2),
)
numbers = st.one_of(
    st.integers(min_value=1, max_value=500),
    st.integers(min_value=1, max_value=500),
    st.integers(),
    st.integers(min_value=-3, max_value=3),
    st.floats(),
    st.booleans(),
    st.text(max_size=5),
    st.none(),
    st.decimals(allow_nan=False),
)

_CANONICAL = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def valid_id(value: object) -> str | None:
    """The canonical form of an acceptable id, or None (an oracle independent of _wire)."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if not isinstance(value, str) or len(value) != 36 or not value.isascii():
        return None
    try:
        canonical = str(uuid.UUID(value))
    except ValueError:
        return None
    return canonical if canonical == value.lower() else None


def valid_number(value: object) -> bool:
    return type(value) is int and value >= 1


def number_error(value: object) -> type[Exception] | None:
    """The error a page, per_page or concurrency argument must raise, if any."""
    if type(value) is not int:
        return TypeError
    return None if valid_number(value) else ValueError


def valid_name(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@PURE
@given(segment_id=ids)
def test_segment_path_is_the_uuid_or_nothing(segment_id):
    """An id gives exactly /v2.3/data/segments/<canonical uuid>, or a ValueError."""
    expected = valid_id(segment_id)
    path, error = outcome(ValueError, _wire.segment_path, segment_id)
    if error is not None:
        assert expected is None, f"{segment_id!r} was refused"
        return
    assert expected is not None, f"{segment_id!r} was accepted as {path!r}"
    assert f"/v2.3/data/segments/{expected}" == path
    assert _CANONICAL.fullmatch(path.rsplit("/", 1)[1])
    url = yarl.URL("https://api.segments.test" + path, encoded=True)
    assert path == url.raw_path == url.path
    assert "" == url.query_string == url.fragment


@PURE
@given(page=numbers, per_page=numbers)
def test_list_query_takes_positive_ints_only(page, per_page):
    """page/per_page: a TypeError for non-ints, a ValueError below 1, else an exact query."""
    expected = number_error(page) or number_error(per_page)
    query, error = outcome((TypeError, ValueError), _wire.list_query, page, per_page)
    if error is not None:
        assert expected is type(error), f"({page!r}, {per_page!r}): {error!r}"
        return
    assert expected is None, f"({page!r}, {per_page!r}) was accepted as {query!r}"
    assert f"page={page}&per_page={per_page}" == query


@PURE
@given(name=names)
def test_name_body_is_exact_json_or_refused(name):
    """A str name becomes {"name": name}; a non-str is a TypeError; unencodable a ValueError."""
    body, error = outcome((TypeError, ValueError), _wire.name_body, name)
    if isinstance(error, TypeError):
        assert not isinstance(name, str)
        return
    if isinstance(error, ValueError):
        assert isinstance(name, str)
        assert not valid_name(name)
        return
    assert valid_name(name)
    assert {"name": name} == json.loads(body)


INPUT_CALLS = st.one_of(
    st.tuples(st.just("list"), numbers, numbers),
    st.tuples(st.just("iter_pages"), numbers, numbers),
    st.tuples(st.just("iterate"), numbers, numbers),
    st.tuples(st.just("create"), names, st.none()),
    st.tuples(st.just("update"), ids, names),
    st.tuples(st.just("delete"), ids, st.none()),
)


async def make_call(client: SegmentsClient, op: str, a: object, b: object) -> object:
    segments: Any = client.segments
    if op == "list":
        return await segments.list(a, b)
    if op in ("iter_pages", "iterate"):
        return [x async for x in getattr(segments, op)(a, b)]
    if op == "create":
        return await segments.create(a)
    if op == "update":
        return await segments.update(a, b)
    return await segments.delete(a)


def expected_target(op: str, a: object, b: object) -> str | None:
    """The request target a valid call sends first, or None if it must send nothing."""
    if op in ("list", "iter_pages", "iterate"):
        if not (valid_number(a) and valid_number(b)):
            return None
        # list(page, per_page); iter_pages/iterate(per_page, concurrency) start at page 1
        return (
            f"/v2.3/data/segments?page={a}&per_page={b}"
            if op == "list"
            else (f"/v2.3/data/segments?page=1&per_page={a}")
        )
    if op == "create":
        return "/v2.3/data/segments" if valid_name(a) else None
    canonical = valid_id(a)
    if canonical is None or (op == "update" and not valid_name(b)):
        return None
    return f"/v2.3/data/segments/{canonical}"


async def answer_anything(request: RawRequest) -> bytes:
    if request.method == "GET":
        result: object = {
            "currentPage": 1,
            "perPage": 20,
            "lastPage": 1,
            "total": 0,
            "items": [],
            "filters": [],
        }
        return json_response(200, {"success": True, "result": result})
    if request.method == "DELETE":
        return b"HTTP/1.1 204 No Content\r\n\r\n"
    return json_response(200, {"success": True, "result": {"id": SEGMENT_ID, "name": "x"}})


async def send_inputs(op: str, a: object, b: object) -> tuple[BaseException | None, list[str]]:
    error: BaseException | None = None
    async with (
        RawServer(answer_anything) as server,
        SegmentsClient(server.url, TOKEN, retry=RetryPolicy(max_retries=0)) as client,
    ):
        try:
            await make_call(client, op, a, b)
        except (TypeError, ValueError) as raised:
            error = raised
    return error, [r.target for r in server.requests]


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(call_args=INPUT_CALLS)
def test_bad_inputs_send_nothing_and_good_ones_send_the_right_request(call_args):
    """Every public method: TypeError/ValueError with nothing sent, or the exact request."""
    op, a, b = call_args
    error, targets = asyncio.run(send_inputs(op, a, b))
    expected = expected_target(op, a, b)
    event(f"{op}: {'refused' if expected is None else 'sent'}")
    if expected is None:
        assert error is not None, f"{op}({a!r}, {b!r}) was sent as {targets}"
        assert [] == targets
    else:
        assert error is None, repr(error)
        assert [expected] == targets
