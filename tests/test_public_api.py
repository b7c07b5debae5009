"""The public surface: exported names (a name appearing or disappearing fails
here first), the error tree with its codes and statuses, and a light import."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from importlib.metadata import version

import pytest

import apikeys
import apikeys.errors as errors
import apikeys.events
import apikeys.hashing
import apikeys.http
import apikeys.storage

APIKEYS_ALL = [
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
ERRORS_ALL = [
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
HASHING_ALL = ["Argon2Hasher", "Hasher", "HmacHasher"]
EVENTS_ALL = [
    "AnomalyDetected",
    "Event",
    "EventSink",
    "KeyCreated",
    "KeyEnabled",
    "KeyExposed",
    "KeyPurged",
    "KeyRevoked",
    "KeyRotated",
    "KeySuspended",
    "KeyUpdated",
    "KeyVerified",
    "RateLimitExceeded",
    "RequestCompleted",
    "VerificationFailed",
]
STORAGE_ALL = [
    "AsyncCachedStore",
    "AsyncKeyStore",
    "AsyncSQLAlchemyStore",
    "AsyncSupportsTouch",
    "CachedStore",
    "KeyStore",
    "MemoryStore",
    "SQLAlchemyStore",
    "SQLiteStore",
    "SupportsNotify",
    "SupportsTouch",
    "async_store_from_url",
    "keys_table",
    "metadata",
    "register_store",
    "store_from_url",
]

MODULES = [
    (apikeys, APIKEYS_ALL),
    (errors, ERRORS_ALL),
    (apikeys.hashing, HASHING_ALL),
    (apikeys.events, EVENTS_ALL),
    (apikeys.storage, STORAGE_ALL),
    (
        apikeys.http,
        [
            "HTTPSettings",
            "PROBLEM_CONTENT_TYPE",
            "RequestGuard",
            "RequestMemo",
            "RequestView",
            "problem",
            "rate_limit_headers",
            "refusal",
            "route_scopes",
        ],
    ),
]


@pytest.mark.parametrize(("module", "names"), MODULES, ids=[m.__name__ for m, _ in MODULES])
def test_exported_names_are_exactly(module: object, names: list[str]) -> None:
    exported = module.__all__  # type: ignore[attr-defined]
    assert exported == names
    assert exported == sorted(exported)
    for name in exported:
        assert getattr(module, name) is not None


def test_exported_classes_come_from_apikeys() -> None:
    for module, names in MODULES:
        for name in names:
            value = getattr(module, name)
            if isinstance(value, type):
                assert value.__module__.startswith("apikeys"), (module, name)


def test_version_comes_from_package_metadata() -> None:
    assert apikeys.__version__ == version("apikeys")
    with pytest.raises(AttributeError):
        _ = apikeys.no_such_name  # type: ignore[attr-defined]


def test_top_level_errors_are_the_errors_module_classes() -> None:
    for name in APIKEYS_ALL:
        if name in ERRORS_ALL:
            assert getattr(apikeys, name) is getattr(errors, name)


# --- the error tree ----------------------------------------------------------------------

# class: (parent, status, code) as drawn in errors.py's docstring.
TREE: dict[str, tuple[str | None, int, str | None]] = {
    "APIKeyError": (None, 500, None),
    "AuthenticationError": ("APIKeyError", 401, None),
    "PermissionDenied": ("APIKeyError", 403, "permission_denied"),
    "InsufficientScope": ("PermissionDenied", 403, "insufficient_scope"),
    "IPNotAllowed": ("PermissionDenied", 403, "ip_not_allowed"),
    "InsecureTransport": ("PermissionDenied", 403, "insecure_transport"),
    "RateLimited": ("APIKeyError", 429, "rate_limited"),
    "QuotaExceeded": ("RateLimited", 429, "quota_exceeded"),
    "TooManyFailures": ("RateLimited", 429, "too_many_failures"),
    "ServiceBusy": ("APIKeyError", 503, "busy"),
    "StorageError": ("APIKeyError", 503, "storage_unavailable"),
    "ConflictError": ("StorageError", 409, "conflict"),
    "KeyNotFound": ("APIKeyError", 404, "key_not_found"),
    "InvalidKeyState": ("APIKeyError", 409, "invalid_state"),
    "InvalidArgument": ("APIKeyError", 400, "invalid_argument"),
    "ConfigurationError": ("APIKeyError", 500, "configuration"),
}
AUTH_CODES = [
    "missing",
    "malformed",
    "not_found",
    "invalid_secret",
    "revoked",
    "expired",
    "disabled",
]


def instance(name: str) -> errors.APIKeyError:
    cls = getattr(errors, name)
    if name == "AuthenticationError":
        return cls("malformed")  # type: ignore[no-any-return]
    if name == "InsufficientScope":
        return cls(["a:b"])  # type: ignore[no-any-return]
    if name == "IPNotAllowed":
        return cls("10.0.0.1")  # type: ignore[no-any-return]
    if name in {"RateLimited", "QuotaExceeded", "TooManyFailures"}:
        return cls(retry_after=5)  # type: ignore[no-any-return]
    if name == "KeyNotFound":
        return cls("A" * 16)  # type: ignore[no-any-return]
    return cls("something went wrong")  # type: ignore[no-any-return]


def test_every_error_class_is_in_the_tree() -> None:
    classes = {name for name in ERRORS_ALL if isinstance(getattr(errors, name), type)}
    assert classes == set(TREE)


@pytest.mark.parametrize("name", sorted(TREE))
def test_error_codes_statuses_and_parents(name: str) -> None:
    parent, status, code = TREE[name]
    cls = getattr(errors, name)
    if parent is not None:
        assert cls.__bases__[0] is getattr(errors, parent)
    assert issubclass(cls, errors.APIKeyError)
    error = instance(name)
    assert error.status == status
    assert cls.status == status
    assert isinstance(error.code, str)
    assert error.code
    if code is not None:
        assert error.code == code
    assert error.message == str(error)
    assert str(error)
    assert repr(error) == f"{name}(code={error.code!r}, message={error.message!r})"


def test_tree_matches_the_docstring() -> None:
    doc = errors.__doc__ or ""
    drawn = dict(re.findall(r"(\w+)\s+(\d{3})\b", doc))
    assert {name: int(status) for name, status in drawn.items()} == {
        name: status for name, (_, status, _) in TREE.items() if name != "APIKeyError"
    }
    for name, (_, _, code) in TREE.items():
        if code is not None:
            assert f"code: {code}" in doc, name
    for code in AUTH_CODES:
        assert code in doc


def test_authentication_codes() -> None:
    for code in AUTH_CODES:
        error = errors.AuthenticationError(code, key_id="A" * 16)  # type: ignore[arg-type]
        assert error.code == code
        assert error.status == 401
        assert error.key_id == "A" * 16
    with pytest.raises(ValueError, match="unknown"):
        errors.AuthenticationError("nope")  # type: ignore[arg-type]
    unproven = {
        str(errors.AuthenticationError(c)) for c in ("malformed", "not_found", "invalid_secret")
    }
    assert len(unproven) == 1
    proven = {str(errors.AuthenticationError(c)) for c in ("revoked", "expired", "disabled")}
    assert len(proven) == 3
    assert not proven & unproven


def test_errors_mix_in_the_builtin_they_stand_for() -> None:
    assert issubclass(errors.InvalidArgument, ValueError)
    assert issubclass(errors.ConfigurationError, ValueError)
    assert issubclass(errors.KeyNotFound, LookupError)
    limited = errors.RateLimited(retry_after=-3, limit=10, remaining=0, policy="10/minute")
    assert limited.retry_after == 0
    assert limited.limit == 10
    assert limited.policy == "10/minute"


# --- a light import ------------------------------------------------------------------------

HEAVY = [
    "fastapi",
    "starlette",
    "flask",
    "django",
    "werkzeug",
    "rest_framework",
    "sqlalchemy",
    "psycopg",
    "psycopg2",
    "pymysql",
    "aiomysql",
    "aiosqlite",
    "asyncpg",
    "redis",
    "limits",
    "pytest",
    "hypothesis",
    "httpx",
    "uvicorn",
]


def imported_by(statement: str) -> set[str]:
    code = f"import sys, json\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return {name.split(".")[0] for name in json.loads(result.stdout)}


def test_import_apikeys_is_light() -> None:
    loaded = imported_by("import apikeys")
    assert "apikeys" in loaded
    assert "argon2" in loaded
    assert sorted(loaded & set(HEAVY)) == []


def test_core_public_modules_are_light() -> None:
    loaded = imported_by("import apikeys.errors, apikeys.hashing, apikeys.events")
    assert sorted(loaded & set(HEAVY)) == []


def test_memory_store_import_is_light() -> None:
    # `from apikeys.storage import MemoryStore` must not drag in a database driver.
    loaded = imported_by("from apikeys.storage import MemoryStore")
    assert sorted(loaded & set(HEAVY)) == []


def test_public_modules_import_cleanly() -> None:
    for name in (
        "apikeys",
        "apikeys.errors",
        "apikeys.hashing",
        "apikeys.events",
        "apikeys.storage",
        "apikeys.testing",
    ):
        assert importlib.import_module(name).__doc__
