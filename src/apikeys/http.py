"""Framework-free HTTP semantics, for writing an adapter of your own.

The shipped FastAPI, Flask and Django adapters are built on exactly these: take the
one key a request carries (:meth:`HTTPSettings.extract_key`), find the client address
(:meth:`HTTPSettings.client_ip`), and answer errors as RFC 9457 problem responses
(:func:`problem`) with rate-limit headers (:func:`rate_limit_headers`). See
``docs/integrations/custom.md``.
"""

from __future__ import annotations

from apikeys._http import PROBLEM_CONTENT_TYPE, HTTPSettings, problem, rate_limit_headers

__all__ = ["HTTPSettings", "PROBLEM_CONTENT_TYPE", "problem", "rate_limit_headers"]  # noqa: RUF022  (plain sorted(), as every __all__ here)
