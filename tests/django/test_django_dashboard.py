"""The usage dashboard inside the Django admin (Django's test client): staff with
the view permission see it, only the change permission acts, the dashboard's own
CSRF token is checked, and the action lands in the audit trail."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from dj_support import Env
from django.contrib.auth.models import Permission, User
from django.test import Client

from apikeys.django import admin as apikeys_admin
from apikeys.monitoring import Monitor

DASHBOARD = "/admin/apikeys/apikeyrecord/dashboard/"


@pytest.fixture
def monitor(apikeys_env: Env) -> Iterator[Monitor]:
    with Monitor(apikeys_env.manager) as monitor:
        apikeys_admin.use_monitor(monitor)
        yield monitor
    apikeys_admin._dashboard.clear()


def _client(username: str, *permissions: str, superuser: bool = False) -> Client:
    user, _ = User.objects.get_or_create(
        username=username, defaults={"is_staff": True, "is_superuser": superuser}
    )
    for codename in permissions:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client()
    client.force_login(user)
    return client


def test_staff_see_the_dashboard_and_revoke_from_it(apikeys_env: Env, monitor: Monitor) -> None:
    admin = _client("dash-admin", superuser=True)
    issued = apikeys_env.manager.create(owner="team-42", name="ci")
    apikeys_env.manager.record_request(issued.key, method="GET", route="/orders", status=200)
    changelist = admin.get("/admin/apikeys/apikeyrecord/").content.decode()
    assert f'href="{DASHBOARD}"' in changelist
    overview = admin.get(DASHBOARD)
    assert overview.status_code == 200
    assert issued.key.id in overview.content.decode()
    key_page = admin.get(f"{DASHBOARD}keys/{issued.key.id}").content.decode()
    assert "1 requests." in key_page
    assert f'href="{DASHBOARD}keys/{issued.key.id}/revoke"' in key_page
    confirm = admin.get(f"{DASHBOARD}keys/{issued.key.id}/revoke").content.decode()
    token = re.search(r'name="csrf" value="([^"]+)"', confirm)
    assert token is not None
    assert (
        admin.post(f"{DASHBOARD}keys/{issued.key.id}/revoke", {"csrf": "x" * 43}).status_code == 403
    )
    done = admin.post(
        f"{DASHBOARD}keys/{issued.key.id}/revoke", {"csrf": token.group(1), "reason": "leak"}
    )
    assert done.status_code == 303
    key = apikeys_env.manager.get(issued.key.id)
    assert key.revoke_reason == "leak (by dash-admin, dashboard)"
    assert [e.type for e in monitor.audit(key_id=key.id)][-1] == "key.revoked"


def test_view_permission_reads_but_cannot_act(apikeys_env: Env, monitor: Monitor) -> None:
    viewer = _client("dash-viewer", "view_apikeyrecord")
    issued = apikeys_env.manager.create(owner="team-42")
    assert viewer.get(DASHBOARD).status_code == 200
    confirm = viewer.get(f"{DASHBOARD}keys/{issued.key.id}/revoke").content.decode()
    token = re.search(r'name="csrf" value="([^"]+)"', confirm)
    assert token is not None
    refused = viewer.post(f"{DASHBOARD}keys/{issued.key.id}/revoke", {"csrf": token.group(1)})
    assert refused.status_code == 403
    assert apikeys_env.manager.get(issued.key.id).revoked_at is None


def test_anonymous_and_unprivileged_users_are_refused(apikeys_env: Env, monitor: Monitor) -> None:
    assert Client().get(DASHBOARD).status_code == 302  # to the admin login
    nobody = _client("dash-nobody")
    assert nobody.get(DASHBOARD).status_code == 403
