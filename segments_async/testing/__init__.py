"""Test helpers: a fake Segments API server with fault injection, and a pytest plugin.

See ``segments_async.testing._server`` for usage; ``python -m segments_async.testing``
runs the server standalone.
"""

from ._faults import Fault, FaultKind, FaultRule
from ._limits import CapacityLimit, ConcurrencyLimit, RateLimit
from ._log import RecordedRequest, RequestCounts
from ._server import FakeSegmentsServer

__all__ = [
    "CapacityLimit",
    "ConcurrencyLimit",
    "FakeSegmentsServer",
    "Fault",
    "FaultKind",
    "FaultRule",
    "RateLimit",
    "RecordedRequest",
    "RequestCounts",
]
