"""The protocol engine on the gateway's UDP socket (SPEC.md): handshakes, opening and
de-duplicating frames, acknowledgements, and the gateway's own confirmable requests with
retransmission. It knows frames and sessions; what a report means is the owner's business
(service.Gateway, through the Owner methods below).

Every frame that fails to parse, authenticate or pass the replay window is dropped and
counted by reason; each cause is logged once per node, not once per frame.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from kithnet.protocol import errors, frame, messages, retransmit, session
from kithnet.protocol.errors import ProtocolError

from .devices import Device

log = logging.getLogger("kithnet.sessions")
M = messages

_CONFIRM_WAIT_S = 60.0  # a challenge not confirmed by then is forgotten
_BATCH = 512  # datagrams handled per wake-up of the socket
_ANSWERS = frozenset(  # answer our requests
    (M.RESULT, M.CONFIG, M.PONG, M.ACK, M.ERROR, M.TIME, M.OTA_STATUS)
)
_REF = M.REF
_PLAIN_ERROR_GAP_S = 1.0  # unauthenticated error replies: at most one per second per address


class Owner(Protocol):
    def device_of(self, node_id: bytes) -> Device | None: ...
    def on_hello(self, dev: Device, body: dict, addr: tuple) -> None: ...
    def on_unknown(self, body: dict, addr: tuple) -> None: ...
    def on_session(self, dev: Device, addr: tuple) -> None: ...
    def on_batch(self) -> None: ...
    def on_message(
        self, dev: Device, mtype: int, body: dict, addr: tuple, ack: Callable[[], None] | None
    ) -> None: ...


class Request:
    __slots__ = ("dev", "fut")

    def __init__(self, dev: Device, fut: asyncio.Future) -> None:
        self.dev = dev
        self.fut = fut


class Sessions:
    def __init__(self, owner: Owner) -> None:
        self.owner = owner
        self.sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.by_sid: dict[int, tuple[session.Session, Device, float]] = {}
        self.requests: dict[tuple[int, int], Request] = {}  # (sid, seq) -> waiting request
        self.pending = retransmit.Pending(1 << 30)
        self.dropped: dict[str, int] = {}
        self.counts = {"received": 0, "hellos": 0, "handshakes": 0, "sent": 0, "resent": 0,
                       "send_failed": 0}  # fmt: skip
        self._logged: set[tuple[bytes, str]] = set()
        self._plain_at: dict[tuple, float] = {}
        self._challenges: deque[tuple[float, int]] = deque()  # (made at, sid), oldest first
        self.paused = False

    # -- the socket ------------------------------------------------------------------

    def attach(self, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        """Serve a bound non-blocking UDP socket. Reading is batched: at each wake-up,
        every datagram waiting (up to _BATCH) is handled, then the owner's on_batch()
        hands the batch's rows to the store at once (asyncio's DatagramProtocol reads one
        datagram per wake-up, several times slower; performance-facts.md)."""
        self.sock = sock
        self._loop = loop
        loop.add_reader(sock.fileno(), self._readable)

    def detach(self) -> None:
        if self.sock is not None and self._loop is not None:
            if not self.paused:
                self._loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None

    def pause(self, paused: bool) -> None:
        """Stop reading (the store is behind): the kernel's buffer holds or drops."""
        if self.sock is None or self._loop is None or paused == self.paused:
            return
        self.paused = paused
        if paused:
            self._loop.remove_reader(self.sock.fileno())
        else:
            self._loop.add_reader(self.sock.fileno(), self._readable)

    def _readable(self) -> None:
        recv = self.sock.recvfrom
        handle = self.datagram_received
        for _ in range(_BATCH):
            try:
                data, addr = recv(2048)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:  # e.g. ICMP port unreachable reported on the socket
                self._drop("socket", None, str(e))
                continue
            handle(data, addr)
        self.owner.on_batch()

    def send(self, data: bytes, addr: tuple | None) -> None:
        if addr is None or self.sock is None:
            return
        try:
            self.sock.sendto(data, addr)
            self.counts["sent"] += 1
        except OSError:  # full send buffer or no route: a lost datagram, retransmission covers
            self.counts["send_failed"] += 1

    def _drop(self, why: str, node: bytes | None, detail: str) -> None:
        self.dropped[why] = self.dropped.get(why, 0) + 1
        key = (node or b"", why)
        if key not in self._logged and len(self._logged) < 100000:
            self._logged.add(key)
            who = f"node {node.hex()}" if node else "an unknown sender"
            log.warning(
                "dropped a frame from %s: %s (%s); further ones are only counted", who, why, detail
            )

    def _plain_error(self, addr: tuple, code: int, ref: int | None = None) -> None:
        now = time.monotonic()
        if now - self._plain_at.get(addr, -10.0) < _PLAIN_ERROR_GAP_S:
            return
        if len(self._plain_at) > 100000:
            self._plain_at.clear()
        self._plain_at[addr] = now
        body = {M.CODE: code} if ref is None else {M.CODE: code, M.REF: ref}
        self.send(frame.plain(M.encode(M.ERROR, body), True), addr)

    # -- receiving -------------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.counts["received"] += 1
        try:
            p = frame.parse(data)
        except ProtocolError as e:
            self._drop(errors.name(e.code), None, e.why)
            return
        if p[0] == frame.SESSION:
            self._sealed(data, p, addr)
        elif p[0] == frame.PLAIN:
            self._plain(data, p, addr)
        else:
            self._drop("unexpected", None, "a broadcast frame on the UDP port")

    def _plain(self, data: bytes, p: tuple, addr: tuple) -> None:
        msg = data[p[5] :]
        try:
            mtype, body = M.decode(msg)
        except ProtocolError as e:
            self._drop(errors.name(e.code), None, e.why)
            return
        if mtype != M.HELLO:
            return  # nothing else travels in plain toward a gateway
        self.counts["hellos"] += 1
        node_id = body[M.H_NODE]
        dev = self.owner.device_of(node_id)
        if dev is None:
            self.owner.on_unknown(body, addr)
            self._plain_error(addr, errors.UNKNOWN_NODE)
            return
        dev.unconfirmed += 1  # hellos since its last confirm: a wrong key if it keeps growing
        if dev.unconfirmed == 6:
            log.warning(
                "node %s (%s) keeps saying hello and never confirms: it probably holds a "
                "different key than the gateway's registry (re-provision it, or adopt it "
                "again with its key)", dev.hex, dev.name)  # fmt: skip
        if dev.hello is not None and dev.hello[0] == msg and dev.hello[1] in self.by_sid:
            self.send(dev.hello[2], addr)  # the same hello again: the same challenge (6.3.3)
            return
        self.owner.on_hello(dev, body, addr)
        sid = random.randrange(1, 0x10000)
        while sid in self.by_sid:
            sid = random.randrange(1, 0x10000)
        try:
            reply, s = session.challenge(dev.key, msg, body, sid, os.urandom(8), int(time.time()))
        except ProtocolError as e:
            self._drop(errors.name(e.code), node_id, e.why)
            return
        if dev.hello is not None:  # a new hello replaces the challenge still unconfirmed
            old = self.by_sid.get(dev.hello[1])
            if old is not None and old[0] is not dev.session:
                del self.by_sid[dev.hello[1]]
        now = time.monotonic()
        self.by_sid[sid] = (s, dev, now)
        dev.hello = (msg, sid, reply)
        self._challenges.append((now, sid))
        self.send(reply, addr)

    def _forget_stale(self) -> None:
        """Challenges never confirmed within _CONFIRM_WAIT_S are forgotten."""
        end = time.monotonic() - _CONFIRM_WAIT_S
        q = self._challenges
        while q and q[0][0] < end:
            _, sid = q.popleft()
            entry = self.by_sid.get(sid)
            if entry is not None and entry[0] is not entry[1].session and entry[2] < end:
                del self.by_sid[sid]

    def _sealed(self, data: bytes, p: tuple, addr: tuple) -> None:
        entry = self.by_sid.get(p[3])
        if entry is None:
            # A node of a session this gateway no longer has (it restarted): tell it, so
            # it runs a handshake now instead of after its retransmissions give up.
            self._drop("no-session", None, f"unknown session id {p[3]}")
            self._plain_error(addr, errors.NO_SESSION, p[4])
            return
        s, dev, _ = entry
        try:
            seq, con, mtype, body, new = s.open(data, p)
        except ProtocolError as e:
            self._drop(errors.name(e.code), dev.node_id, e.why)
            if getattr(e, "seq", None) is not None and e.con:
                _, ans = s.seal(M.ERROR, {M.CODE: e.code, M.REF: e.seq})
                self.send(ans, addr)
            return
        if not new:  # a retransmission: the same answer again, never applied twice
            self.dropped["duplicate"] = self.dropped.get("duplicate", 0) + 1  # normal: not logged
            if con:
                ans = s.answer_for(seq)
                if ans is None:  # not answered yet (its batch is being written): wait
                    return
                self.send(ans, addr)
            return
        if mtype == M.CONFIRM:
            if dev.session is not None and dev.session is not s:
                old = dev.session
                self.by_sid.pop(old.sid, None)
            dev.session = s
            dev.hello = None
            dev.unconfirmed = 0
            self.counts["handshakes"] += 1
            self._ack(s, seq, addr)
            self.owner.on_session(dev, addr)
            return
        if s is not dev.session:
            self._drop("stale-session", dev.node_id, "a frame of a replaced session")
            return
        if mtype in _ANSWERS and _REF in body:
            self._answered(s, body[M.REF], mtype, body)
            if mtype != M.TIME or not con:
                return
        ack = (lambda: self._ack(s, seq, addr)) if con else None
        self.owner.on_message(dev, mtype, body, addr, ack)

    def _ack(self, s: session.Session, seq: int, addr: tuple) -> None:
        _, data = s.seal(M.ACK, {M.REF: seq})
        s.remember(seq, data)
        self.send(data, addr)

    # -- the gateway's requests --------------------------------------------------------

    async def request(self, dev: Device, mtype: int, body: dict, timeout: float) -> tuple:
        """Send a confirmable request in the node's session; (type, body) of its answer.

        Retransmitted per SPEC (2-3 s, doubling); TimeoutError when unanswered, or when
        the session ends first (ConnectionError)."""
        s = dev.session
        if s is None:
            raise ConnectionError("no session")
        seq, data = s.seal(mtype, body, True)
        fut = asyncio.get_running_loop().create_future()
        key = (s.sid, seq)
        self.requests[key] = Request(dev, fut)
        self.pending.add(key, data, _ms(), random.getrandbits(16))
        self.send(data, dev.addr)
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            self.requests.pop(key, None)
            self.pending.done(key)

    def _answered(self, s: session.Session, ref: int, mtype: int, body: dict) -> None:
        r = self.requests.get((s.sid, ref))
        if r is not None and not r.fut.done():
            r.fut.set_result((mtype, body))

    def tick(self) -> None:
        """Retransmit what is due; fail requests given up; forget stale challenges."""
        self._forget_stale()
        resend, lost = self.pending.due(_ms())
        for data in resend:
            sid = int.from_bytes(data[1:3], "big")
            entry = self.by_sid.get(sid)
            if entry is not None:
                self.counts["resent"] += 1
                self.send(data, entry[1].addr)
        for key in lost:
            r = self.requests.get(key)
            if r is not None and not r.fut.done():
                r.fut.set_exception(TimeoutError("the node did not answer"))

    def end(self, dev: Device) -> None:
        """Forget the node's sessions (forgotten or re-keyed node)."""
        for sid, (_, d, _) in list(self.by_sid.items()):
            if d is dev:
                del self.by_sid[sid]
        dev.session = None
        dev.hello = None
        for r in list(self.requests.values()):
            if r.dev is dev and not r.fut.done():
                r.fut.set_exception(ConnectionError("the node's session ended"))

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {f"frames_{k}": v for k, v in self.counts.items()}
        for k, v in self.dropped.items():
            out[f"dropped_{k.replace('-', '_')}"] = v
        out["sessions"] = len(self.by_sid)
        return out


def _ms() -> int:
    return int(time.monotonic() * 1000)
