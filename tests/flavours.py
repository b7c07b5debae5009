"""Build a manager of either flavour behind one blocking interface, for suites that
run the same body against :class:`KeyManager` and :class:`AsyncKeyManager`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest
from anyio.from_thread import start_blocking_portal

from apikeys import AsyncKeyManager, KeyManager
from apikeys.storage import MemoryStore
from apikeys.testing import ManualClock
from core_support import AnyManager, SyncFacade

FLAVOURS = ["sync", "async"]


@contextmanager
def manager_factory(
    request: pytest.FixtureRequest, clock: ManualClock, **defaults: Any
) -> Iterator[Callable[..., AnyManager]]:
    """A function building managers of the flavour ``request.param`` (prefix ``acme``,
    ``clock``) on a fresh :class:`MemoryStore` (unless ``store=`` is given), with
    ``defaults`` under its keyword arguments; the async ones run on one event loop,
    stopped on exit."""
    flavour = request.param
    defaults = {"prefix": "acme", "clock": clock, **defaults}
    with ExitStack() as stack:

        def build(**kwargs: Any) -> AnyManager:
            options = {**defaults, **kwargs}
            store = options.pop("store", None) or MemoryStore()
            if flavour == "sync":
                return KeyManager(store, **options)
            if not hasattr(build, "portal"):
                build.portal = stack.enter_context(  # type: ignore[attr-defined]
                    start_blocking_portal(backend="asyncio")
                )
            return SyncFacade(AsyncKeyManager(store, **options), build.portal)  # type: ignore[attr-defined]

        yield build
