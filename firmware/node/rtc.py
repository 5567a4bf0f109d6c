# A sleepy node's session across deep sleep, kept in RTC memory (which survives deep
# sleep and resets, not a power cut). Only sleepy nodes load this module (Link.rtc).
#
# The record holds the sequence number reserved ahead (Link.seq_mark), not the last one
# used: Link._seal saves again before using a number past the mark, so a node that wakes
# resumes past every number it ever sealed, and no nonce repeats under the session key.

from protocol import cbor, session
from protocol.errors import ProtocolError

_MAGIC = b"kn1"


def save(link):
    """Keep the session (or forget it, when there is none to keep)."""
    s = link.sess
    if s is None or not link.online:
        link.node.hal.rtc_memory(b"")
        return
    rec = [s.sid, s.send_key, s.recv_key, link.seq_mark, s.window.highest, link.gw]
    link.node.hal.rtc_memory(_MAGIC + cbor.dumps(rec))


def resume(link):
    """Resume a kept session past its reserved sequence numbers; False if none."""
    data = link.node.hal.rtc_memory()
    if not data or data[:3] != _MAGIC:
        return False
    try:
        sid, skey, rkey, mark, highest, gw = cbor.loads(data[3:])
    except (ProtocolError, ValueError, TypeError):
        return False
    link.sess = session.Session(link.node_id, sid, skey, rkey, False, send_seq=mark)
    link.sess.window.highest = highest
    link.seq_mark = mark
    link.gw = tuple(gw) if isinstance(gw, list) else gw  # esp32 addresses are tuples
    link.online = True
    return True
