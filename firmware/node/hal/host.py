# HAL for the host: the node runs under the MicroPython Unix port against a simulated world.
#
# A board directory stands for the board: its files are the flash (config.json, nvs/ for
# the key-value store, .rtc for RTC memory that survives deep sleep and resets but not a
# power-on). Hardware that cannot exist here (pins, buses, radio) comes from host_io.py,
# a thin client of the simulated world the board runner serves (kithnet.tools.world).
# Deep sleep, reset and the watchdog end the process with a distinct exit code, the way
# the chip stops running; the board runner (kithnet.tools.board) starts it again, as the
# chip's boot ROM would.

import os
import socket
import sys
import time

from protocol import messages

from . import host_io
from .host_io import *  # noqa: F403  (Pin, PWM, ADC, I2C, DHT22, PulseCounter, IR)

PLATFORM = "host"
EXIT_DEEPSLEEP = 75
EXIT_RESET = 76
EXIT_WATCHDOG = 77

_board = "."
_cause = messages.REBOOT_POWER_ON


def _path(name):
    return _board + "/" + name


def _read(name):
    try:
        with open(_path(name), "rb") as f:
            return f.read()
    except OSError:
        return None


def _write(name, data):
    """Atomic replace: a kill -9 leaves the old or the new file, never half of one."""
    tmp = _path(name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, _path(name))


def _remove(name):
    try:
        os.remove(_path(name))
    except OSError:
        pass


_CAUSES = {
    b"deepsleep": messages.REBOOT_DEEP_SLEEP,
    b"reset": messages.REBOOT_SOFT,
    b"watchdog": messages.REBOOT_WATCHDOG,
    b"ota": messages.REBOOT_OTA,
}


def init(cfg, board_dir="."):
    """Called once at boot: find out why we booted, start the simulated hardware."""
    global _board, _cause
    _board = board_dir
    mark = _read(".reset")
    _remove(".reset")
    _cause = _CAUSES.get(mark, messages.REBOOT_POWER_ON) if mark else messages.REBOOT_POWER_ON
    if _cause == messages.REBOOT_POWER_ON:
        _remove(".rtc")  # RTC memory does not survive a power-on
    try:
        os.mkdir(_path("nvs"))
    except OSError:
        pass
    host_io.init(cfg, board_dir)


def reset_cause():
    return _cause


def connect(cfg):
    """The station's address. The host is always on its network: the configured address."""
    return cfg.get("net", {}).get("ip", "127.0.0.1")


def rssi():
    return host_io.rssi()


def udp(ip, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(socket.getaddrinfo(ip, port)[0][-1])
    s.setblocking(False)
    return s


def addr(host, port):
    return socket.getaddrinfo(host, port)[0][-1]


def radio(node_id):
    """The Bluetooth LE radio: the virtual radio named in BOARD/.radio (host_radio.py)."""
    from .host_radio import Radio

    return Radio(_board, node_id)


class Store:
    """Persistent key-value store (esp32.NVS on the chip): one small file per key."""

    def get(self, key, default=None):
        data = _read("nvs/" + key)
        if data is None:
            return default
        return _decode(data, default)

    def put(self, key, value):
        _write("nvs/" + key, _encode(value))


def _encode(value):
    if isinstance(value, int):
        return b"i" + str(value).encode()
    if isinstance(value, str):
        return b"s" + value.encode()
    return b"b" + bytes(value)


def _decode(data, default):
    tag = data[:1]
    try:
        if tag == b"i":
            return int(data[1:])
        if tag == b"s":
            return data[1:].decode()
        if tag == b"b":
            return data[1:]
    except ValueError:
        pass
    return default


def rtc_memory(data=None):
    """machine.RTC().memory(): up to 2048 bytes kept across deep sleep and resets."""
    if data is None:
        return _read(".rtc") or b""
    if len(data) > 2048:
        raise ValueError("RTC memory holds 2048 bytes")
    _write(".rtc", bytes(data))
    return None


def _stop(mark, code):
    _write(".reset", mark)
    sys.exit(code)


def deepsleep(ms):
    _write(".wake", str(time.time() + ms / 1000).encode())
    _stop(b"deepsleep", EXIT_DEEPSLEEP)


def reset():
    _stop(b"reset", EXIT_RESET)


class WDT:
    """machine.WDT: if feed() stops for timeout ms, the node is killed and reboots.

    A thread watches the last feed, as the hardware timer does; on expiry it records the
    cause and kills the process outright (SIGKILL via the shell: the Unix port has no
    os._exit), so no Python code of the stuck node runs again.
    """

    def __init__(self, timeout=30000):
        import _thread

        self.timeout = timeout
        self.last = time.ticks_ms()
        _thread.start_new_thread(self._watch, ())

    def feed(self):
        self.last = time.ticks_ms()

    def _watch(self):
        while True:
            time.sleep_ms(250)
            if time.ticks_diff(time.ticks_ms(), self.last) > self.timeout:
                _write(".reset", b"watchdog")
                os.system("kill -9 $PPID")
