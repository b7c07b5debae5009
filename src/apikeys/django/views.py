"""Protecting Django views: :func:`require_key` for function views (sync and
async), :class:`APIKeyRequiredMixin` for class-based views, and
:func:`current_key` (the key the request already authenticated with, or
``None``; no I/O) / :func:`authenticate` / :func:`aauthenticate` (authenticate
now if no layer has; ``None`` for a 401) to read the request's key.

::

    from apikeys.django.views import APIKeyRequiredMixin, require_key

    @require_key("orders:read")
    def orders(request):
        return JsonResponse({"owner": request.api_key.owner})

    class OrderView(APIKeyRequiredMixin, View):
        required_scopes = {"GET": ["orders:read"], "POST": ["orders:write"]}

A refused request is answered as ``application/problem+json``: 401 with
``WWW-Authenticate`` (the same body whatever the reason), 403 naming missing
scopes, 429 with ``Retry-After``, 503 when the database is down. Protected views
are exempt from CSRF checks: a key in a header is not ambient authority a
browser would send on its own.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, TypeVar, cast, overload

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponseBase
from django.views import View

from apikeys._models import APIKey
from apikeys._policy import required_scopes
from apikeys.django._request import (
    ScopeSpec,
    aauthenticate,
    acurrent_key,
    authenticate,
    averify,
    current_key,
    finish,
    problem_response,
    report_failure,
    scopes_for,
    state,
    verify,
)
from apikeys.errors import APIKeyError

__all__ = [
    "APIKeyRequiredMixin",
    "aauthenticate",
    "acurrent_key",
    "authenticate",
    "current_key",
    "require_key",
]

ViewFunc = TypeVar("ViewFunc", bound=Callable[..., Any])


def _bind(request: HttpRequest, key: APIKey) -> None:
    request.api_key = key  # type: ignore[attr-defined]


def _run(
    view: Callable[..., HttpResponseBase], request: HttpRequest, args: Any, kwargs: Any
) -> HttpResponseBase:
    middleware = state(request).installed
    try:
        response = view(request, *args, **kwargs)
    except Exception:
        if not middleware:
            report_failure(request)
        raise
    return response if middleware else finish(request, response)


async def _arun(
    view: Callable[..., Awaitable[HttpResponseBase]],
    request: HttpRequest,
    args: Any,
    kwargs: Any,
) -> HttpResponseBase:
    middleware = state(request).installed
    try:
        response = await view(request, *args, **kwargs)
    except Exception:
        if not middleware:
            report_failure(request)
        raise
    return response if middleware else finish(request, response)


@overload
def require_key(view: ViewFunc, /) -> ViewFunc: ...


@overload
def require_key(*scopes: str) -> Callable[[ViewFunc], ViewFunc]: ...


def require_key(*scopes: Any) -> Any:
    """Protect a function view: it runs only for a key granted every one of ``scopes``.

    Works on sync and async views (async ones use the
    :class:`~apikeys.AsyncKeyManager`). The view finds the key in
    ``request.api_key``. Without :class:`~apikeys.django.middleware.APIKeyMiddleware`
    the decorator itself adds the rate-limit headers and reports the request.
    ``@require_key`` without parentheses requires any valid key.

    Args:
        *scopes: Scopes the key must be granted (``"orders:read"``).

    Returns:
        The decorator.

    Raises:
        InvalidArgument: a scope is not a valid concrete scope.
    """
    if len(scopes) == 1 and callable(scopes[0]):
        return require_key()(scopes[0])
    required = required_scopes(scopes)

    def decorator(view: ViewFunc) -> ViewFunc:
        if iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_protected(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                try:
                    verification = await averify(request, required)
                except APIKeyError as exc:
                    return problem_response(exc, request)
                _bind(request, verification.key)
                return await _arun(view, request, args, kwargs)

            async_protected.csrf_exempt = True  # type: ignore[attr-defined]
            return async_protected  # type: ignore[return-value]

        @functools.wraps(view)
        def protected(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            try:
                verification = verify(request, required)
            except APIKeyError as exc:
                return problem_response(exc, request)
            _bind(request, verification.key)
            return _run(view, request, args, kwargs)

        protected.csrf_exempt = True  # type: ignore[attr-defined]
        return protected  # type: ignore[return-value]

    return decorator


class APIKeyRequiredMixin(View):
    """Protect a class-based view (sync or async): every method needs a key.

    Put it first among the bases: ``class Orders(APIKeyRequiredMixin, View)``.

    Attributes:
        required_scopes: Scopes for every method (``["orders:read"]``), or per
            HTTP method (``{"GET": [...], "POST": [...], "*": [...]}``).
    """

    required_scopes: ClassVar[ScopeSpec] = ()

    def get_required_scopes(self, request: HttpRequest) -> tuple[str, ...]:
        """The scopes ``request`` needs (override for dynamic rules).

        Raises:
            ConfigurationError: ``required_scopes`` names an invalid scope.
        """
        return scopes_for(self.required_scopes, request.method)

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Callable[..., HttpResponseBase]:
        """The view function, exempt from CSRF checks (see the module docs)."""
        view = super().as_view(**initkwargs)
        view.csrf_exempt = True  # type: ignore[attr-defined]
        return view

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        """Authenticate and authorize, then dispatch (or answer the refusal)."""
        if self.view_is_async:
            return self._adispatch(request, *args, **kwargs)
        try:
            verification = verify(request, self.get_required_scopes(request))
        except APIKeyError as exc:
            return problem_response(exc, request)
        _bind(request, verification.key)
        return _run(super().dispatch, request, args, kwargs)

    async def _adispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        try:
            verification = await averify(request, self.get_required_scopes(request))
        except APIKeyError as exc:
            return problem_response(exc, request)
        _bind(request, verification.key)
        # An async view's handlers are coroutine functions: so is its dispatch.
        handler = cast("Callable[..., Awaitable[HttpResponseBase]]", super().dispatch)
        return await _arun(handler, request, args, kwargs)
