"""apikeys, in the bench venv: verify through ``KeyManager`` (default Argon2id
hasher, warm: the secret verified once) on SQLiteStore and SQLAlchemyStore
(PostgreSQL), and a DRF view behind apikeys' ``HasAPIKey`` (WSGI call).

argv: SQLite file, PostgreSQL database name.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _worker import django_settings, refused, serve, wsgi_get

from apikeys import APIKeyError, KeyManager
from apikeys._keyformat import format_key, new_key_id, random_base62
from apikeys.storage import SQLAlchemyStore, SQLiteStore


def verify_cases(label: str, keys: KeyManager) -> dict[str, Callable[[], Any]]:
    issued = keys.create(owner="team-1", scopes=["orders:read"])
    keys.verify(issued.plaintext)
    secret_length = len(issued.plaintext) - len("acme_") - len(issued.key.id) - 6
    unknown = format_key("acme", new_key_id(), random_base62(secret_length))
    wrong = format_key("acme", issued.key.id, random_base62(secret_length))
    return {
        f"{label}: warm verify": lambda: keys.verify(issued.plaintext),
        f"{label}: unknown key": refused(lambda: keys.verify(unknown), APIKeyError),
        f"{label}: wrong secret": refused(lambda: keys.verify(wrong), APIKeyError),
    }


def main() -> None:
    sqlite_path, pg_name = sys.argv[1], sys.argv[2]
    cases: dict[str, Callable[[], Any]] = {}
    cases.update(verify_cases("SQLite", KeyManager(SQLiteStore(sqlite_path), prefix="acme")))
    pg_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{pg_name}"
    cases.update(verify_cases("PostgreSQL", KeyManager(SQLAlchemyStore(pg_url), prefix="acme")))

    django_settings(
        str(Path(sqlite_path).with_suffix(".django.sqlite3")),
        None,
        ["rest_framework", "apikeys.django"],
        middleware=("apikeys.django.middleware.APIKeyMiddleware",),
        APIKEYS={"PREFIX": "acme"},
        REST_FRAMEWORK={
            "DEFAULT_AUTHENTICATION_CLASSES": [],
            "UNAUTHENTICATED_USER": None,
            "EXCEPTION_HANDLER": "apikeys.django.rest_framework.exception_handler",
        },
    )
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.management import call_command
    from django.urls import path
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from apikeys.django import get_manager
    from apikeys.django.rest_framework import APIKeyAuthentication, HasAPIKey

    class Protected(APIView):
        authentication_classes = (APIKeyAuthentication,)
        permission_classes = (HasAPIKey,)

        def get(self, request: Any, order_id: int) -> Response:
            return Response({"order": order_id})

    class Open(APIView):
        permission_classes = ()

        def get(self, request: Any, order_id: int) -> Response:
            return Response({"order": order_id})

    module = types.ModuleType("bench_urls")
    module.urlpatterns = [  # type: ignore[attr-defined]
        path("orders/<int:order_id>", Protected.as_view()),
        path("open/<int:order_id>", Open.as_view()),
    ]
    sys.modules["bench_urls"] = module
    call_command("migrate", verbosity=0)
    raw = get_manager().create(owner="team-1").plaintext
    handler = WSGIHandler()
    cases["Django route: protected"] = wsgi_get(
        handler, "/orders/7", {"Authorization": f"Bearer {raw}"}, 200
    )
    cases["Django route: unprotected"] = wsgi_get(handler, "/open/7", {}, 200)
    notes = {
        "hasher": "Argon2id (default) + per-process verified-digest cache",
        "route": "DRF APIView with apikeys' HasAPIKey, keys in SQLite (DjangoStore)",
    }
    serve(cases, notes)


if __name__ == "__main__":
    main()
