"""Django's half of the problem-body leak scan, run in a subprocess by test_leaks.py.

Django's settings are process-wide and tests/django configures them for its own
suite, so this app lives in its own interpreter. It prints one JSON object: the
plaintexts it issued, every response (status, headers, body) and every log line
(all loggers at DEBUG); the test scans them.
"""

from __future__ import annotations

import io
import json
import logging
import tempfile
from pathlib import Path

import django
from django.conf import settings

LOG = io.StringIO()


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="apikeys-django-leaks-"))
    settings.configure(
        SECRET_KEY="apikeys-security-battery-only",
        DEBUG=False,
        USE_TZ=True,
        ALLOWED_HOSTS=["testserver"],
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "apikeys.django"],
        MIDDLEWARE=["apikeys.django.middleware.APIKeyMiddleware"],
        ROOT_URLCONF=__name__,
        DATABASES={
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(workdir / "db")}
        },
        APIKEYS={"PREFIX": "acme", "HASHER": "apikeys.testing.test_hasher"},
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    )
    django.setup()
    handler = logging.StreamHandler(LOG)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    logging.getLogger().addHandler(handler)
    for name in ["", *logging.root.manager.loggerDict]:
        logging.getLogger(name).setLevel(logging.DEBUG)
        logging.getLogger(name).disabled = False

    from _leak_requests import leak_requests
    from django.core.management import call_command
    from django.test import Client

    from apikeys.django import get_manager

    call_command("migrate", verbosity=0)
    keys = get_manager()
    good = keys.create(owner="o", scopes=["orders:read"]).plaintext
    revoked = keys.create(owner="o", scopes=["orders:read"])
    keys.revoke(revoked.key.id)
    client = Client()
    responses = []
    for path, headers in leak_requests(good, revoked.plaintext):
        response = client.get(path, headers=headers)
        responses.append(
            f"{response.status_code} {dict(response.headers)} {response.content.decode()}"
        )
    print(
        json.dumps(
            {
                "plaintexts": [good, revoked.plaintext],
                "responses": responses,
                "log": LOG.getvalue(),
            }
        )
    )


def _views() -> list[object]:
    from django.http import JsonResponse
    from django.urls import path

    from apikeys.django import require_key

    @require_key("orders:read")
    def orders(request: object) -> JsonResponse:
        return JsonResponse({"ok": "yes"})

    @require_key("orders:write")
    def write(request: object) -> JsonResponse:
        return JsonResponse({"ok": "yes"})

    return [path("orders", orders), path("write", write)]


def __getattr__(name: str) -> object:
    # ROOT_URLCONF is this module: Django asks for urlpatterns once the apps are ready.
    if name == "urlpatterns":
        return _views()
    raise AttributeError(name)


if __name__ == "__main__":
    main()
