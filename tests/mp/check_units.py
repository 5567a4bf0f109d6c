# Key protocol behaviours checked under the real MicroPython with -X heapsize=110k
# (tests/test_protocol_mp.py runs it). Prints "ok NAME" or "FAIL NAME" and a traceback per
# check, then "CBOR NAME HEX" and "HEX NAME HEX" lines that the CPython side compares byte
# for byte with its own encodings, a "FUZZ BITS DIGEST" line (which of 2000 pseudo-random
# inputs decode, and a digest of their re-encodings), then a final "N passed, M failed" line.
#
#   micropython tests/mp/check_units.py        the checks and the encodings
#   micropython tests/mp/check_units.py wrap   Pending across the ticks wrap (a known bug)
#
# CPython imports this file too, for CBOR_VALUES, vectors() and fuzz(): inputs defined once,
# so the top level imports nothing from protocol (main() does).
#
# Keep it compact: MicroPython parses a whole script before running it, and the parse tree
# of a 20 kB script alone needs more than 110 kB of heap. Failures are located by the line
# numbers in the printed traceback, so checks carry no messages.

import gc
import sys

NAN = float("nan")
INF = float("inf")

# (name, value): names are pytest ids and contain no spaces.
CBOR_VALUES = (
    ("u0", 0),
    ("u23", 23),
    ("u24", 24),
    ("u256", 256),
    ("u65536", 65536),
    ("u2^32", 2**32),
    ("u2^64-1", 2**64 - 1),
    ("n-1", -1),
    ("n-25", -25),
    ("n-2^63", -(2**63)),
    ("n-2^64", -(2**64)),
    ("f21.5", 21.5),
    ("f0.1", 0.1),
    ("f1e300", 1e300),
    ("f-1e300", -1e300),
    ("f-0.0", -0.0),
    ("f1.5", 1.5),
    ("f65504", 65504.0),
    ("f65520", 65520.0),
    ("f2^-24", 2.0**-24),
    ("f100000", 100000.0),
    ("f3.4e38", 3.4028234663852886e38),
    ("f2^-149", 2.0**-149),
    ("f5e-324", 5e-324),
    ("f-273.15", -273.15),
    ("inf", INF),
    ("-inf", -INF),
    ("nan", NAN),
    ("true", True),
    ("null", None),
    ("bytes", b"\x00\x01\xfe\xff"),
    ("b-1024", bytes(range(256)) * 4),
    ("t-empty", ""),
    ("t-utf8", "h\u00e9llo \u20ac\U0001d11e"),
    ("t-255", "\u00e9" * 127 + "a"),
    ("list", [1, [2, [3, []]], "x", b"y", None, False]),
    ("depth8", [[[[[[[[0]]]]]]]]),
    ("map-order", {1: 2, "a": 3, -1: 4, 256: 5, "bb": 6, 24: 7, -25: 8, "": 9}),
    ("map-nested", {"z": [], "aa": {}, 0: {1: [1.5, -0.0]}}),
    ("map-64", {i: -i for i in range(64)}),
)

KEY = bytes(range(16))
NODE_ID = b"KN\x00\x00\x00\x00\x00\x01"
NONCE_N = b"\x11" * 8
NONCE_G = b"\x22" * 8
SID = 0x0102
NONCE13 = bytes(range(100, 113))


def hello_body(m, caps=None):
    return {
        m.H_NODE: NODE_ID,
        m.H_NONCE: NONCE_N,
        m.H_PROTO: 1,
        m.H_MODEL: "kn-plug",
        m.H_FW: "1.2.3",
        m.H_CAPS: caps or {1: 1, 2: [2, {2: 36000}]},
        m.H_SLEEPY: False,
        m.DUE: 60,
    }


def vectors(cbor, ccm, kdf, keys, frame, session, m, discovery):
    """[(name, bytes)] from fixed inputs: both interpreters must produce the same bytes."""
    out = [
        ("hmac", kdf.hmac_sha256(b"k" * 70, b"message")),
        ("hkdf", kdf.hkdf(KEY, b"salt", b"info", 42)),
        ("ccm-empty", ccm.seal(KEY, NONCE13, b"", b"")),
        ("ccm-30", ccm.seal(KEY, NONCE13, bytes(range(30)), b"aad")),
        ("ccm-300", ccm.seal(KEY, NONCE13, bytes(range(150)) * 2, bytes(20))),
        ("ccm-noaad", ccm.seal(KEY, NONCE13, b"sixteen bytes!!!", b"")),
    ]
    hello = hello_body(m)
    hello_msg, hello_frame = session.hello_frame(hello)
    n2g, g2n = keys.session_keys(KEY, NODE_ID, NONCE_N, NONCE_G, SID, hello_msg)
    bkey = keys.broadcast_key(KEY, NODE_ID)
    chal_frame, gw = session.challenge(KEY, hello_msg, hello, SID, NONCE_G, 1700000000)
    node = session.answer(KEY, hello_msg, hello, m.decode(chal_frame[1:])[1])
    out += [
        ("hello", hello_frame),
        ("session-keys", n2g + g2n),
        ("proof", keys.challenge_proof(g2n, NODE_ID)),
        ("broadcast-key", bkey),
        ("challenge", chal_frame),
        ("confirm", node.seal(m.CONFIRM, {}, True)[1]),
        ("ack", gw.seal(m.ACK, {m.REF: 0})[1]),
    ]
    node.send_seq = 300
    out.append(("report", node.seal(m.REPORT, {1: True, 2: 1234, m.DUE: 60})[1]))
    gw.send_seq = 70000
    out.append(("command", gw.seal(m.COMMAND, {14: 128, m.FADE: 500}, True)[1]))
    node.send_seq = 2**32 - 1
    out.append(("seq-max", node.seal(m.PING, {}, True)[1]))
    bframe = session.seal_broadcast(bkey, NODE_ID, 70000, m.REPORT, {6: 2150, 7: 4520})
    out.append(("broadcast", bframe))
    out.append(("ble-advert", discovery.ble_advert(bframe)))
    error = {m.CODE: 3, m.ERR_VERSIONS: [1], m.TEXT: "v1"}
    out.append(("error-plain", frame.plain(m.encode(m.ERROR, error), True)))
    return out


def fuzz(loads, dumps, sha256, error, n=2000):
    """Decode n pseudo-random inputs (mostly text, bytes and float heads): returns (bitmask
    of those accepted, SHA-256 of their re-encodings). Anything but `error` escapes."""
    rnd = Lcg(5)
    bits = bytearray((n + 7) // 8)
    h = sha256()
    for i in range(n):
        j = rnd(4)
        k = rnd(4)
        if k == 0:  # text, bytes, floats of about the right length; anything
            head, ln = 0x61 + j, j + 1
        elif k == 1:
            head, ln = 0x41 + j, j + 1
        elif k == 2:
            head, ln = 0xF9 + j % 3, (2, 4, 8)[j % 3]
        else:
            head, ln = rnd(256), rnd(9)
        if not rnd(4):
            ln = max(0, ln + rnd(3) - 1)
        data = bytes([head]) + bytes([0x80 + rnd(64) if rnd(2) else rnd(256) for _ in range(ln)])
        try:
            v = loads(data)
        except error:
            continue
        bits[i // 8] |= 1 << (i % 8)
        h.update(dumps(v))
    return bytes(bits), h.digest()


# --------------------------------------------------------------------------- runner

_CHECKS = []


def check(fn):
    _CHECKS.append(fn)
    return fn


def ensure(cond):
    if not cond:
        raise AssertionError


def refused(code, fn, *args):
    """fn(*args) must raise ProtocolError with this code; anything else fails the check."""
    try:
        fn(*args)
    except errors.ProtocolError as e:
        if e.code != code:
            raise AssertionError(f"code {e.code}, not {code}: {e.why}") from None
        return
    raise AssertionError(f"no ProtocolError {code}")


def same(a, b):
    """Equality that tells 1, True and 1.0 apart, and -0.0 from 0.0, with NaN == NaN."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return (a != a and b != b) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if type(a) is list:
        return len(a) == len(b) and all(same(a[i], b[i]) for i in range(len(a)))
    if type(a) is dict:
        return len(a) == len(b) and all(k in b and same(a[k], b[k]) for k in a)
    return a == b


class Lcg:
    """rnd(n) in 0..n-1, from the top 15 bits of a 31-bit LCG (its low bits cycle fast)."""

    def __init__(self, seed):
        self.s = seed

    def __call__(self, n):
        self.s = (self.s * 1103515245 + 12345) & 0x7FFFFFFF
        return ((self.s >> 16) * n) >> 15


def handshake(gw_key=KEY, hello=None):
    """(node's hello message, hello body, challenge body, gateway session)."""
    m = messages
    hello = hello or hello_body(m)
    hello_msg, hello_frame = session.hello_frame(hello)
    p = frame.parse(hello_frame)
    ensure(p[:2] == (frame.PLAIN, False))
    msg = hello_frame[p[5] :]
    chal_frame, gw = session.challenge(gw_key, msg, m.decode(msg)[1], SID, NONCE_G)
    ensure(frame.parse(chal_frame)[:2] == (frame.PLAIN, True))
    mtype, chal = m.decode(chal_frame[1:])
    ensure(mtype == m.CHALLENGE)
    return hello_msg, hello, chal, gw


def established():
    hello_msg, hello, chal, gw = handshake()
    node = session.answer(KEY, hello_msg, hello, chal)
    ensure(gw.open(node.seal(messages.CONFIRM, {}, True)[1]) == (0, True, 3, {}, True))
    return node, gw


# --------------------------------------------------------------------------- checks


@check
def names_of_codes_and_types():
    ensure(errors.name(errors.AUTH) == "auth" and errors.name(99) == "code-99")
    ensure(str(errors.ProtocolError(errors.REPLAY, "x")) == "replay: x")
    ensure(messages.name(messages.REPORT) == "report" and messages.name(0) == "type-0")
    ensure(messages.name(messages.OTA_STATUS) == "ota-status")


@check
def handshake_end_to_end():
    m = messages
    node, gw = established()
    ensure(node.send_key == gw.recv_key and node.recv_key == gw.send_key)
    seq, ack = gw.seal(m.ACK, {m.REF: 0})
    ensure(seq == 1 and node.open(ack) == (1, False, m.ACK, {m.REF: 0}, True))
    _, rep = node.seal(m.REPORT, {1: True, 2: 1234})
    ensure(gw.open(rep) == (1, False, m.REPORT, {1: True, 2: 1234}, True))


@check
def handshake_failures():
    m = messages
    hello_msg, hello, chal, gw = handshake(gw_key=bytes(16))  # gateway has another key
    refused(errors.AUTH, session.answer, KEY, hello_msg, hello, chal)
    n2g, g2n = keys.session_keys(KEY, NODE_ID, NONCE_N, NONCE_G, SID, hello_msg)
    node = session.Session(NODE_ID, SID, n2g, g2n, False)
    refused(errors.AUTH, gw.open, node.seal(m.CONFIRM, {}, True)[1])
    _, _, chal, gw = handshake(hello=hello_body(m, {1: 1, 2: 2, 3: 5}))  # tampered caps
    refused(errors.AUTH, session.answer, KEY, hello_msg, hello, chal)
    _, _, chal, gw = handshake()
    chal[m.C_NODE] = bytes(8)  # a challenge for another node
    refused(errors.AUTH, session.answer, KEY, hello_msg, hello, chal)


@check
def seal_open_piv_lengths():
    node, gw = established()
    for seq in (255, 256, 65535, 65536, 2**24 - 1, 2**24, 2**32 - 1):
        node.send_seq = seq
        _, data = node.seal(messages.REPORT, {2: seq})
        ensure(data[0] & 3 == len(frame.piv_bytes(seq)) - 1)
        ensure(gw.open(data) == (seq, False, messages.REPORT, {2: seq}, True))
    refused(errors.NO_SESSION, node.seal, messages.PING, {}, True)
    refused(errors.LIMIT, frame.piv_bytes, 2**32)
    refused(errors.AUTH, node.open, data)  # a frame of its own direction


@check
def replay_duplicate_and_old():
    node, gw = established()
    _, first = node.seal(messages.REPORT, {1: True})
    ensure(gw.open(first)[4] is True)
    ensure(gw.open(first) == (1, False, messages.REPORT, {1: True}, False))
    node.send_seq = 65
    ensure(gw.open(node.seal(messages.REPORT, {})[1])[4] is True)
    refused(errors.REPLAY, gw.open, first)


@check
def replay_window_model():
    rnd = Lcg(7)
    w = replay.ReplayWindow()
    seen = set()
    top = -1
    for _ in range(500):
        seq = rnd(300) if rnd(10) else rnd(2**31)
        want = "replay" if seq <= top - 64 else seq not in seen
        try:
            got = w.accept(seq)
        except errors.ProtocolError as e:
            got = "replay" if e.code == errors.REPLAY else e
        ensure(got == want)
        if want is True:
            seen.add(seq)
            top = max(top, seq)
        ensure(w.highest == top)


def _damaged(data):
    for n in range(len(data)):
        yield data[:n]
    yield data + b"\x00"
    for i in range(8 * len(data)):
        b = bytearray(data)
        b[i // 8] ^= 1 << (i % 8)
        yield b


@check
def tamper_rejected():
    node, gw = established()
    _, data = node.seal(messages.REPORT, {6: 2150, 7: 4520})
    for b in _damaged(data):
        try:
            gw.open(bytes(b))
            ensure(False)
        except errors.ProtocolError as e:
            ensure(e.code in (errors.AUTH, errors.MALFORMED, errors.NO_SESSION, errors.VERSION))
    ensure(gw.window.highest == 0 and gw.open(data)[4] is True)


@check
def broadcast_frames():
    bkey = keys.broadcast_key(KEY, NODE_ID)
    w = replay.ReplayWindow()
    data = session.seal_broadcast(bkey, NODE_ID, 70000, messages.REPORT, {6: 2150})
    ob = session.open_broadcast
    ensure(ob(data, frame.parse(data), bkey, NODE_ID, w) == (70000, 8, {6: 2150}, True))
    ensure(ob(data, frame.parse(data), bkey, NODE_ID, w)[3] is False)
    bad = data[:-1] + bytes([data[-1] ^ 1])
    refused(errors.AUTH, ob, bad, frame.parse(bad), bkey, NODE_ID, w)
    adv = discovery.ble_advert(data)
    ensure(len(adv) <= 31 and discovery.ble_frame(b"\x02\x01\x06" + adv) == data)
    refused(errors.MALFORMED, discovery.ble_frame, adv[:-1])
    refused(errors.LIMIT, discovery.ble_advert, bytes(28))


@check
def broadcast_counter():
    flash = [None, 0]  # stored mark, writes

    def store(n):
        flash[0] = n
        flash[1] += 1

    c = keys.BroadcastCounter(lambda: flash[0], store)
    used = [c.next() for _ in range(130)]
    ensure(used == list(range(130)) and flash == [192, 3])
    for _ in range(3):  # reboots resume at the stored mark: numbers skipped, never reused
        c = keys.BroadcastCounter(lambda: flash[0], store)
        used.append(c.next())
        ensure(flash[0] > used[-1])
    ensure(used[-4:] == [129, 192, 256, 320])


@check
def model_capabilities():
    mo = model
    t = mo.Capability(1, mo.TEMPERATURE)
    ensure(t.check(2150) == 2150 and mo.to_number(t, 2150) == 21.5)
    ensure(mo.from_number(t, 21.5) == 2150 and mo.from_number(t, -273.15) == -27315)
    refused(errors.BAD_VALUE, t.check, 32768)
    refused(errors.BAD_VALUE, t.check, True)
    refused(errors.NOT_WRITABLE, t.check_set, 2000)
    h = mo.Capability(2, mo.HVAC_MODE)
    ensure(h.check_set(5) == 5)
    refused(errors.BAD_VALUE, h.check, 6)
    refused(errors.BAD_VALUE, mo.Capability(3, mo.SWITCH).check, 1)
    refused(errors.BAD_VALUE, mo.Capability, 4, mo.BRIGHTNESS, {mo.OPT_MAX: 256})
    refused(errors.UNKNOWN_CAPABILITY, mo.Capability, 4, 1000)
    v = mo.Capability(5, 0x8000, {mo.OPT_TYPE: mo.BOOL, mo.OPT_WRITABLE: True})
    ensure(v.check_set(False) is False)
    ensure(mo.capabilities({1: 1, 2: [2, {2: 36000}]})[2].max == 36000)


@check
def cbor_values():
    for _, v in CBOR_VALUES:
        ensure(same(cbor.loads(cbor.dumps(v)), v))
    ensure(cbor.dumps(21.5) == b"\xf9\x4d\x60")
    ensure(cbor.dumps(0.1) == b"\xfb\x3f\xb9\x99\x99\x99\x99\x99\x9a")
    ensure(cbor.dumps(1e300) == b"\xfb\x7e\x37\xe4\x3c\x88\x00\x75\x9c")
    ensure(cbor.dumps(2**64 - 1) == b"\x1b" + b"\xff" * 8)
    ensure(cbor.loads(b"\x3b" + b"\xff" * 8) == -(2**64))
    ensure(cbor.loads(b"\x19\x00\x01") == 1)  # non-shortest forms are accepted
    for v in (2**64, -(2**64) - 1, "\u00e9" * 128, [[[[[[[[[]]]]]]]]]):
        refused(errors.LIMIT, cbor.dumps, v)


@check
def cbor_rejects():
    for h in ("ff", "f7", "c0", "1c", "5f41ff", "a201010102", "a18000", "62ffff", "0000", "1900"):
        refused(errors.MALFORMED, cbor.loads, binascii.unhexlify(h))
    for h in ("9bffffffffffffffff", "5bffffffffffffffff", "81818181818181818101"):
        refused(errors.LIMIT, cbor.loads, binascii.unhexlify(h))
    rnd = Lcg(11)
    for _ in range(300):  # random bytes: a value or ProtocolError, nothing else
        try:
            cbor.loads(bytes([rnd(256) for _ in range(rnd(12))]))
        except errors.ProtocolError:
            pass


@check
def messages_validate():
    m = messages
    refused(errors.MALFORMED, m.validate, m.ACK, {})
    refused(errors.MALFORMED, m.validate, m.ACK, {m.REF: -1})
    refused(errors.MALFORMED, m.validate, m.REPORT, {1: 1.5})
    hello = hello_body(m)
    hello[m.H_NODE] = b"short"
    refused(errors.MALFORMED, m.validate, m.HELLO, hello)
    refused(errors.UNKNOWN_TYPE, m.decode, b"\x18\x63\xa0")
    refused(errors.MALFORMED, m.decode, b"\x08")
    body = {1: 4, 2: 1, 77: "x"}
    ensure(m.decode(m.encode(m.EVENT, body)) == (m.EVENT, body))


@check
def retransmit_timing():
    r = retransmit
    ensure(r.initial_timeout_ms(0) == 2000 and r.initial_timeout_ms(0xFFFF) == 3000)
    ensure(r.schedule_ms(0) == [2000, 6000, 14000, 30000, 46000])
    ensure(r.schedule_ms(0xFFFF) == [3000, 9000, 21000, 37000, 53000])
    p = r.Pending()
    p.add(3, b"f", 100, 0)
    got = []
    for t in range(100, 50000, 500):
        resend, lost = p.due(t)
        if resend or lost:
            got.append((t - 100, resend, lost))
    f = [b"f"]
    ensure(got == [(2000, f, []), (6000, f, []), (14000, f, []), (30000, f, []), (46000, [], [3])])


@check
def answers_bounded():
    node, _ = established()
    for ref in range(9):
        node.remember(ref, bytes([ref]))
    ensure(node.answer_for(0) is None and node.answer_for(8) == b"\x08")


def pending_across_wrap():
    import time

    start = time.ticks_add(0, -1000)  # one second before the ticks counter wraps
    p = retransmit.Pending(diff=time.ticks_diff)
    p.add(1, b"f", start, 0)
    ensure(p.due(time.ticks_add(start, 1999)) == ([], []))
    ensure(p.due(time.ticks_add(start, 2000)) == ([b"f"], []))


# --------------------------------------------------------------------------- main


def main(argv):
    global binascii, math, errors, cbor, ccm, kdf, keys, frame, session
    global messages, discovery, model, replay, retransmit
    import binascii
    import hashlib
    import math

    from protocol import (
        cbor,
        ccm,
        discovery,
        errors,
        frame,
        kdf,
        keys,
        messages,
        model,
        replay,
        retransmit,
        session,
    )

    passed = failed = 0
    for fn in [pending_across_wrap] if "wrap" in argv else _CHECKS:
        gc.collect()
        try:
            fn()
            passed += 1
            print("ok", fn.__name__)
        except Exception as e:  # every failure is reported, none raised
            failed += 1
            print("FAIL", fn.__name__)
            sys.print_exception(e, sys.stdout)
    if "wrap" not in argv:
        gc.collect()
        for name, v in CBOR_VALUES:
            print("CBOR", name, binascii.hexlify(cbor.dumps(v)).decode())
        gc.collect()
        for name, data in vectors(cbor, ccm, kdf, keys, frame, session, messages, discovery):
            print("HEX", name, binascii.hexlify(data).decode())
        gc.collect()
        bits, digest = fuzz(cbor.loads, cbor.dumps, hashlib.sha256, errors.ProtocolError)
        print("FUZZ", binascii.hexlify(bits).decode(), binascii.hexlify(digest).decode())
        gc.collect()
        print("heap free", gc.mem_free())
    print(f"{passed} passed, {failed} failed")


if __name__ == "__main__":
    main(sys.argv[1:])
