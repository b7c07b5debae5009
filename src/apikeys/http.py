"""The request layer, framework-free, for writing an adapter of your own.

Every shipped adapter (FastAPI, Flask, Django, DRF, ASGI, Litestar) is built on
exactly these, and only translates its framework's request and response:

- wrap the framework's request in a :class:`RequestView` (method, path, scheme,
  peer, header and query values) and keep one :class:`RequestMemo` per request;
- ask a :class:`RequestGuard` (a manager + :class:`HTTPSettings`) to
  ``authenticate``/``aauthenticate`` it for a route's scopes (:func:`route_scopes`):
  one credential per request, the client address, the key verified once per
  request, the HTTPS rule, extra scopes on later calls;
- answer a refusal with :meth:`RequestGuard.refusal` (:func:`refusal`): status,
  headers and RFC 9457 body (:func:`problem`), rate-limit headers of a 429, the
  5xx log line;
- after the response, add :meth:`RequestGuard.response_headers` and call
  :meth:`RequestGuard.finish` once (the usage report).

The lower-level pieces stay available: :meth:`HTTPSettings.extract_key`,
:meth:`HTTPSettings.client_ip`, :meth:`HTTPSettings.plaintext`,
:func:`rate_limit_headers`. See ``docs/integrations/custom.md``.
"""

from __future__ import annotations

from apikeys._http import PROBLEM_CONTENT_TYPE, HTTPSettings, problem, rate_limit_headers
from apikeys._request import (
    RequestGuard,
    RequestMemo,
    RequestView,
    refusal,
    route_scopes,
)

__all__ = [  # noqa: RUF022  (plain sorted(), as every __all__ here)
    "HTTPSettings",
    "PROBLEM_CONTENT_TYPE",
    "RequestGuard",
    "RequestMemo",
    "RequestView",
    "problem",
    "rate_limit_headers",
    "refusal",
    "route_scopes",
]
