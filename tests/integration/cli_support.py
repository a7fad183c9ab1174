"""What the console-script tests share: finding the script, running it, its environment."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import attrs

from segments_async.testing import FakeSegmentsServer

SCRIPT = Path(sys.executable).with_name("segments-async")
MISSING_ID = "7f2d6e6d-a4ad-4b58-abfe-bd8b918ebec2"
#: Only stops a hung child; no test relies on how long anything takes.
HANG = 120
#: Spawns the console script and prints its peak RSS (KiB) once it exits. The launcher is
#: a bare ``python -S``, below the child's own size: Linux carries ru_maxrss over execve.
LAUNCHER = (
    "import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)"
)

#: Execs the console script with Ctrl-C as in a foreground job: a shell starts background
#: jobs (a test run among them) with SIGINT ignored, which exec and Python would keep.
FOREGROUND = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


@attrs.frozen
class Ran:
    status: int
    stdout: bytes
    stderr: str

    def json_lines(self) -> list[dict[str, object]]:
        """stdout parsed: every line must be a JSON object."""
        return [json.loads(line) for line in self.stdout.decode().splitlines()]

    def stderr_lines(self) -> list[str]:
        return self.stderr.splitlines()


def child_env(server: FakeSegmentsServer | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGMENTS_")}
    env["PYTHONWARNINGS"] = "error"
    if server is not None:
        env["SEGMENTS_BASE_URL"] = server.base_url
        env["SEGMENTS_API_TOKEN"] = server.token
    env.update(extra)
    return env


@contextlib.asynccontextmanager
async def spawn(*argv: str, **options: Any) -> AsyncIterator[asyncio.subprocess.Process]:
    """A child process, killed if the test ends (fails) before the child has."""
    child = await asyncio.create_subprocess_exec(*argv, **options)
    try:
        yield child
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()


async def run(
    server: FakeSegmentsServer | None,
    *argv: str,
    stdin: bytes = b"",
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    program: Sequence[str] = (str(SCRIPT),),
) -> Ran:
    """Run the command line to its end while this loop serves the fake."""
    async with spawn(
        *program,
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=child_env(server) if env is None else env,
        cwd=cwd,
    ) as child:
        stdout, stderr = await asyncio.wait_for(child.communicate(stdin), HANG)
    assert child.returncode is not None
    ran = Ran(child.returncode, stdout, stderr.decode())
    # Off a terminal: no bar, no colour, no escape code anywhere.
    assert b"\x1b" not in stdout
    assert "\x1b" not in ran.stderr
    assert "Traceback" not in ran.stderr
    return ran


def report_lines(path: Path) -> list[dict[str, Any]]:
    """A report's lines in input order (they are written as results come)."""
    lines = [json.loads(line) for line in path.read_bytes().splitlines()]
    return sorted(lines, key=lambda line: line["index"])


async def run_into_head(server: FakeSegmentsServer, *argv: str) -> Ran:
    """Run the command line with stdout into a pipe whose reader takes the first bytes
    and goes away, as ``| head -1`` does; ``stdout`` holds what was read."""
    read_end, write_end = os.pipe()
    open_ends = {read_end, write_end}
    try:
        async with spawn(
            str(SCRIPT),
            *argv,
            stdout=write_end,
            stderr=asyncio.subprocess.PIPE,
            env=child_env(server),
        ) as child:
            assert child.stderr is not None
            os.close(write_end)  # the child has its own
            open_ends.discard(write_end)
            first = await asyncio.wait_for(asyncio.to_thread(os.read, read_end, 4096), HANG)
            os.close(read_end)  # as head does once it has its line
            open_ends.discard(read_end)
            err = await asyncio.wait_for(child.stderr.read(), HANG)
            await asyncio.wait_for(child.wait(), HANG)
    finally:
        for end in open_ends:
            os.close(end)
    assert child.returncode is not None
    return Ran(child.returncode, first, err.decode())
