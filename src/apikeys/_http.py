"""HTTP semantics every web adapter shares, framework-free: taking the key from a
request, finding the client address, judging the transport, and turning errors
into RFC 9457 problem responses.

Adapters pass plain values in (header values, peer address, scheme) and get plain
values out (status, headers, JSON body), so every adapter answers alike. The
per-request flow built on these (memo, authorization, report) is
:mod:`apikeys._request`.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from apikeys._hooks import RateLimitStatus
from apikeys._policy import IPNetwork
from apikeys.errors import (
    APIKeyError,
    AuthenticationError,
    ConfigurationError,
    InsecureTransport,
    InsufficientScope,
    RateLimited,
)

logger = logging.getLogger("apikeys")

PROBLEM_CONTENT_TYPE = "application/problem+json"

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass(frozen=True)
class HTTPSettings:
    """How adapters find a key and the client address in a request.

    Attributes:
        authorization_header: Carries ``Bearer <key>`` (``None`` to disable).
        api_key_header: Carries the bare key (``None`` to disable).
        query_param: A query parameter carrying the key; ``None`` (the default)
            disables it. Keys in URLs end up in logs and browser history: avoid.
        trusted_proxies: Addresses/networks of reverse proxies whose
            ``X-Forwarded-For`` is believed. Empty (the default): the header is
            ignored and the connection's peer is the client.
        realm: The ``realm`` of ``WWW-Authenticate`` challenges.
        require_https: Refuse a key that arrived over plain HTTP (judged by the
            request's scheme, or by a trusted proxy's ``X-Forwarded-Proto``), once
            its secret is proven, and report the key as exposed.
        https_exempt_loopback: With ``require_https``, let a client on a loopback
            address (``127.0.0.0/8``, ``::1``) use plain HTTP (development).
    """

    authorization_header: str | None = "Authorization"
    api_key_header: str | None = "X-API-Key"
    query_param: str | None = None
    trusted_proxies: Sequence[str] = ()
    realm: str = "api"
    require_https: bool = False
    https_exempt_loopback: bool = True
    _networks: tuple[IPNetwork, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (
            self.authorization_header is None
            and self.api_key_header is None
            and (self.query_param is None)
        ):
            raise ConfigurationError("enable at least one place to read the key from")
        try:
            networks = tuple(ipaddress.ip_network(p, strict=False) for p in self.trusted_proxies)
        except ValueError as exc:
            raise ConfigurationError(f"invalid trusted proxy: {exc}") from exc
        object.__setattr__(self, "_networks", networks)
        if '"' in self.realm or "\\" in self.realm:
            raise ConfigurationError("realm must not contain quotes or backslashes")
        if not isinstance(self.require_https, bool) or not isinstance(
            self.https_exempt_loopback, bool
        ):
            raise ConfigurationError("require_https and https_exempt_loopback must be booleans")

    def extract_key(
        self,
        authorization: Sequence[str],
        api_key: Sequence[str],
        query: Sequence[str] = (),
    ) -> str:
        """The one key a request carries.

        Args:
            authorization: Every value of the authorization header (one entry per
                header line; a WSGI server may have joined repeats with ``,``).
            api_key: Every value of the api-key header.
            query: Every value of the query parameter (when enabled).

        Raises:
            AuthenticationError: ``missing`` when there is no credential;
                ``malformed`` when there is more than one (RFC 6750 §2: one method
                per request — even if one of them is valid), an empty list element
                (``X-API-Key: ,KEY`` is two header lines, one of them empty), or a
                non-Bearer scheme in the authorization header. Only RFC 9110
                optional whitespace (SP, HTAB) is trimmed, never other whitespace.
        """
        found = [
            (is_authorization, part)
            for is_authorization, values in (
                (True, authorization if self.authorization_header is not None else ()),
                (False, api_key if self.api_key_header is not None else ()),
                (False, query if self.query_param is not None else ()),
            )
            for value in values
            for part in _split_values(value)
        ]
        if not found:
            raise AuthenticationError("missing")
        if len(found) > 1:
            logger.info("apikeys: request carried %d credentials; refused", len(found))
            raise AuthenticationError("malformed")
        is_authorization, raw = found[0]
        if is_authorization:
            scheme, _, raw = raw.partition(" ")
            if scheme.lower() != "bearer":
                raise AuthenticationError("malformed")
        raw = raw.strip(_OWS)
        if not raw:
            raise AuthenticationError("malformed")
        return raw

    def offers_key(
        self,
        authorization: Sequence[str],
        api_key: Sequence[str],
        query: Sequence[str] = (),
    ) -> bool:
        """Whether a request offers a credential of ours to judge: an api-key header
        or query value, or an authorization header that is Bearer (or empty). Another
        scheme alone (``Basic``, ``Token``) belongs to another authenticator.

        Args:
            authorization: Every value of the authorization header.
            api_key: Every value of the api-key header.
            query: Every value of the query parameter.
        """
        if (self.api_key_header is not None and api_key) or (
            self.query_param is not None and query
        ):
            return True
        if self.authorization_header is None or not authorization:
            return False
        schemes = {
            part.strip(_OWS).partition(" ")[0].lower()
            for value in authorization
            for part in value.split(",")
        }
        return "bearer" in schemes or schemes <= {""}

    def client_ip(self, peer: str | None, forwarded_for: Sequence[str] = ()) -> str | None:
        """The client address: the peer, unless the peer is a trusted proxy, in
        which case ``X-Forwarded-For`` is walked from the right past trusted proxies.

        Only an IP address is ever a client address. A hop that is not one (a name,
        ``unknown``, injected text) makes the client unknown: ``None``, as for a
        request with no address, so a key with an address allowlist is refused and
        no request text reaches a log, an event or a response.

        Args:
            peer: The connection's remote address.
            forwarded_for: Every ``X-Forwarded-For`` value, in header order.
        """
        if not self._networks or peer is None or not self._trusted(peer):
            return peer
        hops = [hop.strip(_OWS) for value in forwarded_for for hop in value.split(",")]
        client: str | None = peer
        for hop in reversed([h for h in hops if h]):
            client = _ip_text(hop)
            if client is None or not self._trusted(client):
                break
        return client

    def plaintext(
        self, scheme: str, peer: str | None, client: str | None, forwarded_proto: Sequence[str] = ()
    ) -> bool:
        """Whether a key sent with this request is refused as sent in plain text.

        Always ``False`` unless :attr:`require_https`. The transport is the
        request's ``scheme``, unless the peer is a trusted proxy that sent
        ``X-Forwarded-Proto``: then every protocol it lists must be ``https``.
        With :attr:`https_exempt_loopback`, a loopback ``client`` may use HTTP.

        Args:
            scheme: The request's URL scheme as the server saw it.
            peer: The connection's remote address.
            client: The client address (:meth:`client_ip`).
            forwarded_proto: Every ``X-Forwarded-Proto`` value, in header order.
        """
        if not self.require_https:
            return False
        protos = [scheme]
        if peer is not None and self._trusted(peer):
            told = [p.strip(_OWS).lower() for v in forwarded_proto for p in v.split(",")]
            protos = told or protos
        if all(proto.lower() in ("https", "wss") for proto in protos):
            return False
        if self.https_exempt_loopback and client is not None:
            try:
                return not ipaddress.ip_address(client).is_loopback
            except ValueError:
                return True
        return True

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip.version == net.version and ip in net for net in self._networks)

    def challenge(self, error: APIKeyError | None = None) -> str:
        """The ``WWW-Authenticate`` value for a 401 or a scope 403."""
        parts = [f'Bearer realm="{self.realm}"']
        if isinstance(error, InsufficientScope):
            parts.append('error="insufficient_scope"')
            parts.append(f'scope="{" ".join(error.missing)}"')
        elif isinstance(error, AuthenticationError) and error.code != "missing":
            parts.append('error="invalid_token"')
        return ", ".join(parts)


_OWS = " \t"
"""RFC 9110 optional whitespace: the only whitespace trimmed from header values."""


def _split_values(value: str) -> list[str]:
    """A header value as the credentials in it: servers join repeated header lines
    with commas, and a key never contains one. Every element counts, an empty one
    too (it was a header line of its own), so ``,KEY`` is two credentials."""
    return [part.strip(_OWS) for part in value.split(",")]


def _ip_text(text: str) -> str | None:
    """``text`` when it is a plain IP address, else ``None``. An IPv6 zone
    (``fe80::1%eth0``) is refused: ``ipaddress`` accepts any text after the ``%``,
    control characters included."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    return None if getattr(ip, "scope_id", None) is not None else text


_DETAILS = {
    "permission_denied": "The API key may not be used for this request.",
    "ip_not_allowed": "The API key may not be used from this address.",
    "insecure_transport": "API keys must be sent over HTTPS; this key is reported as exposed.",
    "key_not_found": "No API key with that id.",
    "invalid_state": "The key is not in a state that allows this.",
    "conflict": "The key changed meanwhile; retry.",
    "invalid_argument": "The request is invalid.",
}
"""Fixed problem details: a body never carries text taken from the request (an
address, an id, a header), since a client could plant it there."""


def problem(
    error: APIKeyError, settings: HTTPSettings
) -> tuple[int, dict[str, str], dict[str, Any]]:
    """The RFC 9457 problem response for ``error``.

    Every 401 has the same body (whatever the reason) except a missing key, which
    is told apart only because the client knows it sent none. The specific reason
    is in the logs and events, never in the response. No body echoes request text:
    details are fixed per ``code``; only server-side facts (the scopes a route
    requires, a limit's policy) are named.

    Returns:
        The HTTP status, the headers, and the JSON body.
    """
    status = error.status
    headers = {"Content-Type": PROBLEM_CONTENT_TYPE}
    title = _TITLES.get(status, "Error")
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if isinstance(error, AuthenticationError):
        headers["WWW-Authenticate"] = settings.challenge(error)
        if error.code == "missing":
            body["detail"] = "An API key is required."
            body["code"] = "missing_credentials"
        else:
            body["detail"] = "The API key is malformed, unknown, expired or revoked."
            body["code"] = "invalid_token"
        return status, headers, body
    if status >= 500:
        body["detail"] = "The API key service is temporarily unavailable."
        body["code"] = "service_unavailable" if status == 503 else "internal_error"
        return status, headers, body
    body["code"] = error.code
    if isinstance(error, InsufficientScope):
        headers["WWW-Authenticate"] = settings.challenge(error)
        body["detail"] = error.message
        body["missing_scopes"] = list(error.missing)
    elif isinstance(error, RateLimited):
        headers["Retry-After"] = str(max(1, round(error.retry_after + 0.4999)))
        body["detail"] = error.message  # made by the limiter, never from the request
    else:
        if isinstance(error, InsecureTransport):
            headers["WWW-Authenticate"] = settings.challenge(None)
        body["detail"] = _DETAILS.get(error.code, title + ".")
    return status, headers, body


def _sf_string(value: str) -> str:
    """``value`` as a Structured Field String (RFC 9651 §3.3.3)."""
    text = "".join(ch for ch in value if " " <= ch <= "~")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _seconds(value: float) -> int:
    """Whole seconds, rounded up (delay-seconds never undershoots)."""
    return max(0, int(-(-value // 1)))


def rate_limit_headers(
    status: RateLimitStatus | None = None, error: RateLimited | None = None
) -> dict[str, str]:
    """The rate-limit headers of a response: ``RateLimit-Policy`` and ``RateLimit``
    (draft-ietf-httpapi-ratelimit-headers-11, structured-field form), plus
    ``Retry-After`` on a 429.

    On success pass the ``status`` from ``manager.authenticate(...).rate_limit``::

        RateLimit-Policy: "100/minute";q=100;w=60
        RateLimit: "100/minute";r=42;t=17

    On a 429 pass the ``error``: ``Retry-After`` as :func:`problem` sets it, and
    the refused policy with ``r=0`` and ``t`` equal to ``Retry-After`` (the draft
    asks that ``Retry-After`` not end before the effective window). An error that
    names no policy (``TooManyFailures``) gives ``Retry-After`` alone.

    Args:
        status: The tightest limit after a successful request, or ``None``.
        error: The :class:`~apikeys.errors.RateLimited` that refused the request.

    Returns:
        Header names and values; empty when there is nothing to tell.
    """
    from apikeys.ratelimit._rules import policy_window

    headers: dict[str, str] = {}
    if error is not None:
        retry = max(1, round(error.retry_after + 0.4999))
        headers["Retry-After"] = str(retry)
        if error.policy is None or error.limit is None:
            return headers
        window: float | None = policy_window(error.policy)
        if window is None and status is not None and status.policy == error.policy:
            window = status.window
        name = _sf_string(error.policy)
        headers["RateLimit-Policy"] = f"{name};q={error.limit}" + (
            f";w={int(window)}" if window is not None and 1 <= window < float("inf") else ""
        )
        headers["RateLimit"] = f"{name};r=0;t={retry}"
        return headers
    if status is None:
        return headers
    name = _sf_string(status.policy)
    policy = f"{name};q={max(0, status.limit)}"
    if 1 <= status.window < float("inf"):
        policy += f";w={int(status.window)}"
    limit = f"{name};r={max(0, status.remaining)}"
    if status.reset_after < float("inf"):
        limit += f";t={_seconds(status.reset_after)}"
    headers["RateLimit-Policy"] = policy
    headers["RateLimit"] = limit
    return headers
