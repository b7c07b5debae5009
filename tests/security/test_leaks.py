"""Leak scans with every logger at DEBUG: no plaintext key or secret in log output,
reprs, events, problem bodies (FastAPI and Flask test clients), the bytes of a
SQLite database and its WAL, a ``pg_dump`` of the PostgreSQL database, or the
Redis keys and values of the test's own namespace.

The full lifecycle driven here is the one of tests/test_secrets_hygiene.py (reused,
not repeated), run on real stores with a real monitor (audit trail and usage
counters in the same database, or in Redis) and the logging event sink.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from _leak_requests import leak_requests

from apikeys import InvalidArgument, KeyManager
from apikeys._keyformat import parse
from apikeys.hashing import Argon2Hasher
from apikeys.monitoring import LoggingSink, Monitor
from apikeys.storage import MemoryStore, SQLiteStore
from apikeys.testing import ManualClock
from core_support import ListSink, RecordingStore, with_wrong_secret
from test_secrets_hygiene import OneShotLimiter, Shown, lifecycle

PREFIXES = ("acme", "acme_live")


@pytest.fixture
def debug_everywhere() -> Iterator[io.StringIO]:
    """Every logger (the root, ours, SQLAlchemy's, the drivers') at DEBUG, into one
    buffer with a format that shows the message, its args and its extras."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s %(__dict__)s"))

    class _WithDict(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            record.__dict__["__dict__"] = repr(
                {k: v for k, v in vars(record).items() if k != "__dict__"}
            )
            return True

    handler.addFilter(_WithDict())
    touched: dict[logging.Logger, tuple[int, bool]] = {}
    loggers = [logging.getLogger()] + [
        logging.getLogger(name) for name in list(logging.root.manager.loggerDict)
    ]
    for name in ("apikeys", "apikeys.events", "sqlalchemy", "sqlalchemy.engine", "urllib3"):
        loggers.append(logging.getLogger(name))
    for logger in loggers:
        touched[logger] = (logger.level, logger.disabled)
        logger.setLevel(logging.DEBUG)
        logger.disabled = False
    logging.getLogger().addHandler(handler)
    try:
        yield buffer
    finally:
        logging.getLogger().removeHandler(handler)
        for logger, (level, disabled) in touched.items():
            logger.setLevel(level)
            logger.disabled = disabled


def secrets_of(plaintexts: list[str]) -> set[str]:
    found = set(plaintexts)
    for plaintext in plaintexts:
        found.add(parse(plaintext, frozenset(PREFIXES)).secret)
    return found


def ids_of(plaintexts: list[str]) -> list[str]:
    return [parse(plaintext, frozenset(PREFIXES)).key_id for plaintext in plaintexts]


def assert_clean(where: str, text: str | bytes, secrets: set[str]) -> None:
    for secret in secrets:
        needle: str | bytes = secret.encode() if isinstance(text, bytes) else secret
        assert needle not in text, f"a secret shows in {where}"  # type: ignore[operator]


# --- the lifecycle on real stores, with a monitor ----------------------------------------


def _run(
    store: Any, audit: Any, usage: Any, before_close: Any = None
) -> tuple[list[str], Shown, ListSink]:
    sink = ListSink()
    recording = RecordingStore(store)
    keys = KeyManager(
        recording,
        prefix=list(PREFIXES),
        hasher=Argon2Hasher.for_tests(),
        clock=ManualClock(),
        events=[sink, LoggingSink()],
        rate_limiter=OneShotLimiter(),
        failure_limit=3,
        touch_interval=timedelta(0),
    )
    monitor = Monitor(keys, audit_store=audit, usage_store=usage)
    shown = Shown()
    plaintexts = lifecycle(keys, recording, shown)
    for key in keys.list(limit=2):
        keys.record_request(key, method="GET", route="/orders", status=200, ip="10.1.2.3")
    assert monitor.flush()
    shown.add("monitor", monitor)
    for event in sink.events:
        shown.add("event", event, json.dumps(event.to_dict()))
    if before_close is not None:
        before_close()
    monitor.close()
    keys.close()
    for part in (store, audit, usage):  # RecordingStore.close() does not close its inner
        part.close()
    return plaintexts, shown, sink


def _check_run(plaintexts: list[str], shown: Shown, logs: str, battery: Any, part: str) -> set[str]:
    secrets = secrets_of(plaintexts)
    battery.record(
        part,
        "logs at DEBUG (all loggers), reprs, events, audit/usage rows",
        count=len(shown.texts) + len(logs.splitlines()),
        measured=f"{len(plaintexts)} keys, {len(logs.splitlines())} log lines",
    )
    for where, text in shown.texts:
        assert_clean(where, text, secrets)
    assert_clean("log output", logs, secrets)
    assert "apikeys" in logs  # the capture really saw our records
    return secrets


def test_sqlite_database_and_wal_bytes(
    tmp_path: Path, debug_everywhere: io.StringIO, battery: Any
) -> None:
    from apikeys.monitoring import SQLiteAuditStore, SQLiteUsageStore

    db = tmp_path / "keys.db"
    images: dict[str, bytes] = {}

    def snapshot(tag: str) -> None:
        for path in sorted(tmp_path.iterdir()):
            images[f"{path.name} ({tag})"] = path.read_bytes()

    plaintexts, shown, _ = _run(
        SQLiteStore(db), SQLiteAuditStore(db), SQLiteUsageStore(db), lambda: snapshot("open")
    )
    snapshot("closed")
    secrets = _check_run(plaintexts, shown, debug_everywhere.getvalue(), battery, "leaks: SQLite")
    assert any(name.startswith("keys.db-wal") for name in images), "no WAL to scan"
    scanned = sum(len(data) for data in images.values())
    everything = b"".join(images.values())
    files = list(images)
    for name, data in images.items():
        assert_clean(name, data, secrets)
    # The control: the public key ids are there, so these are the right bytes.
    assert all(key_id.encode() in everything for key_id in ids_of(plaintexts[1:]))
    battery.record(
        "leaks: SQLite file bytes",
        "keys.db, -wal, -shm while open and after close (keys, audit, usage tables)",
        count=scanned,
        measured=f"{len(files)} file images, {scanned} bytes",
    )


@pytest.mark.postgres
def test_postgres_dump(postgres_url: str, debug_everywhere: io.StringIO, battery: Any) -> None:
    from apikeys.monitoring import SQLAlchemyAuditStore, SQLAlchemyUsageStore
    from apikeys.storage import SQLAlchemyStore

    store = SQLAlchemyStore(postgres_url)
    audit, usage = SQLAlchemyAuditStore(postgres_url), SQLAlchemyUsageStore(postgres_url)
    plaintexts, shown, _ = _run(store, audit, usage)
    secrets = _check_run(
        plaintexts, shown, debug_everywhere.getvalue(), battery, "leaks: PostgreSQL"
    )
    dump = _pg_dump(postgres_url)
    battery.record(
        "leaks: PostgreSQL dump",
        "pg_dump of the test database (keys, audit, usage)"
        if shutil.which("pg_dump")
        else "SELECT of every table (no pg_dump)",
        count=len(dump),
        measured=f"{len(dump)} bytes",
    )
    assert "apikeys_keys" in dump
    assert all(key_id in dump for key_id in ids_of(plaintexts[1:]))  # the control
    assert_clean("pg_dump", dump, secrets)


def _pg_dump(url: str) -> str:
    import sqlalchemy

    name = url.rsplit("/", 1)[1]
    binary = shutil.which("pg_dump")
    if binary is not None:
        done = subprocess.run(
            [binary, "-h", "127.0.0.1", "-U", "postgres", "--no-owner", name],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode == 0:
            return done.stdout
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            tables = sqlalchemy.inspect(conn).get_table_names()
            parts = []
            for table in tables:
                rows = conn.execute(sqlalchemy.text(f'SELECT * FROM "{table}"')).fetchall()
                parts.append(f"{table}\n" + "\n".join(repr(tuple(r)) for r in rows))
            return "\n".join(parts)
    finally:
        engine.dispose()


@pytest.mark.redis
def test_redis_keys_of_our_namespace(
    redis_url: str, redis_namespace: str, debug_everywhere: io.StringIO, battery: Any
) -> None:
    import redis

    from apikeys.monitoring import MemoryAuditStore, RedisUsageStore
    from apikeys.ratelimit import KeyRateLimiter, RedisCounters

    usage = RedisUsageStore(redis_url, namespace=redis_namespace + "usage:")
    plaintexts, shown, _ = _run(MemoryStore(), MemoryAuditStore(), usage)
    limiter = KeyRateLimiter(
        RedisCounters(redis_url, namespace=redis_namespace + "rl:"), default=["100/minute"]
    )
    keys = KeyManager(
        MemoryStore(), prefix="acme", hasher=Argon2Hasher.for_tests(), rate_limiter=limiter
    )
    limited = keys.create(owner="o", quota=50).plaintext
    for _ in range(3):
        keys.verify(limited)
    plaintexts.append(limited)
    keys.close()
    limiter.storage.close()
    client = redis.Redis.from_url(redis_url)
    try:
        names = list(client.scan_iter(match=redis_namespace + "*"))
        texts = [_redis_value(client, name) for name in names]
    finally:
        for name in client.scan_iter(match=redis_namespace + "*"):
            client.delete(name)
        client.close()
    secrets = _check_run(plaintexts, shown, debug_everywhere.getvalue(), battery, "leaks: Redis")
    battery.record(
        "leaks: Redis keys and values",
        "usage counters and rate-limit counters in the test's own namespace",
        count=len(names),
        measured=f"{len(names)} keys",
    )
    assert names, "nothing was written to Redis: the scan would prove nothing"
    everything = b" ".join(names) + b" ".join(texts)
    assert parse(limited, frozenset(PREFIXES)).key_id.encode() in everything  # the control
    for name, text in zip(names, texts, strict=True):
        assert_clean("a Redis key name", name, secrets)
        assert_clean("a Redis value", text, secrets)


def _redis_value(client: Any, name: bytes) -> bytes:
    kind = client.type(name)
    if kind == b"string":
        return bytes(client.get(name) or b"")
    if kind == b"hash":
        return repr(client.hgetall(name)).encode()
    if kind == b"zset":
        return repr(client.zrange(name, 0, -1, withscores=True)).encode()
    if kind == b"list":
        return repr(client.lrange(name, 0, -1)).encode()
    if kind == b"set":
        return repr(client.smembers(name)).encode()
    return repr(client.dump(name)).encode()


# --- problem bodies through the frameworks' test clients ---------------------------------


def _keys() -> tuple[KeyManager, list[str], str]:
    keys = KeyManager(
        MemoryStore(),
        prefix="acme",
        hasher=Argon2Hasher.for_tests(),
        clock=ManualClock(),
        events=[ListSink(), LoggingSink()],
        failure_limit=2,
    )
    plaintext = keys.create(owner="o", scopes=["orders:read"]).plaintext
    revoked = keys.create(owner="o", scopes=["orders:read"])
    keys.revoke(revoked.key.id)
    return keys, [plaintext, revoked.plaintext], revoked.plaintext


def _fastapi_responses(keys: KeyManager, requests: list[tuple[str, dict[str, str]]]) -> list[str]:
    from fastapi import FastAPI

    from apikeys.fastapi import APIKeyAuth

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*starlette.testclient.*", category=Warning)
        from fastapi.testclient import TestClient

    auth = APIKeyAuth(keys)
    app = FastAPI()
    auth.install(app)

    @app.get("/orders", dependencies=[auth.require_key("orders:read")])
    def orders() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/write", dependencies=[auth.require_key("orders:write")])
    def write() -> dict[str, str]:
        return {"ok": "yes"}

    texts = []
    with TestClient(app, raise_server_exceptions=False) as client:
        for path, headers in requests:
            response = client.get(path, headers=headers)
            assert response.status_code < 500, response.text
            texts.append(f"{response.status_code} {dict(response.headers)} {response.text}")
    return texts


def _flask_responses(keys: KeyManager, requests: list[tuple[str, dict[str, str]]]) -> list[str]:
    from flask import Flask

    from apikeys.flask import APIKeys, require_key

    app = Flask("leaks")
    APIKeys(app, keys, cli=False)

    @app.get("/orders")
    @require_key("orders:read")
    def orders() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/write")
    @require_key("orders:write")
    def write() -> dict[str, str]:
        return {"ok": "yes"}

    texts = []
    client = app.test_client()
    for path, headers in requests:
        response = client.get(path, headers=headers)
        assert response.status_code < 500, response.get_data(as_text=True)
        texts.append(
            f"{response.status_code} {dict(response.headers)} {response.get_data(as_text=True)}"
        )
    return texts


@pytest.mark.parametrize("framework", ["fastapi", "flask"])
def test_problem_bodies_and_headers(
    framework: str, debug_everywhere: io.StringIO, battery: Any
) -> None:
    keys, plaintexts, revoked = _keys()
    requests = leak_requests(plaintexts[0], revoked)
    respond = _fastapi_responses if framework == "fastapi" else _flask_responses
    texts = respond(keys, requests)
    check_responses(framework, texts, debug_everywhere.getvalue(), plaintexts, battery)


def check_responses(
    framework: str, texts: list[str], logs: str, plaintexts: list[str], battery: Any
) -> None:
    """Record, then scan the responses and the log output of one adapter."""
    secrets = secrets_of(plaintexts)
    battery.record(
        f"leaks: {framework} responses",
        "status, headers and problem bodies of good, wrong, revoked, glued, doubled keys",
        count=len(texts),
        measured=f"{len(texts)} responses, {len(logs.splitlines())} log lines",
    )
    assert any(text.startswith("200") for text in texts)
    assert any(text.startswith("401") for text in texts)
    for text in texts:
        assert_clean(f"a {framework} response", text, secrets)
    assert_clean(f"{framework} logs", logs, secrets)


# --- item 3: log and response injection ---------------------------------------------------

FORGERIES = ["\r\nFORGED apikeys: verified", "\x1b[2J", "\u2028FORGED"]


def test_log_lines_cannot_be_forged_through_owner_or_ip() -> None:
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("apikeys")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        keys = KeyManager(
            MemoryStore(),
            prefix="acme",
            hasher=Argon2Hasher.for_tests(),
            events=LoggingSink("apikeys.events"),
            failure_limit=0,
        )
        for forged in FORGERIES:
            try:  # an owner with control characters may be refused at the door: clean too
                issued = keys.create(owner="team" + forged)
            except InvalidArgument:
                issued = keys.create(owner="team")
            keys.verify(issued.plaintext, ip="10.0.0.1" + forged)
            with pytest.raises(Exception):  # noqa: B017, PT011 (any refusal will do)
                keys.verify(with_wrong_secret(issued.plaintext), ip="10.0.0.1" + forged)
            try:
                keys.revoke(issued.key.id, reason="r" + forged)
            except InvalidArgument:
                keys.revoke(issued.key.id, reason="r")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    lines = buffer.getvalue().split("\n")
    assert len(lines) > 3
    for line in lines:
        for raw in ("\r", "\x1b", "\u2028"):
            assert raw not in line, f"raw {raw!r} reached a log line"
        assert not line.startswith("FORGED"), "a forged log line"


def test_a_forwarded_for_hop_is_never_echoed_in_a_problem_body() -> None:
    from fastapi import FastAPI

    from apikeys.fastapi import APIKeyAuth

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*starlette.testclient.*", category=Warning)
        from fastapi.testclient import TestClient

    keys = KeyManager(MemoryStore(), prefix="acme", hasher=Argon2Hasher.for_tests())
    plaintext = keys.create(owner="o", allowed_ips=["10.0.0.0/8"]).plaintext
    auth = APIKeyAuth(keys, trusted_proxies=["0.0.0.0/0", "::/0"])
    app = FastAPI()
    auth.install(app)

    @app.get("/x", dependencies=[auth.require_key()])
    def x() -> dict[str, str]:
        return {}

    async def as_proxy(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope = {**scope, "client": ("127.0.0.1", 4000)}
        await app(scope, receive, send)

    with TestClient(as_proxy, raise_server_exceptions=False) as client:
        response = client.get(
            "/x", headers={"X-API-Key": plaintext, "X-Forwarded-For": "<b>injected</b>"}
        )
    assert response.status_code == 403
    assert "injected" not in response.text


def test_django_problem_bodies_and_headers(battery: Any) -> None:
    """Django in its own interpreter (its settings are process-wide)."""
    here = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here.parent), str(here)])}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run(
        [sys.executable, str(here / "_django_leaks.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    check_responses("django", result["responses"], result["log"], result["plaintexts"], battery)
    assert_clean("django stderr", done.stderr, secrets_of(result["plaintexts"]))
