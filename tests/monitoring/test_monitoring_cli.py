"""The monitoring commands through the real entry point (``python -m apikeys``) on a
SQLite key database whose monitoring tables the library filled."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from apikeys import KeyManager
from apikeys._cli.monitoring import render_usage, sparkline
from apikeys.hashing import Argon2Hasher
from apikeys.monitoring import Monitor, SQLiteAuditStore, SQLiteUsageStore
from apikeys.storage import store_from_url

ENV_DROP = (
    "APIKEYS_DATABASE_URL",
    "APIKEYS_PREFIX",
    "APIKEYS_HASHER",
    "APIKEYS_USAGE_URL",
    "APIKEYS_AUDIT_URL",
)


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_DROP}
    env.update(APIKEYS_HASHER="argon2-test", APIKEYS_PREFIX="acme", PYTHONIOENCODING="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "apikeys", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def seeded(tmp_path: Path) -> dict[str, str]:
    """A key database with two keys and 30 reported requests of the first."""
    db = tmp_path / "apikeys.db"
    manager = KeyManager(
        store_from_url(f"sqlite:///{db}"), prefix="acme", hasher=Argon2Hasher.for_tests()
    )
    monitor = Monitor(manager, usage_store=SQLiteUsageStore(db), audit_store=SQLiteAuditStore(db))
    try:
        busy = manager.create(owner="team", scopes=["*"])
        quiet = manager.create(
            owner="other",
            scopes=["orders:read"],
            expires_in=timedelta(days=30),
        )
        for i in range(30):
            manager.record_request(
                busy.key,
                method="GET",
                route="/orders/{id}",
                status=404 if i % 3 == 0 else 200,
                ip="10.0.0.1",
            )
    finally:
        monitor.close()
        manager.close()
    return {"busy": busy.key.id, "quiet": quiet.key.id, "plaintext": busy.plaintext}


def test_usage_prints_a_chart_and_the_breakdown(tmp_path: Path, seeded: dict[str, str]) -> None:
    done = run(tmp_path, "usage", seeded["plaintext"], "--since", "2h")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"key {seeded['busy']}: 30 requests")
    assert lines[2].startswith("|")
    assert lines[2].endswith("█|")
    assert "/orders/{id}  200     20" in done.stdout
    assert "/orders/{id}  404     10" in done.stdout
    assert seeded["plaintext"] not in done.stdout + done.stderr

    as_json = run(tmp_path, "usage", seeded["busy"], "--by", "status", "--json")
    report = json.loads(as_json.stdout)
    assert report["total"] == 30
    assert report["counts"] == [{"status": 200, "count": 20}, {"status": 404, "count": 10}]


def test_suspend_enable_and_the_audit_trail(tmp_path: Path, seeded: dict[str, str]) -> None:
    key_id = seeded["busy"]
    done = run(tmp_path, "suspend", key_id, "--reason", "looks stolen")
    assert (done.returncode, done.stdout.strip()) == (0, f"{key_id}: suspended")
    done = run(tmp_path, "enable", key_id, "--json")
    assert json.loads(done.stdout)["state"] == "active"
    done = run(tmp_path, "audit", "--key", key_id, "--json")
    entries = json.loads(done.stdout)
    assert [e["type"] for e in entries] == ["key.created", "key.suspended", "key.enabled"]
    assert entries[1]["reason"] == "looks stolen"
    table = run(tmp_path, "audit", "--owner", "other")
    assert "key.created" in table.stdout
    assert key_id not in table.stdout


def test_review_lists_findings_and_can_fail_a_check(tmp_path: Path, seeded: dict[str, str]) -> None:
    done = run(tmp_path, "review", "--json")
    findings = {f["key_id"]: f["issues"] for f in json.loads(done.stdout)}
    assert findings == {seeded["busy"]: ["no_expiry", "broad_scope"]}
    assert done.returncode == 0
    check = run(tmp_path, "review", "--check", "--allow-no-expiry", "--broad-scope", "orders:read")
    assert check.returncode == 1
    assert seeded["quiet"] in check.stdout
    assert seeded["busy"] not in check.stdout


def test_errors_are_one_line(tmp_path: Path, seeded: dict[str, str]) -> None:
    done = run(tmp_path, "usage", "nope")
    assert done.returncode == 2
    assert done.stderr.startswith("apikeys: error: not a key id")
    done = run(tmp_path, "audit", "--audit-url", "redis://127.0.0.1:6379/0")
    assert done.returncode == 2
    assert "needs a SQL database" in done.stderr
    assert "Traceback" not in done.stderr


def test_sparkline_scales_and_groups() -> None:
    assert sparkline([0, 1, 2, 4, 8]) == " ▁▂▄█"
    assert sparkline([1] * 120, width=60) == "█" * 60
    assert sparkline([0, 0]) == "  "
    assert sparkline([]) == ""
    assert sparkline([0, 5, 10], bars=" .:-=+*#@") == " =@"


def test_render_usage_falls_back_to_ascii() -> None:
    from datetime import datetime, timezone

    from apikeys.monitoring import UsageReport

    t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    report = UsageReport(
        key_id="K" * 16,
        since=t,
        until=t,
        granularity="hour",
        by=(),
        total=3,
        counts={(): 3},
        series=((t, 1), (t, 2)),
    )
    text = render_usage(report, ascii_only=True)
    assert "|=@|" in text
    assert text.isascii()


def test_usage_per_minute_says_per_minute(tmp_path: Path, seeded: dict[str, str]) -> None:
    done = run(tmp_path, "usage", seeded["busy"], "--granularity", "minute")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"key {seeded['busy']}: 30 requests")
    assert lines[1] == "per minute, peak 30"  # one bar a minute over the last hour
    assert len(lines[2]) <= 62  # |at most 60 bars|
    longer = run(tmp_path, "usage", seeded["busy"], "--granularity", "minute", "--since", "3h")
    summary = longer.stdout.splitlines()[1]
    assert re.fullmatch(r"per minute, peak 30; each bar sums [34] minutes", summary)


def test_audit_dates_in_one_format_each(tmp_path: Path, seeded: dict[str, str]) -> None:
    key_id = seeded["busy"]
    assert run(tmp_path, "rotate", key_id, "--grace", "1h").returncode == 0
    entries = json.loads(run(tmp_path, "audit", "--key", key_id, "--json").stdout)
    machine = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
    assert all(machine.fullmatch(e["at"]) for e in entries)
    rotated = [e for e in entries if e["type"] == "key.rotated"]
    assert rotated
    assert machine.fullmatch(rotated[0]["ends_at"])
    table = run(tmp_path, "audit", "--key", key_id).stdout
    assert re.search(r"ends_at=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", table)
    assert not re.search(r"\d\dT\d\d:", table)
