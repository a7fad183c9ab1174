"""The sans-I/O request side: paths, queries and bodies built from input, and input checks."""

from __future__ import annotations

import re
import uuid

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from segments_async._wire import (
    SEGMENTS_PATH,
    check_name,
    check_positive_int,
    list_query,
    name_body,
    segment_path,
)

ID = "7f2d6e6d-a4ad-4b58-abfe-bd8b918ebec2"


# --------------------------------------------------------------------------- requests


class TestSegmentPath:
    @pytest.mark.parametrize(
        ("segment_id", "expected"),
        [
            (ID, ID),
            (ID.upper(), ID),
            ("7F2d6E6d-A4aD-4b58-ABFE-bd8b918ebec2", ID),
            (uuid.UUID(ID), ID),
            (uuid.UUID(ID.upper()), ID),
            ("00000000-0000-0000-0000-000000000000", "00000000-0000-0000-0000-000000000000"),
        ],
    )
    def test_accepts(self, segment_id, expected):
        """Canonical UUID strings (any case) and uuid.UUID give the lowercase path."""
        assert f"/v2.3/data/segments/{expected}" == segment_path(segment_id)

    @pytest.mark.parametrize(
        "segment_id",
        [
            "../x",
            "a/b",
            "?",
            "#",
            "",
            " ",
            "%2e%2e",
            f" {ID}",
            f"{ID} ",
            f"{ID}\n",
            f"\n{ID}",
            f"{{{ID}}}",
            f"urn:uuid:{ID}",
            ID.replace("-", ""),
            f"{ID}/../x",
            f"{ID}?x=1",
            f"{ID}#x",
            ID[:-1],
            ID + "0",
            ID.replace("-", "_"),
            "7f2d6e6d-a4ad-4b58-abfe-bd8b918ebeg2",
            # Fullwidth digits would pass a Unicode-aware \d.
            "\uff17f2d6e6d-a4ad-4b58-abfe-bd8b918ebec2",
        ],
    )
    def test_rejects_str(self, segment_id):
        """Anything but the bare canonical form is a ValueError."""
        with pytest.raises(ValueError, match="segment_id must be a UUID"):
            segment_path(segment_id)

    @pytest.mark.parametrize(
        "segment_id", [0, 1, uuid.UUID(ID).int, None, ID.encode(), 1.5, [ID], object()]
    )
    def test_rejects_other_types(self, segment_id):
        """Ints, None, bytes and other objects are a ValueError (the contract's error)."""
        with pytest.raises(ValueError, match="segment_id must be a UUID"):
            segment_path(segment_id)

    def test_message_bounded(self):
        """A huge bad id is shortened in the message."""
        with pytest.raises(ValueError, match="segment_id") as info:
            segment_path("x" * 10_000)

        assert len(str(info.value)) < 300

    @given(st.text())
    def test_any_text(self, text):
        """Any text either raises ValueError or gives the segments path plus a lowercase UUID."""
        try:
            path = segment_path(text)
        except ValueError:
            return

        assert re.fullmatch(r"/v2\.3/data/segments/[0-9a-f-]{36}", path)
        assert path.startswith(SEGMENTS_PATH + "/")

    @given(st.uuids())
    def test_any_uuid(self, value):
        """Any UUID, as object or upper-case string, gives its canonical path."""
        assert f"{SEGMENTS_PATH}/{value}" == segment_path(value)
        assert f"{SEGMENTS_PATH}/{value}" == segment_path(str(value).upper())


class TestCheckPositiveInt:
    @pytest.mark.parametrize("value", [1, 2, 10**12])
    def test_ok(self, value):
        """Ints >= 1 come back unchanged."""
        assert value == check_positive_int("page", value)

    @pytest.mark.parametrize("value", [0, -1, -(10**12)])
    def test_below_one(self, value):
        """Ints below 1 are a ValueError naming the parameter."""
        with pytest.raises(ValueError, match="per_page must be >= 1"):
            check_positive_int("per_page", value)

    @pytest.mark.parametrize("value", [True, False, 1.0, "1", None, b"1", [1]])
    def test_not_int(self, value):
        """Bools, floats, strings and None are a TypeError naming the parameter."""
        with pytest.raises(TypeError, match="concurrency must be an int"):
            check_positive_int("concurrency", value)


class TestListQuery:
    def test_query(self):
        """page and per_page become the spec's query string."""
        assert "page=3&per_page=50" == list_query(3, 50)

    def test_defaults_shape(self):
        """The spec's example query."""
        assert "page=1&per_page=20" == list_query(1, 20)

    @pytest.mark.parametrize(("page", "per_page"), [(0, 20), (1, 0), (-1, 20)])
    def test_value_error(self, page, per_page):
        """A page or per_page below 1 is a ValueError."""
        with pytest.raises(ValueError, match="must be >= 1"):
            list_query(page, per_page)

    @pytest.mark.parametrize(("page", "per_page"), [("1", 20), (1, 20.0), (True, 20), (1, None)])
    def test_type_error(self, page, per_page):
        """A non-int page or per_page is a TypeError."""
        with pytest.raises(TypeError, match="must be an int"):
            list_query(page, per_page)


class TestName:
    @pytest.mark.parametrize("name", [None, 1, b"x", ["x"]])
    def test_check_name_type(self, name):
        """A non-str name is a TypeError."""
        with pytest.raises(TypeError, match="name must be a str"):
            check_name(name)

    @pytest.mark.parametrize("name", [None, 1, b"x"])
    def test_name_body_type(self, name):
        """name_body refuses a non-str name with TypeError, not ValueError."""
        with pytest.raises(TypeError, match="name must be a str"):
            name_body(name)

    @pytest.mark.parametrize("name", ["EMEA", "", "Zürich 東京 🚀", 'a "quoted" \\ name\n'])
    def test_check_name_ok(self, name):
        """Any str is a name: emptiness and length are the server's call."""
        assert name is check_name(name)

    def test_lone_surrogate(self):
        """A name JSON cannot carry is a ValueError."""
        with pytest.raises(ValueError, match="cannot be encoded as JSON"):
            name_body("\ud800")

    def test_spec_body(self):
        """The body is the spec's {"name": ...} object."""
        assert b'{"name":"EMEA"}' == name_body("EMEA")

    @pytest.mark.parametrize("name", ["Zürich 東京 🚀", 'a "quoted" \\ name\n', "", "\x00"])
    def test_round_trip(self, name):
        """Unicode and escapes survive the trip through orjson."""
        assert {"name": name} == orjson.loads(name_body(name))

    @given(st.text())
    def test_round_trip_any(self, name):
        """Any text either round-trips or is a ValueError."""
        try:
            body = name_body(name)
        except ValueError:
            return

        assert {"name": name} == orjson.loads(body)


# --------------------------------------------------------------------------- configuration


class TestHostileUUIDs:
    """A ``uuid.UUID`` subclass cannot change the path; its value is what is sent."""

    def test_str_repr_format_and_hex_are_ignored(self):
        """A subclass whose text forms say ../../admin still gives its canonical path."""

        class Evil(uuid.UUID):
            def __str__(self) -> str:
                return "../../admin"

            def __repr__(self) -> str:
                return "../../admin"

            def __format__(self, spec: str) -> str:
                return "../../admin"

            @property
            def hex(self) -> str:  # type: ignore[override]
                return "../../admin"

        assert f"{SEGMENTS_PATH}/{ID}" == segment_path(Evil(ID))

    def test_an_int_property_is_ignored(self):
        """A subclass's ``int`` property cannot stand in for the stored value."""

        class Evil(uuid.UUID):
            __slots__ = ()

            def __getattribute__(self, name: str) -> object:
                return "../../admin"

        assert f"{SEGMENTS_PATH}/{ID}" == segment_path(Evil(ID))

    @pytest.mark.parametrize("stored", [-1, 1 << 128, "../x", 1.5, True])
    def test_a_forged_value_is_a_value_error(self, stored):
        """A value outside 128 bits, or not an int, forced into the slot: ValueError."""
        value = uuid.UUID(ID)
        object.__setattr__(value, "int", stored)
        with pytest.raises(ValueError, match="segment_id"):
            segment_path(value)

    def test_an_int_subclass_is_a_value_error(self):
        """An int subclass with its own formatting, forced into the slot: ValueError."""

        class Digits(int):
            def __format__(self, spec: str) -> str:
                return "../../admin"

        value = uuid.UUID(ID)
        object.__setattr__(value, "int", Digits(5))
        with pytest.raises(ValueError, match="segment_id"):
            segment_path(value)

    def test_a_subclass_that_never_set_its_value_is_a_value_error(self):
        """A subclass that skipped UUID.__init__ has no value: ValueError, not AttributeError."""

        class Hollow(uuid.UUID):
            def __init__(self) -> None:
                pass

        with pytest.raises(ValueError, match="segment_id"):
            segment_path(Hollow())
