"""The dashboard as a WSGI application: environ in, the core's response out."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from apikeys.dashboard._http import MAX_BODY, DashboardRequest, parse_form, parse_pairs

if TYPE_CHECKING:
    from apikeys.dashboard._core import Dashboard

_REASONS = {
    200: "OK",
    303: "See Other",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    503: "Service Unavailable",
}


def wsgi_request(environ: dict[str, Any]) -> DashboardRequest:
    """A :class:`DashboardRequest` from a WSGI environ (reads a bounded body)."""
    headers = {
        name[5:].replace("_", "-").lower(): str(value)
        for name, value in environ.items()
        if name.startswith("HTTP_")
    }
    content_type = str(environ.get("CONTENT_TYPE", ""))
    headers["content-type"] = content_type
    method = str(environ.get("REQUEST_METHOD", "GET")).upper()
    form: dict[str, str] = {}
    if method == "POST":
        try:
            length = min(int(environ.get("CONTENT_LENGTH") or 0), MAX_BODY)
        except ValueError:
            length = 0
        form = parse_form(content_type, environ["wsgi.input"].read(length) if length else b"")
    path = str(environ.get("PATH_INFO", "")).encode("latin-1").decode("utf-8", "replace")
    return DashboardRequest(
        method=method,
        path=path or "/",
        root=str(environ.get("SCRIPT_NAME", "")).rstrip("/"),
        query=parse_pairs(str(environ.get("QUERY_STRING", ""))),
        form=form,
        headers=headers,
        client=environ.get("REMOTE_ADDR"),
        secure=environ.get("wsgi.url_scheme") == "https",
        native=environ,
    )


class WSGIDashboard:
    """A WSGI application serving a :class:`~apikeys.dashboard.Dashboard`.

    Mount it under a path (``werkzeug.middleware.dispatcher.DispatcherMiddleware``
    in Flask); ``authorize`` receives a request whose ``native`` is the environ.
    """

    def __init__(self, dashboard: Dashboard) -> None:
        self.dashboard = dashboard

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """Answer one WSGI request."""
        response = self.dashboard.handle(wsgi_request(environ))
        reason = _REASONS.get(response.status, "")
        start_response(f"{response.status} {reason}", response.all_headers())
        return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else response.body]
