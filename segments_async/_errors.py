"""Every exception the library raises on purpose.

The tree::

    SegmentsError
     ├── ClientClosedError                the client was closed under the call (a RuntimeError)
     ├── APIConnectionError               no usable HTTP answer (refused, reset, truncated)
     │    └── APITimeoutError              an attempt, or the call's deadline, ran out of time
     ├── APIResponseValidationError       body not JSON, envelope or fields malformed, too large
     └── APIStatusError                   HTTP >= 400, a 3xx, or a 2xx with "success": false
          ├── BadRequestError              400
          ├── AuthenticationError          401
          ├── PermissionDeniedError        403
          ├── NotFoundError                404
          ├── ConflictError                409
          ├── UnprocessableEntityError     422
          ├── RateLimitError               429
          └── InternalServerError          >= 500

Bad arguments are not API errors: they raise ``ValueError`` or ``TypeError`` before
anything is sent.

No exception here ever holds the request's headers, so the token cannot leak through
``str``, ``repr``, a traceback or an error reporter that walks ``__cause__``.

Every error tied to a request says whether the server may have acted on it although the
call failed (``outcome_unknown``): a create that timed out after it was sent may exist.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

__all__ = [
    "APIConnectionError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ClientClosedError",
    "ConflictError",
    "InternalServerError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "SegmentsError",
    "UnprocessableEntityError",
]


class SegmentsError(Exception):
    """Base of everything the library raises on purpose."""

    message: str

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __reduce__(self) -> tuple[Callable[..., SegmentsError], tuple[object, ...]]:
        # Keyword-only arguments are not in ``args``: rebuild from the attributes instead,
        # so that errors survive pickling (process pools, task queues) and ``copy``.
        return _restore, (type(self), dict(self.__dict__))


def _restore(cls: type[SegmentsError], state: dict[str, object]) -> SegmentsError:
    error = cls.__new__(cls)
    Exception.__init__(error, state.get("message", ""))
    error.__dict__.update(state)
    return error


class _RequestError(SegmentsError):
    """An error tied to one request: it names the method and URL (never the headers).

    ``outcome_unknown`` is True when the server may have carried out the request although
    the call failed (it was sent, and the answer was lost, cut short or a 5xx): a create
    may then exist, a rename or a delete may have happened. Reconcile before trying again.
    """

    method: str
    url: str
    outcome_unknown: bool

    def __init__(self, message: str, *, method: str, url: str) -> None:
        super().__init__(message)
        self.method = method
        self.url = url
        self.outcome_unknown = False

    def __str__(self) -> str:
        return f"{self.message} ({self.method} {self.url})"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, method={self.method!r}, url={self.url!r})"


class ClientClosedError(_RequestError, RuntimeError):
    """The client was closed while this call was waiting, in flight or about to retry.

    Never retried. Also a ``RuntimeError``, which is what a call on a closed client raised
    before this class existed. ``outcome_unknown`` tells whether the request had been sent.
    """


class APIConnectionError(_RequestError):
    """No usable HTTP answer: the connection failed, was reset, or the body was cut short."""


class APITimeoutError(APIConnectionError):
    """Out of time: an attempt's timeout, or the call's deadline (pool wait included)."""


class APIResponseValidationError(_RequestError):
    """The answer could not be read: not JSON, a malformed envelope, a wrong field, too large.

    ``field`` names the offending field (e.g. ``result.items[3].id``) where one is known.
    """

    status_code: int
    body: object
    field: str | None

    def __init__(
        self,
        message: str,
        *,
        method: str,
        url: str,
        status_code: int,
        body: object = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message, method=method, url=url)
        self.status_code = status_code
        self.body = body
        self.field = field


class APIStatusError(_RequestError):
    """The server answered with an error: HTTP >= 400, a 3xx, or ``"success": false``.

    ``body`` is the decoded JSON error body, or a bounded text excerpt of a body that is
    not JSON (an HTML error page from a proxy, say), or ``None`` if there was none.
    """

    status_code: int
    body: object
    headers: Mapping[str, str]

    def __init__(
        self,
        message: str,
        *,
        method: str,
        url: str,
        status_code: int,
        body: object = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, method=method, url=url)
        self.status_code = status_code
        self.body = body
        self.headers = headers if headers is not None else {}

    def __str__(self) -> str:
        return f"{self.status_code} {self.message} ({self.method} {self.url})"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, status_code={self.status_code!r}, "
            f"method={self.method!r}, url={self.url!r})"
        )


class BadRequestError(APIStatusError):
    """400: the server rejected the request as malformed."""


class AuthenticationError(APIStatusError):
    """401: the token is missing, wrong or expired."""


class PermissionDeniedError(APIStatusError):
    """403: the token may not do this."""


class NotFoundError(APIStatusError):
    """404: no such segment for this tenant (or no such route)."""


class ConflictError(APIStatusError):
    """409: the request conflicts with the current state."""


class UnprocessableEntityError(APIStatusError):
    """422: the request was well formed but its values were refused (an invalid name)."""


class RateLimitError(APIStatusError):
    """429: too many requests. ``retry_after`` is the server's wait in seconds, or ``None``."""

    retry_after: float | None

    def __init__(
        self,
        message: str,
        *,
        method: str,
        url: str,
        status_code: int,
        body: object = None,
        headers: Mapping[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message, method=method, url=url, status_code=status_code, body=body, headers=headers
        )
        self.retry_after = retry_after


class InternalServerError(APIStatusError):
    """5xx: the server (or a proxy in front of it) failed."""


STATUS_ERRORS: Mapping[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def status_error_class(status: int) -> type[APIStatusError]:
    """The exception class for an HTTP status that is an error."""
    cls = STATUS_ERRORS.get(status)
    if cls is not None:
        return cls
    if status >= 500:
        return InternalServerError
    return APIStatusError
