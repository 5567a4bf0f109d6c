# The CBOR subset of the kithnet protocol (RFC 8949). Runs on MicroPython and CPython.
#
# Subset: unsigned and negative integers (64-bit), byte and text strings, arrays,
# maps with integer or text keys, half/single/double floats, false/true/null.
# No tags, no indefinite lengths, no undefined, no other simple values.
#
# Encoding is deterministic: shortest argument, shortest float that keeps the value
# (preferred serialization), map keys sorted length-first then bytewise (RFC 8949
# section 4.2.3, the same order as cbor2's canonical mode). MicroPython dicts do not
# keep insertion order, so sorting is what makes both interpreters emit the same bytes.
#
# Decoding accepts any well-formed item of the subset within the limits below and
# raises ProtocolError (MALFORMED or LIMIT) for anything else.

import struct

from .errors import LIMIT, MALFORMED, ProtocolError
from .limits import MAX_BYTES, MAX_DEPTH, MAX_ITEMS, MAX_TEXT

_U64 = 0x10000000000000000

_INF = float("inf")


def _head(out, major, val):
    major <<= 5
    if val < 24:
        out.append(major | val)
    elif val < 0x100:
        out.append(major | 24)
        out.append(val)
    elif val < 0x10000:
        out.append(major | 25)
        out.extend(val.to_bytes(2, "big"))
    elif val < 0x100000000:
        out.append(major | 26)
        out.extend(val.to_bytes(4, "big"))
    elif val < _U64:
        out.append(major | 27)
        out.extend(val.to_bytes(8, "big"))
    else:
        raise ProtocolError(LIMIT, "integer beyond 64 bits")


_F32_MAX = 3.4028234663852886e38


def f16_bits(x):
    """The half-precision bits of x, or None when x is not exactly a half float."""
    if not -_F32_MAX <= x <= _F32_MAX:
        return None
    b = struct.unpack(">I", struct.pack(">f", x))[0]
    if struct.unpack(">f", struct.pack(">I", b))[0] != x:
        return None  # not even a single float
    sign = (b >> 16) & 0x8000
    exp = ((b >> 23) & 0xFF) - 127
    mant = b & 0x7FFFFF
    if exp == -127 and mant == 0:
        return sign  # +-0.0
    if -14 <= exp <= 15:
        if mant & 0x1FFF:
            return None
        return sign | ((exp + 15) << 10) | (mant >> 13)
    if -24 <= exp < -14:
        shift = -exp - 1
        full = mant | 0x800000
        if full & ((1 << shift) - 1):
            return None
        return sign | (full >> shift)
    return None


def half_to_float(h):
    """Value of a half float from its 16 bits, through single precision."""
    sign = (h & 0x8000) << 16
    exp = (h >> 10) & 0x1F
    mant = h & 0x3FF
    if exp == 0x1F:
        bits = sign | 0x7F800000 | (mant << 13)
    elif exp:
        bits = sign | ((exp + 112) << 23) | (mant << 13)
    elif mant == 0:
        bits = sign
    else:
        exp = 113
        while not mant & 0x400:
            mant <<= 1
            exp -= 1
        bits = sign | (exp << 23) | ((mant & 0x3FF) << 13)
    return struct.unpack(">f", struct.pack(">I", bits))[0]


def _float(out, x):
    if x != x:
        out.extend(b"\xf9\x7e\x00")
        return
    if x == _INF:
        out.extend(b"\xf9\x7c\x00")
        return
    if x == -_INF:
        out.extend(b"\xf9\xfc\x00")
        return
    h = f16_bits(x)
    if h is not None:
        out.append(0xF9)
        out.extend(h.to_bytes(2, "big"))
        return
    s = struct.pack(">f", x) if -_F32_MAX <= x <= _F32_MAX else None
    if s is not None and struct.unpack(">f", s)[0] == x:
        out.append(0xFA)
        out.extend(s)
        return
    out.append(0xFB)
    out.extend(struct.pack(">d", x))


def _enc(out, x, depth):
    if x is False:
        out.append(0xF4)
    elif x is True:
        out.append(0xF5)
    elif x is None:
        out.append(0xF6)
    elif isinstance(x, int):
        if x >= 0:
            _head(out, 0, x)
        else:
            _head(out, 1, -1 - x)
    elif isinstance(x, str):
        b = x.encode("utf-8")
        if len(b) > MAX_TEXT:
            raise ProtocolError(LIMIT, "text string of %d bytes > %d" % (len(b), MAX_TEXT))
        _head(out, 3, len(b))
        out.extend(b)
    elif isinstance(x, (bytes, bytearray, memoryview)):
        if len(x) > MAX_BYTES:
            raise ProtocolError(LIMIT, "byte string of %d bytes > %d" % (len(x), MAX_BYTES))
        _head(out, 2, len(x))
        out.extend(x)
    elif isinstance(x, float):
        _float(out, x)
    elif isinstance(x, (list, tuple)):
        if depth >= MAX_DEPTH:
            raise ProtocolError(LIMIT, "nesting deeper than %d" % MAX_DEPTH)
        if len(x) > MAX_ITEMS:
            raise ProtocolError(LIMIT, "array of %d items > %d" % (len(x), MAX_ITEMS))
        _head(out, 4, len(x))
        for v in x:
            _enc(out, v, depth + 1)
    elif isinstance(x, dict):
        if depth >= MAX_DEPTH:
            raise ProtocolError(LIMIT, "nesting deeper than %d" % MAX_DEPTH)
        if len(x) > MAX_ITEMS:
            raise ProtocolError(LIMIT, "map of %d entries > %d" % (len(x), MAX_ITEMS))
        items = []
        for k in x:
            if k is True or k is False or not isinstance(k, (int, str)):
                raise ProtocolError(MALFORMED, "map key must be an integer or text")
            kb = bytearray()
            _enc(kb, k, depth + 1)
            items.append((len(kb), bytes(kb), k))
        items.sort()
        _head(out, 5, len(items))
        for _, kb, k in items:
            out.extend(kb)
            _enc(out, x[k], depth + 1)
    else:
        raise ProtocolError(MALFORMED, "cannot encode %s" % type(x).__name__)


def _utf8_ok(b):
    """RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF."""
    i = 0
    n = len(b)
    while i < n:
        c = b[i]
        if c < 0x80:
            i += 1
            continue
        if 0xC2 <= c <= 0xDF:
            k, lo, hi = 1, 0x80, 0xBF
        elif c == 0xE0:
            k, lo, hi = 2, 0xA0, 0xBF
        elif c == 0xED:
            k, lo, hi = 2, 0x80, 0x9F
        elif 0xE1 <= c <= 0xEF:
            k, lo, hi = 2, 0x80, 0xBF
        elif c == 0xF0:
            k, lo, hi = 3, 0x90, 0xBF
        elif 0xF1 <= c <= 0xF3:
            k, lo, hi = 3, 0x80, 0xBF
        elif c == 0xF4:
            k, lo, hi = 3, 0x80, 0x8F
        else:
            return False
        if i + k >= n:
            return False
        if not lo <= b[i + 1] <= hi:
            return False
        for j in range(i + 2, i + k + 1):
            if not 0x80 <= b[j] <= 0xBF:
                return False
        i += k + 1
    return True


def _need(buf, i, n):
    if i + n > len(buf):
        raise ProtocolError(MALFORMED, "truncated at byte %d" % i)


def _dec(buf, i, depth):
    _need(buf, i, 1)
    ib = buf[i]
    major = ib >> 5
    ai = ib & 31
    i += 1
    if major == 7:
        if ai == 20:
            return False, i
        if ai == 21:
            return True, i
        if ai == 22:
            return None, i
        if ai == 25:
            _need(buf, i, 2)
            return half_to_float((buf[i] << 8) | buf[i + 1]), i + 2
        if ai == 26:
            _need(buf, i, 4)
            return struct.unpack(">f", bytes(buf[i : i + 4]))[0], i + 4
        if ai == 27:
            _need(buf, i, 8)
            return struct.unpack(">d", bytes(buf[i : i + 8]))[0], i + 8
        if ai == 31:
            raise ProtocolError(MALFORMED, "unexpected break")
        raise ProtocolError(MALFORMED, "simple value %d is outside the subset" % ai)
    if ai < 24:
        val = ai
    elif ai < 28:
        n = 1 << (ai - 24)
        _need(buf, i, n)
        val = int.from_bytes(bytes(buf[i : i + n]), "big")
        i += n
    elif ai == 31:
        raise ProtocolError(MALFORMED, "indefinite length is outside the subset")
    else:
        raise ProtocolError(MALFORMED, "reserved additional information %d" % ai)
    if major == 0:
        return val, i
    if major == 1:
        return -1 - val, i
    if major == 2:
        if val > MAX_BYTES:
            raise ProtocolError(LIMIT, "byte string of %d bytes > %d" % (val, MAX_BYTES))
        _need(buf, i, val)
        return bytes(buf[i : i + val]), i + val
    if major == 3:
        if val > MAX_TEXT:
            raise ProtocolError(LIMIT, "text string of %d bytes > %d" % (val, MAX_TEXT))
        _need(buf, i, val)
        raw = bytes(buf[i : i + val])
        try:
            s = str(raw, "utf-8")
        except UnicodeError:
            raise ProtocolError(MALFORMED, "text string is not UTF-8")
        if len(s) != val and not _utf8_ok(raw):  # MicroPython accepts overlong/surrogates
            raise ProtocolError(MALFORMED, "text string is not UTF-8")
        return s, i + val
    if major == 6:
        raise ProtocolError(MALFORMED, "tags are outside the subset")
    # arrays and maps
    if depth >= MAX_DEPTH:
        raise ProtocolError(LIMIT, "nesting deeper than %d" % MAX_DEPTH)
    if val > MAX_ITEMS:
        raise ProtocolError(LIMIT, "container of %d entries > %d" % (val, MAX_ITEMS))
    if major == 4:
        out = []
        for _ in range(val):
            v, i = _dec(buf, i, depth + 1)
            out.append(v)
        return out, i
    out = {}
    for _ in range(val):
        k, i = _dec(buf, i, depth + 1)
        if k is True or k is False or not isinstance(k, (int, str)):
            raise ProtocolError(MALFORMED, "map key must be an integer or text")
        if k in out:
            raise ProtocolError(MALFORMED, "duplicate map key %r" % (k,))
        v, i = _dec(buf, i, depth + 1)
        out[k] = v
    return out, i


def _dumps(obj):
    out = bytearray()
    _enc(out, obj, 0)
    return bytes(out)


def _loads(data):
    obj, i = _dec(data, 0, 0)
    if i != len(data):
        raise ProtocolError(MALFORMED, "%d bytes after the item" % (len(data) - i))
    return obj


def _decode_seq(data, count):
    out = []
    i = 0
    for _ in range(count):
        obj, i = _dec(data, i, 0)
        out.append(obj)
    if i != len(data):
        raise ProtocolError(MALFORMED, "%d bytes after the items" % (len(data) - i))
    return out


# The portable functions stay reachable for tests that pin the portable path.
portable_dumps = _dumps
portable_loads = _loads
portable_decode_seq = _decode_seq

dumps = _dumps
loads = _loads
decode_seq = _decode_seq
FAST = False

import sys  # noqa: E402

if sys.implementation.name == "cpython":
    try:
        from . import cbor_fast
    except ImportError:  # cbor2 missing: the portable path serves
        cbor_fast = None
    if cbor_fast is not None:
        dumps = cbor_fast.dumps
        loads = cbor_fast.loads
        decode_seq = cbor_fast.decode_seq
        FAST = True
