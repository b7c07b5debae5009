"""The dashboard's pages and actions through a real WSGI client (werkzeug) and
the ASGI app (httpx): access, content, CSRF, and what a page never shows."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import httpx
import pytest
from dashboard_support import HEADERS, authorize, traffic

from apikeys import KeyManager
from apikeys.dashboard import Dashboard, asgi_app, wsgi_app
from apikeys.errors import AuthenticationError, ConfigurationError
from apikeys.monitoring import Monitor
from apikeys.storage import MemoryStore
from apikeys.testing import ManualClock


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


def test_refuses_to_start_without_authorize(monitor: Monitor) -> None:
    with pytest.raises(ConfigurationError, match="never open by default"):
        Dashboard(monitor, authorize=None)
    with pytest.raises(ConfigurationError):
        asgi_app(monitor, authorize=None)
    with pytest.raises(ConfigurationError):
        wsgi_app(monitor, authorize=None)


def test_unauthorized_requests_see_nothing(client: Any, manager: KeyManager) -> None:
    issued = manager.create(owner="team-1", name="secret-project")
    for path in ("/apikeys/", "/apikeys/keys", f"/apikeys/keys/{issued.key.id}"):
        response = client.get(path)
        assert response.status_code == 403
        assert "secret-project" not in response.text
        assert "Set-Cookie" not in response.headers


def test_an_authorize_that_raises_refuses(monitor: Monitor, manager: KeyManager) -> None:
    def broken(request: Any) -> bool:
        raise RuntimeError("boom")

    from werkzeug.test import Client

    client = Client(Dashboard(monitor, authorize=broken).wsgi())
    assert client.get("/").status_code == 403


def test_overview_shows_totals_failures_and_top_keys(
    client: Any, manager: KeyManager, clock: ManualClock
) -> None:
    busy = manager.create(owner="team-1", name="busy").key
    quiet = manager.create(owner="team-2", name="quiet").key
    traffic(manager, clock, busy, s200=7, s404=2, s500=1)
    traffic(manager, clock, quiet, s200=1)
    manager.revoke(quiet.id)
    response = client.get("/apikeys/?period=24h", headers=HEADERS)
    assert response.status_code == 200
    html = response.text
    assert "<svg" in html
    assert "Requests per bucket by status class" in html
    cards = re.search(r"Requests<b>(\d+)</b>", html)
    assert cards is not None
    assert cards.group(1) == "11"
    top = html.index("Top keys")
    assert html.index(busy.id, top) < html.index(quiet.id, top)
    assert "/orders/{id}" in html
    assert "aria-current=true>24h" in html


def test_failures_by_code_come_from_the_audit_trail(
    client: Any, manager: KeyManager, monitor: Monitor
) -> None:
    issued = manager.create(owner="team-1")
    manager.revoke(issued.key.id)
    for _ in range(3):
        with pytest.raises(AuthenticationError):
            manager.verify(issued.plaintext)
    html = client.get("/apikeys/", headers=HEADERS).text
    section = html[html.index("Failures by code") : html.index("Top keys")]
    assert '<code>revoked</code></td><td class="n">3</td>' in section


def test_keys_list_filters_and_paging(client: Any, manager: KeyManager) -> None:
    made = [manager.create(owner=f"team-{i % 2}", name=f"k{i}").key for i in range(60)]
    html = client.get("/apikeys/keys?owner=team-1", headers=HEADERS).text
    shown = set(re.findall(r"/apikeys/keys/([0-9A-Za-z]{16})\"", html))
    assert shown == {k.id for k in made if k.owner == "team-1"}
    first = client.get("/apikeys/keys", headers=HEADERS).text
    assert "Next page" in first
    after = re.search(r'href="(/apikeys/keys\?after=[^"]+)"', first)
    assert after is not None
    second = client.get(after.group(1).replace("&amp;", "&"), headers=HEADERS).text
    page_one = set(re.findall(r"/apikeys/keys/([0-9A-Za-z]{16})\"", first))
    page_two = set(re.findall(r"/apikeys/keys/([0-9A-Za-z]{16})\"", second))
    assert len(page_one) == 50
    assert len(page_two) == 10
    assert not page_one & page_two
    by_name = client.get("/apikeys/keys?q=k17", headers=HEADERS).text
    assert set(re.findall(r"/apikeys/keys/([0-9A-Za-z]{16})\"", by_name)) == {made[17].id}
    by_id = client.get(f"/apikeys/keys?q={made[3].id}", headers=HEADERS).text
    assert set(re.findall(r"/apikeys/keys/([0-9A-Za-z]{16})\"", by_id)) == {made[3].id}
    assert client.get("/apikeys/keys?state=nonsense", headers=HEADERS).status_code == 400


def test_key_page_shows_usage_addresses_lineage_and_never_a_secret(
    client: Any, manager: KeyManager, clock: ManualClock
) -> None:
    issued = manager.create(owner="team-1", name="ci", scopes=["orders:read"])
    traffic(manager, clock, issued.key, s200=3, s429=1)
    successor = manager.rotate(issued.key.id, grace=timedelta(hours=1))
    html = client.get(f"/apikeys/keys/{issued.key.id}", headers=HEADERS).text
    assert "10.0.0.7" in html
    assert "4 requests." in html
    lineage = html[html.index("Lineage") : html.index("Usage:")]
    assert issued.key.id in lineage
    assert successor.key.id in lineage
    assert "key.rotated" in html
    record = manager.store.get(issued.key.id)
    assert record is not None
    assert record.secret_hash not in html
    assert issued.plaintext not in html
    assert successor.plaintext not in html
    assert issued.plaintext[-30:-8] not in html  # no part of the secret either


def test_revoke_needs_confirmation_and_csrf(client: Any, manager: KeyManager) -> None:
    issued = manager.create(owner="team-1")
    key_id = issued.key.id
    assert client.get(f"/apikeys/keys/{key_id}/revoke", headers=HEADERS).status_code == 200
    assert manager.get(key_id).revoked_at is None  # a GET changes nothing
    forged = client.post(f"/apikeys/keys/{key_id}/revoke", data={"csrf": "x" * 43}, headers=HEADERS)
    assert forged.status_code == 403
    assert manager.get(key_id).revoked_at is None
    page = client.get(f"/apikeys/keys/{key_id}/revoke", headers=HEADERS).text
    done = client.post(
        f"/apikeys/keys/{key_id}/revoke",
        data={"csrf": csrf_of(page), "reason": "leaked"},
        headers=HEADERS,
    )
    assert done.status_code == 303
    assert done.headers["Location"].startswith(f"/apikeys/keys/{key_id}?done=")
    key = manager.get(key_id)
    assert key.revoked_at is not None
    assert key.revoke_reason == "leaked (by alice, dashboard)"
    with pytest.raises(AuthenticationError):
        manager.verify(issued.plaintext)


def test_csrf_from_another_session_is_refused(dashboard: Dashboard, manager: KeyManager) -> None:
    from werkzeug.test import Client

    key_id = manager.create(owner="team-1").key.id
    victim, attacker = Client(dashboard.wsgi()), Client(dashboard.wsgi())
    victim.get(f"/keys/{key_id}/revoke", headers=HEADERS)
    stolen = csrf_of(attacker.get(f"/keys/{key_id}/revoke", headers=HEADERS).text)
    response = victim.post(f"/keys/{key_id}/revoke", data={"csrf": stolen}, headers=HEADERS)
    assert response.status_code == 403
    assert manager.get(key_id).revoked_at is None


def test_cross_origin_post_is_refused(client: Any, manager: KeyManager) -> None:
    key_id = manager.create(owner="team-1").key.id
    token = csrf_of(client.get(f"/apikeys/keys/{key_id}/suspend", headers=HEADERS).text)
    response = client.post(
        f"/apikeys/keys/{key_id}/suspend",
        data={"csrf": token},
        headers={**HEADERS, "Origin": "https://evil.example"},
    )
    assert response.status_code == 403
    assert manager.get(key_id).disabled_at is None


def test_suspend_enable_and_rotate(client: Any, manager: KeyManager, monitor: Monitor) -> None:
    issued = manager.create(owner="team-1")
    key_id = issued.key.id

    def act(action: str, **data: str) -> Any:
        token = csrf_of(client.get(f"/apikeys/keys/{key_id}/{action}", headers=HEADERS).text)
        return client.post(
            f"/apikeys/keys/{key_id}/{action}", data={"csrf": token, **data}, headers=HEADERS
        )

    assert act("suspend", reason="pause").status_code == 303
    assert manager.get(key_id).disabled_at is not None
    assert act("enable").status_code == 303
    assert manager.get(key_id).disabled_at is None
    rotated = act("rotate", grace="0")
    assert rotated.status_code == 200
    assert rotated.headers["Cache-Control"] == "no-store"
    plaintext = re.search(r'id="new-key">([^<]+)<', rotated.text)
    assert plaintext is not None
    new = manager.verify(plaintext.group(1))
    assert new.replaces == key_id
    # Shown once: the new key's own page does not show it again.
    assert plaintext.group(1) not in client.get(f"/apikeys/keys/{new.id}", headers=HEADERS).text
    types = [entry.type for entry in monitor.audit(key_id=key_id)]
    assert types == ["key.created", "key.suspended", "key.enabled", "key.rotated"]
    manager.revoke(key_id)
    assert act("enable").status_code == 409  # a revoked key cannot be enabled


def test_security_headers_and_cookie_flags(client: Any) -> None:
    response = client.get("/apikeys/", headers=HEADERS)
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Path=/apikeys" in cookie
    assert "<script" not in response.text
    css = client.get("/apikeys/style.css", headers=HEADERS)
    assert css.status_code == 200
    assert "focus-visible" in css.text


def test_unknown_pages_methods_and_odd_parameters(client: Any, manager: KeyManager) -> None:
    key_id = manager.create(owner="team-1").key.id
    for odd in ("²", "9" * 40, "-1", "abc"):
        page = client.get(f"/apikeys/keys/{key_id}?before={odd}&period={odd}", headers=HEADERS)
        assert page.status_code == 200
    # A cursor no key id can have: refused as a bad request, never passed to the store.
    refused = client.get("/apikeys/keys?after=%00'%22", headers=HEADERS)
    assert refused.status_code == 400
    assert "%00" not in refused.text
    assert "\x00" not in refused.text
    assert client.get("/apikeys/nope", headers=HEADERS).status_code == 404
    assert client.get("/apikeys/keys/AAAAAAAAAAAAAAAA", headers=HEADERS).status_code == 404
    assert client.delete("/apikeys/", headers=HEADERS).status_code == 405


def test_store_down_gives_503(manager: KeyManager) -> None:
    from werkzeug.test import Client

    from apikeys.errors import StorageError

    class DownStore(MemoryStore):
        def list(self, **kwargs: Any) -> Any:
            raise StorageError("down")

    down = KeyManager(DownStore(), prefix="acme")
    with Monitor(down) as monitor:
        client = Client(Dashboard(monitor, authorize=authorize).wsgi())
        response = client.get("/", headers=HEADERS)
    assert response.status_code == 503


@pytest.mark.anyio
async def test_asgi_app_mounted_in_starlette(
    monitor: Monitor, manager: KeyManager, clock: ManualClock
) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    issued = manager.create(owner="team-1", name="asgi")
    traffic(manager, clock, issued.key, s200=2)
    app = Starlette(routes=[Mount("/apikeys", app=asgi_app(monitor, authorize=authorize))])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        assert (await http.get("/apikeys/")).status_code == 403
        page = await http.get(f"/apikeys/keys/{issued.key.id}", headers=HEADERS)
        assert page.status_code == 200
        assert "2 requests." in page.text
        assert f'href="/apikeys/keys/{issued.key.id}/revoke"' in page.text
        confirm = await http.get(f"/apikeys/keys/{issued.key.id}/revoke", headers=HEADERS)
        done = await http.post(
            f"/apikeys/keys/{issued.key.id}/revoke",
            data={"csrf": csrf_of(confirm.text)},
            headers=HEADERS,
        )
        assert done.status_code == 303
    assert manager.get(issued.key.id).revoked_at is not None


def test_overview_shows_limits_anomalies_expiring_and_review(clock: ManualClock) -> None:
    from werkzeug.test import Client

    from apikeys.events import AnomalyDetected
    from apikeys.ratelimit import KeyRateLimiter
    from apikeys.testing import test_hasher

    limiter = KeyRateLimiter(clock=clock)
    keys = KeyManager(
        MemoryStore(), prefix="acme", hasher=test_hasher(), clock=clock, rate_limiter=limiter
    )
    busy = keys.create(owner="team-1", name="busy", rate_limits=["5/minute"])
    soon = keys.create(owner="team-2", name="soon", expires_in=timedelta(days=3)).key
    broad = keys.create(owner="team-3", name="broad", scopes=["*"]).key
    with Monitor(keys) as monitor:
        for _ in range(4):
            key = keys.verify(busy.plaintext)
            keys.record_request(key, method="GET", route="/x", status=200)
        keys._emit(AnomalyDetected(at=clock(), key_id=busy.key.id, detector="new_network"))
        client = Client(Dashboard(monitor, authorize=authorize).wsgi())
        html = client.get("/", headers=HEADERS).text
    near = html[html.index("Near a limit") : html.index("Recent anomalies")]
    assert busy.key.id in near
    assert "5/minute" in near
    assert "80%" in near
    anomalies = html[html.index("Recent anomalies") : html.index("Expiring within")]
    assert "new_network" in anomalies
    expiring = html[html.index("Expiring within") : html.index("Hygiene review")]
    assert soon.id in expiring
    assert broad.id not in expiring
    review = html[html.index("Hygiene review") :]
    assert broad.id in review
    assert "holds *" in review


def test_head_renders_no_body(client: Any) -> None:
    response = client.head("/apikeys/", headers=HEADERS)
    assert response.status_code == 200
    assert response.data == b""


@pytest.mark.anyio
async def test_asgi_app_over_an_async_monitor(clock: ManualClock) -> None:
    from apikeys import AsyncKeyManager
    from apikeys.monitoring import AsyncMonitor
    from apikeys.testing import test_hasher

    keys = AsyncKeyManager(MemoryStore(), prefix="acme", hasher=test_hasher(), clock=clock)
    monitor = AsyncMonitor(keys)
    issued = await keys.create(owner="team-1", name="async")
    keys.record_request(issued.key, method="GET", route="/a", status=200)
    app = asgi_app(monitor, authorize=authorize)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        overview = await http.get("/", headers=HEADERS)
        assert overview.status_code == 200
        assert issued.key.id in overview.text
        listed = await http.get("/keys?q=async", headers=HEADERS)
        assert issued.key.id in listed.text
        confirm = await http.get(f"/keys/{issued.key.id}/suspend", headers=HEADERS)
        done = await http.post(
            f"/keys/{issued.key.id}/suspend",
            data={"csrf": csrf_of(confirm.text)},
            headers=HEADERS,
        )
        assert done.status_code == 303
    assert (await keys.get(issued.key.id)).disabled_at is not None
    with pytest.raises(ConfigurationError, match="asgi"):
        Dashboard(monitor, authorize=authorize).wsgi()
    await monitor.aclose()


def test_importing_the_dashboard_and_metrics_loads_no_framework() -> None:
    import subprocess
    import sys

    code = (
        "import sys, apikeys.dashboard, apikeys.metrics\n"
        "heavy = ('starlette', 'flask', 'django', 'werkzeug', 'fastapi', 'prometheus_client',"
        " 'opentelemetry', 'sqlalchemy')\n"
        "print([m for m in heavy if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
