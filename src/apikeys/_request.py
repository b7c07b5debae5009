"""The request layer: every per-request decision of every web adapter, once.

An adapter wraps its framework's request in a :class:`RequestView` (method, path,
scheme, peer, header and query values), keeps one :class:`RequestMemo` per request
wherever its framework keeps per-request data, and asks a :class:`RequestGuard`:

- :meth:`RequestGuard.authenticate` / :meth:`RequestGuard.aauthenticate`: the
  request's key authorized for some scopes, or one typed error. The first call
  extracts the credential, finds the client address, verifies the key and judges
  the transport; later calls for the same request only check their extra scopes
  (a 401 or an address refusal holds whatever they ask).
- :meth:`RequestGuard.refusal`: an error as ``(status, headers, problem body)``,
  with the rate-limit headers of a 429, logging a 5xx.
- :meth:`RequestGuard.response_headers` then :meth:`RequestGuard.finish`: the
  key's rate-limit headers for a success, and the once-per-request usage report.

No framework is imported here, and the adapter decides nothing: it only
translates its framework's request in and the layer's answers out.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from apikeys import _http
from apikeys._hooks import Verification
from apikeys._logsafe import log_safe
from apikeys._models import APIKey
from apikeys._policy import required_scopes
from apikeys.errors import (
    APIKeyError,
    AuthenticationError,
    ConfigurationError,
    InsecureTransport,
    InvalidArgument,
    IPNotAllowed,
    RateLimited,
)

if TYPE_CHECKING:
    from apikeys._async import AsyncKeyManager
    from apikeys._manager import KeyManager

logger = logging.getLogger("apikeys")

Problem = tuple[int, dict[str, str], dict[str, Any]]
"""``(status, headers, body)`` of a problem response; headers hold its Content-Type."""


class RequestView(Protocol):
    """What the layer reads from a request; each adapter implements it on its own
    request object (plain attributes or properties)."""

    @property
    def method(self) -> str:
        """The HTTP method."""

    @property
    def path(self) -> str:
        """The URL path (for the 5xx log line only)."""

    @property
    def scheme(self) -> str:
        """The URL scheme as the server saw it (``http``/``https``)."""

    @property
    def peer(self) -> str | None:
        """The connection's remote address."""

    def header(self, name: str) -> Sequence[str]:
        """Every value of header ``name`` (case-insensitive), one per header line,
        or as the server joined them with commas."""

    def query(self, name: str) -> Sequence[str]:
        """Every value of query parameter ``name``."""


@dataclass(slots=True)
class RequestMemo:
    """What the layer learnt about one request; the adapter keeps it with the request.

    Attributes:
        verification: The outcome, once the key authenticated.
        error: The refusal that holds whatever scopes are asked later (a 401, an
            address outside the allowlist, plain HTTP).
        ip: The client address used.
        installed: A middleware (or hook) reports this request when it ends.
        reported: The request was reported.
    """

    verification: Verification | None = None
    error: APIKeyError | None = None
    ip: str | None = None
    installed: bool = False
    reported: bool = False

    @property
    def settled(self) -> bool:
        """The request authenticated, or was refused for good."""
        return self.verification is not None or self.error is not None

    @property
    def key(self) -> APIKey | None:
        """The key the request authenticated with, or ``None``."""
        return self.verification.key if self.verification is not None else None


def route_scopes(scopes: Sequence[str]) -> tuple[str, ...]:
    """The scopes a route requires, validated.

    Raises:
        ConfigurationError: a scope is not a concrete ``resource:action`` (a bug
            in the app, answered 500).
    """
    try:
        return required_scopes(scopes)
    except InvalidArgument as exc:
        raise ConfigurationError(f"a route requires an invalid scope: {exc}") from exc


def _holds(error: APIKeyError) -> bool:
    """Whether a refusal holds whatever scopes are asked later in the request."""
    return isinstance(error, AuthenticationError | IPNotAllowed | InsecureTransport)


class RequestGuard:
    """The request layer for one manager and one :class:`~apikeys.http.HTTPSettings`.

    Args:
        manager: A :class:`~apikeys.KeyManager` or :class:`~apikeys.AsyncKeyManager`
            (its no-I/O calls authorize and report; the verifying call is chosen
            per call, see :meth:`authenticate` and :meth:`aauthenticate`).
        settings: Where the key is read from, proxies, transport rule, realm.
    """

    __slots__ = ("manager", "settings")

    def __init__(self, manager: KeyManager | AsyncKeyManager, settings: _http.HTTPSettings) -> None:
        self.manager = manager
        self.settings = settings

    def __repr__(self) -> str:
        return f"RequestGuard({self.manager!r})"

    # --- authentication -------------------------------------------------------------

    def authenticate(
        self,
        memo: RequestMemo,
        request: RequestView,
        scopes: tuple[str, ...] = (),
        *,
        verify: Callable[..., Verification] | None = None,
    ) -> Verification:
        """The request's key, authorized for ``scopes`` (synchronous verification).

        Args:
            memo: The request's memo.
            request: The request.
            scopes: Validated scopes (:func:`route_scopes`).
            verify: ``KeyManager.authenticate``-like call (default: the manager's).

        Raises:
            APIKeyError: the refusal (401, 403, 429, 503).
        """
        settled = self._settled(memo, scopes)
        if settled is not None:
            return settled
        call: Any = verify if verify is not None else self.manager.authenticate
        if verify is None and inspect.iscoroutinefunction(call):
            raise ConfigurationError("a synchronous route needs a KeyManager, not an async one")
        try:
            raw = self._raw_key(memo, request)
            verification: Verification = call(raw, scopes=scopes, ip=memo.ip)
        except APIKeyError as exc:
            self._failed(memo, exc)
            raise
        return self._proven(memo, request, verification)

    async def aauthenticate(
        self,
        memo: RequestMemo,
        request: RequestView,
        scopes: tuple[str, ...] = (),
        *,
        verify: Callable[..., Awaitable[Verification]] | None = None,
    ) -> Verification:
        """The awaitable :meth:`authenticate`.

        Args:
            memo: The request's memo.
            request: The request.
            scopes: Validated scopes (:func:`route_scopes`).
            verify: An awaitable ``authenticate`` (default: the manager's, which
                must then be an ``AsyncKeyManager``; a ``KeyManager`` is given as
                its ``authenticate`` run in a thread pool).

        Raises:
            APIKeyError: the refusal (401, 403, 429, 503).
        """
        settled = self._settled(memo, scopes)
        if settled is not None:
            return settled
        call: Any = verify if verify is not None else self.manager.authenticate
        try:
            raw = self._raw_key(memo, request)
            verification: Verification = await call(raw, scopes=scopes, ip=memo.ip)
        except APIKeyError as exc:
            self._failed(memo, exc)
            raise
        return self._proven(memo, request, verification)

    def _settled(self, memo: RequestMemo, scopes: tuple[str, ...]) -> Verification | None:
        if memo.verification is not None:
            self.manager.authorize(memo.verification.key, *scopes)
            return memo.verification
        if memo.error is not None:
            raise memo.error
        return None

    def _raw_key(self, memo: RequestMemo, request: RequestView) -> str:
        settings = self.settings
        memo.ip = settings.client_ip(
            request.peer,
            request.header("X-Forwarded-For") if settings.trusted_proxies else (),
        )
        return settings.extract_key(
            request.header(settings.authorization_header) if settings.authorization_header else (),
            request.header(settings.api_key_header) if settings.api_key_header else (),
            request.query(settings.query_param) if settings.query_param else (),
        )

    @staticmethod
    def _failed(memo: RequestMemo, error: APIKeyError) -> None:
        if _holds(error):
            memo.error = error

    def _proven(
        self, memo: RequestMemo, request: RequestView, verification: Verification
    ) -> Verification:
        """The verified outcome, unless it travelled in plain text (then reported)."""
        settings = self.settings
        if settings.require_https and settings.plaintext(
            request.scheme,
            request.peer,
            memo.ip,
            request.header("X-Forwarded-Proto") if settings.trusted_proxies else (),
        ):
            self.manager.report_exposed(verification.key, reason="plaintext_transport", ip=memo.ip)
            memo.error = InsecureTransport()
            raise memo.error
        memo.verification = verification
        return verification

    # --- answers --------------------------------------------------------------------

    def refusal(self, error: APIKeyError, request: RequestView | None = None) -> Problem:
        """``error`` as a problem response; see :func:`refusal`."""
        return refusal(error, self.settings, request)

    @staticmethod
    def response_headers(memo: RequestMemo) -> dict[str, str]:
        """The rate-limit headers for the response of an authenticated request
        (empty before authentication or after the report)."""
        verification = memo.verification
        if verification is None or memo.reported:
            return {}
        return _http.rate_limit_headers(verification.rate_limit, None)

    def finish(self, memo: RequestMemo, method: str, route: str, status: int) -> None:
        """Report a finished, key-authenticated request to the manager
        (``record_request``), once; nothing for a request that did not authenticate.

        Args:
            memo: The request's memo.
            method: The HTTP method.
            route: The route template (``/orders/{id}``), else the path.
            status: The response status (500 when the app raised).
        """
        verification = memo.verification
        if verification is None or memo.reported:
            return
        memo.reported = True
        try:
            self.manager.record_request(
                verification.key, method=method, route=route, status=status, ip=memo.ip
            )
        except Exception:
            logger.exception("apikeys: could not record a request of key %s", verification.key.id)


def refusal(
    error: APIKeyError, settings: _http.HTTPSettings, request: RequestView | None = None
) -> Problem:
    """``error`` as ``(status, headers, body)``: the RFC 9457 problem
    (:func:`apikeys.http.problem`) plus the rate-limit headers of a 429; a 5xx is
    logged (method, path, code: never request text beyond those, and those
    escaped, so a decoded ``%0A`` in a path cannot forge a log line).

    Args:
        error: Any apikeys error.
        settings: The adapter's settings (challenge realm).
        request: The refused request, for the log line.
    """
    status, headers, body = _http.problem(error, settings)
    if isinstance(error, RateLimited):
        headers.update(_http.rate_limit_headers(None, error))
    if status >= 500:
        logger.log(
            logging.WARNING if status == 503 else logging.ERROR,
            "apikeys: %s %s answered %d (%s): %s",
            log_safe(request.method) if request is not None else "-",
            log_safe(request.path) if request is not None else "-",
            status,
            error.code,
            log_safe(error.message),
        )
    return status, headers, body
