"""What the pages need of a monitor and its manager, and a blocking view of an
:class:`~apikeys.monitoring.AsyncMonitor`: pages render in a worker thread, which
hands each awaitable manager call to the application's event loop and waits."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from apikeys._models import APIKey, IssuedKey
from apikeys.errors import ConfigurationError
from apikeys.monitoring import AsyncMonitor, AuditStore, Monitor, UsageStore

T = TypeVar("T")


class Manager(Protocol):
    """The manager calls the dashboard makes (blocking)."""

    rate_limiter: Any

    def now(self) -> datetime: ...

    def get(self, key_id: str) -> APIKey: ...

    def list(
        self,
        *,
        owner: str | None = None,
        state: Any = None,
        limit: int = 100,
        after: str | None = None,
    ) -> list[APIKey]: ...

    def revoke(self, key_id: str, *, reason: str | None = None) -> APIKey: ...

    def suspend(self, key_id: str, *, reason: str | None = None) -> APIKey: ...

    def enable(self, key_id: str) -> APIKey: ...

    def rotate(self, key_id: str, *, grace: timedelta = ...) -> IssuedKey: ...


class Watched(Protocol):
    """The monitor as the dashboard reads it (blocking)."""

    @property
    def manager(self) -> Manager: ...

    @property
    def usage_store(self) -> UsageStore: ...

    @property
    def audit_store(self) -> AuditStore: ...

    def flush(self, timeout: float | None = ...) -> bool: ...


class _LoopManager:
    """An AsyncKeyManager's calls, made blocking by running them on ``loop``."""

    def __init__(self, monitor: AsyncMonitor, owner: BlockingAsyncMonitor) -> None:
        self._manager = monitor.manager
        self._owner = owner
        self.rate_limiter = self._manager.rate_limiter

    def _run(self, call: Coroutine[Any, Any, T]) -> T:
        loop = self._owner.loop
        if loop is None:
            call.close()
            raise ConfigurationError("an AsyncMonitor's dashboard is served by asgi() only")
        return asyncio.run_coroutine_threadsafe(call, loop).result()

    def now(self) -> datetime:
        return self._manager.now()

    def get(self, key_id: str) -> APIKey:
        return self._run(self._manager.get(key_id))

    def list(self, **filters: Any) -> list[APIKey]:
        return self._run(self._manager.list(**filters))

    def revoke(self, key_id: str, *, reason: str | None = None) -> APIKey:
        return self._run(self._manager.revoke(key_id, reason=reason))

    def suspend(self, key_id: str, *, reason: str | None = None) -> APIKey:
        return self._run(self._manager.suspend(key_id, reason=reason))

    def enable(self, key_id: str) -> APIKey:
        return self._run(self._manager.enable(key_id))

    def rotate(self, key_id: str, *, grace: timedelta = timedelta(0)) -> IssuedKey:
        return self._run(self._manager.rotate(key_id, grace=grace))


class BlockingAsyncMonitor:
    """An AsyncMonitor as :class:`Watched`; the ASGI adapter sets :attr:`loop`."""

    def __init__(self, monitor: AsyncMonitor) -> None:
        self._monitor = monitor
        self.loop: asyncio.AbstractEventLoop | None = None
        self.manager = _LoopManager(monitor, self)
        self.usage_store = monitor.usage_store
        self.audit_store = monitor.audit_store

    def __repr__(self) -> str:
        return repr(self._monitor)

    def flush(self, timeout: float | None = 5.0) -> bool:
        # What AsyncMonitor.flush runs in a worker thread; this is one already.
        return self._monitor._flush_sync(timeout)


def watched(monitor: object) -> Watched:
    """``monitor`` as the dashboard reads it.

    Raises:
        ConfigurationError: neither a Monitor nor an AsyncMonitor.
    """
    if isinstance(monitor, Monitor):
        return monitor
    if isinstance(monitor, AsyncMonitor):
        return BlockingAsyncMonitor(monitor)
    raise ConfigurationError("the dashboard reads a Monitor or an AsyncMonitor")
