"""Compare key ids (and owners) byte by byte, as Python does.

Key ids are case-sensitive base62. PostgreSQL's default collation orders them
by locale (``a`` < ``B``), and MySQL/MariaDB's default ones even compare them
case-insensitively; every store pages keys ordered by id and filters by owner,
so both columns get a binary collation there. SQLite already compares bytes.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

# ruff: noqa: RUF012  (Django reads migrations' class attributes as plain lists)

_SQL = {
    "postgresql": [
        'ALTER TABLE {table} ALTER COLUMN id TYPE varchar(64) COLLATE "C"',
    ],
    "mysql": [
        "ALTER TABLE {table} MODIFY id varchar(64) CHARACTER SET utf8mb4 "
        "COLLATE utf8mb4_bin NOT NULL",
        "ALTER TABLE {table} MODIFY owner varchar(200) CHARACTER SET utf8mb4 "
        "COLLATE utf8mb4_bin NOT NULL",
    ],
}


def binary_collation(apps: Any, schema_editor: Any) -> None:
    model = apps.get_model("apikeys", "APIKeyRecord")
    table = schema_editor.quote_name(model._meta.db_table)
    for statement in _SQL.get(schema_editor.connection.vendor, ()):
        schema_editor.execute(statement.format(table=table))


class Migration(migrations.Migration):
    dependencies = [("apikeys", "0001_initial")]

    operations = [
        # Not atomic: MySQL cannot roll DDL back, and refuses it inside a transaction.
        migrations.RunPython(
            binary_collation, migrations.RunPython.noop, atomic=False, elidable=False
        )
    ]
