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

# Floats and the strict UTF-8 check live in cbor_extra, imported on first use: a node's
# messages carry neither (values are scaled integers, text is ASCII), and its heap should
# not hold code it never runs. By absolute name, as in session._keys.
_EXTRA = __name__[: __name__.rfind(".") + 1] + "cbor_extra"


def _extra():
    return __import__(_EXTRA, None, None, ["f16_bits"])


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
        _extra().encode_float(out, x)
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
            return _extra().half_to_float((buf[i] << 8) | buf[i + 1]), i + 2
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
        if len(s) != val and not _extra().utf8_ok(raw):  # MicroPython accepts overlong/surrogates
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
