"""Django integration: a reusable app storing keys with the ORM, an admin, view
decorators, a middleware, management commands and Django REST framework classes.

::

    INSTALLED_APPS = [..., "apikeys.django"]
    MIDDLEWARE = [..., "apikeys.django.middleware.APIKeyMiddleware"]
    APIKEYS = {"PREFIX": "acme"}

    from apikeys.django import require_key

    @require_key("orders:read")
    def orders(request):
        return JsonResponse({"owner": request.api_key.owner})

The verbs every apikeys adapter shares: set-up (the app, ``APIKEYS`` and
:class:`~apikeys.django.middleware.APIKeyMiddleware`), :func:`current_key` and
:func:`require_key`; plus :class:`~apikeys.django.views.APIKeyRequiredMixin`,
:func:`get_manager` / :func:`get_async_manager` (the process-wide managers on the
Django database) and :class:`~apikeys.django.store.DjangoStore`. DRF classes live
in :mod:`apikeys.django.rest_framework`. Needs the ``django`` extra:
``pip install 'apikeys[django]'``.

Names are loaded on first use, so importing this package (as Django does while
loading apps) never touches the models before the app registry is ready.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

try:
    import django  # noqa: F401  (fail early, naming the extra)
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    from apikeys.errors import ConfigurationError

    raise ConfigurationError("apikeys.django needs Django: pip install 'apikeys[django]'") from exc

if TYPE_CHECKING:
    from apikeys.django._request import (
        aauthenticate,
        acurrent_key,
        authenticate,
        current_key,
        problem_response,
    )
    from apikeys.django._runtime import get_async_manager, get_manager
    from apikeys.django.middleware import APIKeyMiddleware
    from apikeys.django.store import DjangoStore
    from apikeys.django.views import APIKeyRequiredMixin, require_key

__all__ = [
    "APIKeyMiddleware",
    "APIKeyRequiredMixin",
    "DjangoStore",
    "aauthenticate",
    "acurrent_key",
    "authenticate",
    "current_key",
    "get_async_manager",
    "get_manager",
    "problem_response",
    "require_key",
]

_HOMES = {
    "APIKeyMiddleware": "apikeys.django.middleware",
    "APIKeyRequiredMixin": "apikeys.django.views",
    "DjangoStore": "apikeys.django.store",
    "aauthenticate": "apikeys.django._request",
    "acurrent_key": "apikeys.django._request",
    "authenticate": "apikeys.django._request",
    "current_key": "apikeys.django._request",
    "get_async_manager": "apikeys.django._runtime",
    "get_manager": "apikeys.django._runtime",
    "problem_response": "apikeys.django._request",
    "require_key": "apikeys.django.views",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'apikeys.django' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
