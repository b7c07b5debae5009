"""Where keys live: the store protocols and the stores that ship with apikeys.

- :class:`MemoryStore`: in-process, for tests (implements both protocols).

A store is any object with the methods of :class:`KeyStore` (or, for asyncio,
:class:`AsyncKeyStore`); nothing needs to subclass or import apikeys.
"""

from __future__ import annotations

from apikeys.storage._memory import MemoryStore
from apikeys.storage._protocol import AsyncKeyStore, AsyncSupportsTouch, KeyStore, SupportsTouch

__all__ = [
    "AsyncKeyStore",
    "AsyncSupportsTouch",
    "KeyStore",
    "MemoryStore",
    "SupportsTouch",
]
