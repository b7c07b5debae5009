"""What the decorator, the mixin, the middleware and the DRF classes share: reading
the key from a Django request, authenticating it once per request, answering a
refusal as problem+json, and reporting the finished request.

A request's outcome is kept on the request, so however many layers ask (the
middleware's lazy ``request.api_key``, a decorator, DRF), the key is verified
once; later layers only check their extra scopes.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBase

from apikeys import _http
from apikeys._hooks import Verification
from apikeys._logsafe import log_safe
from apikeys._models import APIKey
from apikeys._policy import required_scopes
from apikeys.django._runtime import get_async_manager, get_manager, get_settings
from apikeys.errors import (
    APIKeyError,
    AuthenticationError,
    ConfigurationError,
    InvalidArgument,
    IPNotAllowed,
    RateLimited,
)

logger = logging.getLogger("apikeys")

_STATE = "_apikeys_state"

ScopeSpec = Sequence[str] | Mapping[str, Sequence[str]]
"""Required scopes: one list for every method, or a list per HTTP method (or DRF
action), with ``"*"`` for the others."""


@dataclass(slots=True)
class RequestState:
    """What apikeys learnt about one request.

    Attributes:
        done: Authentication was attempted.
        verification: The outcome when it succeeded.
        error: The refusal that holds whatever scopes are asked (401, or an
            address outside the allowlist), when it failed so.
        ip: The client address used.
        middleware: :class:`~apikeys.django.middleware.APIKeyMiddleware` wraps the
            request (it reports it; decorators need not).
        reported: The request was reported to the manager.
    """

    done: bool = False
    verification: Verification | None = None
    error: APIKeyError | None = None
    ip: str | None = None
    middleware: bool = False
    reported: bool = False


def django_request(request: Any) -> HttpRequest:
    """The Django request under a DRF ``Request`` (or ``request`` itself)."""
    if not isinstance(request, HttpRequest):
        inner = getattr(request, "_request", None)
        if isinstance(inner, HttpRequest):
            return inner
    return request  # type: ignore[no-any-return]


def state(request: HttpRequest) -> RequestState:
    """The :class:`RequestState` of ``request`` (created on first use)."""
    request = django_request(request)
    found = request.__dict__.get(_STATE)
    if found is None:
        found = RequestState()
        request.__dict__[_STATE] = found
    return found


def client_ip(request: HttpRequest, settings: _http.HTTPSettings) -> str | None:
    """The client address: ``REMOTE_ADDR``, or ``X-Forwarded-For`` from trusted proxies."""
    meta = request.META
    forwarded = meta.get("HTTP_X_FORWARDED_FOR")
    return settings.client_ip(
        meta.get("REMOTE_ADDR") or None,
        [forwarded] if forwarded is not None and settings.trusted_proxies else (),
    )


@functools.lru_cache(maxsize=16)
def _meta_name(header: str) -> str:
    return "HTTP_" + header.upper().replace("-", "_")


def header_values(request: HttpRequest, name: str | None) -> list[str]:
    """The values of header ``name`` in ``request`` (none when ``name`` is ``None``)."""
    if name is None:
        return []
    # WSGI servers and Django's ASGI handler join repeated headers with commas;
    # extract_key splits them again, so a repeat never slips through. (META, not
    # request.headers: that builds a dict of every header on first use.)
    value = request.META.get(_meta_name(name))
    return [] if value is None else [value]


def raw_key(request: HttpRequest, settings: _http.HTTPSettings) -> str:
    """The one key ``request`` carries.

    Raises:
        AuthenticationError: ``missing``, or ``malformed`` (several credentials, a
            non-Bearer authorization scheme).
    """
    return settings.extract_key(
        header_values(request, settings.authorization_header),
        header_values(request, settings.api_key_header),
        request.GET.getlist(settings.query_param) if settings.query_param else (),
    )


def scopes_for(
    spec: ScopeSpec | None, method: str | None, action: str | None = None
) -> tuple[str, ...]:
    """The scopes ``spec`` requires for a request.

    Args:
        spec: A list of scopes, or a mapping from an HTTP method (``"GET"``) or a
            DRF action (``"list"``) to scopes, ``"*"`` for the rest.
        method: The request's method.
        action: The DRF viewset action, when there is one.

    Raises:
        ConfigurationError: a scope is not a valid concrete scope.
    """
    if spec is None:
        return ()
    if isinstance(spec, str):
        spec = (spec,)
    if isinstance(spec, Mapping):
        chosen: Sequence[str] | None = None
        for name in (action, (method or "").upper(), "*"):
            if name and name in spec:
                chosen = spec[name]
                break
        spec = () if chosen is None else ((chosen,) if isinstance(chosen, str) else chosen)
    try:
        return required_scopes(spec)
    except InvalidArgument as exc:
        raise ConfigurationError(f"a view requires an invalid scope: {exc}") from exc


def _cacheable(error: APIKeyError) -> bool:
    """Whether a refusal holds whatever scopes are asked later in the request."""
    return isinstance(error, AuthenticationError | IPNotAllowed)


def _settle(current: RequestState, scopes: tuple[str, ...]) -> Verification | None:
    """A settled outcome: the verification authorized for ``scopes``, or raise."""
    if not current.done:
        return None
    if current.verification is None:
        if current.error is None:  # pragma: no cover - done implies one of them
            raise AuthenticationError("missing")
        raise current.error
    get_manager().authorize(current.verification.key, *scopes)
    return current.verification


def authenticate(request: HttpRequest, scopes: Sequence[str] = ()) -> Verification:
    """Authenticate ``request`` (once) and authorize ``scopes`` (sync manager).

    Raises:
        APIKeyError: the refusal (401, 403, 429, 503).
    """
    current = state(request)
    required = tuple(scopes)
    settled = _settle(current, required)
    if settled is not None:
        return settled
    settings = get_settings().http
    current.ip = client_ip(request, settings)
    try:
        raw = raw_key(request, settings)
        verification = get_manager().authenticate(raw, scopes=required, ip=current.ip)
    except APIKeyError as exc:
        if _cacheable(exc):
            current.done, current.error = True, exc
        raise
    current.done, current.verification = True, verification
    return verification


async def aauthenticate(request: HttpRequest, scopes: Sequence[str] = ()) -> Verification:
    """Authenticate ``request`` (once) and authorize ``scopes`` (async manager).

    Raises:
        APIKeyError: the refusal (401, 403, 429, 503).
    """
    current = state(request)
    required = tuple(scopes)
    settled = _settle(current, required)
    if settled is not None:
        return settled
    settings = get_settings().http
    current.ip = client_ip(request, settings)
    try:
        raw = raw_key(request, settings)
        verification = await get_async_manager().authenticate(raw, scopes=required, ip=current.ip)
    except APIKeyError as exc:
        if _cacheable(exc):
            current.done, current.error = True, exc
        raise
    current.done, current.verification = True, verification
    return verification


def current_key(request: HttpRequest) -> APIKey | None:
    """The key of ``request``, authenticating it if no layer has yet.

    ``None`` when the request carries no key or one that does not authenticate
    (401). Other refusals are raised: an address outside the key's allowlist
    (403), a rate limit (429), a store failure (503, fail closed).

    Raises:
        APIKeyError: a refusal other than 401.
    """
    try:
        return authenticate(request).key
    except AuthenticationError:
        return None


async def acurrent_key(request: HttpRequest) -> APIKey | None:
    """The awaitable :func:`current_key`, for async views.

    Raises:
        APIKeyError: a refusal other than 401.
    """
    try:
        return (await aauthenticate(request)).key
    except AuthenticationError:
        return None


def problem_response(error: APIKeyError, request: HttpRequest | None = None) -> HttpResponse:
    """The ``application/problem+json`` response for ``error`` (RFC 9457).

    401s carry ``WWW-Authenticate`` and the same body whatever the reason; 403s
    for scopes name the missing ones; 429s carry ``Retry-After`` and the
    rate-limit headers; a store failure is a 503.

    Args:
        error: Any apikeys error (its status decides the response's).
        request: The request refused, for the log line of server-side failures.
    """
    try:
        settings = get_settings().http
    except ConfigurationError:
        settings = _http.HTTPSettings()
    status, headers, body = _http.problem(error, settings)
    if isinstance(error, RateLimited):
        headers.update(_http.rate_limit_headers(None, error))
    if status >= 500:
        logger.log(
            logging.WARNING if status == 503 else logging.ERROR,
            "apikeys: %s %s answered %d (%s): %s",
            log_safe(getattr(request, "method", "-")),
            log_safe(getattr(request, "path", "-")),
            status,
            error.code,
            log_safe(error.message),
        )
    content_type = headers.pop("Content-Type", _http.PROBLEM_CONTENT_TYPE)
    response = HttpResponse(json.dumps(body), status=status, content_type=content_type)
    for name, value in headers.items():
        response[name] = value
    return response


def route(request: HttpRequest) -> str:
    """The matched URL pattern (``orders/<int:pk>/``), else the path."""
    match = getattr(request, "resolver_match", None)
    pattern = getattr(match, "route", None)
    return pattern if isinstance(pattern, str) and pattern else request.path_info


def finish(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    """After the response of a key-authenticated request: add the key's rate-limit
    headers and report the request to the manager (usage tracking). Once per request.

    Args:
        request: The request.
        response: Its response (returned, with headers added).
    """
    current = state(request)
    verification = current.verification
    if verification is None or current.reported:
        return response
    current.reported = True
    for name, value in _http.rate_limit_headers(verification.rate_limit, None).items():
        if not response.has_header(name):
            response[name] = value
    try:
        get_manager().record_request(
            verification.key,
            method=request.method or "GET",
            route=route(request),
            status=response.status_code,
            ip=current.ip,
        )
    except Exception:
        logger.exception("apikeys: could not record a request of key %s", verification.key.id)
    return response


def report_failure(request: HttpRequest) -> None:
    """Report a key-authenticated request whose view raised (status 500)."""
    current = state(request)
    if current.verification is not None and not current.reported:
        finish(request, HttpResponse(status=500))
