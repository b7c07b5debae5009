"""What the end-to-end tests share: the frameworks to serve (one entry each), a real
server in a child process on a free loopback port, and the ``apikeys`` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from web_support import free_port, server_process

APPS = Path(__file__).resolve().parent / "apps"
PREFIX = "e2e"


@dataclass(frozen=True)
class Framework:
    """How to serve one app: the command line (given the port) and where to run it."""

    name: str
    command: Callable[[int], list[str]]
    cwd: Path = APPS


def _uvicorn(app: str) -> Callable[[int], list[str]]:
    """The command serving the ASGI ``app`` ("module:attribute") with uvicorn."""
    return lambda port: [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-proxy-headers",
        "--log-level",
        "warning",
    ]


FRAMEWORKS = [
    Framework("fastapi", _uvicorn("fastapi_app:app")),
    Framework(
        "flask",
        lambda port: [
            sys.executable,
            "-m",
            "flask",
            "--app",
            "flask_app",
            "run",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-reload",
        ],
    ),
    *(
        Framework(name, _uvicorn(f"{name}_app:app"))
        for name in ("asgi", "litestar")  # the generic ASGI middleware; Litestar's adapter
    ),
    Framework(
        "django",
        lambda port: [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        APPS / "django_site",
    ),
]
"""The served frameworks: another adapter is one more entry (an app in ``apps/``)."""


def child_env(database_url: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a server or ``apikeys`` child: the database, the prefix,
    the cheap test hasher; no inherited apikeys or Django settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("APIKEYS_") and k != "DJANGO_SETTINGS_MODULE"
    }
    env.update(
        E2E_DATABASE_URL=database_url,
        APIKEYS_DATABASE_URL=database_url,
        APIKEYS_PREFIX=PREFIX,
        APIKEYS_HASHER="argon2-test",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra or {})
    return env


@contextmanager
def serve(framework: Framework, database_url: str, log_file: Path) -> Iterator[str]:
    """``framework``'s app in a real server on a free loopback port; its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with server_process(
        framework.command(port),
        ready_url=f"{base}/health",
        cwd=framework.cwd,
        env=child_env(database_url),
        log=log_file,
    ):
        yield base


def apikeys(database_url: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The ``apikeys`` command in a child process, on ``database_url``."""
    result = subprocess.run(
        [sys.executable, "-m", "apikeys", *args],
        env=child_env(database_url),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def apikeys_json(database_url: str, *args: str) -> Any:
    return json.loads(apikeys(database_url, *args, "--json").stdout)
