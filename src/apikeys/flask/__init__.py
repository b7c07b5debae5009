"""Flask integration: an extension, a decorator and the app-factory pattern.

::

    from apikeys.flask import APIKeys, current_key, require_key

    ext = APIKeys(manager)              # or APIKeys(app, manager); or APIKeys() + config
    ext.init_app(app)                   # app-factory friendly

    @app.get("/orders")
    @require_key("orders:read")
    def orders():
        return {"owner": current_key.owner}

    ext.protect_blueprint(admin_bp, "admin:*")   # every route of a blueprint

The verbs every apikeys adapter shares: set-up (:class:`APIKeys`,
:meth:`APIKeys.init_app`), :data:`current_key` and :func:`require_key`. The key is
read from ``Authorization: Bearer <key>`` or ``X-API-Key`` (configurable with
``APIKEYS_*`` config keys); a request carrying more than one credential never
authenticates. Refusals are ``application/problem+json`` (RFC 9457): 401, 403,
429 and 503 (the store is down: fail closed). ``flask apikeys create|list|revoke|
rotate`` manage keys from the app's CLI. Async views (``async def``) work too
(Flask's ``async`` extra). Needs the ``flask`` extra: ``pip install 'apikeys[flask]'``.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar, cast, overload

from apikeys import _http
from apikeys._async import AsyncKeyManager
from apikeys.flask._config import FlaskSettings, build_manager, load_settings
from apikeys._hooks import Verification
from apikeys._manager import KeyManager
from apikeys._models import APIKey
from apikeys._policy import required_scopes
from apikeys.errors import (
    APIKeyError,
    AuthenticationError,
    ConfigurationError,
    IPNotAllowed,
    RateLimited,
)

try:
    from flask import Blueprint, Flask, Response, current_app, has_request_context, request
    from werkzeug.exceptions import HTTPException
    from werkzeug.local import LocalProxy
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ConfigurationError("apikeys.flask needs Flask: pip install 'apikeys[flask]'") from exc

__all__ = [
    "APIKeyRefused",
    "APIKeys",
    "authenticate",
    "current_key",
    "get_current_key",
    "get_manager",
    "problem_response",
    "require_key",
]

logger = logging.getLogger("apikeys")

EXTENSION_NAME: Final = "apikeys"
"""The key of the extension's per-app state in ``app.extensions``."""

_REQUEST_STATE: Final = "apikeys.flask"

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(slots=True)
class _RequestState:
    """What apikeys learnt about one request (kept in its WSGI environ).

    A request is authenticated once however many layers ask (a protected
    blueprint, then a route's own scopes); later layers only check their scopes.
    """

    verification: Verification | None = None
    error: APIKeyError | None = None
    ip: str | None = None
    reported: bool = False
    manager: KeyManager | None = None


@dataclass(frozen=True, slots=True)
class _AppState:
    """One app's set-up: the extension, its manager and its validated config."""

    extension: APIKeys
    manager: KeyManager
    settings: FlaskSettings


class APIKeyRefused(HTTPException):
    """Raised when a request is refused: an ``HTTPException`` whose response is the
    RFC 9457 problem of :attr:`error` (401, 403, 429, 503).

    Flask answers it with that response. To answer refusals your own way,
    register a handler for this class: ``@app.errorhandler(APIKeyRefused)``
    (``error.response`` is the problem response, ``error.error`` the reason).

    Attributes:
        error: The apikeys error (its ``code`` tells the reason; never sent for 401s).
    """

    def __init__(self, error: APIKeyError, settings: _http.HTTPSettings) -> None:
        response = problem_response(error, settings)
        super().__init__(description=error.message, response=response)
        self.code = response.status_code
        self.error = error


class APIKeys:
    """The Flask extension: protects views with API keys from one manager.

    Create it with the app (``APIKeys(app, manager)``) or without, then call
    :meth:`init_app` (app factories; one extension may serve several apps). With
    no manager, each app builds its own from its config: ``APIKEYS_DATABASE_URL``
    (a store URL, see :func:`apikeys.storage.store_from_url`) and
    ``APIKEYS_PREFIX``. Other config keys, all optional:
    ``APIKEYS_AUTHORIZATION_HEADER`` (``"Authorization"``),
    ``APIKEYS_API_KEY_HEADER`` (``"X-API-Key"``), ``APIKEYS_QUERY_PARAM``
    (``None``, and best left so: URLs end up in logs), ``APIKEYS_TRUSTED_PROXIES``
    (reverse proxies whose ``X-Forwarded-For`` is believed), ``APIKEYS_REALM``,
    ``APIKEYS_MANAGER_OPTIONS`` (other :class:`~apikeys.KeyManager` arguments, for
    a manager built from config) and ``APIKEYS_DEFAULT_EXPIRY`` (lifetime of keys
    issued by ``flask apikeys create``).

    Args:
        app: The app to set up now, or the manager (``APIKeys(manager)``).
        manager: A :class:`~apikeys.KeyManager`; it wins over
            ``APIKEYS_DATABASE_URL``/``APIKEYS_PREFIX``/``APIKEYS_MANAGER_OPTIONS``.
        cli: Register the ``flask apikeys`` commands on each app's CLI.

    Raises:
        ConfigurationError: not a ``KeyManager`` (an ``AsyncKeyManager`` cannot
            serve Flask's views), or, when ``app`` is given, see :meth:`init_app`.
    """

    def __init__(
        self,
        app: Flask | KeyManager | None = None,
        manager: KeyManager | None = None,
        *,
        cli: bool = True,
    ) -> None:
        if not isinstance(app, Flask) and app is not None:
            if manager is not None:
                raise ConfigurationError("APIKeys(app, manager): the first argument is not an app")
            app, manager = None, app
        if manager is not None and not isinstance(manager, KeyManager):
            hint = (
                "; Flask views call the synchronous KeyManager (async views too)"
                if isinstance(manager, AsyncKeyManager)
                else ""
            )
            raise ConfigurationError(f"APIKeys needs a KeyManager, not {manager!r}{hint}")
        self.manager = manager
        """The manager given, or ``None`` (each app builds one from its config)."""
        self.cli = cli
        if app is not None:
            self.init_app(app)

    def __repr__(self) -> str:
        return f"APIKeys({self.manager!r})"

    def init_app(self, app: Flask) -> None:
        """Set ``app`` up: read its ``APIKEYS_*`` config, answer apikeys errors as
        ``application/problem+json``, and after each response to a key-authenticated
        request add the key's rate-limit headers and report the request to the
        manager (``record_request``: method, URL rule, status, client address).

        Initialising the same app twice with this extension is harmless.

        Args:
            app: The application.

        Raises:
            ConfigurationError: another ``APIKeys`` already set the app up, an
                invalid or unknown ``APIKEYS_*`` config key, or no manager and no
                ``APIKEYS_DATABASE_URL``/``APIKEYS_PREFIX`` to build one.
        """
        existing = app.extensions.get(EXTENSION_NAME)
        if isinstance(existing, _AppState):
            if existing.extension is self:
                return
            raise ConfigurationError("this app already has another APIKeys extension")
        settings = load_settings(app.config)
        manager = self.manager if self.manager is not None else build_manager(settings)
        app.extensions[EXTENSION_NAME] = _AppState(self, manager, settings)
        app.after_request(_after_request)
        app.teardown_request(_teardown_request)
        app.register_error_handler(APIKeyError, _answer_error)
        if self.cli:
            from apikeys.flask._cli import apikeys_cli

            app.cli.add_command(apikeys_cli)

    def protect_blueprint(self, blueprint: Blueprint | Flask, *scopes: str) -> None:
        """Require a key granted ``scopes`` on every route of ``blueprint`` (or of a
        whole app), in one line. Routes may ask more with :func:`require_key`.

        Requests Flask answers by itself (automatic ``OPTIONS``, e.g. CORS
        preflights, which carry no credentials) pass; a 404 outside the
        blueprint's routes is not the blueprint's.

        Args:
            blueprint: A blueprint (its nested blueprints are covered too) or an app.
            *scopes: Scopes every route requires (none: any valid key).

        Raises:
            InvalidArgument: a scope is not a concrete ``resource:action``.
        """
        required = required_scopes(scopes)

        def require_api_key() -> None:
            rule = request.url_rule
            if (
                request.method == "OPTIONS"
                and rule is not None
                and getattr(rule, "provide_automatic_options", False)
            ):
                return
            authenticate(*required)

        blueprint.before_request(require_api_key)


def _app_state(app: Flask | None = None) -> _AppState:
    target = app if app is not None else current_app
    state = target.extensions.get(EXTENSION_NAME)
    if not isinstance(state, _AppState):
        raise ConfigurationError(
            f"app {target.name!r} is not set up for apikeys: call APIKeys(...).init_app(app)"
        )
    return state


def _request_state() -> _RequestState:
    environ = request.environ
    state = environ.get(_REQUEST_STATE)
    if not isinstance(state, _RequestState):
        state = _RequestState()
        environ[_REQUEST_STATE] = state
    return state


def get_manager(app: Flask | None = None) -> KeyManager:
    """The manager of ``app`` (default: the current app).

    Raises:
        ConfigurationError: the app is not set up with :class:`APIKeys`.
    """
    return _app_state(app).manager


def authenticate(*scopes: str) -> APIKey:
    """Authenticate the current request (once) and authorize ``scopes``.

    What :func:`require_key` does before the view; call it inside a view for
    scopes known only there (``authenticate(f"projects:{action}")``).

    Args:
        *scopes: Scopes the key must be granted.

    Returns:
        The key's record (also :data:`current_key`).

    Raises:
        APIKeyRefused: the request is refused (401, 403, 429, 503).
        ConfigurationError: the app is not set up, or a scope is invalid.
    """
    app_state = _app_state()
    try:
        required = required_scopes(scopes)
    except APIKeyError as exc:
        raise ConfigurationError(f"a view requires an invalid scope: {exc}") from exc
    try:
        return _verify(app_state, required).key
    except APIKeyError as exc:
        raise APIKeyRefused(exc, app_state.settings.http) from exc


def _header(environ: dict[str, Any], name: str | None) -> list[str]:
    """Every value of header ``name``: a WSGI environ holds at most one, because the
    server joined repeated header lines with commas (``extract_key`` splits them
    again, so a second credential never slips through). A direct environ read is
    what ``request.headers.getlist`` returns, without its scan of the environ."""
    if name is None:
        return []
    key = "HTTP_" + name.upper().replace("-", "_")
    value = environ.get(key)
    return [] if value is None else [value]


def _verify(app_state: _AppState, required: tuple[str, ...]) -> Verification:
    current = _request_state()
    if current.verification is not None:
        app_state.manager.authorize(current.verification.key, *required)
        return current.verification
    if current.error is not None:
        raise current.error
    settings = app_state.settings.http
    environ = request.environ
    current.ip = settings.client_ip(
        environ.get("REMOTE_ADDR") or None,
        _header(environ, "X-Forwarded-For") if settings.trusted_proxies else (),
    )
    try:
        raw = settings.extract_key(
            _header(environ, settings.authorization_header),
            _header(environ, settings.api_key_header),
            request.args.getlist(settings.query_param) if settings.query_param else (),
        )
        verification = app_state.manager.authenticate(raw, scopes=required, ip=current.ip)
    except (AuthenticationError, IPNotAllowed) as exc:
        current.error = exc  # holds whatever scopes a later layer asks
        raise
    current.verification, current.manager = verification, app_state.manager
    return verification


@overload
def require_key(view: F, /) -> F: ...


@overload
def require_key(*scopes: str) -> Callable[[F], F]: ...


def require_key(*scopes: Any) -> Any:
    """Decorate a view to require a key granted every one of ``scopes``.

    ``@require_key`` (no scopes) accepts any valid key. Works on sync and async
    views; put it under the route decorator. The view then reads
    :data:`current_key`; a refused request never reaches it.

    Example::

        @app.post("/orders")
        @require_key("orders:write")
        def create_order(): ...

    Raises:
        InvalidArgument: a scope is not a concrete ``resource:action`` (at once,
            when the module is imported).
    """
    if len(scopes) == 1 and callable(scopes[0]):
        return _decorator(())(scopes[0])
    return _decorator(required_scopes(scopes))


def _decorator(required: tuple[str, ...]) -> Callable[[F], F]:
    def decorate(view: F) -> F:
        if inspect.iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                authenticate(*required)
                return await view(*args, **kwargs)

            return cast(F, async_wrapper)

        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            authenticate(*required)
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


def get_current_key() -> APIKey | None:
    """The key that authenticated the current request, or ``None`` (no request, or
    no :func:`require_key`/protected blueprint has authenticated it). For logging
    and after-request hooks; protect views with :func:`require_key`."""
    if not has_request_context():
        return None
    verification = _request_state().verification
    return verification.key if verification is not None else None


def _current_key() -> APIKey:
    key = get_current_key()
    if key is None:
        raise RuntimeError(
            "no API key authenticated this request: protect the view with @require_key "
            "(or use get_current_key(), which returns None)"
        )
    return key


current_key: APIKey = cast(APIKey, LocalProxy(_current_key))
"""The :class:`~apikeys.APIKey` of the current request, in a view protected by
:func:`require_key` or a protected blueprint. Elsewhere it is false
(``if current_key:``) and reading an attribute raises ``RuntimeError``."""


def problem_response(error: APIKeyError, settings: _http.HTTPSettings | None = None) -> Response:
    """The ``application/problem+json`` response for ``error`` (RFC 9457).

    401s carry ``WWW-Authenticate`` and the same body whatever the reason; 403s
    for scopes name the missing ones; 429s carry ``Retry-After`` and the
    rate-limit headers; a store failure is a 503 (logged).

    Args:
        error: Any apikeys error (its status decides the response's).
        settings: Header settings (default: the current app's, else the defaults).
    """
    if settings is None:
        state = current_app.extensions.get(EXTENSION_NAME) if current_app else None
        settings = state.settings.http if isinstance(state, _AppState) else _DEFAULT_HTTP
    status, headers, body = _http.problem(error, settings)
    if isinstance(error, RateLimited):
        headers.update(_http.rate_limit_headers(None, error))
    if status >= 500:
        logger.log(
            logging.WARNING if status == 503 else logging.ERROR,
            "apikeys: %s %s answered %d (%s): %s",
            request.method if has_request_context() else "-",
            request.path if has_request_context() else "-",
            status,
            error.code,
            error.message,
        )
    content_type = headers.pop("Content-Type", _http.PROBLEM_CONTENT_TYPE)
    return Response(json.dumps(body), status=status, headers=headers, content_type=content_type)


_DEFAULT_HTTP: Final = _http.HTTPSettings()


def _answer_error(error: APIKeyError) -> Response:
    """The app's handler of apikeys errors raised by views (``KeyNotFound`` → 404...)."""
    return problem_response(error)


def _route() -> str:
    rule = request.url_rule
    return rule.rule if rule is not None else request.path


def _report(current: _RequestState, status: int) -> None:
    verification, manager = current.verification, current.manager
    if verification is None or manager is None or current.reported:
        return
    current.reported = True
    try:
        manager.record_request(
            verification.key,
            method=request.method,
            route=_route(),
            status=status,
            ip=current.ip,
        )
    except Exception:
        logger.exception("apikeys: could not record a request of key %s", verification.key.id)


def _after_request(response: Response) -> Response:
    current = request.environ.get(_REQUEST_STATE)
    if not isinstance(current, _RequestState) or current.verification is None:
        return response
    if not current.reported:
        limit_headers = _http.rate_limit_headers(current.verification.rate_limit, None)
        for name, value in limit_headers.items():
            if name not in response.headers:
                response.headers[name] = value
    _report(current, response.status_code)
    return response


def _teardown_request(exc: BaseException | None) -> None:
    """Report a key-authenticated request that ended without a response (500)."""
    current = request.environ.get(_REQUEST_STATE)
    if isinstance(current, _RequestState) and not current.reported:
        _report(current, 500)
