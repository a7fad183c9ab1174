"""The real ``segments-async`` console script, run in a subprocess against the fake server.

Each test starts ``FakeSegmentsServer`` in its own loop and hands the child the server's
address and token through the environment (or a token file), then checks the exit status,
parses every line of stdout, and reads the server's state. Children run with
``PYTHONWARNINGS=error``, so an unclosed session or a task left behind shows on stderr.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import pty
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from segments_async import InternalServerError, RetryPolicy, SegmentsClient
from segments_async.testing import FakeSegmentsServer, Fault

from .cli_support import (
    FOREGROUND,
    HANG,
    LAUNCHER,
    MISSING_ID,
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
    async with FakeSegmentsServer(seed=11) as fake:
        fake.add_segments(250)
        yield fake


def as_json_lines(segments: dict[str, str]) -> list[dict[str, object]]:
    return [{"id": id_, "name": name} for id_, name in segments.items()]


# --------------------------------------------------------------------------- reading


async def test_export_writes_every_segment_as_json_lines(server):
    """export: every segment, in order, one JSON object a line; nothing on stderr."""
    ran = await run(server, "export", "--concurrency", "4")

    assert 0 == ran.status, ran.stderr
    assert as_json_lines(server.segments()) == ran.json_lines()
    assert "" == ran.stderr


async def test_export_csv_to_a_file_with_options_on_both_sides(server, tmp_path):
    """CSV with an id,name header (quotes and newlines intact), --limit, global options after."""
    async with SegmentsClient(server.base_url, server.token) as client:
        tricky = await client.segments.update(next(iter(server.segments())), 'a, "b"\nc ✓')
    output = tmp_path / "segments.csv"

    ran = await run(
        server,
        "--timeout",
        "20",
        "export",
        "--output",
        str(output),
        "--limit",
        "130",
        "--per-page",
        "40",
        "--concurrency",
        "auto",
        "--retries",
        "1",
    )

    assert 0 == ran.status, ran.stderr
    assert b"" == ran.stdout
    with output.open(newline="", encoding="utf-8") as written:
        rows = list(csv.DictReader(written))
    assert as_json_lines(dict(list(server.segments().items())[:130])) == rows
    assert {"id": tricky.id, "name": tricky.name} == rows[0]


async def test_list_off_a_terminal_prints_json_lines(server):
    """list: one page as JSON lines when stdout is not a terminal."""
    ran = await run(server, "list", "--page", "3", "--per-page", "7")

    assert 0 == ran.status, ran.stderr
    assert as_json_lines(dict(list(server.segments().items())[14:21])) == ran.json_lines()


async def test_list_writes_a_page_to_an_output_file(server, tmp_path):
    """list --output FILE.csv: the page as CSV in the file, nothing on stdout or stderr."""
    output = tmp_path / "page.csv"

    ran = await run(server, "list", "--page", "3", "--per-page", "7", "--output", str(output))

    assert (0, b"", "") == (ran.status, ran.stdout, ran.stderr)
    with output.open(newline="", encoding="utf-8") as written:
        rows = list(csv.DictReader(written))
    assert as_json_lines(dict(list(server.segments().items())[14:21])) == rows


async def test_python_dash_m_is_the_same_command_line(server):
    """`python -m segments_async` runs the same commands."""
    ran = await run(server, "-m", "segments_async", "list", "--json", program=[sys.executable])

    assert 0 == ran.status, ran.stderr
    assert as_json_lines(dict(list(server.segments().items())[:20])) == ran.json_lines()


# --------------------------------------------------------------------------- writing


async def test_create_prints_the_created_and_reports_every_name(server, tmp_path):
    """create: created segments on stdout, a report line per name, a failed one is status 1."""
    report = tmp_path / "report.jsonl"

    ran = await run(server, "create", "EMEA", "", "DACH", "--report", str(report))

    assert 1 == ran.status
    created = ran.json_lines()
    assert ["EMEA", "DACH"] == [line["name"] for line in created]
    assert all(server.segments()[line["id"]] == line["name"] for line in created)
    lines = report_lines(report)
    assert [
        {"index": 0, "input": "EMEA", "status": "ok", "id": created[0]["id"]},
        {"index": 1, "input": "", "status": "failed", "error": lines[1]["error"]},
        {"index": 2, "input": "DACH", "status": "ok", "id": created[1]["id"]},
    ] == lines
    assert lines[1]["error"].startswith("422 ")
    assert "segments-async: create: 2 succeeded, 1 failed, 0 unknown" == ran.stderr_lines()[-1]


async def test_rename_prints_the_segment_and_a_missing_one_is_refused(server):
    """rename: the renamed segment as a JSON line; an unknown id is a 404, status 3."""
    segment_id = next(iter(server.segments()))

    ran = await run(server, "rename", segment_id, "Renamed")
    missing = await run(server, "rename", MISSING_ID, "Nobody")

    assert 0 == ran.status, ran.stderr
    assert [{"id": segment_id, "name": "Renamed"}] == ran.json_lines()
    assert "Renamed" == server.segments()[segment_id]
    assert 3 == missing.status
    assert b"" == missing.stdout
    assert missing.stderr.startswith("segments-async: error: the API refused the request: 404")


async def test_delete_fails_only_the_missing_id(server, tmp_path):
    """delete: a 404 fails only its own id (status 1); the others are deleted."""
    doomed = list(server.segments())[:2]
    report = tmp_path / "deleted.jsonl"

    ran = await run(server, "delete", doomed[0], MISSING_ID, doomed[1], "--report", str(report))

    assert 1 == ran.status
    assert b"" == ran.stdout
    assert not set(doomed) & set(server.segments())
    statuses = [line["status"] for line in report_lines(report)]
    assert ["ok", "failed", "ok"] == statuses
    assert "delete: 2 succeeded, 1 failed, 0 unknown" in ran.stderr


async def test_ids_are_checked_before_anything_is_sent(server):
    """A bad id among good ones is a usage error, status 2, and no request is made."""
    good = next(iter(server.segments()))
    before = server.counts.total

    ran = await run(server, "delete", good, "../../etc")

    assert 2 == ran.status
    assert before == server.counts.total
    assert good in server.segments()
    assert ran.stderr.startswith("segments-async: error: not a segment id: '../../etc'")


# --------------------------------------------------------------------------- bulk from files


async def test_import_csv_reports_every_row(server, tmp_path):
    """import CSV: BOM, a name column anywhere; a refused name fails alone (status 1)."""
    names = tmp_path / "names.csv"
    names.write_bytes('\ufeffcode,name\n1,Nordics\n2,\n3,"Iberia, south"\n'.encode())
    report = tmp_path / "report.jsonl"
    before = set(server.segments())

    ran = await run(server, "import", str(names), "--report", str(report), "--concurrency", "2")

    assert 1 == ran.status
    assert b"" == ran.stdout
    lines = report_lines(report)
    assert [0, 1, 2] == [line["index"] for line in lines]
    assert ["Nordics", "", "Iberia, south"] == [line["input"] for line in lines]
    assert ["ok", "failed", "ok"] == [line["status"] for line in lines]
    added = {id_: name for id_, name in server.segments().items() if id_ not in before}
    assert {lines[0]["id"]: "Nordics", lines[2]["id"]: "Iberia, south"} == added
    assert "import: 2 succeeded, 1 failed, 0 unknown" in ran.stderr


async def test_quiet_import_says_only_what_failed(server, tmp_path):
    """--quiet: no summary and no retry warning, but the failed item, and status 1."""
    names = tmp_path / "names.csv"
    names.write_text('name\nNordics\n""\nIberia\n')
    server.inject(Fault.status(429, retry_after=0), method="POST", times=1)

    ran = await run(server, "--quiet", "import", str(names), "--concurrency", "1")

    assert 1 == ran.status
    (line,) = ran.stderr_lines()
    assert line.startswith(f"segments-async: {names}, line 3: '': failed: 422 ")
    assert {"Nordics", "Iberia"} <= set(server.segments().values())


async def test_import_stops_at_a_line_not_in_the_format(server, tmp_path):
    """A JSON line that is not JSON: status 2 naming the line; what came before is reported."""
    names = tmp_path / "names.jsonl"
    names.write_text('{"name": "one"}\n{"name": "two"}\n{not json}\n{"name": "four"}\n')
    report = tmp_path / "report.jsonl"

    ran = await run(server, "import", str(names), "--report", str(report))

    assert 2 == ran.status
    lines = report_lines(report)
    assert [("one", "ok"), ("two", "ok")] == [(line["input"], line["status"]) for line in lines]
    assert {"one", "two"} <= set(server.segments().values())
    assert "four" not in server.segments().values()
    assert f"segments-async: error: {names}, line 3: not valid JSON" == ran.stderr_lines()[-1]


async def test_a_create_whose_answer_was_lost_is_unknown(server, tmp_path):
    """The server created it but the answer was lost: status "unknown" (exit 1)."""
    server.inject(Fault.reset_after(), method="POST", times=1)
    report = tmp_path / "report.jsonl"

    ran = await run(
        server,
        "import",
        "-",
        "--format",
        "jsonl",
        "--report",
        str(report),
        stdin=b'{"name": "x"}\n',
    )

    assert 1 == ran.status
    (line,) = report_lines(report)
    assert ("x", "unknown") == (line["input"], line["status"])
    assert "x" in server.segments().values()
    assert "import: 0 succeeded, 0 failed, 1 unknown" in ran.stderr


async def test_a_refused_token_stops_a_bulk_command_with_status_3(server, tmp_path):
    """A 401 stops the import: the items already sent are reported, then one error line."""
    names = tmp_path / "names.csv"
    names.write_text("name\n" + "".join(f"n{index}\n" for index in range(500)))
    report = tmp_path / "report.jsonl"
    env = child_env(server, SEGMENTS_API_TOKEN="wrong-token")

    ran = await run(server, "import", str(names), "--report", str(report), env=env)

    assert 3 == ran.status
    lines = report_lines(report)
    assert 0 < len(lines) < 500
    assert {"failed"} == {line["status"] for line in lines}
    assert [
        f"segments-async: import: 0 succeeded, {len(lines)} failed, 0 unknown",
        "segments-async: error: the token was refused (401): check --token-file or "
        "SEGMENTS_API_TOKEN",
    ] == ran.stderr_lines()


async def test_delete_many_reads_ids_from_stdin(server, tmp_path):
    """delete-many -: blank lines skipped, a line that is not an id fails alone."""
    doomed = list(server.segments())[:3]
    stdin = f"{doomed[0]}\n\n{doomed[1].upper()}\nnot-an-id\n{doomed[2]}\n".encode()
    report = tmp_path / "report.jsonl"

    ran = await run(server, "delete-many", "-", "--report", str(report), stdin=stdin)

    assert 1 == ran.status
    assert not set(doomed) & set(server.segments())
    lines = report_lines(report)
    assert ["ok", "ok", "failed", "ok"] == [line["status"] for line in lines]
    assert "not-an-id" == lines[2]["input"]
    assert "delete-many: 3 succeeded, 1 failed, 0 unknown" in ran.stderr


@pytest.mark.parametrize(
    ("name", "complaint"),
    [("missing.csv", "cannot read"), ("names.txt", "cannot tell the format")],
)
async def test_an_input_file_that_cannot_be_used_is_a_usage_error(
    server, tmp_path, name, complaint
):
    """A missing file, or one whose format cannot be told: status 2, nothing sent."""
    (tmp_path / "names.txt").write_text("a\n")
    before = server.counts.total

    ran = await run(server, "import", str(tmp_path / name))

    assert 2 == ran.status
    assert before == server.counts.total
    assert complaint in ran.stderr
    assert 1 == len(ran.stderr_lines())


# --------------------------------------------------------------------------- configuration


async def test_flags_win_over_the_environment(server, tmp_path):
    """--base-url and --token-file replace a wrong address and token in the environment."""
    token_file = tmp_path / "token"
    token_file.write_text(server.token + "\n")
    env = child_env(None, SEGMENTS_BASE_URL="http://127.0.0.1:9", SEGMENTS_API_TOKEN="wrong")

    ran = await run(
        server,
        "list",
        "--base-url",
        server.base_url,
        "--token-file",
        str(token_file),
        env=env,
    )

    assert 0 == ran.status, ran.stderr
    assert 20 == len(ran.json_lines())


async def test_a_token_on_the_command_line_is_refused_without_reading_a_file(server, tmp_path):
    """--token x is not --token-file x: status 2, even with a valid token file named x."""
    (tmp_path / "x").write_text(server.token)
    env = child_env(None, SEGMENTS_BASE_URL=server.base_url)

    for argv in (["--token", "x", "list"], ["list", "--token=x"]):
        ran = await run(server, *argv, env=env, cwd=tmp_path)

        assert 2 == ran.status
        assert b"" == ran.stdout
        assert "--token is not accepted" in ran.stderr
    assert 0 == server.counts.total


@pytest.mark.parametrize(
    ("content", "status", "complaint"),
    [
        (None, 2, "cannot read the token file"),
        ("\n", 2, "is empty"),
        ("not the token\n", 2, "does not hold one token"),
        ("wrong-token\n", 3, "the token was refused (401)"),
    ],
)
async def test_a_bad_token_file(server, tmp_path, content, status, complaint):
    """Missing, empty, or not a token: status 2; a token the API refuses: status 3."""
    token_file = tmp_path / "token"
    if content is not None:
        token_file.write_text(content)
    env = child_env(None, SEGMENTS_BASE_URL=server.base_url)

    ran = await run(server, "list", "--token-file", str(token_file), env=env)

    assert status == ran.status
    assert ran.stderr.startswith("segments-async: error: ")
    assert complaint in ran.stderr
    assert 1 == len(ran.stderr_lines())
    assert "not the token" not in ran.stderr


async def test_the_token_file_can_be_stdin(server):
    """--token-file - reads the token from stdin."""
    env = child_env(None, SEGMENTS_BASE_URL=server.base_url)

    ran = await run(server, "list", "--token-file", "-", stdin=server.token.encode(), env=env)

    assert 0 == ran.status, ran.stderr


# --------------------------------------------------------------------------- failures


async def test_no_usable_answer_is_status_4_and_debug_shows_the_traceback(server):
    """A 503 after the retries: a warning per retry, one error line, status 4; --debug adds
    the traceback."""
    server.inject(Fault.status(503, retry_after=0), method="GET", probability=1.0)

    ran = await run(server, "list", "--retries", "1")
    async with spawn(
        str(SCRIPT),
        "--debug",
        "list",
        "--retries",
        "0",
        stderr=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        env=child_env(server),
    ) as child:
        _, debug_err = await asyncio.wait_for(child.communicate(), HANG)

    assert 4 == ran.status
    warning, error = ran.stderr_lines()
    assert warning.startswith("segments-async: warning: retrying GET /v2.3/data/segments?page=1")
    assert error.startswith("segments-async: error: the API failed: 503 ")
    assert 4 == child.returncode
    assert "Traceback" in debug_err.decode()


async def test_a_connection_refused_is_status_4(tmp_path):
    """Nothing listening: status 4."""
    env = child_env(None, SEGMENTS_BASE_URL="http://127.0.0.1:9", SEGMENTS_API_TOKEN="t")

    ran = await run(None, "export", "--retries", "0", env=env)

    assert 4 == ran.status
    assert ran.stderr.startswith("segments-async: error: no answer from the API: ")


async def test_a_rate_limit_after_the_retries_is_status_3(server):
    """429 on every attempt: the API refused, status 3."""
    server.inject(Fault.status(429, retry_after=0), method="GET", probability=1.0)

    ran = await run(server, "list", "--retries", "1")

    assert 3 == ran.status
    assert "429" in ran.stderr


# --------------------------------------------------------------------------- streams


async def test_ctrl_c_mid_export_stops_cleanly_with_status_130(server):
    """SIGINT: what was written is whole lines, one line on stderr, status 130."""
    server.add_segments(4_000)
    server.inject(Fault.latency(0.02), method="GET", probability=1.0)
    async with spawn(
        *(sys.executable, "-S", "-c", FOREGROUND, str(SCRIPT)),
        "export",
        "--per-page",
        "10",
        "--concurrency",
        "2",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=child_env(server),
    ) as child:
        assert child.stdout is not None
        first = await asyncio.wait_for(child.stdout.readline(), HANG)
        child.send_signal(signal.SIGINT)
        rest, err = await asyncio.wait_for(child.communicate(), HANG)

    assert 130 == child.returncode
    written = (first + rest).decode().splitlines()
    assert 0 < len(written) < 4_250
    assert [json.loads(line)["id"] for line in written] == list(server.segments())[: len(written)]
    assert [f"segments-async: interrupted after {len(written):,} segments were written"] == (
        err.decode().splitlines()
    )


async def test_a_closed_stdout_ends_the_export_quietly(server):
    """`export | head -n 1`: the reader goes away, the export ends with status 0, silently."""
    server.add_segments(20_000)

    ran = await run_into_head(server, "export")

    assert json.loads(ran.stdout.split(b"\n")[0])["id"] == next(iter(server.segments()))
    assert 0 == ran.status
    assert "" == ran.stderr


async def peak_rss_kib(server: FakeSegmentsServer, output: Path) -> int:
    ran = await run(
        server,
        "-S",
        "-c",
        LAUNCHER,
        str(SCRIPT),
        "export",
        "--output",
        str(output),
        program=[sys.executable],
    )
    assert 0 == ran.status, ran.stderr
    return int(ran.stdout.decode().split()[-1])


async def test_export_streams_in_constant_memory(tmp_path):
    """Peak RSS of an export of 200,000 segments is within 16 MiB of 20,000's."""
    async with FakeSegmentsServer(seed=3, record_requests=0) as fake:
        fake.add_segments(20_000)
        small = await peak_rss_kib(fake, tmp_path / "small.jsonl")
        fake.add_segments(180_000)
        large = await peak_rss_kib(fake, tmp_path / "large.jsonl")
        with (tmp_path / "large.jsonl").open("rb") as written:
            assert 200_000 == sum(1 for _ in written)

    assert large - small < 16 * 1024, f"{small} KiB -> {large} KiB"


async def test_serve_fake_serves_until_interrupted():
    """serve-fake prints the environment to use, serves with the faults it was given, and
    stops on Ctrl-C with status 0."""
    async with spawn(
        *(sys.executable, "-S", "-c", FOREGROUND, str(SCRIPT)),
        *("serve-fake", "--segments", "12", "--fault", "503,retry-after=7,method=GET"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=child_env(None),
    ) as child:
        assert child.stdout is not None
        said = {}
        for _ in range(2):
            line = await asyncio.wait_for(child.stdout.readline(), HANG)
            name, value = line.decode().strip().split("=", 1)
            said[name] = value
        url, token = said["SEGMENTS_BASE_URL"], said["SEGMENTS_API_TOKEN"]
        async with SegmentsClient(url, token, retry=RetryPolicy(max_retries=0)) as client:
            with pytest.raises(InternalServerError) as faulted:
                await client.segments.list()
            total = (await client.segments.list()).total
        child.send_signal(signal.SIGINT)
        await asyncio.wait_for(child.communicate(), HANG)

    assert (503, "7") == (faulted.value.status_code, faulted.value.headers["Retry-After"])
    assert 12 == total
    assert 0 == child.returncode


def pty_output(argv: Sequence[str], env: dict[str, str]) -> tuple[int, bytes, bytes]:
    """Run with stderr on a pseudo-terminal; (status, stdout, what the terminal showed)."""
    controller, terminal = pty.openpty()
    child = subprocess.Popen(  # noqa: S603 - our own console script
        [str(SCRIPT), *argv], stdout=subprocess.PIPE, stderr=terminal, env=env
    )
    os.close(terminal)
    shown = io.BytesIO()
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        shown.write(chunk)
    stdout, _ = child.communicate(timeout=HANG)
    os.close(controller)
    return child.returncode, stdout, shown.getvalue()


async def test_a_terminal_shows_a_progress_bar_and_stdout_stays_data(server):
    """On a terminal, export draws a bar (count and rate) on stderr; stdout is pure data."""
    pytest.importorskip("rich", reason="the cli extra is not installed")
    env = child_env(server, COLUMNS="100")

    status, stdout, shown = await asyncio.to_thread(
        pty_output, ["export", "--per-page", "50", "--concurrency", "2"], env
    )

    assert 0 == status, shown
    assert 250 == len([json.loads(line) for line in stdout.decode().splitlines()])
    assert b"250/250" in shown
    assert b"/s" in shown
    assert b"\x1b[" in shown
