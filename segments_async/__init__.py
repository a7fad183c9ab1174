"""segments_async: an asyncio-native client for the Segments API.

Example::

    async with SegmentsClient("https://api.example.com", token) as client:
        segment = await client.segments.create("EMEA")
        async for segment in client.segments.iterate(concurrency=8):
            ...

``SegmentsClient`` holds the connection pool and the options (``RetryPolicy``, timeout,
deadline, hooks); its ``segments`` (a ``SegmentsResource``) makes the calls, which return
``Segment``, ``SegmentPage`` and, for bulk work, ``BulkResult`` (``BulkSuccess`` or
``BulkFailure``). Every error the library raises on purpose is a ``SegmentsError``: see
``help(segments_async.SegmentsError)`` for its branches, and each exception for what it
carries. Event hooks
receive ``RequestEvent``, ``ResponseEvent`` and ``RetryEvent``. ``segments_async.testing``
has a fake API server for your tests.
"""

from ._client import SegmentsClient
from ._errors import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    SegmentsError,
    UnprocessableEntityError,
)
from ._models import (
    BulkFailure,
    BulkResult,
    BulkSuccess,
    RequestEvent,
    ResponseEvent,
    RetryEvent,
    Segment,
    SegmentPage,
)
from ._retry import RetryPolicy
from ._segments import SegmentsResource
from ._version import __version__

__all__ = [
    "APIConnectionError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BulkFailure",
    "BulkResult",
    "BulkSuccess",
    "ClientClosedError",
    "ConflictError",
    "InternalServerError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestEvent",
    "ResponseEvent",
    "RetryEvent",
    "RetryPolicy",
    "Segment",
    "SegmentPage",
    "SegmentsClient",
    "SegmentsError",
    "SegmentsResource",
    "UnprocessableEntityError",
    "__version__",
]
