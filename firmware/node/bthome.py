# BTHome v2 advertisements (bthome.io/format, /encryption) for a BLE node whose config says
# "ble": {"adv": "bthome"} (only these: Home Assistant's BTHome integration reads the node
# with no gateway at all) or "both" (each burst carries the kithnet frames and these). SPEC
# 13.2 is the contract. Ble.post loads this module for each report or event and drops it
# again (ble_setup.py loads it once at boot, so its names are interned on a young heap):
# what stays is Ble.bt, [bindkey, kithnet frames too, BTHome advertisements in Ble.advs].
#
# One advertisement is one Service Data AD structure (no Flags, as SPEC 13): length, 0x16,
# UUID 0xFCD2 little-endian, device information (0x41: v2, encrypted; 0x45 when the node
# deep-sleeps, BTHome's "sleepy device" bit), the AES-CCM ciphertext of the objects, the
# counter (4 bytes, little-endian) and a 4-byte MIC. Nonce: the node's BLE address (6 bytes,
# as printed), d2 fc, the device information byte, the counter. The key is the bindkey,
# HKDF of the node key under its own label (protocol/keys.bthome_key), never the node key.
#
# The counter is the broadcast counter of the kithnet frames (Ble.next: persisted
# write-ahead, resumed above every number used before a reboot), so it only ever grows and
# Home Assistant's replay check (a lower counter is refused) holds across reboots.
#
# Objects go in ascending object id, a packet id (0x00, the counter's low byte) first, so
# that a receiver drops repeats of one advertisement. Readings are the node's latest values
# (Node.last), whatever the report carried. An event (a button press) goes in the first
# advertisement with them: one advertisement replaced at the next report, so a receiver
# fires it once. If the readings do not fit one advertisement they are split, and all of
# them are sealed anew at each turn of the node's advertisements (turn()): a receiver
# refuses a counter lower than the last it took.

import time

from micropython import const

from protocol import ccm
from protocol import messages as M

_AD = const(b"\x16\xd2\xfc")  # Service Data - 16-bit UUID, 0xFCD2 little-endian
_MAX = const(16)  # object bytes per advertisement: 31 - 15 (AD header, info, packet id, ...)
# kithnet kind (protocol/model.py) -> BTHome object id, bytes, multiplier, three bytes each:
# switch 0x10 power (binary), power 0x0B 0.01 W, voltage 0x4A 0.1 V, current 0x43 0.001 A,
# energy 0x0A 0.001 kWh (0x4D, 4 bytes, beyond 24 bits), temperature 0x02 0.01 degC (signed),
# humidity 0x03 0.01 %, illuminance 0x05 0.01 lx, motion 0x21, occupancy 0x23, contact
# 0x11 opening (inverted: contact = closed), battery 0x01 %, button 0x3A (event).
_T = const(
    b"\x00\x00\x00\x10\x01\x01\x0b\x03\x0a\x4a\x02\x01\x43\x02\x01\x0a\x03\x01\x02\x02\x01"
    b"\x03\x02\x01\x05\x03\x64\x21\x01\x01\x23\x01\x01\x11\x01\x01\x01\x01\x01\x3a\x01\x01"
)


def obj(kind, v):
    """One object for a kithnet value, or None (no BTHome counterpart, or out of its range)."""
    o = kind * 3
    if o >= len(_T) or not _T[o]:
        return None
    oid = _T[o]
    n = _T[o + 1]
    if v is True or v is False:
        v = 1 if v else 0
    if kind == 11:  # contact: true = closed; BTHome's opening: 1 = open
        v = 1 - v
    elif kind == 13:  # button: single, double, long -> press, double_press, long_press
        v = 4 if v == 3 else v
    v *= _T[o + 2]
    if oid == 0x0A and v > 0xFFFFFF:
        oid = 0x4D
        n = 4
    if v < 0 and oid == 0x02:
        v += 0x10000
    if v < 0 or v >> (8 * n):
        return None
    return bytes((oid,)) + v.to_bytes(n, "little")


def seal(b, objs):
    """One advertisement of these objects under the next number of the node's counter."""
    c = b.next()
    ctr = c.to_bytes(4, "little")
    node = b.node
    info = b"\x45" if b.rtc and node.cfg["sleep"].get("enabled") else b"\x41"
    nonce = bytes.fromhex(b.radio.address.replace(":", "")) + b"\xd2\xfc" + info + ctr
    s = ccm.seal(b.bt[0], nonce, b"\x00" + bytes((c & 255,)) + objs, b"", 4)
    svc = info + s[:-4] + ctr + s[-4:]
    return bytes((len(svc) + 3,)) + _AD + svc


def advs(b, vals, event=None):
    """The advertisements of these readings ({capability id: value}), an event's object
    (bytes) first: as few as hold them, objects in ascending id in each."""
    caps = b.node.hello_caps
    objs = []
    for cid in vals:
        k = caps.get(cid)
        if isinstance(k, list):
            k = k[0]
        if isinstance(k, int):
            o = obj(k, vals[cid])
            if o is not None:
                objs.append(o)
    objs.sort()
    parts = [[event] if event else []]
    n = len(event) if event else 0
    for o in objs:
        if n + len(o) > _MAX:
            parts.append([])
            n = 0
        parts[-1].append(o)
        n += len(o)
    out = []
    for p in parts:
        p.sort()
        out.append(seal(b, b"".join(p)))
    return out


def post(b, mtype, body, con):
    """Ble.post with BTHome: the node's readings (and an event) as BTHome advertisements from
    now on; with "both", the kithnet frames too (Ble.post, which also feeds a Wi-Fi session)."""
    bt = b.bt
    node = b.node
    ev = None
    if mtype == M.EVENT:
        k = node.hello_caps.get(body[M.E_CAP])
        ev = obj(k if isinstance(k, int) else 0, body[M.E_CODE])
    new = advs(b, node.last, ev)
    bt[2] = len(new)
    if bt[1]:  # "both": Ble.post's own path, then the BTHome advertisements after its frames
        b.bt = None
        try:
            type(b).post(b, mtype, body, con)
        finally:
            b.bt = bt
        b.advs = [a for a in b.advs if a[1] != 0x16] + new
        return
    b.advs = new
    b.i = 0
    now = time.ticks_ms()
    b.posted = now
    b.advertise(now)
    if b.wifi:
        link = node.link
        type(link).post(link, mtype, body, con)


def turn(b):
    """Ble.tick at the turn of advertisements split over several: the readings sealed anew
    (the event, if any, is not: it was on the air once)."""
    new = advs(b, b.node.last)
    b.bt[2] = len(new)
    b.advs = [a for a in b.advs if a[1] != 0x16] + new
