"""A UDP relay between one node and its gateway on loopback, for watching or spoiling the
datagrams between them (tests/test_ota.py, bench/ota.py).

The node is given `addr` as its gateway; the relay passes each datagram through
to_gateway() or to_node(), which a subclass overrides to count or change it. A subclass
sets its own fields before calling __init__: the threads start there.
"""

from __future__ import annotations

import socket
import threading

CHUNK_MIN = 400  # bytes: only an OTA chunk makes a gateway frame this long


class UdpRelay:
    def __init__(self, gw: tuple[str, int]) -> None:
        self.gw = gw
        self.near = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.near.bind(("127.0.0.1", 0))
        self.far = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.far.bind(("127.0.0.1", 0))
        self.addr = self.near.getsockname()
        self.node: tuple | None = None
        self._stop = False
        for fn in (self._up, self._down):
            threading.Thread(target=fn, daemon=True).start()

    def to_gateway(self, data: bytes) -> bytes:
        return data

    def to_node(self, data: bytes) -> bytes:
        return data

    def _up(self) -> None:
        self.near.settimeout(0.2)
        while not self._stop:
            try:
                data, self.node = self.near.recvfrom(2048)
            except OSError:
                continue
            self.far.sendto(self.to_gateway(data), self.gw)

    def _down(self) -> None:
        self.far.settimeout(0.2)
        while not self._stop:
            try:
                data, _ = self.far.recvfrom(2048)
            except OSError:
                continue
            data = self.to_node(data)
            if self.node is not None:
                self.near.sendto(data, self.node)

    def close(self) -> None:
        self._stop = True
