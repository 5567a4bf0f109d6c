# The node's link to the gateway: handshake, session, confirmable messages, buffering.
#
# States: no gateway address yet -> hello sent (retransmitted, then backed off with jitter)
# -> session (confirm sent) -> online (confirm acknowledged). Reports made while not online
# wait in a bounded buffer (oldest dropped first, counted) and go out with their AGE once
# online again. A confirmable message that is given up, or a NO_SESSION hint from the
# gateway, ends the session; the handshake starts over. Every frame that fails to parse,
# authenticate or pass the replay window is dropped and counted by reason, never raised.

import os
import time

from protocol import cbor, errors, frame, retransmit
from protocol import messages as M
from protocol.errors import ProtocolError

BUFFER = 16  # reports kept while the gateway is away
MAX_BACKOFF_MS = 300000


def _handshake():
    """The handshake's code, loaded while one runs (handshake.py drops it again)."""
    return __import__("node.handshake", None, None, ["send_hello"])


def _rand16():
    b = os.urandom(2)
    return (b[0] << 8) | b[1]


class Link:
    def __init__(self, node):
        self.node = node
        cfg = node.cfg
        self.node_id = cfg["node_id"]
        self.key = cfg["key"]
        self.sleepy = bool(cfg["sleep"].get("enabled"))
        # What a sleepy node keeps in RTC memory over deep sleep (rtc.py; others never load it).
        self.rtc = __import__("node.rtc", None, None, ["save"]) if self.sleepy else None
        self.sock = None
        self.gw = None  # the gateway's socket address
        self.sess = None
        self.online = False
        self.hello = None  # (message bytes, body, frame, sends, first sent at)
        self.next_hello = time.ticks_ms()
        self.backoff = 2000
        self.pending = retransmit.Pending(8, time.ticks_diff)
        self.kinds = {}  # seq of a pending CON message -> (type, body)
        self.confirm_seq = -1
        self.buf = []  # [(ticks made, type, body as CBOR)]
        self.lost = 0
        self.dropped = {}
        self.seq_mark = 0
        self.clock = None  # (unix seconds, ticks) from the gateway

    # -- sending -------------------------------------------------------------------

    def _out(self, data):
        try:
            self.sock.sendto(data, self.gw)
        except OSError as e:  # ENOBUFS under memory pressure, or no route: a lost datagram
            self.node.log("send failed: %s" % e)

    def _seal(self, mtype, body, con=False):
        s = self.sess
        if self.sleepy and s.send_seq >= self.seq_mark:
            self.seq_mark = s.send_seq + 16
            self.rtc.save(self)  # write-ahead: a reboot resumes past every number used
        return s.seal(mtype, body, con)

    def send(self, mtype, body, con=False, made=None):
        """Seal and send in the session; a CON message is kept until answered. Returns seq."""
        seq, data = self._seal(mtype, body, con)
        self._out(data)
        if con:
            now = time.ticks_ms()
            if self.pending.add(seq, data, now, _rand16()):
                self.kinds[seq] = (mtype, body, made if made is not None else now)
        return seq

    def post(self, mtype, body, con):
        """A report or event: sent now when online and nothing older waits, else buffered
        with its time (a new reading must not overtake a buffered one: the gateway applies
        the newer, and the older arrives late, kept in history but never published)."""
        if self.online and not self.buf and (not con or len(self.pending.items) < 4):
            self.send(mtype, body, con)
        else:
            self._keep(time.ticks_ms(), mtype, body)

    def _keep(self, t, mtype, body):
        # Kept as CBOR: 30-odd bytes instead of a dict's few hundred, 16 times over.
        if len(self.buf) >= BUFFER:
            self.buf.pop(0)
            self.lost += 1
        self.buf.append((t, mtype, cbor.dumps(body)))

    def _flush(self, now):
        while self.buf and len(self.pending.items) < 4:
            t, mtype, data = self.buf.pop(0)
            body = cbor.loads(data)
            age = time.ticks_diff(now, t) // 1000
            if age > 0:
                body[M.AGE] = age
            self.send(mtype, body, True, t)

    # -- handshake -------------------------------------------------------------------

    def _send_hello(self, now):
        _handshake().send_hello(self, now)

    def restart(self, why, delay=None):
        """End the session; try again after the back-off (with jitter)."""
        if self.sess is not None or self.online:
            self.node.log("link down: %s" % why)
        self.sess = None
        self.online = False
        for seq in list(self.pending.items):
            self._given_up(seq)
        self.hello = None
        if delay is None:
            delay = self.backoff
            self.backoff = min(self.backoff * 2, MAX_BACKOFF_MS)
        self.next_hello = time.ticks_add(time.ticks_ms(), delay + delay * _rand16() // 131072)

    def _given_up(self, seq):
        self.pending.done(seq)
        kind = self.kinds.pop(seq, None)
        if kind is not None and kind[0] in (M.REPORT, M.EVENT):
            kind[1].pop(M.AGE, None)
            self._keep(kind[2], kind[0], kind[1])  # not lost: sent again later, with its age

    # -- the clock -------------------------------------------------------------------

    def tick(self, now):
        if self.gw is None:
            return
        if self.sess is None:
            h = self.hello
            if h is None:
                if time.ticks_diff(now, self.next_hello) >= 0:
                    self._send_hello(now)
            else:
                sched = retransmit.schedule_ms(0)
                if h[3] > retransmit.MAX_RETRANSMIT:
                    if time.ticks_diff(now, h[4]) >= sched[-1]:
                        self.restart("no challenge")
                elif time.ticks_diff(now, h[4]) >= sched[h[3] - 1]:
                    self._send_hello(now)
            return
        resend, lost = self.pending.due(now)
        for data in resend:
            self._out(data)
        if lost:
            for seq in lost:
                self._given_up(seq)
            self.restart("no answer from the gateway")
            return
        if self.online and self.buf:
            self._flush(now)

    # -- receiving -------------------------------------------------------------------

    def drop(self, e):
        self.dropped[e.code] = self.dropped.get(e.code, 0) + 1

    def handle(self, data, src):
        try:
            p = frame.parse(data)
            if p[0] == frame.PLAIN:
                mtype, body = M.decode(data[p[5] :])
                self._plain(mtype, body)
                return
            if self.sess is None:
                raise ProtocolError(errors.NO_SESSION, "no session yet")
            seq, con, mtype, body, new = self.sess.open(data, p)
        except ProtocolError as e:
            self.drop(e)
            return
        if not new:  # a retransmission: answer again, never apply twice
            if con:
                ans = self.sess.answer_for(seq)
                if ans is not None:
                    self._out(ans)
                else:
                    self.send(M.ACK, {M.REF: seq})
            return
        if self.sleepy:
            self.rtc.save(self)
        self._session(seq, con, mtype, body)

    def _plain(self, mtype, body):
        if mtype == M.CHALLENGE:
            if self.hello is not None and self.sess is None:
                _handshake().on_challenge(self, body)
        elif mtype == M.ERROR:
            code = body[M.CODE]
            self.node.log("gateway says %s" % errors.name(code))
            if code == errors.NO_SESSION and self.sess is not None:
                self.restart("gateway lost the session", 500)
            elif self.sess is None and self.hello is not None:
                self.restart("hello refused")

    def _session(self, seq, con, mtype, body):
        if mtype == M.ACK:
            ref = body[M.REF]
            self.kinds.pop(ref, None)
            self.pending.done(ref)
            if ref == self.confirm_seq and not self.online:
                self.online = True
                self.backoff = 2000
                self.node.log("online: session %d" % self.sess.sid)
                self.node.online()
            return
        if mtype == M.ERROR:
            ref = body.get(M.REF)
            if ref is not None:
                self.kinds.pop(ref, None)
                self.pending.done(ref)
            self.node.log("gateway error %s" % errors.name(body[M.CODE]))
            return
        if mtype == M.TIME and M.T_UNIX in body:
            self.clock = (body[M.T_UNIX], time.ticks_ms())
            ref = body.get(M.REF)
            if ref is not None:
                self.kinds.pop(ref, None)
                self.pending.done(ref)
            return
        answer = self.node.answer(mtype, body)
        if answer is None:
            if con:
                self.send(M.ACK, {M.REF: seq})
            return
        atype, abody = answer
        abody[M.REF] = seq
        _, data = self._seal(atype, abody)
        self.sess.remember(seq, data)
        self._out(data)
