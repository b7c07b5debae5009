"""Generic ASGI integration, for any Starlette-based app: a pure ASGI middleware,
a decorator for endpoints, and :func:`current_key`.

::

    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import Route
    from apikeys.asgi import APIKeyMiddleware, current_key, require_key

    @require_key("orders:read")
    async def orders(request):
        return JSONResponse({"owner": current_key(request).owner})

    app = Starlette(
        routes=[Route("/orders", orders)],
        middleware=[Middleware(APIKeyMiddleware, manager=manager)],
    )

The verbs every apikeys adapter shares: set-up (:class:`APIKeyMiddleware`),
:func:`current_key` and :func:`require_key` (plus :func:`authenticate` inside an
endpoint). Every decision is the request layer's (:mod:`apikeys._request`); this
module only reads the ASGI scope and writes ASGI messages. The middleware
reports each key-authenticated request once (route template, status), adds the
key's rate-limit headers, and answers an :class:`~apikeys.errors.APIKeyError`
escaping an endpoint as ``application/problem+json``. Needs Starlette:
``pip install 'apikeys[asgi]'`` (FastAPI brings it).
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast
from urllib.parse import parse_qsl

from apikeys import _http, _request
from apikeys._async import AsyncKeyManager
from apikeys._hooks import Verification
from apikeys._manager import KeyManager
from apikeys._models import APIKey
from apikeys._request import RequestGuard, RequestMemo, route_scopes
from apikeys.errors import APIKeyError, ConfigurationError

try:
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import HTTPConnection, Request
    from starlette.responses import Response
    from starlette.types import ASGIApp, Message, Receive, Scope, Send
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ConfigurationError("apikeys.asgi needs Starlette: pip install 'apikeys[asgi]'") from exc

__all__ = [
    "APIKeyMiddleware",
    "ScopeRequest",
    "authenticate",
    "current_key",
    "problem_response",
    "require_key",
]

SCOPE_KEY = "apikeys"
"""The ASGI scope entry holding the request's memos, one per installed guard."""

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def memos(scope: Scope) -> dict[Any, RequestMemo]:
    """The request's memos, by owner (a guard, or an adapter's auth object).

    A mutable dict in the scope survives middlewares that shallow-copy the scope.
    """
    found: dict[Any, RequestMemo] = scope.setdefault(SCOPE_KEY, {})
    return found


class ScopeRequest:
    """A :class:`~apikeys._request.RequestView` over an ASGI ``http`` scope.

    Args:
        scope: The ASGI scope.
    """

    __slots__ = ("scope",)

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    @property
    def method(self) -> str:
        return str(self.scope.get("method", "GET"))

    @property
    def path(self) -> str:
        return str(self.scope.get("path", ""))

    @property
    def scheme(self) -> str:
        return str(self.scope.get("scheme", "http"))

    @property
    def peer(self) -> str | None:
        client = self.scope.get("client")
        return str(client[0]) if client else None

    def header(self, name: str) -> list[str]:
        wanted = name.lower().encode("latin-1")
        return [
            v.decode("latin-1") for k, v in self.scope.get("headers", ()) if k.lower() == wanted
        ]

    def query(self, name: str) -> list[str]:
        text = self.scope.get("query_string", b"").decode("latin-1")
        return [value for key, value in parse_qsl(text, keep_blank_values=True) if key == name]


def route_template(scope: Scope) -> str:
    """The matched route's path template (Starlette's ``scope["route"]``,
    Litestar's ``scope["path_template"]``), else the path."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not isinstance(template, str):
        template = scope.get("path_template")
    return template if isinstance(template, str) else str(scope.get("path", ""))


def guard_for(
    manager: KeyManager | AsyncKeyManager, settings: _http.HTTPSettings | None
) -> RequestGuard:
    """A :class:`~apikeys._request.RequestGuard` for ``manager``.

    Raises:
        ConfigurationError: not a manager.
    """
    if not isinstance(manager, KeyManager | AsyncKeyManager):
        raise ConfigurationError(f"needs a KeyManager or an AsyncKeyManager, not {manager!r}")
    return RequestGuard(manager, settings if settings is not None else _http.HTTPSettings())


def verify_call(guard: RequestGuard) -> Callable[..., Awaitable[Verification]]:
    """The awaitable ``authenticate`` of ``guard``'s manager (a ``KeyManager`` runs
    in Starlette's thread pool)."""
    manager = guard.manager
    if isinstance(manager, AsyncKeyManager):
        return manager.authenticate
    sync = manager.authenticate

    async def in_thread(raw: str, **options: Any) -> Verification:
        return await run_in_threadpool(sync, raw, **options)

    return in_thread


def problem_bytes(
    problem: tuple[int, dict[str, str], dict[str, Any]],
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """A problem as ASGI status, raw headers and body."""
    status, headers, body = problem
    data = json.dumps(body).encode()
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw.append((b"content-length", str(len(data)).encode()))
    return status, raw, data


class APIKeyMiddleware:
    """Pure ASGI middleware: per request, a memo for :func:`require_key`; after the
    response of a key-authenticated request, the rate-limit headers and one usage
    report; an ``APIKeyError`` escaping the app answered as problem+json.

    Args:
        app: The wrapped ASGI app.
        manager: A :class:`~apikeys.KeyManager` (run in the thread pool) or an
            :class:`~apikeys.AsyncKeyManager`.
        settings: Where keys are read from, proxies, HTTPS rule, realm
            (:class:`~apikeys.http.HTTPSettings`; ``Settings(...).http``).
        owner: Internal: the object the memo is filed under (adapters built on
            this middleware pass theirs).

    Raises:
        ConfigurationError: not a manager.
    """

    def __init__(
        self,
        app: ASGIApp,
        manager: KeyManager | AsyncKeyManager | None = None,
        *,
        settings: _http.HTTPSettings | None = None,
        guard: RequestGuard | None = None,
        owner: Any = None,
    ) -> None:
        self.app = app
        if guard is None:
            guard = guard_for(cast(Any, manager), settings)
        self.guard = guard
        self.owner = owner if owner is not None else guard

    def __repr__(self) -> str:
        return f"APIKeyMiddleware({self.guard.manager!r})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        table = memos(scope)
        if self.owner in table:  # an outer app installed the same guard: it reports
            await self.app(scope, receive, send)
            return
        memo = table[self.owner] = RequestMemo(installed=True)
        guard = self.guard
        status = 0  # until the response starts

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                extra = guard.response_headers(memo)
                if extra:
                    message = _with_headers(message, extra)
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        except APIKeyError as exc:
            if status:
                raise
            status, headers, body = problem_bytes(guard.refusal(exc, ScopeRequest(scope)))
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        finally:
            # No response started: the app raised (or the client went away).
            guard.finish(
                memo, str(scope.get("method", "GET")), route_template(scope), status or 500
            )


def _with_headers(message: Message, extra: dict[str, str]) -> Message:
    headers = list(message.get("headers", ()))
    present = {name.lower() for name, _ in headers}
    added = [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in extra.items()
        if name.lower().encode("latin-1") not in present
    ]
    return {**message, "headers": headers + added} if added else message


# --- the verbs ------------------------------------------------------------------------------


def _installed(scope: Scope) -> tuple[RequestGuard, RequestMemo]:
    guards = [
        (owner, memo) for owner, memo in memos(scope).items() if isinstance(owner, RequestGuard)
    ]
    if len(guards) != 1:
        raise ConfigurationError(
            f"apikeys.asgi needs exactly one APIKeyMiddleware around the app; found {len(guards)}"
        )
    return guards[0]


async def authenticate(request: HTTPConnection, *scopes: str) -> APIKey:
    """Authenticate ``request`` (once) and authorize ``scopes``, inside an endpoint.

    Args:
        request: The Starlette request (or websocket connection).
        *scopes: Scopes the key must be granted.

    Returns:
        The key's record.

    Raises:
        APIKeyError: the refusal; :class:`APIKeyMiddleware` answers it as
            problem+json (401, 403, 429, 503).
        ConfigurationError: no (or several) :class:`APIKeyMiddleware`, or an
            invalid scope.
    """
    guard, memo = _installed(request.scope)
    required = route_scopes(scopes)
    verification = await guard.aauthenticate(
        memo, ScopeRequest(request.scope), required, verify=verify_call(guard)
    )
    return verification.key


def require_key(*scopes: str) -> Callable[[Endpoint], Endpoint]:
    """Decorate a Starlette endpoint (``async def endpoint(request)``, or a sync
    one with a :class:`~apikeys.KeyManager`) to require a key granted ``scopes``.

    A refused request never reaches the endpoint: it is answered as problem+json.

    Raises:
        InvalidArgument: a scope is not a concrete ``resource:action``.
    """
    from apikeys._policy import required_scopes

    required = required_scopes(scopes)

    def decorate(endpoint: Endpoint) -> Endpoint:
        if inspect.iscoroutinefunction(endpoint):

            @functools.wraps(endpoint)
            async def protected(request: Request, *args: Any, **kwargs: Any) -> Any:
                try:
                    await authenticate(request, *required)
                except APIKeyError as exc:
                    return problem_response(exc, request)
                return await endpoint(request, *args, **kwargs)

            return cast(Endpoint, protected)

        @functools.wraps(endpoint)
        def sync_protected(request: Request, *args: Any, **kwargs: Any) -> Any:
            try:
                guard, memo = _installed(request.scope)
                guard.authenticate(memo, ScopeRequest(request.scope), required)
            except APIKeyError as exc:
                return problem_response(exc, request)
            return endpoint(request, *args, **kwargs)

        return cast(Endpoint, sync_protected)

    return decorate


def current_key(request: HTTPConnection | Scope) -> APIKey | None:
    """The key this request already authenticated with, or ``None``; no I/O.

    Args:
        request: A Starlette request, or an ASGI scope.
    """
    scope = request.scope if isinstance(request, HTTPConnection) else request
    table: dict[Any, RequestMemo] = scope.get(SCOPE_KEY, {})
    for memo in table.values():
        if memo.verification is not None:
            return memo.verification.key
    return None


def problem_response(error: APIKeyError, request: HTTPConnection | None = None) -> Response:
    """The ``application/problem+json`` response for ``error`` (RFC 9457).

    Args:
        error: Any apikeys error (its status decides the response's).
        request: The refused request: its installed settings, and the 5xx log line.
    """
    scope = request.scope if request is not None else None
    guards = [o for o in memos(scope) if isinstance(o, RequestGuard)] if scope else []
    settings = guards[0].settings if guards else _http.HTTPSettings()
    status, headers, body = _request.refusal(
        error, settings, ScopeRequest(scope) if scope else None
    )
    media = headers.pop("Content-Type", _http.PROBLEM_CONTENT_TYPE)
    return Response(json.dumps(body), status_code=status, headers=headers, media_type=media)
