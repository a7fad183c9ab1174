"""Every public name's docstring answers without the README: what, arguments, raises.

The public API is walked from ``__all__`` (``segments_async``, ``segments_async.testing``,
the pytest plugin): each class and each public method, property and classmethod of it,
inherited ones included where the package defines them. Docstrings are Google style:
``Args:``, ``Attributes:``, ``Returns:``, ``Yields:``, ``Raises:`` sections whose entries
are ``name: text`` lines indented once.
"""

from __future__ import annotations

import builtins
import inspect
import re
from collections.abc import Callable, Iterator

import pytest

import segments_async
import segments_async.testing
import segments_async.testing.pytest_plugin
from segments_async import SegmentsResource

MODULES = [segments_async, segments_async.testing, segments_async.testing.pytest_plugin]

#: Shorter than this says nothing a name does not already say ("The retry policy.").
SUBSTANCE = 40

#: The calls that send requests: each says what it raises, and what it returns or yields.
SENDS = {
    "list",
    "create",
    "update",
    "delete",
    "create_many",
    "update_many",
    "delete_many",
    "iter_pages",
    "iterate",
}

SECTIONS = {"Args", "Attributes", "Returns", "Yields", "Raises", "Example", "Examples", "Note"}


def sections(doc: str) -> dict[str, list[str]]:
    """The Google-style sections of ``doc``, each with the names its entries document."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in inspect.cleandoc(doc).splitlines():
        if line and not line[0].isspace():
            heading = re.fullmatch(r"(\w+):", line)
            current = None
            if heading is not None and heading[1] in SECTIONS:
                current = found.setdefault(heading[1], [])
            continue
        entry = re.match(r" {4}(\*{0,2}\w+)(?: \([^)]*\))?: ", line)
        if current is not None and entry is not None:
            current.append(entry[1])
    return found


def parameters(function: Callable[..., object]) -> list[str]:
    """The parameters a caller passes: not ``self`` or ``cls``."""
    names = list(inspect.signature(function).parameters)
    return names[1:] if names and names[0] in ("self", "cls") else names


def own_members(cls: type) -> Iterator[tuple[str, str, object]]:
    """(qualified name, name, object) of the public callables ``cls`` has from the package."""
    for klass in cls.__mro__:
        if not klass.__module__.startswith("segments_async"):
            continue
        for name, value in vars(klass).items():
            if name.startswith("_"):
                continue
            if isinstance(value, classmethod | staticmethod):
                value = value.__func__
            if isinstance(value, property) or inspect.isfunction(value):
                yield f"{klass.__module__}.{klass.__qualname__}.{name}", name, value


def public_api() -> dict[str, object]:
    """Every public class, function, method and property, by qualified name (once each)."""
    found: dict[str, object] = {}
    for module in MODULES:
        for name in module.__all__:
            value = getattr(module, name)
            if isinstance(value, type):
                found[f"{value.__module__}.{value.__qualname__}"] = value
                for qualified, _, member in own_members(value):
                    found.setdefault(qualified, member)
            elif inspect.isfunction(inspect.unwrap(value)):  # pytest fixtures wrap theirs
                found[f"{module.__name__}.{name}"] = value
            # Type aliases (FaultKind) carry no run-time docstring: pyright checks theirs.
    return found


API = public_api()


def constructor(cls: type) -> Callable[..., object] | None:
    """The ``__init__`` (or ``__new__``) that ``cls`` itself defines, if it defines one."""
    for name in ("__init__", "__new__"):
        if name in vars(cls):
            function: Callable[..., object] = getattr(cls, name)
            return function
    return None


def test_the_walk_finds_the_api():
    """The walk reaches the classes, their methods and properties, and the fixtures."""
    names = set(API)
    assert {
        "segments_async._client.SegmentsClient",
        "segments_async._client.SegmentsClient.with_options",
        "segments_async._client.SegmentsClient.retry",
        "segments_async._segments.SegmentsResource.update",
        "segments_async._errors.RateLimitError",
        "segments_async.testing._server.FakeSegmentsServer.inject",
        "segments_async.testing._faults.Fault.status",
        "segments_async.testing._limits.CapacityLimit.matches",
        "segments_async.testing.pytest_plugin.segments_client",
    } <= names
    assert len(names) > 100


@pytest.mark.parametrize("module", MODULES, ids=lambda module: module.__name__)
def test_public_modules_say_what_they_hold(module):
    """Each public module's docstring says what it is for."""
    assert len(inspect.cleandoc(module.__doc__ or "")) >= SUBSTANCE


@pytest.mark.parametrize("name", sorted(API))
def test_has_a_docstring_of_substance(name):
    """Its own docstring (not one inherited) is at least a sentence long."""
    doc = API[name].__doc__ or ""
    assert len(inspect.cleandoc(doc)) >= SUBSTANCE, f"{name}: {doc!r}"


FUNCTIONS = sorted(name for name, value in API.items() if not isinstance(value, type | property))


@pytest.mark.parametrize("name", FUNCTIONS)
def test_names_each_argument_in_args(name):
    """A function or method with arguments documents exactly those in its Args section."""
    function = API[name]
    assert callable(function)
    expected = parameters(function)
    documented = sections(function.__doc__ or "").get("Args")
    if not expected:
        assert documented is None, f"{name} takes no argument"
        return
    assert documented is not None, f"{name} has no Args section"
    assert sorted(expected) == sorted(documented), name


CLASSES = sorted(name for name, value in API.items() if isinstance(value, type))


@pytest.mark.parametrize("name", CLASSES)
def test_names_each_constructor_argument(name):
    """A class documents the arguments of the constructor it defines (Args or Attributes).

    Entries of an Args section must be real parameters; Attributes may name more.
    """
    cls = API[name]
    assert isinstance(cls, type)
    init = constructor(cls)
    if init is None:
        return  # inherited: documented where it is defined
    expected = set(parameters(init))
    found = sections(cls.__doc__ or "")
    found_init = sections(init.__doc__ or "")
    args = set(found.get("Args", []) + found_init.get("Args", []))
    attributes = set(found.get("Attributes", []))
    assert args <= expected, f"{name}'s Args names {sorted(args - expected)}, not parameters"
    assert expected <= args | attributes, f"{name}: undocumented {sorted(expected - args)}"


def test_every_call_that_sends_is_classified():
    """SENDS is exactly the resource's public methods: a new call must say what it raises."""
    public = {name for name, value in vars(SegmentsResource).items() if not name.startswith("_")}
    assert SENDS == public


@pytest.mark.parametrize("method", sorted(SENDS))
def test_calls_that_send_say_what_they_raise_and_return(method):
    """A call that sends has a Raises section, and Returns or Yields unless it gives None."""
    function = getattr(SegmentsResource, method)
    found = sections(function.__doc__ or "")
    assert found.get("Raises"), f"{method} has no Raises section"
    returns_none = inspect.signature(function).return_annotation in (None, "None")
    assert returns_none or "Returns" in found or "Yields" in found, method


def is_exception(name: str) -> bool:
    """Whether ``name`` is an exception class of the builtins or of the package."""
    for namespace in (builtins, segments_async):
        value = getattr(namespace, name, None)
        if isinstance(value, type) and issubclass(value, BaseException):
            return True
    return False


@pytest.mark.parametrize("name", sorted(API))
def test_raises_names_real_exceptions(name):
    """Every entry of a Raises section is an exception class that exists."""
    raised = sections(API[name].__doc__ or "").get("Raises", [])
    unknown = [entry for entry in raised if not is_exception(entry)]
    assert [] == unknown, name


def test_sections_are_read_as_google_style():
    """The section reader finds entries at one indentation, not their continuation lines."""
    doc = """Summary.

    Args:
        first: Text that goes on
            second: not an entry, a continuation.
        third (int): Typed.

    Raises:
        ValueError: Why.
    """
    assert {"Args": ["first", "third"], "Raises": ["ValueError"]} == sections(doc)
