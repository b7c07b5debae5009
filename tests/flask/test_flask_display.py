"""``flask apikeys list`` prints what ``apikeys list`` prints: rotation, the
``suspended`` label and the two date formats (issue 18)."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

from flask_support import build_app

from apikeys._display import human_utc, iso_utc
from apikeys.flask import APIKeys, get_manager
from apikeys.hashing import Argon2Hasher
from apikeys.testing import ManualClock


def test_list_shows_rotation_and_one_date_format(tmp_path: Path) -> None:
    clock = ManualClock()
    app = build_app(
        APIKeys(),
        APIKEYS_DATABASE_URL=f"sqlite:///{tmp_path / 'keys.db'}",
        APIKEYS_PREFIX="acme",
        APIKEYS_MANAGER_OPTIONS={"hasher": Argon2Hasher.for_tests(), "clock": clock},
    )
    manager = get_manager(app)
    try:
        old = manager.create(owner="o").key
        new = manager.rotate(old.id, grace=timedelta(hours=2)).key
        other = manager.create(owner="o").key
        manager.suspend(other.id)
        runner = app.test_cli_runner()
        listed = json.loads(runner.invoke(args=["apikeys", "list", "--json"]).stdout)
        by_id = {k["id"]: k for k in listed}
        ends = clock.now + timedelta(hours=2)
        assert by_id[old.id]["replaced_by"] == new.id
        assert by_id[old.id]["grace_ends_at"] == iso_utc(ends)
        assert by_id[old.id]["created_at"] == iso_utc(clock.now)
        assert by_id[other.id]["state"] == "disabled"
        table = runner.invoke(args=["apikeys", "list"]).stdout
        rows = {line.split()[0]: line for line in table.splitlines()[1:]}
        assert rows[old.id].endswith(f"replaced by {new.id}, grace ends {human_utc(ends)}")
        assert " suspended " in rows[other.id]
        assert not re.search(r"\d\dT\d\d:", table)
    finally:
        manager.close()
