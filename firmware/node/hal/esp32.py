# HAL for the ESP32 (MicroPython's esp32 port): Wi-Fi, NVS, RTC memory, deep sleep, watchdog.
# Hardware I/O (pins, buses, pulse counting, IR) lives in esp32_io.py.
# This module cannot run on the host; it is kept thin and is compiled by mpy-cross in
# the tests to catch what a compiler can.

import socket
import time

import esp32
import machine
import network

from protocol import messages

from .esp32_io import *  # noqa: F403

PLATFORM = "esp32"

_wlan = None
_nvs = None

_CAUSES = {
    machine.PWRON_RESET: messages.REBOOT_POWER_ON,
    machine.HARD_RESET: messages.REBOOT_HARD,
    machine.WDT_RESET: messages.REBOOT_WATCHDOG,
    machine.DEEPSLEEP_RESET: messages.REBOOT_DEEP_SLEEP,
    machine.SOFT_RESET: messages.REBOOT_SOFT,
}


def init(cfg, board_dir="/"):
    global _nvs
    _nvs = esp32.NVS("kithnet")


def reset_cause():
    return _CAUSES.get(machine.reset_cause(), messages.REBOOT_UNKNOWN)


def connect(cfg):
    """Join Wi-Fi (hostname set first: mDNS takes it at the first GOT_IP); return the IP."""
    global _wlan
    net = cfg.get("wifi", {})
    network.hostname(cfg["hostname"])
    _wlan = network.WLAN(network.WLAN.IF_STA)
    _wlan.active(True)
    _wlan.config(reconnects=-1)
    if not _wlan.isconnected():
        ssid = Store().get("wifi.ssid")  # provisioned over BLE (node/ble.py), else config.json
        if ssid:
            _wlan.connect(ssid, Store().get("wifi.pass", ""))
        else:
            _wlan.connect(net.get("ssid", ""), net.get("password", ""))
    while not _wlan.isconnected():
        time.sleep_ms(200)
    return _wlan.ipconfig("addr4")[0]


def rssi():
    try:
        return _wlan.status("rssi")
    except Exception:
        return -127


def udp(ip, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(socket.getaddrinfo("0.0.0.0", port)[0][-1])
    s.setblocking(False)
    return s


def addr(host, port):
    return socket.getaddrinfo(host, port)[0][-1]


def radio(node_id):
    """The Bluetooth LE radio: MicroPython's `bluetooth` (esp32_radio.py)."""
    from .esp32_radio import Radio

    return Radio("/", node_id)


class Store:
    """esp32.NVS: integers as i32, text and bytes as blobs; committed on every put."""

    def get(self, key, default=None):
        try:
            return _nvs.get_i32(key)
        except OSError:
            pass
        buf = bytearray(256)
        try:
            n = _nvs.get_blob(key, buf)
        except OSError:
            return default
        tag = buf[0]
        data = bytes(buf[1:n])
        return data.decode() if tag == 0x73 else data

    def put(self, key, value):
        if isinstance(value, int):
            _nvs.set_i32(key, value)
        elif isinstance(value, str):
            _nvs.set_blob(key, b"s" + value.encode())
        else:
            _nvs.set_blob(key, b"b" + bytes(value))
        _nvs.commit()


def rtc_memory(data=None):
    rtc = machine.RTC()
    if data is None:
        return rtc.memory()
    rtc.memory(data)
    return None


def deepsleep(ms):
    machine.deepsleep(ms)


def reset():
    machine.reset()


def WDT(timeout=30000):
    return machine.WDT(timeout=timeout)


# -- updates of the MicroPython image itself (node/ota_image.py, SPEC 9.4) -------------------


def ota_partition():
    """The app partition an image update writes (the firmware's OTA variant), or None."""
    try:
        return esp32.Partition(esp32.Partition.RUNNING).get_next_update()
    except OSError:  # a firmware without OTA partitions
        return None


def ota_running():
    """The label of the app partition running now."""
    return esp32.Partition(esp32.Partition.RUNNING).info()[4]


def ota_confirm():
    """The image on trial is good: the bootloader keeps it (no rollback at the next reset)."""
    esp32.Partition.mark_app_valid_cancel_rollback()
