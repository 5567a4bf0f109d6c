"""A fleet of emulated nodes in one CPython process: load for a gateway, and its benchmark.

    .venv/bin/python -m kithnet.tools.fleet keys --nodes 10000 --out keys.jsonl [--seed 1]
    .venv/bin/python -m kithnet.tools.fleet run --gateway 127.0.0.1:47800 --keys keys.jsonl \
        [--rate 5000] [--seconds 10] [--con]

Every node is real on the wire: it runs the node side of the handshake (session.hello_frame,
session.answer, a sealed confirm retransmitted until its ACK) with its own 8-byte id and
16-byte key, then sends REPORT messages sealed under its own session key with its own
increasing sequence numbers. Nothing is replayed: each datagram is a distinct sealed frame
that a gateway must open, check against the replay window and apply.

Why it scales to 10,000+ nodes in one process:

- Few sockets. Nodes share a small pool of UDP sockets, each connected to the gateway: a
  gateway finds a hello's node by the node id inside it and a sealed frame's session by
  its kid (the session id it assigned), never by the source address, so many nodes can
  share one. Answers come back on the socket the frame left from and are sorted by kid.
- Paced handshakes. At most `handshakes` are in flight; hellos and confirms are
  retransmitted on SPEC 8.3's schedule; a given-up hello backs off (doubling from 2 s up
  to 5 min, randomised) and starts again with a new nonce (SPEC 6.2).
- Cheap sealing. A report's message bytes are encoded once per value set (a table the
  nodes cycle through) and sealed per frame with frame.seal's arithmetic inlined on a
  per-node AESCCM object: the same bytes Session.seal makes (tests check), 1.4 us instead
  of 9 us, which re-encodes the body and rebuilds the AEAD's inputs every time.

Reports are NON by default (periodic measurements, SPEC 8.2); with confirmable=True each
node keeps at most 8 in flight, retransmits them and, when one is given up, assumes its
session is gone and runs the handshake again (SPEC 8.5). Confirmable requests from the
gateway (ping, command, config, OTA) are answered, so a fleet can also stand in for nodes
in functional tests. Plain errors carry no node id and arrive on a shared socket, so they
are only counted (a plain error is a hint, SPEC 6.4).
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import random
import select
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESCCM
from kithnet.protocol import errors, frame, messages, model, ota, retransmit, session
from kithnet.protocol.errors import ProtocolError

M = messages

SENSOR = "sensor"
PLUG = "plug"
CAPS: dict[str, dict[int, int]] = {
    SENSOR: {1: model.TEMPERATURE, 2: model.HUMIDITY},
    PLUG: {1: model.SWITCH, 2: model.POWER, 3: model.VOLTAGE, 4: model.CURRENT, 5: model.ENERGY},
}
MODELS = {SENSOR: "kithnet-sensor", PLUG: "kithnet-plug"}  # as the firmware types name them
FIRMWARE = "fleet-1"  # tells an emulated node from a real one
DUE_S = 600  # long: a benchmark's idle pauses must not mark nodes unavailable
VARIANTS = 64  # encoded report messages per node type; a node picks one by sequence number

_WAIT, _HELLO, _CONFIRM, _ONLINE = range(4)
_BACKOFF_MIN_MS = 2000
_BACKOFF_MAX_MS = 300_000
_TICK_S = 0.005  # how often the send loop reads answers and runs timers
_RECV = 2048
_CAPABILITIES = {t: model.capabilities(c) for t, c in CAPS.items()}


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """What provisioning gives a node: its id and key, and what the gateway calls it."""

    node_id: bytes
    key: bytes
    name: str
    type: str = SENSOR

    @property
    def hex(self) -> str:
        return self.node_id.hex()


def make_nodes(count: int, seed: int | None = None, plugs: float = 0.0) -> list[NodeSpec]:
    """count nodes with distinct ids (a random 4-byte fleet prefix + the 4-byte index).

    seed makes ids and keys reproducible (benchmarks); None draws them from os.urandom.
    plugs is the fraction of nodes that are plugs rather than sensors.
    """
    rng = random.Random(seed) if seed is not None else None

    def draw(n: int) -> bytes:
        return rng.randbytes(n) if rng is not None else os.urandom(n)

    prefix = draw(4)
    width = max(5, len(str(count)))
    every = round(1 / plugs) if plugs > 0 else 0
    out = []
    for i in range(count):
        kind = PLUG if every and i % every == every - 1 else SENSOR
        out.append(
            NodeSpec(prefix + i.to_bytes(4, "big"), draw(16), f"fleet-{i + 1:0{width}d}", kind)
        )
    return out


def write_keys(path: str | Path, nodes: Iterable[NodeSpec]) -> None:
    """The JSON-lines keys file a gateway imports at start (`kithnet gateway --keys`)."""
    with open(path, "w", encoding="utf-8") as f:
        for n in nodes:
            line = {"id": n.node_id.hex(), "key": n.key.hex(), "name": n.name, "type": n.type}
            f.write(json.dumps(line) + "\n")


def read_keys(path: str | Path) -> list[NodeSpec]:
    """The nodes of a keys file written by write_keys (or by provisioning)."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                d = json.loads(line)
                nid, key = bytes.fromhex(d["id"]), bytes.fromhex(d["key"])
                out.append(NodeSpec(nid, key, d.get("name") or nid.hex(), d.get("type", SENSOR)))
    return out


def report_body(kind: str, i: int) -> dict[int, Any]:
    """The i-th of a node type's plausible report bodies (readings drift with i)."""
    if kind == PLUG:
        watts = 100 + (i * 37) % 2400
        return {1: True, 2: watts * 10, 3: 2300 + i % 40, 4: watts * 1000 // 230,
                5: 1000 + i, M.DUE: DUE_S}  # fmt: skip
    return {1: 2000 + (i * 7) % 500, 2: 4000 + (i * 13) % 2000, M.DUE: DUE_S}


def seal_report(sess: session.Session, aead: AESCCM, msg: bytes, con: bool = False) -> bytes:
    """frame.seal for a node's session frame, on a kept AESCCM: the same bytes, faster.

    Takes the session's next sequence number, so it interleaves with Session.seal.
    """
    seq = sess.send_seq
    if seq > frame.MAX_SEQ:
        raise ProtocolError(errors.NO_SESSION, "sequence space used up: handshake again")
    sess.send_seq = seq + 1
    n = 1 if seq < 0x100 else 2 if seq < 0x10000 else 3 if seq < 0x1000000 else 4
    hdr = 0x50 | (n - 1) | (frame.F_CON if con else 0)
    aad = bytes((hdr, sess.sid >> 8, sess.sid & 0xFF)) + seq.to_bytes(n, "big")
    nonce = b"\x02" + sess.node_id + seq.to_bytes(4, "big")
    return aad + aead.encrypt(nonce, msg, aad)


class _Node:
    """One emulated node's state; plain attributes so 10,000 of them stay small."""

    __slots__ = (
        "aead",
        "backoff_ms",
        "confirm",
        "deadline",
        "hello_body",
        "hello_frame",
        "hello_msg",
        "index",
        "msgs",
        "nonce",
        "pending",
        "session",
        "sock",
        "spec",
        "state",
        "timeout",
        "tries",
    )

    def __init__(self, spec: NodeSpec, index: int, sock: socket.socket, msgs: list[bytes]):
        self.spec = spec
        self.index = index
        self.sock = sock
        self.msgs = msgs
        self.state = _WAIT
        self.session: session.Session | None = None
        self.aead: AESCCM | None = None
        self.nonce = b"\x02" + spec.node_id
        self.hello_body: dict = {}
        self.hello_msg = b""
        self.hello_frame = b""
        self.confirm = b""
        self.deadline = 0
        self.timeout = 0
        self.tries = 0
        self.backoff_ms = 0
        self.pending: retransmit.Pending | None = None


def _ms() -> int:
    return int(time.monotonic() * 1000)


class Fleet:
    """N nodes against one gateway address, driven from the caller's thread.

    Nothing runs in the background: connect(), send() and poll() read answers and run
    timers while they are called. Use it from one thread at a time.

    sockets: UDP sockets shared by the nodes (default: one per 1,024 nodes, at most 16).
    handshakes: hellos and confirms in flight at once. 64 keeps a burst of hellos well
    inside a receiver's default socket buffer (212 KB holds about 270 small datagrams) and
    answered before the 2 s retransmission; more only queues at a gateway.
    seed: the retransmission jitter (never the nonces, which come from os.urandom).
    """

    def __init__(
        self,
        nodes: list[NodeSpec],
        gateway: tuple[str, int],
        *,
        sockets: int | None = None,
        handshakes: int = 64,
        rcvbuf: int = 4 << 20,
        seed: int | None = None,
    ) -> None:
        self.gateway = (gateway[0], int(gateway[1]))
        self.handshakes = handshakes
        self.rng = random.Random(seed)
        family = socket.AF_INET6 if ":" in self.gateway[0] else socket.AF_INET
        count = sockets or max(1, min(16, (len(nodes) + 1023) // 1024))
        self.socks: list[socket.socket] = []
        for _ in range(count):
            s = socket.socket(family, socket.SOCK_DGRAM)
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, rcvbuf)
            except OSError:
                pass
            s.connect(self.gateway)
            s.setblocking(False)
            self.socks.append(s)
        tables = {t: [M.encode(M.REPORT, report_body(t, i)) for i in range(VARIANTS)] for t in CAPS}
        self.nodes = [
            _Node(spec, i, self.socks[i % count], tables[spec.type]) for i, spec in enumerate(nodes)
        ]
        if len({n.node_id for n in nodes}) != len(nodes):
            raise ValueError("node ids must be distinct")
        self._by_id = {n.spec.node_id: n for n in self.nodes}
        self._by_sid: dict[int, _Node] = {}
        self._queue: deque[_Node] = deque(self.nodes)  # not started yet
        self._later: list[tuple[int, int]] = []  # (due ms, index): backing off
        self._inflight: dict[int, _Node] = {}  # index -> node in HELLO or CONFIRM
        self._con: set[_Node] = set()  # nodes with confirmable reports in flight
        self._live: list[_Node] = []
        self._live_dirty = True
        self._cursor = 0
        self.online = 0
        self.counts: dict[str, int] = {}

    # -- public ------------------------------------------------------------------------

    def connect(self, timeout: float = 120.0) -> int:
        """Run handshakes until every node is online or timeout passes; nodes online."""
        end = time.monotonic() + timeout
        while self.online < len(self.nodes) and time.monotonic() < end:
            self._service()
            self._wait(0.005)
        return self.online

    def send(
        self,
        rate: float | None = None,
        seconds: float | None = None,
        count: int | None = None,
        confirmable: bool = False,
        bodies: Callable[[int, NodeSpec], dict] | None = None,
    ) -> dict[str, Any]:
        """Send reports round-robin over the online nodes; a summary when done.

        rate is the aggregate target in reports per second (None: as fast as possible);
        stops after seconds or count, whichever comes first. bodies(k, node) makes the
        k-th report's body (encoded per report; the summary then lists (k, node index,
        seq, time.time() just before the send) under "sent_at"); otherwise the nodes'
        pre-encoded tables are used. Confirmable reports skip a node whose 8 slots are
        taken (counted as "window_full").
        """
        if seconds is None and count is None:
            raise ValueError("give seconds or count")
        sent = 0
        log: list[tuple[int, int, int, float]] = []
        skipped = errors_ = 0
        batch_max = 256
        perf = time.perf_counter
        t0 = perf()
        next_tick = t0 + _TICK_S
        while True:
            now = perf()
            el = now - t0
            if seconds is not None and el >= seconds:
                break
            if count is not None and sent >= count:
                break
            if now >= next_tick:
                self._service()
                next_tick = now + _TICK_S
            if self._live_dirty:
                self._live = [n for n in self.nodes if n.state == _ONLINE]
                self._live_dirty = False
            live = self._live
            if not live:
                self._wait(0.005)
                continue
            if rate:
                batch = int(el * rate) + 1 - sent
                if batch <= 0:
                    self._wait(min((sent + 1) / rate - el, _TICK_S))
                    continue
                batch = min(batch, batch_max)
            else:
                batch = batch_max
            if count is not None:
                batch = min(batch, count - sent)
            nlive = len(live)
            c = self._cursor % nlive
            tries = 0
            while batch > 0 and tries < nlive:
                node = live[c]
                c = c + 1 if c + 1 < nlive else 0
                s = node.session
                if node.state != _ONLINE or s is None:
                    tries += 1
                    continue
                seq = s.send_seq
                if bodies is not None:
                    msg = M.encode(M.REPORT, bodies(sent, node.spec))
                else:
                    msg = node.msgs[seq % VARIANTS]
                if confirmable:
                    p = node.pending
                    if p is None:
                        p = node.pending = retransmit.Pending(8)
                    if len(p.items) >= p.limit:
                        skipped += 1
                        tries += 1
                        continue
                try:
                    data = seal_report(s, node.aead, msg, confirmable)  # type: ignore[arg-type]
                except ProtocolError:  # sequence numbers used up: a new session
                    self._lose(node, _ms())
                    continue
                if confirmable:
                    node.pending.add(seq, data, _ms(), self.rng.getrandbits(16))  # type: ignore[union-attr]
                    self._con.add(node)
                if bodies is not None:
                    log.append((sent, node.index, seq, time.time()))
                try:
                    node.sock.send(data)
                except BlockingIOError:
                    errors_ += 1
                except ConnectionRefusedError:  # an ICMP error from an earlier datagram
                    errors_ += 1
                sent += 1
                batch -= 1
                tries = 0
            self._cursor = c
            if tries >= nlive:  # every node's window is full: wait for acks
                self._wait(0.002)
        elapsed = perf() - t0
        self._bump("reports_sent", sent)
        out: dict[str, Any] = {
            "sent": sent,
            "seconds": elapsed,
            "rate": sent / elapsed if elapsed > 0 else 0.0,
            "online": self.online,
            "window_full": skipped,
            "send_errors": errors_,
        }
        if bodies is not None:
            out["sent_at"] = log
        return out

    def poll(self, seconds: float) -> None:
        """Answer the gateway and run timers for a while (between send() calls)."""
        end = time.monotonic() + seconds
        while True:
            self._service()
            left = end - time.monotonic()
            if left <= 0:
                break
            self._wait(min(left, 0.02))

    def in_flight(self) -> int:
        """Confirmable reports sent and not yet acknowledged nor given up."""
        return sum(len(n.pending.items) for n in self._con if n.pending is not None)

    def stats(self) -> dict[str, Any]:
        return {
            "nodes": len(self.nodes),
            "online": self.online,
            "sockets": len(self.socks),
            **dict(sorted(self.counts.items())),
        }

    def close(self) -> None:
        for s in self.socks:
            s.close()

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- timers and handshakes -----------------------------------------------------------

    def _bump(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n

    def _send(self, node: _Node, data: bytes) -> None:
        try:
            node.sock.send(data)
        except (BlockingIOError, ConnectionRefusedError):
            self._bump("send_errors")

    def _service(self) -> None:
        self._drain(self.socks)
        self._timers(_ms())

    def _wait(self, seconds: float) -> None:
        """Sleep up to seconds, waking for (and reading) anything the gateway sends."""
        if seconds <= 0:
            return
        ready, _, _ = select.select(self.socks, [], [], seconds)
        if ready:
            self._drain(ready)

    def _timers(self, now: int) -> None:
        for node in list(self._inflight.values()):
            if now < node.deadline:
                continue
            if node.tries >= retransmit.MAX_RETRANSMIT:
                self._bump("hellos_given_up" if node.state == _HELLO else "confirms_given_up")
                self._give_up(node, now)
                continue
            node.tries += 1
            node.timeout = retransmit.next_timeout_ms(node.timeout)
            node.deadline = now + node.timeout
            if node.state == _HELLO:
                self._bump("hellos_resent")
                self._send(node, node.hello_frame)
            else:
                self._bump("confirms_resent")
                self._send(node, node.confirm)
        while len(self._inflight) < self.handshakes:
            if self._later and self._later[0][0] <= now:
                self._hello(self.nodes[heapq.heappop(self._later)[1]], now)
            elif self._queue:
                self._hello(self._queue.popleft(), now)
            else:
                break
        if self._con:
            for node in list(self._con):
                if node.pending is None:
                    self._con.discard(node)
                    continue
                resend, lost = node.pending.due(now)
                for data in resend:
                    self._bump("reports_resent")
                    self._send(node, data)
                if lost:
                    self._bump("reports_given_up", len(lost))
                    self._lose(node, now)
                elif not node.pending.items:
                    self._con.discard(node)

    def _hello(self, node: _Node, now: int) -> None:
        spec = node.spec
        body = {
            M.H_NODE: spec.node_id,
            M.H_NONCE: os.urandom(M.NONCE_LEN),  # fresh from a CSPRNG, seed or not (SPEC 6.2)
            M.H_PROTO: session.PROTOCOL_VERSION,
            M.H_MODEL: MODELS[spec.type],
            M.H_FW: FIRMWARE,
            M.H_CAPS: CAPS[spec.type],
            M.H_REBOOT: M.REBOOT_POWER_ON,
            M.H_NAME: spec.name,
            M.DUE: DUE_S,
        }
        node.hello_msg, node.hello_frame = session.hello_frame(body)
        node.hello_body = body
        node.state = _HELLO
        self._arm(node, now)
        self._inflight[node.index] = node
        self._bump("hellos")
        self._send(node, node.hello_frame)

    def _arm(self, node: _Node, now: int) -> None:
        node.tries = 0
        node.timeout = retransmit.initial_timeout_ms(self.rng.getrandbits(16))
        node.deadline = now + node.timeout

    def _give_up(self, node: _Node, now: int) -> None:
        """A handshake that got no answer: back off, then a new hello with a new nonce."""
        self._inflight.pop(node.index, None)
        if node.session is not None:
            if self._by_sid.get(node.session.sid) is node:
                del self._by_sid[node.session.sid]
            node.session = None
        node.state = _WAIT
        b = min(max(_BACKOFF_MIN_MS, node.backoff_ms * 2), _BACKOFF_MAX_MS)
        node.backoff_ms = b
        heapq.heappush(self._later, (now + b // 2 + self.rng.randrange(b // 2 + 1), node.index))

    def _lose(self, node: _Node, now: int) -> None:
        """The session is gone (a report given up, sequence space used): handshake again."""
        if node.state == _ONLINE:
            self.online -= 1
            self._live_dirty = True
        if node.session is not None and self._by_sid.get(node.session.sid) is node:
            del self._by_sid[node.session.sid]
        node.session = None
        node.aead = None
        node.pending = None
        self._con.discard(node)
        node.state = _WAIT
        node.backoff_ms = 0
        self._bump("sessions_lost")
        self._queue.append(node)

    # -- receiving -----------------------------------------------------------------------

    def _drain(self, socks: Iterable[socket.socket]) -> None:
        for sock in socks:
            while True:
                try:
                    data = sock.recv(_RECV)
                except BlockingIOError:
                    break
                except ConnectionRefusedError:  # nothing listens at the gateway address
                    self._bump("refused")
                    continue
                except OSError:
                    break
                self._bump("frames_in")
                try:
                    self._handle(data)
                except ProtocolError as e:
                    self._bump("dropped_" + errors.name(e.code).replace("-", "_"))

    def _handle(self, data: bytes) -> None:
        p = frame.parse(data)
        if p[0] == frame.PLAIN:
            mtype, body = M.decode(data[p[5] :])
            if mtype == M.CHALLENGE:
                self._challenge(body)
            elif mtype == M.ERROR:  # no node id: only a hint, counted (SPEC 6.4)
                self._bump("plain_error_" + errors.name(body[M.CODE]).replace("-", "_"))
            return
        if p[0] != frame.SESSION:
            self._bump("dropped_unexpected")
            return
        node = self._by_sid.get(p[3])
        if node is None or node.session is None:
            self._bump("dropped_unknown_sid")
            return
        s = node.session
        seq, con, mtype, body, new = s.open(data, p)
        if con:
            ans = s.answer_for(seq) if not new else None
            if ans is None:
                if not new:
                    return
                atype, abody = self._answer(node, mtype, body, seq)
                _, ans = s.seal(atype, abody)
                s.remember(seq, ans)
                self._bump("requests_answered")
            self._send(node, ans)
            return
        if not new:
            return
        ref = body.get(M.REF)
        if ref is None:
            return
        if mtype == M.ACK and ref == 0 and node.state == _CONFIRM:
            self._online(node)
        elif node.pending is not None and node.pending.done(ref):
            self._bump("reports_acked" if mtype == M.ACK else "reports_refused")

    def _challenge(self, body: dict) -> None:
        node = self._by_id.get(body.get(M.C_NODE))  # type: ignore[arg-type]
        if node is None or node.state != _HELLO:
            self._bump("challenges_ignored")  # the first that verifies wins (SPEC 6.2)
            return
        try:
            s = session.answer(node.spec.key, node.hello_msg, node.hello_body, body)
        except ProtocolError:
            self._bump("challenges_bad")  # wrong key or forged: keep waiting
            return
        old = self._by_sid.get(s.sid)
        if old is not None and old is not node and old.state == _ONLINE:
            self._lose(old, _ms())  # the gateway reused its sid: that session is gone
        node.session = s
        self._by_sid[s.sid] = node
        _, node.confirm = s.seal(M.CONFIRM, {}, confirmable=True)
        node.state = _CONFIRM
        self._arm(node, _ms())
        self._send(node, node.confirm)

    def _online(self, node: _Node) -> None:
        s = node.session
        assert s is not None
        self._inflight.pop(node.index, None)
        node.state = _ONLINE
        node.backoff_ms = 0
        node.aead = AESCCM(s.send_key, tag_length=frame.TAG_LEN)
        node.hello_body = {}
        node.hello_msg = node.hello_frame = node.confirm = b""
        self.online += 1
        self._live_dirty = True
        self._bump("handshakes")

    def _answer(self, node: _Node, mtype: int, body: dict, seq: int) -> tuple[int, dict]:
        """The node's answer to a confirmable request from the gateway."""
        if mtype == M.PING:
            return M.PONG, {M.REF: seq}
        if mtype == M.COMMAND:
            caps = _CAPABILITIES[node.spec.type]
            out: dict[int, Any] = {M.REF: seq, M.CODE: 0}
            for cid in sorted(M.states(body)):
                cap = caps.get(cid)
                try:
                    if cap is None:
                        raise ProtocolError(errors.UNKNOWN_CAPABILITY, "no such capability")
                    out[cid] = cap.check_set(body[cid])
                except ProtocolError as e:
                    return M.RESULT, {M.REF: seq, M.CODE: e.code}
            return M.RESULT, out
        if mtype == M.CONFIG_GET:
            return M.CONFIG, {M.REF: seq, M.CODE: 0, M.CFG_VALUES: {}}
        if mtype == M.CONFIG_SET:
            return M.CONFIG, {M.REF: seq, M.CODE: errors.UNSUPPORTED}
        if mtype in (M.OTA_OFFER, M.OTA_CHUNK):
            return M.OTA_STATUS, {M.REF: seq, M.CODE: errors.UNSUPPORTED, ota.STATE: 0}
        return M.ERROR, {M.REF: seq, M.CODE: errors.UNSUPPORTED}


# -- command line --------------------------------------------------------------------------


def _addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="kithnet.tools.fleet", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    k = sub.add_parser("keys", help="write a keys file for a new fleet")
    k.add_argument("--nodes", type=int, required=True)
    k.add_argument("--out", required=True)
    k.add_argument("--seed", type=int, default=None)
    k.add_argument("--plugs", type=float, default=0.0, help="fraction of plugs (default 0)")
    r = sub.add_parser("run", help="bring a fleet online at a gateway and send reports")
    r.add_argument("--gateway", required=True, help="HOST:PORT of the gateway's UDP port")
    r.add_argument("--keys", required=True)
    r.add_argument("--rate", type=float, default=None, help="reports/s (default: flat out)")
    r.add_argument("--seconds", type=float, default=10.0)
    r.add_argument("--con", action="store_true", help="confirmable reports")
    r.add_argument("--sockets", type=int, default=None)
    r.add_argument("--handshakes", type=int, default=64, help="handshakes in flight")
    r.add_argument("--connect-timeout", type=float, default=120.0)
    args = ap.parse_args(argv)
    if args.command == "keys":
        write_keys(args.out, make_nodes(args.nodes, args.seed, args.plugs))
        return 0
    nodes = read_keys(args.keys)
    with Fleet(
        nodes, _addr(args.gateway), sockets=args.sockets, handshakes=args.handshakes
    ) as fleet:
        t = time.monotonic()
        online = fleet.connect(args.connect_timeout)
        took = time.monotonic() - t
        print(f"{online}/{len(nodes)} nodes online in {took:.1f} s", file=sys.stderr)
        sent = fleet.send(args.rate, args.seconds, confirmable=args.con) if online else {}
        if args.con:
            fleet.poll(1.0)
        print(json.dumps({"connect_s": round(took, 3), **sent, **fleet.stats()}))
        return 0 if online == len(nodes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
