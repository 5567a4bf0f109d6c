"""A TCP relay on loopback between a client and its server whose way to the server can be
cut: bytes from the client then vanish, as on a link that died without a word (no FIN, no
RST), while the server's bytes still reach the client (tests/test_mqtt_crash.py)."""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpRelay:
    def __init__(self, port: int) -> None:
        self.target = ("127.0.0.1", port)
        self.cut = False
        self.dropped = 0  # bytes from the client that vanished
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
                server = socket.create_connection(self.target)
            except OSError:
                return
            with self._lock:
                self._socks += [client, server]
            for a, b, up in ((client, server, True), (server, client, False)):
                threading.Thread(target=self._pump, args=(a, b, up), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, up: bool) -> None:
        try:
            while data := src.recv(65536):
                if up and self.cut:
                    self.dropped += len(data)
                    continue
                dst.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def drop_connections(self) -> None:
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self._listener.close()
        self.drop_connections()
