# HMAC-SHA256 (RFC 2104) and HKDF-SHA256 (RFC 5869) on hashlib.sha256. MicroPython and CPython.
#
# MicroPython has hashlib.sha256 (update/digest only, no copy) and no hmac module,
# so HMAC is written out here; it runs only at handshakes, never per frame.

import hashlib

_BLOCK = 64


def sha256(data):
    return hashlib.sha256(data).digest()


def hmac_sha256(key, msg):
    if len(key) > _BLOCK:
        key = sha256(key)
    key = bytes(key) + bytes(_BLOCK - len(key))
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    inner.update(msg)
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    outer.update(inner.digest())
    return outer.digest()


def hkdf(ikm, salt, info, length):
    """HKDF-SHA256: extract with salt (empty means 32 zero bytes), expand with info."""
    if length > 255 * 32:
        raise ValueError("HKDF output too long")
    prk = hmac_sha256(salt if salt else bytes(32), ikm)
    out = b""
    t = b""
    i = 1
    while len(out) < length:
        t = hmac_sha256(prk, t + info + bytes((i,)))
        out += t
        i += 1
    return out[:length]


def equal(a, b):
    """Constant-time comparison of two byte strings."""
    if len(a) != len(b):
        return False
    diff = 0
    for i in range(len(a)):
        diff |= a[i] ^ b[i]
    return diff == 0
