"""Django: a protected view vs the same view unprotected, same run (overhead ratio).

In process, no network: each request is one call of Django's WSGI handler with the
environ a WSGI server would pass (the server's own share is the same for every
case). Every case runs with the full middleware stack, ``APIKeyMiddleware``
included (lazy: an unprotected view never verifies anything). Keys live in the
Django ORM store: a SQLite file, and the PostgreSQL server on 127.0.0.1:5432 when
it is reachable (a fresh database, dropped afterwards). Protected cases are warm:
the secret was verified once, so each request is one indexed read plus a
keyed-digest compare. Cases are interleaved round by round, so noise hits all alike.

Run: ``python benchmarks/bench_django.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import secrets
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import django
from _harness import Result, interleaved, table
from compare._worker import wsgi_call as wsgi_caller
from django.conf import settings

Call = Callable[[], int]
TMP = Path(tempfile.mkdtemp(prefix="apikeys-bench-django-"))
PG_NAME = f"apikeys_bench_{secrets.token_hex(4)}"


def _postgres_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def configure(with_postgres: bool) -> None:
    databases: dict[str, Any] = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(TMP / "bench.sqlite3"),
            "CONN_MAX_AGE": None,
        }
    }
    if with_postgres:
        databases["postgres"] = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": PG_NAME,
            "USER": "postgres",
            "HOST": "127.0.0.1",
            "PORT": "5432",
            "CONN_MAX_AGE": None,
        }
    settings.configure(
        SECRET_KEY=secrets.token_urlsafe(),
        DEBUG=False,
        USE_TZ=True,
        ALLOWED_HOSTS=["bench"],
        ROOT_URLCONF="bench_django_urls",
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "rest_framework",
            "apikeys.django",
        ],
        MIDDLEWARE=[
            "django.middleware.common.CommonMiddleware",
            "apikeys.django.middleware.APIKeyMiddleware",
        ],
        DATABASES=databases,
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        APIKEYS={"PREFIX": "acme"},
        REST_FRAMEWORK={
            "DEFAULT_AUTHENTICATION_CLASSES": [],
            "DEFAULT_PERMISSION_CLASSES": [],
            "UNAUTHENTICATED_USER": None,
            "EXCEPTION_HANDLER": "apikeys.django.rest_framework.exception_handler",
        },
    )
    django.setup()


def build_urls() -> None:
    """The URLconf: the same payload, unprotected and protected, plain and DRF."""
    import types

    from django.http import HttpRequest, JsonResponse
    from django.urls import path
    from rest_framework.permissions import AllowAny
    from rest_framework.request import Request
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from apikeys.django import require_key
    from apikeys.django.rest_framework import APIKeyAuthentication, HasAPIKey

    def open_order(request: HttpRequest, order_id: int) -> JsonResponse:
        return JsonResponse({"order": order_id, "owner": "team-1"})

    @require_key("orders:read")
    def order(request: HttpRequest, order_id: int) -> JsonResponse:
        return JsonResponse({"order": order_id, "owner": request.api_key.owner})  # type: ignore[attr-defined]

    class OpenAPI(APIView):
        permission_classes = (AllowAny,)

        def get(self, request: Request, order_id: int) -> Response:
            return Response({"order": order_id, "owner": "team-1"})

    class ProtectedAPI(APIView):
        authentication_classes = (APIKeyAuthentication,)
        permission_classes = (HasAPIKey,)
        required_scopes = ("orders:read",)

        def get(self, request: Request, order_id: int) -> Response:
            return Response({"order": order_id, "owner": request.auth.owner})

    module = types.ModuleType("bench_django_urls")
    module.urlpatterns = [  # type: ignore[attr-defined]
        path("open/<int:order_id>", open_order),
        path("orders/<int:order_id>", order),
        path("drf/open/<int:order_id>", OpenAPI.as_view()),
        path("drf/orders/<int:order_id>", ProtectedAPI.as_view()),
    ]
    sys.modules["bench_django_urls"] = module


def ratios(results: list[Result], pairs: list[tuple[str, str]]) -> str:
    by_name = {r.name: r for r in results}
    lines = [
        "| protected case | vs | overhead (median) | requests/s ratio |",
        "|---|---|---:|---:|",
    ]
    for protected, base in pairs:
        if protected in by_name:
            p, b = by_name[protected], by_name[base]
            lines.append(
                f"| {p.name} | {b.name} | {p.median_ns / b.median_ns:.2f}x | "
                f"{p.per_second / b.per_second:.2f} |"
            )
    return "\n".join(lines) + "\n"


def cached_store_cases(handler: Any, rounds: int, per_round: int, warmup: int, command: str) -> str:
    """PostgreSQL keys behind a CachedStore (LISTEN/NOTIFY invalidation), protected
    view vs the unprotected one (issue 14 target: at most 1.5x)."""
    import time

    from django.test import override_settings

    from apikeys import KeyManager
    from apikeys.django import _runtime, get_manager
    from apikeys.django.store import DjangoStore
    from apikeys.storage import CachedStore

    cached = CachedStore(
        DjangoStore("postgres"), invalidation=f"postgresql://postgres@127.0.0.1:5432/{PG_NAME}"
    )
    deadline = time.monotonic() + 10
    while not cached.live and time.monotonic() < deadline:
        time.sleep(0.01)
    with override_settings(APIKEYS={"PREFIX": "acme", "DATABASE": "postgres"}):
        get_manager()
        # Settings/from_url will wire CachedStore (issue 13); until then the
        # benchmark swaps the process-wide manager's store in place.
        _runtime._manager = KeyManager(cached, prefix="acme")
        raw = get_manager().create(owner="team-1", scopes=["orders:read"]).plaintext
        auth = {"Authorization": f"Bearer {raw}"}
        cases: dict[str, Call] = {
            "unprotected view": wsgi_caller(handler, "/open/7", {}),
            "protected view, CachedStore": wsgi_caller(handler, "/orders/7", auth),
        }
        results = interleaved(cases, rounds=rounds, per_round=per_round, warmup=warmup)
        _runtime._manager = None
    cached.close()
    title = "Keys in PostgreSQL behind CachedStore: direct WSGI handler calls"
    return (
        table(title, results, command=command)
        + "\n"
        + ratios(results, [("protected view, CachedStore", "unprotected view")])
    )


def main(quick: bool) -> None:
    with_postgres = _postgres_up()
    if with_postgres:
        import psycopg

        admin = "host=127.0.0.1 port=5432 user=postgres dbname=test"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{PG_NAME}"')
    try:
        configure(with_postgres)
        build_urls()
        from django.core.handlers.wsgi import WSGIHandler
        from django.core.management import call_command
        from django.db import connections
        from django.test import override_settings

        from apikeys.django import get_manager

        aliases = ["default"] + (["postgres"] if with_postgres else [])
        for alias in aliases:
            call_command("migrate", database=alias, verbosity=0)
        handler = WSGIHandler()
        rounds, per_round, warmup = (4, 50, 50) if quick else (30, 100, 300)
        command = "python benchmarks/bench_django.py" + (" --quick" if quick else "")
        print("## Django adapter\n")
        for alias in aliases:
            label = "SQLite" if alias == "default" else "PostgreSQL"
            with override_settings(APIKEYS={"PREFIX": "acme", "DATABASE": alias}):
                raw = get_manager().create(owner="team-1", scopes=["orders:read"]).plaintext
                auth = {"Authorization": f"Bearer {raw}"}
                cases: dict[str, Call] = {
                    "unprotected view": wsgi_caller(handler, "/open/7", {}),
                    "protected view": wsgi_caller(handler, "/orders/7", auth),
                    "unprotected DRF view": wsgi_caller(handler, "/drf/open/7", {}),
                    "protected DRF view": wsgi_caller(handler, "/drf/orders/7", auth),
                    "refused, no key (401)": wsgi_caller(handler, "/orders/7", {}),
                }
                results = interleaved(cases, rounds=rounds, per_round=per_round, warmup=warmup)
            title = f"Keys in {label}: direct WSGI handler calls (one request = one call)"
            print(table(title, results, command=command))
            pairs = [
                ("protected view", "unprotected view"),
                ("protected DRF view", "unprotected DRF view"),
            ]
            print(ratios(results, pairs))
            if alias == "postgres":
                print(cached_store_cases(handler, rounds, per_round, warmup, command))
        connections.close_all()
    finally:
        if with_postgres:
            import psycopg

            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{PG_NAME}" WITH (FORCE)')
        shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    main("--quick" in sys.argv)
