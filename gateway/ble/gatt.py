"""The protocol engine over GATT: a connectable node's one characteristic carries frames
both ways (written by the gateway, notified by the node), so the UDP engine
(gateway/sessions.py: handshake, opening, de-duplication, requests with retransmission)
runs on it unchanged, with send() going to the node's GATT connection instead of a
socket. Each connection runs a fresh handshake: the node sends its hello when the
gateway, subscribed, writes BLE_OPEN (SPEC 13.1).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from bleak import BleakClient
from bleak.exc import BleakError
from kithnet.protocol import discovery

from ..sessions import Sessions

log = logging.getLogger("kithnet.ble")


class Connection:
    """One GATT connection to a node: writes go out one at a time, in order."""

    def __init__(self, client: BleakClient, address: str) -> None:
        self.client = client
        self.address = address
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.writer = asyncio.get_running_loop().create_task(self._write())
        self.used = 0.0  # loop time of the last request over it
        self.busy = 0  # requests running over it

    async def _write(self) -> None:
        while True:
            data = await self.queue.get()
            try:
                await self.client.write_gatt_char(discovery.BLE_FRAME_CHAR, data, response=True)
            except (BleakError, TimeoutError, OSError) as e:
                log.debug("GATT write to %s failed: %s", self.address, e)

    async def close(self) -> None:
        self.writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.writer
        with contextlib.suppress(BleakError, TimeoutError, OSError):
            await self.client.disconnect()


class GattSessions(Sessions):
    """Sessions whose datagrams are GATT values; addresses are ("ble", BLE address)."""

    def __init__(self, owner: Any, connection_of: Callable[[str], Connection | None]) -> None:
        super().__init__(owner)
        self.connection_of = connection_of

    def send(self, data: bytes, addr: tuple | None) -> None:
        conn = self.connection_of(addr[1]) if addr is not None else None
        if conn is None:
            self.counts["send_failed"] += 1  # not connected: lost, as a datagram would be
            return
        conn.queue.put_nowait(data)
        self.counts["sent"] += 1
