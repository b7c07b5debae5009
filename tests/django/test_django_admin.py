"""The admin: listing with filters and search, issuing a key shown exactly once,
revoke and rotate actions, read-only records, and the hash never shown."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from dj_support import Env, configured
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.test import Client

from apikeys import KeyState
from apikeys._issuance import IssuancePolicy
from apikeys.django.models import APIKeyRecord

CHANGELIST = "/admin/apikeys/apikeyrecord/"
ADD = CHANGELIST + "add/"
PLAINTEXT = re.compile(r'value="(test_[0-9A-Za-z]{16}[0-9A-Za-z]+)"')


@pytest.fixture
def admin_client(apikeys_env: Env) -> Client:
    user, _ = User.objects.get_or_create(
        username="admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    return client


def _issue_through_the_form(client: Client, **fields: str) -> tuple[str, str]:
    data = {"owner": "team-42", "key_prefix": "test", "grant_scopes": "orders:read", **fields}
    response = client.post(ADD, data)
    assert response.status_code == 200, response.content[:2000]
    page = response.content.decode()
    found = PLAINTEXT.findall(page)
    assert len(found) == 1
    assert "no-store" in response["Cache-Control"]
    return found[0], page


def test_issuing_shows_the_plaintext_once_and_stores_only_its_hash(
    apikeys_env: Env, admin_client: Client
) -> None:
    plaintext, _ = _issue_through_the_form(
        admin_client, name="CI", grant_scopes="orders:read, orders:write", lifetime="30d"
    )
    key = apikeys_env.manager.verify(plaintext, scopes=["orders:write"])
    assert key.name == "CI"
    assert key.expires_at == apikeys_env.clock.now + timedelta(days=30)
    row = APIKeyRecord.objects.using(apikeys_env.alias).get(pk=key.id)
    secret = plaintext.rsplit("_", 1)[1][16:]
    assert row.secret_hash.startswith("$argon2id$")
    assert secret not in row.secret_hash
    # Not kept anywhere a later page could show it: not in the session, nor a message.
    for session in Session.objects.all():
        assert plaintext not in str(session.get_decoded())
    for path in (CHANGELIST, CHANGELIST + f"{key.id}/change/"):
        assert plaintext not in admin_client.get(path).content.decode()


def test_the_default_expiry_fills_the_form(apikeys_env: Env, admin_client: Client) -> None:
    with configured(apikeys_env, DEFAULT_EXPIRY=timedelta(days=90)):
        form = admin_client.get(ADD).content.decode()
        assert 'name="lifetime" value="90d"' in form
        plaintext, _ = _issue_through_the_form(admin_client, lifetime="90d")
    key = apikeys_env.manager.verify(plaintext)
    assert key.expires_at == apikeys_env.clock.now + timedelta(days=90)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"grant_scopes": "not a scope!"}, "scope"),
        ({"lifetime": "soon"}, "not a duration"),
        ({"ip_allowlist": "10.0.0.0/33"}, "10.0.0.0/33"),
        ({"key_rate_limits": "lots"}, "lots"),
    ],
)
def test_invalid_values_are_form_errors_and_issue_nothing(
    apikeys_env: Env, admin_client: Client, fields: dict[str, str], message: str
) -> None:
    data = {"owner": "team-42", "key_prefix": "test", **fields}
    response = admin_client.post(ADD, data)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not PLAINTEXT.search(response.content.decode())
    assert apikeys_env.manager.list() == []


def test_the_issuance_policy_is_a_form_error(apikeys_env: Env, admin_client: Client) -> None:
    policy = IssuancePolicy(require_expiry=True)
    with configured(apikeys_env, MANAGER_OPTIONS={"issuance": policy}):
        response = admin_client.post(ADD, {"owner": "team-42", "key_prefix": "test"})
    assert "requires an expiry" in response.content.decode()
    assert apikeys_env.manager.list() == []


def test_the_detail_page_is_read_only_and_never_shows_the_hash(
    apikeys_env: Env, admin_client: Client
) -> None:
    apikeys_env.issue("orders:read", name="CI")
    key = apikeys_env.manager.list()[0]
    row = APIKeyRecord.objects.using(apikeys_env.alias).get(pk=key.id)
    page = admin_client.get(CHANGELIST + f"{key.id}/change/").content.decode()
    assert key.id in page
    assert "orders:read" in page
    assert row.secret_hash not in page
    assert "argon2" not in page
    assert "secret_hash" not in page
    assert 'name="_save"' not in page  # nothing to save
    before = APIKeyRecord.objects.using(apikeys_env.alias).get(pk=key.id).version
    response = admin_client.post(CHANGELIST + f"{key.id}/change/", {"owner": "mallory"})
    assert response.status_code == 403
    assert apikeys_env.manager.get(key.id).owner == "team-42"
    assert APIKeyRecord.objects.using(apikeys_env.alias).get(pk=key.id).version == before


def test_list_filters_and_search(apikeys_env: Env, admin_client: Client) -> None:
    m = apikeys_env.manager
    active = m.create(owner="alpha", name="frontend").key
    soon = m.create(owner="alpha", expires_in=timedelta(days=3)).key
    revoked = m.create(owner="beta").key
    m.revoke(revoked.id)
    expiring = m.create(owner="beta", expires_in=timedelta(hours=1)).key
    apikeys_env.clock.advance(timedelta(hours=2))

    def ids(query: str) -> set[str]:
        page = admin_client.get(CHANGELIST + query).content.decode()
        return {k for k in (active.id, soon.id, revoked.id, expiring.id) if k in page}

    assert ids("") == {active.id, soon.id, revoked.id, expiring.id}
    assert ids("?owner=alpha") == {active.id, soon.id}
    assert ids(f"?state={KeyState.REVOKED.value}") == {revoked.id}
    assert ids("?state=expired") == {expiring.id}
    assert ids("?state=active") == {active.id, soon.id}
    assert ids("?expiry=never") == {active.id, revoked.id}
    assert ids("?expiry=7d") == {soon.id}
    assert ids("?expiry=past") == {expiring.id}
    assert ids("?q=frontend") == {active.id}
    assert ids(f"?q={soon.id}") == {soon.id}


def test_revoke_action(apikeys_env: Env, admin_client: Client) -> None:
    plaintext = apikeys_env.issue()
    key = apikeys_env.manager.list()[0]
    response = admin_client.post(
        CHANGELIST, {"action": "revoke_keys", "_selected_action": [key.id]}, follow=True
    )
    assert "Revoked 1 key" in response.content.decode()
    revoked = apikeys_env.manager.get(key.id)
    assert revoked.revoked_at is not None
    assert revoked.revoke_reason == "revoked in the admin by admin"
    with pytest.raises(Exception, match="revoked"):
        apikeys_env.manager.verify(plaintext)


def test_rotate_action_shows_each_successor_once(apikeys_env: Env, admin_client: Client) -> None:
    old_plaintext = apikeys_env.issue("orders:read")
    apikeys_env.issue("orders:write")
    revoked_plaintext = apikeys_env.issue()
    keys = apikeys_env.manager.list()
    revoked_id = next(
        k.id for k in keys if apikeys_env.manager.verify(revoked_plaintext).id == k.id
    )
    apikeys_env.manager.revoke(revoked_id)
    with configured(apikeys_env, ROTATION_GRACE="1h"):
        response = admin_client.post(
            CHANGELIST, {"action": "rotate_keys", "_selected_action": [k.id for k in keys]}
        )
    page = response.content.decode()
    successors = PLAINTEXT.findall(page)
    assert len(successors) == 2
    assert "no-store" in response["Cache-Control"]
    assert revoked_id in page  # named in the error message for the revoked key
    scopes = sorted(apikeys_env.manager.verify(s).scopes[0] for s in successors)
    assert scopes == ["orders:read", "orders:write"]
    apikeys_env.manager.verify(old_plaintext)  # still inside its grace period
    apikeys_env.clock.advance(timedelta(hours=2))
    with pytest.raises(Exception, match="expired"):
        apikeys_env.manager.verify(old_plaintext)


def test_delete_purges_through_the_manager(apikeys_env: Env, admin_client: Client) -> None:
    apikeys_env.issue()
    key = apikeys_env.manager.list()[0]
    response = admin_client.post(CHANGELIST + f"{key.id}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert apikeys_env.manager.list() == []
    assert "key.purged" in apikeys_env.sink.types
