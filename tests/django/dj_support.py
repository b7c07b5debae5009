"""Helpers of the Django adapter tests: the ``APIKEYS`` of one test, header
builders, and problem-response assertions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.test import override_settings

from apikeys import KeyManager
from apikeys.django import get_manager
from apikeys.hashing import Argon2Hasher
from apikeys.testing import ManualClock
from core_support import ListSink

PROBLEM = "application/problem+json"
UNPROVEN_DETAIL = "The API key is malformed, unknown, expired or revoked."


@dataclass
class Env:
    """One test's apikeys set-up."""

    alias: str
    clock: ManualClock
    sink: ListSink = field(default_factory=ListSink)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def manager(self) -> KeyManager:
        return get_manager()

    def issue(self, *scopes: str, **kwargs: Any) -> str:
        """Issue a key granted ``scopes``; its plaintext."""
        kwargs.setdefault("owner", "team-42")
        return self.manager.create(scopes=scopes, **kwargs).plaintext

    def settings(self, **overrides: Any) -> dict[str, Any]:
        options = {"clock": self.clock, **overrides.pop("MANAGER_OPTIONS", {})}
        return {
            "PREFIX": "test",
            "HASHER": Argon2Hasher.for_tests(),
            "DATABASE": self.alias,
            "EVENTS": [self.sink],
            "MANAGER_OPTIONS": options,
            **self.extra,
            **overrides,
        }


@contextmanager
def configured(env: Env, **overrides: Any) -> Iterator[Env]:
    """Within the block, ``settings.APIKEYS`` is the one of ``env`` (plus overrides)."""
    with override_settings(APIKEYS=env.settings(**overrides)):
        yield env


def bearer(plaintext: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {plaintext}"}


def problem(response: Any, status: int) -> dict[str, Any]:
    """Assert ``response`` is an RFC 9457 problem with ``status``; its body."""
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"] == PROBLEM
    body: dict[str, Any] = json.loads(response.content)
    assert body["status"] == status
    assert body["type"] == "about:blank"
    return body


def json_body(response: Any) -> Any:
    return json.loads(response.content)
