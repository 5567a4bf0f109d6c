# Key schedule and handshake proofs. MicroPython and CPython.
#
# Each node holds one 128-bit key, provisioned at flashing time. Nothing is ever sealed
# under it directly: a handshake (hello with the node's nonce, challenge with the
# gateway's nonce) derives fresh session keys with HKDF-SHA256, one per direction, bound
# to both nonces, the node id, the session id and the exact hello bytes. Broadcast
# frames, which cannot run a handshake, use a key derived for broadcast and a counter
# the node persists (BroadcastCounter).

from . import ccm, frame
from .errors import LIMIT, ProtocolError
from .kdf import hkdf, sha256

KEY_LEN = 16
_SESSION_INFO = b"kithnet/1 session"
_BROADCAST_INFO = b"kithnet/1 broadcast"
_PROOF_AAD = b"kithnet/1 challenge"


def session_keys(node_key, node_id, node_nonce, gw_nonce, sid, hello):
    """(node-to-gateway key, gateway-to-node key) for one session."""
    if len(node_key) != KEY_LEN:
        raise ProtocolError(LIMIT, "node key must be %d bytes" % KEY_LEN)
    info = _SESSION_INFO + bytes(node_id) + sid.to_bytes(2, "big") + sha256(hello)
    okm = hkdf(bytes(node_key), bytes(node_nonce) + bytes(gw_nonce), info, 2 * KEY_LEN)
    return okm[:KEY_LEN], okm[KEY_LEN:]


def broadcast_key(node_key, node_id):
    if len(node_key) != KEY_LEN:
        raise ProtocolError(LIMIT, "node key must be %d bytes" % KEY_LEN)
    return hkdf(bytes(node_key), b"", _BROADCAST_INFO + bytes(node_id), KEY_LEN)


def challenge_proof(gw_key, node_id):
    """The gateway's proof in its challenge: an 8-byte CCM tag over nothing, sequence 0.

    Only a holder of the node key can compute it, and it is fresh because the session
    key depends on the node's nonce. The gateway's own frames then start at sequence 1.
    """
    return ccm.seal(gw_key, frame.nonce(frame.SESSION, True, node_id, 0), b"", _PROOF_AAD)


def check_proof(gw_key, node_id, proof):
    ccm.open(gw_key, frame.nonce(frame.SESSION, True, node_id, 0), proof, _PROOF_AAD)


class BroadcastCounter:
    """The broadcast sequence, persisted write-ahead in blocks.

    load() returns the last stored mark (or None); store(n) must persist n before it
    returns. A mark is stored before any number below it is used, so a reboot resumes
    at the mark: numbers are skipped, never reused. One write per `block` frames.
    """

    def __init__(self, load, store, block=64):
        self._store = store
        self.block = block
        mark = load()
        self.value = mark if mark else 0
        self.mark = self.value + block
        store(self.mark)

    def next(self):
        v = self.value
        if v > frame.MAX_SEQ:
            raise ProtocolError(LIMIT, "broadcast counter exhausted: re-key the node")
        if v >= self.mark:
            self.mark = v + self.block
            self._store(self.mark)
        self.value = v + 1
        return v
