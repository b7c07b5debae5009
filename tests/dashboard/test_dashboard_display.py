"""The dashboard prints what the other tools print (issue 18): ``suspended``,
rotation and ``YYYY-MM-DD HH:MM:SS UTC``."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from dashboard_support import HEADERS

from apikeys import KeyManager
from apikeys._display import human_utc


def test_states_rotation_and_dates(client: Any, manager: KeyManager) -> None:
    old = manager.create(owner="o", expires_in=timedelta(days=30)).key
    new = manager.rotate(old.id, grace=timedelta(hours=2)).key
    other = manager.create(owner="o").key
    manager.suspend(other.id)
    listing = client.get("/apikeys/keys", headers=HEADERS).text
    assert 'class="state state-disabled">suspended</span>' in listing
    assert ">disabled<" not in listing
    assert '<option value="disabled">suspended</option>' in listing
    assert human_utc(manager.get(new.id).expires_at) in listing
    page = client.get(f"/apikeys/keys/{old.id}", headers=HEADERS).text
    ends = human_utc(manager.now() + timedelta(hours=2))
    assert f"replaced by {new.id}, grace ends {ends}" in page
    assert human_utc(old.created_at) in page
    assert not re.search(r"\d\dT\d\d:\d\d", re.sub(r"<[^>]*>", "", page))
