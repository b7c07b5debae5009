"""APIKeyMiddleware: ``request.api_key`` on every request, lazily, plus usage
reporting, rate-limit headers and problem+json answers for apikeys errors.

::

    MIDDLEWARE = [..., "apikeys.django.middleware.APIKeyMiddleware"]

- ``request.api_key`` is a lazy object: the key is verified the first time it is
  used, at most once per request. It stands for the :class:`~apikeys.APIKey`, or
  for ``None`` when the request carries no key or one that does not authenticate
  — test it with ``if request.api_key:`` (a lazy object is never ``is None``), or
  call :func:`~apikeys.django.authenticate` for a plain value
  (:func:`~apikeys.django.current_key` only reads what is already authenticated). A refusal
  other than 401 (an address outside the key's allowlist, a rate limit, the
  database down) is raised when it is used, and answered here as problem+json.
- In async views use ``await request.aapi_key()`` (like ``request.auser()``):
  the lazy attribute runs the database query synchronously.
- After the response of a key-authenticated request, the key's rate-limit
  headers are added and the request is reported with
  ``manager.record_request(...)`` (route pattern, status, client address).
- An :class:`~apikeys.errors.APIKeyError` escaping a view is answered as
  ``application/problem+json`` with its status (503 for a store failure).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase
from django.utils.functional import SimpleLazyObject

from apikeys.django._request import aauthenticate, authenticate, finish, problem_response, state
from apikeys.errors import APIKeyError

__all__ = ["APIKeyMiddleware"]


class APIKeyMiddleware:
    """Sets ``request.api_key`` (lazy) and ``request.aapi_key()``, reports
    key-authenticated requests, and answers apikeys errors as problem+json.

    Works under WSGI and ASGI (sync and async capable).

    Args:
        get_response: The next layer.
    """

    sync_capable = True
    async_capable = True

    def __init__(
        self,
        get_response: Callable[[HttpRequest], HttpResponseBase]
        | Callable[[HttpRequest], Awaitable[HttpResponseBase]],
    ) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __repr__(self) -> str:
        return "APIKeyMiddleware()"

    @staticmethod
    def _prepare(request: HttpRequest) -> None:
        state(request).installed = True
        request.api_key = SimpleLazyObject(functools.partial(authenticate, request))  # type: ignore[attr-defined]
        request.aapi_key = functools.partial(aauthenticate, request)  # type: ignore[attr-defined]

    def __call__(self, request: HttpRequest) -> Any:
        """Handle ``request`` (a coroutine under ASGI)."""
        if self.is_async:
            return self.__acall__(request)
        self._prepare(request)
        response: HttpResponseBase = self.get_response(request)  # type: ignore[assignment]
        return finish(request, response)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        """Handle ``request`` under ASGI."""
        self._prepare(request)
        response: HttpResponseBase = await self.get_response(request)  # type: ignore[misc]
        return finish(request, response)

    def process_exception(
        self, request: HttpRequest, exception: Exception
    ) -> HttpResponseBase | None:
        """Answer an :class:`~apikeys.errors.APIKeyError` raised by a view as
        problem+json; leave every other exception to Django."""
        if isinstance(exception, APIKeyError):
            return problem_response(exception, request)
        return None
