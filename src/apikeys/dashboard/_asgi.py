"""The dashboard as an ASGI application: the scope and body in, the core's
response out. Pages read blocking stores, so each is rendered in a worker thread."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from apikeys.dashboard._bridge import BlockingAsyncMonitor
from apikeys.dashboard._http import MAX_BODY, DashboardRequest, parse_form, parse_pairs

if TYPE_CHECKING:
    from apikeys.dashboard._core import Dashboard


async def _body(receive: Any) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b""
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= MAX_BODY:
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def asgi_request(scope: dict[str, Any], body: bytes) -> DashboardRequest:
    """A :class:`DashboardRequest` from an ASGI HTTP scope and its body."""
    headers = {
        k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])
    }
    root = str(scope.get("root_path", "")).rstrip("/")
    path = str(scope.get("path", "/"))
    # Starlette's Mount leaves the full path in "path" and the prefix in "root_path".
    if root and path.startswith(root):
        path = path[len(root) :]
    client = scope.get("client")
    method = str(scope.get("method", "GET")).upper()
    return DashboardRequest(
        method=method,
        path=path or "/",
        root=root,
        query=parse_pairs(scope.get("query_string", b"").decode("latin-1")),
        form=parse_form(headers.get("content-type", ""), body) if method == "POST" else {},
        headers=headers,
        client=client[0] if client else None,
        secure=scope.get("scheme") == "https",
        native=scope,
    )


class ASGIDashboard:
    """An ASGI application serving a :class:`~apikeys.dashboard.Dashboard`
    (``app.mount("/apikeys", dashboard.asgi())``); ``authorize`` receives a
    request whose ``native`` is the ASGI scope."""

    def __init__(self, dashboard: Dashboard) -> None:
        self.dashboard = dashboard

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Answer one ASGI HTTP request (other scope types are ignored)."""
        if scope["type"] != "http":
            return
        body = await _body(receive) if scope.get("method") == "POST" else b""
        request = asgi_request(scope, body)
        monitor = self.dashboard.monitor
        if isinstance(monitor, BlockingAsyncMonitor):
            monitor.loop = asyncio.get_running_loop()
        response = await asyncio.to_thread(self.dashboard.handle, request)
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [
                    (k.lower().encode("latin-1"), v.encode("latin-1"))
                    for k, v in response.all_headers()
                ],
            }
        )
        await send(
            {
                "type": "http.response.body",
                "body": b"" if scope.get("method") == "HEAD" else response.body,
            }
        )
