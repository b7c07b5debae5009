"""Helpers of the real-fault tests: a tally of verify outcomes under a fault, the
recovery clock, and a redis-server of the battery's own on port 6392.

Faults touch only what the battery owns: PostgreSQL backends carrying the test's
own ``application_name`` in the session's own database, Redis clients on its own
server (never the shared 6379), SQLite files in a temporary folder.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from _tier import IN_CI

from apikeys import KeyManager
from apikeys.errors import APIKeyError, AuthenticationError, ServiceBusy, StorageError

OWN_REDIS_PORT = 6392


@dataclass
class Tally:
    """What happened to the verifications made during a fault."""

    accepted: int = 0
    false_accepts: int = 0
    typed_503: int = 0
    good_refused_as_invalid: int = 0
    other: list[str] = field(default_factory=list)

    @property
    def attempts(self) -> int:
        return self.accepted + self.false_accepts + self.typed_503 + self.good_refused_as_invalid

    def verify(self, keys: KeyManager, raw: str, *, good: bool) -> bool:
        """Verify ``raw`` and count the outcome; True when it was accepted."""
        try:
            keys.verify(raw)
        except (StorageError, ServiceBusy) as exc:
            if exc.status != 503:
                self.other.append(f"{type(exc).__name__} with status {exc.status}")
                return False
            self.typed_503 += 1
            return False
        except AuthenticationError as exc:
            if good:
                self.good_refused_as_invalid += 1
                self.other.append(f"good key refused as {exc.code}")
            return False
        except APIKeyError as exc:
            self.other.append(f"{type(exc).__name__}({exc.code})")
            return False
        if good:
            self.accepted += 1
        else:
            self.false_accepts += 1
        return True

    def check(self) -> None:
        """The battery's invariant under every fault."""
        assert self.false_accepts == 0, "a wrong key was accepted during a fault"
        assert self.good_refused_as_invalid == 0, self.other[:5]
        assert not self.other, self.other[:5]

    def summary(self) -> str:
        return f"{self.accepted} accepted, {self.typed_503} typed 503"


def recovery_ms(probe: Callable[[], bool], *, limit: float = 30.0) -> float:
    """Milliseconds until ``probe()`` first returns True (polling every 5 ms).

    Raises:
        AssertionError: no recovery within ``limit`` seconds (a generous sanity bound).
    """
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        if probe():
            return (time.perf_counter() - start) * 1000
        time.sleep(0.005)
    raise AssertionError(f"no recovery within {limit} s")


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class OwnRedis:
    """A redis-server the battery starts (and may kill, restart or put to sleep)."""

    def __init__(self, workdir: Path, port: int = OWN_REDIS_PORT) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            message = "redis-server is not installed"
            if IN_CI:
                pytest.fail(message + " (under CI a missing service is a failure)")
            pytest.skip(message)
        self.binary = binary
        self.workdir = workdir
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None
        if port_open(port):
            pytest.fail(f"port {port} is taken: the battery needs its own redis-server there")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.workdir),
                "--enable-debug-command", "local",
                "--logfile", str(self.workdir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 15
        while not port_open(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the battery's redis-server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
