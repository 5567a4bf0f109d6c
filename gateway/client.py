"""A small asyncio client of the gateway's HTTP API (aiohttp), used by the `kithnet` CLI.

It turns every failure into one of two exceptions a caller can word for a person:
Unreachable (nothing answers at the URL) and ApiError (the gateway answered with an error).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import aiohttp

DEFAULT_URL = "http://127.0.0.1:47880"


class ClientError(Exception):
    """Anything the client could not do, with a message for a person."""


class Unreachable(ClientError):
    def __init__(self, url: str, detail: str) -> None:
        super().__init__(f"the gateway is not running at {url} ({detail})")
        self.url = url


class ApiError(ClientError):
    def __init__(self, status: int, error: str, reason: str) -> None:
        super().__init__(f"{reason} ({status} {error})")
        self.status = status
        self.error = error
        self.reason = reason


def _seg(s: str) -> str:
    return quote(s, safe="")  # a device name may hold spaces or slashes


class Client:
    """async with Client(url, token) as c: await c.devices()"""

    def __init__(self, url: str = DEFAULT_URL, token: str | None = None, timeout: float = 60):
        self.url = url.rstrip("/")
        self.token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self._session = aiohttp.ClientSession(headers=headers, timeout=self._timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(
        self, method: str, path: str, body: Any = None, data: bytes | None = None, **query: Any
    ) -> Any:
        """The decoded JSON answer (None for 204); raises Unreachable or ApiError. `data`
        is sent as application/octet-stream instead of `body` as JSON."""
        assert self._session is not None, "use the client as `async with`"
        params = {k: str(v) for k, v in query.items() if v is not None}
        send: dict[str, Any] = {"json": body}
        if data is not None:
            send = {"data": data, "headers": {"Content-Type": "application/octet-stream"}}
        try:
            async with self._session.request(method, self.url + path, params=params, **send) as r:
                text = await r.text()
                status = r.status
        except aiohttp.ClientConnectorError as e:
            raise Unreachable(self.url, e.strerror or str(e.os_error)) from None
        except aiohttp.ClientError as e:
            raise Unreachable(self.url, str(e) or type(e).__name__) from None
        except TimeoutError:
            raise Unreachable(self.url, "no answer in time") from None
        try:
            data = json.loads(text) if text else None
        except ValueError:
            data = None
        if status >= 400:
            if isinstance(data, dict) and "error" in data:
                raise ApiError(status, str(data["error"]), str(data.get("reason", "")))
            raise ApiError(status, "http", text[:200] or f"HTTP {status}")
        return data

    # -- endpoints ---------------------------------------------------------------------

    async def health(self) -> dict:
        return await self.request("GET", "/api/health")

    async def metrics(self) -> dict:
        return await self.request("GET", "/api/metrics")

    async def devices(self) -> list[dict]:
        return await self.request("GET", "/api/devices")

    async def device(self, ref: str) -> dict:
        return await self.request("GET", f"/api/devices/{_seg(ref)}")

    async def state(self, ref: str) -> dict:
        return await self.request("GET", f"/api/devices/{_seg(ref)}/state")

    async def update(self, ref: str, name: str | None = None, room: str | None = None) -> dict:
        body = {k: v for k, v in (("name", name), ("room", room)) if v is not None}
        return await self.request("PATCH", f"/api/devices/{_seg(ref)}", body)

    async def forget(self, ref: str) -> None:
        await self.request("DELETE", f"/api/devices/{_seg(ref)}")

    async def set(self, ref: str, values: dict[str, Any], fade_ms: int | None = None) -> dict:
        body: dict[str, Any] = {"values": values}
        if fade_ms is not None:
            body["fade_ms"] = fade_ms
        return await self.request("POST", f"/api/devices/{_seg(ref)}/set", body)

    async def node_config(self, ref: str, values: dict[str, Any] | None = None) -> dict:
        """The node's own settings; with values, set those first (PATCH)."""
        path = f"/api/devices/{_seg(ref)}/config"
        if values is None:
            return await self.request("GET", path)
        return await self.request("PATCH", path, values)

    async def history(
        self,
        ref: str,
        cap: str,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
    ) -> list[dict]:
        path = f"/api/devices/{_seg(ref)}/history/{_seg(cap)}"
        return await self.request("GET", path, since=since, until=until, limit=limit)

    async def pending(self) -> list[dict]:
        return await self.request("GET", "/api/pending")

    async def adopt(
        self, node_id: str, key: str, name: str | None = None, room: str | None = None
    ) -> dict:
        """Adopt a node, pending or not yet seen (POST /api/devices)."""
        body = {"id": node_id, "key": key, "name": name, "room": room}
        return await self.request("POST", "/api/devices", {k: v for k, v in body.items() if v})

    async def adopt_bthome(
        self,
        address: str,
        bindkey: str | None = None,
        insecure: bool = False,
        name: str | None = None,
        room: str | None = None,
    ) -> dict:
        """Adopt a BTHome v2 sensor of another make (POST /api/bthome)."""
        body = {"address": address, "bindkey": bindkey, "insecure": insecure, "name": name,
                "room": room}  # fmt: skip
        return await self.request("POST", "/api/bthome", {k: v for k, v in body.items() if v})

    # OTA: updates over the air
    async def ota(self, ref: str, bundle: bytes, force: bool = False) -> dict:
        """Start updating a node with a bundle's bytes; the job's status."""
        path = f"/api/devices/{_seg(ref)}/ota"
        return await self.request("POST", path, data=bundle, force="true" if force else None)

    async def ota_status(self, ref: str) -> dict:
        return await self.request("GET", f"/api/devices/{_seg(ref)}/ota")

    async def ota_cancel(self, ref: str) -> dict:
        return await self.request("DELETE", f"/api/devices/{_seg(ref)}/ota")

    async def rollout(
        self,
        bundle: bytes,
        type_: str | None = None,
        devices: list[str] | None = None,
        force: bool = False,
    ) -> dict:
        """Update every device of a type (or these, in order), one at a time."""
        return await self.request(
            "POST", "/api/ota", data=bundle, type=type_,
            devices=",".join(devices) if devices else None, force="true" if force else None,
        )  # fmt: skip

    async def rollout_status(self) -> dict:
        return await self.request("GET", "/api/ota")

    async def events(self, types: list[str] | None = None) -> AsyncIterator[dict]:
        """Connect to the event WebSocket; then iterate its events (dicts) until it closes.

        Once this returns, every event the gateway publishes is delivered:
        `async for ev in await client.events(): ...`
        """
        assert self._session is not None, "use the client as `async with`"
        params = {"types": ",".join(types)} if types else {}
        try:
            ws = await self._session.ws_connect(self.url + "/api/ws", params=params)
        except aiohttp.WSServerHandshakeError as e:
            raise ApiError(e.status, "websocket", e.message) from None
        except aiohttp.ClientConnectorError as e:
            raise Unreachable(self.url, e.strerror or str(e.os_error)) from None
        return _messages(ws)


async def _messages(ws: aiohttp.ClientWebSocketResponse) -> AsyncIterator[dict]:
    async with ws:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                yield json.loads(msg.data)
