"""The framework-free core: routing, access control, CSRF, actions. It takes a
:class:`DashboardRequest` and returns a :class:`DashboardResponse`; the ASGI,
WSGI and Django translations only convert."""

from __future__ import annotations

import hmac
import logging
import re
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from apikeys.dashboard import _pages as pages
from apikeys.dashboard._bridge import BlockingAsyncMonitor, watched
from apikeys.dashboard._http import DashboardRequest, DashboardResponse, url
from apikeys.dashboard._queries import Queries, period_of
from apikeys.errors import (
    APIKeyError,
    ConfigurationError,
    InvalidArgument,
    InvalidKeyState,
    KeyNotFound,
    StorageError,
)
from apikeys.monitoring import AsyncMonitor, Monitor

logger = logging.getLogger("apikeys.dashboard")

Authorize = Callable[[DashboardRequest], object]
"""The application's access check: given the request, return the operator's name
(a ``str``, kept in the audit trail), ``True`` (allowed, unnamed) or a false
value (refused: 403)."""

_FORWARDING = ("forwarded", "x-forwarded-for", "x-real-ip")


def local_only(request: DashboardRequest) -> str | None:
    """An ``authorize`` for development and the examples: browsers on this machine
    (a loopback client address, no proxy forwarding headers) as ``"local"``.

    Warning:
        Behind a reverse proxy on the same machine every request comes from
        loopback; the forwarding-header check refuses what a proxy marks, but a
        real deployment checks its own login instead.
    """
    loopback = request.client in ("127.0.0.1", "::1")
    forwarded = any(name in request.headers for name in _FORWARDING)
    return "local" if loopback and not forwarded else None


CSRF_COOKIE = "apikeys_csrf"
_KEY_PATH = re.compile(r"/keys/([0-9A-Za-z]{1,64})(?:/(revoke|rotate|suspend|enable))?")
_GRACES = {"0": timedelta(0), "3600": timedelta(hours=1), "86400": timedelta(days=1)}


class Dashboard:
    """Usage dashboards and key actions over one :class:`~apikeys.monitoring.Monitor`.

    Mount :meth:`asgi` (FastAPI, Starlette, Litestar) or :meth:`wsgi` (Flask, any
    WSGI server) at a path of the application; the Django admin has its own view.
    Pages never show a key's hash, and a plaintext key only once, right after a
    rotation made from the dashboard.

    Args:
        monitor: The monitor whose stores and manager the pages read. An
            :class:`~apikeys.monitoring.AsyncMonitor` is served by :meth:`asgi`
            only (its manager's calls run on the application's event loop).
        authorize: Called with every request; see :data:`Authorize`. Required:
            the dashboard is never open by default.

    Raises:
        ConfigurationError: no ``authorize`` callable, or not a monitor.
    """

    def __init__(self, monitor: Monitor | AsyncMonitor, *, authorize: Authorize | None) -> None:
        if authorize is None or not callable(authorize):
            raise ConfigurationError(
                "the dashboard needs authorize=<callable(request)>: it is never open by default"
            )
        self.monitor = watched(monitor)
        self.authorize = authorize
        self.queries = Queries(self.monitor)

    def __repr__(self) -> str:
        return f"Dashboard({self.monitor!r})"

    def asgi(self) -> Any:
        """This dashboard as an ASGI application (``app.mount("/apikeys", ...)``)."""
        from apikeys.dashboard._asgi import ASGIDashboard

        return ASGIDashboard(self)

    def wsgi(self) -> Any:
        """This dashboard as a WSGI application (Flask: see ``docs/dashboard.md``).

        Raises:
            ConfigurationError: the monitor is an AsyncMonitor (serve it with asgi()).
        """
        from apikeys.dashboard._wsgi import WSGIDashboard

        if isinstance(self.monitor, BlockingAsyncMonitor):
            raise ConfigurationError("an AsyncMonitor's dashboard is served by asgi() only")
        return WSGIDashboard(self)

    # --- the one entry point --------------------------------------------------------

    def handle(self, request: DashboardRequest) -> DashboardResponse:
        """Answer one request: authorize, route, render.

        Storage failures give a 503 page; nothing is ever shown to a refused request.
        """
        try:
            actor = self.authorize(request)
        except Exception:
            logger.exception("apikeys: the dashboard's authorize callable failed")
            actor = None
        if not actor:
            return self._page(request, 403, pages.problem(request.root, 403, "Not allowed."))
        name = actor if isinstance(actor, str) else "dashboard"
        try:
            return self._route(request, name)
        except StorageError:
            logger.warning("apikeys: dashboard page failed: store unavailable")
            return self._page(
                request, 503, pages.problem(request.root, 503, "A store is unavailable.")
            )

    def handle_trusted(self, request: DashboardRequest, actor: str) -> DashboardResponse:
        """Like :meth:`handle`, for a front end that has already checked access
        (the Django admin's staff check)."""
        try:
            return self._route(request, actor)
        except StorageError:
            return self._page(
                request, 503, pages.problem(request.root, 503, "A store is unavailable.")
            )

    def _route(self, request: DashboardRequest, actor: str) -> DashboardResponse:
        path = request.path.rstrip("/") or "/"
        root, q = request.root, request.query
        if request.method not in ("GET", "HEAD", "POST"):
            return self._page(request, 405, pages.problem(root, 405, "Method not allowed."))
        if request.method == "POST":
            return self._post(request, path, actor)
        now = self.monitor.manager.now()
        if path == "/style.css":
            return DashboardResponse(
                200,
                pages.STYLE,
                [("Cache-Control", "max-age=3600")],
                content_type="text/css; charset=utf-8",
            )
        if path == "/favicon.svg":
            return DashboardResponse(
                200,
                pages.FAVICON,
                [("Cache-Control", "max-age=86400")],
                content_type="image/svg+xml",
            )
        if path == "/":
            view = self.queries.overview(period_of(q.get("period")))
            return self._page(request, 200, pages.overview(root, view, now))
        if path == "/review":
            findings, expiring, following = self.queries.review(q.get("after") or None)
            return self._page(request, 200, pages.review(root, findings, expiring, following))
        if path == "/keys":
            filters = {
                name: q.get(name, "").strip()[:200] for name in ("owner", "state", "prefix", "q")
            }
            try:
                page = self.queries.keys(
                    owner=filters["owner"] or None,
                    state=filters["state"] or None,
                    prefix=filters["prefix"] or None,
                    text=filters["q"] or None,
                    after=q.get("after") or None,
                )
            except InvalidArgument:
                return self._page(request, 400, pages.problem(root, 400, "Bad filter."))
            return self._page(request, 200, pages.keys(root, page, filters, now))
        match = _KEY_PATH.fullmatch(path)
        if match is None:
            return self._page(request, 404, pages.problem(root, 404, "No such page."))
        key_id, action = match.groups()
        try:
            if action is None:
                before = q.get("before", "")
                detail = self.queries.key(
                    key_id,
                    period_of(q.get("period")),
                    int(before)
                    if before.isascii() and before.isdigit() and len(before) <= 18
                    else None,
                )
                return self._page(
                    request, 200, pages.key_page(root, detail, now, q.get("done") or None)
                )
            key = self.monitor.manager.get(key_id)
        except KeyNotFound:
            return self._page(request, 404, pages.problem(root, 404, "No such key."))
        token = self._csrf(request)
        return self._page(request, 200, pages.confirm(root, key, action, token), token)

    # --- actions ----------------------------------------------------------------------

    def _post(self, request: DashboardRequest, path: str, actor: str) -> DashboardResponse:
        root = request.root
        if not self._csrf_ok(request):
            return self._page(request, 403, pages.problem(root, 403, "Form expired: reload."))
        match = _KEY_PATH.fullmatch(path)
        if match is None or match.group(2) is None:
            return self._page(request, 404, pages.problem(root, 404, "No such action."))
        key_id, action = match.groups()
        manager = self.monitor.manager
        reason = (request.form.get("reason") or "").strip()[:200]
        note = f"{reason} (by {actor}, dashboard)" if reason else f"by {actor}, dashboard"
        try:
            if action == "rotate":
                grace = _GRACES.get(request.form.get("grace", "0"), timedelta(0))
                issued = manager.rotate(key_id, grace=grace)
                logger.info("apikeys: %s rotated key %s from the dashboard", actor, key_id)
                response = self._page(
                    request, 200, pages.rotated(root, key_id, issued.key, issued.plaintext)
                )
                return response
            if action == "revoke":
                manager.revoke(key_id, reason=note)
            elif action == "suspend":
                manager.suspend(key_id, reason=note)
            else:
                manager.enable(key_id)
        except KeyNotFound:
            return self._page(request, 404, pages.problem(root, 404, "No such key."))
        except (InvalidKeyState, InvalidArgument) as exc:
            return self._page(request, 409, pages.problem(root, 409, f"Refused: {exc.code}."))
        except StorageError:
            raise
        except APIKeyError as exc:
            return self._page(request, 400, pages.problem(root, 400, f"Refused: {exc.code}."))
        logger.info("apikeys: %s did %s on key %s from the dashboard", actor, action, key_id)
        done = {"revoke": "Revoked.", "suspend": "Suspended.", "enable": "Enabled."}[action]
        target = url(root, f"/keys/{key_id}", {"done": done})
        return DashboardResponse(303, b"", [("Location", target), *self._security()])

    def _csrf(self, request: DashboardRequest) -> str:
        """The session's CSRF token (a fresh one when the cookie is missing; the
        response sets it)."""
        token = request.cookies.get(CSRF_COOKIE, "")
        return token if len(token) >= 32 else secrets.token_urlsafe(32)

    def _csrf_ok(self, request: DashboardRequest) -> bool:
        cookie = request.cookies.get(CSRF_COOKIE, "")
        sent = request.form.get("csrf", "")
        if len(cookie) < 32 or not sent:
            return False
        origin = request.headers.get("origin")
        host = request.headers.get("host")
        if origin and host and origin.split("://", 1)[-1] != host:
            return False
        return hmac.compare_digest(cookie.encode(), sent.encode())

    # --- responses --------------------------------------------------------------------

    @staticmethod
    def _security() -> list[tuple[str, str]]:
        return [
            ("Cache-Control", "no-store"),
            ("Content-Security-Policy", pages.CSP),
            ("X-Content-Type-Options", "nosniff"),
            ("X-Frame-Options", "DENY"),
            # Not no-referrer: with it, browsers send "Origin: null" on the forms' POSTs.
            ("Referrer-Policy", "same-origin"),
        ]

    def _page(
        self, request: DashboardRequest, status: int, html: str, token: str | None = None
    ) -> DashboardResponse:
        headers = self._security()
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if len(cookie) < 32 and status != 403:
            token = token or self._csrf(request)
            flags = "; Secure" if request.secure else ""
            headers.append(
                (
                    "Set-Cookie",
                    f"{CSRF_COOKIE}={token}; Path={request.root or '/'}; HttpOnly; "
                    f"SameSite=Strict{flags}",
                )
            )
        return DashboardResponse(status, html.encode(), headers)
