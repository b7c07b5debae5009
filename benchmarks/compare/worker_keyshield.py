"""keyshield, in its own venv: ``ApiKeyService.verify_key`` on its SQLAlchemy
repository (aiosqlite and psycopg async), default Argon2 hasher; and
``CachedApiKeyService`` (aiocache in memory, 300 s TTL) for the warm case.

keyshield sleeps a random 0.1-0.3 s in every verify_key by default (timing
noise against enumeration); here ``min_delay = max_delay = 0`` so the library's
own work is measured.

argv: SQLite file, PostgreSQL database name.
"""

from __future__ import annotations

import asyncio
import secrets
import string
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _worker import arefused, serve

PEPPER = secrets.token_urlsafe(32)


async def backend_cases(label: str, url: str) -> dict[str, Callable[[], Any]]:
    from keyshield import ApiKeyService
    from keyshield.domain.errors import ApiKeyError
    from keyshield.hasher.argon2 import Argon2ApiKeyHasher
    from keyshield.repositories.sql import SqlAlchemyApiKeyRepository
    from keyshield.services.cached import CachedApiKeyService
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    engine = create_async_engine(url)
    session = AsyncSession(engine, expire_on_commit=False)
    repo = SqlAlchemyApiKeyRepository(session)
    await repo.ensure_table(engine)
    hasher = Argon2ApiKeyHasher(pepper=PEPPER)
    plain = ApiKeyService(repo=repo, hasher=hasher, min_delay=0, max_delay=0)
    cached = CachedApiKeyService(repo=repo, hasher=hasher, min_delay=0, max_delay=0)
    _, key = await plain.create(name="bench")
    await session.commit()
    await plain.verify_key(key)
    await cached.verify_key(key)
    head, _, secret = key.rpartition("-")
    prefix = head.partition("-")[0]
    unknown = f"{prefix}-{secrets.token_hex(8)}-{secret}"
    alphabet = string.ascii_letters + string.digits
    wrong = f"{head}-{''.join(secrets.choice(alphabet) for _ in secret)}"

    async def warm() -> None:
        await cached.verify_key(key)

    async def uncached() -> None:
        await plain.verify_key(key)

    return {
        f"{label}: warm verify": warm,
        f"{label}: verify without cache (Argon2 each time)": uncached,
        f"{label}: unknown key": arefused(lambda: plain.verify_key(unknown), ApiKeyError),
        f"{label}: wrong secret": arefused(lambda: plain.verify_key(wrong), ApiKeyError),
    }


def main() -> None:
    sqlite_path, pg_name = sys.argv[1], sys.argv[2]
    loop = asyncio.new_event_loop()
    cases: dict[str, Callable[[], Any]] = {}
    cases.update(
        loop.run_until_complete(backend_cases("SQLite", f"sqlite+aiosqlite:///{sqlite_path}"))
    )
    pg = f"postgresql+psycopg://postgres@127.0.0.1:5432/{pg_name}"
    cases.update(loop.run_until_complete(backend_cases("PostgreSQL", pg)))
    asyncio.set_event_loop(loop)
    notes = {
        "hasher": "Argon2 (default); warm verify through CachedApiKeyService (aiocache, 300 s TTL: "
        "a revocation made by another process is not seen until the TTL ends)",
        "delay": "min_delay = max_delay = 0 (default: a random 0.1-0.3 s sleep per verify)",
        "route": "not measured (its FastAPI/Litestar routers were not wired in this run)",
    }
    serve(cases, notes, loop=loop)


if __name__ == "__main__":
    main()
