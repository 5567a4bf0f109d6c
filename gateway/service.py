"""The gateway: one asyncio service. It owns the registry of trusted nodes, their state
and liveness, and the command path; sessions.py speaks the protocol, store.py keeps
everything in SQLite, bus.py tells the hubs (api.py and the others).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import secrets
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kithnet.protocol import cbor, errors, model
from kithnet.protocol import messages as M
from kithnet.protocol.errors import ProtocolError

from kithnet import __version__

from .bus import Bus, Event
from .config import GatewayConfig
from .devices import Device, display, parse
from .errors import CommandError
from .firmware_shelf import FirmwareShelf
from .ota import Updates
from .ota_bundle import Bundle, BundleError
from .ota_bundle import parse as parse_bundle
from .sessions import Sessions
from .store import Row, Store

log = logging.getLogger("kithnet.gateway")

_AGE = M.AGE
_DUE = M.DUE
_REPORT = M.REPORT
SHELF_POLL_S = 1.0  # how often the firmware shelf's directory is looked at (one stat)
_BACKLOG = 200_000  # rows handed to the store and not yet committed: stop reading above
_AWAKE_S = 2.0  # a sleepy node is awake this long after its last frame (it sleeps once acked)


class Gateway:
    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.bus = Bus()
        self.devices_by_id: dict[bytes, Device] = {}
        self.pending_nodes: dict[str, dict[str, Any]] = {}
        self.sessions = Sessions(self)
        self.store: Store | None = None
        self.udp_port = config.udp_port
        self.http_port = config.http_port
        self.token = config.token or ""
        self.started = time.time()
        self.counts = {
            "reports_received": 0,
            "reports_processed": 0,
            "events_received": 0,
            "commands": 0,
            "commands_failed": 0,
            "unknown_capability_values": 0,
        }
        self._rows: list[Row] = []
        self._acks: list[Callable[[], None]] = []
        self._processed = 0
        self._received = 0
        self._dirty: set[Device] = set()  # state changed since the last checkpoint
        self._tasks: list[asyncio.Task] = []
        self._api = None
        self._discovery = None
        self._stopping = False
        self.updates = Updates(self)  # OTA: update jobs and the rollout (gateway/ota.py)
        self.firmware = FirmwareShelf(config.data_path / "firmware")  # OTA: bundles to offer
        self.mqtt = None  # MQTT (gateway/mqtt/): an MqttHub when the `mqtt_url` setting is given
        self.ble = None  # BLE (gateway/ble/): a BleTransport when the `ble` setting is given

    # -- life ------------------------------------------------------------------------

    async def start(self) -> None:
        cfg = self.config
        data = cfg.data_path
        data.mkdir(parents=True, exist_ok=True)
        self.firmware.path.mkdir(exist_ok=True)  # firmware shelf: where the user puts bundles
        await asyncio.to_thread(self.firmware.scan)
        self.token = cfg.token or _token(data / "token")
        self.store = Store(data / "kithnet.db")
        self._load()
        if cfg.ble:  # BLE: its replay windows come from the registry, before the writer runs
            from .ble import BleTransport

            self.ble = BleTransport(self, cfg.ble)
        loop = asyncio.get_running_loop()
        self.store.start(loop)
        if cfg.keys:
            await self._import_keys(Path(cfg.keys))
        self.udp_port = self._open_udp(loop)
        from .api import start_api

        self._api = await start_api(self, cfg.http_host, cfg.http_port, self.token)
        self.http_port = _bound_port(self._api, cfg.http_port)
        if cfg.discovery:
            from .discovery import Discovery

            self._discovery = Discovery(self)
            try:
                await self._discovery.start()
            except OSError as e:
                log.warning("DNS-SD unavailable (%s): nodes must be given this address", e)
                self._discovery = None
        if self.ble is not None:  # BLE: scanning; without an adapter the rest still runs
            try:
                await self.ble.start()
            except Exception as e:
                log.warning("BLE unavailable (%s): BLE nodes are not heard", e)
        if cfg.mqtt_url:  # MQTT: connects in the background; a broker away stops nothing
            from .mqtt import start_hub

            self.mqtt = await start_hub(self)
        self._tasks = [
            asyncio.create_task(self._every(0.1, self._tick)),
            asyncio.create_task(self._every(1.0, self._liveness)),
            asyncio.create_task(self._every(2.0, self._checkpoint)),
            asyncio.create_task(self._every(3600.0, self._maintain, first=5.0)),
            asyncio.create_task(self._watch_shelf()),  # firmware shelf
        ]
        log.info(
            "kithnet gateway %s: nodes on udp %s:%d, API on http://%s:%d, %d nodes known",
            __version__, cfg.udp_host, self.udp_port, cfg.http_host, self.http_port,
            len(self.devices_by_id),
        )  # fmt: skip

    def _open_udp(self, loop: asyncio.AbstractEventLoop) -> int:
        cfg = self.config
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # A burst of reports must wait in the kernel, not be dropped, while the loop is
        # busy: ask for 4 MiB (the kernel caps it at net.core.rmem_max).
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        try:
            sock.bind((cfg.udp_host, cfg.udp_port))
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        self.sessions.attach(sock, loop)
        return sock.getsockname()[1]

    async def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        for t in self._tasks:
            t.cancel()
        await self.updates.stop()  # OTA: jobs end as cancelled; the nodes keep what they have
        if self._discovery is not None:
            await self._discovery.stop()
        if self._api is not None:
            await self._api.cleanup()
        if self.ble is not None:  # BLE: scanning and GATT end; its windows are stored
            await self.ble.stop()
        self._flush()
        self._checkpoint()
        if self.store is not None:
            try:
                await self.store.flush()  # and the acks of what it held go out now
            except RuntimeError as e:
                log.error("stopping without the last writes: %s", e)
            await asyncio.sleep(0)
        self.sessions.detach()
        if self.mqtt is not None:  # MQTT: after the last reading; unsent ones to its outbox
            await self.mqtt.stop()
        if self.store is not None:
            self.store.close()

    async def _every(self, period: float, fn: Callable[[], Any], first: float | None = None):
        await asyncio.sleep(period if first is None else first)
        while True:
            try:
                fn()
            except Exception:
                log.exception("periodic task %s failed", getattr(fn, "__name__", fn))
            await asyncio.sleep(period)

    def _load(self) -> None:
        assert self.store is not None
        by_num = {}
        for r in self.store.load_nodes():
            dev = Device(
                num=r["num"], node_id=bytes.fromhex(r["id"]), key=r["key"], name=r["name"],
                room=r["room"], type=r["type"], model=r["model"], firmware=r["firmware"],
                sleepy=bool(r["sleepy"]), added=r["added"],
            )  # fmt: skip
            try:
                dev.set_caps(cbor.loads(r["caps"]) if r["caps"] else None)
            except (ProtocolError, ValueError):
                log.warning(
                    "node %s: stored capabilities unreadable; waiting for its hello", dev.hex
                )
            self.devices_by_id[dev.node_id] = dev
            by_num[dev.num] = dev
        for num, cap, value, ts in self.store.load_state():
            dev = by_num.get(num)
            if dev is not None:
                old = dev.state.get(cap)
                if old is None or old[1] <= ts:  # the newest reading wins
                    dev.state[cap] = (value, ts)

    async def _import_keys(self, path: Path) -> None:
        """Adopt the nodes of a provisioning file (JSON lines: id, key, name, type, room)."""
        n = 0
        try:
            lines = path.read_text().splitlines()
        except OSError as e:
            raise ValueError(f"{path}: cannot read the keys file ({e.strerror})") from None
        for i, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                node_id = bytes.fromhex(rec["id"])
                if node_id in self.devices_by_id:
                    continue
                self._add(
                    node_id,
                    bytes.fromhex(rec["key"]),
                    rec.get("name"),
                    rec.get("room"),
                    rec.get("type"),
                )
                n += 1
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{path}:{i}: not a node record ({e})") from None
        if n:
            await self.store.flush()
            log.info("adopted %d nodes from %s", n, path)

    # -- the owner interface of sessions.py ---------------------------------------------

    def device_of(self, node_id: bytes) -> Device | None:
        dev = self.devices_by_id.get(node_id)
        if dev is not None and dev.type == "bthome":  # BTHome: no kithnet sessions with its key
            return None
        return dev

    def on_unknown(self, body: dict, addr: tuple) -> None:
        nid = body[M.H_NODE].hex()
        rec = self.pending_nodes.get(nid)
        now = time.time()
        if rec is None:
            if len(self.pending_nodes) >= 1000:
                return
            rec = self.pending_nodes[nid] = {"id": nid, "first_seen": now, "hellos": 0}
            log.warning(
                "unknown node %s (%s at %s:%d) asks to join: adopt it with "
                "`kithnet adopt %s --key <its key>` (the key is in its config.json)",
                nid, body.get(M.H_MODEL), addr[0], addr[1], nid,
            )  # fmt: skip
            self.bus.publish(Event("pending", nid, {"model": body.get(M.H_MODEL)}, now))
        rec.update(
            model=body.get(M.H_MODEL), firmware=body.get(M.H_FW), name=body.get(M.H_NAME),
            type=_type_of(body.get(M.H_MODEL)), address=f"{addr[0]}:{addr[1]}", last_seen=now,
        )  # fmt: skip
        rec["hellos"] += 1

    def on_hello(self, dev: Device, body: dict, addr: tuple) -> None:
        dev.reboot = body.get(M.H_REBOOT)
        changed = False
        for attr, val in (
            ("model", body[M.H_MODEL]),
            ("firmware", body[M.H_FW]),
            ("sleepy", bool(body.get(M.H_SLEEPY))),
        ):
            if getattr(dev, attr) != val:
                setattr(dev, attr, val)
                changed = True
        name = body.get(M.H_NAME)
        if isinstance(name, str) and name.strip() and dev.name == _placeholder(dev.node_id):
            dev.name = name.strip()  # adopted without a name: the one its config.json gives
            changed = True
        if dev.type is None and _type_of(dev.model):
            dev.type = _type_of(dev.model)
            changed = True
        if dev.raw_caps != body[M.H_CAPS]:
            try:
                skipped = dev.set_caps(body[M.H_CAPS])
            except ProtocolError as e:
                log.warning("node %s sent capabilities this gateway cannot use: %s", dev.hex, e)
                skipped = []
            if skipped:
                log.warning(
                    "node %s has capabilities of kinds this version does not know "
                    "(ids %s): they are ignored",
                    dev.hex,
                    skipped,
                )
            changed = True
        if changed:
            self._save(dev)
            self.bus.publish(Event("device", dev.hex, {"action": "updated"}, time.time()))

    def on_session(self, dev: Device, addr: tuple) -> None:
        dev.seen(addr, None)
        if dev.due_at is None:
            dev.due_at = time.monotonic() + 120
        why = {M.REBOOT_WATCHDOG: " after a watchdog reset", M.REBOOT_BROWNOUT: " after a brownout"}
        self._available(dev, True, "session" + why.get(dev.reboot, ""))
        self._deliver(dev)
        self.updates.on_session(dev)  # OTA: a job waiting for this node goes on

    def on_message(
        self, dev: Device, mtype: int, body: dict, addr: tuple, ack: Callable[[], None] | None
    ) -> None:
        if mtype == _REPORT:
            self._report(dev, body, addr, ack)
        elif mtype == M.EVENT:
            self._event(dev, body, addr, ack)
        elif mtype == M.OTA_STATUS:  # OTA: unprompted (answers go to their request)
            self.updates.on_status(dev, body)
        elif ack is not None:
            ack()
        if dev.queued or dev.settings:
            self._deliver(dev)

    # -- readings ----------------------------------------------------------------------

    def _report(self, dev: Device, body: dict, addr: tuple, ack: Callable[[], None] | None):
        """The hot path: a report into the state, the batch of history rows, and the bus."""
        self._received += 1
        now = time.time()
        age = body.get(_AGE)
        ts = now - age if age else now
        dev.seen(addr, body.get(_DUE), now)
        if not dev.online:
            self._available(dev, True, "reporting")
        shows = dev.shows
        values = {}
        rows = self._rows
        num = dev.num
        state = dev.state
        for cid, v in body.items():
            show = shows.get(cid)
            if show is None:
                if cid >= 0:
                    self.counts["unknown_capability_values"] += 1
                continue
            rows.append((num, cid, ts, v))
            old = state.get(cid)
            if old is None or old[1] <= ts:
                state[cid] = (v, ts)
                values[show[0]] = show[1](v)
        if values:
            self._dirty.add(dev)
            self.bus.publish(Event("state", dev.hex, {"values": values}, ts))
        self._processed += 1
        if ack is not None:
            self._acks.append(ack)

    def _event(self, dev: Device, body: dict, addr: tuple, ack: Callable[[], None] | None):
        self.counts["events_received"] += 1
        ts = time.time() - body.get(M.AGE, 0)
        dev.seen(addr, None)
        cap = dev.caps.get(body[M.E_CAP])
        if cap is not None:
            self._rows.append((dev.num, cap.cid, ts, body[M.E_CODE]))
            data = {"capability": cap.label, "event": display(cap, body[M.E_CODE])}
            if M.E_COUNT in body:
                data["count"] = body[M.E_COUNT]
            self.bus.publish(Event("event", dev.hex, data, ts))
        if ack is not None:
            self._acks.append(ack)

    def on_batch(self) -> None:
        self._flush()
        if self.store is not None and self.store.backlog > _BACKLOG:
            self.sessions.pause(True)  # the tick resumes reading once the store catches up

    def _flush(self) -> None:
        """Hand what the loop collected from one read of the socket to the store, as one
        batch; the acknowledgements go out when it is committed."""
        if not self._rows and not self._acks:
            return
        rows, self._rows = self._rows, []
        acks, self._acks = self._acks, []
        n, self._processed = self._processed, 0
        done = [*acks, lambda: self._done(n)]
        if self.mqtt is not None:  # MQTT: what waits for the broker is on disk before the acks
            self.mqtt.flush()
        if self.store is not None:
            self.store.write(rows, done)

    def _done(self, n: int) -> None:
        self.counts["reports_processed"] += n

    def _available(self, dev: Device, online: bool, reason: str) -> None:
        if dev.mark(online, reason):
            log.info(
                "%s (%s) is %s: %s", dev.name, dev.hex, "online" if online else "offline", reason
            )
            self.bus.publish(
                Event("availability", dev.hex, {"online": online, "reason": reason}, time.time())
            )

    def _checkpoint(self) -> None:
        if not self._dirty or self.store is None:
            return
        devs, self._dirty = self._dirty, set()
        self.store.checkpoint(
            [(d.num, cid, ts, v) for d in devs if d.num > 0 for cid, (v, ts) in d.state.items()]
        )

    def _tick(self) -> None:
        self.sessions.tick()
        if self.sessions.paused and self.store is not None and self.store.backlog < _BACKLOG // 2:
            self.sessions.pause(False)

    def _liveness(self) -> None:
        now = time.monotonic()
        for dev in self.devices_by_id.values():
            if dev.online and dev.due_at is not None and now > dev.due_at:
                ago = time.time() - (dev.last_seen or time.time())
                self._available(dev, False, f"no report for {ago:.0f} s (it promised one sooner)")

    def _maintain(self) -> None:
        c = self.config
        if self.store is not None:
            self.store.maintain(
                c.retention_days * 86400, c.downsample_after_days * 86400, c.downsample_s
            )

    # -- registry --------------------------------------------------------------------

    def _add(
        self, node_id: bytes, key: bytes, name: str | None, room: str | None, type_: str | None
    ) -> Device:
        if len(node_id) != 8:
            raise ValueError("a node id is 16 hex digits")
        if len(key) != 16:
            raise ValueError("a node key is 32 hex digits")
        dev = Device(
            num=0,
            node_id=node_id,
            key=key,
            name=name or _placeholder(node_id),
            room=room,
            type=type_,
            added=time.time(),
        )
        self.devices_by_id[node_id] = dev
        self._save(dev)
        return dev

    def _save(self, dev: Device) -> None:
        rec = {
            "id": dev.hex, "key": dev.key, "name": dev.name, "room": dev.room, "type": dev.type,
            "model": dev.model, "firmware": dev.firmware, "sleepy": int(dev.sleepy),
            "caps": cbor.dumps(dev.raw_caps) if dev.raw_caps else None, "added": dev.added,
        }  # fmt: skip
        if dev.num:
            rec["num"] = dev.num
            self.store.put_node(rec)
        else:
            dev.num = -1  # being written; the commit gives it its number

            def numbered(num: int) -> None:
                dev.num = num

            self.store.put_node(rec, numbered)

    def _find(self, ref: str) -> Device:
        try:
            dev = self.devices_by_id.get(bytes.fromhex(ref))
        except ValueError:
            dev = None
        if dev is None:
            low = ref.lower()
            dev = next((d for d in self.devices_by_id.values() if d.name.lower() == low), None)
        if dev is None:
            raise KeyError(f"no device {ref!r}")
        return dev

    # -- the facade the API and the CLI use ----------------------------------------------

    def devices(self) -> list[dict]:
        return [d.to_json() for d in self.devices_by_id.values()]

    def device(self, ref: str) -> dict:
        return self._find(ref).to_json()

    def pending(self) -> list[dict]:
        return list(self.pending_nodes.values())

    async def adopt(
        self, node_id: str, key: str, name: str | None = None, room: str | None = None
    ) -> dict:
        try:
            nid, k = bytes.fromhex(node_id), bytes.fromhex(key)
        except (ValueError, TypeError):
            raise ValueError("id and key must be hex (16 and 32 digits)") from None
        if len(nid) != 8 or len(k) != 16:
            raise ValueError("id and key must be hex (16 and 32 digits)")
        dev = self.devices_by_id.get(nid)
        if dev is not None and dev.type == "bthome":  # BTHome: adopt_bthome
            raise ValueError(f"{dev.hex} is a BTHome device: adopt it with its MAC and bindkey")
        heard = self.pending_nodes.get(nid.hex())
        if heard is not None and heard.get("type") == "bthome":  # BTHome: the key is its bindkey
            return await self.adopt_bthome(heard["address"], k.hex(), name=name, room=room)
        pend = self.pending_nodes.pop(nid.hex(), None)
        if dev is not None:
            if dev.key != k:  # re-keyed: the old sessions are not this key's
                dev.key = k
                self.sessions.end(dev)
            if name:
                dev.name = name
            if room is not None:
                dev.room = room
            self._save(dev)
        else:
            dev = self._add(
                nid, k, name or (pend or {}).get("name"), room, (pend or {}).get("type")
            )
        await self.store.flush()
        log.info("adopted node %s as %r", dev.hex, dev.name)
        self.bus.publish(Event("device", dev.hex, {"action": "adopted"}, time.time()))
        return dev.to_json()

    async def adopt_bthome(
        self,
        address: str,
        bindkey: str | None = None,
        insecure: bool = False,
        name: str | None = None,
        room: str | None = None,
    ) -> dict:
        """BTHome: adopt a BTHome v2 sensor of another make by its MAC (gateway/ble/bthome.py)."""
        from .ble import bthome

        return await bthome.adopt(self, address, bindkey, insecure, name, room)

    async def update(self, ref: str, name: str | None = None, room: str | None = None) -> dict:
        dev = self._find(ref)
        if name is not None:
            if not isinstance(name, str) or not name.strip():
                raise ValueError("name must be non-empty text")
            taken = [d for d in self.devices_by_id.values() if d is not dev
                     and d.name.lower() == name.strip().lower()]  # fmt: skip
            if taken:
                raise ValueError(f"the name {name.strip()!r} is taken by {taken[0].hex}")
            dev.name = name.strip()
        if room is not None:
            if not isinstance(room, str):
                raise ValueError("room must be text")
            dev.room = room or None
        self._save(dev)
        await self.store.flush()
        self.bus.publish(Event("device", dev.hex, {"action": "updated"}, time.time()))
        return dev.to_json()

    async def forget(self, ref: str) -> None:
        dev = self._find(ref)
        self.sessions.end(dev)
        del self.devices_by_id[dev.node_id]
        self.store.delete_node(dev.num)
        await self.store.flush()
        self.bus.publish(Event("device", dev.hex, {"action": "removed"}, time.time()))

    async def set(self, ref: str, values: dict[str, Any], fade_ms: int | None = None) -> dict:
        dev = self._find(ref)
        if not isinstance(values, dict) or not values:
            raise CommandError(400, "values must be a non-empty object")
        states: dict[int, Any] = {}
        for name, v in values.items():
            try:
                cap = dev.cap(name)
            except KeyError as e:
                raise CommandError(404, str(e.args[0])) from None
            try:
                states[cap.cid] = parse(cap, v)
            except ProtocolError as e:
                raise CommandError(400, e.why) from None
        if fade_ms is not None and (not isinstance(fade_ms, int) or not 0 <= fade_ms <= 600000):
            raise CommandError(400, "fade_ms must be 0..600000")
        self.counts["commands"] += 1
        if self.ble is not None and self.ble.serves(dev):  # BLE: a node on BLE, over GATT
            return await self.ble.command(dev, states, fade_ms)
        if self._asleep(dev):
            dev.queued.update(states)
            return {"status": "queued"}
        if dev.session is None or not dev.online:
            self.counts["commands_failed"] += 1
            raise CommandError(503, f"{dev.name} is offline ({dev.reason})")
        body: dict[int, Any] = dict(states)
        if fade_ms is not None:
            body[M.FADE] = fade_ms
        try:
            _, res = await self.sessions.request(
                dev, M.COMMAND, body, self.config.command_timeout_s
            )
        except (TimeoutError, ConnectionError) as e:
            self.counts["commands_failed"] += 1
            raise CommandError(504, f"{dev.name} did not answer the command ({e})") from None
        return {"status": "applied", "state": self._applied(dev, res)}

    async def node_config(self, ref: str, values: dict[str, Any] | None = None) -> dict:
        """The node's own settings (config-get), or set some (config-set: "interval",
        "name"; over BLE also "wifi": {"ssid", "password"}): its answer's values."""
        dev = self._find(ref)
        if values is not None and (not isinstance(values, dict) or not values):
            raise CommandError(400, "values must be a non-empty object")
        if dev.type == "bthome":  # BTHome: one way, nothing to ask
            raise CommandError(409, f"{dev.name} is a BTHome sensor: it has no settings to read")
        mtype, body = M.CONFIG_GET, {}
        if values is not None:
            mtype, body = M.CONFIG_SET, {M.CFG_VALUES: values}
        if self.ble is not None and self.ble.serves(dev):  # BLE: over GATT
            if self.ble.asleep(dev):
                return self._queue_settings(dev, values)
            _, res = await self.ble.request(dev, mtype, body)
        else:
            if self._asleep(dev):
                return self._queue_settings(dev, values)
            if dev.session is None or not dev.online:
                raise CommandError(503, f"{dev.name} is offline ({dev.reason})")
            try:
                timeout = self.config.command_timeout_s
                _, res = await self.sessions.request(dev, mtype, body, timeout)
            except (TimeoutError, ConnectionError) as e:
                raise CommandError(504, f"{dev.name} did not answer ({e})") from None
        refused = _refusal(res)
        if refused:
            raise CommandError(409, f"{dev.name} refused: {refused}")
        return dict(res.get(M.CFG_VALUES, {}))

    @staticmethod
    def _asleep(dev: Device) -> bool:
        """A sleepy node on UDP is awake for _AWAKE_S after its last frame, in a session."""
        awake = dev.last_seen is not None and time.time() - dev.last_seen < _AWAKE_S
        return dev.sleepy and not (awake and dev.session is not None)

    def _queue_settings(self, dev: Device, values: dict[str, Any] | None) -> dict:
        """A sleeping node: a change waits for its next wake, like a command; a reading of
        its settings cannot."""
        if values is None:
            why = "its settings are read only while it is awake (right after a report)"
            raise CommandError(409, f"{dev.name} is asleep: {why}; a change waits for it")
        dev.settings.update(values)
        return {"status": "queued"}

    async def deliver_settings(self, dev: Device, request: Callable[..., Any]) -> None:
        """A sleeping node's queued settings, now that it is awake (request: its transport's)."""
        values, dev.settings = dev.settings, {}
        what = ", ".join(sorted(values))  # names only: a Wi-Fi password stays out of the log
        try:
            _, res = await request(dev, M.CONFIG_SET, {M.CFG_VALUES: values}, 30)
        except (TimeoutError, ConnectionError, CommandError) as e:
            log.warning("queued settings (%s) for %s failed: %s", what, dev.name, e)
            return
        refused = _refusal(res)
        if refused:
            log.warning("%s refused its queued settings (%s): %s", dev.name, what, refused)
        else:
            log.info("%s took its queued settings (%s)", dev.name, what)

    def _applied(self, dev: Device, res: dict) -> dict:
        code = res.get(M.CODE, 0)
        if code:
            self.counts["commands_failed"] += 1
            raise CommandError(409, f"{dev.name} refused: {errors.name(code)}")
        now = time.time()
        values = {}
        rows = []
        for cid, v in M.states(res).items():
            cap = dev.caps.get(cid)
            if cap is not None:
                dev.state[cid] = (v, now)
                rows.append((dev.num, cid, now, v))
                values[cap.label] = display(cap, v)
        if rows:
            self.store.write(rows)
            self._dirty.add(dev)
            self.bus.publish(Event("state", dev.hex, {"values": values}, now))
        return values

    def _deliver(self, dev: Device) -> None:
        """Send a sleeping node's queued command and settings while it is awake (before
        its ack)."""
        if dev.session is None:
            return
        if dev.settings:
            self._tasks.append(
                asyncio.create_task(self.deliver_settings(dev, self.sessions.request))
            )
        if not dev.queued:
            return
        states, dev.queued = dev.queued, {}

        async def go() -> None:
            try:
                _, res = await self.sessions.request(dev, M.COMMAND, states, 30)
                self._applied(dev, res)
            except (TimeoutError, ConnectionError, CommandError) as e:
                log.warning("queued command for %s failed: %s", dev.name, e)

        self._tasks.append(asyncio.create_task(go()))

    async def history(
        self,
        ref: str,
        cap: str,
        since: float | None = None,
        until: float | None = None,
        limit: int = 1000,
    ) -> list[dict]:
        dev = self._find(ref)
        c = dev.cap(cap)
        rows = await asyncio.to_thread(
            self.store.history, dev.num, c.cid, since if since is not None else 0.0,
            until if until is not None else time.time() + 1e6, limit,
        )  # fmt: skip
        if c.vtype == model.INT:
            return [{"ts": ts, "value": model.to_number(c, v)} for ts, v in rows]
        return [{"ts": ts, "value": display(c, round(v))} for ts, v in rows]

    # -- updates over the air (gateway/ota.py) -------------------------------------------

    async def ota(self, ref: str, bundle: bytes | str | Path | Bundle, force: bool = False) -> dict:
        """Start updating a node with a bundle (its bytes, a file, or a parsed Bundle);
        returns the job's status at once. Follow it with ota_status(ref) or the bus's
        "ota" events. ValueError for a bad bundle, CommandError when the node cannot take
        it now (asleep, being updated)."""
        dev = self._find(ref)
        return self.updates.start(dev, _bundle(bundle), force).to_json()

    def ota_status(self, ref: str) -> dict:
        """The node's latest update job (KeyError if it never had one)."""
        dev = self._find(ref)
        job = self.updates.status(dev)
        if job is None:
            raise KeyError(f"no update was started for {dev.name}")
        return job.to_json()

    async def ota_wait(self, ref: str, timeout: float | None = None) -> dict:
        """Wait until the node's update job ends; its final status."""
        job = self.updates.status(self._find(ref))
        if job is None:
            raise KeyError(f"no update was started for {ref}")
        if job.task is not None:
            await asyncio.wait_for(asyncio.shield(job.task), timeout)
        return job.to_json()

    async def ota_cancel(self, ref: str) -> dict:
        dev = self._find(ref)
        job = await self.updates.cancel(dev)
        if job is None:
            raise KeyError(f"no update was started for {dev.name}")
        return job.to_json()

    async def ota_rollout(
        self,
        bundle: bytes | str | Path | Bundle,
        type_: str | None = None,
        refs: list[str] | None = None,
        force: bool = False,
    ) -> dict:
        """Update every node of a type (or the named ones, in that order), one at a time:
        the first alone, the next only once the one before confirmed, none after a
        failure. Offline and sleepy nodes are skipped (listed with why)."""
        b = _bundle(bundle)
        if refs:
            devs = [self._find(r) for r in refs]
        elif type_:
            devs = sorted((d for d in self.devices_by_id.values() if d.type == type_),
                          key=lambda d: d.name.lower())  # fmt: skip
            if not devs:
                raise KeyError(f"no device of type {type_!r}")
        else:
            raise ValueError("name a device type or the devices to update")
        return self.updates.start_rollout(devs, b, force).to_json()

    def ota_rollout_status(self) -> dict:
        if self.updates.rollout is None:
            raise KeyError("no rollout was started")
        return self.updates.rollout.to_json()

    async def ota_rollout_cancel(self) -> dict:
        r = self.updates.rollout
        if r is None:
            raise KeyError("no rollout was started")
        if r.task is not None and not r.task.done():
            r.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await r.task
        return r.to_json()

    # -- the firmware shelf (gateway/firmware_shelf.py) ----------------------------------

    async def _watch_shelf(self) -> None:
        """A new newest bundle in DATA/firmware becomes a bus event "firmware" within
        SHELF_POLL_S (the listing itself runs off the loop, only when the directory moved)."""
        while True:
            await asyncio.sleep(SHELF_POLL_S)
            try:
                if self.firmware.due():
                    await self._scan_shelf()
            except Exception:
                log.exception("the firmware shelf could not be read")

    async def _scan_shelf(self) -> None:
        if await asyncio.to_thread(self.firmware.scan):
            self.bus.publish(Event("firmware", "", self.firmware_latest(), time.time()))

    def firmware_latest(self) -> dict:
        """{"latest": the shelf's newest bundle or None} as of the last listing (no I/O)."""
        s = self.firmware.latest()
        return {"latest": s.to_json() if s else None}

    async def firmware_list(self) -> dict:
        """The shelf, listed afresh: its directory, the newest bundle, every valid one."""
        await self._scan_shelf()
        return {
            "path": str(self.firmware.path),
            **self.firmware_latest(),
            "bundles": [s.to_json() for s in self.firmware.bundles()],
        }

    async def ota_latest(self, ref: str, force: bool = False) -> dict:
        """Update a node with the shelf's newest bundle (the update entity's install):
        CommandError 409 when the shelf has nothing newer than what the node runs."""
        dev = self._find(ref)
        await self._scan_shelf()
        s = self.firmware.offer(dev.firmware)
        if s is None:
            newest = self.firmware.latest()
            why = (f"its newest bundle is {newest.version}" if newest
                   else f"there is no bundle in {self.firmware.path}")  # fmt: skip
            raise CommandError(
                409, f"nothing newer than {dev.firmware} for {dev.name} on the shelf: {why}"
            )
        bundle = await asyncio.to_thread(s.load)
        return await self.ota(dev.hex, bundle, force)

    def health(self) -> dict:
        return {
            "status": "ok",
            "version": __version__,
            "uptime_s": round(time.time() - self.started, 1),
            "nodes": len(self.devices_by_id),
            "online": sum(1 for d in self.devices_by_id.values() if d.online),
            "pending": len(self.pending_nodes),
        }

    def metrics(self) -> dict:
        out: dict[str, Any] = dict(self.counts)
        out["reports_received"] = self._received
        out.update(self.sessions.stats())
        out["bus_published"] = self.bus.published
        if self.mqtt is not None:  # MQTT
            out.update(self.mqtt.stats())
        if self.ble is not None:  # BLE
            out.update(self.ble.stats())
        if self.store is not None:
            out["store_rows_written"] = self.store.rows_written
            out["store_batches"] = self.store.batches
            out["store_errors"] = self.store.errors
        out.update(self.health())
        out.pop("status", None)
        out.pop("version", None)
        return out


def _bundle(b: bytes | str | Path | Bundle) -> Bundle:
    """OTA: a bundle from its bytes or its file; ValueError (BundleError) says what is wrong."""
    if isinstance(b, Bundle):
        return b
    if isinstance(b, str | Path):
        try:
            b = Path(b).read_bytes()
        except OSError as e:
            raise BundleError(f"cannot read the bundle {b}: {e.strerror}") from None
    return parse_bundle(b)


def _placeholder(node_id: bytes) -> str:
    return f"node-{node_id.hex()[:6]}"


def _type_of(model_name: Any) -> str | None:
    if isinstance(model_name, str) and model_name.startswith("kithnet-"):
        return model_name[len("kithnet-") :]
    return None


def _token(path: Path) -> str:
    """The API token in DATA/token, made (owner-only) on first start."""
    try:
        tok = path.read_text().strip()
        if tok:
            return tok
    except OSError:
        pass
    # Never one that starts with "-": `kithnet ... --token -xyz` would read it as an option.
    while (tok := secrets.token_urlsafe(24)).startswith("-"):
        pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(tok + "\n")
    log.info("made an API token in %s", path)
    return tok


def _bound_port(runner: Any, asked: int) -> int:
    with contextlib.suppress(AttributeError, IndexError, TypeError):
        return runner.addresses[0][1]
    return asked


def _refusal(res: dict) -> str | None:
    """A node's answer that refuses: its error's name, and its text if it gave one."""
    code = res.get(M.CODE, 0)
    if not code:
        return None
    return errors.name(code) + (f" ({res[M.TEXT]})" if M.TEXT in res else "")


async def run(config: GatewayConfig) -> None:
    """`kithnet gateway`: run until SIGINT or SIGTERM, then stop cleanly."""
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    gw = Gateway(config)
    await gw.start()
    # The hot path allocates small tuples by the thousand a second, none of them in a
    # cycle: collect the young generation far less often, and never scan again what start()
    # built (the registry of every node). The process's own setting, so run() makes it.
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        await gw.stop()
