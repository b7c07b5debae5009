"""Done-when of issue 13: for each framework, an app built with ``from_url`` on a
SQLite file is served by a real server; traffic sent over a socket then shows in
``apikeys usage`` and ``apikeys audit`` run in another process on the same file,
after the background flush; per-key limits are enforced (issue 15 item 10)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_support import FRAMEWORKS, Framework, apikeys, apikeys_json, serve

FLUSH_DEADLINE = 10.0
"""Seconds to wait for the counts (the monitor flushes every 0.25 s, at most 2 s)."""


@pytest.mark.parametrize("framework", FRAMEWORKS, ids=[f.name for f in FRAMEWORKS])
def test_served_traffic_shows_in_the_cli(framework: Framework, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    created = apikeys_json(
        url, "create", "--owner", "team-e2e", "-s", "orders:read", "--rate-limit", "4/minute"
    )
    key, key_id = created["plaintext"], created["key"]["id"]
    bearer = {"Authorization": f"Bearer {key}"}
    wrong = key[:-8] + ("A" if key[-8] != "A" else "B") + key[-7:]

    with (
        serve(framework, url, tmp_path / "server.log") as base,
        httpx.Client(base_url=base, timeout=10) as http,
    ):
        statuses = [http.get("/orders", headers=bearer).status_code for _ in range(3)]
        statuses.append(http.post("/orders", headers=bearer).status_code)  # scope missing
        statuses.append(http.get("/orders", headers={"X-API-Key": wrong}).status_code)
        statuses.append(http.get("/orders", headers=bearer).status_code)  # the 4th use
        statuses.append(http.get("/orders", headers=bearer).status_code)  # over the limit
        assert statuses == [200, 200, 200, 403, 401, 200, 429]

        # While the server runs: the background flush delivers within seconds.
        usage = _wait_for_usage(url, key_id, total=4)
        assert {(c["status"], c["count"]) for c in usage["counts"]} >= {(200, 4)}

    trail = apikeys_json(url, "audit", "--key", key_id)
    types = [entry["type"] for entry in trail]
    assert types[0] == "key.created"  # written by the CLI that issued it
    assert "key.verification_failed" in types  # the wrong secret, written by the app
    assert "key.rate_limited" in types
    text = apikeys(url, "usage", key_id).stdout
    assert f"key {key_id}:" in text
    assert key not in text + str(trail)


def _wait_for_usage(url: str, key_id: str, *, total: int) -> Any:
    deadline = time.monotonic() + FLUSH_DEADLINE
    while True:
        report = apikeys_json(url, "usage", key_id, "--by", "status")
        if report["total"] >= total or time.monotonic() > deadline:
            assert report["total"] >= total, report
            return report
        time.sleep(0.2)  # polling another process's background flush
