"""Scope grammar and matching. Pure.

A scope is ``resource:action`` (``orders:read``); resources may nest with further
``:`` segments (``orders:items:read``). Segments are lower-case letters, digits and
``_ . -``. Grants may end in the wildcard action (``orders:*``) or be ``*`` (all).
Required scopes are always concrete. Deny by default: an empty grant covers nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Final

from apikeys.errors import InvalidArgument

WILDCARD: Final = "*"
_SEGMENT = r"[a-z0-9][a-z0-9_.\-]*"
_CONCRETE_RE: Final = re.compile(rf"{_SEGMENT}(?::{_SEGMENT})+")
_GRANT_RE: Final = re.compile(rf"\*|{_SEGMENT}(?::{_SEGMENT})*:(?:{_SEGMENT}|\*)")
MAX_SCOPE_LENGTH: Final = 128


def validate_grants(scopes: Iterable[str]) -> tuple[str, ...]:
    """Validate scopes to grant a key; return them de-duplicated and sorted.

    Raises:
        InvalidArgument: a scope is not ``resource:action``, ``resource:*`` or ``*``.
    """
    if isinstance(scopes, str):
        raise InvalidArgument("scopes must be a list of strings, not one string")
    if not isinstance(scopes, Iterable):
        raise InvalidArgument("scopes must be a list of strings (use [] for none)")
    result = set()
    for scope in scopes:
        if (
            not isinstance(scope, str)
            or len(scope) > MAX_SCOPE_LENGTH
            or not _GRANT_RE.fullmatch(scope)
        ):
            raise InvalidArgument(
                f"invalid scope {scope!r}: use 'resource:action', 'resource:*' or '*'"
            )
        result.add(scope)
    return tuple(sorted(result))


@lru_cache(maxsize=1024)
def validate_required(scopes: tuple[str, ...]) -> tuple[str, ...]:
    """Validate scopes a route requires (concrete, no wildcards); cached.

    Raises:
        InvalidArgument: a scope is not a concrete ``resource:action``.
    """
    for scope in scopes:
        if not isinstance(scope, str) or not _CONCRETE_RE.fullmatch(scope):
            raise InvalidArgument(
                f"invalid required scope {scope!r}: use a concrete 'resource:action'"
            )
    return scopes


def grants_cover(grants: tuple[str, ...], required: str) -> bool:
    """Whether ``grants`` cover one concrete ``required`` scope."""
    if required in grants or WILDCARD in grants:
        return True
    resource = required.rpartition(":")[0]
    return f"{resource}:*" in grants


def missing_scopes(grants: tuple[str, ...], required: Iterable[str]) -> list[str]:
    """The required scopes that ``grants`` do not cover (empty when all are)."""
    return [scope for scope in required if not grants_cover(grants, scope)]
