"""The web dashboard: a page and its static files, served by the API's aiohttp app.

The page holds no data, so it needs no token: its script (web/app.js) reads the token from
the URL fragment (never sent to a server, so never in a log) or the browser's storage and
calls the API with it like any other client. Everything is local: no CDN, no build step.
Names and values from nodes reach the page as text only; the headers forbid inline script
and any source but the gateway itself besides, should markup ever slip through.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from aiohttp.web_log import AccessLogger

WEB = Path(__file__).with_name("web")

# URL path -> (file in web/, content type). Only these; nothing else is read from disk.
FILES = {
    "/": ("index.html", "text/html"),
    "/app.js": ("app.js", "text/javascript"),
    "/style.css": ("style.css", "text/css"),
    "/favicon.svg": ("favicon.svg", "image/svg+xml"),
}
PATHS = frozenset(FILES)  # the auth middleware lets these through without a token

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _serve(name: str, content_type: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        body = (WEB / name).read_bytes()  # read per request: a few KB, and edits show at once
        return web.Response(body=body, content_type=content_type, charset="utf-8", headers=HEADERS)

    return handler


def add_routes(app: web.Application) -> None:
    """The dashboard's routes on the API's app (not part of the API, so not in OpenAPI)."""
    for path, (name, content_type) in FILES.items():
        app.router.add_get(path, _serve(name, content_type))


class AccessLog(AccessLogger):
    """aiohttp's access log, less the token: a browser cannot set headers on a WebSocket,
    so the dashboard's /api/ws?token=... carries it in the query, which the log would keep."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if request is not None and "token" in request.query:
            request = request.clone(rel_url=request.rel_url.update_query(token="-"))
        super().log(request, response, time)
