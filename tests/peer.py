"""A CPython peer built on protocol/: the gateway's side of the wire, for node tests.

It answers hellos of the nodes whose keys it holds, acknowledges confirmable messages,
records every report and event, and sends commands (retransmitted until the result comes
back). It also records each sealed frame's (sender, key, sequence number) so tests can
prove that no nonce is ever used twice. The real gateway (issue 4) replaces it in the
end-to-end tests; this one stays small on purpose.
"""

from __future__ import annotations

import os
import random
import socket
import threading
import time
from dataclasses import dataclass, field

from kithnet.protocol import errors, frame, messages, retransmit, session


@dataclass
class Seen:
    node_id: bytes
    body: dict
    seq: int
    con: bool
    at: float = field(default_factory=time.monotonic)


class Peer:
    def __init__(self, keys: dict[bytes, bytes], host: str = "127.0.0.1") -> None:
        self.keys = dict(keys)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.addr = (host, self.port)
        self.sessions: dict[int, session.Session] = {}
        self.by_node: dict[bytes, session.Session] = {}
        self.where: dict[bytes, tuple] = {}
        self.hellos: list[dict] = []
        self.reports: list[Seen] = []
        self.events: list[Seen] = []
        self.results: dict[int, dict] = {}
        self.nonces: list[tuple] = []  # (node id, direction key, seq) of every sealed frame
        self.dropped: list[str] = []
        self.answer = True  # False: play a gateway that has gone away
        self._pending = retransmit.Pending(64)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    # -- driving ---------------------------------------------------------------------

    def command(self, node_id: bytes, body: dict, timeout: float = 20) -> dict:
        """Send a confirmable command; wait for the node's result."""
        return self.ask(node_id, messages.COMMAND, body, timeout)

    def ask(self, node_id: bytes, mtype: int, body: dict, timeout: float = 20) -> dict:
        """Send a confirmable request (retransmitted); wait for the answer's body."""
        with self._lock:
            s = self.by_node[node_id]
            seq, data = s.seal(mtype, body, confirmable=True)
            self._pending.add(seq, data, self._now(), random.getrandbits(16))
            self.sock.sendto(data, self.where[node_id])
        key = (node_id, seq)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if key in self.results:
                return self.results.pop(key)
            time.sleep(0.02)
        raise TimeoutError(f"no answer for {messages.NAMES[mtype]} {seq}")

    def wait(self, what, timeout: float = 30):
        """Poll a condition (a callable) until it is true; returns its value."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            v = what()
            if v:
                return v
            time.sleep(0.05)
        raise TimeoutError("condition not met")

    def forget_sessions(self) -> None:
        """Act like a gateway that restarted: every session is gone."""
        with self._lock:
            self.sessions.clear()
            self.by_node.clear()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    # -- the wire --------------------------------------------------------------------

    @staticmethod
    def _now() -> int:
        return int(time.monotonic() * 1000)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                resend, _ = self._pending.due(self._now())
                for data in resend:
                    for nid, s in self.by_node.items():
                        if data[1:3] == s.sid.to_bytes(2, "big"):
                            self.sock.sendto(data, self.where[nid])
            try:
                data, src = self.sock.recvfrom(2048)
            except (TimeoutError, OSError):
                continue
            if not self.answer:
                continue
            with self._lock:
                try:
                    self._handle(data, src)
                except errors.ProtocolError as e:
                    self.dropped.append(str(e))

    def _handle(self, data: bytes, src: tuple) -> None:
        p = frame.parse(data)
        if p[0] == frame.PLAIN:
            msg = data[p[5] :]
            mtype, body = messages.decode(msg)
            if mtype != messages.HELLO:
                return
            nid = body[messages.H_NODE]
            key = self.keys.get(nid)
            if key is None:
                err = {messages.CODE: errors.UNKNOWN_NODE}
                self.sock.sendto(frame.plain(messages.encode(messages.ERROR, err), True), src)
                return
            self.hellos.append(body)
            sid = random.randrange(1, 0xFFFF)
            while sid in self.sessions:
                sid = random.randrange(1, 0xFFFF)
            reply, s = session.challenge(key, msg, body, sid, os.urandom(8), int(time.time()))
            self.sessions[sid] = s
            self.sock.sendto(reply, src)
            return
        kid = p[3]
        s = self.sessions.get(kid)
        if s is None:
            err = {messages.CODE: errors.NO_SESSION, messages.REF: p[4]}
            self.sock.sendto(frame.plain(messages.encode(messages.ERROR, err), True), src)
            return
        seq, con, mtype, body, new = s.open(data, p)
        self.nonces.append((s.node_id, s.recv_key, seq))
        if mtype == messages.CONFIRM:
            old = self.by_node.get(s.node_id)
            if old is not None and old is not s:
                self.sessions.pop(old.sid, None)
            self.by_node[s.node_id] = s
        self.where[s.node_id] = src
        if con:
            ans = s.answer_for(seq)
            if ans is None:
                _, ans = s.seal(messages.ACK, {messages.REF: seq})
                s.remember(seq, ans)
            self.sock.sendto(ans, src)
        if not new:
            return
        if mtype == messages.REPORT:
            self.reports.append(Seen(s.node_id, body, seq, con))
        elif mtype == messages.EVENT:
            self.events.append(Seen(s.node_id, body, seq, con))
        elif messages.REF in body and mtype in (
            messages.RESULT,
            messages.CONFIG,
            messages.PONG,
            messages.ERROR,
        ):
            self._pending.done(body[messages.REF])
            self.results[(s.node_id, body[messages.REF])] = body
