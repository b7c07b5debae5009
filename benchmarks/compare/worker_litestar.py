"""litestar-api-auth, in its own venv: the check its ``APIKeyMiddleware`` runs
per request (SHA-256 of the whole key, ``backend.get`` by that hash, state
checks) on its SQLAlchemy backend (aiosqlite and psycopg async).

It stores an unsalted SHA-256 of the key and looks the key up by it, so a wrong
secret is the same lookup as an unknown key (no key id, no slow hash).

argv: SQLite file, PostgreSQL database name.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _worker import arefused, serve


async def backend_cases(label: str, url: str) -> dict[str, Callable[[], Any]]:
    from litestar_api_auth.backends.sqlalchemy import SQLAlchemyBackend, SQLAlchemyConfig
    from litestar_api_auth.exceptions import APIAuthError
    from litestar_api_auth.middleware import APIKeyMiddleware
    from litestar_api_auth.service import mint_api_key
    from sqlalchemy.ext.asyncio import create_async_engine

    backend = SQLAlchemyBackend(SQLAlchemyConfig(engine=create_async_engine(url)))
    await backend.startup()
    key, _ = await mint_api_key(backend, name="bench", scopes=["orders:read"], prefix="acme_")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        return None

    middleware = APIKeyMiddleware(app, backend=backend, update_last_used=False)
    validate = middleware._validate_api_key  # the middleware's per-request check
    await validate(key)
    unknown = "acme_" + secrets.token_urlsafe(32)
    wrong = key[: len(key) // 2] + secrets.token_urlsafe(len(key))[: len(key) - len(key) // 2]

    async def warm() -> None:
        await validate(key)

    return {
        f"{label}: warm verify": warm,
        f"{label}: unknown key": arefused(lambda: validate(unknown), APIAuthError),
        f"{label}: wrong secret": arefused(lambda: validate(wrong), APIAuthError),
    }


def main() -> None:
    sqlite_path, pg_name = sys.argv[1], sys.argv[2]
    loop = asyncio.new_event_loop()
    cases: dict[str, Callable[[], Any]] = {}
    sqlite = f"sqlite+aiosqlite:///{sqlite_path}"
    cases.update(loop.run_until_complete(backend_cases("SQLite", sqlite)))
    pg = f"postgresql+psycopg://postgres@127.0.0.1:5432/{pg_name}"
    cases.update(loop.run_until_complete(backend_cases("PostgreSQL", pg)))
    notes = {
        "hasher": "unsalted SHA-256 of the whole key, looked up by that hash (no key id, "
        "no slow hash: a wrong secret is an unknown key)",
        "route": "not measured (no Litestar app wired in this run)",
    }
    serve(cases, notes, loop=loop)


if __name__ == "__main__":
    main()
