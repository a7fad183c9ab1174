"""What the call loop logs: templates with arguments, structured fields, unknown outcomes.

Driven through the in-memory seam of ``fakes.py``, with a handler on the library's logger
that keeps every record.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from segments_async import APIConnectionError, APIStatusError, RetryPolicy, SegmentsClient
from segments_async import _client as client_module
from segments_async._retry import Failure

from .fakes import install, page_body

BASE_URL = "https://api.segments.test"
TOKEN = "tok-3f9a7c1d5e"
NO_WAIT = RetryPolicy(backoff_initial=0, backoff_max=0)
SEGMENT_ID = "7f2d6e6d-a4ad-4b58-abfe-bd8b918ebec2"
OTHER_ID = "0c4b7a39-70a4-4a7e-9d1b-3c1a8b6f2e55"
SEGMENT = {"success": True, "result": {"id": SEGMENT_ID, "name": "EMEA"}}


class Logs:
    """The library's records that the test captured."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self._caplog = caplog

    @property
    def records(self) -> list[logging.LogRecord]:
        return [r for r in self._caplog.records if r.name == "segments_async"]

    def at(self, level: int) -> list[logging.LogRecord]:
        return [r for r in self.records if r.levelno == level]


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Logs:
    """The library's records from DEBUG up, for the test."""
    caplog.set_level(logging.DEBUG, logger="segments_async")
    return Logs(caplog)


@pytest.fixture
async def client():
    async with SegmentsClient(BASE_URL, TOKEN, retry=NO_WAIT) as c:
        yield c


def fields(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in vars(record).items() if k.startswith("segments_")}


async def test_a_retry_is_a_template_with_structured_fields(client, logs):
    """The retry WARNING groups by its template; the call is in segments_* fields."""
    fake = install(client)
    task = asyncio.create_task(client.segments.list())
    (await fake.next()).answer(503, {"success": False}, **{"Retry-After": "0"})
    (await fake.next()).answer(200, page_body(1, 20, 0))
    await task

    (warning,) = logs.at(logging.WARNING)
    assert "retrying %s %s after %s in %.3fs (retry %d of %d)" == warning.msg
    path = "/v2.3/data/segments?page=1&per_page=20"
    assert ("GET", path, "HTTP 503", 0.0, 1, 2) == warning.args
    assert f"retrying GET {path} after HTTP 503 in 0.000s (retry 1 of 2)" == warning.getMessage()
    assert {
        "segments_method": "GET",
        "segments_path": path,
        "segments_attempt": 1,
        "segments_status": 503,
        "segments_failure": None,
        "segments_elapsed_ms": 0.0,
        "segments_reason": "HTTP 503",
        "segments_delay": 0.0,
    } == fields(warning)


async def test_every_attempt_is_a_debug_record_with_its_fields(client, logs):
    """One DEBUG per attempt: status or failure, elapsed time, attempt number."""
    fake = install(client)
    task = asyncio.create_task(client.segments.update(SEGMENT_ID, "DACH"))
    (await fake.next()).fail(Failure.DISCONNECT)
    (await fake.next()).answer(200, SEGMENT)
    await task

    first, second = logs.at(logging.DEBUG)
    assert "%s %s -> %s in %.1f ms (attempt %d)" == first.msg == second.msg
    assert ("connection lost", None, 1, True) == (
        first.segments_failure,  # type: ignore[attr-defined]
        first.segments_status,  # type: ignore[attr-defined]
        first.segments_attempt,  # type: ignore[attr-defined]
        first.segments_outcome_unknown,  # type: ignore[attr-defined]
    )
    assert (None, 200, 2, False) == (
        second.segments_failure,  # type: ignore[attr-defined]
        second.segments_status,  # type: ignore[attr-defined]
        second.segments_attempt,  # type: ignore[attr-defined]
        second.segments_outcome_unknown,  # type: ignore[attr-defined]
    )


async def test_a_get_has_no_outcome_field(client, logs):
    """A read has no outcome to be unknown: the field is left out, not False."""
    fake = install(client)
    task = asyncio.create_task(client.segments.list())
    (await fake.next()).answer(200, page_body(1, 20, 0))
    await task

    (record,) = logs.records
    assert "segments_outcome_unknown" not in fields(record)


async def test_a_lost_create_is_one_warning_saying_the_outcome_is_unknown(client, logs):
    """A POST whose answer was lost: WARNING once, saying it may have been carried out."""
    fake = install(client)
    task = asyncio.create_task(client.segments.create("EMEA"))
    (await fake.next()).fail(Failure.DISCONNECT)
    with pytest.raises(APIConnectionError):
        await task

    (warning,) = logs.at(logging.WARNING)
    assert "may have carried it out (outcome unknown)" in warning.msg
    assert (
        "POST /v2.3/data/segments failed, but the server may have carried it out "
        "(outcome unknown): connection lost"
    ) == warning.getMessage()
    assert {
        "segments_method": "POST",
        "segments_path": "/v2.3/data/segments",
        "segments_outcome_unknown": True,
        "segments_error": "APIConnectionError",
        "segments_attempt": 1,
    }.items() <= fields(warning).items()


async def test_a_rename_that_kept_failing_is_one_unknown_warning(client, logs):
    """Three 503s on PUT: two retry WARNINGs, then one that the outcome is unknown."""
    fake = install(client)
    task = asyncio.create_task(client.segments.update(SEGMENT_ID, "DACH"))
    for _ in range(3):
        (await fake.next()).answer(503, {"success": False})
    with pytest.raises(APIStatusError) as info:
        await task

    assert info.value.outcome_unknown is True
    warnings = [r.getMessage() for r in logs.at(logging.WARNING)]
    assert 3 == len(warnings)
    assert [True, True, False] == [w.startswith("retrying PUT") for w in warnings]
    assert "outcome unknown" in warnings[2]


async def test_an_unreadable_success_of_a_write_is_an_unknown_outcome(client, logs):
    """A create answered 200 with a body that cannot be read: it did create."""
    fake = install(client)
    task = asyncio.create_task(client.segments.create("EMEA"))
    (await fake.next()).answer(200, b"not json")
    with pytest.raises(Exception, match="JSON"):
        await task

    (warning,) = logs.at(logging.WARNING)
    assert 200 == warning.segments_status  # type: ignore[attr-defined]
    assert warning.segments_outcome_unknown is True  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("settle", "error"),
    [
        pytest.param(lambda sent: sent.answer(404, {"success": False}), APIStatusError, id="404"),
        pytest.param(
            lambda sent: sent.fail(Failure.CONNECT, sent=False), APIConnectionError, id="unsent"
        ),
    ],
)
async def test_failures_the_server_did_not_act_on_are_not_unknown(client, logs, settle, error):
    """A 404, or a connection never made: the write failed, and no WARNING says otherwise."""
    fake = install(client)
    once = client.with_options(retry=RetryPolicy(max_retries=0))
    task = asyncio.create_task(once.segments.update(SEGMENT_ID, "DACH"))
    settle(await fake.next())
    with pytest.raises(error) as info:
        await task

    assert info.value.outcome_unknown is False
    assert [] == logs.at(logging.WARNING)


async def test_a_get_that_failed_is_not_an_unknown_outcome(client, logs):
    """Reads change nothing: no 'outcome unknown' however they fail."""
    fake = install(client)
    task = asyncio.create_task(client.segments.list())
    for _ in range(3):
        (await fake.next()).fail(Failure.DISCONNECT)
    with pytest.raises(APIConnectionError):
        await task

    assert all("outcome unknown" not in r.getMessage() for r in logs.records)


async def test_deletes_the_server_answers_unreadably_warn_once_per_client(client, logs):
    """The spec's 204 with a body: one WARNING for the client (views included), the rest
    DEBUG; another client says it again."""
    fake = install(client)
    view = client.with_options(timeout=5)
    for target, segment_id in ((client, SEGMENT_ID), (view, OTHER_ID), (client, SEGMENT_ID)):
        task = asyncio.create_task(target.segments.delete(segment_id))
        (await fake.next()).fail(Failure.PROTOCOL)
        (await fake.next()).answer(404, {"success": False})
        assert await task is None

    (warning,) = logs.at(logging.WARNING)
    assert "every DELETE costs a second request" in warning.getMessage()
    assert "malformed response" == warning.segments_reason  # type: ignore[attr-defined]
    retries = [r for r in logs.at(logging.DEBUG) if r.msg.startswith("retrying")]
    assert 3 == len(retries)

    async with SegmentsClient(BASE_URL, TOKEN, retry=NO_WAIT) as other:
        fake = install(other)
        task = asyncio.create_task(other.segments.delete(SEGMENT_ID))
        (await fake.next()).fail(Failure.PROTOCOL)
        (await fake.next()).answer(404, {"success": False})
        await task
    assert 2 == len(logs.at(logging.WARNING))


async def test_a_get_answered_unreadably_is_still_a_retry_warning(client, logs):
    """Only DELETE's malformed answers are routine; a GET's are worth a WARNING."""
    fake = install(client)
    task = asyncio.create_task(client.segments.list())
    (await fake.next()).fail(Failure.PROTOCOL)
    (await fake.next()).answer(200, page_body(1, 20, 0))
    await task

    (warning,) = logs.at(logging.WARNING)
    assert warning.getMessage().startswith("retrying GET")


async def test_no_fields_are_built_for_a_level_that_is_off(client, monkeypatch):
    """At WARNING, a successful call builds no DEBUG record and no extra fields."""

    def forbidden(*args: object, **kwargs: object) -> dict[str, object]:
        raise AssertionError("extra fields built for a record nobody will see")

    monkeypatch.setattr(client_module, "_fields", forbidden)
    logger = logging.getLogger("segments_async")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        fake = install(client)
        task = asyncio.create_task(client.segments.list())
        (await fake.next()).answer(200, page_body(1, 20, 0))
        assert 0 == (await task).total
    finally:
        logger.setLevel(level)
