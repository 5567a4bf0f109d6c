"""A virtual Bluetooth LE radio on this machine: advertisements and GATT between processes.

There is no Bluetooth controller here, so the radio is the one piece of hardware the tests
replace. `RadioServer` plays the air between the parties "in range": the nodes (real
MicroPython boards, whose host HAL firmware/node/hal/host_radio.py is a thin client), the
gateway (its bleak backend gateway/ble/virtual.py) and test tools (`RadioClient`: a
sniffer, or a device of another make). It carries the exact advertising data bytes and
GATT operations, and keeps the rules of the hardware it stands for:

- advertising data is at most 31 bytes (legacy advertising; NimBLE refuses more with
  OSError -18) and is repeated by the "controller" every interval (plus the 0..10 ms
  random advDelay of the Core spec) until changed or stopped, without the node's CPU;
- a node's radio dies with its chip: deep sleep, a reset or a power cut close its
  connection to the server, and its advertising and GATT connections end there;
- only a connectable advertiser (ADV_IND) accepts a connection; a connection stops its
  advertising, as NimBLE does, until the node advertises again; at most 4 connections per
  node (MicroPython's esp32 NimBLE configuration);
- a notification reaches the central only after it subscribed (wrote 01 00 to the CCCD);
  an ATT value is at most MTU - 3 = 244 bytes; a write with response is answered by the
  peripheral's stack before its application sees it;
- every scanner in range gets every advertising event, with an RSSI per advertiser and
  a little noise; `loss` drops that fraction of advertising events per scanner.

Wire format: TCP on loopback, each message a 2-byte big-endian length and one CBOR array.
A peripheral (a node) sends
  ["hi", address]                          who it is (text, "C0:11:22:33:44:55")
  ["adv", data or null, interval_ms, connectable]   start, change or stop advertising
  ["gatt", service uuid, characteristic uuid, value handle]  its one characteristic
  ["notify", conn, handle, data]           ["drop", conn]
  ["once", [[address, data], ...]]         single advertising events (test tools)
and receives ["conn", conn, central address], ["disc", conn], ["write", conn, handle, data].
A central (a scanner, a GATT client) sends requests with an id, answered ["ok", id, ...]
or ["err", id, text]:
  ["scan", id, on]       ["connect", id, address] -> ["ok", id, conn, services, mtu]
  ["write", id, conn, handle, data, response]  ["read", id, conn, handle] -> ["ok", id, data]
  ["disconnect", id, conn]
and receives ["adv", address, data, rssi, connectable], ["notify", conn, handle, data],
["disc", conn]. services = [[service uuid, characteristic uuid, value handle]].

`python -m kithnet.tools.radio --port 47890` runs one on its own (for the demo or a
gateway started by hand with `ble = "virtual:127.0.0.1:47890"`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import socket
import struct
import threading
import time
import zlib
from typing import Any

from kithnet.protocol import cbor

log = logging.getLogger(__name__)

ADV_MAX = 31
MTU = 247
ATT_MAX = MTU - 3
MAX_CONNECTIONS = 4  # per peripheral (MicroPython's esp32 NimBLE build)
CCCD_ON = b"\x01\x00"


def pack(msg: list) -> bytes:
    data = cbor.dumps(msg)
    return struct.pack(">H", len(data)) + data


class _Party:
    """One process's radio: a node, a gateway's scanner or client, or a test tool."""

    def __init__(self, server: RadioServer, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.writer = writer
        self.address: str | None = None
        self.scanning = False
        self.adv: bytes | None = None
        self.interval = 0.1
        self.connectable = False
        self.adv_task: asyncio.Task | None = None
        self.gatt: tuple[str, str, int] | None = None
        self.conns: set[int] = set()
        self.rssi = -50 - zlib.crc32(str(id(self)).encode()) % 40

    def send(self, msg: list) -> None:
        if not self.writer.is_closing():
            self.writer.write(pack(msg))


class RadioServer:
    """The air between parties on loopback, served from a thread of its own (or from the
    caller's event loop with serve()). close() stops it; it is also a context manager."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, loss: float = 0.0, seed: int | None = None
    ) -> None:
        self.host = host
        self.port = port
        self.loss = loss
        self.rand = random.Random(seed)
        self.parties: set[_Party] = set()
        self.by_address: dict[str, _Party] = {}
        self.conns: dict[int, tuple[_Party, _Party, int, bool]] = {}  # conn -> (central,
        self._next_conn = 0  # peripheral, value handle, subscribed)
        self.counts = {"adv_events": 0, "adv_delivered": 0, "adv_lost": 0, "connects": 0,
                       "refused": 0, "notified": 0, "written": 0, "too_long": 0}  # fmt: skip
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None

    # -- life --------------------------------------------------------------------------

    def start(self) -> RadioServer:
        """Run in a thread of its own; returns once it listens."""
        self._thread = threading.Thread(target=self._run, name="radio", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the virtual radio did not start")
        return self

    def _run(self) -> None:
        asyncio.run(self.serve())

    async def serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        sock = self._server.sockets[0]
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.port = sock.getsockname()[1]
        self._ready.set()
        try:
            await self._stopped.wait()
        finally:
            self._server.close()
            for p in list(self.parties):
                p.writer.close()
            await asyncio.sleep(0)

    @property
    def address(self) -> str:
        """HOST PORT, as the node's BOARD/.radio file and the gateway's setting take it."""
        return f"{self.host}:{self.port}"

    def close(self) -> None:
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> RadioServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one party ---------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        p = _Party(self, writer)
        self.parties.add(p)
        try:
            while True:
                head = await reader.readexactly(2)
                msg = cbor.loads(await reader.readexactly(struct.unpack(">H", head)[0]))
                if not isinstance(msg, list) or not msg or not isinstance(msg[0], str):
                    raise ValueError("a message is [op, args...]")
                self._handle(p, msg)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the party's chip is down (deep sleep, reset, power cut) or it left
        except Exception as e:  # a party that speaks nonsense is cut off, loudly
            log.warning("radio: dropping a party after a bad message: %r", e)
        finally:
            self._gone(p)
            writer.close()

    def _gone(self, p: _Party) -> None:
        self.parties.discard(p)
        if p.address is not None and self.by_address.get(p.address) is p:
            del self.by_address[p.address]
        self._stop_adv(p)
        for conn in list(p.conns):
            self._end(conn, notify_both=True)

    def _handle(self, p: _Party, msg: list) -> None:
        op = msg[0]
        if op == "hi":
            p.address = str(msg[1]).upper()
            self.by_address[p.address] = p
        elif op == "adv":
            self._advertise(p, msg[1], msg[2], bool(msg[3]))
        elif op == "gatt":
            p.gatt = (str(msg[1]).lower(), str(msg[2]).lower(), int(msg[3]))
        elif op == "notify":
            self._notify(p, msg[1], msg[2], bytes(msg[3]))
        elif op == "drop":
            if msg[1] in p.conns:
                self._end(msg[1], notify_both=True)
        elif op == "once":
            for address, data in msg[1]:
                self._event(str(address).upper(), bytes(data), False, self._rssi_of(address))
        else:
            self._request(p, op, msg[1], msg[2:])

    def _rssi_of(self, address: str) -> int:
        return -50 - zlib.crc32(str(address).upper().encode()) % 40

    # -- advertising -------------------------------------------------------------------

    def _advertise(self, p: _Party, data: Any, interval_ms: int, connectable: bool) -> None:
        self._stop_adv(p)
        if data is None or not interval_ms:
            p.adv = None
            return
        data = bytes(data)
        if len(data) > ADV_MAX or p.address is None:
            return  # the node's stack refused it already (host_radio raises OSError -18)
        p.adv, p.interval, p.connectable = data, max(interval_ms, 20) / 1000, connectable
        p.adv_task = asyncio.get_running_loop().create_task(self._repeat(p))

    def _stop_adv(self, p: _Party) -> None:
        if p.adv_task is not None:
            p.adv_task.cancel()
            p.adv_task = None

    async def _repeat(self, p: _Party) -> None:
        rssi = self._rssi_of(p.address or "")
        while p.adv is not None:
            self._event(p.address, p.adv, p.connectable, rssi)
            await asyncio.sleep(p.interval + self.rand.random() * 0.01)

    def _event(self, address: str, data: bytes, connectable: bool, rssi: int) -> None:
        self.counts["adv_events"] += 1
        for s in self.parties:
            if not s.scanning:
                continue
            if self.loss and self.rand.random() < self.loss:
                self.counts["adv_lost"] += 1
                continue
            self.counts["adv_delivered"] += 1
            s.send(["adv", address, data, rssi + self.rand.randint(-3, 3), connectable])

    # -- GATT --------------------------------------------------------------------------

    def _request(self, p: _Party, op: str, rid: Any, args: list) -> None:
        try:
            p.send(["ok", rid, *self._do(p, op, args)])
        except (KeyError, ValueError, IndexError) as e:
            p.send(["err", rid, str(e.args[0]) if e.args else op])

    def _do(self, p: _Party, op: str, args: list) -> list:
        if op == "scan":
            p.scanning = bool(args[0])
            return []
        if op == "connect":
            return self._connect(p, str(args[0]).upper())
        if op == "disconnect":
            if args[0] in p.conns:
                self._end(args[0], notify_both=False, tell=p)
            return []
        conn = args[0]
        if conn not in self.conns or self.conns[conn][0] is not p:
            raise KeyError("not connected")
        central, peri, handle, subscribed = self.conns[conn]
        if op == "write":
            h, data, _response = args[1], bytes(args[2]), args[3]
            if len(data) > ATT_MAX:
                self.counts["too_long"] += 1
                raise ValueError("invalid attribute value length")
            if h == handle + 1:  # the CCCD: notifications on or off
                self.conns[conn] = (central, peri, handle, data == CCCD_ON)
                return []
            if h != handle:
                raise ValueError("invalid handle")
            self.counts["written"] += 1
            peri.send(["write", conn, h, data])
            return []
        if op == "read":
            if args[1] == handle + 1:
                return [CCCD_ON if subscribed else b"\x00\x00"]
            raise ValueError("read not permitted")
        raise ValueError(f"unknown operation {op!r}")

    def _connect(self, central: _Party, address: str) -> list:
        peri = self.by_address.get(address)
        if peri is None:
            raise KeyError("device not found")
        if peri.adv is None or not peri.connectable or peri.gatt is None:
            self.counts["refused"] += 1
            raise ValueError("device is not advertising connectable")
        if len(peri.conns) >= MAX_CONNECTIONS:
            self.counts["refused"] += 1
            raise ValueError("no available connection slot")
        self._next_conn += 1
        conn = self._next_conn
        self.conns[conn] = (central, peri, peri.gatt[2], False)
        central.conns.add(conn)
        peri.conns.add(conn)
        self.counts["connects"] += 1
        self._stop_adv(peri)  # a connection ends advertising; the node re-advertises
        peri.adv = None
        peri.send(["conn", conn, central.address or "00:00:00:00:00:00"])
        svc, chr_, handle = peri.gatt
        return [conn, [[svc, chr_, handle]], MTU]

    def _notify(self, p: _Party, conn: int, handle: int, data: bytes) -> None:
        entry = self.conns.get(conn)
        if entry is None or entry[1] is not p:
            return  # a notification to a central that left: lost, as over the air
        if len(data) > ATT_MAX:
            self.counts["too_long"] += 1
            return
        central, _, h, subscribed = entry
        if subscribed and handle == h:
            self.counts["notified"] += 1
            central.send(["notify", conn, handle, data])

    def _end(self, conn: int, notify_both: bool, tell: _Party | None = None) -> None:
        entry = self.conns.pop(conn, None)
        if entry is None:
            return
        central, peri = entry[0], entry[1]
        central.conns.discard(conn)
        peri.conns.discard(conn)
        for side in (central, peri):
            if side is not tell and (notify_both or side is peri):
                side.send(["disc", conn])


class RadioClient:
    """A blocking party for tests and tools: a sniffer that records advertisements, or an
    advertiser of its own (a device of another make, a replay of captured bytes)."""

    def __init__(self, address: str, me: str | None = None) -> None:
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.me = me
        self.heard: list[tuple[float, str, bytes, bool]] = []  # (time, address, data, conn.)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._rid = 0
        if me is not None:
            self._send(["hi", me])

    def _send(self, msg: list) -> None:
        self.sock.sendall(pack(msg))

    def sniff(self) -> RadioClient:
        """Record every advertisement heard from now on (in self.heard)."""
        self._rid += 1
        self._send(["scan", self._rid, True])
        self._thread = threading.Thread(target=self._read, name="sniffer", daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        buf = b""
        try:
            while True:
                try:
                    chunk = self.sock.recv(65536)
                except TimeoutError:  # a quiet air (every node asleep) is no end of sniffing
                    continue
                if not chunk:
                    return
                buf += chunk
                while len(buf) >= 2 and len(buf) >= 2 + struct.unpack(">H", buf[:2])[0]:
                    n = struct.unpack(">H", buf[:2])[0]
                    msg, buf = cbor.loads(buf[2 : 2 + n]), buf[2 + n :]
                    if msg[0] == "adv":
                        with self._lock:
                            self.heard.append((time.time(), msg[1], bytes(msg[2]), msg[4]))
        except OSError:
            return

    def advertisements(self, address: str | None = None) -> list[bytes]:
        """Distinct advertising data heard (from one address), in the order first heard."""
        with self._lock:
            seen = [d for _, a, d, _ in self.heard if address is None or a == address.upper()]
        return list(dict.fromkeys(seen))

    def advertise(self, data: bytes | None, interval_ms: int = 100, connectable=False) -> None:
        self._send(["adv", data, interval_ms, connectable])

    def once(self, events: list[tuple[str, bytes]]) -> None:
        """Single advertising events, in order, as fast as the air takes them."""
        for i in range(0, len(events), 64):
            self._send(["once", [[a, d] for a, d in events[i : i + 64]]])

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        if self._thread is not None:
            self._thread.join(2)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="a virtual BLE radio on loopback")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=47890)
    ap.add_argument("--loss", type=float, default=0.0, help="fraction of adverts lost")
    a = ap.parse_args(argv)
    server = RadioServer(a.host, a.port, loss=a.loss)
    print(
        f'virtual radio on {a.host}:{a.port} (gateway setting: ble = "virtual:{a.host}:{a.port}")'
    )
    try:
        asyncio.run(server.serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
