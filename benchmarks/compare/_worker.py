"""The side of bench_compare.py that runs inside each tool's own venv (stdlib only).

A worker announces its cases as one JSON line, then answers each command line
``{"case": name, "n": count}`` with the JSON list of ``count`` per-call timings
in nanoseconds (``{"quit": true}`` ends it). A case is a zero-argument callable,
or a coroutine function (timed inside one event loop, await by await).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import sys
import time
from collections.abc import Callable
from typing import Any


def serve(
    cases: dict[str, Callable[[], Any]],
    notes: dict[str, str],
    loop: asyncio.AbstractEventLoop | None = None,
) -> None:
    """Answer the orchestrator's commands until told to quit (or stdin ends)."""
    loop = loop or asyncio.new_event_loop()
    print(json.dumps({"cases": list(cases), "notes": notes}), flush=True)
    clock = time.perf_counter_ns
    for line in sys.stdin:
        command = json.loads(line)
        if command.get("quit"):
            break
        call = cases[command["case"]]
        n = int(command["n"])
        samples: list[int] = []
        if inspect.iscoroutinefunction(call):
            loop.run_until_complete(_timed(call, n, samples))
        else:
            for _ in range(n):
                start = clock()
                call()
                samples.append(clock() - start)
        print(json.dumps(samples), flush=True)
    loop.close()


async def _timed(call: Callable[[], Any], n: int, samples: list[int]) -> None:
    clock = time.perf_counter_ns
    for _ in range(n):
        start = clock()
        await call()
        samples.append(clock() - start)


def refused(call: Callable[[], Any], *errors: type[BaseException]) -> Callable[[], None]:
    """A case that must be refused with one of ``errors`` (an accept is a bug)."""

    def case() -> None:
        try:
            call()
        except errors:
            return
        raise SystemExit("a refusal case was accepted")

    return case


def arefused(call: Callable[[], Any], *errors: type[BaseException]) -> Callable[[], Any]:
    """The coroutine twin of :func:`refused`."""

    async def case() -> None:
        try:
            await call()
        except errors:
            return
        raise SystemExit("a refusal case was accepted")

    return case


def wsgi_call(handler: Any, path: str, headers: dict[str, str]) -> Callable[[], int]:
    """One GET as a direct call of a WSGI handler (the environ a server would
    pass); the call returns the status code."""
    import io

    base = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "bench",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "203.0.113.9",
        "HTTP_HOST": "bench",
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }
    for name, value in headers.items():
        base["HTTP_" + name.upper().replace("-", "_")] = value

    def call() -> int:
        status = ""

        def start_response(line: str, _headers: Any, _exc: Any = None) -> None:
            nonlocal status
            status = line

        environ = dict(base)
        environ["wsgi.input"] = io.BytesIO(b"")
        response = handler(environ, start_response)
        b"".join(response)
        response.close()
        return int(status[:3])

    return call


def wsgi_get(handler: Any, path: str, headers: dict[str, str], expected: int) -> Callable[[], None]:
    """:func:`wsgi_call`, checked for the ``expected`` status."""
    request = wsgi_call(handler, path, headers)

    def call() -> None:
        status = request()
        if status != expected:
            raise SystemExit(f"{path}: {status}, expected {expected}")

    return call


def django_settings(
    sqlite_path: str,
    pg_name: str | None,
    apps: list[str],
    middleware: tuple[str, ...] = (),
    **extra: Any,
) -> None:
    """Configure Django with a SQLite file and (when given) a PostgreSQL database."""
    import django
    from django.conf import settings

    databases: dict[str, Any] = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": sqlite_path,
            "CONN_MAX_AGE": None,
        }
    }
    if pg_name:
        databases["postgres"] = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": pg_name,
            "USER": "postgres",
            "HOST": "127.0.0.1",
            "PORT": "5432",
            "CONN_MAX_AGE": None,
        }
    settings.configure(
        SECRET_KEY="bench-only-not-a-secret",  # noqa: S106 (a throwaway benchmark app)
        DEBUG=False,
        USE_TZ=True,
        ALLOWED_HOSTS=["bench"],
        ROOT_URLCONF="bench_urls",
        INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", *apps],
        MIDDLEWARE=["django.middleware.common.CommonMiddleware", *middleware],
        DATABASES=databases,
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        **extra,
    )
    django.setup()
