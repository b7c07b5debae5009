"""The Django side of the request layer: a Django request as the layer's
:class:`~apikeys._request.RequestView`, its memo kept on the request, and the
layer's answers as Django responses. The decorator, the mixin, the middleware and
the DRF classes all go through here; every decision is the layer's.

A request's outcome is kept on the request, so however many layers ask (the
middleware's lazy ``request.api_key``, a decorator, DRF), the key is verified
once; later layers only check their extra scopes.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBase

from apikeys import _http
from apikeys._hooks import Verification
from apikeys._models import APIKey
from apikeys._request import Problem, RequestGuard, RequestMemo, refusal, route_scopes
from apikeys.django._runtime import get_async_manager, get_manager, get_settings
from apikeys.errors import APIKeyError, AuthenticationError, ConfigurationError

_STATE = "_apikeys_state"

ScopeSpec = Sequence[str] | Mapping[str, Sequence[str]]
"""Required scopes: one list for every method, or a list per HTTP method (or DRF
action), with ``"*"`` for the others."""


class DjangoRequest:
    """The request layer's view of a Django request (``META``-based: Django's
    WSGI and ASGI handlers both join repeated header lines with commas, which the
    layer splits again, so a repeat never slips through)."""

    __slots__ = ("request",)

    def __init__(self, request: HttpRequest) -> None:
        self.request = request

    @property
    def method(self) -> str:
        return self.request.method or "GET"

    @property
    def path(self) -> str:
        return self.request.path

    @property
    def scheme(self) -> str:
        # Not request.scheme: it believes SECURE_PROXY_SSL_HEADER from any peer;
        # the layer reads X-Forwarded-Proto itself, from trusted proxies only.
        return str(self.request._get_scheme())  # type: ignore[attr-defined]  # Django's own view

    @property
    def peer(self) -> str | None:
        return self.request.META.get("REMOTE_ADDR") or None

    def header(self, name: str) -> list[str]:
        value = self.request.META.get(_meta_name(name))
        return [] if value is None else [value]

    def query(self, name: str) -> list[str]:
        return self.request.GET.getlist(name)


def django_request(request: Any) -> HttpRequest:
    """The Django request under a DRF ``Request`` (or ``request`` itself)."""
    if not isinstance(request, HttpRequest):
        inner = getattr(request, "_request", None)
        if isinstance(inner, HttpRequest):
            return inner
    return request  # type: ignore[no-any-return]


def state(request: HttpRequest) -> RequestMemo:
    """The request layer's memo of ``request`` (created on first use)."""
    request = django_request(request)
    found = request.__dict__.get(_STATE)
    if found is None:
        found = RequestMemo()
        request.__dict__[_STATE] = found
    return found


@functools.lru_cache(maxsize=16)
def _meta_name(header: str) -> str:
    return "HTTP_" + header.upper().replace("-", "_")


def guard() -> RequestGuard:
    """The request layer on the process-wide manager and ``APIKEYS`` settings."""
    return RequestGuard(get_manager(), get_settings().http)


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
    return route_scopes(spec)


def verify(request: HttpRequest, scopes: Sequence[str] = ()) -> Verification:
    """Authenticate ``request`` (once) and authorize ``scopes`` (sync manager).

    Raises:
        APIKeyError: the refusal (401, 403, 429, 503).
    """
    return guard().authenticate(state(request), DjangoRequest(request), tuple(scopes))


async def averify(request: HttpRequest, scopes: Sequence[str] = ()) -> Verification:
    """Authenticate ``request`` (once) and authorize ``scopes`` (async manager).

    Raises:
        APIKeyError: the refusal (401, 403, 429, 503).
    """
    return await guard().aauthenticate(
        state(request),
        DjangoRequest(request),
        tuple(scopes),
        verify=get_async_manager().authenticate,
    )


def current_key(request: HttpRequest) -> APIKey | None:
    """The key this request already authenticated with, or ``None``; no I/O.

    ``None`` too when no layer has asked yet: use :func:`authenticate` (or the
    middleware's lazy ``request.api_key``) to authenticate on demand.
    """
    return state(request).key


def authenticate(request: HttpRequest) -> APIKey | None:
    """The key of ``request``, authenticating it if no layer has yet.

    ``None`` when the request carries no key or one that does not authenticate
    (401). Other refusals are raised: an address outside the key's allowlist
    (403), a rate limit (429), a store failure (503, fail closed).

    Raises:
        APIKeyError: a refusal other than 401.
    """
    try:
        return verify(request).key
    except AuthenticationError:
        return None


async def aauthenticate(request: HttpRequest) -> APIKey | None:
    """The awaitable :func:`authenticate`, for async views.

    Raises:
        APIKeyError: a refusal other than 401.
    """
    try:
        return (await averify(request)).key
    except AuthenticationError:
        return None


acurrent_key = aauthenticate
"""The former name of :func:`aauthenticate` (it authenticates: not the no-I/O
:func:`current_key`)."""


def problem_response(error: APIKeyError, request: HttpRequest | None = None) -> HttpResponse:
    """The ``application/problem+json`` response for ``error`` (RFC 9457).

    401s carry ``WWW-Authenticate`` and the same body whatever the reason; 403s
    for scopes name the missing ones; 429s carry ``Retry-After`` and the
    rate-limit headers; a store failure is a 503.

    Args:
        error: Any apikeys error (its status decides the response's).
        request: The request refused, for the log line of server-side failures.
    """
    return response_for(problem(error, request))


def problem(error: APIKeyError, request: HttpRequest | None = None) -> Problem:
    """``error`` as the request layer's ``(status, headers, body)`` (5xx logged)."""
    try:
        settings = get_settings().http
    except ConfigurationError:
        settings = _http.HTTPSettings()
    view = DjangoRequest(django_request(request)) if request is not None else None
    return refusal(error, settings, view)


def response_for(problem: Problem) -> HttpResponse:
    """A problem as a Django response."""
    status, headers, body = problem
    content_type = headers.get("Content-Type", _http.PROBLEM_CONTENT_TYPE)
    response = HttpResponse(json.dumps(body), status=status, content_type=content_type)
    for name, value in headers.items():
        if name != "Content-Type":
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
    memo = state(request)
    if memo.verification is None or memo.reported:
        return response
    layer = guard()
    for name, value in layer.response_headers(memo).items():
        if not response.has_header(name):
            response[name] = value
    layer.finish(memo, request.method or "GET", route(request), response.status_code)
    return response


def report_failure(request: HttpRequest) -> None:
    """Report a key-authenticated request whose view raised (status 500)."""
    memo = state(request)
    if memo.verification is not None:
        guard().finish(memo, request.method or "GET", route(request), 500)
