"""Exit statuses and the one line that explains an error."""

from __future__ import annotations

import pytest

from segments_async import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
)
from segments_async._cli.status import InputError, UsageError, error_message, exit_status

URL = "https://api.segments.test/v2.3/data/segments"


def status_error(cls: type[APIStatusError], status: int) -> APIStatusError:
    return cls("refused", method="GET", url=URL, status_code=status)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (UsageError("bad"), 2),
        (InputError("in.csv", 3, "bad"), 2),
        (status_error(AuthenticationError, 401), 3),
        (status_error(PermissionDeniedError, 403), 3),
        (status_error(NotFoundError, 404), 3),
        (status_error(UnprocessableEntityError, 422), 3),
        (status_error(RateLimitError, 429), 3),
        (status_error(APIStatusError, 409), 3),
        (status_error(InternalServerError, 500), 4),
        (status_error(InternalServerError, 503), 4),
        (status_error(APIStatusError, 302), 4),
        (APIConnectionError("refused", method="GET", url=URL), 4),
        (APITimeoutError("timed out", method="GET", url=URL), 4),
        (APIResponseValidationError("bad", method="GET", url=URL, status_code=200), 4),
        (KeyboardInterrupt(), 130),
        (OSError(28, "No space left on device"), 1),
    ],
)
def test_every_error_maps_to_its_exit_status(error, status):
    """2 usage, 3 refused (4xx), 4 no usable answer, 130 interrupted, 1 anything else."""
    assert status == exit_status(error)


def test_a_refused_token_says_so():
    """A 401 is "the token was refused (401)", pointing at where the token came from."""
    message = error_message(status_error(AuthenticationError, 401))

    assert message.startswith("the token was refused (401)")


@pytest.mark.parametrize(
    ("error", "start"),
    [
        (status_error(PermissionDeniedError, 403), "the token may not do this (403)"),
        (status_error(NotFoundError, 404), "the API refused the request: 404"),
        (status_error(RateLimitError, 429), "the API is limiting the rate"),
        (status_error(InternalServerError, 502), "the API failed: 502"),
        (APITimeoutError("timed out", method="GET", url=URL), "no answer from the API in time"),
        (APIConnectionError("refused", method="GET", url=URL), "no answer from the API: refused"),
        (
            APIResponseValidationError("bad", method="GET", url=URL, status_code=200),
            "the API's answer could not be read",
        ),
        (OSError(28, "No space left on device"), "cannot read or write: No space left"),
        (RuntimeError("boom\nmore"), "unexpected RuntimeError: boom more"),
    ],
)
def test_error_messages_are_one_line(error, start):
    """Each error is explained in one line."""
    message = error_message(error)

    assert message.startswith(start)
    assert "\n" not in message
