"""The testing kit as a user meets it: the pytest plugin's fixtures with the real client,
the README's examples, and the demo command."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from segments_async import (
    AuthenticationError,
    NotFoundError,
    SegmentsClient,
    UnprocessableEntityError,
)

from .support import section_blocks

pytest_plugins = ["segments_async.testing.pytest_plugin", "pytester"]


async def test_fixtures_give_a_working_client(segments_client, segments_server):
    """A user's test: create through the client, check the server's state."""
    segment = await segments_client.segments.create("EMEA")
    renamed = await segments_client.segments.update(segment.id, "DACH")

    assert {segment.id: "DACH"} == segments_server.segments()
    assert "DACH" == renamed.name
    await segments_client.segments.delete(segment.id)
    assert {} == segments_server.segments()


async def test_client_reads_the_fakes_errors(segments_client, segments_server):
    """The fake's 404, 422 and 401 come out as the library's typed errors."""
    with pytest.raises(NotFoundError):
        await segments_client.segments.delete("7f2d6e6d-a4ad-4b58-abfe-bd8b918ebec2")
    with pytest.raises(UnprocessableEntityError):
        await segments_client.segments.create("")
    async with SegmentsClient(segments_server.base_url, "wrong-token") as stranger:
        with pytest.raises(AuthenticationError):
            await stranger.segments.list()


async def test_tenants_are_isolated_through_the_client(segments_server):
    """Two tokens see two sets of segments."""
    other = segments_server.add_tenant()
    segments_server.add_segments(5)
    async with (
        SegmentsClient(segments_server.base_url, segments_server.token) as mine,
        SegmentsClient(segments_server.base_url, other) as theirs,
    ):
        assert 5 == (await mine.segments.list()).total
        assert 0 == (await theirs.segments.list()).total


async def test_clamped_per_page_is_followed(segments_client, segments_server):
    """The fake clamps per_page to 100; iterate still returns every segment once."""
    seeded = segments_server.add_segments(345)

    first = await segments_client.segments.list(per_page=1000)
    names = [s.name async for s in segments_client.segments.iterate(per_page=1000)]

    assert (100, 4) == (first.per_page, first.last_page)
    assert list(seeded.values()) == names


def test_demo_command_reports_and_exits_0():
    """`python -m segments_async demo` runs end to end (on a smaller data set here); off a
    terminal it prints its short report alone, explaining the failures it causes."""
    result = subprocess.run(
        [sys.executable, "-m", "segments_async", "demo", "--segments", "400"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )

    assert 0 == result.returncode, result.stderr
    headings = (
        "1. Create, update, delete",
        "2. Fetch all 400",
        "3. Ride through faults",
        "4. Import 1,000 names",
        "5. A deadline across retries",
    )
    for heading in headings:
        assert heading in result.stdout
    assert 'concurrency="auto"' in result.stdout
    assert "speed-up x" in result.stdout
    assert "retrying GET" in result.stdout
    assert "outcome_unknown=True" in result.stdout
    assert "1,000 created" in result.stdout
    assert "InternalServerError after 0." in result.stdout
    # Each failure the demo causes is said to be on purpose.
    assert "Every failure below is caused on purpose" in result.stdout
    assert "with 429 (over its capacity, as intended)" in result.stdout
    assert "delete_many of 102 ids: 100 deleted, 2 failed\n" in result.stdout
    assert "(as intended: NotFoundError for an id that does not exist, and ValueError" in (
        result.stdout
    )
    assert len(result.stdout.splitlines()) < 40
    # No progress lines off a terminal, and the log is in the report, not also here.
    assert "" == result.stderr


def test_main_without_a_command_prints_help():
    """A bare `python -m segments_async` explains itself and exits 2."""
    result = subprocess.run(
        [sys.executable, "-m", "segments_async"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert 2 == result.returncode
    assert "demo" in result.stderr


def test_readme_testing_examples_pass_as_written(pytester: pytest.Pytester) -> None:
    """The README's pyproject setting, conftest and example tests pass in a fresh project."""
    blocks = section_blocks("Testing your own code")
    tests = [code for language, code in blocks if language == "python" and "def test_" in code]
    (pyproject,) = [code for language, code in blocks if language == "toml"]
    (conftest,) = [code for language, code in blocks if code.startswith("pytest_plugins")]
    pytester.makefile(".toml", pyproject=pyproject)
    pytester.makeconftest(conftest)
    for number, code in enumerate(tests):
        pytester.makepyfile(**{f"test_readme_{number}": code})

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error")

    assert 3 == len(tests)
    result.assert_outcomes(passed=sum(code.count("async def test_") for code in tests))
