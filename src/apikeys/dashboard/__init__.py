"""Usage dashboards in the browser, over a :class:`~apikeys.monitoring.Monitor`:
an overview of a period, the keys list, one key's page, and the actions revoke,
rotate, suspend and enable (confirmed, CSRF-protected, audited). See
``docs/dashboard.md``.

Mount it in any ASGI or WSGI application::

    from apikeys.dashboard import asgi_app

    app.mount("/apikeys", asgi_app(monitor, authorize=is_operator))

``authorize(request)`` is the application's access check and is required: the
dashboard is never open by default. Pages are server-rendered HTML with SVG
charts: no script, no CDN, they work offline and with the keyboard alone.
No framework is needed (the Django admin has its own view in
:mod:`apikeys.django.admin`).
"""

from __future__ import annotations

from typing import Any

from apikeys.dashboard._core import Authorize, Dashboard, local_only
from apikeys.dashboard._http import DashboardRequest, DashboardResponse
from apikeys.monitoring import AsyncMonitor, Monitor

__all__ = [
    "Authorize",
    "Dashboard",
    "DashboardRequest",
    "DashboardResponse",
    "asgi_app",
    "local_only",
    "wsgi_app",
]


def asgi_app(monitor: Monitor | AsyncMonitor, *, authorize: Authorize | None) -> Any:
    """The dashboard of ``monitor`` as an ASGI application.

    Raises:
        ConfigurationError: no ``authorize`` callable.
    """
    return Dashboard(monitor, authorize=authorize).asgi()


def wsgi_app(monitor: Monitor, *, authorize: Authorize | None) -> Any:
    """The dashboard of ``monitor`` as a WSGI application.

    Raises:
        ConfigurationError: no ``authorize`` callable.
    """
    return Dashboard(monitor, authorize=authorize).wsgi()
