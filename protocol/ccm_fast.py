# CPython fast path of protocol.ccm on cryptography's AESCCM. Never imported on MicroPython.

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

from .ccm import TAG_LEN, _check
from .errors import AUTH, ProtocolError

_cache = {}


def _aead(key):
    # Building an AESCCM costs about a third of a decrypt: keep one per key.
    a = _cache.get(key)
    if a is None:
        if len(_cache) >= 4096:
            _cache.clear()
        a = _cache[bytes(key)] = AESCCM(bytes(key), tag_length=TAG_LEN)
    return a


def seal(key, nonce, plaintext, aad):
    _check(key, nonce)
    return _aead(bytes(key)).encrypt(bytes(nonce), bytes(plaintext), bytes(aad))


def open(key, nonce, sealed, aad):
    _check(key, nonce)
    if len(sealed) < TAG_LEN:
        raise ProtocolError(AUTH, "sealed data shorter than the tag")
    try:
        return _aead(bytes(key)).decrypt(bytes(nonce), bytes(sealed), bytes(aad))
    except InvalidTag:
        raise ProtocolError(AUTH, "tag mismatch") from None
