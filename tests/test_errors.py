"""The exception tree: status -> class, and what an exception says about itself."""

from __future__ import annotations

import copy
import pickle

import pytest

import segments_async
from segments_async import _errors
from segments_async._errors import (
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
    SegmentsError,
    UnprocessableEntityError,
    status_error_class,
)

URL = "https://api.example.com/v2.3/data/segments"


class TestStatusErrorClass:
    @pytest.mark.parametrize(
        ("status", "cls"),
        [
            (400, BadRequestError),
            (401, AuthenticationError),
            (403, PermissionDeniedError),
            (404, NotFoundError),
            (409, ConflictError),
            (422, UnprocessableEntityError),
            (429, RateLimitError),
        ],
    )
    def test_mapped(self, status, cls):
        """Each mapped status has its own class."""
        assert cls is status_error_class(status)

    @pytest.mark.parametrize("status", [500, 501, 502, 503, 504, 599])
    def test_5xx(self, status):
        """Every 5xx is an InternalServerError."""
        assert InternalServerError is status_error_class(status)

    @pytest.mark.parametrize("status", [418, 405, 410, 413, 431, 451, 302, 304, 200])
    def test_unmapped(self, status):
        """Any other status is a plain APIStatusError."""
        assert APIStatusError is status_error_class(status)


class TestStatusError:
    def test_attributes(self):
        """An APIStatusError keeps what the user needs to act."""
        headers = {"X-Request-Id": "r-1"}
        err = NotFoundError(
            "no such segment",
            method="PUT",
            url=URL,
            status_code=404,
            body={"message": "no such segment"},
            headers=headers,
        )

        assert "no such segment" == err.message
        assert "PUT" == err.method
        assert URL == err.url
        assert 404 == err.status_code
        assert {"message": "no such segment"} == err.body
        assert headers == err.headers

    def test_defaults(self):
        """body defaults to None, headers to an empty mapping."""
        err = APIStatusError("boom", method="GET", url=URL, status_code=418)

        assert err.body is None
        assert {} == err.headers

    def test_str(self):
        """str() has the status, message, method and URL."""
        err = ConflictError("already exists", method="POST", url=URL, status_code=409)

        assert f"409 already exists (POST {URL})" == str(err)

    def test_repr(self):
        """repr() names the class and has the message, status, method and URL."""
        err = ConflictError("already exists", method="POST", url=URL, status_code=409)

        assert (
            f"ConflictError('already exists', status_code=409, method='POST', url='{URL}')"
            == repr(err)
        )

    def test_str_and_repr_leave_headers_and_body_out(self):
        """Neither str() nor repr() walks headers or body."""
        err = AuthenticationError(
            "bad token",
            method="GET",
            url=URL,
            status_code=401,
            body={"secret": "body-secret"},
            headers={"Set-Cookie": "cookie-secret"},
        )

        for text in (str(err), repr(err)):
            assert "cookie-secret" not in text
            assert "body-secret" not in text

    def test_args(self):
        """args holds the message, like any exception's."""
        err = BadRequestError("bad", method="GET", url=URL, status_code=400)

        assert ("bad",) == err.args

    def test_rate_limit_retry_after(self):
        """RateLimitError carries retry_after, None unless given."""
        with_it = RateLimitError("slow", method="GET", url=URL, status_code=429, retry_after=7.0)
        without = RateLimitError("slow", method="GET", url=URL, status_code=429)

        assert 7.0 == with_it.retry_after
        assert without.retry_after is None
        assert "429 slow (GET " + URL + ")" == str(with_it)


class TestRequestErrors:
    @pytest.mark.parametrize("cls", [APIConnectionError, APITimeoutError])
    def test_connection_str_repr(self, cls):
        """Connection errors show message, method and URL."""
        err = cls("connection refused", method="GET", url=URL)

        assert f"connection refused (GET {URL})" == str(err)
        assert f"{cls.__name__}('connection refused', method='GET', url='{URL}')" == repr(err)
        assert "connection refused" == err.message

    def test_validation_attributes(self):
        """APIResponseValidationError names the field, the status and the request."""
        err = APIResponseValidationError(
            "malformed response at result.id: expected str",
            method="POST",
            url=URL,
            status_code=200,
            body={"id": 3},
            field="result.id",
        )

        assert "result.id" == err.field
        assert 200 == err.status_code
        assert {"id": 3} == err.body
        assert f"malformed response at result.id: expected str (POST {URL})" == str(err)
        assert "APIResponseValidationError(" in repr(err)
        assert "method='POST'" in repr(err)
        assert f"url='{URL}'" in repr(err)

    def test_validation_defaults(self):
        """field and body default to None."""
        err = APIResponseValidationError("x", method="GET", url=URL, status_code=200)

        assert err.field is None
        assert err.body is None

    def test_base_str(self):
        """A bare SegmentsError is its message."""
        assert "oops" == str(SegmentsError("oops"))
        assert "oops" == SegmentsError("oops").message


ERRORS = [
    SegmentsError("plain"),
    APIConnectionError("refused", method="GET", url=URL),
    APITimeoutError("timed out", method="PUT", url=URL),
    APIResponseValidationError(
        "malformed", method="GET", url=URL, status_code=200, body={"x": 1}, field="result.id"
    ),
    NotFoundError(
        "gone", method="DELETE", url=URL, status_code=404, body={"a": 1}, headers={"X-A": "1"}
    ),
    RateLimitError("slow", method="POST", url=URL, status_code=429, retry_after=7.0),
    InternalServerError("boom", method="GET", url=URL, status_code=503, body="<p>x</p>"),
]


def state(err: BaseException) -> tuple[object, ...]:
    """What a copy of an error must keep."""
    return (type(err), err.args, str(err), repr(err), vars(err))


class TestCopying:
    @pytest.mark.parametrize("err", ERRORS, ids=lambda e: type(e).__name__)
    def test_pickle_round_trip(self, err):
        """Errors survive pickling (process pools, task queues, error reporters)."""
        clone = pickle.loads(pickle.dumps(err))  # noqa: S301

        assert state(err) == state(clone)
        assert clone is not err

    @pytest.mark.parametrize("err", ERRORS, ids=lambda e: type(e).__name__)
    @pytest.mark.parametrize("copier", [copy.copy, copy.deepcopy])
    def test_copy(self, err, copier):
        """Errors survive copy.copy and copy.deepcopy."""
        assert state(err) == state(copier(err))

    def test_pickled_rate_limit_keeps_retry_after(self):
        """retry_after survives pickling."""
        err = RateLimitError("slow", method="GET", url=URL, status_code=429, retry_after=2.5)

        assert 2.5 == pickle.loads(pickle.dumps(err)).retry_after  # noqa: S301


class TestModule:
    @pytest.mark.parametrize("name", _errors.__all__)
    def test_docstring_draws_every_class(self, name):
        """The module docstring's tree shows every public exception."""
        assert _errors.__doc__ is not None
        assert name in _errors.__doc__

    @pytest.mark.parametrize("name", _errors.__all__)
    def test_every_class_is_public(self, name):
        """Every exception of _errors is re-exported by the package."""
        assert getattr(_errors, name) is getattr(segments_async, name)
        assert name in segments_async.__all__

    def test_all_sorted(self):
        """_errors.__all__ is sorted."""
        assert sorted(_errors.__all__) == _errors.__all__

    def test_all_complete(self):
        """Every SegmentsError subclass defined in _errors and not private is in __all__."""
        public = {
            name
            for name, value in vars(_errors).items()
            if isinstance(value, type)
            and issubclass(value, SegmentsError)
            and not name.startswith("_")
        }

        assert public == set(_errors.__all__)
