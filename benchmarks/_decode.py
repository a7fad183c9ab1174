"""Section b: decode one 100-item page from bytes into typed page objects.

ours (``segments_async._decode.decode_segment_page``) against pydantic v2 and msgspec
(the floor for typed decoding), plus orjson with hand-built attrs objects for
reference. Every decoder produces frozen objects with snake_case fields.
"""

from __future__ import annotations

import gc
import importlib
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import msgspec
from pydantic import BaseModel, ConfigDict, TypeAdapter
from pydantic.alias_generators import to_camel

from . import _floor
from ._common import PER_PAGE, Skipped, median, rotated
from ._server import page_body

T = TypeVar("T")

OURS = "ours"
PYDANTIC = "pydantic"
MSGSPEC = "msgspec"
HAND = "orjson+attrs (hand)"
SLICES = 10


class PydanticSegment(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    name: str


class PydanticPage(BaseModel):
    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True)

    current_page: int
    per_page: int
    last_page: int
    total: int
    items: list[PydanticSegment]
    filters: list[Any]


class PydanticEnvelope(BaseModel, Generic[T]):
    success: bool
    result: T


class MsgspecSegment(msgspec.Struct, frozen=True):
    id: str
    name: str


class MsgspecPage(msgspec.Struct, frozen=True, rename="camel"):
    current_page: int
    per_page: int
    last_page: int
    total: int
    items: list[MsgspecSegment]
    filters: list[Any]


class MsgspecEnvelope(msgspec.Struct, Generic[T], frozen=True):
    success: bool
    result: T


Decode = Callable[[bytes], Any]


def _ours() -> Decode:
    try:
        wire = importlib.import_module("segments_async._decode")
        decode: Decode = wire.decode_segment_page
    except (ImportError, AttributeError) as exc:
        raise Skipped(
            f"segments_async._decode.decode_segment_page not available yet ({exc})"
        ) from exc
    return decode


def decoders() -> tuple[dict[str, Decode], dict[str, str]]:
    pydantic_adapter = TypeAdapter(PydanticEnvelope[PydanticPage])
    msgspec_decoder = msgspec.json.Decoder(MsgspecEnvelope[MsgspecPage])
    found: dict[str, Decode] = {}
    skipped: dict[str, str] = {}
    try:
        found[OURS] = _ours()
    except Skipped as exc:
        skipped[OURS] = str(exc)
    found[PYDANTIC] = pydantic_adapter.validate_json
    found[MSGSPEC] = msgspec_decoder.decode
    found[HAND] = _floor.decode_page
    return found, skipped


def _page_of(decoded: Any) -> Any:
    """The page object, whether the decoder returns the page or its envelope."""
    return decoded.result if hasattr(decoded, "result") else decoded


def _check(name: str, decode: Decode, body: bytes) -> None:
    page = _page_of(decode(body))
    if page.current_page != 1 or len(page.items) != PER_PAGE or page.items[0].id is None:
        raise RuntimeError(f"{name} decoded the page wrongly: {page!r:.200}")


def _loop(decode: Decode, body: bytes, loops: int) -> float:
    started = time.perf_counter()
    for _ in range(loops):
        decode(body)
    return time.perf_counter() - started


def bench(rounds: int, loops: int) -> dict[str, Any]:
    body = page_body(total=20_000, page=1, per_page=PER_PAGE)
    found, skipped = decoders()
    failed: dict[str, str] = {}
    for name, decode in list(found.items()):
        try:
            _check(name, decode, body)
            _loop(decode, body, max(1, loops // 10))  # warm-up
            gc.collect()
        except Exception as exc:  # a broken decoder is reported, not fatal
            failed[name] = f"{type(exc).__name__}: {exc}"
            del found[name]

    # A round interleaves the decoders in short slices, so a slow phase of a shared
    # machine hits them all alike instead of whichever happened to run then.
    slices = min(SLICES, loops)
    per_slice = max(1, loops // slices)
    samples: dict[str, list[float]] = {name: [] for name in found}
    for round_index in range(rounds):
        spent = dict.fromkeys(found, 0.0)
        for slice_index in range(slices):
            for name in rotated(list(found), round_index + slice_index):
                spent[name] += _loop(found[name], body, per_slice)
        for name, seconds in spent.items():
            samples[name].append(seconds / (per_slice * slices))

    contenders = {
        name: {"us_per_decode": [s * 1e6 for s in times], "median_us": median(times) * 1e6}
        for name, times in samples.items()
    }
    ours_time_ratio: dict[str, float] = {}
    if OURS in samples:
        # ours' time as a fraction of each other decoder's time: below 1 means ours is faster.
        ours_time_ratio = {
            other: median([o / t for o, t in zip(samples[OURS], times, strict=True)])
            for other, times in samples.items()
            if other != OURS
        }
    return {
        "body_bytes": len(body),
        "items": PER_PAGE,
        "loops": loops,
        "rounds": rounds,
        "contenders": contenders,
        "ours_time_ratio": ours_time_ratio,
        "skipped": skipped,
        "failed": failed,
    }
