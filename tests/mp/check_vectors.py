# Checks protocol/vectors/*.json under MicroPython with the node's own code (protocol.*).
#
# Run from the repository root with the root on MICROPYPATH (tests/conftest.py does):
#     micropython -X heapsize=110k tests/mp/check_vectors.py [file ...]
# Prints one line per failing vector, then "N passed, M failed"; exits 1 on any failure.
# One vector counts once however many checks it makes (tests/test_vectors.py counts the
# same way). MicroPython subset: no f-strings, no typing; json files are read one at a time.
# ruff: noqa: UP031 - %-formatting on purpose, as in protocol/ (MicroPython code)

import binascii
import gc
import json
import math
import struct
import sys

from protocol import cbor, ccm, frame, kdf, keys, messages, session
from protocol.errors import ProtocolError
from protocol.replay import ReplayWindow

DIR = "protocol/vectors/"

passed = 0
failed = 0


def unhex(s):
    return binascii.unhexlify(s) if s else b""


def tohex(b):
    return binascii.hexlify(b).decode()


def untag(j):
    """The value a JSON form stands for: {bytes}, {float, f64}, {float: nan|inf|-inf}, {map}."""
    if isinstance(j, list):
        return [untag(x) for x in j]
    if isinstance(j, dict):
        if "bytes" in j:
            return unhex(j["bytes"])
        if "f64" in j:
            return struct.unpack(">d", unhex(j["f64"]))[0]
        if "float" in j:
            f = j["float"]
            if f == "nan":
                return float("nan")
            return float("inf") if f == "inf" else -float("inf")
        if "map" in j:
            out = {}
            for pair in j["map"]:
                out[untag(pair[0])] = untag(pair[1])
            return out
        raise ValueError("unknown tagged form")
    return j


def same(a, b):
    """Equal values of equal types: True is not 1, 1.0 is not 1, -0.0 is not 0.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return struct.pack(">d", a) == struct.pack(">d", b)
    if isinstance(a, list):
        if len(a) != len(b):
            return False
        for i in range(len(a)):
            if not same(a[i], b[i]):
                return False
        return True
    if isinstance(a, dict):
        if len(a) != len(b):
            return False
        for ka in a:
            kb = None
            found = False
            for k in b:
                if same(k, ka):
                    kb = k
                    found = True
                    break
            if not found or not same(a[ka], b[kb]):
                return False
        return True
    return a == b


def short(x):
    r = repr(x)
    return r if len(r) <= 120 else r[:117] + "..."


class Fail(Exception):
    pass


def expect(cond, what):
    if not cond:
        raise Fail(what)


def expect_error(fn, reason, what):
    err = None
    try:
        got = fn()
    except ProtocolError as e:
        err = e
    if err is None:
        raise Fail("%s: expected %s, got no error but %s" % (what, reason, short(got)))
    if reason is not None and err.reason != reason:
        raise Fail("%s: expected %s, got %s (%s)" % (what, reason, err.reason, err.why))


def run(group, name, fn, *args):
    global passed, failed
    try:
        fn(*args)
        passed += 1
    except Fail as e:
        failed += 1
        print("FAIL %s %s: %s" % (group, name, e))
    except Exception as e:  # any crash is a failure of that vector, not of the run
        failed += 1
        print("FAIL %s %s: %s %s" % (group, name, type(e).__name__, short(e)))


def records(name):
    """Yield (section, item) from a vector file, one item in memory at a time.

    A whole file parsed at once does not fit a node-sized heap (cbor.json: 37 KB of text,
    about 127 KB of objects on the 64-bit Unix port). tools/make_vectors.py writes each
    list item on a line of its own, so a list section is parsed line by line; a top-level
    object (frames.json's handshake) is parsed whole, and top-level strings are skipped.
    """
    gc.collect()
    section = None
    buf = None
    with open(DIR + name) as f:
        for line in f:
            if buf is not None:
                if line.startswith(" }"):
                    yield section, json.loads("".join(buf) + "}")
                    buf = None
                else:
                    buf.append(line)
            elif line.startswith(' "'):
                section, rest = line.split(":", 1)
                section = json.loads(section)
                rest = rest.strip()
                if rest == "{":
                    buf = ["{"]
            elif line.startswith("  "):
                # one copy of the line, not two (the longest line is about 4 KB)
                yield section, json.loads(line[:-2] if line.endswith(",\n") else line)


# --- cbor -----------------------------------------------------------------------------


def cbor_vector(v):
    data = unhex(v["hex"])
    if "reject" in v:
        expect_error(lambda: cbor.loads(data), v["reject"], "decode")
        return
    want = untag(v["value"])
    got = cbor.loads(data)
    expect(same(got, want), "decode: expected %s, got %s" % (short(want), short(got)))
    if v["roundtrip"]:
        enc = cbor.dumps(want)
        expect(enc == data, "encode: expected %s, got %s" % (v["hex"], tohex(enc)))


def cbor_encode_reject(v):
    expect_error(lambda: cbor.dumps(untag(v["value"])), v["reject"], "encode")


def check_cbor():
    for section, v in records("cbor.json"):
        if section == "vectors":
            run("cbor", v["name"], cbor_vector, v)
        elif section == "encode_reject":
            run("cbor-encode", v["name"], cbor_encode_reject, v)


# --- ccm, hkdf ------------------------------------------------------------------------


def ccm_vector(v):
    key, nonce, aad = unhex(v["key"]), unhex(v["nonce"]), unhex(v["aad"])
    pt, sealed = unhex(v["plaintext"]), unhex(v["sealed"])
    got = ccm.seal(key, nonce, pt, aad)
    expect(got == sealed, "seal: expected %s, got %s" % (v["sealed"], tohex(got)))
    back = ccm.open(key, nonce, sealed, aad)
    expect(back == pt, "open: expected %s, got %s" % (v["plaintext"], tohex(back)))
    bad = bytearray(sealed)
    bad[-1] ^= 1
    expect_error(lambda: ccm.open(key, nonce, bytes(bad), aad), "auth", "tampered tag")
    expect_error(lambda: ccm.open(key, nonce, sealed, aad + b"\x00"), "auth", "longer AAD")


def hkdf_vector(v):
    ikm, salt, info = unhex(v["ikm"]), unhex(v["salt"]), unhex(v["info"])
    okm = kdf.hkdf(ikm, salt, info, v["length"])
    expect(tohex(okm) == v["okm"], "okm: expected %s, got %s" % (v["okm"], tohex(okm)))
    prk = kdf.hmac_sha256(salt if salt else bytes(32), ikm)
    expect(tohex(prk) == v["prk"], "prk: expected %s, got %s" % (v["prk"], tohex(prk)))


def check_ccm_hkdf():
    for _, v in records("ccm.json"):
        run("ccm", v["name"], ccm_vector, v)
    for _, v in records("hkdf.json"):
        run("hkdf", v["name"], hkdf_vector, v)


# --- frames ---------------------------------------------------------------------------

KINDS = {"plain": frame.PLAIN, "session": frame.SESSION, "broadcast": frame.BROADCAST}


def handshake(hs, hello, chal):
    expect(hello is not None and chal is not None, "the hello or challenge case is missing")
    node_key, node_id = unhex(hs["node_key"]), unhex(hs["node_id"])
    hello_body = untag(hello["body"])
    hello_msg, hello_frame = session.hello_frame(hello_body)
    expect(tohex(hello_frame) == hello["frame_hex"], "hello frame differs: %s" % tohex(hello_frame))
    chal_frame, gw = session.challenge(
        node_key, hello_msg, hello_body, hs["sid"], unhex(hs["gateway_nonce"]), hs["unix_time"]
    )
    got = tohex(chal_frame)
    expect(got == chal["frame_hex"], "challenge frame differs: %s" % got)
    _, chal_body = messages.decode(chal_frame[1:])
    node = session.answer(node_key, hello_msg, hello_body, chal_body)
    k = hs["keys"]
    got = (tohex(node.send_key), tohex(node.recv_key), tohex(gw.send_key), tohex(gw.recv_key))
    want = (k["node_to_gateway"], k["gateway_to_node"], k["gateway_to_node"], k["node_to_gateway"])
    expect(got == want, "session keys: expected %s, got %s" % (want, got))
    n2g, g2n = keys.session_keys(
        node_key,
        node_id,
        unhex(hs["node_nonce"]),
        unhex(hs["gateway_nonce"]),
        hs["sid"],
        hello_msg,
    )
    expect((tohex(n2g), tohex(g2n)) == want[:2], "keys.session_keys differs")
    bkey = keys.broadcast_key(node_key, node_id)
    expect(tohex(bkey) == k["broadcast"], "broadcast key: got %s" % tohex(bkey))
    expect(tohex(keys.challenge_proof(g2n, node_id)) == hs["proof"], "proof differs")
    bad = bytearray(unhex(hs["proof"]))
    bad[0] ^= 1
    expect_error(lambda: keys.check_proof(g2n, node_id, bytes(bad)), "auth", "forged proof")
    other = dict(hello_body)
    other[messages.H_FW] = "9.9.9"  # a tampered hello yields other keys
    msg2, _ = session.hello_frame(other)
    expect_error(lambda: session.answer(node_key, msg2, other, chal_body), "auth", "tampered hello")


def frame_case(hs, c):
    node_id = unhex(hs["node_id"])
    body = untag(c["body"])
    msg = unhex(c["message_hex"])
    data = unhex(c["frame_hex"])
    enc = messages.encode(c["type"], body)
    expect(enc == msg, "message: expected %s, got %s" % (c["message_hex"], tohex(enc)))
    mtype, got = messages.decode(msg)
    expect(mtype == c["type"] and same(got, body), "decode: got %d %s" % (mtype, short(got)))
    kind = KINDS[c["kind"]]
    gw = c["direction"] == "gateway-to-node"
    parsed = frame.parse(data)
    if kind == frame.PLAIN:
        expect(parsed == (kind, gw, False, None, None, 1), "parse: got %s" % short(parsed))
        out = frame.plain(msg, gw)
        expect(out == data, "plain frame: got %s" % tohex(out))
        return
    seq, con, kid = c["seq"], c["confirmable"], c["kid"]
    off = 1 + frame.KID_LEN + len(frame.piv_bytes(seq))
    expect(parsed == (kind, gw, con, kid, seq, off), "parse: got %s" % short(parsed))
    key = unhex(c["key"])
    out = frame.seal(kind, key, node_id, kid, seq, msg, gw, con)
    expect(out == data, "seal: expected %s, got %s" % (c["frame_hex"], tohex(out)))
    opened = frame.open_sealed(data, parsed, key, node_id)
    expect(opened == msg, "open: got %s" % tohex(opened))
    bad = bytearray(data)
    bad[-1] ^= 1
    expect_error(lambda: frame.open_sealed(bytes(bad), parsed, key, node_id), "auth", "tampered")
    if kind == frame.BROADCAST:
        out = session.seal_broadcast(key, node_id, seq, c["type"], body)
        expect(out == data, "seal_broadcast: got %s" % tohex(out))
        r = session.open_broadcast(data, parsed, key, node_id, ReplayWindow())
        expect(r[0] == seq and r[1] == c["type"] and same(r[2], body) and r[3], "open_broadcast")
        return
    other = unhex(hs["keys"]["node_to_gateway" if gw else "gateway_to_node"])
    receiver = session.Session(node_id, hs["sid"], other, key, not gw)
    r = receiver.open(data)
    expect(r[0] == seq and r[1] == con and r[2] == c["type"], "Session.open: got %s" % short(r))
    expect(same(r[3], body) and r[4], "Session.open body: got %s" % short(r))


def check_frames():
    hs = hello = chal = None
    for section, c in records("frames.json"):
        if section == "handshake":
            hs = c
        elif section == "cases":
            if c["name"] == "hello":
                hello = c
            elif c["name"] == "challenge":
                chal = c
            run("frames", c["name"], frame_case, hs, c)
    run("frames", "handshake", handshake, hs, hello, chal)


def main(argv):
    todo = argv or ["cbor", "ccm", "frames"]
    if "cbor" in todo:
        check_cbor()
    if "ccm" in todo or "hkdf" in todo:
        check_ccm_hkdf()
    if "frames" in todo:
        check_frames()
    gc.collect()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
