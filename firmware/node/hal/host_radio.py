# The node's Bluetooth LE radio on a PC: a thin client of the virtual radio that the
# board runner or the test serves (kithnet.tools.radio, address in BOARD/.radio as
# "HOST PORT"). It carries the exact advertising data and GATT values; the server plays
# the controller (repeats advertisements, refuses connections to non-connectable ones,
# ends everything when this process, the chip, stops). esp32_radio.py is the same
# interface on MicroPython's `bluetooth` module. Loaded only by nodes that use BLE.
#
# Interface (both radios): address; advertise(data, ms, connectable) with data None to
# stop (OSError(-18) beyond 31 bytes, as NimBLE), ms the interval; serve(service uuid,
# char uuid) -> value handle; notify(conn, handle, data); events() -> [(event, conn,
# data)] with MicroPython's IRQ numbers (1 connect, 2 disconnect, 3 write); sock, a
# socket for select.poll (None on the chip); wait(ms) for when there is nothing to poll.
import socket
import time

from micropython import const

from protocol import cbor

_CONNECT = const(1)
_DISCONNECT = const(2)
_WRITE = const(3)
_HANDLE = const(3)  # value handle of the one characteristic (service 1, declaration 2, CCCD 4)


class Radio:
    def __init__(self, board_dir, node_id):
        # A random static address from the node id (two top bits set), as a chip without a
        # public address would use; on the ESP32 it is the chip's own.
        b = bytes((node_id[2] | 0xC0,)) + bytes(node_id[3:8])
        self.address = "%02X:%02X:%02X:%02X:%02X:%02X" % tuple(b)
        self.sock = None
        self.buf = b""
        try:
            with open(board_dir + "/.radio") as f:
                h, p = f.read().split()
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.connect(socket.getaddrinfo(h, int(p))[0][-1])
            s.setblocking(False)
            self.sock = s
            self._send(["hi", self.address])
        except (OSError, ValueError):
            print("host_radio: no radio server: Bluetooth is off")

    def _send(self, msg):
        if self.sock is None:
            return
        data = cbor.dumps(msg)
        data = bytes((len(data) >> 8, len(data) & 255)) + data  # 2-byte big-endian length
        while data:  # a few dozen bytes: the loopback takes them at once
            try:
                n = self.sock.send(data)
            except OSError as e:
                if e.errno == 11:  # EAGAIN
                    time.sleep_ms(1)
                    continue
                self.sock = None
                return
            data = data[n:]

    def advertise(self, data, ms=100, connectable=False):
        if data is not None and len(data) > 31:
            raise OSError(-18)  # NimBLE's answer to legacy advertising data over 31 bytes
        self._send(["adv", data, ms, connectable])

    def serve(self, service, char):
        self._send(["gatt", service, char, _HANDLE])
        return _HANDLE

    def notify(self, conn, handle, data):
        self._send(["notify", conn, handle, data])

    def events(self):
        out = []
        if self.sock is None:
            return out
        while True:
            try:
                chunk = self.sock.recv(512)
            except OSError:
                break
            if not chunk:  # the radio server went away
                self.sock = None
                break
            self.buf += chunk
        buf = self.buf
        while len(buf) >= 2:
            n = (buf[0] << 8) | buf[1]
            if len(buf) < 2 + n:
                break
            msg = cbor.loads(buf[2 : 2 + n])
            buf = buf[2 + n :]
            op = msg[0]
            if op == "conn":
                out.append((_CONNECT, msg[1], None))
            elif op == "disc":
                out.append((_DISCONNECT, msg[1], None))
            elif op == "write":
                out.append((_WRITE, msg[1], bytes(msg[3])))
        self.buf = buf
        return out

    def wait(self, ms):
        time.sleep_ms(ms)
