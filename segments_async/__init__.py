"""segments_async: an asyncio-native client for the Segments API.

async with SegmentsClient("https://api.example.com", token) as client:
    segment = await client.segments.create("EMEA")
    async for segment in client.segments.iterate(concurrency=8):
        ...
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
