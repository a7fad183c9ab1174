"""The console script at its edges (issue 14): interrupted, piped, slow, huge or odd input.

Each test runs the real ``segments-async`` in a subprocess against the fake server (or a
raw loopback server where the fake cannot misbehave enough) and checks what a user would:
the exit status, the files left behind, the report, and the server's state.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import stat
import sys
import time
from collections.abc import AsyncIterator

import pytest

from segments_async.testing import FakeSegmentsServer, Fault

from ..conftest import page_payload
from ..rawserver import RawRequest, RawServer, json_response
from .cli_support import (
    FOREGROUND,
    HANG,
    LAUNCHER,
    SCRIPT,
    child_env,
    report_lines,
    run,
    run_into_head,
    spawn,
)

pytestmark = pytest.mark.skipif(
    not SCRIPT.exists(), reason="the console script is not installed (pip install -e .)"
)


@pytest.fixture
async def server() -> AsyncIterator[FakeSegmentsServer]:
    async with FakeSegmentsServer(seed=14) as fake:
        fake.add_segments(250)
        yield fake


async def peak_rss(server: FakeSegmentsServer, *argv: str) -> tuple[int, int, str]:
    """Run the console script under the launcher: (status, peak RSS in MiB, stderr)."""
    ran = await run(server, "-S", "-c", LAUNCHER, str(SCRIPT), *argv, program=[sys.executable])
    *_, kib = ran.stdout.decode().split()
    return ran.status, int(kib) // 1024, ran.stderr


# --------------------------------------------------------------------------- 1. atomic export


async def test_a_refused_export_leaves_the_previous_output_alone(server, tmp_path):
    """A wrong token: status 3, the old export intact, no temporary file left behind."""
    keep = tmp_path / "keep.jsonl"
    assert 0 == (await run(server, "export", "-o", str(keep))).status
    before = keep.read_bytes()

    ran = await run(
        server, "export", "-o", str(keep), env=child_env(server, SEGMENTS_API_TOKEN="x")
    )

    assert 3 == ran.status
    assert before == keep.read_bytes()
    assert 250 == len(before.splitlines())
    assert ["keep.jsonl"] == os.listdir(tmp_path)
    assert f"{keep} was left as it was" in ran.stderr


async def test_an_export_failing_on_page_3_leaves_the_previous_output_alone(tmp_path):
    """Pages 1 and 2 written, page 3 a 500: status 4, the file as it was, no partial file."""

    async def pages(request: RawRequest) -> bytes:
        if "page=3&" in request.target:
            return json_response(500, {"success": False, "error": {"message": "broken"}})
        page = int(request.target.split("page=")[1].split("&")[0])
        return json_response(200, page_payload(page, 10, 50))

    keep = tmp_path / "keep.csv"
    keep.write_bytes(b"id,name\r\nold,export\r\n")
    keep.chmod(0o640)
    async with RawServer(pages) as raw:
        env = child_env(None, SEGMENTS_BASE_URL=raw.url, SEGMENTS_API_TOKEN="t")
        ran = await run(
            None,
            *("export", "-o", str(keep), "--per-page", "10", "--concurrency", "1"),
            *("--retries", "0"),
            env=env,
        )

    assert 4 == ran.status
    assert b"id,name\r\nold,export\r\n" == keep.read_bytes()
    assert ["keep.csv"] == os.listdir(tmp_path)
    assert "20 segments" in ran.stderr


async def test_an_export_replaces_the_file_keeping_its_mode(server, tmp_path):
    """Success replaces the file whole; an existing file keeps its mode, a new one gets
    what the umask allows (not mkstemp's 0600)."""
    old = tmp_path / "old.jsonl"
    old.write_bytes(b"stale\n" * 1000)
    old.chmod(0o640)
    new = tmp_path / "new.jsonl"

    assert 0 == (await run(server, "export", "-o", str(old))).status
    assert 0 == (await run(server, "export", "-o", str(new))).status

    assert 250 == len(old.read_bytes().splitlines())
    assert old.read_bytes() == new.read_bytes()
    assert 0o640 == stat.S_IMODE(old.stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert 0o666 & ~umask == stat.S_IMODE(new.stat().st_mode)
    assert {"old.jsonl", "new.jsonl"} == set(os.listdir(tmp_path))


async def test_ctrl_c_mid_export_to_a_file_leaves_it_alone(server, tmp_path):
    """SIGINT while pages come in: status 130, the old file intact, the partial one gone."""
    server.add_segments(2_000)
    server.inject(Fault.latency(0.05), method="GET", probability=1.0)
    keep = tmp_path / "keep.jsonl"
    keep.write_bytes(b'{"id": "old"}\n')
    async with spawn(
        *(sys.executable, "-S", "-c", FOREGROUND, str(SCRIPT)),
        *("export", "-o", str(keep), "--per-page", "10", "--concurrency", "2"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=child_env(server),
    ) as child:
        while server.counts.by_method.get("GET", 0) < 4:  # noqa: ASYNC110 (no arrival event)
            await asyncio.sleep(0.01)
        child.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(child.communicate(), HANG)

    assert 130 == child.returncode
    assert b'{"id": "old"}\n' == keep.read_bytes()
    assert ["keep.jsonl"] == os.listdir(tmp_path)
    assert f"{keep} was left as it was" in err.decode()


# --------------------------------------------------------------------------- 2. slow input


async def feed_slowly(child: asyncio.subprocess.Process, lines: list[bytes], arrived) -> None:
    """Write a line, then wait (2 s at most) until the server has acted on it: a producer
    whose lines come slower than --timeout if the command waits for input on its loop."""
    assert child.stdin is not None
    for number, line in enumerate(lines, 1):
        child.stdin.write(line)
        await child.stdin.drain()
        deadline = time.monotonic() + 2.0
        while not arrived(number) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    child.stdin.close()


@pytest.mark.parametrize("command", ["import", "delete-many"])
async def test_a_slow_producer_costs_time_never_correctness(server, tmp_path, command):
    """Lines slower than --timeout on stdin: every item done, nothing timed out."""
    doomed = list(server.segments())[:3]
    if command == "import":
        lines = [b'{"name": "slow-%d"}\n' % number for number in range(3)]
        argv = ["import", "-", "--format", "jsonl"]

        def arrived(count: int) -> bool:
            return sum(name.startswith("slow-") for name in server.segments().values()) >= count
    else:
        lines = [f"{id_}\n".encode() for id_ in doomed]
        argv = ["delete-many", "-"]

        def arrived(count: int) -> bool:
            return len(set(doomed) - set(server.segments())) >= count

    report = tmp_path / "report.jsonl"
    async with spawn(
        str(SCRIPT),
        *argv,
        *("--timeout", "1", "--retries", "0", "--report", str(report)),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=child_env(server),
    ) as child:
        await feed_slowly(child, lines, arrived)
        _, err = await asyncio.wait_for(child.communicate(), HANG)

    assert 0 == child.returncode, err.decode()
    assert ["ok"] * 3 == [line["status"] for line in report_lines(report)]
    assert arrived(3)
    assert f"{command}: 3 succeeded, 0 failed, 0 unknown" in err.decode()


# --------------------------------------------------------------------------- 4. CSV names

ODD_NAMES = [
    "North\rAmerica",
    "South\nAmerica",
    "Central\r\nAmerica",
    'say "hi", then, bye',
    "  padded  ",
    "\ufeffstarts with a BOM",
    "emoji \U0001f600 and \U00010348",
    '"',
    "trailing\n",
    ",",
]


async def test_csv_export_then_import_keeps_every_name_byte_for_byte(tmp_path):
    """CR, LF, CRLF, quotes, commas, spaces, a BOM, non-BMP: export -> csv module -> import."""
    exported = tmp_path / "segments.csv"
    async with FakeSegmentsServer(seed=4) as source, FakeSegmentsServer(seed=5) as target:
        for name in ODD_NAMES:
            assert 0 == (await run(source, "create", name)).status
        assert 0 == (await run(source, "export", "-o", str(exported))).status
        with exported.open(newline="", encoding="utf-8") as file:
            rows = list(csv.DictReader(file))

        ran = await run(target, "import", str(exported))

        assert ODD_NAMES == [row["name"] for row in rows]
        assert 0 == ran.status, ran.stderr
        assert sorted(ODD_NAMES) == sorted(target.segments().values())


# --------------------------------------------------------------------------- 7. huge lines


async def test_a_huge_line_of_ids_fails_alone_in_bounded_memory(server, tmp_path):
    """64 MB of zero bytes without a newline, then an id: the huge line fails alone, memory
    stays bounded, and what is echoed about it is short."""
    doomed = next(iter(server.segments()))
    ids = tmp_path / "ids.txt"
    with ids.open("wb") as file:
        for _ in range(64):
            file.write(bytes(1 << 20))
        file.write(f"\n{doomed}\n".encode())
    report = tmp_path / "report.jsonl"

    status, peak_mib, err = await peak_rss(server, "delete-many", str(ids), "--report", str(report))

    assert 1 == status, err
    assert peak_mib < 200, f"peak RSS {peak_mib} MiB"
    huge, done = report_lines(report)
    assert (0, 1, "failed") == (huge["index"], huge["line"], huge["status"])
    assert "67,108,864 bytes" in str(huge["error"])
    assert (1, 2, "ok") == (done["index"], done["line"], done["status"])
    assert doomed not in server.segments()
    assert report.stat().st_size < 2_000
    assert len(err) < 2_000
    assert f"{ids}, line 1: " in err


async def test_a_one_line_json_array_is_read_in_bounded_memory(server, tmp_path):
    """A 70 MB JSON array on one line given as JSON lines: one failed item, bounded memory."""
    names = tmp_path / "names.jsonl"
    with names.open("wb") as file:
        file.write(b"[")
        chunk = b'{"name": "a name that repeats"}, ' * 32_768
        while file.tell() < 70 << 20:
            file.write(chunk)
        file.write(b'{"name": "last"}]\n')
    report = tmp_path / "report.jsonl"
    before = len(server.segments())

    status, peak_mib, err = await peak_rss(server, "import", str(names), "--report", str(report))

    assert 1 == status, err
    assert peak_mib < 200, f"peak RSS {peak_mib} MiB"
    (line,) = report_lines(report)
    assert (0, 1, "failed") == (line["index"], line["line"], line["status"])
    assert str(line["input"]).startswith('[{"name": "a name that repeats"}')
    assert before == len(server.segments())
    assert len(err) < 2_000


# --------------------------------------------------------------------------- 8. CSV fields


async def test_a_csv_field_over_the_csv_limit_fails_alone(server, tmp_path):
    """A 200 KiB name on line 3 (over csv's 128 KiB field limit): it fails with its line,
    the names around it are created, status 1."""
    names = tmp_path / "names.csv"
    huge = "x" * (200 << 10)
    names.write_text(f'name\nbefore\n{huge}\n"quoted\n{huge}\nover lines"\nafter\n')
    report = tmp_path / "report.jsonl"

    ran = await run(server, "import", str(names), "--report", str(report))

    assert 1 == ran.status, ran.stderr
    lines = report_lines(report)
    assert [(0, 2, "ok"), (1, 3, "failed"), (2, 4, "failed"), (3, 7, "ok")] == [
        (line["index"], line["line"], line["status"]) for line in lines
    ]
    assert {"before", "after"} <= set(server.segments().values())
    assert f"{names}, line 3: " in ran.stderr
    assert "import: 2 succeeded, 2 failed, 0 unknown" in ran.stderr


# --------------------------------------------------------------------------- 10. export --limit


@pytest.mark.parametrize(("limit", "pages"), [(1000, 10), (5000, 50), (1, 1), (999, 10)])
async def test_export_limit_requests_only_the_pages_it_needs(limit, pages, tmp_path):
    """--limit N at 100 a page and 16 in flight: ceil(N / 100) page requests, N lines."""
    async with FakeSegmentsServer(seed=10, record_requests=0) as fake:
        fake.add_segments(20_000)
        ran = await run(fake, "export", "--limit", str(limit), "--concurrency", "16")

        assert 0 == ran.status, ran.stderr
        assert limit == len(ran.stdout.splitlines())
        assert pages == fake.counts.by_method["GET"]


# --------------------------------------------------------------------------- 11. closed stdout


async def test_create_whose_stdout_is_closed_still_creates_every_name(server):
    """`create N1 .. N3000 | head -1`: every name created, a stderr line says how many were
    not printed, and the status says everything was done."""
    names = [f"made-{number}" for number in range(1, 3001)]

    ran = await run_into_head(server, "create", *names)

    assert "made-1" == json.loads(ran.stdout.split(b"\n")[0])["name"]
    assert sorted(names) == sorted(n for n in server.segments().values() if n.startswith("made-"))
    assert 0 == ran.status, ran.stderr
    assert "create: 3,000 succeeded, 0 failed, 0 unknown" in ran.stderr
    assert "created segments were not printed" in ran.stderr


# --------------------------------------------------------------------------- 12. skip-existing


async def test_import_skip_existing_creates_nothing_twice(server, tmp_path):
    """A second run (and a name twice in the file) creates nothing again: "skipped"."""
    existing = next(iter(server.segments().values()))
    names = tmp_path / "names.csv"
    names.write_text(f"name\nfresh-1\n{existing}\nfresh-2\n\nfresh-1\n")
    first_report, second_report = tmp_path / "first.jsonl", tmp_path / "second.jsonl"

    first = await run(
        server, "import", str(names), "--skip-existing", "--report", str(first_report)
    )
    second = await run(
        server, "import", str(names), "--skip-existing", "--report", str(second_report)
    )

    assert 0 == first.status, first.stderr
    assert [(0, 2, "ok"), (1, 3, "skipped"), (2, 4, "ok"), (3, 6, "skipped")] == [
        (line["index"], line["line"], line["status"]) for line in report_lines(first_report)
    ]
    assert "import: 2 succeeded, 0 failed, 0 unknown, 2 skipped" in first.stderr
    assert 0 == second.status, second.stderr
    assert {"skipped"} == {line["status"] for line in report_lines(second_report)}
    assert "import: 0 succeeded, 0 failed, 0 unknown, 4 skipped" in second.stderr
    assert [existing, "fresh-1", "fresh-2"] == sorted(
        name for name in server.segments().values() if name in {existing, "fresh-1", "fresh-2"}
    )


async def test_stderr_names_the_line_of_a_failed_item(server, tmp_path):
    """A refused name on line 4 of a CSV is "names.csv, line 4", not an item index."""
    bad = tmp_path / "bad.csv"
    bad.write_text('name\nok-1\n\n""\nok-2\n')

    ran = await run(server, "import", str(bad))

    assert 1 == ran.status
    assert f"segments-async: {bad}, line 4: '': failed: 422 " in ran.stderr


# --------------------------------------------------------------------------- 3. Ctrl-C


async def test_ctrl_c_keeps_every_result_that_came_back(server, tmp_path):
    """One slow create, 199 quick ones, SIGINT once they are done: status 130, every answer
    in the report and the summary, the slow one unknown; a re-run creates nothing twice."""
    names = tmp_path / "names.csv"
    names.write_text("name\n" + "".join(f"item-{number}\n" for number in range(200)))
    report = tmp_path / "report.jsonl"
    slow = server.inject(Fault.latency(30), method="POST", times=1)
    before = len(server.segments())

    def created() -> int:
        return len(server.segments()) - before

    async with spawn(
        *(sys.executable, "-S", "-c", FOREGROUND, str(SCRIPT)),
        *("import", str(names), "--concurrency", "16", "--report", str(report)),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=child_env(server),
    ) as child:
        deadline = time.monotonic() + 5  # the old code stalls behind the slow item
        while (slow.hits == 0 or created() < 199) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        child.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(child.communicate(), HANG)
    done_before_rerun = created()

    assert 130 == child.returncode, err.decode()
    lines = report_lines(report)
    statuses = [line["status"] for line in lines]
    assert 199 == statuses.count("ok")
    assert 1 == statuses.count("unknown")
    assert list(range(200)) == [line["index"] for line in lines]
    assert statuses.count("ok") <= done_before_rerun <= statuses.count("ok") + 1
    assert "199 succeeded, 0 failed, 1 unknown" in err.decode()

    rerun = await run(server, "import", str(names), "--skip-existing")

    assert 0 == rerun.status, rerun.stderr
    created_names = [n for n in server.segments().values() if n.startswith("item-")]
    assert sorted(set(created_names)) == sorted(created_names)
    assert 200 == len(created_names)


async def test_ctrl_c_while_waiting_for_input_ends_at_once(server, tmp_path):
    """stdin open and silent, nothing in flight: the first Ctrl-C ends the import (130),
    with what was done reported, instead of waiting for input that may never come."""
    report = tmp_path / "report.jsonl"
    async with spawn(
        *(sys.executable, "-S", "-c", FOREGROUND, str(SCRIPT)),
        *("import", "-", "--format", "jsonl", "--report", str(report)),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=child_env(server),
    ) as child:
        assert child.stdin is not None
        child.stdin.write(b'{"name": "the only one"}\n')
        await child.stdin.drain()
        while "the only one" not in server.segments().values():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        child.send_signal(signal.SIGINT)
        assert child.stderr is not None
        err = await asyncio.wait_for(child.stderr.read(), HANG)
        await asyncio.wait_for(child.wait(), HANG)

    assert 130 == child.returncode, err.decode()
    assert ["ok"] == [line["status"] for line in report_lines(report)]
    assert "import: 1 succeeded, 0 failed, 0 unknown" in err.decode()
