"""djangorestframework-api-key, in its own venv: verify through
``APIKey.objects.is_valid`` and a DRF view behind ``HasAPIKey`` (WSGI call).

argv: SQLite file, PostgreSQL database name.
"""

from __future__ import annotations

import secrets
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _worker import django_settings, serve, wsgi_get


def main() -> None:
    sqlite_path, pg_name = sys.argv[1], sys.argv[2]
    django_settings(
        sqlite_path,
        pg_name,
        ["rest_framework", "rest_framework_api_key"],
        REST_FRAMEWORK={
            "DEFAULT_AUTHENTICATION_CLASSES": [],
            "UNAUTHENTICATED_USER": None,
        },
    )
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.management import call_command
    from django.db import connections
    from django.urls import path
    from rest_framework.response import Response
    from rest_framework.views import APIView
    from rest_framework_api_key.models import APIKey
    from rest_framework_api_key.permissions import HasAPIKey

    class Protected(APIView):
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
    handler = WSGIHandler()
    cases: dict[str, Callable[[], Any]] = {}
    for alias, label in (("default", "SQLite"), ("postgres", "PostgreSQL")):
        call_command("migrate", database=alias, verbosity=0)
        objects = APIKey.objects.db_manager(alias)
        record = APIKey(name="bench")
        key = objects.assign_key(record)
        record.save(using=alias)  # create_key() would save to the default database
        prefix = key.split(".", 1)[0]
        unknown = f"{secrets.token_urlsafe(6)[:8]}.{secrets.token_urlsafe(24)}"
        wrong = f"{prefix}.{secrets.token_urlsafe(24)}"
        assert objects.is_valid(key)

        def check(raw: str, want: bool, objects: Any = objects) -> Callable[[], None]:
            def call() -> None:
                if objects.is_valid(raw) is not want:
                    raise SystemExit("drf-api-key answered wrongly")

            return call

        cases[f"{label}: warm verify"] = check(key, True)
        cases[f"{label}: unknown key"] = check(unknown, False)
        cases[f"{label}: wrong secret"] = check(wrong, False)
        if alias == "default":
            auth = {"Authorization": f"Api-Key {key}"}
            cases["Django route: protected"] = wsgi_get(handler, "/orders/7", auth, 200)
            cases["Django route: unprotected"] = wsgi_get(handler, "/open/7", {}, 200)
    notes = {
        "hasher": "drf-api-key's default key hasher",
        "route": "DRF APIView with HasAPIKey, keys in SQLite",
    }
    serve(cases, notes)
    connections.close_all()


if __name__ == "__main__":
    main()
