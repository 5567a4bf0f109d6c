"""Bluetooth LE nodes on the gateway, through bleak (transport.py): sealed advertisements
in, GATT sessions for commands and provisioning (gatt.py), and bleak backends for the
virtual radio of tests and demos (virtual.py). Off unless the `ble` setting is given;
importing this package needs no Bluetooth adapter.
"""

from .transport import BleTransport

__all__ = ["BleTransport"]
