# Frames: the outer layer every kithnet datagram or advertisement has. MicroPython and CPython.
#
#   plain      hdr | message                                    (handshake, pre-session errors)
#   session    hdr | kid(2) | piv(1..4) | ciphertext | tag(8)  (after the handshake)
#   broadcast  hdr | kid(2) | piv(1..4) | ciphertext | tag(8)  (BLE adverts, announcements)
#
# hdr bits: 7-6 version (1), 5-4 kind, 3 from-gateway, 2 confirmable, 1-0 piv length - 1.
# kid is the session id the gateway assigned (session) or the first two bytes of the
# node id (broadcast). piv is the sender's sequence number, shortest big-endian
# (OSCORE's partial IV). The bytes before the ciphertext are the associated data; the
# nonce is role | node id | sequence (4 bytes), so no (key, nonce) pair repeats as long
# as a sender never reuses a sequence number under one key. See SPEC.md, "Frames".

from . import ccm
from .errors import LIMIT, MALFORMED, VERSION, ProtocolError
from .limits import MAX_FRAME

VERSION_1 = 1
PLAIN = 0
SESSION = 1
BROADCAST = 2

F_GATEWAY = 0x08
F_CON = 0x04

NODE_ID_LEN = 8
KID_LEN = 2
MAX_SEQ = 0xFFFFFFFF
TAG_LEN = ccm.TAG_LEN


def header(kind, from_gateway=False, confirmable=False, piv_len=1):
    b = (VERSION_1 << 6) | (kind << 4) | ((piv_len - 1) if kind else 0)
    if from_gateway:
        b |= F_GATEWAY
    if confirmable:
        b |= F_CON
    return b


def piv_bytes(seq):
    if seq < 0 or seq > MAX_SEQ:
        raise ProtocolError(LIMIT, "sequence number outside 0..2^32-1")
    n = 1 if seq < 0x100 else 2 if seq < 0x10000 else 3 if seq < 0x1000000 else 4
    return seq.to_bytes(n, "big")


def nonce(kind, from_gateway, node_id, seq):
    """13 bytes: role (kind and direction), the node's 8-byte id, the 4-byte sequence."""
    if len(node_id) != NODE_ID_LEN:
        raise ProtocolError(LIMIT, "node id must be %d bytes" % NODE_ID_LEN)
    return (
        bytes(((kind << 1) | (1 if from_gateway else 0),)) + bytes(node_id) + seq.to_bytes(4, "big")
    )


def parse(frame):
    """Check the header of any frame; return (kind, from_gateway, con, kid, seq, body_offset).

    For plain frames kid and seq are None and the body is the message itself.
    """
    n = len(frame)
    if n < 2:
        raise ProtocolError(MALFORMED, "frame of %d bytes is too short" % n)
    if n > MAX_FRAME:
        raise ProtocolError(LIMIT, "frame of %d bytes > %d" % (n, MAX_FRAME))
    h = frame[0]
    if h >> 6 != VERSION_1:
        raise ProtocolError(VERSION, "protocol version %d is not supported (1 is)" % (h >> 6))
    kind = (h >> 4) & 3
    gw = bool(h & F_GATEWAY)
    con = bool(h & F_CON)
    if kind == PLAIN:
        if h & 3:
            raise ProtocolError(MALFORMED, "plain frame with a sequence length")
        return kind, gw, con, None, None, 1
    if kind != SESSION and kind != BROADCAST:
        raise ProtocolError(MALFORMED, "reserved frame kind %d" % kind)
    plen = (h & 3) + 1
    off = 1 + KID_LEN + plen
    if n < off + 1 + TAG_LEN:
        raise ProtocolError(MALFORMED, "sealed frame of %d bytes is too short" % n)
    kid = (frame[1] << 8) | frame[2]
    seq = int.from_bytes(bytes(frame[3:off]), "big")
    return kind, gw, con, kid, seq, off


def seal(kind, key, node_id, kid, seq, message, from_gateway=False, confirmable=False):
    """A sealed frame carrying message (the encoded type and body)."""
    piv = piv_bytes(seq)
    aad = bytes((header(kind, from_gateway, confirmable, len(piv)), kid >> 8, kid & 0xFF)) + piv
    if len(aad) + len(message) + TAG_LEN > MAX_FRAME:
        raise ProtocolError(LIMIT, "message of %d bytes does not fit a frame" % len(message))
    return aad + ccm.seal(key, nonce(kind, from_gateway, node_id, seq), message, aad)


def open_sealed(frame, parsed, key, node_id):
    """The message inside a sealed frame whose header parse() returned; AUTH error if forged."""
    kind, gw, _, _, seq, off = parsed
    return ccm.open(key, nonce(kind, gw, node_id, seq), frame[off:], frame[:off])


def plain(message, from_gateway=False):
    if 1 + len(message) > MAX_FRAME:
        raise ProtocolError(LIMIT, "message of %d bytes does not fit a frame" % len(message))
    return bytes((header(PLAIN, from_gateway),)) + message
