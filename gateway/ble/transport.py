"""BLE for the gateway: sealed advertisements in through bleak's scanner, commands out
over GATT through bleak's client, into and out of the same state, history and bus path
as UDP (service.Gateway._report, _event, _applied).

Advertisements: the detection callback takes the kithnet Manufacturer Specific Data
(SPEC 13), finds the nodes whose id starts with the frame's kid, and opens the broadcast
frame under each one's broadcast key with that node's replay window (SPEC 5.5, 7): repeats
of an advertisement are duplicates, older ones replays, both dropped; the windows are
persisted in the registry (store.py, table broadcast) before the readings they let in, so
a replay is refused after a gateway restart too. Advertisements of other makes (another
company id, anything else) are counted and otherwise ignored, except BTHome v2 service
data (UUID 0xFCD2), which goes to bthome.py (BTHome sensors of other makes, adopted).

GATT: a command (Gateway.set), a config-get or -set (Gateway.node_config, Wi-Fi
provisioning too) or the first contact with a node whose capabilities are unknown connects
with bleak-retry-connector's establish_connection, subscribes, writes BLE_OPEN, and runs
the session engine of sessions.py over the connection (gatt.py). Connections close when
idle. A sleeping node's command waits until it is next heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError
from bleak_retry_connector import establish_connection
from kithnet.protocol import discovery, errors, frame, keys, session
from kithnet.protocol import messages as M
from kithnet.protocol.errors import ProtocolError
from kithnet.protocol.replay import ReplayWindow

from ..devices import Device
from ..errors import CommandError
from . import bthome
from .gatt import Connection, GattSessions
from .virtual import backends

log = logging.getLogger("kithnet.ble")

_COMPANY = discovery.BLE_COMPANY_ID
_BROADCAST = frame.BROADCAST
_REPORT = M.REPORT
_IDLE_S = 3.0  # a GATT connection unused this long is closed
_AWAKE_S = 1.5  # a sleepy node heard this recently is still advertising its burst
_CAPS_RETRY_S = 15.0  # first contact with a node of unknown capabilities: this often at most
_SESSION_WAIT_S = 10.0


class _Node:
    """What the gateway keeps per broadcasting node."""

    __slots__ = (
        "accepted",
        "address",
        "caps_at",
        "caps_task",
        "deliver",
        "dirty",
        "due",
        "heard",
        "key",
        "lock",
        "nk",
        "pending",
        "queued",
        "refused",
        "waiter",
        "window",
    )  # fmt: skip

    def __init__(self, dev: Device) -> None:
        self.nk = dev.key  # the node key K_b comes from (a re-keyed node starts anew)
        self.key = keys.broadcast_key(dev.key, dev.node_id)
        self.window = ReplayWindow()
        self.address: str | None = None
        self.due: int | None = None  # seconds, from the node's hello (advertisements carry none)
        self.dirty = False
        self.heard = 0.0  # monotonic time of its last new advertisement
        self.pending: tuple[dict, tuple] | None = None  # a report that came before its caps
        self.queued: dict[int, Any] = {}  # commands for a sleeping node
        self.deliver: asyncio.Task | None = None
        self.caps_at = -1e9
        self.caps_task: asyncio.Task | None = None
        self.lock = asyncio.Lock()
        self.waiter: asyncio.Future | None = None
        self.accepted = 0  # new advertisements
        self.refused = 0  # repeats and replays (inside or older than the window)


class _Owner:
    """The owner interface of sessions.py for sessions over GATT: the gateway's, plus
    what BLE needs to know (the hello's DUE, the session being up)."""

    def __init__(self, t: BleTransport) -> None:
        self.t = t
        self.gw = t.gw

    def device_of(self, node_id: bytes) -> Device | None:
        return self.gw.device_of(node_id)

    def on_unknown(self, body: dict, addr: tuple) -> None:
        self.gw.on_unknown(body, (f"BLE {addr[1]}", 0))

    def on_hello(self, dev: Device, body: dict, addr: tuple) -> None:
        self.gw.on_hello(dev, body, addr)
        st = self.t.node(dev)
        due = body.get(M.DUE)
        if isinstance(due, int) and due != st.due:
            st.due = due
            st.dirty = True
        if dev.caps and st.pending is not None:  # the report that waited for the caps
            pending, st.pending = st.pending, None
            self.gw._report(dev, pending[0], pending[1], None)
        self.t.schedule_flush()

    def on_session(self, dev: Device, addr: tuple) -> None:
        self.gw.on_session(dev, addr)
        st = self.t.node(dev)
        if st.waiter is not None and not st.waiter.done():
            st.waiter.set_result(None)

    def on_batch(self) -> None:
        self.gw.on_batch()

    def on_message(self, dev: Device, mtype: int, body: dict, addr: tuple, ack: Any) -> None:
        self.gw.on_message(dev, mtype, body, addr, ack)
        self.t.schedule_flush()


class BleTransport:
    def __init__(self, gw: Any, setting: str) -> None:
        self.gw = gw
        self.setting = setting
        self.scanner_backend, self.client_backend, self.kwargs = backends(setting)
        self.nodes: dict[bytes, _Node] = {}
        self.by_kid: dict[int, list[Device]] = {}
        self._kid_n = -1
        self._kid_at = -1e9
        self.seen: dict[str, BLEDevice] = {}  # BLE address -> the scanner's latest BLEDevice
        self.conns: dict[str, Connection] = {}
        self.gatt = GattSessions(_Owner(self), self.conns.get)
        self.scanner: BleakScanner | None = None
        self.counts = {"adverts": 0, "foreign": 0, "accepted": 0, "duplicates": 0,
                       "connections": 0, "connect_failed": 0}  # fmt: skip
        self.dropped: dict[str, int] = {}
        self._logged: set[tuple[bytes, str]] = set()
        self._flush_handle: asyncio.Handle | None = None
        self._tasks: list[asyncio.Task] = []
        by_num = {d.num: d for d in gw.devices_by_id.values()}
        for num, highest, bits, address, due in gw.store.load_broadcast():
            dev = by_num.get(num)
            if dev is not None:
                st = self.node(dev)
                st.window.highest = highest
                st.window.bits = int.from_bytes(bits, "big")
                st.address, st.due = address, due
        self.bthome = bthome.BTHome(self)  # BTHome: sensors of other makes (bthome.py)

    # -- life ------------------------------------------------------------------------

    async def start(self) -> None:
        kw: dict[str, Any] = dict(self.kwargs)
        if self.scanner_backend is None:  # BlueZ: passive, only kithnet's company id
            from bleak.args.bluez import OrPattern
            from bleak.assigned_numbers import AdvertisementDataType

            pattern = OrPattern(0, AdvertisementDataType.MANUFACTURER_SPECIFIC_DATA,
                                _COMPANY.to_bytes(2, "little"))  # fmt: skip
            # BTHome: its service data too (UUID 0xFCD2, little-endian)
            bt = OrPattern(0, AdvertisementDataType.SERVICE_DATA_UUID16, b"\xd2\xfc")
            kw["bluez"] = {"or_patterns": [pattern, bt]}
        else:
            kw["backend"] = self.scanner_backend
        self.scanner = BleakScanner(self.on_advertisement, None, "passive", **kw)
        await self.scanner.start()
        self._tasks = [asyncio.get_running_loop().create_task(self._every_tick())]
        log.info("BLE: scanning (%s)", self.setting)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        if self.scanner is not None:
            with contextlib.suppress(BleakError, OSError):
                await self.scanner.stop()
            self.scanner = None
        for address in list(self.conns):
            await self._close(address)
        self._flush()

    async def _every_tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(0.1)
            try:
                self.gatt.tick()
                now = loop.time()
                for address, c in list(self.conns.items()):
                    if not c.busy and now - c.used > _IDLE_S:
                        await self._close(address)
            except Exception:
                log.exception("BLE tick failed")

    # -- advertisements ----------------------------------------------------------------

    def node(self, dev: Device) -> _Node:
        st = self.nodes.get(dev.node_id)
        if st is None or st.nk != dev.key:
            old = st
            st = self.nodes[dev.node_id] = _Node(dev)
            if old is not None:  # re-keyed: a new counter may start anywhere
                st.address, st.due = old.address, old.due
        return st

    def _candidates(self, kid: int) -> list[Device]:
        devs = self.gw.devices_by_id
        found = self.by_kid.get(kid)
        now = time.monotonic()
        if len(devs) != self._kid_n or (not found and now - self._kid_at > 1.0):
            self._kid_n, self._kid_at = len(devs), now
            by: dict[int, list[Device]] = {}
            for d in devs.values():
                if d.type == bthome.TYPE:  # BTHome devices send no kithnet frames
                    continue
                by.setdefault((d.node_id[0] << 8) | d.node_id[1], []).append(d)
            self.by_kid = by
            found = by.get(kid)
        return found or []

    def _drop(self, why: str, node: bytes | None, detail: str) -> None:
        self.dropped[why] = self.dropped.get(why, 0) + 1
        key = (node or b"", why)
        if key not in self._logged and len(self._logged) < 10000:
            self._logged.add(key)
            who = f"node {node.hex()}" if node else "an unknown BLE sender"
            log.warning(
                "dropped an advertisement from %s: %s (%s); further ones are only counted",
                who, why, detail,
            )  # fmt: skip

    def on_advertisement(self, device: BLEDevice, adv: AdvertisementData) -> None:
        """bleak's detection callback: one advertising event."""
        self.counts["adverts"] += 1
        data = adv.manufacturer_data.get(_COMPANY)
        if data is None:
            self.counts["foreign"] += 1  # another make's: not ours to judge or log
            svc = adv.service_data.get(bthome.UUID)  # BTHome: unless it is a BTHome sensor
            if svc is not None:
                self.bthome.on_advertisement(device.address, adv.local_name, adv.rssi, svc)
            return
        try:
            p = frame.parse(data)
            if p[0] != _BROADCAST or p[1]:
                raise ProtocolError(errors.MALFORMED, "not a node's broadcast frame")
            if len(data) > discovery.BLE_FRAME_MAX:
                raise ProtocolError(errors.LIMIT, "frame longer than an advertisement holds")
        except ProtocolError as e:
            self._drop(errors.name(e.code), None, e.why)
            return
        cands = self._candidates(p[3])
        if not cands:
            self._drop("unknown-node", p[3].to_bytes(2, "big"),
                       f"no adopted node's id starts with {p[3]:04x}")  # fmt: skip
            return
        err: ProtocolError | None = None
        for dev in cands:
            st = self.node(dev)
            try:
                _seq, mtype, body, new = session.open_broadcast(data, p, st.key, dev.node_id,
                                                               st.window)  # fmt: skip
            except ProtocolError as e:
                err = e
                continue
            break
        else:
            assert err is not None
            if len(cands) == 1 and err.code == errors.REPLAY:
                st.refused += 1
            self._drop(errors.name(err.code), cands[0].node_id if len(cands) == 1 else None,
                       err.why)  # fmt: skip
            return
        if not new:
            self.counts["duplicates"] += 1  # the node repeats each advertisement: normal
            st.refused += 1
            return
        self.counts["accepted"] += 1
        st.accepted += 1
        st.dirty = True
        st.heard = time.monotonic()
        address = device.address
        if st.address != address:
            st.address = address
        self.seen[address] = device
        addr = dev.addr if (dev.addr and dev.addr[0] != "ble" and dev.session is not None
                            ) else ("ble", address)  # fmt: skip
        self.schedule_flush()
        if mtype == _REPORT:
            if not dev.caps:
                st.pending = (body, addr)  # applied once its hello (over GATT) gives the caps
                self._want_caps(dev, st)
                return
            self.gw._report(dev, body, addr, None)
            if st.due:
                dev.seen(addr, st.due)
        elif mtype == M.EVENT:
            self.gw._event(dev, body, addr, None)
        else:
            self._drop("unexpected", dev.node_id, f"a {M.name(mtype)} in a broadcast frame")
            return
        if (st.queued or dev.settings) and (st.deliver is None or st.deliver.done()):
            st.deliver = asyncio.get_running_loop().create_task(self._deliver(dev, st))

    def schedule_flush(self) -> None:
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Once per turn of the loop: the windows that moved go to the store first, then
        the readings they let in (Gateway.on_batch)."""
        self._flush_handle = None
        rows = []
        for nid, st in self.nodes.items():
            if st.dirty:
                st.dirty = False
                dev = self.gw.devices_by_id.get(nid)
                if dev is not None and dev.num > 0:
                    w = st.window
                    rows.append((dev.num, w.highest, w.bits.to_bytes(8, "big"), st.address,
                                 st.due))  # fmt: skip
        if rows and self.gw.store is not None:
            self.gw.store.put_broadcast(rows)
        self.gw.on_batch()

    # -- GATT --------------------------------------------------------------------------

    def serves(self, dev: Device) -> bool:
        """True for a node that takes its commands over BLE (heard on BLE, no UDP session)."""
        st = self.nodes.get(dev.node_id)
        if st is None or st.address is None:
            return False
        return dev.session is None or dev.session.sid in self.gatt.by_sid

    def _want_caps(self, dev: Device, st: _Node) -> None:
        now = time.monotonic()
        if (
            st.caps_task is not None and not st.caps_task.done()
        ) or now - st.caps_at < _CAPS_RETRY_S:
            return
        st.caps_at = now

        async def go() -> None:
            try:
                await self._open(dev, st)
                log.info("%s (%s): capabilities read over GATT", dev.name, dev.hex)
            except (BleakError, TimeoutError, ConnectionError, OSError) as e:
                key = (dev.node_id, "caps")
                if key not in self._logged:
                    self._logged.add(key)
                    log.warning(
                        "%s (%s) is heard on BLE but its capabilities are unknown and it did "
                        "not take a connection (%s): power-cycle it (it pairs for a while "
                        "after a power-on) or let it say hello over Wi-Fi", dev.name, dev.hex, e,
                    )  # fmt: skip
            finally:
                if st.address is not None:
                    await self._close(st.address)

        st.caps_task = asyncio.get_running_loop().create_task(go())

    async def _open(self, dev: Device, st: _Node) -> Connection:
        """A connection to the node with a session on it (a new handshake when new)."""
        async with st.lock:
            address = st.address
            if address is None:
                raise ConnectionError("never heard on BLE")
            conn = self.conns.get(address)
            if (conn is not None and conn.client.is_connected and dev.session is not None
                    and dev.session.sid in self.gatt.by_sid):  # fmt: skip
                return conn
            if conn is not None:
                await self._close(address)
            device = self.seen.get(address) or BLEDevice(address, None, dict(self.kwargs))
            try:
                client = await establish_connection(
                    BleakClient, device, dev.name,
                    disconnected_callback=lambda _c: self._lost(address),
                    max_attempts=2, backend=self.client_backend, **self.kwargs,
                )  # fmt: skip
            except BleakError:
                self.counts["connect_failed"] += 1
                raise
            self.counts["connections"] += 1
            conn = self.conns[address] = Connection(client, address)
            conn.used = asyncio.get_running_loop().time()
            st.waiter = asyncio.get_running_loop().create_future()
            try:
                await client.start_notify(
                    discovery.BLE_FRAME_CHAR,
                    lambda _c, data: self.gatt.datagram_received(bytes(data), ("ble", address)),
                )
                await client.write_gatt_char(discovery.BLE_FRAME_CHAR, discovery.BLE_OPEN, True)
                await asyncio.wait_for(st.waiter, _SESSION_WAIT_S)
            except BaseException:
                await self._close(address)
                raise
            return conn

    def _lost(self, address: str) -> None:
        """The node ended the connection (or went to sleep, or away)."""
        conn = self.conns.pop(address, None)
        if conn is not None:
            conn.writer.cancel()
        self._end(address)

    def _end(self, address: str) -> None:
        for st_id, st in self.nodes.items():
            if st.address == address:
                dev = self.gw.devices_by_id.get(st_id)
                if (
                    dev is not None
                    and dev.session is not None
                    and dev.session.sid in self.gatt.by_sid
                ):
                    self.gatt.end(dev)

    async def _close(self, address: str) -> None:
        conn = self.conns.pop(address, None)
        if conn is not None:
            await conn.close()
        self._end(address)

    async def request(self, dev: Device, mtype: int, body: dict, timeout: float | None = None):
        """(type, body) of the node's answer to a request over GATT; CommandError if none."""
        timeout = timeout or self.gw.config.command_timeout_s
        st = self.node(dev)
        loop = asyncio.get_running_loop()
        try:
            conn = await asyncio.wait_for(self._open(dev, st), timeout)
            conn.busy += 1
            try:
                return await self.gatt.request(dev, mtype, body, timeout)
            finally:
                conn.busy -= 1
                conn.used = loop.time()
        except (BleakError, TimeoutError, ConnectionError, OSError) as e:
            self.gw.counts["commands_failed"] += 1
            raise CommandError(504, f"{dev.name} did not answer over BLE ({e})") from None

    async def command(self, dev: Device, states: dict[int, Any], fade_ms: int | None) -> dict:
        """Gateway.set for a node on BLE: over GATT now, or queued for a sleeping node."""
        st = self.node(dev)
        body: dict[int, Any] = dict(states)
        if fade_ms is not None:
            body[M.FADE] = fade_ms
        if self.asleep(dev):
            st.queued.update(body)
            return {"status": "queued"}
        _, res = await self.request(dev, M.COMMAND, body)
        return {"status": "applied", "state": self.gw._applied(dev, res)}

    def asleep(self, dev: Device) -> bool:
        """A sleeping node not heard within _AWAKE_S: what it is told waits for its wake."""
        return dev.sleepy and time.monotonic() - self.node(dev).heard > _AWAKE_S

    async def _deliver(self, dev: Device, st: _Node) -> None:
        if dev.settings:  # Gateway.node_config's, queued while it slept
            await self.gw.deliver_settings(dev, self.request)
        if not st.queued:
            return
        states, st.queued = st.queued, {}
        try:
            _, res = await self.request(dev, M.COMMAND, states, 30)
            self.gw._applied(dev, res)
        except CommandError as e:
            log.warning("queued command for %s failed: %s", dev.name, e)

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {f"ble_{k}": v for k, v in self.counts.items()}
        for k, v in self.dropped.items():
            out[f"ble_dropped_{k.replace('-', '_')}"] = v
        for k, v in self.gatt.stats().items():
            out[f"ble_gatt_{k}"] = v
        out.update(self.bthome.stats())  # BTHome
        return out
