# Key schedule and the handshake's crypto (session.challenge and session.answer call in
# here). MicroPython and CPython. A node loads this module only while it runs a handshake.
#
# Each node holds one 128-bit key, provisioned at flashing time. Nothing is ever sealed
# under it directly: a handshake (hello with the node's nonce, challenge with the
# gateway's nonce) derives fresh session keys with HKDF-SHA256, one per direction, bound
# to both nonces, the node id, the session id and the exact hello bytes. Broadcast
# frames, which cannot run a handshake, use a key derived for broadcast and a counter
# the node persists (BroadcastCounter).

from . import ccm, frame, messages
from .errors import AUTH, LIMIT, MALFORMED, ProtocolError
from .kdf import hkdf, sha256
from .session import Session  # session imports this module only inside its functions

KEY_LEN = 16
_SESSION_INFO = b"kithnet/1 session"
_BROADCAST_INFO = b"kithnet/1 broadcast"
_PROOF_AAD = b"kithnet/1 challenge"
_BTHOME_INFO = b"kithnet/1 bthome"  # node/ble_setup.py holds a copy (test_bthome_node)


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


def bthome_key(node_key, node_id):
    """The BTHome v2 bindkey a node in BTHome mode seals its advertisements with (SPEC 13.2).

    Its own HKDF label, so it is neither the node key nor K_b: handing it to Home Assistant
    lets that read the node's readings and nothing else (HKDF outputs under distinct labels
    are independent)."""
    if len(node_key) != KEY_LEN:
        raise ProtocolError(LIMIT, "node key must be %d bytes" % KEY_LEN)
    return hkdf(bytes(node_key), b"", _BTHOME_INFO + bytes(node_id), KEY_LEN)


def challenge_proof(gw_key, node_id):
    """The gateway's proof in its challenge: an 8-byte CCM tag over nothing, sequence 0.

    Only a holder of the node key can compute it, and it is fresh because the session
    key depends on the node's nonce. The gateway's own frames then start at sequence 1.
    """
    return ccm.seal(gw_key, frame.nonce(frame.SESSION, True, node_id, 0), b"", _PROOF_AAD)


def check_proof(gw_key, node_id, proof):
    ccm.open(gw_key, frame.nonce(frame.SESSION, True, node_id, 0), proof, _PROOF_AAD)


def challenge(node_key, hello_msg, hello_body, sid, gw_nonce, unix_time=None):
    """Gateway side: (challenge frame, Session) answering a hello, pending its confirm."""
    node_id = hello_body[messages.H_NODE]
    if not 0 <= sid <= 0xFFFF:
        raise ProtocolError(LIMIT, "session id must be 0..65535")
    n2g, g2n = session_keys(
        node_key, node_id, hello_body[messages.H_NONCE], gw_nonce, sid, hello_msg
    )
    body = {
        messages.C_NODE: node_id,
        messages.C_NONCE: bytes(gw_nonce),
        messages.C_SID: sid,
        messages.C_PROOF: challenge_proof(g2n, node_id),
    }
    if unix_time is not None:
        body[messages.C_TIME] = unix_time
    data = frame.plain(messages.encode(messages.CHALLENGE, body), True)
    return data, Session(node_id, sid, g2n, n2g, True, send_seq=1)


def answer(node_key, hello_msg, hello_body, chal_body):
    """Node side: the Session a challenge opens, after checking the gateway's proof."""
    node_id = hello_body[messages.H_NODE]
    if chal_body[messages.C_NODE] != node_id:
        raise ProtocolError(AUTH, "challenge names another node")
    sid = chal_body[messages.C_SID]
    if sid > 0xFFFF:
        raise ProtocolError(MALFORMED, "session id beyond 16 bits")
    n2g, g2n = session_keys(
        node_key, node_id, hello_body[messages.H_NONCE], chal_body[messages.C_NONCE], sid, hello_msg
    )
    check_proof(g2n, node_id, chal_body[messages.C_PROOF])
    return Session(node_id, sid, n2g, g2n, False)


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
