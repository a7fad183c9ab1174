"""Section g: ``segments-async export`` to a file against the library's own ``iterate()``.

Both contenders are whole, fresh processes timed from the parent, from spawn to exit, so
start-up (the interpreter, the imports, argument parsing) counts on both sides:

- ``cli``: the installed console script, ``segments-async export --output FILE --per-page
  100 --concurrency 16``, configured by ``SEGMENTS_BASE_URL`` / ``SEGMENTS_API_TOKEN``; the
  file's lines are counted afterwards, outside the timing;
- ``iterate``: ``python -c`` with a snippet that iterates every segment with
  ``client.segments.iterate(per_page=100, concurrency=16)`` and counts them.

Two reference rows, also fresh processes, show what start-up alone costs:
``segments-async --version`` and ``python -c "import segments_async"``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ._common import CONCURRENCY, PER_PAGE, TOKEN, Skipped, median, rotated
from ._server import REPO_ROOT, child_env

CLI = "cli"
ITERATE = "iterate"
CLI_STARTUP = "cli --version"
IMPORT_ONLY = "import only"

ITERATE_SNIPPET = """\
import asyncio, sys
import segments_async

async def main(base_url, expected):
    seen = 0
    client = segments_async.SegmentsClient(base_url, sys.argv[3], allow_insecure_http=True)
    async with client:
        async for _segment in client.segments.iterate(per_page=PER_PAGE, concurrency=CONCURRENCY):
            seen += 1
    if seen != expected:
        sys.exit(f"saw {seen} segments, expected {expected}")

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
""".replace("PER_PAGE", str(PER_PAGE)).replace("CONCURRENCY", str(CONCURRENCY))


def console_script() -> Path:
    """The installed ``segments-async`` beside this interpreter, or ``Skipped``."""
    script = Path(sys.executable).with_name("segments-async")
    if not script.exists():
        raise Skipped(f"no console script at {script} (pip install -e .)")
    return script


def _argv(name: str, script: Path, base_url: str, total: int, output: Path) -> list[str]:
    if name == CLI:
        options = ["--per-page", str(PER_PAGE), "--concurrency", str(CONCURRENCY)]
        return [str(script), "export", "--output", str(output), *options]
    if name == ITERATE:
        return [sys.executable, "-c", ITERATE_SNIPPET, base_url, str(total), TOKEN]
    if name == CLI_STARTUP:
        return [str(script), "--version"]
    return [sys.executable, "-c", "import segments_async"]


def _run_once(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    completed = subprocess.run(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=600,
        cwd=REPO_ROOT,
        env=env,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        said = completed.stderr.strip().splitlines()
        raise RuntimeError(said[-1] if said else f"exit status {completed.returncode}")
    return elapsed


def _check_output(output: Path, total: int) -> None:
    with output.open("rb") as written:
        lines = sum(1 for _ in written)
    if lines != total:
        raise RuntimeError(f"the export wrote {lines} lines, expected {total}")


def bench(base_url: str, total: int, rounds: int) -> dict[str, Any]:
    try:
        script = console_script()
    except Skipped as exc:
        return {"total": total, "rounds": rounds, "contenders": {}, "skipped": {CLI: str(exc)}}
    env = child_env() | {"SEGMENTS_BASE_URL": base_url, "SEGMENTS_API_TOKEN": TOKEN}
    names = [CLI, ITERATE, CLI_STARTUP, IMPORT_ONLY]
    samples: dict[str, list[float]] = {name: [] for name in names}
    failed: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as scratch:
        output = Path(scratch) / "export.jsonl"
        for round_index in range(rounds + 1):  # round 0: an untimed warm-up
            for name in rotated(names, round_index):
                if name in failed:
                    continue
                try:
                    elapsed = _run_once(_argv(name, script, base_url, total, output), env)
                    if name == CLI:
                        _check_output(output, total)
                        os.unlink(output)
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    failed[name] = str(exc)
                    continue
                if round_index > 0:
                    samples[name].append(elapsed)
    return _summary(total, rounds, samples, failed)


def _summary(
    total: int, rounds: int, samples: dict[str, list[float]], failed: dict[str, str]
) -> dict[str, Any]:
    contenders = {
        name: {"seconds": times, "median_s": median(times), "per_s": total / median(times)}
        for name, times in samples.items()
        if times and name not in failed
    }
    ratio = None
    if CLI in contenders and ITERATE in contenders:
        per_round = [c / i for c, i in zip(samples[CLI], samples[ITERATE], strict=True)]
        ratio = median(per_round)
    return {
        "total": total,
        "per_page": PER_PAGE,
        "concurrency": CONCURRENCY,
        "rounds": rounds,
        "contenders": contenders,
        "cli_time_ratio": ratio,
        "skipped": {},
        "failed": failed,
    }
