"""The gateway's HTTP and WebSocket API (aiohttp): validation in front of the Gateway facade.

Handlers stay thin: they check the request, call the facade and turn its exceptions into
JSON errors. Every error body is {"error": short code, "reason": text}, so a client never
has to parse HTML or a traceback. The routes are described in openapi.py; a test holds
the two to the same set of paths and methods.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import re
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import contextmanager
from typing import Any

from aiohttp import WSCloseCode, web

from . import dashboard  # the web dashboard: its pages need no token
from .errors import CommandError
from .openapi import OPENAPI
from .ota_bundle import MAX_BUNDLE

log = logging.getLogger(__name__)

PUBLIC = frozenset({"/api/health", "/api/openapi.json"})  # no token needed
WS_PATH = "/api/ws"
EVENT_TYPES = frozenset({"state", "event", "availability", "device", "pending", "ota", "firmware"})
HEARTBEAT_S = 20.0  # WebSocket ping interval; a peer that stops answering is closed
HISTORY_MAX = 100_000
_NODE_ID = re.compile(r"[0-9a-fA-F]{16}")
_KEY = re.compile(r"[0-9a-fA-F]{32}")

GATEWAY: web.AppKey[Any] = web.AppKey("gateway", object)
TOKEN: web.AppKey[str] = web.AppKey("token", str)
SOCKETS: web.AppKey[weakref.WeakSet[web.WebSocketResponse]] = web.AppKey("sockets", object)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """An answer other than success, raised anywhere below a handler."""

    def __init__(self, status: int, error: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.error = error
        self.reason = reason


def _error(status: int, error: str, reason: str, **headers: str) -> web.Response:
    return web.json_response({"error": error, "reason": reason}, status=status, headers=headers)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    503: "unavailable",
    504: "timeout",
}


def _code(status: int) -> str:
    return _HTTP_CODES.get(status, "error")


# -- middleware ----------------------------------------------------------------------------


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if request.path == WS_PATH:  # browsers cannot set headers on a WebSocket
        return request.query.get("token")
    return None


@web.middleware
async def _auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in PUBLIC or request.path in dashboard.PATHS:
        return await handler(request)
    given = _bearer(request)
    if given is None:
        reason = "missing token: send the header 'Authorization: Bearer <token>'"
        return _error(401, "unauthorized", reason, **{"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(given.encode(), request.app[TOKEN].encode()):
        return _error(401, "unauthorized", "wrong token", **{"WWW-Authenticate": "Bearer"})
    return await handler(request)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """JSON for every failure: our own, aiohttp's (404, 405, 413) and unexpected ones."""
    try:
        return await handler(request)
    except ApiError as e:
        return _error(e.status, e.error, e.reason)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        text = e.text or ""
        reason = text.strip() if text and not text.startswith(f"{e.status}:") else e.reason
        if e.status == 404:
            reason = f"no such endpoint: {request.method} {request.path}"
        elif e.status == 405:
            allowed = e.headers.get("Allow", "")
            reason = f"{request.method} is not allowed on {request.path} (allowed: {allowed})"
        headers = {k: v for k, v in e.headers.items() if k in ("Allow", "WWW-Authenticate")}
        return _error(e.status, _code(e.status), reason, **headers)
    except Exception:
        log.exception("API %s %s failed", request.method, request.path)
        return _error(500, "internal", "the gateway failed on this request; see its log")


@contextmanager
def _facade():
    """Map the facade's exceptions to HTTP: KeyError 404, ValueError 400, CommandError."""
    try:
        yield
    except KeyError as e:
        raise ApiError(404, "not_found", str(e.args[0]) if e.args else "not found") from None
    except ValueError as e:
        raise ApiError(400, "bad_request", str(e)) from None
    except CommandError as e:
        raise ApiError(e.status, _code(e.status), e.reason) from None


# -- request checking ----------------------------------------------------------------------


class _NotJson(ValueError):
    pass


def _finite(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise _NotJson(f"the number {text} is out of range")
    return v


def _no_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not JSON")


def _loads(text: str) -> Any:
    """Strict JSON: no NaN or Infinity, which Python's json accepts by default."""
    return json.loads(text, parse_float=_finite, parse_constant=_no_constant)


async def _body(request: web.Request, allowed: set[str]) -> dict[str, Any]:
    """The JSON object in the request body; unknown fields are refused by name (typos)."""
    try:
        data = await request.json(loads=_loads)
    except _NotJson as e:
        raise ApiError(400, "bad_json", str(e)) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ApiError(400, "bad_json", f"the body is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "bad_request", "the body must be a JSON object")
    extra = sorted(set(data) - allowed)
    if extra:
        raise ApiError(400, "bad_request", f"unknown field {extra[0]!r}")
    return data


def _text(data: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    v = data.get(name)
    if v is None:
        if required:
            raise ApiError(400, "bad_request", f"field {name!r} is required")
        return None
    if not isinstance(v, str):
        raise ApiError(400, "bad_request", f"field {name!r} must be a string")
    return v


def _hex(value: str | None, name: str, pattern: re.Pattern[str], what: str) -> str:
    if value is None or not pattern.fullmatch(value):
        raise ApiError(400, "bad_request", f"field {name!r} must be {what}")
    return value.lower()


def _number(request: web.Request, name: str) -> float | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        v = float(raw)
    except ValueError:
        v = math.nan
    if not math.isfinite(v):
        raise ApiError(400, "bad_request", f"query {name!r} must be unix seconds, not {raw!r}")
    return v


# -- handlers ------------------------------------------------------------------------------


def _gw(request: web.Request) -> Any:
    return request.app[GATEWAY]


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(OPENAPI)


async def health(request: web.Request) -> web.Response:
    return web.json_response(_gw(request).health())


async def metrics(request: web.Request) -> web.Response:
    return web.json_response(_gw(request).metrics())


async def list_devices(request: web.Request) -> web.Response:
    return web.json_response(_gw(request).devices())


async def get_device(request: web.Request) -> web.Response:
    with _facade():
        return web.json_response(_gw(request).device(request.match_info["ref"]))


async def patch_device(request: web.Request) -> web.Response:
    data = await _body(request, {"name", "room"})
    name, room = _text(data, "name"), _text(data, "room")
    if name is not None and not name.strip():
        raise ApiError(400, "bad_request", "field 'name' must not be empty")
    with _facade():
        dev = await _gw(request).update(request.match_info["ref"], name=name, room=room)
    return web.json_response(dev)


async def delete_device(request: web.Request) -> web.Response:
    with _facade():
        await _gw(request).forget(request.match_info["ref"])
    return web.Response(status=204)


async def get_state(request: web.Request) -> web.Response:
    with _facade():
        dev = _gw(request).device(request.match_info["ref"])
    return web.json_response(dev["state"])


async def set_values(request: web.Request) -> web.Response:
    data = await _body(request, {"values", "fade_ms"})
    values = data.get("values")
    if not isinstance(values, dict) or not values:
        raise ApiError(400, "bad_request", "field 'values' must be a non-empty object")
    for cap, v in values.items():
        if isinstance(v, dict | list) or v is None:
            reason = f"values[{cap!r}] must be a number, true/false or a string"
            raise ApiError(400, "bad_request", reason)
    fade = data.get("fade_ms")
    if fade is not None and (isinstance(fade, bool) or not isinstance(fade, int) or fade < 0):
        raise ApiError(400, "bad_request", "field 'fade_ms' must be a whole number >= 0")
    with _facade():
        result = await _gw(request).set(request.match_info["ref"], values, fade_ms=fade)
    return web.json_response(result, status=202 if result.get("status") == "queued" else 200)


NODE_SETTINGS = {"interval", "name", "wifi"}  # what the firmware takes (node/runtime.py, ble.py)


async def get_config(request: web.Request) -> web.Response:
    with _facade():
        values = await _gw(request).node_config(request.match_info["ref"])
    return web.json_response(values)


async def patch_config(request: web.Request) -> web.Response:
    data = await _body(request, NODE_SETTINGS)
    if not data:
        raise ApiError(400, "bad_request", "the body must be a non-empty object of settings")
    with _facade():
        values = await _gw(request).node_config(request.match_info["ref"], data)
    return web.json_response(values, status=202 if values.get("status") == "queued" else 200)


async def history(request: web.Request) -> web.Response:
    since, until = _number(request, "since"), _number(request, "until")
    raw = request.query.get("limit", "1000")
    if not raw.isdigit() or not 1 <= int(raw) <= HISTORY_MAX:
        reason = f"query 'limit' must be a whole number 1..{HISTORY_MAX}, not {raw!r}"
        raise ApiError(400, "bad_request", reason)
    ref, cap = request.match_info["ref"], request.match_info["cap"]
    with _facade():
        points = await _gw(request).history(ref, cap, since=since, until=until, limit=int(raw))
    return web.json_response(points)


async def list_pending(request: web.Request) -> web.Response:
    return web.json_response(_gw(request).pending())


async def _adopt(request: web.Request, node_id: str, data: dict[str, Any]) -> web.Response:
    key = _hex(_text(data, "key", required=True), "key", _KEY, "32 hex digits (16 bytes)")
    name, room = _text(data, "name"), _text(data, "room")
    with _facade():
        dev = await _gw(request).adopt(node_id, key, name=name, room=room)
    return web.json_response(dev, status=201, headers={"Location": f"/api/devices/{dev['id']}"})


async def adopt_pending(request: web.Request) -> web.Response:
    node_id = request.match_info["id"].lower()
    if not any(p.get("id") == node_id for p in _gw(request).pending()):
        reason = f"node {node_id} is not pending; POST /api/devices adopts ahead of time"
        raise ApiError(404, "not_found", reason)
    return await _adopt(request, node_id, await _body(request, {"key", "name", "room"}))


# -- BTHome sensors of other makes (gateway/ble/bthome.py) ---------------------------------


async def add_bthome(request: web.Request) -> web.Response:
    data = await _body(request, {"address", "bindkey", "insecure", "name", "room"})
    address = _text(data, "address", required=True)
    bindkey = _text(data, "bindkey")
    if bindkey is not None:
        bindkey = _hex(bindkey, "bindkey", _KEY, "32 hex digits (16 bytes)")
    insecure = data.get("insecure", False)
    if not isinstance(insecure, bool):
        raise ApiError(400, "bad_request", "field 'insecure' must be true or false")
    with _facade():
        dev = await _gw(request).adopt_bthome(
            address, bindkey, insecure, name=_text(data, "name"), room=_text(data, "room")
        )
    return web.json_response(dev, status=201, headers={"Location": f"/api/devices/{dev['id']}"})


# -- end BTHome --


async def add_device(request: web.Request) -> web.Response:
    data = await _body(request, {"id", "key", "name", "room"})
    node_id = _hex(_text(data, "id", required=True), "id", _NODE_ID, "16 hex digits")
    return await _adopt(request, node_id, data)


# -- updates over the air (gateway/ota.py) -------------------------------------------------


def _flag(request: web.Request, data: dict[str, Any], name: str) -> bool:
    """A JSON field true/false, else the query's 1/true/yes (anything else is false)."""
    if name not in data:
        return request.query.get(name, "").lower() in ("1", "true", "yes")
    if not isinstance(data[name], bool):
        raise ApiError(400, "bad_request", f"field {name!r} must be true or false")
    return data[name]


async def _bundle_body(request: web.Request, fields: set[str]) -> tuple[bytes | str, dict]:
    """The bundle as the request body (application/octet-stream, the other settings in the
    query), or a JSON object whose "path" names a bundle file on the gateway's machine."""
    if request.content_type == "application/json":
        data = await _body(request, {"path", *fields})
        return _text(data, "path", required=True) or "", data
    if request.content_type != "application/octet-stream":
        reason = 'send the bundle as application/octet-stream, or JSON {"path": ...}'
        raise ApiError(415, "unsupported_media_type", reason)
    raw = bytearray()
    async for piece in request.content.iter_chunked(1 << 16):
        raw += piece
        if len(raw) > MAX_BUNDLE:
            raise ApiError(413, "too_large", f"a bundle holds at most {MAX_BUNDLE} bytes")
    return bytes(raw), {}


async def start_ota(request: web.Request) -> web.Response:
    bundle, data = await _bundle_body(request, {"force"})
    force = _flag(request, data, "force")
    ref = request.match_info["ref"]
    with _facade():
        job = await _gw(request).ota(ref, bundle, force=force)
    return web.json_response(job, status=202, headers={"Location": request.path})


async def get_ota(request: web.Request) -> web.Response:
    with _facade():
        return web.json_response(_gw(request).ota_status(request.match_info["ref"]))


async def cancel_ota(request: web.Request) -> web.Response:
    with _facade():
        return web.json_response(await _gw(request).ota_cancel(request.match_info["ref"]))


async def start_rollout(request: web.Request) -> web.Response:
    bundle, data = await _bundle_body(request, {"force", "type", "devices"})
    force = _flag(request, data, "force")
    type_ = data.get("type", request.query.get("type"))
    refs = data.get("devices", request.query.get("devices"))
    if isinstance(refs, str):
        refs = [r for r in refs.split(",") if r]
    if type_ is not None and not isinstance(type_, str):
        raise ApiError(400, "bad_request", "field 'type' must be a string")
    if refs is not None and not (isinstance(refs, list) and all(isinstance(r, str) for r in refs)):
        raise ApiError(400, "bad_request", "field 'devices' must be a list of names or ids")
    with _facade():
        r = await _gw(request).ota_rollout(bundle, type_, refs, force=force)
    return web.json_response(r, status=202, headers={"Location": request.path})


async def get_rollout(request: web.Request) -> web.Response:
    with _facade():
        return web.json_response(_gw(request).ota_rollout_status())


async def cancel_rollout(request: web.Request) -> web.Response:
    with _facade():
        return web.json_response(await _gw(request).ota_rollout_cancel())


async def get_firmware(request: web.Request) -> web.Response:  # the firmware shelf
    return web.json_response(await _gw(request).firmware_list())


async def websocket(request: web.Request) -> web.WebSocketResponse:
    """Every bus event as one JSON text message, in publish order.

    The subscription is made before the handshake completes, so a client that has seen
    the upgrade receives every event published after it. ?types=state,event filters.
    """
    kinds = None
    if request.query.get("types"):
        kinds = {t.strip() for t in request.query["types"].split(",") if t.strip()}
        unknown = sorted(kinds - EVENT_TYPES)
        if unknown:
            raise ApiError(400, "bad_request", f"query 'types': unknown event type {unknown[0]!r}")
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S)
    if not ws.can_prepare(request).ok:
        reason = f"{WS_PATH} takes a WebSocket upgrade (Connection: Upgrade, Upgrade: websocket)"
        raise ApiError(400, "bad_request", reason)
    sub = _gw(request).bus.subscribe(kinds=kinds)
    try:
        await ws.prepare(request)
        request.app[SOCKETS].add(ws)
        sender = asyncio.create_task(_pump(sub, ws))
        try:
            async for _ in ws:  # nothing to read; this ends when the client goes
                pass
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
    finally:
        sub.close()
    return ws


async def _pump(events: AsyncIterator[Any], ws: web.WebSocketResponse) -> None:
    try:
        async for ev in events:
            if ws.closed:
                return
            await ws.send_str(json.dumps(ev.to_json()))
    except ConnectionError:
        return
    except Exception:  # an event that cannot be sent: close rather than go silent
        log.exception("WebSocket event stream failed")
        await ws.close(code=WSCloseCode.INTERNAL_ERROR, message=b"gateway error")


async def _close_sockets(app: web.Application) -> None:
    for ws in list(app[SOCKETS]):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"gateway stopping")


# -- assembly ------------------------------------------------------------------------------


def make_app(gw: Any, token: str) -> web.Application:
    """The API for one Gateway facade; every route but health and openapi needs `token`."""
    if not token:
        raise ValueError("the API needs a non-empty token")
    app = web.Application(middlewares=[_errors, _auth], client_max_size=64 * 1024)
    app[GATEWAY] = gw
    app[TOKEN] = token
    app[SOCKETS] = weakref.WeakSet()
    app.on_shutdown.append(_close_sockets)
    r = app.router
    r.add_get("/api/openapi.json", openapi, allow_head=False)
    r.add_get("/api/health", health, allow_head=False)
    r.add_get("/api/metrics", metrics, allow_head=False)
    r.add_get("/api/devices", list_devices, allow_head=False)
    r.add_post("/api/devices", add_device)
    r.add_get("/api/devices/{ref}", get_device, allow_head=False)
    r.add_patch("/api/devices/{ref}", patch_device)
    r.add_delete("/api/devices/{ref}", delete_device)
    r.add_get("/api/devices/{ref}/state", get_state, allow_head=False)
    r.add_post("/api/devices/{ref}/set", set_values)
    r.add_get("/api/devices/{ref}/history/{cap}", history, allow_head=False)
    r.add_get("/api/devices/{ref}/config", get_config, allow_head=False)
    r.add_patch("/api/devices/{ref}/config", patch_config)
    r.add_get("/api/pending", list_pending, allow_head=False)
    r.add_post("/api/pending/{id}/adopt", adopt_pending)
    r.add_post("/api/bthome", add_bthome)  # BTHome sensors of other makes
    r.add_post("/api/devices/{ref}/ota", start_ota)  # OTA
    r.add_get("/api/devices/{ref}/ota", get_ota, allow_head=False)
    r.add_delete("/api/devices/{ref}/ota", cancel_ota)
    r.add_post("/api/ota", start_rollout)
    r.add_get("/api/ota", get_rollout, allow_head=False)
    r.add_delete("/api/ota", cancel_rollout)
    r.add_get("/api/firmware", get_firmware, allow_head=False)  # the firmware shelf
    r.add_get(WS_PATH, websocket, allow_head=False)
    return app


async def start_api(gw: Any, host: str, port: int, token: str) -> web.AppRunner:
    """Serve the API on host:port (0: any free port) and return the started runner.

    The bound address is `runner.addresses[0]` (so the port is `runner.addresses[0][1]`);
    stop with `await runner.cleanup()`, which closes open WebSockets first.
    """
    app = make_app(gw, token)
    dashboard.add_routes(app)  # the web dashboard at /: pages beside the API, not in OpenAPI
    runner = web.AppRunner(app, shutdown_timeout=5.0, access_log_class=dashboard.AccessLog)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
