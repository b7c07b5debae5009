"""The ASGI middleware behind ``APIKeyAuth.install``: after each response to a
request authenticated with a key, report it to the manager (route template and
status, for usage tracking) and put the key's rate-limit headers on the response.

It is plain ASGI and only wraps ``send``, so streaming responses pass through as
they are produced; the request is reported once the response has been sent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from apikeys._hooks import RateLimitStatus, Verification
from apikeys._http import rate_limit_headers
from apikeys._models import APIKey

logger = logging.getLogger("apikeys")

SCOPE_KEY = "apikeys.fastapi"
"""The ASGI scope entry holding, per installed auth, what it authenticated."""


@dataclass(slots=True)
class Authenticated:
    """What one auth proved during one request."""

    verification: Verification
    ip: str | None

    @property
    def key(self) -> APIKey:
        return self.verification.key


def request_slots(scope: Scope) -> dict[Any, Authenticated | None]:
    """The per-request table of auths (installed: present; authenticated: set).

    A mutable dict in the scope survives middlewares that shallow-copy the scope.
    """
    slots: dict[Any, Authenticated | None] = scope.setdefault(SCOPE_KEY, {})
    return slots


def route_template(scope: Scope) -> str:
    """The matched route's path template (``/orders/{order_id}``), else the path."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) else str(scope.get("path", ""))


class UsageMiddleware:
    """Reports requests authenticated by ``auth`` and adds rate-limit headers.

    Args:
        app: The wrapped ASGI app.
        auth: The ``APIKeyAuth`` whose requests are reported.
    """

    def __init__(self, app: ASGIApp, *, auth: Any) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        slots = request_slots(scope)
        if self.auth in slots:  # an outer app installed the same auth: it reports
            await self.app(scope, receive, send)
            return
        slots[self.auth] = None
        status = 0  # until the response starts

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                done = slots.get(self.auth)
                if done is not None and done.verification.rate_limit is not None:
                    message = self._with_rate_limit(message, done.verification.rate_limit)
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            done = slots.get(self.auth)
            if done is not None:
                # No response started: the app raised (or the client went away).
                self._record(scope, done, status or 500)

    @staticmethod
    def _with_rate_limit(message: Message, limit: RateLimitStatus) -> Message:
        headers = list(message.get("headers", ()))
        present = {name.lower() for name, _ in headers}
        extra = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in rate_limit_headers(limit, None).items()
            if name.lower().encode("latin-1") not in present
        ]
        return {**message, "headers": headers + extra} if extra else message

    def _record(self, scope: Scope, done: Authenticated, status: int) -> None:
        try:
            self.auth.manager.record_request(
                done.key,
                method=scope["method"],
                route=route_template(scope),
                status=status,
                ip=done.ip,
            )
        except Exception:
            logger.exception("apikeys: could not record a request of key %s", done.key.id)
