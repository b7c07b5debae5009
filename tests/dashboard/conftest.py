"""Fixtures of the dashboard tests: a monitored manager, and the dashboard served
through werkzeug's WSGI test client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from dashboard_support import authorize

from apikeys import KeyManager
from apikeys.dashboard import Dashboard
from apikeys.monitoring import Monitor


@pytest.fixture
def monitor(manager: KeyManager) -> Iterator[Monitor]:
    with Monitor(manager) as monitor:
        yield monitor


@pytest.fixture
def dashboard(monitor: Monitor) -> Dashboard:
    return Dashboard(monitor, authorize=authorize)


@pytest.fixture
def client(dashboard: Dashboard) -> Any:
    """A werkzeug test client of the WSGI app mounted at ``/apikeys``."""
    from werkzeug.middleware.dispatcher import DispatcherMiddleware
    from werkzeug.test import Client

    def not_found(environ: Any, start_response: Any) -> list[bytes]:
        start_response("404 Not Found", [])
        return [b""]

    app = DispatcherMiddleware(not_found, {"/apikeys": dashboard.wsgi()})
    return Client(app, use_cookies=True)
