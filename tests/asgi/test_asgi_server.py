"""The asgi demo app on a real uvicorn server on 127.0.0.1, on a SQLite file with a
monitor wired; usage read back with the ``apikeys`` CLI."""

from __future__ import annotations

from pathlib import Path

from web_battery import exercise_a_real_server
from web_support import uvicorn_server

HERE = Path(__file__).resolve().parent


def test_a_real_uvicorn_server(tmp_path: Path) -> None:
    database = tmp_path / "keys.db"
    from apikeys import KeyManager
    from apikeys.storage import SQLiteStore

    KeyManager(SQLiteStore(str(database)), prefix="acme").close()  # the schema, before serving
    with uvicorn_server(
        "asgi_demo:app",
        cwd=tmp_path,
        log=tmp_path / "uvicorn.log",
        env={"APIKEYS_TEST_DB": str(database)},
        app_dir=HERE,
    ) as base:
        exercise_a_real_server(base, database, tmp_path)
