"""The dashboard's own request and response: what the ASGI, WSGI and Django
translations build and read. Framework-free."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode

MAX_BODY = 64 * 1024
"""Largest form body read (the dashboard's forms are a few short fields)."""


@dataclass(frozen=True)
class DashboardRequest:
    """One request to the dashboard, as its translations see it.

    Attributes:
        method: ``GET`` or ``POST`` (others are refused).
        path: The path below the mount point, starting with ``/``.
        root: The mount point (``/apikeys``), prefixed to every link.
        query: Query-string parameters (the last value of each name).
        form: Form fields of a POST body (``application/x-www-form-urlencoded``).
        headers: Request headers, names in lower case.
        client: The client's address, if known.
        secure: Whether the request came over HTTPS (cookies get ``Secure``).
        native: The framework's own request (ASGI scope, WSGI environ, Django
            ``HttpRequest``), for the application's ``authorize``.
    """

    method: str
    path: str
    root: str = ""
    query: Mapping[str, str] = field(default_factory=dict)
    form: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    client: str | None = None
    secure: bool = False
    native: Any = None

    @property
    def cookies(self) -> dict[str, str]:
        """Cookies sent with the request (an unparsable header gives none)."""
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(self.headers.get("cookie", ""))
        except CookieError:
            return {}
        return {name: morsel.value for name, morsel in jar.items()}


@dataclass
class DashboardResponse:
    """What the dashboard answers: a status, headers and a body."""

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "text/html; charset=utf-8"

    def all_headers(self) -> list[tuple[str, str]]:
        """The headers with ``Content-Type`` and ``Content-Length``."""
        return [
            ("Content-Type", self.content_type),
            ("Content-Length", str(len(self.body))),
            *self.headers,
        ]


def parse_pairs(text: str) -> dict[str, str]:
    """``a=1&b=2`` as a dict (the last of repeated names wins; bad bytes replaced)."""
    return dict(parse_qsl(text, keep_blank_values=True, errors="replace"))


def parse_form(content_type: str, body: bytes) -> dict[str, str]:
    """The fields of a url-encoded form body; any other body gives none."""
    if content_type.split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        return {}
    return parse_pairs(body[:MAX_BODY].decode("latin-1"))


def url(root: str, path: str, params: Mapping[str, object] | None = None) -> str:
    """``root + path`` with the non-empty ``params`` as a query string."""
    query = {k: str(v) for k, v in (params or {}).items() if v not in (None, "")}
    return f"{root}{path}" + (f"?{urlencode(query)}" if query else "")
