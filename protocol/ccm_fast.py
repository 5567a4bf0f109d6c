# CPython fast path of protocol.ccm on cryptography's AESCCM. Never imported on MicroPython.

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

from .errors import AUTH, LIMIT, ProtocolError
from .limits import KEY_LEN, NONCE_LEN, TAG_LEN

_cache = {}


def _aead(key, nonce):
    if len(nonce) != NONCE_LEN:
        raise ProtocolError(LIMIT, "AES-CCM nonce must be %d bytes" % NONCE_LEN)
    # Building an AESCCM costs about a third of a decrypt: keep one per key.
    if type(key) is not bytes:
        key = bytes(key)
    a = _cache.get(key)
    if a is None:
        if len(key) != KEY_LEN:
            raise ProtocolError(LIMIT, "AES-CCM key must be %d bytes" % KEY_LEN)
        if len(_cache) >= 4096:
            _cache.clear()
        a = _cache[key] = AESCCM(key, tag_length=TAG_LEN)
    return a


def seal(key, nonce, plaintext, aad):
    return _aead(key, nonce).encrypt(nonce, plaintext, aad)


def open(key, nonce, sealed, aad):  # the AEAD verb; shadows the builtin inside this module only
    a = _aead(key, nonce)
    if len(sealed) < TAG_LEN:
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
