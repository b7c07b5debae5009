"""Every error apikeys raises, in one tree.

::

    APIKeyError                      never raised itself
    ├── AuthenticationError    401   code: missing (adapters: no key sent)
    │                                      | malformed | not_found | invalid_secret
    │                                      | revoked | expired | disabled
    ├── PermissionDenied       403   code: permission_denied
    │   ├── InsufficientScope  403   code: insufficient_scope (.missing)
    │   ├── IPNotAllowed       403   code: ip_not_allowed
    │   └── InsecureTransport  403   code: insecure_transport (a key sent over plain HTTP)
    ├── RateLimited            429   code: rate_limited (.retry_after, .limit, .remaining)
    │   ├── QuotaExceeded      429   code: quota_exceeded
    │   └── TooManyFailures    429   code: too_many_failures
    ├── ServiceBusy            503   code: busy (hashing capacity exhausted)
    ├── StorageError           503   code: storage_unavailable
    │   └── ConflictError      409   code: conflict (a stale, version-checked write)
    ├── KeyNotFound            404   code: key_not_found (management calls only)
    ├── InvalidKeyState        409   code: invalid_state (e.g. rotating a revoked key)
    ├── InvalidArgument        400   code: invalid_argument (also a ValueError)
    └── ConfigurationError     500   code: configuration (also a ValueError)

Every error carries a stable machine-readable ``code`` and the HTTP ``status`` an
adapter answers with. Messages never contain a plaintext secret.

The three failures that happen before a key's secret is proven (``malformed``,
``not_found``, ``invalid_secret``) share one message text, so that neither the
message nor the status tells an attacker which it was; the ``code`` (for logs and
events) does.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, ClassVar, Literal

if TYPE_CHECKING:
    from apikeys._models import IssuedKey

__all__ = [
    "APIKeyError",
    "AuthenticationError",
    "AuthenticationFailure",
    "ConfigurationError",
    "ConflictError",
    "IPNotAllowed",
    "InsecureTransport",
    "InsufficientScope",
    "InvalidArgument",
    "InvalidKeyState",
    "KeyNotFound",
    "PermissionDenied",
    "QuotaExceeded",
    "RateLimited",
    "ServiceBusy",
    "StorageError",
    "TooManyFailures",
]

AuthenticationFailure = Literal[
    "missing", "malformed", "not_found", "invalid_secret", "revoked", "expired", "disabled"
]
"""The ``code`` values of :class:`AuthenticationError`."""

_UNPROVEN_MESSAGE = "Invalid API key."
_AUTH_MESSAGES: dict[str, str] = {
    "missing": "An API key is required.",
    "malformed": _UNPROVEN_MESSAGE,
    "not_found": _UNPROVEN_MESSAGE,
    "invalid_secret": _UNPROVEN_MESSAGE,
    "revoked": "API key has been revoked.",
    "expired": "API key has expired.",
    "disabled": "API key is suspended.",
}


class APIKeyError(Exception):
    """Root of every apikeys error. Never raised itself.

    Attributes:
        code: Stable, machine-readable reason (safe to log and to match on).
        status: The HTTP status an adapter answers with.
    """

    code: str = "error"
    status: ClassVar[int] = 500

    def __init__(self, message: str | None = None, *, code: str | None = None) -> None:
        if code is not None:
            self.code = code
        super().__init__(message or self.__class__.__doc__ or self.code)

    @property
    def message(self) -> str:
        """The human-readable message (never contains a secret)."""
        return str(self.args[0]) if self.args else ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class AuthenticationError(APIKeyError):
    """The presented key does not authenticate (HTTP 401).

    ``code`` says why: ``malformed``, ``not_found`` or ``invalid_secret`` before the
    secret is proven (all with the same message), then ``revoked``, ``expired`` or
    ``disabled`` (the key is suspended; the code keeps its first name so clients
    do not break) once it is. Web adapters also raise ``missing`` for a request
    that carries no key at all.
    """

    status: ClassVar[int] = 401
    code: AuthenticationFailure

    def __init__(self, code: AuthenticationFailure, *, key_id: str | None = None) -> None:
        message = _AUTH_MESSAGES.get(code)
        if message is None:
            raise ValueError(f"unknown authentication failure code {code!r}")
        # Set directly rather than through APIKeyError.__init__: this is built on
        # every rejected request, malformed junk included.
        Exception.__init__(self, message)
        self.code = code
        self.key_id = key_id
        """The key id named by the key, when it parsed (ids are public)."""


class PermissionDenied(APIKeyError):
    """The key is valid but may not do this (HTTP 403)."""

    status: ClassVar[int] = 403
    code = "permission_denied"


class InsufficientScope(PermissionDenied):
    """The key lacks one or more required scopes (HTTP 403)."""

    code = "insufficient_scope"

    def __init__(self, missing: Iterable[str]) -> None:
        self.missing: tuple[str, ...] = tuple(sorted(set(missing)))
        """The required scopes the key was not granted."""
        super().__init__("Missing scope(s): " + ", ".join(self.missing) + ".")


class IPNotAllowed(PermissionDenied):
    """The request's client address is outside the key's allowlist (HTTP 403)."""

    code = "ip_not_allowed"

    def __init__(self, ip: str | None) -> None:
        self.ip = ip
        """The client address that was refused (``None`` when none was given)."""
        text = "no client address given" if ip is None else f"address {ip} not allowed"
        super().__init__(f"API key may not be used from here: {text}.")


class InsecureTransport(PermissionDenied):
    """A valid key arrived over plain HTTP where HTTPS is required (HTTP 403).

    Raised by the web adapters with ``require_https`` only once the key's secret
    is proven; the key is then reported as exposed
    (:class:`~apikeys.events.KeyExposed`): it crossed the network readable.
    """

    code = "insecure_transport"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or "API key sent over plain HTTP; use HTTPS.")


class RateLimited(APIKeyError):
    """Too many requests (HTTP 429). Answer with ``Retry-After: retry_after``."""

    status: ClassVar[int] = 429
    code = "rate_limited"

    def __init__(
        self,
        message: str | None = None,
        *,
        retry_after: float,
        limit: int | None = None,
        remaining: int = 0,
        policy: str | None = None,
    ) -> None:
        self.retry_after = max(0.0, float(retry_after))
        """Seconds until a retry can succeed."""
        self.limit = limit
        """The limit that was hit (requests per window), when there is one."""
        self.remaining = remaining
        """Requests left in the current window (0 when refused)."""
        self.policy = policy
        """The limit in its written form, e.g. ``"100/minute"``."""
        super().__init__(message or f"Rate limit exceeded; retry after {self.retry_after:.0f}s.")


class QuotaExceeded(RateLimited):
    """The key has used up its quota of uses (HTTP 429)."""

    code = "quota_exceeded"


class TooManyFailures(RateLimited):
    """Too many failed secrets for this key id recently; cold checks pause (HTTP 429)."""

    code = "too_many_failures"


class ServiceBusy(APIKeyError):
    """Every hashing slot is taken; try again shortly (HTTP 503)."""

    status: ClassVar[int] = 503
    code = "busy"


class StorageError(APIKeyError):
    """The key store failed or is unreachable (HTTP 503). Requests fail closed."""

    status: ClassVar[int] = 503
    code = "storage_unavailable"
    issued: IssuedKey | None = None
    """Set by ``create`` and ``rotate`` when their write may have landed but the
    store could not confirm it (a lost reply, then the store still down): the key
    that was written, plaintext included (never shown by ``repr``/``str``). Once the
    store is back, ``get(error.issued.key.id)`` tells whether it exists: if so, hand
    out ``error.issued.plaintext`` (or revoke it); if not, nothing was written."""


class ConflictError(StorageError):
    """A version-checked write found the record changed (or an insert found it present)."""

    status: ClassVar[int] = 409
    code = "conflict"


class KeyNotFound(APIKeyError, LookupError):
    """No key with this id exists (management calls; HTTP 404)."""

    status: ClassVar[int] = 404
    code = "key_not_found"

    def __init__(self, key_id: str) -> None:
        from apikeys._keyformat import is_key_id

        # Only an id-shaped value is echoed: a caller who passes a whole key where an
        # id belongs must not find its secret in the message, a log or this attribute.
        shaped = is_key_id(key_id)
        self.key_id: str | None = key_id if shaped else None
        """The id asked for, or ``None`` when the value was not shaped like a key id."""
        super().__init__(
            f"No API key with id {key_id!r}." if shaped else "No API key with that id."
        )


class InvalidKeyState(APIKeyError):
    """The operation does not apply to the key in its current state (HTTP 409)."""

    status: ClassVar[int] = 409
    code = "invalid_state"


class InvalidArgument(APIKeyError, ValueError):
    """An argument is invalid: a bad scope, IP network, prefix, expiry... (HTTP 400)."""

    status: ClassVar[int] = 400
    code = "invalid_argument"


class ConfigurationError(APIKeyError, ValueError):
    """The library is set up wrongly: a missing extra, an unknown store URL..."""

    status: ClassVar[int] = 500
    code = "configuration"
