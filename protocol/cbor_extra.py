# The rarely met parts of protocol.cbor: floats and the strict UTF-8 check.
# MicroPython and CPython. cbor.py imports this module the first time it needs it.

import struct

_INF = float("inf")
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


def encode_float(out, x):
    """Shortest of half, single and double that keeps x (preferred serialization)."""
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


def utf8_ok(b):
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
