"""``apikeys.storage.metadata`` holds every table apikeys creates, so an Alembic
autogenerate against a database holding them proposes nothing (issue 18)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

sa = pytest.importorskip("sqlalchemy")
alembic_autogenerate = pytest.importorskip("alembic.autogenerate")
alembic_migration = pytest.importorskip("alembic.migration")

from apikeys import KeyManager  # noqa: E402 (after the importorskips)
from apikeys.hashing import Argon2Hasher  # noqa: E402
from apikeys.storage import metadata  # noqa: E402

APIKEYS_TABLES = {
    "apikeys_keys",
    "apikeys_schema",
    "apikeys_audit",
    "apikeys_usage",
    "apikeys_usage_ips",
}


def _use_every_table(url: str) -> None:
    """Let apikeys create its tables the way an application does: keys, audit
    trail and usage counters, through ``from_url``'s default wiring."""
    manager = KeyManager.from_url(url, prefix="acme", hasher=Argon2Hasher.for_tests())
    try:
        issued = manager.create(owner="team-1", scopes=["orders:read"])
        key = manager.verify(issued.plaintext)
        manager.record_request(key, method="GET", route="/orders", status=200, ip="10.0.0.1")
        manager.rotate(key.id)
    finally:
        manager.close()


def _proposals(url: str) -> list[Any]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            assert set(sa.inspect(conn).get_table_names()) >= APIKEYS_TABLES
            context = alembic_migration.MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            diffs: list[Any] = alembic_autogenerate.compare_metadata(context, metadata)
            return diffs
    finally:
        engine.dispose()


def test_metadata_names_every_table() -> None:
    assert set(metadata.tables) == APIKEYS_TABLES


def test_old_import_paths_name_the_same_objects() -> None:
    from apikeys.storage import keys_table
    from apikeys.storage._sqlalchemy import metadata as private_metadata

    assert private_metadata is metadata
    assert metadata.tables["apikeys_keys"] is keys_table


def test_autogenerate_proposes_nothing_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    _use_every_table(url)
    assert _proposals(url) == []


def test_autogenerate_proposes_nothing_on_sqlalchemy_sqlite(tmp_path: Path) -> None:
    url = f"sqlite+pysqlite:///{tmp_path / 'app.db'}"
    _use_every_table(url)
    assert _proposals(url) == []


def test_autogenerate_proposes_nothing_on_postgres(fresh_postgres_url: str) -> None:
    _use_every_table(fresh_postgres_url)
    assert _proposals(fresh_postgres_url) == []


def test_autogenerate_proposes_nothing_on_mariadb(fresh_mariadb_url: str) -> None:
    _use_every_table(fresh_mariadb_url)
    assert _proposals(fresh_mariadb_url) == []


def test_keys_only_metadata_would_have_dropped_monitoring_tables(tmp_path: Path) -> None:
    """The check catches the bug it guards against: a metadata without the
    monitoring tables proposes dropping them."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    _use_every_table(url)
    keys_only = sa.MetaData()
    for name in ("apikeys_keys", "apikeys_schema"):
        metadata.tables[name].to_metadata(keys_only)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            context = alembic_migration.MigrationContext.configure(conn)
            diffs = alembic_autogenerate.compare_metadata(context, keys_only)
    finally:
        engine.dispose()
    dropped = {d[1].name for d in diffs if d[0] == "remove_table"}
    assert dropped == {"apikeys_audit", "apikeys_usage", "apikeys_usage_ips"}


def _alembic_project(tmp_path: Path, url: str) -> Any:
    """A project made by ``alembic init`` whose env.py follows docs/storage.md."""
    from alembic import command
    from alembic.config import Config

    config = Config(str(tmp_path / "alembic.ini"))
    command.init(config, str(tmp_path / "migrations"))
    config.set_main_option("script_location", str(tmp_path / "migrations"))
    config.set_main_option("sqlalchemy.url", url)
    env = tmp_path / "migrations" / "env.py"
    text = env.read_text(encoding="utf-8")
    assert "target_metadata = None" in text
    assert "fileConfig(config.config_file_name)" in text
    # The generated env.py configures logging for the whole process (and turns
    # off every existing logger); the rest of the suite needs logging untouched.
    text = text.replace("fileConfig(config.config_file_name)", "pass")
    env.write_text(
        text.replace(
            "target_metadata = None",
            "from apikeys.storage import metadata as apikeys_metadata\n"
            "target_metadata = [apikeys_metadata]",
        ),
        encoding="utf-8",
    )
    return config


def _revision_body(tmp_path: Path, config: Any, message: str) -> str:
    from alembic import command

    script = command.revision(config, message=message, autogenerate=True)
    assert script is not None
    text = Path(script.path).read_text(encoding="utf-8")
    return text[text.index("def upgrade()") : text.index("def downgrade()")]


def test_alembic_revision_autogenerate_follows_the_docs(tmp_path: Path) -> None:
    """``alembic revision --autogenerate`` as docs/storage.md sets it up: on an
    empty database it creates the five tables; on one apikeys filled, nothing."""
    empty = tmp_path / "empty"
    empty.mkdir()
    config = _alembic_project(empty, f"sqlite:///{empty / 'app.db'}")
    first = _revision_body(empty, config, "first")
    for table in APIKEYS_TABLES:
        assert f"op.create_table('{table}'" in first
    assert "drop_table" not in first

    used = tmp_path / "used"
    used.mkdir()
    url = f"sqlite:///{used / 'app.db'}"
    _use_every_table(url)
    config = _alembic_project(used, url)
    body = _revision_body(used, config, "nothing")
    assert "op." not in body, body
