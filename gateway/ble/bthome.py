"""BTHome v2 sensors of other makes (bthome.io), heard on the gateway's BLE scanner and kept
like kithnet nodes: one node row each (type "bthome", id "4254" + the MAC, the bindkey as
its key), readings through Gateway._report/_event into state, history, the bus and MQTT.

Parsing is Home Assistant's own parser (PyPI bthome-ble). Its replay protection is not
enough for us: it starts from zero at every restart, accepts any counter below 100 and
forgets everything when the gateway restarts. So before the parser sees an encrypted
advertisement this module reads its 4-byte counter (service data [-8:-4], little-endian)
and lets it in only when it is above the last one accepted from that device; the last
counter is stored (store.py, table bthome) before the readings it lets in, so a replay is
refused after a gateway restart too. A device whose counter really restarted (a battery
change on some makes) is adopted again, which starts its counter afresh.

Unencrypted BTHome has no counter and no authentication: anyone can send it. Such a
device is taken only when adopted explicitly as insecure; its packet id (object 0x00),
when present, only drops the repeats of one advertisement.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from bluetooth_sensor_state_data import BluetoothServiceInfoBleak
from bthome_ble import BTHomeBluetoothDeviceData
from kithnet.protocol import messages as M
from kithnet.protocol import model
from kithnet.protocol.errors import ProtocolError
from sensor_state_data import SensorUpdate

from ..bus import Event
from ..devices import Device

log = logging.getLogger("kithnet.ble")
# The parser logs a warning per advertisement that fails (a wrong bindkey: every one); this
# module logs each cause once per device and counts the rest. Quiet unless a user set it.
if logging.getLogger("bthome_ble").level == logging.NOTSET:
    logging.getLogger("bthome_ble").setLevel(logging.CRITICAL)

UUID = "0000fcd2-0000-1000-8000-00805f9b34fb"  # BTHome's 16-bit service data UUID 0xFCD2
TYPE = "bthome"  # the node row's type
PREFIX = b"BT"  # node id = "BT" + the 6-byte MAC: hex 4254aabbccddeeff
DUE_S = 600  # a non-sleepy device unheard for about 15 min is offline (HA's BLE default)
_PACKET_S = 30.0  # an insecure device's packet id repeated within this long is a repeat

# The parser's sensor keys that are kithnet kinds (value -> wire by the kind's scale).
_KINDS = {
    "temperature": model.TEMPERATURE,
    "humidity": model.HUMIDITY,
    "battery": model.BATTERY,
    "illuminance": model.ILLUMINANCE,
    "power": model.POWER,
    "voltage": model.VOLTAGE,
    "current": model.CURRENT,
    "energy": model.ENERGY,  # kWh on the air, integer Wh here
    "signal_strength": model.RSSI,
}
_BINARY = {"motion": model.MOTION, "occupancy": model.OCCUPANCY, "opening": model.CONTACT}
_BUTTON = {"press": 1, "double_press": 2, "long_press": 3}  # model.BUTTON_EVENTS
# Everything else is a vendor kind: a decimal scale fine enough for BTHome's resolution of
# that quantity (the rest round to 0.01).
_SCALES = {
    "carbon_dioxide": 0, "volatile_organic_compounds": 0, "pm1": 0, "pm25": 0, "pm10": 0,
    "count": 0, "conductivity": 0, "gas": -3, "volume": -3, "water": -3, "volume_storage": -3,
    "duration": -3, "acceleration": -3, "gyroscope": -3, "distance": -3, "rotation": -1,
    "uv_index": -1, "precipitation": -1,
}  # fmt: skip
_VENDOR_BOOL = 0x8000
_VENDOR_INT = 0x8001
# Binary sensors whose BTHome name is a sensor's too (a device may send both).
_RENAME_BINARY = {"battery": "battery_low", "power": "power_on", "moisture": "wet",
                  "gas": "gas_detected"}  # fmt: skip
_POSTFIX = re.compile(r"_\d+$")  # the parser's temperature_1, temperature_2 of one device


def node_id_of(mac: str) -> bytes:
    """The node id of the device with this MAC (AA:BB:CC:DD:EE:FF); ValueError if no MAC."""
    try:
        raw = bytes.fromhex(mac.replace(":", "").replace("-", ""))
    except (ValueError, AttributeError):
        raw = b""
    if len(raw) != 6:
        raise ValueError(f"{mac!r} is not a Bluetooth address (AA:BB:CC:DD:EE:FF)")
    return PREFIX + raw


def mac_of(node_id: bytes) -> str:
    return ":".join(f"{b:02X}" for b in node_id[2:])


def is_bthome(dev: Device) -> bool:
    return dev.type == TYPE


class _State:
    """What the gateway keeps per adopted BTHome device."""

    __slots__ = ("accepted", "counter", "key", "packet", "packet_at", "refused")

    def __init__(self, dev: Device, counter: int | None) -> None:
        self.key = dev.key  # a new bindkey (adopted again) starts the counter afresh
        self.counter = counter  # the last accepted encryption counter
        self.packet: int | None = None
        self.packet_at = 0.0
        self.accepted = 0
        self.refused = 0  # duplicates and replays


class BTHome:
    """The handler the BLE transport hands every advertisement with BTHome service data."""

    def __init__(self, transport: Any) -> None:
        self.t = transport
        self.gw = transport.gw
        self.devs: dict[bytes, _State] = {}
        self.counts = {"adverts": 0, "accepted": 0, "duplicates": 0, "kithnet_nodes": 0}
        self.dropped: dict[str, int] = {}
        self._logged: set[tuple[bytes, str]] = set()
        by_num = {d.num: d for d in self.gw.devices_by_id.values() if is_bthome(d)}
        for num, counter, _address in self.gw.store.load_bthome():
            dev = by_num.get(num)
            if dev is not None:
                self.devs[dev.node_id] = _State(dev, counter)

    def state(self, dev: Device) -> _State:
        st = self.devs.get(dev.node_id)
        if st is None or st.key != dev.key:
            st = self.devs[dev.node_id] = _State(dev, None)
        return st

    def adopted(self, dev: Device) -> None:
        """A device adopted (again): its counter starts afresh."""
        self.devs[dev.node_id] = _State(dev, None)

    def _drop(self, why: str, nid: bytes | None, text: str) -> None:
        """Counted; logged once per device (an adopted one) or once at all (any sender)."""
        self.dropped[why] = self.dropped.get(why, 0) + 1
        key = (nid or b"", why)
        if key not in self._logged and len(self._logged) < 10000:
            self._logged.add(key)
            who = mac_of(nid) if nid else "advertisement"
            log.warning("BTHome %s: %s; further ones are only counted", who, text)

    # -- one advertisement -----------------------------------------------------------

    def on_advertisement(self, address: str, name: str | None, rssi: int, data: bytes) -> None:
        """One advertising event's BTHome service data (after the UUID)."""
        self.counts["adverts"] += 1
        try:
            nid = node_id_of(address)
        except ValueError:
            return
        if not data:
            self._drop("malformed", None, f"empty service data from {address}")
            return
        info = data[0]
        if info >> 5 != 2:
            self._drop("version", None, f"BTHome version {info >> 5} from {address} (only v2)")
            return
        if info & 0x02:  # the MAC is in the payload: it names the device
            if len(data) < 7:
                self._drop("malformed", None, f"service data shorter than a MAC from {address}")
                return
            address = ":".join(f"{b:02X}" for b in data[6:0:-1])
            nid = node_id_of(address)
        encrypted = bool(info & 0x01)
        dev = self.gw.devices_by_id.get(nid)
        if dev is None or not is_bthome(dev):
            if self._kithnet_node(address):  # a kithnet node's BTHome (SPEC 13.2):
                self.counts["kithnet_nodes"] += 1  # its kithnet frames carry the readings
                return
            self._pending(nid, address, name, encrypted)
            return
        st = self.state(dev)
        counter = None
        if encrypted:
            if not dev.key:
                why = f"{dev.name} was adopted insecure but encrypts: adopt it with its --bindkey"
                self._drop("encrypted", nid, why)
                return
            body_len = len(data) - (7 if info & 0x02 else 1)
            if body_len < 9:
                self._drop("malformed", nid, "encrypted service data too short")
                return
            counter = int.from_bytes(data[-8:-4], "little")
            if st.counter is not None and counter <= st.counter:
                st.refused += 1
                if counter == st.counter:
                    self.counts["duplicates"] += 1  # devices repeat each advertisement
                else:
                    self._drop("replay", nid, f"counter {counter} is below the last accepted "
                               f"{st.counter} (a replay; if {dev.name} really restarted its "
                               "counter, adopt it again)")  # fmt: skip
                return
        elif dev.key:
            self._drop("downgrade", nid, f"an unencrypted advertisement from {dev.name}, "
                       "which was adopted with a bindkey (spoofed?)")  # fmt: skip
            return
        parser = BTHomeBluetoothDeviceData(dev.key or None)
        try:
            update = parser.update(_service_info(address, name, rssi, data))
        except Exception as e:  # the parser's bug must not stop the scanner
            self._drop("unparsable", nid, f"the BTHome parser failed ({e!r})")
            return
        if encrypted and not parser.bindkey_verified:
            why = f"cannot decrypt {dev.name}'s advertisements: a wrong bindkey (adopt it again"
            self._drop("bad-bindkey", nid, why + " with the right one) or forged ones")
            return
        if not encrypted:
            packet = _packet_id(update)
            now = time.monotonic()
            if packet is not None:
                if packet == st.packet and now - st.packet_at < _PACKET_S:
                    st.refused += 1
                    self.counts["duplicates"] += 1
                    return
                st.packet, st.packet_at = packet, now
        if counter is not None:
            st.counter = counter
            # Stored before the readings it lets in (the writer keeps the order).
            self.gw.store.put_bthome([(dev.num, counter, address)])
        st.accepted += 1
        self.counts["accepted"] += 1
        self._apply(dev, update, address, bool(info & 0x04))

    def _kithnet_node(self, address: str) -> bool:
        """True for the address of a kithnet node heard on BLE (BLE nodes are few: those in
        radio range)."""
        return any(st.address == address for st in self.t.nodes.values())

    def _pending(self, nid: bytes, address: str, name: str | None, encrypted: bool) -> None:
        """An un-adopted BTHome device: listed once, with how to adopt it."""
        key = nid.hex()
        rec = self.gw.pending_nodes.get(key)
        now = time.time()
        if rec is None:
            if len(self.gw.pending_nodes) >= 1000:
                return
            how = (f"kithnet adopt --bthome {address} --bindkey <its 32 hex digits>"
                   if encrypted else f"kithnet adopt --bthome {address} --insecure")  # fmt: skip
            rec = self.gw.pending_nodes[key] = {
                "id": key, "first_seen": now, "hellos": 0, "type": TYPE,
                "model": "BTHome v2" + (" (encrypted)" if encrypted else " (unencrypted)"),
                "address": address, "name": name, "firmware": None, "adopt": how,
            }  # fmt: skip
            log.warning(
                "BTHome device %s (%s, %s) is heard: adopt it with `%s`%s", address,
                name or "no name", "encrypted" if encrypted else "unencrypted", how,
                "" if encrypted else " (unencrypted BTHome can be spoofed by anyone nearby)",
            )  # fmt: skip
            self.gw.bus.publish(Event("pending", key, {"model": rec["model"]}, now))
        rec["last_seen"] = now
        rec["hellos"] += 1  # advertisements heard
        if name:
            rec["name"] = name

    # -- into the gateway ------------------------------------------------------------

    def _apply(self, dev: Device, u: SensorUpdate, address: str, sleepy: bool) -> None:
        values: list[tuple[str, int, dict | None, Any]] = []  # (label, kind, opts, wire)
        for k, desc in u.entity_descriptions.items():
            sv = u.entity_values.get(k)
            if sv is None or k.key.startswith("packet_id"):
                continue
            v = sv.native_value
            if isinstance(v, bool) or not isinstance(v, int | float):
                self._drop("unmapped", dev.node_id, f"{k.key} is not a number ({v!r}); "
                           "it is not kept")  # fmt: skip
                continue
            cls = str(desc.device_class.value) if desc.device_class else _POSTFIX.sub("", k.key)
            kind = _KINDS.get(cls)
            if kind is not None:
                if kind == model.ENERGY:
                    v = v * 1000  # kWh -> Wh
                nth = _POSTFIX.search(k.key)  # signal_strength is rssi, as on kithnet nodes
                values.append((model.KINDS[kind][0] + (nth[0] if nth else ""), kind, None, v))
            else:
                unit = desc.native_unit_of_measurement
                opts = {
                    model.OPT_TYPE: model.INT,
                    model.OPT_SCALE: _SCALES.get(cls, -2),
                    model.OPT_UNIT: str(unit.value if hasattr(unit, "value") else unit or ""),
                }
                values.append((k.key, _VENDOR_INT, opts, v))
        for k, bv in u.binary_entity_values.items():
            if bv.native_value is None:
                continue
            base = _POSTFIX.sub("", k.key)
            kind = _BINARY.get(base)
            v = bool(bv.native_value)
            if kind is not None:  # opening (true = open) is contact (true = closed)
                label = model.KINDS[kind][0] + k.key[len(base) :]
                values.append((label, kind, None, (not v) if kind == model.CONTACT else v))
            else:
                label = _RENAME_BINARY.get(base, base) + k.key[len(base) :]
                values.append((label, _VENDOR_BOOL, {model.OPT_TYPE: model.BOOL}, v))
        events: list[tuple[str, int]] = []
        for k, ev in u.events.items():
            code = _BUTTON.get(ev.event_type) if k.key.startswith("button") else None
            if code is None:
                self._drop("unmapped", dev.node_id, f"{k.key} event {ev.event_type!r} has no "
                           "kithnet counterpart; it is not kept")  # fmt: skip
                continue
            events.append((k.key, code))
        labels = self._learn(
            dev,
            [(lb, kd, op) for lb, kd, op, _ in values]
            + [(lb, model.BUTTON, None) for lb, _ in events],
            u,
            sleepy,
        )
        addr = ("ble", address)
        body: dict[int, Any] = {}
        for label, _, _, v in values:
            cap = dev.caps[labels[label]]
            try:
                body[cap.cid] = cap.check(model.from_number(cap, v))
            except (ProtocolError, OverflowError, ValueError) as e:
                why = getattr(e, "why", str(e))
                self._drop("bad-value", dev.node_id, f"{label} = {v!r} ({why})")
        if not sleepy:
            body[M.DUE] = DUE_S
        if body:
            self.gw._report(dev, body, addr, None)
        for label, code in events:
            self.gw._event(dev, {M.E_CAP: labels[label], M.E_CODE: code}, addr, None)
        self.t.schedule_flush()

    def _learn(self, dev: Device, wanted: list[tuple[str, int, dict | None]],
               u: SensorUpdate, sleepy: bool) -> dict[str, int]:  # fmt: skip
        """label -> capability id, adding the capabilities a device shows for the first
        time (stored with the node row, announced as a device update: MQTT discovery)."""
        labels = {c.label: cid for cid, c in dev.caps.items()}
        raw = dict(dev.raw_caps or {})
        changed = False
        for label, kind, opts in wanted:
            cid = labels.get(label)
            if cid is not None and dev.caps[cid].kind == kind:
                continue
            cid = max([0, *raw]) + 1
            if label != model.KINDS.get(kind, ("",))[0]:
                opts = {**(opts or {}), model.OPT_LABEL: label}
            raw[cid] = [kind, opts] if opts else kind
            labels[label] = cid
            changed = True
        info = u.devices.get(None)
        made = info.model if info and info.model and info.model != "BTHome sensor" else None
        fw = info.sw_version if info and info.sw_version else None
        if fw and fw.startswith("BTHome"):  # the parser's "BTHome BLE v2": not a firmware
            fw = None
        for attr, val in (("model", made or "BTHome v2"), ("sleepy", sleepy),
                          ("firmware", fw or dev.firmware)):  # fmt: skip
            if getattr(dev, attr) != val:
                setattr(dev, attr, val)
                changed = True
        if changed:
            dev.set_caps(raw)
            self.gw._save(dev)
            self.gw.bus.publish(Event("device", dev.hex, {"action": "updated"}, time.time()))
        return labels

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {f"ble_bthome_{k}": v for k, v in self.counts.items()}
        for k, v in self.dropped.items():
            out[f"ble_bthome_dropped_{k.replace('-', '_')}"] = v
        return out


def _service_info(address: str, name: str | None, rssi: int, data: bytes) -> Any:
    return BluetoothServiceInfoBleak(
        name=name or address, address=address, rssi=rssi, manufacturer_data={},
        service_data={UUID: data}, service_uuids=[UUID], source="kithnet", device=None,
        advertisement=None, connectable=False, time=time.monotonic(), tx_power=None,
    )  # fmt: skip


def _packet_id(u: SensorUpdate) -> int | None:
    for k, sv in u.entity_values.items():
        if k.key == "packet_id" and isinstance(sv.native_value, int | float):
            return int(sv.native_value)
    return None


# -- adoption (Gateway.adopt_bthome) -------------------------------------------------------


async def adopt(gw: Any, address: str, bindkey: str | None, insecure: bool = False,
                name: str | None = None, room: str | None = None) -> dict:  # fmt: skip
    """Adopt a BTHome device by its MAC, with its bindkey, or `insecure` without one
    (unencrypted BTHome: anyone nearby can send its readings). Adopting again replaces the
    key and starts the replay counter afresh. ValueError for bad input."""
    nid = node_id_of(address)
    if bindkey:
        if insecure:
            raise ValueError("give a bindkey or insecure, not both")
        try:
            key = bytes.fromhex(bindkey)
        except ValueError:
            key = b""
        if len(key) != 16:
            raise ValueError("a BTHome bindkey is 32 hex digits")
    elif insecure:
        key = b""
    else:
        raise ValueError("a BTHome device needs its bindkey (32 hex digits), or insecure "
                         "for an unencrypted one")  # fmt: skip
    dev = gw.devices_by_id.get(nid)
    if dev is not None and not is_bthome(dev):
        raise ValueError(f"{dev.hex} is a kithnet node, not a BTHome device")
    pend = gw.pending_nodes.pop(nid.hex(), None) or {}
    if dev is None:
        dev = Device(num=0, node_id=nid, key=key, type=TYPE, model="BTHome v2",
                     name=name or pend.get("name") or f"bthome-{nid.hex()[-6:]}",
                     room=room, added=time.time())  # fmt: skip
        gw.devices_by_id[nid] = dev
    else:
        dev.key = key
        if name:
            dev.name = name
        if room is not None:
            dev.room = room
    gw._save(dev)
    await gw.store.flush()  # its number, for the counter's row
    gw.store.put_bthome([(dev.num, None, mac_of(nid))])
    if gw.ble is not None:
        gw.ble.bthome.adopted(dev)
    await gw.store.flush()
    log.info("adopted BTHome device %s as %r (%s)", mac_of(nid), dev.name,
             "encrypted" if key else "insecure: unencrypted, spoofable")  # fmt: skip
    gw.bus.publish(Event("device", dev.hex, {"action": "adopted"}, time.time()))
    return dev.to_json()
