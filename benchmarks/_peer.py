"""The openapi-python-client peer, generated from ``openapi.yaml`` for this run only.

The generated package lives in a temporary directory that is put on ``sys.path`` for
the run and removed afterwards; nothing generated is ever written into the repo.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import attrs

from ._common import Skipped

SPEC = Path(__file__).resolve().parent / "openapi.yaml"
PACKAGE = "segments_api_peer"
GENERATOR = "openapi-python-client"


@attrs.frozen
class Peer:
    client_class: type
    list_segments: object  # the generated module: .asyncio(client=..., page=..., per_page=...)
    generate_seconds: float


def _generator() -> str:
    beside_python = Path(sys.executable).parent / GENERATOR
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(GENERATOR)
    if found is None:
        raise Skipped(f"{GENERATOR} is not installed (pip install 'segments-async[bench]')")
    return found


@contextlib.contextmanager
def generated_peer() -> Iterator[Peer]:
    """Generate, import and yield the peer; raises ``Skipped`` if that is impossible."""
    generator = _generator()
    with tempfile.TemporaryDirectory(prefix="segments-bench-peer-") as tmp:
        config = Path(tmp) / "config.json"
        # The default post-hooks run ruff on the output: slow and irrelevant here.
        config.write_text(json.dumps({"post_hooks": []}))
        started = time.perf_counter()
        completed = subprocess.run(
            [
                generator,
                "generate",
                "--path",
                str(SPEC),
                "--output-path",
                str(Path(tmp) / PACKAGE),
                "--meta",
                "none",
                "--config",
                str(config),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        elapsed = time.perf_counter() - started
        if completed.returncode != 0:
            tail = (completed.stderr or completed.stdout).strip()[-500:]
            raise Skipped(f"{GENERATOR} generate failed: {tail}")
        sys.path.insert(0, tmp)
        try:
            package = importlib.import_module(PACKAGE)
            list_segments = importlib.import_module(f"{PACKAGE}.api.segments.list_segments")
            yield Peer(package.AuthenticatedClient, list_segments, elapsed)
        finally:
            sys.path.remove(tmp)
            for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
                del sys.modules[name]
