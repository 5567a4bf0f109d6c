# BTHome under the real MicroPython: protocol/vectors/ccm4.json (AES-CCM with a 4-byte tag)
# through protocol.ccm, and the node's own firmware/node/bthome.py sealing advertisements
# from fixed inputs, printed for tests/test_bthome_node.py to compare byte for byte with
# an independent CPython builder (struct + cryptography's AESCCM).
#
#     MICROPYPATH=.frozen:firmware:. micropython tests/mp/check_bthome.py   (repo root)
#
# Prints "ok NAME" / "FAIL NAME why" per vector, "KEY hex" (keys.bthome_key), "ADV name hex"
# per advertisement, then "N passed, M failed".
# ruff: noqa: UP031 - %-formatting on purpose, as in protocol/ (MicroPython code)

import binascii
import json
import sys

from node import bthome

from protocol import ccm, keys
from protocol.errors import ProtocolError

NODE_ID = binascii.unhexlify("0102030405060708")
KEY = bytes(range(16))
ADDRESS = "C0:11:22:33:44:55"
FIRST = 0x00112233
# capability id -> kind (protocol/model.py): a sensor's and a plug's, and a vendor kind
CAPS = {1: 6, 2: 7, 3: 9, 4: 11, 5: 8, 6: 12, 7: 2, 8: 3, 9: 4, 10: 5, 11: 1, 12: 13, 13: 10,
        14: [0x8001, {}]}  # fmt: skip
CASES = (
    ("sensor", {1: 2150, 2: 4800, 3: True, 4: False, 5: 350, 6: 87}, 0),
    ("cold-door-open", {1: -512, 4: True, 13: False}, 0),
    ("plug", {7: 1234, 8: 2301, 9: 537, 10: 20000000, 11: True}, 0),
    (
        "everything",
        {
            1: 2150,
            2: 4800,
            3: True,
            4: False,
            5: 350,
            6: 87,
            7: 1234,
            8: 2301,
            9: 537,
            10: 4321,
            11: True,
            14: 5,
        },
        0,
    ),
    ("button-long", {}, 3),
    ("button-with-plug", {7: 1234, 8: 2301, 9: 537, 10: 4321, 11: True}, 1),
    ("out-of-range", {5: 200000, 9: 70000}, 0),
)

passed = 0
failed = 0


def unhex(s):
    return binascii.unhexlify(s) if s else b""


def check(name, ok, why=""):
    global passed, failed
    if ok:
        passed += 1
        print("ok %s" % name)
    else:
        failed += 1
        print("FAIL %s %s" % (name, why))


def vector(v):
    key, nonce, aad = unhex(v["key"]), unhex(v["nonce"]), unhex(v["aad"])
    pt, sealed = unhex(v["plaintext"]), unhex(v["sealed"])
    got = ccm.seal(key, nonce, pt, aad, 4)
    if got != sealed:
        return "seal: got %s" % binascii.hexlify(got).decode()
    if ccm.open(key, nonce, sealed, aad, 4) != pt:
        return "open differs"
    bad = bytearray(sealed)
    bad[-1] ^= 1
    try:
        ccm.open(key, nonce, bytes(bad), aad, 4)
        return "a tampered tag opened"
    except ProtocolError as e:
        if e.reason != "auth":
            return "tampered tag: %s" % e.reason
    try:
        ccm.open(key, nonce, sealed, aad, 8)  # the same bytes read with kithnet's tag length
        return "opened with the wrong tag length"
    except ProtocolError:
        pass
    return ""


class Obj:
    pass


class FakeBle:
    """What node/bthome.py reads of node/ble.py's Ble: the counter, the radio's address, the
    node's capabilities, whether it deep-sleeps (rtc and sleep), Ble.bt."""

    def __init__(self, key):
        self.value = FIRST
        self.rtc = True
        self.radio = Obj()
        self.radio.address = ADDRESS
        self.node = Obj()
        self.node.cfg = {"sleep": {"enabled": True}}
        self.node.hello_caps = CAPS
        self.bt = [key, False, 0]

    def next(self):
        v = self.value
        self.value = v + 1
        return v


def main():
    with open("protocol/vectors/ccm4.json") as f:
        vectors = json.load(f)["vectors"]
    for v in vectors:
        try:
            why = vector(v)
        except Exception as e:  # a crash is that vector's failure
            why = "%s %s" % (type(e).__name__, e)
        check(v["name"], not why, why)
    key = keys.bthome_key(KEY, NODE_ID)
    print("KEY %s" % binascii.hexlify(key).decode())
    b = FakeBle(key)
    for name, vals, event in CASES:
        ev = bthome.obj(13, event) if event else None
        for i, adv in enumerate(bthome.advs(b, vals, ev)):
            print("ADV %s-%d %s" % (name, i, binascii.hexlify(adv).decode()))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


sys.exit(main())
