"""Helpers of the dashboard tests: the tests' access check and scripted traffic."""

from __future__ import annotations

from datetime import timedelta

from apikeys import APIKey, KeyManager
from apikeys.dashboard import DashboardRequest
from apikeys.testing import ManualClock

OPERATOR_TOKEN = "let-me-in"
HEADERS = {"X-Operator": OPERATOR_TOKEN}


def authorize(request: DashboardRequest) -> str | None:
    """Tests' access check: a fixed header names the operator."""
    return "alice" if request.headers.get("x-operator") == OPERATOR_TOKEN else None


def traffic(manager: KeyManager, clock: ManualClock, key: APIKey, **by_status: int) -> None:
    """Report requests of ``key`` (``s200=5, s404=1``) a second apart."""
    for name, count in by_status.items():
        for _ in range(count):
            manager.record_request(
                key, method="GET", route="/orders/{id}", status=int(name[1:]), ip="10.0.0.7"
            )
            clock.advance(timedelta(seconds=1))
