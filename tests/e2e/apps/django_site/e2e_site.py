"""Settings, URLs and views of the end-to-end Django site, in one module: the keys,
usage and audit trail live in ``APIKEYS["DATABASE_URL"]`` (a SQLite file)."""

from __future__ import annotations

import os

from django.http import HttpRequest, JsonResponse
from django.urls import path

from apikeys.django import require_key

SECRET_KEY = "e2e-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["apikeys.django"]  # for `manage.py apikeys`
DATABASES: dict[str, object] = {}
MIDDLEWARE = ["apikeys.django.middleware.APIKeyMiddleware"]
ROOT_URLCONF = "e2e_site"
USE_TZ = True
APIKEYS = {
    "PREFIX": "e2e",
    "DATABASE_URL": os.environ.get("E2E_DATABASE_URL"),
    "HASHER": "argon2-test",
}


def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@require_key("orders:read")
def read_orders(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"owner": request.api_key.owner})  # type: ignore[attr-defined]


@require_key("orders:write")
def write_orders(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"owner": request.api_key.owner})  # type: ignore[attr-defined]


def orders(request: HttpRequest) -> JsonResponse:
    view = write_orders if request.method == "POST" else read_orders
    return view(request)  # type: ignore[no-any-return]


urlpatterns = [path("health", health), path("orders", orders)]
