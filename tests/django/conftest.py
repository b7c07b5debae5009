"""Django, configured for the tests in this folder only.

Settings are configured here (when nothing configured Django before), so the rest
of the suite runs without ``DJANGO_SETTINGS_MODULE``. The databases are real: a
SQLite file in a temporary folder and a fresh PostgreSQL database from the
session's ``postgres_url``; pytest-django's test-database machinery is not used
(nothing here takes its ``db`` fixture): each test empties the key table instead.

Every test that takes ``db_alias`` (directly or through ``apikeys_env``) runs on
SQLite and on PostgreSQL.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import django
import pytest
from django.conf import settings

from apikeys.hashing import Argon2Hasher
from apikeys.testing import ManualClock


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_TMP = Path(tempfile.mkdtemp(prefix="apikeys-django-"))

if not settings.configured:
    settings.configure(
        SECRET_KEY="apikeys-tests-only-not-a-secret",
        DEBUG=False,
        USE_TZ=True,
        TIME_ZONE="UTC",
        ALLOWED_HOSTS=["testserver", "127.0.0.1", "localhost"],
        INSTALLED_APPS=[
            "django.contrib.admin",
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
            "rest_framework",
            "apikeys.django",
        ],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
            "apikeys.django.middleware.APIKeyMiddleware",
        ],
        ROOT_URLCONF="dj_urls",
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "APP_DIRS": True,
                "OPTIONS": {
                    "context_processors": [
                        "django.template.context_processors.request",
                        "django.contrib.auth.context_processors.auth",
                        "django.contrib.messages.context_processors.messages",
                    ]
                },
            }
        ],
        DATABASES={
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(_TMP / "db.sqlite3")},
            # NAME is set to the session's fresh database by the postgres fixture.
            "postgres": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": "apikeys_unset",
                "USER": "postgres",
                "HOST": "127.0.0.1",
                "PORT": "5432",
            },
            # Nothing listens there: the database is down.
            "down": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": "apikeys_down",
                "USER": "postgres",
                "HOST": "127.0.0.1",
                "PORT": str(_closed_port()),
                "OPTIONS": {"connect_timeout": 2},
            },
        },
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        APIKEYS={"PREFIX": "test", "HASHER": Argon2Hasher.for_tests()},
        REST_FRAMEWORK={
            "DEFAULT_AUTHENTICATION_CLASSES": [
                "apikeys.django.rest_framework.APIKeyAuthentication",
            ],
            "DEFAULT_PERMISSION_CLASSES": ["apikeys.django.rest_framework.HasAPIKey"],
            "EXCEPTION_HANDLER": "apikeys.django.rest_framework.exception_handler",
            "UNAUTHENTICATED_USER": None,
        },
    )
    django.setup()


@pytest.fixture(scope="session", autouse=True)
def _django_session(django_db_blocker: Any) -> Iterator[None]:
    from django.core.management import call_command
    from django.db import connections

    with django_db_blocker.unblock():
        call_command("migrate", database="default", verbosity=0)
    yield
    connections.close_all()
    shutil.rmtree(_TMP, ignore_errors=True)


@pytest.fixture(autouse=True)
def _database_access(django_db_blocker: Any) -> Iterator[None]:
    # pytest-django blocks the database when it found Django configured at start-up
    # (this folder run alone); these tests manage their databases themselves.
    with django_db_blocker.unblock():
        yield


@pytest.fixture(scope="session")
def postgres_alias(postgres_url: str, django_db_blocker: Any) -> str:
    """The ``postgres`` alias, pointed at the session's fresh database and migrated."""
    from django.core.management import call_command

    settings.DATABASES["postgres"]["NAME"] = postgres_url.rsplit("/", 1)[1]
    with django_db_blocker.unblock():
        call_command("migrate", database="postgres", verbosity=0)
    return "postgres"


@pytest.fixture(
    params=["default", pytest.param("postgres", marks=pytest.mark.postgres)],
    ids=["sqlite", "postgres"],
)
def db_alias(request: pytest.FixtureRequest) -> str:
    """A migrated database alias with an empty key table (SQLite, then PostgreSQL)."""
    from apikeys.django.models import APIKeyRecord

    alias = str(request.param)
    if alias == "postgres":
        request.getfixturevalue("postgres_alias")
    APIKeyRecord.objects.using(alias).all().delete()
    return alias


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def apikeys_env(db_alias: str, clock: ManualClock) -> Iterator[Any]:
    """``APIKEYS`` on ``db_alias`` with a manual clock and an event sink; yields an
    :class:`dj_support.Env` (manager, clock, sink, alias)."""
    from dj_support import Env, configured

    env = Env(alias=db_alias, clock=clock)
    with configured(env):
        yield env
