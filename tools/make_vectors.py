"""Write the protocol's test vectors, protocol/vectors/*.json, deterministically.

    python tools/make_vectors.py           # (re)write the four files
    python tools/make_vectors.py --check   # exit 1 if a committed file differs

cbor.json, ccm.json and hkdf.json hold published examples (RFC 8949 Appendix A, RFC 3610
section 8, RFC 5869 Appendix A) copied here literally, plus kithnet's own CBOR cases. They
are checked against independent implementations (cbor2, cryptography) before anything is
written, never against protocol/, which is what the vectors test. frames.json is kithnet's
own: the reference implementation produces it from fixed inputs, and every frame is then
rebuilt here from the spec alone (cbor2 canonical encoding, cryptography's HKDF and AESCCM)
and must match byte for byte.

Values in JSON use a tagged form wherever plain JSON cannot say what CBOR says:
{"bytes": hex}, {"float": repr, "f64": hex of the IEEE double} for finite floats,
{"float": "nan" | "inf" | "-inf"}, and {"map": [[key, value], ...]} for every map
(pairs in the map's deterministic encoding order). Every other JSON value stands for itself.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import struct
import sys
from pathlib import Path

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from kithnet.protocol import errors as E
from kithnet.protocol import frame, keys, messages, model, ota, session

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "protocol" / "vectors"

MALFORMED = E.NAMES[E.MALFORMED]
LIMIT = E.NAMES[E.LIMIT]

RFC8949 = "RFC 8949 Appendix A"
OURS = "kithnet"


# --- the JSON value form --------------------------------------------------------------


def tag(v):
    """A Python value as JSON (see the module docstring)."""
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        if math.isnan(v):
            return {"float": "nan"}
        if math.isinf(v):
            return {"float": "inf" if v > 0 else "-inf"}
        return {"float": repr(v), "f64": struct.pack(">d", v).hex()}
    if isinstance(v, (bytes, bytearray)):
        return {"bytes": bytes(v).hex()}
    if isinstance(v, (list, tuple)):
        return [tag(x) for x in v]
    if isinstance(v, dict):
        pairs = sorted(v.items(), key=lambda kv: _key_order(kv[0]))
        return {"map": [[tag(k), tag(x)] for k, x in pairs]}
    raise TypeError(f"no JSON form for {v!r}")


def _key_order(k):
    b = cbor2.dumps(k, canonical=True)
    return (len(b), b)


def untag(j):
    """The Python value a JSON form stands for (the inverse of tag)."""
    if isinstance(j, list):
        return [untag(x) for x in j]
    if isinstance(j, dict):
        if "bytes" in j:
            return bytes.fromhex(j["bytes"])
        if "f64" in j:
            return struct.unpack(">d", bytes.fromhex(j["f64"]))[0]
        if "float" in j:
            return {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}[j["float"]]
        if "map" in j:
            return {untag(k): untag(v) for k, v in j["map"]}
        raise ValueError(f"unknown tagged form {j!r}")
    return j


def same(a, b):
    """Equal values of equal types (True is not 1, 1.0 is not 1, -0.0 is not 0.0, nan is nan)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return struct.pack(">d", a) == struct.pack(">d", b)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        if len(a) != len(b):
            return False
        for ka, va in a.items():
            kb = next((k for k in b if same(k, ka)), None)
            if kb is None or not same(va, b[kb]):
                return False
        return True
    return a == b


# --- cbor.json ------------------------------------------------------------------------

NAN = math.nan
INF = math.inf


def _decode_ok(name, hex_, value, roundtrip, source=OURS):
    return {"name": name, "source": source, "hex": hex_, "value": value, "roundtrip": roundtrip}


def _reject(name, hex_, reason, source=OURS):
    return {"name": name, "source": source, "hex": hex_, "reject": reason}


def _rfc(hex_, value, roundtrip=True, name=None):
    return _decode_ok(name or _diag(value), hex_, value, roundtrip, RFC8949)


def _diag(v):
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "Infinity" if v > 0 else "-Infinity"
        return repr(v)
    if isinstance(v, bytes):
        return f"h'{v.hex()}'"
    if isinstance(v, dict):
        inner = ", ".join(f"{_diag(k)}: {_diag(x)}" for k, x in v.items())
        return "{" + inner + "}"
    if isinstance(v, list):
        return "[" + ", ".join(_diag(x) for x in v) + "]"
    return json.dumps(v, ensure_ascii=False)


def cbor_cases():
    """(decode cases, encode-reject cases), with Python values (tagged when written)."""
    c = [
        # RFC 8949 Appendix A: the examples inside the subset, in the RFC's order.
        _rfc("00", 0),
        _rfc("01", 1),
        _rfc("0a", 10),
        _rfc("17", 23),
        _rfc("1818", 24),
        _rfc("1819", 25),
        _rfc("1864", 100),
        _rfc("1903e8", 1000),
        _rfc("1a000f4240", 1000000),
        _rfc("1b000000e8d4a51000", 1000000000000),
        _rfc("1bffffffffffffffff", 18446744073709551615),
        _rfc("3bffffffffffffffff", -18446744073709551616),
        _rfc("20", -1),
        _rfc("29", -10),
        _rfc("3863", -100),
        _rfc("3903e7", -1000),
        _rfc("f90000", 0.0),
        _rfc("f98000", -0.0),
        _rfc("f93c00", 1.0),
        _rfc("fb3ff199999999999a", 1.1),
        _rfc("f93e00", 1.5),
        _rfc("f97bff", 65504.0),
        _rfc("fa47c35000", 100000.0),
        _rfc("fa7f7fffff", 3.4028234663852886e38),
        _rfc("fb7e37e43c8800759c", 1.0e300),
        _rfc("f90001", 5.960464477539063e-8),
        _rfc("f90400", 0.00006103515625),
        _rfc("f9c400", -4.0),
        _rfc("fbc010666666666666", -4.1),
        _rfc("f97c00", INF),
        _rfc("f97e00", NAN),
        _rfc("f9fc00", -INF),
        _rfc("fa7f800000", INF, False, "Infinity (single)"),
        _rfc("fa7fc00000", NAN, False, "NaN (single)"),
        _rfc("faff800000", -INF, False, "-Infinity (single)"),
        _rfc("fb7ff0000000000000", INF, False, "Infinity (double)"),
        _rfc("fb7ff8000000000000", NAN, False, "NaN (double)"),
        _rfc("fbfff0000000000000", -INF, False, "-Infinity (double)"),
        _rfc("f4", False),
        _rfc("f5", True),
        _rfc("f6", None),
        _rfc("40", b""),
        _rfc("4401020304", b"\x01\x02\x03\x04"),
        _rfc("60", ""),
        _rfc("6161", "a"),
        _rfc("6449455446", "IETF"),
        _rfc("62225c", '"\\'),
        _rfc("62c3bc", "\u00fc"),
        _rfc("63e6b0b4", "\u6c34"),
        _rfc("64f0908591", "\U00010151"),
        _rfc("80", []),
        _rfc("83010203", [1, 2, 3]),
        _rfc("8301820203820405", [1, [2, 3], [4, 5]]),
        _rfc("98190102030405060708090a0b0c0d0e0f101112131415161718181819", list(range(1, 26))),
        _rfc("a0", {}),
        _rfc("a201020304", {1: 2, 3: 4}),
        _rfc("a26161016162820203", {"a": 1, "b": [2, 3]}),
        _rfc("826161a161626163", ["a", {"b": "c"}]),
        _rfc(
            "a56161614161626142616361436164614461656145",
            {"a": "A", "b": "B", "c": "C", "d": "D", "e": "E"},
        ),
        # RFC 8949 Appendix A examples outside the subset.
        _reject("2(h'010000000000000000') bignum", "c249010000000000000000", MALFORMED, RFC8949),
        _reject("3(h'010000000000000000') bignum", "c349010000000000000000", MALFORMED, RFC8949),
        _reject("undefined", "f7", MALFORMED, RFC8949),
        _reject("simple(16)", "f0", MALFORMED, RFC8949),
        _reject("simple(255)", "f8ff", MALFORMED, RFC8949),
        _reject(
            '0("2013-03-21T20:04:00Z")',
            "c074323031332d30332d32315432303a30343a30305a",
            MALFORMED,
            RFC8949,
        ),
        _reject("1(1363896240)", "c11a514b67b0", MALFORMED, RFC8949),
        _reject("1(1363896240.5)", "c1fb41d452d9ec200000", MALFORMED, RFC8949),
        _reject("23(h'01020304')", "d74401020304", MALFORMED, RFC8949),
        _reject("24(h'6449455446')", "d818456449455446", MALFORMED, RFC8949),
        _reject(
            '32("http://www.example.com")',
            "d82076687474703a2f2f7777772e6578616d706c652e636f6d",
            MALFORMED,
            RFC8949,
        ),
        _reject("(_ h'0102', h'030405')", "5f42010243030405ff", MALFORMED, RFC8949),
        _reject('(_ "strea", "ming")', "7f657374726561646d696e67ff", MALFORMED, RFC8949),
        _reject("[_ ]", "9fff", MALFORMED, RFC8949),
        _reject("[_ 1, [2, 3], [_ 4, 5]]", "9f018202039f0405ffff", MALFORMED, RFC8949),
        _reject("[_ 1, [2, 3], [4, 5]]", "9f01820203820405ff", MALFORMED, RFC8949),
        _reject("[1, [2, 3], [_ 4, 5]]", "83018202039f0405ff", MALFORMED, RFC8949),
        _reject("[1, [_ 2, 3], [4, 5]]", "83019f0203ff820405", MALFORMED, RFC8949),
        _reject(
            "[_ 1, 2, ..., 25]",
            "9f0102030405060708090a0b0c0d0e0f101112131415161718181819ff",
            MALFORMED,
            RFC8949,
        ),
        _reject('{_ "a": 1, "b": [_ 2, 3]}', "bf61610161629f0203ffff", MALFORMED, RFC8949),
        _reject('["a", {_ "b": "c"}]', "826161bf61626163ff", MALFORMED, RFC8949),
        _reject('{_ "Fun": true, "Amt": -2}', "bf6346756ef563416d7421ff", MALFORMED, RFC8949),
        # RFC 7049's table had simple(24) as 0xf818; RFC 8949 section 3.3 makes it not well-formed.
        _reject("simple(24) in two bytes", "f818", MALFORMED, "RFC 7049 Appendix A"),
    ]

    # kithnet: preferred serialization of floats (the shortest form that keeps the value).
    c += [
        _decode_ok("largest subnormal half", "f903ff", 6.097555160522461e-05, True),
        _decode_ok("2^-25 needs a single", "fa33000000", 2.9802322387695312e-08, True),
        _decode_ok("smallest subnormal single", "fa00000001", 1.401298464324817e-45, True),
        _decode_ok("65505.0 needs a single", "fa477fe100", 65505.0, True),
        _decode_ok("65536.0 needs a single", "fa47800000", 65536.0, True),
        _decode_ok("1 + 2^-23 needs a single", "fa3f800001", 1.0000001192092896, True),
        _decode_ok("0.1 needs a double", "fb3fb999999999999a", 0.1, True),
        _decode_ok("2.0 stays a float", "f94000", 2.0, True),
        _decode_ok("-65504.0", "f9fbff", -65504.0, True),
        _decode_ok("largest double", "fb7fefffffffffffff", 1.7976931348623157e308, True),
        _decode_ok("-1.0e+300", "fbfe37e43c8800759c", -1.0e300, True),
        _decode_ok("smallest subnormal double", "fb0000000000000001", 5e-324, True),
        _decode_ok("-largest single", "faff7fffff", -3.4028234663852886e38, True),
    ]
    # kithnet: the decoder takes any well-formed form, not only the preferred one.
    c += [
        _decode_ok("1 in one extra byte", "1801", 1, False),
        _decode_ok("1 in two bytes", "190001", 1, False),
        _decode_ok("1 in four bytes", "1a00000001", 1, False),
        _decode_ok("1 in eight bytes", "1b0000000000000001", 1, False),
        _decode_ok("-1 in one extra byte", "3800", -1, False),
        _decode_ok("empty bytes, long head", "5800", b"", False),
        _decode_ok("empty text, long head", "790000", "", False),
        _decode_ok("empty array, long head", "9800", [], False),
        _decode_ok("empty map, long head", "b800", {}, False),
        _decode_ok("1.5 as a single", "fa3fc00000", 1.5, False),
        _decode_ok("1.5 as a double", "fb3ff8000000000000", 1.5, False),
        _decode_ok("-0.0 as a double", "fb8000000000000000", -0.0, False),
        _decode_ok("map keys out of order", "a203040102", {3: 4, 1: 2}, False),
    ]
    # kithnet: deterministic map key order (length first, then bytewise), mixed key types.
    c += [
        _decode_ok(
            "keys sorted length-first",
            "a50a012002186404386305616103",
            {"a": 3, 100: 4, -100: 5, -1: 2, 10: 1},
            True,
        ),
        _decode_ok(
            "text keys sorted length-first",
            "a400046162011901000362616102",
            {"aa": 2, "b": 1, 256: 3, 0: 4},
            True,
        ),
        _decode_ok(
            "64-bit keys",
            "a21bffffffffffffffff203bffffffffffffffff01",
            {18446744073709551615: -1, -18446744073709551616: 1},
            True,
        ),
        _decode_ok(
            "every type in one array",
            "8a00204060f4f5f6f93e00a080",
            [0, -1, b"", "", False, True, None, 1.5, {}, []],
            True,
        ),
    ]
    # kithnet: limits, at the limit (accepted) and one past it (rejected).
    deep8 = []
    for _ in range(7):
        deep8 = [deep8]
    deep8m = {}
    for _ in range(7):
        deep8m = {1: deep8m}
    utf255 = "\u6c34" * 85
    bstr1024 = bytes(i & 0xFF for i in range(1024))
    c += [
        _decode_ok("depth 8 arrays", "81" * 7 + "80", deep8, True),
        _decode_ok("depth 8 maps", "a101" * 7 + "a0", deep8m, True),
        _decode_ok("64 array items", "9840" + "00" * 64, [0] * 64, True),
        _decode_ok("64 map entries", _map_hex(64), {k: 0 for k in range(64)}, True),
        _decode_ok("text of 255 bytes", "78ff" + "61" * 255, "a" * 255, True),
        _decode_ok("text of 255 bytes in 85 chars", "78ff" + "e6b0b4" * 85, utf255, True),
        _decode_ok("bytes of 1024", "590400" + bstr1024.hex(), bstr1024, True),
        _reject("depth 9 arrays", "81" * 8 + "80", LIMIT),
        _reject("depth 9 maps", "a101" * 8 + "a0", LIMIT),
        _reject("depth 9 inside a map value", "a101" + "81" * 7 + "80", LIMIT),
        _reject("65 array items", "9841" + "00" * 65, LIMIT),
        _reject("65 map entries", _map_hex(65), LIMIT),
        _reject("text of 256 bytes", "790100" + "61" * 256, LIMIT),
        _reject("text of 258 bytes in 86 chars", "790102" + "e6b0b4" * 86, LIMIT),
        _reject("bytes of 1025", "590401" + (bstr1024 + b"\x00").hex(), LIMIT),
    ]
    # kithnet: not well-formed, or outside the subset.
    c += [
        _reject("empty input", "", MALFORMED),
        _reject("truncated uint8", "18", MALFORMED),
        _reject("truncated uint16", "1903", MALFORMED),
        _reject("truncated uint32", "1a000f42", MALFORMED),
        _reject("truncated uint64", "1b000000e8d4a510", MALFORMED),
        _reject("truncated nint64", "3bffffffffffffff", MALFORMED),
        _reject("truncated bytes", "44010203", MALFORMED),
        _reject("truncated text", "64494554", MALFORMED),
        _reject("truncated array", "830102", MALFORMED),
        _reject("truncated map, key without value", "a2010203", MALFORMED),
        _reject("truncated map, missing pair", "a20102", MALFORMED),
        _reject("truncated half", "f97c", MALFORMED),
        _reject("truncated single", "fa47c350", MALFORMED),
        _reject("truncated double", "fb3ff19999999999", MALFORMED),
        _reject("trailing byte", "0000", MALFORMED),
        _reject("trailing item after a map", "a0a0", MALFORMED),
        _reject("trailing break", "f6ff", MALFORMED),
        _reject("lone break", "ff", MALFORMED),
        _reject("break inside a definite array", "8201ff", MALFORMED),
        _reject("duplicate integer key", "a201000100", MALFORMED),
        _reject("duplicate text key", "a2616101616102", MALFORMED),
        _reject("duplicate key, second not shortest", "a20100180100", MALFORMED),
        _reject("duplicate key in a nested map", "a101a202000201", MALFORMED),
        _reject("float map key", "a1f93c0001", MALFORMED),
        _reject("bytes map key", "a1410101", MALFORMED),
        _reject("true map key", "a1f501", MALFORMED),
        _reject("false map key", "a1f401", MALFORMED),
        _reject("null map key", "a1f601", MALFORMED),
        _reject("array map key", "a18001", MALFORMED),
        _reject("map map key", "a1a001", MALFORMED),
        _reject("invalid UTF-8: bad continuation", "62c328", MALFORMED),
        _reject("invalid UTF-8: byte 0xff", "61ff", MALFORMED),
        _reject("invalid UTF-8: lone continuation byte", "6180", MALFORMED),
        _reject("invalid UTF-8: sequence cut by the length", "61c3", MALFORMED),
        _reject("invalid UTF-8: overlong '/'", "62c0af", MALFORMED),
        _reject("invalid UTF-8: overlong NUL", "62c080", MALFORMED),
        _reject("invalid UTF-8: surrogate U+D800", "63eda080", MALFORMED),
        _reject("invalid UTF-8: beyond U+10FFFF", "64f4908080", MALFORMED),
        _reject("reserved additional info 28, major 0", "1c", MALFORMED),
        _reject("reserved additional info 29, major 1", "3d", MALFORMED),
        _reject("reserved additional info 30, major 2", "5e", MALFORMED),
        _reject("reserved additional info 28, major 3", "7c", MALFORMED),
        _reject("reserved additional info 29, major 4", "9d", MALFORMED),
        _reject("reserved additional info 30, major 5", "be", MALFORMED),
        _reject("reserved additional info 28, major 6", "dc", MALFORMED),
        _reject("reserved additional info 28, major 7", "fc", MALFORMED),
        _reject("reserved additional info 29, major 7", "fd", MALFORMED),
        _reject("reserved additional info 30, major 7", "fe", MALFORMED),
        _reject("additional info 31, major 0", "1f", MALFORMED),
        _reject("additional info 31, major 1", "3f", MALFORMED),
        _reject("additional info 31, major 6", "df", MALFORMED),
        _reject("simple(0)", "e0", MALFORMED),
        _reject("simple(19)", "f3", MALFORMED),
        _reject("simple(32)", "f820", MALFORMED),
        _reject("self-described CBOR tag 55799", "d9d9f700", MALFORMED),
        _reject("tag inside an array", "81c100", MALFORMED),
        _reject("tag on a map key", "a1c10001", MALFORMED),
    ]

    enc = [
        {"name": "2^64", "value": 18446744073709551616, "reject": LIMIT},
        {"name": "-2^64 - 1", "value": -18446744073709551617, "reject": LIMIT},
        {"name": "text of 256 bytes", "value": "a" * 256, "reject": LIMIT},
        {"name": "text of 258 bytes in 86 chars", "value": "\u6c34" * 86, "reject": LIMIT},
        {"name": "bytes of 1025", "value": bytes(1025), "reject": LIMIT},
        {"name": "65 array items", "value": [0] * 65, "reject": LIMIT},
        {"name": "65 map entries", "value": {k: 0 for k in range(65)}, "reject": LIMIT},
        {"name": "depth 9 arrays", "value": [deep8], "reject": LIMIT},
        {"name": "depth 9 maps", "value": {1: deep8m}, "reject": LIMIT},
        {"name": "float map key", "value": {1.5: 1}, "reject": MALFORMED},
        {"name": "bytes map key", "value": {b"\x01": 1}, "reject": MALFORMED},
        {"name": "true map key", "value": {True: 1}, "reject": MALFORMED},
        {"name": "null map key", "value": {None: 1}, "reject": MALFORMED},
    ]
    return c, enc


def _map_hex(n):
    out = f"b8{n:02x}" if n >= 24 else f"{0xA0 + n:02x}"
    for k in range(n):
        out += (f"{k:02x}" if k < 24 else f"18{k:02x}") + "00"
    return out


def check_cbor_independently(cases, enc):
    """Hold the literal cases to cbor2 (an independent codec) wherever cbor2 has an opinion."""
    names = set()
    for c in cases:
        assert c["name"] not in names, f"duplicate vector name {c['name']!r}"
        names.add(c["name"])
        data = bytes.fromhex(c["hex"])
        if "reject" in c:
            assert c["reject"] in E.NAMES.values()
            continue
        got = cbor2.loads(data)
        # cbor2 returns tuples for arrays used inside map keys; none are used here.
        assert same(got, c["value"]), f"cbor2 decodes {c['name']} as {got!r}"
        if c["roundtrip"]:
            assert cbor2.dumps(c["value"], canonical=True) == data, c["name"]
        else:
            assert cbor2.dumps(c["value"], canonical=True) != data, c["name"]
    for e in enc:
        assert e["reject"] in E.NAMES.values()


def cbor_json():
    cases, enc = cbor_cases()
    check_cbor_independently(cases, enc)
    out = []
    for c in cases:
        c = dict(c)
        if "value" in c:
            c["value"] = tag(c["value"])
        out.append(c)
    return {
        "description": (
            "CBOR subset vectors. Decode cases: `hex` decodes to `value`; with `roundtrip` true "
            "the encoder must also produce exactly `hex` from `value`. Reject cases: decoding "
            "`hex` raises ProtocolError with the reason named in `reject` (errors.NAMES). "
            "encode_reject: encoding `value` raises ProtocolError with that reason. Values "
            "use tagged forms: {bytes: hex}, {float: repr, f64: IEEE double hex}, "
            "{float: nan|inf|-inf}, {map: [[key, value], ...]}."
        ),
        "vectors": out,
        "encode_reject": [dict(e, value=tag(e["value"])) for e in enc],
    }


# --- ccm.json ---------------------------------------------------------------------------

_K1 = "c0c1c2c3c4c5c6c7c8c9cacbcccdcecf"
_K2 = "d7828d13b2b0bdc325a76236df93cc6b"
_A8 = "0001020304050607"
_A12 = "000102030405060708090a0b"

# RFC 3610 section 8, the packet vectors with M = 8 (an 8-byte tag) and L = 2 (13-byte
# nonce), exactly AES-CCM-16-64-128. #7 to #12 and #19 to #24 have M = 10 and cannot run
# with an 8-byte tag. "sealed" is the RFC's output less its cleartext header (the AAD).
CCM_RFC3610 = [
    (1, _K1, "00000003020100a0a1a2a3a4a5", _A8, "08090a0b0c0d0e0f101112131415161718191a1b1c1d1e",
     "588c979a61c663d2f066d0c2c0f989806d5f6b61dac38417e8d12cfdf926e0"),
    (2, _K1, "00000004030201a0a1a2a3a4a5", _A8,
     "08090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
     "72c91a36e135f8cf291ca894085c87e3cc15c439c9e43a3ba091d56e10400916"),
    (3, _K1, "00000005040302a0a1a2a3a4a5", _A8,
     "08090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20",
     "51b1e5f44a197d1da46b0f8e2d282ae871e838bb64da8596574adaa76fbd9fb0c5"),
    (4, _K1, "00000006050403a0a1a2a3a4a5", _A12, "0c0d0e0f101112131415161718191a1b1c1d1e",
     "a28c6865939a9a79faaa5c4c2a9d4a91cdac8c96c861b9c9e61ef1"),
    (5, _K1, "00000007060504a0a1a2a3a4a5", _A12, "0c0d0e0f101112131415161718191a1b1c1d1e1f",
     "dcf1fb7b5d9e23fb9d4e131253658ad86ebdca3e51e83f077d9c2d93"),
    (6, _K1, "00000008070605a0a1a2a3a4a5", _A12, "0c0d0e0f101112131415161718191a1b1c1d1e1f20",
     "6fc1b011f006568b5171a42d953d469b2570a4bd87405a0443ac91cb94"),
    (13, _K2, "00412b4ea9cdbe3c9696766cfa", "0be1a88bace018b1",
     "08e8cf97d820ea258460e96ad9cf5289054d895ceac47c",
     "4cb97f86a2a4689a877947ab8091ef5386a6ffbdd080f8e78cf7cb0cddd7b3"),
    (14, _K2, "0033568ef7b2633c9696766cfa", "63018f76dc8a1bcb",
     "9020ea6f91bdd85afa0039ba4baff9bfb79c7028949cd0ec",
     "4ccb1e7ca981befaa0726c55d378061298c85c92814abc33c52ee81d7d77c08a"),
    (15, _K2, "00103fe41336713c9696766cfa", "aa6cfa36cae86b40",
     "b916e0eacc1c00d7dcec68ec0b3bbb1a02de8a2d1aa346132e",
     "b1d23a2220ddc0ac900d9aa03c61fcf4a559a4417767089708a776796edb723506"),
    (16, _K2, "00764c63b8058e3c9696766cfa", "d0d0735c531e1becf049c244",
     "12daac5630efa5396f770ce1a66b21f7b2101c",
     "14d253c3967b70609b7cbb7c499160283245269a6f49975bcadeaf"),
    (17, _K2, "00f8b678094e3b3c9696766cfa", "77b60f011c03e1525899bcae",
     "e88b6a46c78d63e52eb8c546efb5de6f75e9cc0d",
     "5545ff1a085ee2efbf52b2e04bee1e2336c73e3f762c0c7744fe7e3c"),
    (18, _K2, "00d560912d3f703c9696766cfa", "cd9044d2b71fdb8120ea60c0",
     "6435acbafb11a82e2f071d7ca4a5ebd93a803ba87f",
     "009769ecabdf48625594c59251e6035722675e04c847099e5ae0704551"),
]  # fmt: skip


def ccm_json():
    out = []
    for num, key, nonce, aad, pt, sealed in CCM_RFC3610:
        k, n, a, p, s = (bytes.fromhex(x) for x in (key, nonce, aad, pt, sealed))
        aead = AESCCM(k, tag_length=8)
        assert aead.encrypt(n, p, a) == s, f"RFC 3610 #{num} does not verify"
        assert aead.decrypt(n, s, a) == p
        assert len(n) == 13 and len(s) == len(p) + 8
        out.append(
            {
                "name": f"RFC 3610 Packet Vector #{num}",
                "source": "RFC 3610 section 8",
                "key": key,
                "nonce": nonce,
                "aad": aad,
                "plaintext": pt,
                "sealed": sealed,
            }
        )
    # Edge cases of our own, checked against cryptography's AESCCM only.
    own = [
        ("empty plaintext and AAD", "00" * 16, "00" * 13, "", ""),
        ("empty plaintext (a challenge proof shape)", _K1, "03" + "0102030405060708" + "00000000",
         b"kithnet/1 challenge".hex(), ""),
        ("one block exactly", _K1, "00000003020100a0a1a2a3a4a5", _A8, bytes(range(16)).hex()),
        ("one byte past a block", _K1, "00000003020100a0a1a2a3a4a5", "",
         bytes(range(17)).hex()),
        ("AAD of 14 bytes fills the first AAD block", _K2, "00412b4ea9cdbe3c9696766cfa",
         bytes(range(14)).hex(), "00"),
        ("AAD of 15 bytes spills into a second block", _K2, "00412b4ea9cdbe3c9696766cfa",
         bytes(range(15)).hex(), "00"),
    ]  # fmt: skip
    for name, key, nonce, aad, pt in own:
        k, n, a, p = (bytes.fromhex(x) for x in (key, nonce, aad, pt))
        s = AESCCM(k, tag_length=8).encrypt(n, p, a)
        out.append(
            {
                "name": name,
                "source": "kithnet (cryptography AESCCM)",
                "key": key,
                "nonce": nonce,
                "aad": aad,
                "plaintext": pt,
                "sealed": s.hex(),
            }
        )
    return {
        "description": (
            "AES-CCM with a 16-byte key, 13-byte nonce (L = 2) and 8-byte tag (M = 8): "
            "seal(key, nonce, plaintext, aad) == sealed (ciphertext || tag) and "
            "open(key, nonce, sealed, aad) == plaintext. RFC 3610 section 8 packet vectors "
            "#1-#6 and #13-#18 are all its vectors with M = 8 (#7-#12 and #19-#24 use "
            "M = 10), the RFC's AAD being its cleartext header."
        ),
        "vectors": out,
    }


# --- hkdf.json --------------------------------------------------------------------------

HKDF_RFC5869 = [
    (
        1,
        "0b" * 22,
        "000102030405060708090a0b0c",
        "f0f1f2f3f4f5f6f7f8f9",
        42,
        "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
    ),
    (
        2,
        bytes(range(0x00, 0x50)).hex(),
        bytes(range(0x60, 0xB0)).hex(),
        bytes(range(0xB0, 0x100)).hex(),
        82,
        "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
        "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
        "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
        "cc30c58179ec3e87c14c01d5c1f3434f1d87",
    ),
    (
        3,
        "0b" * 22,
        "",
        "",
        42,
        "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
    ),
]


def hkdf_json():
    import hmac

    out = []
    for num, ikm, salt, info, length, prk, okm in HKDF_RFC5869:
        i, s, f = (bytes.fromhex(x) for x in (ikm, salt, info))
        got = HKDF(hashes.SHA256(), length, s or None, f).derive(i)
        assert got.hex() == okm, f"RFC 5869 case {num} does not verify"
        assert hmac.new(s or bytes(32), i, hashlib.sha256).hexdigest() == prk
        out.append(
            {
                "name": f"RFC 5869 Test Case {num}",
                "source": "RFC 5869 Appendix A",
                "ikm": ikm,
                "salt": salt,
                "info": info,
                "length": length,
                "prk": prk,
                "okm": okm,
            }
        )
    return {
        "description": (
            "HKDF-SHA256 (RFC 5869 Appendix A, test cases 1-3): hkdf(ikm, salt, info, length) "
            "== okm, and prk == HMAC-SHA256(salt or 32 zero bytes, ikm)."
        ),
        "vectors": out,
    }


# --- frames.json ------------------------------------------------------------------------

NODE_KEY = bytes(range(16))
NODE_ID = bytes.fromhex("0102030405060708")
NODE_NONCE = bytes.fromhex("a0a1a2a3a4a5a6a7")
GW_NONCE = bytes.fromhex("b0b1b2b3b4b5b6b7")
SID = 0x1234
UNIX_TIME = 1767225600  # 2026-01-01T00:00:00Z
M = messages

HELLO_BODY = {
    M.H_NODE: NODE_ID,
    M.H_NONCE: NODE_NONCE,
    M.H_PROTO: 1,
    M.H_MODEL: "kithnet-demo",
    M.H_FW: "0.1.0",
    M.H_CAPS: {
        1: model.TEMPERATURE,
        2: model.HUMIDITY,
        3: model.BUTTON,
        4: model.SWITCH,
        5: [model.BRIGHTNESS, {model.OPT_MAX: 100, model.OPT_LABEL: "led"}],
    },
    M.H_REBOOT: M.REBOOT_POWER_ON,
    M.H_SLEEPY: False,
    M.H_NAME: "kitchen",
    M.DUE: 60,
}

N2G, G2N, BCAST = "node_to_gateway", "gateway_to_node", "broadcast"
UP, DOWN = "node-to-gateway", "gateway-to-node"

# (name, type, body, confirmable, sequence override or None): node frames and gateway
# frames each take the next number of their own direction, as Session.seal numbers them.
CONVERSATION = [
    ("confirm", M.CONFIRM, {}, True, None, UP),
    ("ack", M.ACK, {M.REF: 0}, False, None, DOWN),
    ("report-temp-humidity", M.REPORT, {1: 2150, 2: 4800, M.DUE: 60}, False, None, UP),
    ("ping", M.PING, {}, True, None, UP),
    ("pong", M.PONG, {M.REF: 2}, False, None, DOWN),
    ("event", M.EVENT, {M.E_CAP: 3, M.E_CODE: 1, M.E_COUNT: 1}, True, None, UP),
    ("ack-event", M.ACK, {M.REF: 3}, False, None, DOWN),
    ("command", M.COMMAND, {4: True}, True, None, DOWN),
    ("result", M.RESULT, {M.REF: 4, M.CODE: 0, 4: True}, False, None, UP),
    ("command-fade", M.COMMAND, {5: 40, M.FADE: 500}, True, None, DOWN),
    ("result-fade", M.RESULT, {M.REF: 5, M.CODE: 0, 5: 40}, False, None, UP),
    ("config-get", M.CONFIG_GET, {M.CFG_KEYS: ["interval", "name"]}, True, None, DOWN),
    ("config", M.CONFIG, {M.REF: 6, M.CODE: 0, M.CFG_VALUES: {"interval": 60, "name": "kitchen"}},
     False, None, UP),
    ("config-set", M.CONFIG_SET, {M.CFG_VALUES: {"interval": 30}}, True, None, DOWN),
    ("config-after-set", M.CONFIG, {M.REF: 7, M.CODE: 0, M.CFG_VALUES: {"interval": 30}},
     False, None, UP),
    ("time-request", M.TIME, {}, True, None, UP),
    ("time-answer", M.TIME, {M.T_UNIX: UNIX_TIME, M.T_OFFSET: 3600, M.REF: 7}, False, None, DOWN),
    ("ota-offer", M.OTA_OFFER,
     {ota.VERSION: "0.2.0", ota.SIZE: 131072,
      ota.SHA256: hashlib.sha256(b"kithnet firmware 0.2.0").digest(), ota.CHUNK_SIZE: 512},
     True, None, DOWN),
    ("ota-status", M.OTA_STATUS, {M.REF: 9, M.CODE: 0, ota.STATE: ota.RECEIVING, ota.NEXT: 0},
     False, None, UP),
    ("ota-chunk", M.OTA_CHUNK, {ota.OFFSET: 0, ota.DATA: bytes(range(64))}, True, None, DOWN),
    ("ota-status-next", M.OTA_STATUS,
     {M.REF: 10, M.CODE: 0, ota.STATE: ota.RECEIVING, ota.NEXT: 64}, False, None, UP),
    ("report-aged", M.REPORT, {1: 2100, 2: 5000, M.AGE: 300}, False, None, UP),
    ("error-sealed", M.ERROR, {M.CODE: E.UNKNOWN_TYPE, M.REF: 10, M.TEXT: "unknown type 99"},
     False, None, DOWN),
    ("report-negative-temperature", M.REPORT, {1: -1050, M.DUE: 600}, False, None, UP),
    ("report-piv-2-bytes", M.REPORT, {1: 2150}, False, 0x1234, UP),
    ("report-piv-3-bytes", M.REPORT, {1: 2150}, False, 0x123456, UP),
    ("report-piv-4-bytes-last", M.REPORT, {4: False}, True, 0xFFFFFFFF, UP),
]  # fmt: skip

BROADCASTS = [
    ("report-broadcast", M.REPORT, {1: 2150, 2: 4800}, 200),
    ("event-broadcast", M.EVENT, {M.E_CAP: 3, M.E_CODE: 2}, 0x10000),
]


def _case(name, mtype, body, kind, direction, seq, con, kid, key_name, key, msg, data):
    return {
        "name": name,
        "type": mtype,
        "type_name": M.NAMES[mtype],
        "kind": kind,
        "direction": direction,
        "seq": seq,
        "confirmable": con,
        "kid": kid,
        "key_name": key_name,
        "key": key.hex() if key is not None else None,
        "body": body,
        "message_hex": msg.hex(),
        "frame_hex": data.hex(),
    }


def frames_cases():
    """(handshake record, cases) with Python values, produced by the reference implementation."""
    hello_msg, hello_frame = session.hello_frame(HELLO_BODY)
    chal_frame, gw = session.challenge(NODE_KEY, hello_msg, HELLO_BODY, SID, GW_NONCE, UNIX_TIME)
    chal_msg = chal_frame[1:]
    _, chal_body = M.decode(chal_msg)
    node = session.answer(NODE_KEY, hello_msg, HELLO_BODY, chal_body)
    n2g, g2n = keys.session_keys(NODE_KEY, NODE_ID, NODE_NONCE, GW_NONCE, SID, hello_msg)
    assert (node.send_key, node.recv_key, gw.send_key, gw.recv_key) == (n2g, g2n, g2n, n2g)
    bkey = keys.broadcast_key(NODE_KEY, NODE_ID)
    handshake = {
        "node_key": NODE_KEY.hex(),
        "node_id": NODE_ID.hex(),
        "node_nonce": NODE_NONCE.hex(),
        "gateway_nonce": GW_NONCE.hex(),
        "sid": SID,
        "unix_time": UNIX_TIME,
        "hello_sha256": hashlib.sha256(hello_msg).hexdigest(),
        "session_salt": (NODE_NONCE + GW_NONCE).hex(),
        "session_info": (
            b"kithnet/1 session"
            + NODE_ID
            + SID.to_bytes(2, "big")
            + hashlib.sha256(hello_msg).digest()
        ).hex(),
        "proof": chal_body[M.C_PROOF].hex(),
        "keys": {N2G: n2g.hex(), G2N: g2n.hex(), BCAST: bkey.hex()},
    }
    cases = [
        _case("hello", M.HELLO, HELLO_BODY, "plain", UP, None, False, None, None, None,
              hello_msg, hello_frame),
        _case("challenge", M.CHALLENGE, chal_body, "plain", DOWN, None, False, None, None, None,
              chal_msg, chal_frame),
    ]  # fmt: skip
    for name, mtype, body, con, seq, direction in CONVERSATION:
        sess = node if direction == UP else gw
        if seq is not None:
            sess.send_seq = seq
        seq, data = sess.seal(mtype, body, con)
        cases.append(
            _case(name, mtype, body, "session", direction, seq, con, SID,
                  N2G if direction == UP else G2N, sess.send_key, M.encode(mtype, body), data)
        )  # fmt: skip
    kid = (NODE_ID[0] << 8) | NODE_ID[1]
    for name, mtype, body, seq in BROADCASTS:
        data = session.seal_broadcast(bkey, NODE_ID, seq, mtype, body)
        cases.append(
            _case(name, mtype, body, "broadcast", UP, seq, False, kid, BCAST, bkey,
                  M.encode(mtype, body), data)
        )  # fmt: skip
    for name, body in (
        ("error-plain-no-session", {M.CODE: E.NO_SESSION}),
        ("error-plain-version", {M.CODE: E.VERSION, M.ERR_VERSIONS: [1]}),
    ):
        msg = M.encode(M.ERROR, body)
        cases.append(
            _case(name, M.ERROR, body, "plain", DOWN, None, False, None, None, None, msg,
                  frame.plain(msg, True))
        )  # fmt: skip
    return handshake, cases


def check_frames_independently(handshake, cases):
    """Rebuild every frame from the design brief alone, on cbor2 and cryptography."""
    by_name = {c["name"]: c for c in cases}
    assert len(by_name) == len(cases), "duplicate case names"
    hello = by_name["hello"]
    hello_msg = bytes.fromhex(hello["message_hex"])
    n2g_g2n = HKDF(
        hashes.SHA256(),
        32,
        NODE_NONCE + GW_NONCE,
        b"kithnet/1 session"
        + NODE_ID
        + SID.to_bytes(2, "big")
        + hashlib.sha256(hello_msg).digest(),
    ).derive(NODE_KEY)
    want_keys = {
        N2G: n2g_g2n[:16],
        G2N: n2g_g2n[16:],
        BCAST: HKDF(hashes.SHA256(), 16, None, b"kithnet/1 broadcast" + NODE_ID).derive(NODE_KEY),
    }
    assert {k: bytes.fromhex(v) for k, v in handshake["keys"].items()} == want_keys
    proof = AESCCM(want_keys[G2N], tag_length=8).encrypt(
        bytes([(1 << 1) | 1]) + NODE_ID + bytes(4), b"", b"kithnet/1 challenge"
    )
    assert handshake["proof"] == proof.hex()
    kinds = {"plain": 0, "session": 1, "broadcast": 2}
    seen_types = set()
    for c in cases:
        seen_types.add(c["type"])
        body = c["body"]
        msg = cbor2.dumps(c["type"]) + cbor2.dumps(body, canonical=True)
        assert msg.hex() == c["message_hex"], c["name"]
        gw = c["direction"] == DOWN
        kind = kinds[c["kind"]]
        if kind == 0:
            assert c["frame_hex"] == (bytes([0x40 | (0x08 if gw else 0)]) + msg).hex(), c["name"]
            continue
        seq = c["seq"]
        piv = seq.to_bytes(max(1, (seq.bit_length() + 7) // 8), "big")
        hdr = 0x40 | (kind << 4) | (0x08 if gw else 0) | (0x04 if c["confirmable"] else 0)
        hdr |= len(piv) - 1
        kid = SID if kind == 1 else int.from_bytes(NODE_ID[:2], "big")
        assert c["kid"] == kid
        aad = bytes([hdr]) + kid.to_bytes(2, "big") + piv
        nonce = bytes([(kind << 1) | gw]) + NODE_ID + seq.to_bytes(4, "big")
        key = want_keys[c["key_name"]]
        assert c["key"] == key.hex()
        sealed = AESCCM(key, tag_length=8).encrypt(nonce, msg, aad)
        assert c["frame_hex"] == (aad + sealed).hex(), c["name"]
        if kind == 2:
            assert len(aad + sealed) <= 27, f"{c['name']} does not fit a BLE advertisement"
    assert seen_types == set(M.NAMES), "message types without a vector: %s" % (
        set(M.NAMES) - seen_types
    )
    report = by_name["report-temp-humidity"]
    assert report["body"] == {1: 2150, 2: 4800, M.DUE: 60}
    assert len(bytes.fromhex(report["frame_hex"])) <= 26


def frames_json():
    handshake, cases = frames_cases()
    check_frames_independently(handshake, cases)
    for c in cases:
        c["body"] = tag(c["body"])
    return {
        "description": (
            "kithnet v1 frames from fixed inputs. The handshake (hello, challenge) derives "
            "the session keys in `handshake.keys`; every case gives the message (type then "
            "body, a CBOR sequence), the frame, and for sealed frames the direction, "
            "sequence number, CON flag, kid and key. Bodies use the tagged value forms of "
            "cbor.json. Sealed cases of one direction are numbered as one Session numbers "
            "them, in file order, except where a case sets a far sequence number."
        ),
        "handshake": handshake,
        "cases": cases,
    }


# --- writing ----------------------------------------------------------------------------

FILES = {
    "cbor.json": cbor_json,
    "ccm.json": ccm_json,
    "hkdf.json": hkdf_json,
    "frames.json": frames_json,
}


def render(obj):
    """JSON with one vector per line: diffs stay readable, and tests/mp/check_vectors.py
    relies on this layout to parse one vector at a time within a node-sized heap."""
    out = []
    for k, v in obj.items():
        if isinstance(v, list):
            rows = ",\n".join("  " + json.dumps(x, ensure_ascii=False) for x in v)
            out.append(f" {json.dumps(k)}: [\n{rows}\n ]")
        else:
            text = json.dumps(v, ensure_ascii=False, indent=1).replace("\n", "\n ")
            out.append(f" {json.dumps(k)}: {text}")
    return "{\n" + ",\n".join(out) + "\n}\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="compare, do not write")
    args = ap.parse_args(argv)
    stale = []
    for name, make in FILES.items():
        text = render(make())
        path = VECTORS / name
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            VECTORS.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print(f"out of date: {', '.join(stale)} (run python tools/make_vectors.py)")
        return 1
    if args.check:
        print("vectors up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
