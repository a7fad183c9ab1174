"""Every exception the library raises on purpose.

Catch ``SegmentsError`` for all of them, or a branch of the tree::

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

What each carries: every one has ``message``; those tied to a request (all but
``SegmentsError`` itself) have ``method``, ``url`` and ``outcome_unknown``;
``APIStatusError`` and its subclasses add ``status_code``, ``body`` and ``headers``,
``RateLimitError`` ``retry_after``, and ``APIResponseValidationError`` ``status_code``,
``body`` and ``field``. Errors pickle, so they cross process pools and task queues.

Bad arguments are not API errors: they raise ``ValueError`` or ``TypeError`` before
anything is sent. Using a client from a second event loop while the loop of its pool is
still running is a ``RuntimeError``.

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
    """Base of everything the library raises on purpose: ``except SegmentsError`` catches all.

    Its branches: ``ClientClosedError`` (the client was closed under the call),
    ``APIConnectionError`` (no usable answer; ``APITimeoutError`` for running out of time),
    ``APIResponseValidationError`` (an answer that cannot be read) and ``APIStatusError``
    (an error answer; a subclass per common status: ``BadRequestError``,
    ``AuthenticationError``, ``PermissionDeniedError``, ``NotFoundError``,
    ``ConflictError``, ``UnprocessableEntityError``, ``RateLimitError``,
    ``InternalServerError``). Bad arguments raise ``ValueError`` or ``TypeError`` instead,
    before anything is sent.

    Args:
        message: What went wrong, in words (also ``str(error)``'s start).

    Attributes:
        message: What went wrong: for an answer, the server's own message where it sent
            one. Never holds the token.
    """

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

    Args:
        message: What went wrong.
        method: The request's HTTP method.
        url: The request's full URL.

    Attributes:
        method: The request's HTTP method (``"GET"``, ``"POST"``, ``"PUT"``, ``"DELETE"``).
        url: The request's full URL, query included.
        outcome_unknown: True when the server may have carried out the request although
            the call failed (it was sent, and the answer was lost, cut short or a 5xx, or
            a 2xx could not be read): a create may then exist, a rename or a delete may
            have happened. Reconcile before trying again. Always False for a GET and for
            a request that certainly never reached the server.
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
    """The client was closed before the call, or while it waited, was in flight or backed off.

    Also raised when a borrowed ``aiohttp.ClientSession`` was closed by its owner. Never
    retried. Also a ``RuntimeError``, which is what a call on a closed client raised
    before this class existed. Carries ``message``, ``method``, ``url`` and
    ``outcome_unknown``, which tells whether the request had been sent (an in-flight
    POST may have created its segment).
    """


class APIConnectionError(_RequestError):
    """No usable HTTP answer, after the retries the policy allows.

    Raised when the connection could not be made (refused, DNS, a proxy that refused the
    tunnel, a TLS failure), was lost before the answer, or the answer was cut short or was
    not valid HTTP. The underlying cause is chained as ``__cause__``, without its traceback,
    where that is safe. Carries ``message``, ``method``, ``url`` and ``outcome_unknown``
    (True when a write was sent: the server may have acted on it).
    """


class APITimeoutError(APIConnectionError):
    """Out of time: an attempt's ``timeout`` (after the retries), or the call's ``deadline``.

    The deadline covers the wait for a pooled connection or a rate-limit slot too; the
    message says which ran out, and how many attempts were made. Carries what
    ``APIConnectionError`` carries; ``outcome_unknown`` is False when nothing was sent (a
    connection not made in time, no connection free before the deadline).
    """


class APIResponseValidationError(_RequestError):
    """The answer could not be read: not JSON, a malformed envelope, a wrong field, too large.

    Also raised by ``iter_pages``/``iterate`` for page metadata that does not add up (a
    page other than the one asked for, a changed ``perPage``). Never retried. A write whose
    2xx could not be read was still carried out: its ``outcome_unknown`` is True.

    Args:
        message: What is wrong with the answer.
        method: The request's HTTP method.
        url: The request's full URL.
        status_code: The answer's HTTP status.
        body: The decoded body, or an excerpt, where there is one.
        field: The offending field, where one is known.

    Attributes:
        status_code: The answer's HTTP status (a 2xx, whose body could not be read).
        body: The body as far as it was read (decoded JSON, or a bounded excerpt), or
            ``None``.
        field: The offending field, e.g. ``result.items[3].id``, or ``None``.
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

    Raised for the last answer once the retries the policy allows are spent (a 429 or a
    5xx is retried first). The subclasses below name the common statuses; this class
    itself is raised for the others (e.g. 405, 413, a 3xx, which is never followed: the
    message names its ``Location``).

    Args:
        message: The server's message, or the status's phrase.
        method: The request's HTTP method.
        url: The request's full URL.
        status_code: The answer's HTTP status.
        body: The decoded error body, or an excerpt.
        headers: The answer's headers.

    Attributes:
        status_code: The answer's HTTP status.
        message: The server's own message (from ``message`` or ``error.message`` in the
            body), or a bounded excerpt of a body that is not JSON.
        body: The decoded JSON error body, or a bounded text excerpt of a body that is
            not JSON (an HTML error page from a proxy, say), or ``None`` if there was none.
        headers: The answer's headers (``X-Request-Id`` and the like), a case-insensitive
            mapping.
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
    """400: the server rejected the request as malformed. Carries what ``APIStatusError`` does."""


class AuthenticationError(APIStatusError):
    """401: the token is missing, wrong or expired. Carries what ``APIStatusError`` does.

    Stops a bulk operation (no further input is sent) instead of failing each item.
    """


class PermissionDeniedError(APIStatusError):
    """403: the token may not do this. Carries what ``APIStatusError`` does.

    Stops a bulk operation (no further input is sent) instead of failing each item.
    """


class NotFoundError(APIStatusError):
    """404: no such segment for this tenant (or no such route).

    Carries what ``APIStatusError`` does. A DELETE whose earlier attempt may have deleted
    the segment does not raise it: that 404 means done.
    """


class ConflictError(APIStatusError):
    """409: the request conflicts with the current state. Carries what ``APIStatusError`` does."""


class UnprocessableEntityError(APIStatusError):
    """422: the request was well formed but its values were refused (an invalid name).

    Carries what ``APIStatusError`` does; ``message`` is the server's reason.
    """


class RateLimitError(APIStatusError):
    """429: too many requests, after the retries, or with a ``Retry-After`` too long to wait.

    A ``Retry-After`` above the policy's ``retry_after_max`` (or past the call's deadline)
    is not waited for: the error is raised at once, so that the caller can decide.

    Args:
        message: The server's message, or the status's phrase.
        method: The request's HTTP method.
        url: The request's full URL.
        status_code: 429.
        body: The decoded error body, or an excerpt.
        headers: The answer's headers.
        retry_after: The server's ``Retry-After``, in seconds.

    Attributes:
        retry_after: The server's ``Retry-After`` in seconds (an HTTP date is converted;
            ``math.inf`` for a number too large for a float), or ``None`` when it sent
            none or one that cannot be read.
    """

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
    """5xx: the server (or a proxy in front of it) failed, after the retries.

    Carries what ``APIStatusError`` does. For a write answered 500, 502, 503 or 504,
    ``outcome_unknown`` is True (the server may have acted before it failed), and a POST
    is not retried unless the policy says ``retry_post=True``.
    """


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
