"""``examples/flask_app.py`` end to end: a key issued by ``flask --app
examples.flask_app apikeys create`` into a SQLite file, then every kind of route."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from apikeys.flask import get_manager
from apikeys.hashing import Argon2Hasher

ROOT = Path(__file__).resolve().parents[2]


def _load_example() -> Any:
    """``examples/flask_app.py`` as a module (the repository root is not on sys.path)."""
    spec = importlib.util.spec_from_file_location(
        "flask_app_example", ROOT / "examples" / "flask_app.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # Flask finds the app's root path through it
    spec.loader.exec_module(module)
    return module


create_app = _load_example().create_app


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "shop.db"


@pytest.fixture
def app(database: Path) -> Iterator[Flask]:
    app = create_app(
        {
            "APIKEYS_DATABASE_URL": f"sqlite:///{database}",
            "APIKEYS_MANAGER_OPTIONS": {"hasher": Argon2Hasher.for_tests()},
        }
    )
    yield app
    get_manager(app).close()


def _flask_cli(database: Path, *args: str) -> str:
    """The example's CLI in a child process, as a user runs it from the repository."""
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "examples.flask_app", "apikeys", *args],
        cwd=ROOT,
        env={**os.environ, "FLASK_APIKEYS_DATABASE_URL": f"sqlite:///{database}"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout.strip()


def test_the_example_app_end_to_end(app: Flask, database: Path) -> None:
    writer = _flask_cli(
        database,
        "create",
        "--quiet",
        "--owner",
        "acme-corp",
        "-s",
        "orders:read,orders:write,admin:read",
    )
    assert writer.startswith("shop_")
    assert database.exists()
    assert writer.encode() not in database.read_bytes()  # only its hash is stored
    issued = app.test_cli_runner().invoke(
        args=["apikeys", "create", "-q", "--owner", "other-corp", "-s", "orders:read"]
    )
    reader = issued.stdout.strip()
    client = app.test_client()

    def bearer(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    assert client.get("/health").json == {"status": "ok"}
    missing = client.get("/orders")
    assert missing.status_code == 401
    assert missing.headers["Content-Type"] == "application/problem+json"

    assert client.get("/orders", headers=bearer(reader)).json == []
    refused = client.post("/orders", json={"item": "tea", "quantity": 2}, headers=bearer(reader))
    assert refused.status_code == 403
    assert refused.json["missing_scopes"] == ["orders:write"]
    created = client.post(
        "/orders", json={"item": "tea", "quantity": 2}, headers={"X-API-Key": writer}
    )
    assert created.status_code == 201
    assert created.json == {"id": 1, "owner": "acme-corp", "item": "tea", "quantity": 2}
    assert client.post("/orders", json={"item": ""}, headers=bearer(writer)).status_code == 422
    assert [o["id"] for o in client.get("/orders", headers=bearer(writer)).json] == [1]
    assert client.get("/orders/1", headers=bearer(writer)).json["item"] == "tea"
    assert client.get("/orders/1", headers=bearer(reader)).status_code == 404

    me = client.get("/me", headers=bearer(writer)).json  # an async view
    assert me["owner"] == "acme-corp"
    assert me["scopes"] == ["admin:read", "orders:read", "orders:write"]

    assert client.get("/admin/keys", headers=bearer(reader)).status_code == 403
    listed = client.get("/admin/keys", headers=bearer(writer)).json
    assert [k["id"] for k in listed] == [me["key_id"]]

    twice = client.get("/me", headers=[("Authorization", f"Bearer {writer}")] * 2)
    assert twice.status_code == 401

    revoked = _flask_cli(database, "revoke", me["key_id"], "--reason", "demo")
    assert revoked.splitlines()[1].split()[:2] == [me["key_id"], "acme-corp"]
    gone = client.get("/me", headers=bearer(writer))
    assert gone.status_code == 401
    assert gone.json["code"] == "invalid_token"
