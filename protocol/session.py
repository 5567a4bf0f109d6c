# A security context between one node and the gateway, and the handshake that makes it.
# MicroPython and CPython; both sides use this same code.
#
#   node                                   gateway
#   hello (plain: id, nonce_n, caps) ---->
#                                    <---- challenge (plain: nonce_g, sid, proof)
#   confirm (sealed, seq 0, CON)     ---->  session established when it opens
#                                    <---- ack (sealed)
#
# Keys come from keys.session_keys; the proof shows the gateway holds the node key, the
# confirm shows the node does. A replayed hello gets a fresh challenge nobody can answer.

from . import frame, messages
from .errors import AUTH, MALFORMED, NO_SESSION, ProtocolError
from .replay import ReplayWindow

PROTOCOL_VERSION = 1
_CACHE = 8


class Session:
    def __init__(self, node_id, sid, send_key, recv_key, is_gateway, send_seq=0):
        self.node_id = bytes(node_id)
        self.sid = sid
        self.send_key = send_key
        self.recv_key = recv_key
        self.is_gateway = is_gateway
        self.send_seq = send_seq
        self.window = ReplayWindow()
        self._answers = {}
        self._order = []

    def seal(self, mtype, body, confirmable=False):
        """(seq, frame) for a message; seq is also its message id for acks."""
        seq = self.send_seq
        if seq > frame.MAX_SEQ:
            raise ProtocolError(NO_SESSION, "sequence space used up: handshake again")
        self.send_seq = seq + 1
        data = frame.seal(
            frame.SESSION,
            self.send_key,
            self.node_id,
            self.sid,
            seq,
            messages.encode(mtype, body),
            self.is_gateway,
            confirmable,
        )
        return seq, data

    def open(self, data, parsed=None):
        """(seq, confirmable, type, body, new) of a frame from the peer.

        new is False for a duplicate inside the replay window: answer it again (see
        answer_for), do not apply it. Raises ProtocolError for anything not authentic.
        """
        if parsed is None:
            parsed = frame.parse(data)
        kind, from_gw, con, kid, seq, _ = parsed
        if kind != frame.SESSION:
            raise ProtocolError(MALFORMED, "not a session frame")
        if kid != self.sid:
            raise ProtocolError(NO_SESSION, "session id %d is not this session's" % kid)
        if from_gw == self.is_gateway:
            raise ProtocolError(AUTH, "frame comes from this side's own direction")
        self.window.check(seq)  # cheap rejection of old frames before decrypting
        msg = frame.open_sealed(data, parsed, self.recv_key, self.node_id)
        new = self.window.accept(seq)
        try:
            mtype, body = messages.decode(msg)
        except ProtocolError as e:
            e.seq = seq  # authentic but not understood: the caller answers ERROR with REF
            e.con = con
            raise e
        return seq, con, mtype, body, new

    def remember(self, ref, data):
        """Keep the frame that answered request `ref`, to send again for a duplicate."""
        if ref not in self._answers:
            self._order.append(ref)
            if len(self._order) > _CACHE:
                self._answers.pop(self._order.pop(0), None)
        self._answers[ref] = data

    def answer_for(self, ref):
        return self._answers.get(ref)


_KEYS = __name__[: __name__.rfind(".") + 1] + "keys"  # "protocol.keys" on a node


def _keys():
    """The handshake's crypto, imported when a handshake runs (a node drops it after).

    By absolute name: MicroPython's native emitter cannot resolve a relative import made
    inside a function.
    """
    return __import__(_KEYS, None, None, ["challenge"])


def hello_frame(body):
    """(message bytes, frame) of a hello; the gateway hashes the message bytes into the keys."""
    msg = messages.encode(messages.HELLO, body)
    return msg, frame.plain(msg)


def challenge(node_key, hello_msg, hello_body, sid, gw_nonce, unix_time=None):
    """Gateway side: (challenge frame, Session) answering a hello, pending its confirm."""
    return _keys().challenge(node_key, hello_msg, hello_body, sid, gw_nonce, unix_time)


def answer(node_key, hello_msg, hello_body, chal_body):
    """Node side: the Session a challenge opens, after checking the gateway's proof."""
    return _keys().answer(node_key, hello_msg, hello_body, chal_body)


def seal_broadcast(bkey, node_id, seq, mtype, body):
    """A broadcast frame (BLE advertisement, announcement) under the broadcast key."""
    kid = (node_id[0] << 8) | node_id[1]
    return frame.seal(frame.BROADCAST, bkey, node_id, kid, seq, messages.encode(mtype, body))


def open_broadcast(data, parsed, bkey, node_id, window):
    """(seq, type, body, new) of a broadcast frame; window is the sender's ReplayWindow."""
    kind, from_gw, _, kid, seq, _ = parsed
    if kind != frame.BROADCAST or from_gw:
        raise ProtocolError(MALFORMED, "not a node broadcast frame")
    if kid != (node_id[0] << 8) | node_id[1]:
        raise ProtocolError(NO_SESSION, "broadcast id does not match the node")
    window.check(seq)
    msg = frame.open_sealed(data, parsed, bkey, node_id)
    new = window.accept(seq)
    mtype, body = messages.decode(msg)
    return seq, mtype, body, new
