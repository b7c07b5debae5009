"""Log injection: no value a caller or a request chose (owner, name, reason, address,
route, method, path, scopes, metadata) can forge or hide a log line. Every log record
apikeys writes, at DEBUG on every logger, renders as one line of printable text."""

from __future__ import annotations

import ast
import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apikeys import APIKeyError, AsyncKeyManager
from apikeys._logsafe import log_safe, log_safe_data
from apikeys.errors import InvalidArgument, StorageError
from apikeys.events import (
    AnomalyDetected,
    Event,
    KeyCreated,
    KeyRevoked,
    KeyRotated,
    KeySuspended,
    KeyUpdated,
    KeyVerified,
    RateLimitExceeded,
    RequestCompleted,
    VerificationFailed,
)
from apikeys.monitoring import LoggingSink
from apikeys.testing import ManualClock
from core_support import AnyManager, CountingHasher, unknown_key, with_wrong_secret
from flavours import FLAVOURS, manager_factory

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
FORGED = "INFO apikeys key.verified owner=root"
HOSTILE = (
    f"team\r\n{FORGED}\n{FORGED}\x1b[2K\x1b[1A\x85{FORGED}\u2028{FORGED}\u2029"
    f"\x0b\x0c\x1c\x1d\x1e\x00\x7f\x9b\u202e\u2066\ufeff\\x0a"
)
"""CR/LF, ANSI erase-line and cursor-up, NEL, LS/PS, the other line breaks that
``str.splitlines`` knows, NUL, DEL, CSI, bidi overrides, BOM, a literal backslash."""

FORMAT = logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")


def assert_one_clean_line(record: logging.LogRecord) -> None:
    """``record`` renders as one printable line, and so does every apikeys extra."""
    rendered = FORMAT.format(record)
    assert rendered.isprintable(), rendered
    assert len(rendered.splitlines()) == 1
    for name, value in vars(record).items():
        if name.startswith("apikeys_"):
            for text in strings(value):
                assert text.isprintable(), (name, text)


def strings(value: object) -> Iterator[str]:
    """Every string in a JSON-ready value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings(key)
            yield from strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings(item)


def assert_clean(records: list[logging.LogRecord]) -> None:
    assert records
    for record in records:
        assert_one_clean_line(record)


# --- the escaping itself ----------------------------------------------------------------


def test_printable_text_is_kept() -> None:
    for text in ("team-42", "Zoë Müller", "東京 チーム", "10.0.0.1", "a b=c", "🔑"):
        assert log_safe(text) == text


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("a\nb", "a\\x0ab"),
        ("a\r\nb", "a\\x0d\\x0ab"),
        ("\x1b[2J", "\\x1b[2J"),
        ("\x85", "\\x85"),
        ("\u2028\u2029", "\\u2028\\u2029"),
        ("\u202e", "\\u202e"),
        ("\ud800", "\\ud800"),
        ("\U000e0001", "\\U000e0001"),
        ("a\\x0ab", "a\\\\x0ab"),  # a literal backslash never passes for an escape
        (None, "None"),
        (12, "12"),
    ],
)
def test_non_printable_characters_are_escaped(raw: object, escaped: str) -> None:
    assert log_safe(raw) == escaped


@given(st.text())
def test_escaping_gives_one_printable_line_that_reads_back(text: str) -> None:
    escaped = log_safe(text)
    assert escaped.isprintable()
    assert len(escaped.splitlines()) <= 1
    assert ast.literal_eval('"' + escaped.replace('"', '\\"') + '"') == text


def test_structured_data_is_escaped_throughout() -> None:
    data = {"a\n": ["x\ry", {"k": "\u2028"}], "n": 1, "none": None, "ok": True}
    assert log_safe_data(data) == {
        "a\\x0a": ["x\\x0dy", {"k": "\\u2028"}],
        "n": 1,
        "none": None,
        "ok": True,
    }


# --- LoggingSink: one test per user-influenced field -------------------------------------


EVENTS: dict[str, Callable[[str], Event]] = {
    "owner": lambda v: KeyCreated(at=NOW, key_id="K" * 16, owner=v),
    "key_id": lambda v: VerificationFailed(at=NOW, key_id=v, code="not_found"),
    "scopes": lambda v: KeyCreated(at=NOW, key_id="K" * 16, owner="o", scopes=("a:b", v)),
    "verified ip": lambda v: KeyVerified(at=NOW, key_id="K" * 16, owner="o", ip=v),
    "failed ip": lambda v: VerificationFailed(at=NOW, key_id=None, code="malformed", ip=v),
    "failed scopes": lambda v: VerificationFailed(
        at=NOW, key_id=None, code="malformed", scopes=(v,)
    ),
    "rate-limited ip and policy": lambda v: RateLimitExceeded(
        at=NOW, key_id="K" * 16, owner="o", ip=v, policy=v
    ),
    "revoke reason": lambda v: KeyRevoked(at=NOW, key_id="K" * 16, owner="o", reason=v),
    "suspend reason": lambda v: KeySuspended(at=NOW, key_id="K" * 16, owner="o", reason=v),
    "updated fields": lambda v: KeyUpdated(at=NOW, key_id="K" * 16, owner="o", fields=(v,)),
    "rotation successor": lambda v: KeyRotated(
        at=NOW, key_id="K" * 16, owner="o", successor_id=v, ends_at=NOW
    ),
    "request route, method and ip": lambda v: RequestCompleted(
        at=NOW, key_id="K" * 16, owner="o", method=v, route=v, status=200, ip=v
    ),
    "anomaly detector and evidence": lambda v: AnomalyDetected(
        at=NOW, key_id="K" * 16, owner="o", detector=v, evidence={v: [v, {"x": v}]}
    ),
}


@pytest.mark.parametrize("field", list(EVENTS))
def test_logging_sink_escapes(field: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="apikeys.events")
    LoggingSink().emit(EVENTS[field](HOSTILE))
    [record] = caplog.records
    assert_one_clean_line(record)
    extras = [v for k, v in vars(record).items() if k.startswith("apikeys_")]
    assert log_safe(HOSTILE) in strings(extras)  # escaped, not dropped


def test_logging_sink_keeps_structured_fields_of_clean_events(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="apikeys.events")
    LoggingSink().emit(KeyRevoked(at=NOW, key_id="K" * 16, owner="Zoë", reason="left"))
    [record] = caplog.records
    assert record.apikeys_owner == "Zoë"  # type: ignore[attr-defined]
    assert record.apikeys_fields["reason"] == "left"  # type: ignore[attr-defined]
    assert "owner=Zoë" in record.getMessage()


# --- the managers' own log lines, every logger at DEBUG ----------------------------------


@pytest.fixture(params=FLAVOURS)
def make(request: pytest.FixtureRequest, clock: ManualClock) -> Iterator[Callable[..., AnyManager]]:
    sink = LoggingSink(levels={}, default_level=logging.DEBUG)
    with manager_factory(request, clock, hasher=CountingHasher(), events=sink) as build:
        yield build


@pytest.fixture
def every_logger_at_debug(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)  # the root: every logger propagates here
    for name in ("apikeys", "apikeys.events"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def test_a_hostile_address_cannot_forge_a_verification_failure_line(
    make: Callable[..., AnyManager], every_logger_at_debug: pytest.LogCaptureFixture
) -> None:
    keys = make(events=())
    for raw in (unknown_key(), "not a key", with_wrong_secret(keys.create(owner="o").plaintext)):
        with pytest.raises(APIKeyError):
            keys.verify(raw, ip=HOSTILE)
    failures = [r for r in every_logger_at_debug.records if "verification failed" in r.msg]
    assert len(failures) == 3
    assert_clean(every_logger_at_debug.records)
    for record in failures:
        assert record.apikeys_ip == log_safe(HOSTILE)  # type: ignore[attr-defined]


def test_a_hostile_lifecycle_logs_only_clean_lines(
    make: Callable[..., AnyManager], every_logger_at_debug: pytest.LogCaptureFixture
) -> None:
    """create / verify / revoke / rotate / suspend / update with hostile owners,
    names, reasons, addresses, scopes and metadata: every record is one clean line."""
    keys = make()
    for owner in (HOSTILE, "team\nroot", "team\u2028root", "team\x1b[1Aroot", "team\x85root"):
        try:
            issued = keys.create(owner=owner, name=owner, metadata={owner: owner})
        except APIKeyError:  # a stricter owner rule is fine too; the rest stays hostile
            # NUL is refused in stored text (PostgreSQL cannot keep it); the rest stays.
            clean = owner.replace("\x00", "")
            issued = keys.create(owner="team", metadata={clean: clean})
        keys.verify(issued.plaintext, ip=HOSTILE)
        with pytest.raises(APIKeyError):
            keys.verify(issued.plaintext, scopes=["orders:read"], ip=HOSTILE)
        with contextlib.suppress(APIKeyError):
            keys.update(issued.key.id, name=owner)
        successor = keys.rotate(issued.key.id, grace=timedelta(0))
        try:  # reasons may be refused as non-printable text: that is clean too
            keys.suspend(successor.key.id, reason=HOSTILE)
        except InvalidArgument:
            keys.suspend(successor.key.id, reason="hostile text refused")
        keys.enable(successor.key.id)
        try:
            keys.revoke(successor.key.id, reason=HOSTILE)
        except InvalidArgument:
            keys.revoke(successor.key.id, reason="hostile text refused")
        with pytest.raises(APIKeyError):
            keys.verify(successor.plaintext, ip=HOSTILE)
    messages = [r.getMessage() for r in every_logger_at_debug.records]
    assert any("key.revoked" in m for m in messages)
    assert any("key.verification_failed" in m for m in messages)
    assert_clean(every_logger_at_debug.records)


# --- the adapters' server-error lines ---------------------------------------------------


def test_flask_logs_a_hostile_path_on_one_line(caplog: pytest.LogCaptureFixture) -> None:
    from flask import Flask

    from apikeys.flask import problem_response

    app = Flask(__name__)
    caplog.set_level(logging.DEBUG, logger="apikeys")
    with app.test_request_context("/orders/%0D%0AERROR%20forged%E2%80%A8x", method="GET"):
        assert problem_response(StorageError("down")).status_code == 503
    [record] = [r for r in caplog.records if "answered" in r.msg]
    assert_one_clean_line(record)
    assert "\\x0d\\x0aERROR forged\\u2028x" in record.getMessage()


def test_fastapi_logs_a_hostile_path_on_one_line(caplog: pytest.LogCaptureFixture) -> None:
    from fastapi import FastAPI

    with warnings.catch_warnings():  # Starlette 1.x would rather run on httpx2
        warnings.filterwarnings("ignore", message=".*starlette.testclient.*", category=Warning)
        from fastapi.testclient import TestClient

    from apikeys.fastapi import APIKeyAuth
    from apikeys.storage import MemoryStore

    class DownStore(MemoryStore):
        def get(self, key_id: str) -> Any:
            raise StorageError("down")

    keys = AsyncKeyManager(DownStore(), prefix="acme", hasher=CountingHasher())
    auth = APIKeyAuth(keys)
    app = FastAPI()
    auth.install(app)

    @app.get("/orders/{rest}", dependencies=[auth.require_key()])
    async def anything(rest: str) -> dict[str, str]:
        return {}

    caplog.set_level(logging.DEBUG, logger="apikeys")
    with TestClient(app) as client:
        response = client.get(
            "/orders/%1B%5B1A%0D%0AERROR%20forged%E2%80%A8x",
            headers={"Authorization": f"Bearer {unknown_key()}"},
        )
    assert response.status_code == 503
    [record] = [r for r in caplog.records if "answered" in r.msg]
    assert_one_clean_line(record)
    assert "\\x1b[1A\\x0d\\x0aERROR forged\\u2028x" in record.getMessage()
