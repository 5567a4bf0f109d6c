# CPython fast path of protocol.ccm on cryptography's AESCCM. Never imported on MicroPython.

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

from .errors import AUTH, LIMIT, ProtocolError
from .limits import KEY_LEN, NONCE_LEN, TAG_LEN

_cache = {}


def _aead(key, nonce, tag):
    if len(nonce) != NONCE_LEN:
        raise ProtocolError(LIMIT, "AES-CCM nonce must be %d bytes" % NONCE_LEN)
    # Building an AESCCM costs about a third of a decrypt: keep one per key (and tag length:
    # a key used with another tag than kithnet's 8 bytes, BTHome's 4, is cached apart).
    if type(key) is not bytes:
        key = bytes(key)
    ck = key if tag == TAG_LEN else (key, tag)
    a = _cache.get(ck)
    if a is None:
        if len(key) != KEY_LEN:
            raise ProtocolError(LIMIT, "AES-CCM key must be %d bytes" % KEY_LEN)
        if tag & 1 or not 4 <= tag <= 16:
            raise ProtocolError(LIMIT, "AES-CCM tag must be 4, 6, ... or 16 bytes")
        if len(_cache) >= 4096:
            _cache.clear()
        a = _cache[ck] = AESCCM(key, tag_length=tag)
    return a


def seal(key, nonce, plaintext, aad, tag=TAG_LEN):
    return _aead(key, nonce, tag).encrypt(nonce, plaintext, aad)


def open(key, nonce, sealed, aad, tag=TAG_LEN):  # the AEAD verb; shadows the builtin here only
    a = _aead(key, nonce, tag)
    if len(sealed) < tag:
        raise ProtocolError(AUTH, "sealed data shorter than the tag")
    try:
        return a.decrypt(nonce, sealed, aad)
    except InvalidTag:
        raise ProtocolError(AUTH, "tag mismatch") from None


class _Ecb:
    """cryptolib.aes(key, 1) for CPython, so the portable CCM runs here too."""

    def __init__(self, key):
        self._enc = Cipher(algorithms.AES(bytes(key)), modes.ECB()).encryptor()

    def encrypt(self, src, dst=None):
        out = self._enc.update(bytes(src))
        if dst is None:
            return out
        dst[:] = out
        return None


def ecb(key):
    """An object whose encrypt(src, dst) runs AES-ECB forward over whole blocks."""
    return _Ecb(key)
