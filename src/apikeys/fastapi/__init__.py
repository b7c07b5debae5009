"""FastAPI integration: protect routes with one dependency that knows scopes,
OpenAPI and RFC 9457 error responses.

::

    from fastapi import FastAPI, Security
    from apikeys.fastapi import APIKeyAuth, RequiredKey

    auth = APIKeyAuth(manager)              # AsyncKeyManager, or KeyManager (thread pool)
    app = FastAPI()
    auth.install(app)                       # problem+json errors, usage reporting

    @app.get("/orders")
    async def orders(key=Security(auth, scopes=["orders:read"])): ...

    @app.get("/me")
    async def me(key: RequiredKey): ...     # any valid key

The verbs every apikeys adapter shares: set-up (:class:`APIKeyAuth` and
:meth:`APIKeyAuth.install`), :func:`current_key` and :func:`require_key` (also
:meth:`APIKeyAuth.require_key`). ``Security(auth, scopes=[...])`` works anywhere a
dependency does; scopes of nested dependencies add up through FastAPI's
``SecurityScopes``. The key is read from ``Authorization: Bearer <key>`` or
``X-API-Key`` (configurable); a request carrying more than one credential never
authenticates. Needs the ``fastapi`` extra: ``pip install 'apikeys[fastapi]'``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any, Final

from apikeys import _http
from apikeys._async import AsyncKeyManager
from apikeys._hooks import Verification
from apikeys._manager import KeyManager
from apikeys._models import APIKey
from apikeys._policy import required_scopes
from apikeys._request import RequestGuard, RequestMemo, refusal, route_scopes
from apikeys.errors import APIKeyError, ConfigurationError

# Submodule imports keep this block sorted alike wherever ruff places ``fastapi``.
try:
    from fastapi.applications import FastAPI
    from fastapi.concurrency import run_in_threadpool
    from fastapi.exceptions import HTTPException
    from fastapi.openapi.models import APIKey as APIKeySchemeModel
    from fastapi.openapi.models import APIKeyIn
    from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
    from fastapi.openapi.models import SecurityBase as SecuritySchemeModel
    from fastapi.param_functions import Security
    from fastapi.requests import Request
    from fastapi.responses import JSONResponse
    from fastapi.security import SecurityScopes
    from fastapi.security.base import SecurityBase
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ConfigurationError(
        "apikeys.fastapi needs FastAPI: pip install 'apikeys[fastapi]'"
    ) from exc

from apikeys.asgi import APIKeyMiddleware, ScopeRequest, memos, verify_call
from apikeys.asgi import current_key as _scope_key

__all__ = [
    "PROBLEM_RESPONSES",
    "APIKeyAuth",
    "APIKeyHTTPException",
    "APIKeyRefused",
    "RequiredKey",
    "current_key",
    "installed_auth",
    "installed_key",
    "require_key",
]

logger = logging.getLogger("apikeys")

_AnyManager = KeyManager | AsyncKeyManager

_PROBLEM_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
    },
    "required": ["type", "title", "status"],
}


def _problem_doc(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {_http.PROBLEM_CONTENT_TYPE: {"schema": _PROBLEM_SCHEMA}},
    }


PROBLEM_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    401: _problem_doc("No API key, or one that is malformed, unknown, expired or revoked."),
    403: _problem_doc("The key lacks a required scope, or is used from a refused address."),
    429: _problem_doc("Rate limit or quota exceeded; see Retry-After."),
    503: _problem_doc("The key store is unavailable; the request fails closed."),
}
"""OpenAPI ``responses`` of the problem answers: ``APIRouter(responses=PROBLEM_RESPONSES)``."""


class APIKeyRefused(HTTPException):
    """What the dependency raises when a request is refused: an ``HTTPException``
    carrying the RFC 9457 problem of :attr:`error` (every apikeys adapter's
    refusal exception is an ``APIKeyRefused`` with ``error`` and ``problem``).

    With :meth:`APIKeyAuth.install` it is answered as ``application/problem+json``;
    without, FastAPI's default handler still answers with the right status and
    headers (the problem nested under ``detail``).

    Args:
        error: The refusal.
        settings: The auth's settings.
        request: The refused request (for the log line of a 5xx).

    Attributes:
        error: The apikeys error (its ``code`` tells the reason; never sent for 401s).
        problem: ``(status, headers, body)`` from the request layer.
    """

    def __init__(
        self, error: APIKeyError, settings: _http.HTTPSettings, request: Request | None = None
    ) -> None:
        self.problem = refusal(error, settings, ScopeRequest(request.scope) if request else None)
        status, headers, body = self.problem
        headers = {k: v for k, v in headers.items() if k != "Content-Type"}
        super().__init__(status_code=status, detail=body, headers=headers)
        self.error = error


APIKeyHTTPException = APIKeyRefused
"""The former name of :class:`APIKeyRefused`."""


class _DocumentedScheme(SecurityBase):
    """Declares where the key may be sent, for OpenAPI only; reading it is the
    auth's job (it must see every header line, which the stock schemes don't)."""

    def __init__(self, model: SecuritySchemeModel, scheme_name: str) -> None:
        self.model = model
        self.scheme_name = scheme_name

    async def __call__(self) -> None:
        return None


def _schemes(settings: _http.HTTPSettings, scheme_name: str) -> list[_DocumentedScheme]:
    schemes = []
    header = settings.authorization_header
    if header is not None and header.lower() == "authorization":
        schemes.append(
            _DocumentedScheme(
                HTTPBearerModel(description="An API key: `Authorization: Bearer <key>`."),
                f"{scheme_name}Bearer",
            )
        )
    if settings.api_key_header is not None:
        schemes.append(
            _DocumentedScheme(
                APIKeySchemeModel.model_validate(
                    {
                        "in": APIKeyIn.header,
                        "name": settings.api_key_header,
                        "description": f"An API key in the `{settings.api_key_header}` header.",
                    }
                ),
                f"{scheme_name}Header",
            )
        )
    if settings.query_param is not None:
        schemes.append(
            _DocumentedScheme(
                APIKeySchemeModel.model_validate(
                    {
                        "in": APIKeyIn.query,
                        "name": settings.query_param,
                        "description": f"An API key in the `{settings.query_param}` query "
                        "parameter.",
                    }
                ),
                f"{scheme_name}Query",
            )
        )
    return schemes


def _dependency_signature(schemes: Sequence[_DocumentedScheme]) -> inspect.Signature:
    """``(request, security_scopes, <one parameter per documented scheme>)``: the
    scheme parameters make FastAPI list the schemes on each protected operation."""
    positional = inspect.Parameter.POSITIONAL_OR_KEYWORD
    return inspect.Signature(
        [
            inspect.Parameter("request", positional, annotation=Request),
            inspect.Parameter("security_scopes", positional, annotation=SecurityScopes),
            *(
                inspect.Parameter(
                    f"_apikeys_scheme_{i}",
                    inspect.Parameter.KEYWORD_ONLY,
                    default=Security(scheme),
                )
                for i, scheme in enumerate(schemes)
            ),
        ],
        return_annotation=APIKey,
    )


def _openapi_identity(settings: _http.HTTPSettings, scheme_name: str) -> tuple[Any, ...]:
    return tuple(
        (scheme.scheme_name, scheme.model.model_dump())
        for scheme in _schemes(settings, scheme_name)
    )


_DEFAULT_SETTINGS: Final = _http.HTTPSettings()
_DEFAULT_OPENAPI: Final = _openapi_identity(_DEFAULT_SETTINGS, "APIKey")


class APIKeyAuth:
    """The FastAPI dependency that authenticates and authorizes a request's key.

    Use the instance itself as the dependency: ``Security(auth, scopes=[...])``
    (or :meth:`require_key`). It returns the :class:`~apikeys.APIKey`, sets
    ``request.state.api_key``, and raises :class:`APIKeyRefused` (401, 403,
    429, 503) otherwise. A request is authenticated once, however many
    dependencies ask: later ones only check their extra scopes.

    Args:
        manager: An :class:`~apikeys.AsyncKeyManager` (awaited) or a
            :class:`~apikeys.KeyManager` (run in Starlette's thread pool).
        authorization_header: Carries ``Bearer <key>``; ``None`` disables it.
        api_key_header: Carries the bare key; ``None`` disables it.
        query_param: A query parameter carrying the key. Off by default, and best
            left off: URLs end up in access logs, proxies and browser history.
        trusted_proxies: Addresses or networks of your reverse proxies. Only when
            the connection comes from one of them is ``X-Forwarded-For`` believed
            (walked from the right past trusted hops). Empty: the peer is the client.
        realm: The ``realm`` of ``WWW-Authenticate`` challenges.
        scheme_name: Prefix of the OpenAPI security scheme names
            (``<name>Bearer``, ``<name>Header``, ``<name>Query``).
        settings: All of the above (and ``require_https``) as one
            :class:`~apikeys.http.HTTPSettings` (``Settings(...).http``); when
            given, the individual options are ignored.

    Raises:
        ConfigurationError: not a manager, no place to read the key from, or an
            invalid trusted proxy.
    """

    def __init__(
        self,
        manager: _AnyManager,
        *,
        authorization_header: str | None = "Authorization",
        api_key_header: str | None = "X-API-Key",
        query_param: str | None = None,
        trusted_proxies: Sequence[str] = (),
        realm: str = "api",
        scheme_name: str = "APIKey",
        settings: _http.HTTPSettings | None = None,
    ) -> None:
        if not isinstance(manager, (KeyManager, AsyncKeyManager)):
            raise ConfigurationError(
                f"APIKeyAuth needs a KeyManager or an AsyncKeyManager, not {manager!r}"
            )
        self.manager = manager
        self.settings = settings or _http.HTTPSettings(
            authorization_header=authorization_header,
            api_key_header=api_key_header,
            query_param=query_param,
            trusted_proxies=tuple(trusted_proxies),
            realm=realm,
        )
        self.guard = RequestGuard(manager, self.settings)
        self._verify = verify_call(self.guard)
        self.scheme_name = scheme_name
        self._warned_not_installed = False
        self._default_openapi = _openapi_identity(self.settings, scheme_name) == _DEFAULT_OPENAPI
        self.__signature__ = _dependency_signature(_schemes(self.settings, scheme_name))

    def __repr__(self) -> str:
        return f"APIKeyAuth({self.manager!r})"

    async def __call__(
        self, request: Request, security_scopes: SecurityScopes, **_schemes: None
    ) -> APIKey:
        """The dependency: the request's key, authorized for every scope required
        by this dependency and the ones around it.

        Args:
            request: The incoming request.
            security_scopes: The scopes FastAPI accumulated from the dependants.

        Returns:
            The key's record.

        Raises:
            APIKeyRefused: the request is refused (401, 403, 429, 503).
        """
        return await self.authenticate(request, security_scopes.scopes)

    async def authenticate(self, request: Request, scopes: Sequence[str] = ()) -> APIKey:
        """Authenticate ``request`` and authorize ``scopes``, outside a dependency.

        Args:
            request: The incoming request.
            scopes: Scopes the key must be granted.

        Returns:
            The key's record (also in ``request.state.api_key``).

        Raises:
            APIKeyRefused: the request is refused (401, 403, 429, 503).
        """
        try:
            required = route_scopes(scopes)
            table = memos(request.scope)
            memo = table.get(self)
            if memo is None:
                self._warn_not_installed()
                memo = table[self] = RequestMemo()
            verification = await self.guard.aauthenticate(
                memo, ScopeRequest(request.scope), required, verify=self._verify
            )
        except APIKeyError as exc:
            raise self._refuse(exc, request) from exc
        request.state.api_key = verification.key
        return verification.key

    def require_key(self, *scopes: str) -> Any:
        """A dependency requiring a key granted every one of ``scopes``.

        Use it as a parameter default (``key: APIKey = auth.require_key("a:read")``)
        or in ``dependencies=[...]`` of a route or router. Same as
        ``Security(auth, scopes=[...])``, with the scopes checked at once.

        Raises:
            InvalidArgument: a scope is not a concrete ``resource:action``.
        """
        return Security(self, scopes=list(required_scopes(scopes)))

    def install(self, app: FastAPI) -> None:
        """Set ``app`` up: answer apikeys errors as ``application/problem+json``,
        and after each response to a request authenticated here, report it to the
        manager (``record_request``) and add the key's rate-limit headers.

        Call it before the app starts, on the app holding the routes (mounted
        sub-apps are covered by their parent's middleware, but answer errors with
        their own handlers: install there too). Installing twice is harmless.

        Args:
            app: The application.
        """
        installed: list[APIKeyAuth] = getattr(app.state, "apikeys_auths", [])
        if self in installed:
            return
        app.state.apikeys_auths = [*installed, self]
        app.add_middleware(APIKeyMiddleware, guard=self.guard, owner=self)
        app.add_exception_handler(APIKeyRefused, _answer_http_exception)
        if not installed:
            app.add_exception_handler(APIKeyError, functools.partial(_answer_error, self))

    def problem_response(self, error: APIKeyError) -> JSONResponse:
        """The ``application/problem+json`` response for ``error``.

        Args:
            error: Any apikeys error (its status decides the response's).
        """
        return _problem_response(APIKeyRefused(error, self.settings))

    def _refuse(self, error: APIKeyError, request: Request) -> APIKeyRefused:
        return APIKeyRefused(error, self.settings, request)

    def _warn_not_installed(self) -> None:
        if not self._warned_not_installed:
            self._warned_not_installed = True
            logger.warning(
                "apikeys: %r protects a route of an app without auth.install(app): errors "
                "are not problem+json and requests are not reported for usage tracking",
                self,
            )

    # --- test helpers -------------------------------------------------------------------

    def headers(self, plaintext: str) -> dict[str, str]:
        """Headers carrying ``plaintext`` the way this auth reads it (for tests and
        clients): ``Authorization: Bearer …`` when enabled, else the API-key header.

        Raises:
            ConfigurationError: the key is read from the query string only.
        """
        if self.settings.authorization_header is not None:
            return {self.settings.authorization_header: f"Bearer {plaintext}"}
        if self.settings.api_key_header is not None:
            return {self.settings.api_key_header: plaintext}
        raise ConfigurationError("this APIKeyAuth reads keys from the query string only")

    def issue_headers(self, *, owner: str = "test-owner", **create_args: Any) -> dict[str, str]:
        """Issue a key on the manager and return headers carrying it (for tests).

        With an :class:`~apikeys.AsyncKeyManager`, ``create`` runs in a fresh event
        loop, so call this from synchronous tests only (``TestClient``); in async
        tests, ``await`` :meth:`aissue_headers`.

        Args:
            owner: The key's owner.
            **create_args: The other arguments of ``create`` (``scopes=[...]``...).

        Returns:
            Headers for a test client.

        Raises:
            ConfigurationError: an async manager, called while an event loop runs.
        """
        manager = self.manager
        if isinstance(manager, KeyManager):
            return self.headers(manager.create(owner=owner, **create_args).plaintext)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            issued = asyncio.run(manager.create(owner=owner, **create_args))
            return self.headers(issued.plaintext)
        raise ConfigurationError("an event loop is running: await auth.aissue_headers(...)")

    async def aissue_headers(
        self, *, owner: str = "test-owner", **create_args: Any
    ) -> dict[str, str]:
        """Issue a key on the manager and return headers carrying it (async tests).

        Args:
            owner: The key's owner.
            **create_args: The other arguments of ``create``.

        Returns:
            Headers for a test client.
        """
        manager = self.manager
        if isinstance(manager, AsyncKeyManager):
            issued = await manager.create(owner=owner, **create_args)
        else:
            issued = await run_in_threadpool(manager.create, owner=owner, **create_args)
        return self.headers(issued.plaintext)

    @contextmanager
    def use_manager(self, manager: _AnyManager) -> Iterator[_AnyManager]:
        """Within the block, this auth verifies keys with ``manager`` instead of
        its own: for tests of an app whose ``auth`` is built at import time
        (``with auth.use_manager(key_manager), TestClient(app) as client: ...``).

        Covers the dependency, the middleware of :meth:`install` (usage
        reporting, rate-limit headers) and the test helpers. The auth is shared
        by the whole process, so do not swap managers while another thread serves
        requests through it.

        Args:
            manager: The manager to use, e.g. the ``key_manager`` fixture.

        Yields:
            ``manager``.

        Raises:
            ConfigurationError: not a manager.
        """
        if not isinstance(manager, (KeyManager, AsyncKeyManager)):
            raise ConfigurationError(
                f"use_manager needs a KeyManager or an AsyncKeyManager, not {manager!r}"
            )
        saved = self.manager
        self._set_manager(manager)
        try:
            yield manager
        finally:
            self._set_manager(saved)

    def _set_manager(self, manager: _AnyManager) -> None:
        # The guard is shared with the installed middleware: both see the swap.
        self.manager = self.guard.manager = manager
        self._verify = verify_call(self.guard)

    @contextmanager
    def override(self, app: FastAPI, key: APIKey) -> Iterator[APIKey]:
        """Within the block, requests to ``app`` act as ``key`` without sending one.

        Scopes are still checked (a missing one answers 403), ``request.state``
        carries the key, and requests are still reported. Overrides this auth and
        the module-level :data:`RequiredKey`/:func:`require_key` dependency.

        Args:
            app: The application under test.
            key: The record to act as (e.g. ``manager.create(...).key``).

        Yields:
            ``key``.
        """

        async def act_as(request: Request, security_scopes: SecurityScopes) -> APIKey:
            try:
                self.manager.authorize(key, *security_scopes.scopes)
            except APIKeyError as exc:
                raise self._refuse(exc, request) from exc
            memos(request.scope).setdefault(self, RequestMemo()).verification = Verification(key)
            request.state.api_key = key
            return key

        overrides = app.dependency_overrides
        deps: tuple[Any, ...] = (self, installed_key)
        saved = {dep: overrides[dep] for dep in deps if dep in overrides}
        overrides[self] = act_as
        overrides[installed_key] = act_as
        try:
            yield key
        finally:
            for dep in deps:
                overrides.pop(dep, None)
            overrides.update(saved)


def _problem_response(exc: HTTPException) -> JSONResponse:
    return JSONResponse(
        exc.detail,
        status_code=exc.status_code,
        headers=exc.headers,
        media_type=_http.PROBLEM_CONTENT_TYPE,
    )


async def _answer_http_exception(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, APIKeyRefused):  # pragma: no cover - registered for it only
        raise exc
    return _problem_response(exc)


async def _answer_error(auth: APIKeyAuth, request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, APIKeyError):  # pragma: no cover - registered for it only
        raise exc
    return _problem_response(auth._refuse(exc, request))


# --- the module-level verbs: the auth installed on the app ---------------------------------


def installed_auth(request: Request) -> APIKeyAuth:
    """The :class:`APIKeyAuth` installed on the app serving ``request``.

    Raises:
        ConfigurationError: none or several are installed.
    """
    auths = [
        auth
        for auth, memo in memos(request.scope).items()
        if isinstance(auth, APIKeyAuth) and memo.installed
    ]
    if len(auths) != 1:
        raise ConfigurationError(
            "RequiredKey/require_key need exactly one APIKeyAuth installed with "
            f"auth.install(app); found {len(auths)}: use Security(auth, ...) directly"
        )
    return auths[0]


class _InstalledKey:
    """The dependency behind :data:`RequiredKey` and :func:`require_key`."""

    def __init__(self) -> None:
        self.__signature__ = _dependency_signature(_schemes(_DEFAULT_SETTINGS, "APIKey"))

    def __repr__(self) -> str:
        return "apikeys.fastapi.installed_key"

    async def __call__(
        self, request: Request, security_scopes: SecurityScopes, **_schemes: None
    ) -> APIKey:
        try:
            auth = installed_auth(request)
            if not auth._default_openapi:
                raise ConfigurationError(
                    "RequiredKey/require_key document the default headers in OpenAPI; "
                    "with custom header names use Security(auth, ...) or your own "
                    "Annotated[APIKey, Security(auth)] alias"
                )
        except ConfigurationError as exc:
            raise APIKeyRefused(exc, _DEFAULT_SETTINGS, request) from exc
        return await auth.authenticate(request, security_scopes.scopes)


installed_key: Final = _InstalledKey()
"""The dependency resolving to the key of the :class:`APIKeyAuth` installed on the app."""

RequiredKey = Annotated[APIKey, Security(installed_key)]
"""A handler parameter annotation: any valid key, e.g. ``async def me(key: RequiredKey)``.

Uses the one :class:`APIKeyAuth` installed on the app, with the default headers.
Scopes of enclosing ``Security(..., scopes=[...])`` dependencies still apply.
"""


def require_key(*scopes: str) -> Any:
    """A dependency requiring a key granted every one of ``scopes``, from the
    :class:`APIKeyAuth` installed on the app (see :meth:`APIKeyAuth.require_key`).

    Example::

        @app.post("/orders", dependencies=[require_key("orders:write")])
        async def create_order(): ...

    Raises:
        InvalidArgument: a scope is not a concrete ``resource:action``.
    """
    return Security(installed_key, scopes=list(required_scopes(scopes)))


def current_key(request: Request) -> APIKey | None:
    """The key this request already authenticated with, or ``None`` (no apikeys
    dependency has run for it); no I/O. For middleware and logging; protect routes
    with a dependency, not with this.

    Args:
        request: The request.
    """
    return _scope_key(request)
