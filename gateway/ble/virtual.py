"""bleak backends on the virtual radio (kithnet.tools.radio): a scanner and a GATT client.

bleak takes a backend class for `BleakScanner(backend=...)` and `BleakClient(backend=...)`
and hands extra keyword arguments to it; these two read the virtual radio named by
`radio="HOST:PORT"`. So the gateway runs bleak's real code path (BleakScanner's detection
callback, BleakClient's GATT calls, bleak-retry-connector's establish_connection) on the
exact advertising data and GATT values that the real firmware makes under MicroPython,
where there is no Bluetooth controller. In production the gateway passes no backend and
bleak uses the platform's (BlueZ over D-Bus on Linux).

The advertising data is parsed into bleak's AdvertisementData as BlueZ does (flags are
not exposed; manufacturer data by company id; service data keyed by the full 128-bit UUID;
an AD structure that runs past the data ends the parsing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Callable
from typing import Any

from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError
from kithnet.protocol import cbor

log = logging.getLogger("kithnet.ble")
_BASE = "-0000-1000-8000-00805f9b34fb"


def _uuid16(b: bytes) -> str:
    return f"0000{int.from_bytes(b, 'little'):04x}{_BASE}"


def _uuid32(b: bytes) -> str:
    return f"{int.from_bytes(b, 'little'):08x}{_BASE}"


def _uuid128(b: bytes) -> str:
    h = b[::-1].hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


Parsed = tuple[str | None, dict[int, bytes], dict[str, bytes], list[str], int | None]


def parse_ad(data: bytes) -> Parsed:
    """(local name, manufacturer data, service data, service uuids, tx power) of raw
    advertising data."""
    name = None
    mfr: dict[int, bytes] = {}
    svc: dict[str, bytes] = {}
    uuids: list[str] = []
    tx = None
    i, n = 0, len(data)
    while i < n:
        ln = data[i]
        if ln == 0 or i + 1 + ln > n:
            break
        t, v = data[i + 1], data[i + 2 : i + 1 + ln]
        if t == 0xFF and len(v) >= 2:
            mfr[int.from_bytes(v[:2], "little")] = bytes(v[2:])
        elif t in (0x02, 0x03):
            uuids += [_uuid16(v[j : j + 2]) for j in range(0, len(v) - 1, 2)]
        elif t in (0x04, 0x05):
            uuids += [_uuid32(v[j : j + 4]) for j in range(0, len(v) - 3, 4)]
        elif t in (0x06, 0x07):
            uuids += [_uuid128(v[j : j + 16]) for j in range(0, len(v) - 15, 16)]
        elif t == 0x16 and len(v) >= 2:
            svc[_uuid16(v[:2])] = bytes(v[2:])
        elif t == 0x20 and len(v) >= 4:
            svc[_uuid32(v[:4])] = bytes(v[4:])
        elif t == 0x21 and len(v) >= 16:
            svc[_uuid128(v[:16])] = bytes(v[16:])
        elif t in (0x08, 0x09):
            name = v.decode("utf-8", "replace")
        elif t == 0x0A and len(v) == 1:
            tx = int.from_bytes(v, "little", signed=True)
        i += 1 + ln
    return name, mfr, svc, uuids, tx


class RadioLink:
    """One party's connection to the virtual radio: requests with ids, and a handler for
    what the air brings unasked (advertisements, notifications, disconnections)."""

    def __init__(self, radio: str, on_message: Callable[[list], None]) -> None:
        self.radio = radio
        self.on_message = on_message
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task | None = None
        self._rid = 0
        self._waiting: dict[int, asyncio.Future] = {}

    async def open(self) -> None:
        host, port = self.radio.rsplit(":", 1)
        try:
            self._reader, self._writer = await asyncio.open_connection(host, int(port))
        except OSError as e:
            raise BleakError(f"virtual radio at {self.radio} unreachable: {e}") from None
        self._task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        reader = self._reader
        try:
            while True:
                head = await reader.readexactly(2)
                msg = cbor.loads(await reader.readexactly(struct.unpack(">H", head)[0]))
                if msg[0] in ("ok", "err"):
                    fut = self._waiting.pop(msg[1], None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
                else:
                    try:
                        self.on_message(msg)
                    except Exception:  # a callback's bug must not deafen the radio
                        log.exception("virtual radio: handling %s failed", msg[0])
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            for fut in self._waiting.values():
                if not fut.done():
                    fut.set_exception(BleakError("the virtual radio went away"))
            self._waiting.clear()
            self.on_message(["gone"])

    async def request(self, op: str, *args: Any, timeout: float = 10.0) -> list:
        if self._writer is None or self._writer.is_closing():
            raise BleakError("not connected to the virtual radio")
        self._rid += 1
        fut = asyncio.get_running_loop().create_future()
        self._waiting[self._rid] = fut
        data = cbor.dumps([op, self._rid, *args])
        self._writer.write(struct.pack(">H", len(data)) + data)
        msg = await asyncio.wait_for(fut, timeout)
        if msg[0] == "err":
            text = str(msg[2])
            if "not found" in text:
                raise BleakDeviceNotFoundError(str(args[0]) if args else "", text)
            raise BleakError(text)
        return msg[2:]

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await self._writer.wait_closed()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class VirtualScanner(BaseBleakScanner):
    """BleakScanner(detection_callback, backend=VirtualScanner, radio="HOST:PORT")."""

    def __init__(
        self,
        detection_callback: Any,
        service_uuids: list[str] | None,
        scanning_mode: str = "active",
        *,
        radio: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self.radio = radio
        self._link: RadioLink | None = None

    async def start(self) -> None:
        self.seen_devices = {}
        self._link = RadioLink(self.radio, self._message)
        await self._link.open()
        await self._link.request("scan", True)

    async def stop(self) -> None:
        if self._link is not None:
            with contextlib.suppress(BleakError, TimeoutError):
                await self._link.request("scan", False, timeout=2)
            await self._link.close()
            self._link = None

    def _message(self, msg: list) -> None:
        if msg[0] != "adv":
            return
        _, address, data, rssi, connectable = msg
        data = bytes(data)
        name, mfr, svc, uuids, tx = parse_ad(data)
        adv = AdvertisementData(
            local_name=name, manufacturer_data=mfr, service_data=svc, service_uuids=uuids,
            tx_power=tx, rssi=rssi, platform_data=(data, connectable),
        )  # fmt: skip
        if not self.is_allowed_uuid(uuids):
            return
        details = {"radio": self.radio, "connectable": connectable}
        device = self.create_or_update_device(address, address, name, details, adv)
        self.call_detection_callbacks(device, adv)


class VirtualClient(BaseBleakClient):
    """BleakClient(device, backend=VirtualClient, radio="HOST:PORT") (the radio may also
    come from a BLEDevice the VirtualScanner made)."""

    def __init__(self, address_or_ble_device: BLEDevice | str, **kwargs: Any) -> None:
        radio = kwargs.pop("radio", None)
        if radio is None and isinstance(address_or_ble_device, BLEDevice):
            details = address_or_ble_device.details
            radio = details.get("radio") if isinstance(details, dict) else None
        if radio is None:
            raise BleakError("VirtualClient needs radio='HOST:PORT'")
        super().__init__(
            address_or_ble_device,
            disconnected_callback=kwargs.pop("disconnected_callback", None),
            timeout=kwargs.pop("timeout", 10.0),
        )
        self.radio = radio
        self._link: RadioLink | None = None
        self._conn: int | None = None
        self._mtu = 23
        self._notify: dict[int, NotifyCallback] = {}

    @property
    def mtu_size(self) -> int:
        return self._mtu

    @property
    def name(self) -> str:
        return self.address

    @property
    def is_connected(self) -> bool:
        return self._conn is not None

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        timeout = kwargs.get("timeout", self._timeout)
        self._link = RadioLink(self.radio, self._message)
        await self._link.open()
        try:
            conn, services, mtu = await self._link.request("connect", self.address, timeout=timeout)
        except BaseException:
            await self._link.close()
            self._link = None
            raise
        self._conn, self._mtu = conn, mtu
        coll = BleakGATTServiceCollection()
        for svc_uuid, chr_uuid, handle in services:
            svc = BleakGATTService(None, handle - 2, svc_uuid)
            coll.add_service(svc)
            props = ["write", "write-without-response", "notify"]
            ch = BleakGATTCharacteristic(None, handle, chr_uuid, props, lambda: mtu - 3, svc)
            coll.add_characteristic(ch)
            coll.add_descriptor(BleakGATTDescriptor(None, handle + 1, "00002902" + _BASE, ch))
        self.services = coll

    def _message(self, msg: list) -> None:
        if msg[0] == "notify" and msg[1] == self._conn:
            cb = self._notify.get(msg[2])
            if cb is not None:
                cb(bytearray(msg[3]))
        elif (msg[0] == "disc" and msg[1] == self._conn) or msg[0] == "gone":
            if self._conn is not None:
                self._conn = None
                self.services = None
                if self._disconnected_callback is not None:
                    self._disconnected_callback()

    async def disconnect(self) -> None:
        if self._link is None:
            return
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(BleakError, TimeoutError):
                await self._link.request("disconnect", conn, timeout=2)
        await self._link.close()
        self._link = None
        self.services = None

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("kithnet nodes need no pairing: their frames are sealed")

    async def unpair(self) -> None:
        raise NotImplementedError("kithnet nodes need no pairing: their frames are sealed")

    def _need(self) -> RadioLink:
        if self._link is None or self._conn is None:
            raise BleakError("Not connected")
        return self._link

    async def read_gatt_char(self, characteristic: BleakGATTCharacteristic, **kwargs: Any):
        return bytearray((await self._need().request("read", self._conn, characteristic.handle))[0])

    async def read_gatt_descriptor(self, descriptor: BleakGATTDescriptor, **kwargs: Any):
        return bytearray((await self._need().request("read", self._conn, descriptor.handle))[0])

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: Any, response: bool
    ) -> None:
        await self._need().request(
            "write", self._conn, characteristic.handle, bytes(data), response
        )

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: Any) -> None:
        await self._need().request("write", self._conn, descriptor.handle, bytes(data), True)

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        self._notify[characteristic.handle] = callback
        await self._need().request(
            "write", self._conn, characteristic.handle + 1, b"\x01\x00", True
        )

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        self._notify.pop(characteristic.handle, None)
        await self._need().request(
            "write", self._conn, characteristic.handle + 1, b"\x00\x00", True
        )


def backends(setting: str) -> tuple[type | None, type | None, dict[str, Any]]:
    """(scanner backend, client backend, their keyword arguments) for the gateway's `ble`
    setting: "virtual:HOST:PORT" for the virtual radio, "bluez" (or "platform") for
    bleak's own backend of the platform."""
    if setting.startswith("virtual:"):
        radio = setting[len("virtual:") :]
        host, _, port = radio.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"ble = {setting!r}: the virtual radio is virtual:HOST:PORT")
        return VirtualScanner, VirtualClient, {"radio": radio}
    if setting in ("bluez", "platform"):
        return None, None, {}
    raise ValueError(f'ble = {setting!r}: use "bluez" or "virtual:HOST:PORT"')
