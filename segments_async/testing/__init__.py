"""Test helpers: a fake Segments API server with fault injection, and a pytest plugin.

``FakeSegmentsServer`` is the fake (see its documentation for an example); ``Fault``
says what goes wrong with a request (``server.inject``), ``ConcurrencyLimit`` and
``RateLimit`` what ``server.limit_concurrency`` and ``server.limit_rate`` return, and
``RecordedRequest`` and ``RequestCounts`` what the server saw. The fixtures
``segments_server`` and ``segments_client`` come with
``pytest_plugins = ["segments_async.testing.pytest_plugin"]`` in a ``conftest.py``;
``python -m segments_async.testing`` runs the server standalone.
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
