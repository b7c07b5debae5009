"""What the web adapter tests share: a manager (sync or async) on a store that can
be taken down, an event recorder, a small limiter, and a fixed client address."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from apikeys import APIKey, AsyncKeyManager, KeyManager, RateLimited, RateLimitStatus, StorageError
from apikeys.events import Event, RequestCompleted, VerificationFailed
from apikeys.hashing import Argon2Hasher
from apikeys.storage import MemoryStore
from apikeys.testing import ManualClock

__all__ = [
    "Env",
    "FaultyStore",
    "PeerAt",
    "Recorder",
    "WindowLimiter",
    "doc_namespace",
    "free_port",
    "make_env",
    "served_manager",
    "server_process",
    "uvicorn_server",
]


class PeerAt:
    """Serve ``app`` as if every connection came from ``client`` (host, port).

    (``TestClient(client=...)`` does this in recent Starlette only.)
    """

    def __init__(self, app: ASGIApp, client: tuple[str, int]) -> None:
        self.app = app
        self.client = client

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = {**scope, "client": self.client}
        await self.app(scope, receive, send)


class Recorder:
    """An event sink keeping every event."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def completed(self) -> list[RequestCompleted]:
        return [e for e in self.events if isinstance(e, RequestCompleted)]

    def failure_codes(self) -> list[str]:
        return [e.code for e in self.events if isinstance(e, VerificationFailed)]


class WindowLimiter:
    """A small fixed-window limiter implementing both limiter protocols."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self.counts: dict[tuple[str, int], int] = {}
        self.hits = 0

    def hit(self, key: APIKey, *, now: datetime) -> RateLimitStatus:
        self.hits += 1
        t = now.timestamp()
        slot = (key.id, int(t // self.window))
        self.counts[slot] = used = self.counts.get(slot, 0) + 1
        reset_after = self.window - t % self.window
        policy = f"{self.limit}/minute"
        if used > self.limit:
            raise RateLimited(retry_after=reset_after, limit=self.limit, remaining=0, policy=policy)
        return RateLimitStatus(
            limit=self.limit,
            remaining=self.limit - used,
            reset_after=reset_after,
            policy=policy,
            window=self.window,
        )

    async def ahit(self, key: APIKey, *, now: datetime) -> RateLimitStatus:
        return self.hit(key, now=now)


class FaultyStore(MemoryStore):
    """A MemoryStore whose reads fail with StorageError while ``down`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def get(self, key_id: str) -> Any:
        if self.down:
            raise StorageError("connection refused")
        return super().get(key_id)

    async def aget(self, key_id: str) -> Any:
        if self.down:
            raise StorageError("connection refused")
        return await super().aget(key_id)


@dataclass
class Env:
    """A manager for the app (sync or async), an admin manager on the same store."""

    kind: str
    clock: ManualClock
    store: FaultyStore
    admin: KeyManager
    manager: KeyManager | AsyncKeyManager
    recorder: Recorder
    limiter: WindowLimiter | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def issue(self, scopes: tuple[str, ...] | list[str] = (), **kwargs: Any) -> str:
        return self.admin.create(owner="team-1", scopes=scopes, **kwargs).plaintext


def make_env(kind: str, *, limiter: WindowLimiter | None = None, **manager_args: Any) -> Env:
    clock = ManualClock()
    store = FaultyStore()
    hasher = Argon2Hasher.for_tests()
    recorder = Recorder()
    admin = KeyManager(store, prefix="acme", hasher=hasher, clock=clock)
    cls = AsyncKeyManager if kind == "async" else KeyManager
    manager = cls(
        store,  # type: ignore[arg-type]  # MemoryStore is both kinds of store
        prefix="acme",
        hasher=hasher,
        clock=clock,
        events=recorder,
        rate_limiter=limiter,
        **manager_args,
    )
    return Env(kind, clock, store, admin, manager, recorder, limiter)


HERE = Path(__file__).resolve().parent


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def server_process(
    command: list[str], *, ready_url: str, cwd: Path, env: dict[str, str], log: Path
) -> Iterator[None]:
    """Run the server ``command`` until the block ends, entering it once
    ``ready_url`` answers; stopped with SIGTERM (then killed) at the end.

    Args:
        command: The server's command line.
        ready_url: A URL that answers once the server listens.
        cwd: The server's working directory.
        env: The server's whole environment.
        log: Where its output goes (shown when it does not start).
    """
    with log.open("w") as output:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    httpx.get(ready_url, timeout=1)
                    break
                except httpx.TransportError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    output.flush()
                    pytest.fail(f"{command[:4]} did not start:\n" + log.read_text())
                time.sleep(0.05)  # waiting for the server to listen, not for time to pass
            yield
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def uvicorn_server(
    app: str, *, cwd: Path, log: Path, env: dict[str, str], app_dir: Path | None = None
) -> Iterator[str]:
    """``uvicorn <app>`` on a free 127.0.0.1 port until the block ends; its base URL.

    Args:
        app: ``module:attribute``.
        cwd: The server's working directory.
        log: Where its output goes (shown when it does not start).
        env: Extra environment variables.
        app_dir: Added to the server's import path.
    """
    port = free_port()
    args = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)]
    args += ["--no-proxy-headers"] + (["--app-dir", str(app_dir)] if app_dir else [])
    # The demo apps import this module: the tests folder is on the server's path.
    path = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    base = f"http://127.0.0.1:{port}"
    with server_process(
        args, ready_url=base, cwd=cwd, env={**os.environ, "PYTHONPATH": path, **env}, log=log
    ):
        yield base


def served_manager() -> KeyManager | None:
    """For a demo app served by :func:`uvicorn_server`: a manager on the SQLite file
    named by ``APIKEYS_TEST_DB``, with a monitor keeping usage and audit in it;
    ``None`` when the variable is not set (the module imported by a test)."""
    from apikeys.monitoring import Monitor, SQLiteAuditStore, SQLiteUsageStore
    from apikeys.storage import SQLiteStore

    database = os.environ.get("APIKEYS_TEST_DB")
    if database is None:
        return None
    manager = KeyManager(SQLiteStore(database), prefix="acme", hasher=Argon2Hasher.for_tests())
    Monitor(
        manager,
        usage_store=SQLiteUsageStore(database),
        audit_store=SQLiteAuditStore(database),
        flush_interval=0.1,
    )
    return manager


def doc_namespace(doc: Path, module_name: str) -> dict[str, Any]:
    """Run the Python blocks of ``doc`` in order, as module ``module_name`` (some
    frameworks resolve annotations through a handler's module); its namespace."""
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(encoding="utf-8"), re.DOTALL)
    module = types.ModuleType(module_name)
    sys.modules[module_name] = module
    for block in blocks:
        exec(compile(block, str(doc), "exec"), module.__dict__)  # noqa: S102  (our own docs)
    return module.__dict__
