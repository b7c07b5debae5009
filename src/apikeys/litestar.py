"""Litestar integration: a plugin, guards and a dependency.

::

    from litestar import Litestar, get
    from apikeys.litestar import APIKeyPlugin, RequiredKey, current_key, require_key

    keys = APIKeyPlugin(manager)           # AsyncKeyManager, or KeyManager (thread pool)

    @get("/orders", guards=[require_key("orders:read")])
    async def orders(api_key: RequiredKey) -> dict[str, str]:
        return {"owner": api_key.owner}

    app = Litestar([orders], plugins=[keys])

The verbs every apikeys adapter shares: set-up (:class:`APIKeyPlugin`),
:func:`current_key` and :func:`require_key` (a Litestar guard; also
:meth:`APIKeyPlugin.require_key`). The plugin adds the request layer's ASGI
middleware (usage reported once per request with the route template, rate-limit
headers), answers refusals and other apikeys errors as
``application/problem+json``, and provides the ``api_key`` dependency (the
request's key, authenticated on first use). Every decision is the request
layer's (:mod:`apikeys._request`); this module only translates. Needs the
``litestar`` extra: ``pip install 'apikeys[litestar]'``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any, cast

from apikeys import _http
from apikeys._async import AsyncKeyManager
from apikeys._manager import KeyManager
from apikeys._models import APIKey
from apikeys._policy import required_scopes
from apikeys._request import Problem, RequestGuard, refusal, route_scopes
from apikeys.errors import APIKeyError, ConfigurationError

try:
    from litestar.config.app import AppConfig
    from litestar.connection import ASGIConnection
    from litestar.di import Provide
    from litestar.exceptions import HTTPException
    from litestar.handlers.base import BaseRouteHandler
    from litestar.middleware import DefineMiddleware
    from litestar.plugins import InitPluginProtocol
    from litestar.response import Response
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ConfigurationError(
        "apikeys.litestar needs Litestar: pip install 'apikeys[litestar]'"
    ) from exc

from apikeys.asgi import APIKeyMiddleware, ScopeRequest, guard_for, memos, verify_call
from apikeys.asgi import current_key as _scope_key

try:
    from litestar.di import NamedDependency
except ImportError:  # pragma: no cover - Litestar before 2.23
    from litestar.params import Dependency

    RequiredKey = Annotated[APIKey, Dependency()]
else:
    RequiredKey = NamedDependency[APIKey]  # type: ignore[misc]
"""A handler parameter annotation for the ``api_key`` dependency: the request's key,
authenticated on first use (``async def me(api_key: RequiredKey)``); the name of
the parameter must be ``api_key``."""

__all__ = ["APIKeyPlugin", "APIKeyRefused", "RequiredKey", "current_key", "require_key"]

Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Coroutine[Any, Any, None]]


def _scope(connection: ASGIConnection[Any, Any, Any, Any]) -> dict[str, Any]:
    # Litestar types its scope as a TypedDict; it is the plain ASGI dict.
    return cast("dict[str, Any]", connection.scope)


class APIKeyRefused(HTTPException):
    """Raised when a request is refused: a Litestar ``HTTPException`` carrying the
    RFC 9457 problem of :attr:`error` (every apikeys adapter's refusal exception is
    an ``APIKeyRefused`` with ``error`` and ``problem``). The plugin answers it as
    ``application/problem+json``.

    Args:
        error: The refusal.
        settings: The plugin's settings.
        connection: The refused connection (for the log line of a 5xx).

    Attributes:
        error: The apikeys error (its ``code`` tells the reason; never sent for 401s).
        problem: ``(status, headers, body)`` from the request layer.
    """

    def __init__(
        self,
        error: APIKeyError,
        settings: _http.HTTPSettings,
        connection: ASGIConnection[Any, Any, Any, Any] | None = None,
    ) -> None:
        view = ScopeRequest(_scope(connection)) if connection is not None else None
        self.problem: Problem = refusal(error, settings, view)
        status, headers, body = self.problem
        super().__init__(
            detail=str(body["detail"]),
            status_code=status,
            headers={k: v for k, v in headers.items() if k != "Content-Type"},
        )
        self.error = error


class APIKeyPlugin(InitPluginProtocol):
    """The Litestar plugin: protects handlers with API keys from one manager.

    Args:
        manager: An :class:`~apikeys.AsyncKeyManager` (awaited) or a
            :class:`~apikeys.KeyManager` (run in a thread).
        settings: Where keys are read from, proxies, HTTPS rule, realm
            (:class:`~apikeys.http.HTTPSettings`; ``Settings(...).http``).

    Raises:
        ConfigurationError: not a manager.
    """

    def __init__(
        self,
        manager: KeyManager | AsyncKeyManager,
        *,
        settings: _http.HTTPSettings | None = None,
    ) -> None:
        self.guard: RequestGuard = guard_for(manager, settings)
        self.manager = manager
        self.settings = self.guard.settings
        self._verify = verify_call(self.guard)

    def __repr__(self) -> str:
        return f"APIKeyPlugin({self.manager!r})"

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        """Add the middleware, the problem+json handlers and the ``api_key``
        dependency to the app being built."""
        app_config.middleware.append(
            DefineMiddleware(
                cast(Any, APIKeyMiddleware),  # plain ASGI; Litestar types its scopes apart
                guard=self.guard,
                owner=self,
            )
        )
        app_config.exception_handlers[APIKeyRefused] = _answer_refused
        app_config.exception_handlers[APIKeyError] = self._answer_error
        app_config.dependencies["api_key"] = Provide(self._provide_key)
        return app_config

    async def authenticate(
        self, connection: ASGIConnection[Any, Any, Any, Any], *scopes: str
    ) -> APIKey:
        """Authenticate ``connection`` (once) and authorize ``scopes``.

        Returns:
            The key's record.

        Raises:
            APIKeyRefused: the request is refused (401, 403, 429, 503).
        """
        table = memos(_scope(connection))
        try:
            required = route_scopes(scopes)
            memo = table.get(self)
            if memo is None:
                raise ConfigurationError("the APIKeyPlugin's middleware does not wrap this route")
            verification = await self.guard.aauthenticate(
                memo, ScopeRequest(_scope(connection)), required, verify=self._verify
            )
        except APIKeyError as exc:
            raise APIKeyRefused(exc, self.settings, connection) from exc
        return verification.key

    def require_key(self, *scopes: str) -> Guard:
        """A Litestar guard requiring a key granted every one of ``scopes``.

        Raises:
            InvalidArgument: a scope is not a concrete ``resource:action``.
        """
        return _guard(lambda _: self, required_scopes(scopes))

    async def _provide_key(self, request: ASGIConnection[Any, Any, Any, Any]) -> APIKey:
        return await self.authenticate(request)

    def _answer_error(
        self, request: ASGIConnection[Any, Any, Any, Any], exc: Exception
    ) -> Response[Any]:
        if not isinstance(exc, APIKeyError):  # pragma: no cover - registered for it only
            raise exc
        return _response(APIKeyRefused(exc, self.settings, request).problem)


def _response(problem: Problem) -> Response[Any]:
    status, headers, body = problem
    media = headers.get("Content-Type", _http.PROBLEM_CONTENT_TYPE)
    rest = {k: v for k, v in headers.items() if k != "Content-Type"}
    return Response(content=body, status_code=status, headers=rest, media_type=media)


def _answer_refused(request: ASGIConnection[Any, Any, Any, Any], exc: Exception) -> Response[Any]:
    if not isinstance(exc, APIKeyRefused):  # pragma: no cover - registered for it only
        raise exc
    return _response(exc.problem)


def _installed(connection: ASGIConnection[Any, Any, Any, Any]) -> APIKeyPlugin:
    plugins = [p for p in memos(_scope(connection)) if isinstance(p, APIKeyPlugin)]
    if len(plugins) != 1:
        raise ConfigurationError(
            "apikeys.litestar.require_key needs exactly one APIKeyPlugin on the app; "
            f"found {len(plugins)}: use plugin.require_key(...)"
        )
    return plugins[0]


def require_key(*scopes: str) -> Guard:
    """A Litestar guard requiring a key granted every one of ``scopes``, from the
    one :class:`APIKeyPlugin` of the app (see :meth:`APIKeyPlugin.require_key`).

    Example::

        @post("/orders", guards=[require_key("orders:write")])
        async def create_order(api_key: APIKey) -> None: ...

    Raises:
        InvalidArgument: a scope is not a concrete ``resource:action``.
    """
    return _guard(_installed, required_scopes(scopes))


def _guard(
    plugin_of: Callable[[ASGIConnection[Any, Any, Any, Any]], APIKeyPlugin],
    required: tuple[str, ...],
) -> Guard:
    async def api_key_guard(
        connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
    ) -> None:
        await plugin_of(connection).authenticate(connection, *required)

    return api_key_guard


def current_key(connection: ASGIConnection[Any, Any, Any, Any]) -> APIKey | None:
    """The key this request already authenticated with, or ``None``; no I/O.

    Args:
        connection: The Litestar request (or any connection).
    """
    return _scope_key(_scope(connection))
