"""DNS-SD with python-zeroconf: the gateway advertises GATEWAY_SERVICE (nodes find it
without configuration) and browses NODE_SERVICE (a node that announces itself is known
before its first hello: an unknown one is listed as pending, with how to adopt it).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import TYPE_CHECKING, Any

from kithnet.protocol import discovery as D
from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from .bus import Event

if TYPE_CHECKING:
    from .service import Gateway

log = logging.getLogger("kithnet.discovery")


class Discovery:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.zc: AsyncZeroconf | None = None
        self.browser: AsyncServiceBrowser | None = None
        self.info: AsyncServiceInfo | None = None
        self.seen: dict[str, dict[str, Any]] = {}  # service name -> what its record said
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        cfg = self.gw.config
        ifaces = cfg.interfaces if cfg.interfaces else None
        if ifaces:
            self.zc = AsyncZeroconf(interfaces=ifaces)
        else:
            self.zc = AsyncZeroconf(ip_version=IPVersion.V4Only)
        addrs = ifaces or _addresses()
        host = socket.gethostname().split(".")[0] or "kithnet"
        self.info = AsyncServiceInfo(
            D.GATEWAY_SERVICE,
            f"{cfg.name}.{D.GATEWAY_SERVICE}",
            port=self.gw.udp_port,
            properties={D.TXT_PROTOCOL: "1", "api": str(self.gw.http_port)},
            server=f"{host}-kithnet.local.",
            parsed_addresses=addrs,
        )
        await self.zc.async_register_service(self.info, allow_name_change=True)
        self.browser = AsyncServiceBrowser(
            self.zc.zeroconf, [D.NODE_SERVICE], handlers=[self._changed]
        )
        log.info(
            "DNS-SD: advertising %s on %s, browsing %s",
            self.info.name,
            ", ".join(addrs),
            D.NODE_SERVICE,
        )

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        if self.browser is not None:
            await self.browser.async_cancel()
        if self.zc is not None:
            await self.zc.async_close()

    def _changed(
        self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is ServiceStateChange.Removed:
            self.seen.pop(name, None)
            return
        t = asyncio.ensure_future(self._resolve(service_type, name))
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def _resolve(self, service_type: str, name: str) -> None:
        info = AsyncServiceInfo(service_type, name)
        if not await info.async_request(self.zc.zeroconf, 3000):
            return
        props = info.decoded_properties
        node = (props.get(D.TXT_ID) or "").lower()
        addrs = info.parsed_scoped_addresses()
        rec = {
            "id": node, "model": props.get(D.TXT_MODEL), "firmware": props.get(D.TXT_FIRMWARE),
            "type": props.get(D.TXT_TYPE), "sleepy": props.get(D.TXT_SLEEPY) == "1",
            "address": f"{addrs[0]}:{info.port}" if addrs else None, "service": name,
        }  # fmt: skip
        self.seen[name] = rec
        try:
            nid = bytes.fromhex(node)
        except ValueError:
            return
        if len(nid) != 8 or self.gw.device_of(nid) is not None:
            return
        pend = self.gw.pending_nodes
        now = time.time()
        if node not in pend and len(pend) < 1000:
            pend[node] = {"id": node, "first_seen": now, "hellos": 0, "via": "dns-sd"}
            log.warning(
                "unknown node %s (%s) announces itself at %s: adopt it with "
                "`kithnet adopt %s --key <its key>`",
                node,
                rec["model"],
                rec["address"],
                node,
            )
            self.gw.bus.publish(Event("pending", node, {"model": rec["model"]}, now))
        if node in pend:
            pend[node].update(
                {k: v for k, v in rec.items() if k not in ("id", "service")}, last_seen=now
            )


def _addresses() -> list[str]:
    """This host's IPv4 addresses, loopback last (zeroconf answers A queries with them)."""
    out: list[str] = []
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            a = info[4][0]
            if a not in out:
                out.append(a)
    except OSError:
        pass
    out.sort(key=lambda a: a.startswith("127."))
    return out or ["127.0.0.1"]
