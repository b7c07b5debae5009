"""Django REST framework: an authentication class, a permission class checking
scopes per view, and an exception handler answering with problem+json.

::

    REST_FRAMEWORK = {
        "DEFAULT_AUTHENTICATION_CLASSES": [
            "apikeys.django.rest_framework.APIKeyAuthentication",
        ],
        "DEFAULT_PERMISSION_CLASSES": ["apikeys.django.rest_framework.HasAPIKey"],
        "EXCEPTION_HANDLER": "apikeys.django.rest_framework.exception_handler",
    }

    class OrderViewSet(viewsets.ViewSet):
        required_scopes = {"list": ["orders:read"], "create": ["orders:write"]}

- :class:`APIKeyAuthentication` sets ``request.auth`` to the
  :class:`~apikeys.APIKey` and ``request.user`` to an :class:`APIKeyUser`
  (override :meth:`APIKeyAuthentication.get_user` to map the owner to your users).
  A request without a key (or with another ``Authorization`` scheme) is left to
  the next authentication class.
- :class:`HasAPIKey` requires a key, granted every scope in the view's
  ``required_scopes`` (a list, or a mapping from HTTP method or viewset action to
  a list, ``"*"`` for the rest).
- :func:`exception_handler` answers refusals as ``application/problem+json``,
  the same bytes as every other apikeys adapter: 401 with ``WWW-Authenticate``,
  403 naming the missing scopes, 429 with ``Retry-After``, 503 when the database
  is down. Without it the statuses and headers are the same, and the body is the
  same problem document served as ``application/json``.

Put :class:`APIKeyAuthentication` first among the authentication classes: DRF
takes the ``WWW-Authenticate`` challenge of the first one, and turns a 401 into a
403 when it has none. Needs the ``drf`` extra: ``pip install 'apikeys[drf]'``.
"""

from __future__ import annotations

from typing import Any

from apikeys._models import APIKey
from apikeys.django._request import (
    DjangoRequest,
    django_request,
    problem,
    problem_response,
    response_for,
    scopes_for,
    state,
    verify,
)
from apikeys.django._runtime import get_manager, get_settings
from apikeys.errors import APIKeyError, AuthenticationError, ConfigurationError

try:
    from rest_framework import exceptions
    from rest_framework.authentication import BaseAuthentication
    from rest_framework.permissions import BasePermission
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ConfigurationError(
        "apikeys.django.rest_framework needs Django REST framework: pip install 'apikeys[drf]'"
    ) from exc

__all__ = [
    "APIKeyAuthentication",
    "APIKeyProblem",
    "APIKeyRefused",
    "APIKeyUser",
    "HasAPIKey",
    "exception_handler",
]


class APIKeyRefused(exceptions.APIException):
    """A refused request, as a DRF exception carrying the RFC 9457 problem (every
    apikeys adapter's refusal exception is an ``APIKeyRefused`` with ``error``
    and ``problem``).

    Args:
        error: The refusal.
        request: The refused request (for the log line of a 5xx).

    Attributes:
        error: The apikeys error (its ``code`` tells the reason; never sent for 401s).
        problem: ``(status, headers, body)`` from the request layer.
    """

    def __init__(self, error: APIKeyError, request: Any = None) -> None:
        status, headers, body = problem(error, request)
        super().__init__()
        self.error = error
        self.problem = (status, headers, body)
        self.status_code = status
        # Set after __init__: DRF would turn the body's numbers into strings.
        self.detail = body
        self.auth_header = headers.get("WWW-Authenticate")
        retry = headers.get("Retry-After")
        self.wait = int(retry) if retry is not None else None


APIKeyProblem = APIKeyRefused
"""The former name of :class:`APIKeyRefused`."""


class APIKeyUser:
    """``request.user`` of a request authenticated by a key: not a database user.

    Authenticated (``IsAuthenticated`` passes), never staff, no permissions.

    Attributes:
        key: The key.
        username: The key's owner.
    """

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, key: APIKey) -> None:
        self.key = key
        self.username = key.owner

    def __str__(self) -> str:
        return f"api-key:{self.key.id}"

    def __repr__(self) -> str:
        return f"APIKeyUser(owner={self.key.owner!r}, key_id={self.key.id!r})"

    def get_username(self) -> str:
        """The key's owner."""
        return self.username

    def has_perm(self, perm: str, obj: object = None) -> bool:
        """Never: a key's rights are its scopes."""
        return False

    def has_perms(self, perm_list: Any, obj: object = None) -> bool:
        """Never: a key's rights are its scopes."""
        return False

    def has_module_perms(self, module: str) -> bool:
        """Never: a key's rights are its scopes."""
        return False


class APIKeyAuthentication(BaseAuthentication):
    """Authenticates a request by its API key (``request.auth`` is the
    :class:`~apikeys.APIKey`).

    Returns ``None`` (not attempted) for a request without a key or with an
    ``Authorization`` scheme other than Bearer and no API-key header, so other
    classes can try; any other refusal raises :class:`APIKeyRefused`.
    """

    def authenticate(self, request: Any) -> tuple[Any, APIKey] | None:
        """Authenticate ``request`` (once per request, whatever else asks).

        Returns:
            ``(user, key)``, or ``None`` when the request carries no key of ours.

        Raises:
            APIKeyRefused: the key does not authenticate (401), may not be used
                from here (403), is rate limited (429), or the database is down (503).
        """
        http = django_request(request)
        current = state(http)
        if not current.settled and not self._ours(http):
            return None
        try:
            verification = verify(http)
        except APIKeyError as exc:
            raise APIKeyRefused(exc, http) from exc
        key = verification.key
        http.api_key = key  # type: ignore[attr-defined]
        return self.get_user(key), key

    @staticmethod
    def _ours(request: Any) -> bool:
        """Whether ``request`` carries a credential this class must judge."""
        settings, view = get_settings().http, DjangoRequest(request)
        return settings.offers_key(
            view.header(settings.authorization_header) if settings.authorization_header else (),
            view.header(settings.api_key_header) if settings.api_key_header else (),
            view.query(settings.query_param) if settings.query_param else (),
        )

    def get_user(self, key: APIKey) -> Any:
        """``request.user`` for ``key``: an :class:`APIKeyUser` (override to map
        the owner to one of your users)."""
        return APIKeyUser(key)

    def authenticate_header(self, request: Any) -> str:
        """The ``WWW-Authenticate`` challenge, which makes DRF answer 401, not 403."""
        current = state(django_request(request))
        return get_settings().http.challenge(current.error)


class HasAPIKey(BasePermission):
    """Requires a key granted every scope of the view's ``required_scopes``.

    ``required_scopes`` is a list, or a mapping from HTTP method (``"GET"``) or
    viewset action (``"list"``) to a list, ``"*"`` for the rest; a view may
    override ``get_required_scopes(request)`` instead.

    Without a key it denies (DRF answers 401 with the Bearer challenge), so it
    composes: ``HasAPIKey | OtherPermission`` lets a request without a key try the
    other. A key missing a scope is refused outright (403): it never falls back.
    """

    def has_permission(self, request: Any, view: Any) -> bool:
        """Whether ``request`` may use ``view``.

        Returns:
            ``True`` for a key granted every required scope; ``False`` without a key.

        Raises:
            APIKeyRefused: a required scope is missing (403).
        """
        key = request.auth
        if not isinstance(key, APIKey):
            return False
        getter = getattr(view, "get_required_scopes", None)
        try:
            if callable(getter):
                required = scopes_for(getter(request), request.method)
            else:
                required = scopes_for(
                    getattr(view, "required_scopes", ()),
                    request.method,
                    getattr(view, "action", None),
                )
            get_manager().authorize(key, *required)
        except APIKeyError as exc:
            raise APIKeyRefused(exc, django_request(request)) from exc
        return True


def _our_challenge(exc: exceptions.APIException) -> bool:
    """Whether DRF answers ``exc`` with this module's challenge (the view's first
    authentication class is :class:`APIKeyAuthentication`)."""
    return getattr(exc, "auth_header", None) == get_settings().http.challenge(None)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Any:
    """DRF ``EXCEPTION_HANDLER``: refusals and other apikeys errors as
    ``application/problem+json`` (so is DRF's own "not authenticated" when the
    challenge is this module's); everything else as DRF's default handler does.

    Args:
        exc: The exception a view raised.
        context: DRF's handler context.

    Returns:
        The response, or ``None`` for an exception DRF should re-raise.
    """
    # Imported here: rest_framework.views imports the authentication classes named
    # in the settings (this module) while it loads.
    from rest_framework.views import exception_handler as drf_exception_handler
    from rest_framework.views import set_rollback

    if isinstance(exc, APIKeyRefused):
        set_rollback()
        return response_for(exc.problem)
    error: Exception = exc
    if isinstance(exc, exceptions.NotAuthenticated) and _our_challenge(exc):
        error = AuthenticationError("missing")
    if isinstance(error, APIKeyError):
        set_rollback()
        request = context.get("request")
        return problem_response(error, django_request(request) if request else None)
    return drf_exception_handler(exc, context)
