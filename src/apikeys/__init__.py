"""apikeys: issue, store (hash only), verify and authorize API keys.

Quick start::

    from apikeys import KeyManager

    keys = KeyManager.from_url("sqlite:///apikeys.db", prefix="acme")  # + usage, audit, limits
    issued = keys.create(owner="team-42", scopes=["orders:read"])
    key = keys.verify(issued.plaintext, scopes=["orders:read"])
"""

from __future__ import annotations

from apikeys._async import AsyncKeyManager
from apikeys._hooks import AsyncRateLimiter, RateLimiter
from apikeys._issuance import IssuancePolicy
from apikeys._manager import KeyManager
from apikeys._models import (
    APIKey,
    IssuedKey,
    KeyRecord,
    KeyState,
    RateLimitStatus,
    Verification,
)
from apikeys._settings import Settings
from apikeys.errors import (
    APIKeyError,
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    InsecureTransport,
    InsufficientScope,
    InvalidArgument,
    InvalidKeyState,
    IPNotAllowed,
    KeyNotFound,
    PermissionDenied,
    QuotaExceeded,
    RateLimited,
    ServiceBusy,
    StorageError,
    TooManyFailures,
)


def __getattr__(name: str) -> str:
    if name == "__version__":
        from importlib.metadata import version

        return version("apikeys")
    raise AttributeError(f"module 'apikeys' has no attribute {name!r}")


__all__ = [
    "APIKey",
    "APIKeyError",
    "AsyncKeyManager",
    "AsyncRateLimiter",
    "AuthenticationError",
    "ConfigurationError",
    "ConflictError",
    "IPNotAllowed",
    "InsecureTransport",
    "InsufficientScope",
    "InvalidArgument",
    "InvalidKeyState",
    "IssuancePolicy",
    "IssuedKey",
    "KeyManager",
    "KeyNotFound",
    "KeyRecord",
    "KeyState",
    "PermissionDenied",
    "QuotaExceeded",
    "RateLimitStatus",
    "RateLimited",
    "RateLimiter",
    "ServiceBusy",
    "Settings",
    "StorageError",
    "TooManyFailures",
    "Verification",
]
