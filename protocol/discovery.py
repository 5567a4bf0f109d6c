# Discovery constants and the BLE advertisement layout. MicroPython and CPython.
#
# Wi-Fi nodes publish a DNS-SD service of type NODE_SERVICE; the gateway publishes
# GATEWAY_SERVICE so that nodes find it without configuration. BLE nodes put one
# broadcast frame in the Manufacturer Specific Data of a non-connectable advertisement.

from .errors import LIMIT, MALFORMED, ProtocolError

NODE_SERVICE = "_kithnet._udp.local."
GATEWAY_SERVICE = "_kithnet-gw._udp.local."
GATEWAY_PORT = 47800
NODE_PORT = 47801

# TXT keys (values are text; see SPEC.md, "Discovery").
TXT_ID = "id"  # node id, 16 hex digits (gateway: its id)
TXT_MODEL = "md"
TXT_FIRMWARE = "fw"
TXT_PROTOCOL = "pv"
TXT_SLEEPY = "sl"  # "1" if the node sleeps between reports
TXT_TYPE = "ty"  # sensor | plug | light | climate

# 0xFFFF: the Bluetooth SIG's company id for tests before one is assigned.
BLE_COMPANY_ID = 0xFFFF
BLE_ADV_MAX = 31
BLE_AD_MANUFACTURER = 0xFF
BLE_FRAME_MAX = BLE_ADV_MAX - 4
# GATT of a connectable node (SPEC.md, "GATT"): one characteristic carries frames both ways,
# written by the gateway and notified by the node, as UDP datagrams do over Wi-Fi.
BLE_SERVICE = "6b697468-6e65-7401-0000-000000000001"
BLE_FRAME_CHAR = "6b697468-6e65-7401-0000-000000000002"
BLE_OPEN = b"\x00"  # the gateway's first write once subscribed: "send your hello"


def ble_advert(frame_bytes):
    """Advertising data carrying one broadcast frame: len | 0xFF | company id (LE) | frame."""
    n = len(frame_bytes)
    if n > BLE_FRAME_MAX:
        raise ProtocolError(
            LIMIT, "frame of %d bytes exceeds the %d an advertisement holds" % (n, BLE_FRAME_MAX)
        )
    return bytes((n + 3, BLE_AD_MANUFACTURER, BLE_COMPANY_ID & 0xFF, BLE_COMPANY_ID >> 8)) + bytes(
        frame_bytes
    )


def ble_frame(adv):
    """The kithnet frame in advertising data, or None if it carries none; MALFORMED if cut."""
    i = 0
    n = len(adv)
    while i < n:
        ln = adv[i]
        if ln == 0:
            break
        if i + 1 + ln > n:
            raise ProtocolError(MALFORMED, "advertising data structure runs past the end")
        if (
            ln >= 3
            and adv[i + 1] == BLE_AD_MANUFACTURER
            and adv[i + 2] | (adv[i + 3] << 8) == BLE_COMPANY_ID
        ):
            return bytes(adv[i + 4 : i + 1 + ln])
        i += 1 + ln
    return None
