# AES-CCM (RFC 3610, NIST SP 800-38C) on an AES-ECB block function. MicroPython and CPython.
#
# kithnet uses COSE algorithm 10, AES-CCM-16-64-128: 128-bit key, 13-byte nonce
# (so L = 2, messages up to 65535 bytes) and an 8-byte tag. MicroPython has no AEAD,
# only cryptolib.aes(key, 1) (ECB; CTR is not enabled on the esp32 port), and CCM only
# ever runs AES forward, so one ECB object serves both the CBC-MAC and the CTR
# keystream. On CPython the portable code runs on cryptography's ECB for testing, and
# seal/open use cryptography's AESCCM instead (the fast path), with identical results.
#
# seal/open take an optional tag length (CCM's M: 4, 6, ..., 16), for BTHome v2's 4-byte
# MIC (firmware/node/bthome.py; protocol/vectors/ccm4.json). kithnet frames never pass one:
# their 8-byte path is the code it was, with B0's flags computed from the tag length.

import sys

from .errors import AUTH, LIMIT, ProtocolError
from .limits import KEY_LEN, NONCE_LEN, TAG_LEN

_FLAGS_CTR = 15 - NONCE_LEN - 1  # L'; B0's flags: Adata, M' = (tag - 2) / 2 and L' (_mac)

if sys.implementation.name == "micropython":
    import cryptolib

    def ecb(key):
        """An object whose encrypt(src, dst) runs AES-ECB forward over whole blocks."""
        return cryptolib.aes(key, 1)

else:
    # CPython: the portable code on cryptography's ECB, kept out of this file so that a
    # node's heap holds none of it.
    from .ccm_fast import ecb


def _check(key, nonce, tag):
    if tag & 1 or not 3 < tag < 17:
        raise ProtocolError(LIMIT, "AES-CCM tag must be 4, 6, ... or 16 bytes")
    if len(key) != KEY_LEN:
        raise ProtocolError(LIMIT, "AES-CCM key must be %d bytes" % KEY_LEN)
    if len(nonce) != NONCE_LEN:
        raise ProtocolError(LIMIT, "AES-CCM nonce must be %d bytes" % NONCE_LEN)


def _mac(aes, nonce, aad, msg, tag):
    """CBC-MAC over B0, the length-prefixed AAD and the message, zero padded."""
    n = len(msg)
    if n > 0xFFFF or len(aad) >= 0xFF00:
        raise ProtocolError(LIMIT, "message or associated data too long for CCM")
    buf = bytearray(16)
    buf[0] = (0x40 if aad else 0) | ((tag - 2) << 2) | _FLAGS_CTR
    buf[1 : 1 + NONCE_LEN] = nonce
    buf[14] = n >> 8
    buf[15] = n & 0xFF
    if aad:
        buf.append(len(aad) >> 8)
        buf.append(len(aad) & 0xFF)
        buf.extend(aad)
        buf.extend(bytes(-len(buf) % 16))
    buf.extend(msg)
    buf.extend(bytes(-len(buf) % 16))
    x = bytearray(16)
    blk = bytearray(16)
    for off in range(0, len(buf), 16):
        for j in range(16):
            blk[j] = x[j] ^ buf[off + j]
        aes.encrypt(blk, x)
    return x


def _keystream(aes, nonce, nblocks):
    """CTR blocks A_0..A_n encrypted in one call: S_0 masks the tag, the rest the data."""
    ctr = bytearray(16 * (nblocks + 1))
    for i in range(nblocks + 1):
        o = 16 * i
        ctr[o] = _FLAGS_CTR
        ctr[o + 1 : o + 1 + NONCE_LEN] = nonce
        ctr[o + 14] = i >> 8
        ctr[o + 15] = i & 0xFF
    out = bytearray(len(ctr))
    aes.encrypt(ctr, out)
    return out


def portable_seal(key, nonce, plaintext, aad, tag=TAG_LEN):
    _check(key, nonce, tag)
    aes = ecb(key)
    n = len(plaintext)
    t = _mac(aes, nonce, aad, plaintext, tag)
    s = _keystream(aes, nonce, (n + 15) // 16)
    out = bytearray(n + tag)
    for j in range(n):
        out[j] = plaintext[j] ^ s[16 + j]
    for j in range(tag):
        out[n + j] = t[j] ^ s[j]
    return bytes(out)


def portable_open(key, nonce, sealed, aad, tag=TAG_LEN):
    _check(key, nonce, tag)
    n = len(sealed) - tag
    if n < 0:
        raise ProtocolError(AUTH, "sealed data shorter than the tag")
    aes = ecb(key)
    s = _keystream(aes, nonce, (n + 15) // 16)
    msg = bytearray(n)
    for j in range(n):
        msg[j] = sealed[j] ^ s[16 + j]
    t = _mac(aes, nonce, aad, msg, tag)
    diff = 0
    for j in range(tag):
        diff |= (t[j] ^ s[j]) ^ sealed[n + j]
    if diff:
        raise ProtocolError(AUTH, "tag mismatch")
    return bytes(msg)


seal = portable_seal
open = portable_open  # the AEAD verb; shadows the builtin inside this module only
FAST = False

if sys.implementation.name == "cpython":
    try:
        from . import ccm_fast
    except ImportError:  # cryptography missing: the portable path serves
        ccm_fast = None
    if ccm_fast is not None:
        seal = ccm_fast.seal
        open = ccm_fast.open
        FAST = True
