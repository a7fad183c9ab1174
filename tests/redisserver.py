"""A real ``redis-server`` on a free loopback port, persistence off, for the fleet tests
(and benchmark section h, which starts its own with this).

``fakeredis`` would test our scripts against a reimplementation; the promises (atomic
scripts, expiring leases, a Redis that goes away and comes back) are about the real one.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

__all__ = ["RedisServer", "free_port", "redis_binary", "redis_binary_or_skip"]


def redis_binary() -> str | None:
    """The ``redis-server`` to run, or None where it is not installed."""
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )


def redis_binary_or_skip() -> str:
    """The ``redis-server`` to run; the test is skipped where it is missing, except in CI,
    where ``.ci/run`` installs it and a fleet test that did not run would be a test that
    cannot fail."""
    import pytest  # (here: benchmark section h uses this module without pytest)

    binary = redis_binary()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is missing in CI: .ci/run installs Debian's redis-server")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    return binary


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` process; ``stop`` and ``start`` again keep its port.

    Its URL carries no password even where one is required: tests add it themselves.
    """

    def __init__(self, binary: str, *, password: str | None = None, cpu: int | None = None) -> None:
        self.binary = binary
        self.port = free_port()
        self.password = password
        self.cpu = cpu  # pinned there, where given
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> RedisServer:
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--protected-mode", "no"]
        if self.password is not None:
            argv += ["--requirepass", self.password]
        cpu = self.cpu
        self._process = subprocess.Popen(  # noqa: S603 - our own argv
            argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=None if cpu is None else lambda: os.sched_setaffinity(0, {cpu}),
        )
        deadline = time.monotonic() + 10
        while self.command("PING") not in ("+PONG", "-NOAUTH Authentication required."):
            if time.monotonic() > deadline or self._process.poll() is not None:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def command(self, *words: str) -> str | None:
        """Send one inline command; its first reply line, or None if nobody answers."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                sock.sendall(" ".join(words).encode() + b"\r\n")
                return sock.recv(65536).split(b"\r\n", 1)[0].decode()
        except OSError:
            return None
