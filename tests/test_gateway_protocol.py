"""The gateway's protocol engine against a node played by the protocol library, on
loopback: replayed, forged and malformed frames are dropped and counted, never applied;
a duplicate of a confirmable report gets the same acknowledgement again and no second
history row; a frame of a session the gateway no longer has gets a NO_SESSION hint.
"""

from __future__ import annotations

import os
import socket
import time

import pytest
from gwrun import GatewayThread
from kithnet.protocol import errors, frame, model, session
from kithnet.protocol import messages as M


class Node:
    def __init__(self, gw: GatewayThread) -> None:
        self.id, self.key = os.urandom(8), os.urandom(16)
        self.addr = ("127.0.0.1", gw.gw.udp_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(5)
        self.sess: session.Session | None = None

    def recv(self) -> tuple[tuple, bytes]:
        data, _ = self.sock.recvfrom(2048)
        return frame.parse(data), data

    def handshake(self, name: str | None = None) -> None:
        hello = {
            M.H_NODE: self.id, M.H_NONCE: os.urandom(8), M.H_PROTO: 1,
            M.H_MODEL: "kithnet-sensor", M.H_FW: "0.1.0",
            M.H_CAPS: {1: model.TEMPERATURE, 2: model.HUMIDITY}, M.H_REBOOT: 0, M.DUE: 60,
        }  # fmt: skip
        if name:
            hello[M.H_NAME] = name
        msg, data = session.hello_frame(hello)
        self.sock.sendto(data, self.addr)
        p, chal = self.recv()
        _, body = M.decode(chal[p[5] :])
        self.sess = session.answer(self.key, msg, hello, body)
        _, confirm = self.sess.seal(M.CONFIRM, {}, True)
        self.sock.sendto(confirm, self.addr)
        assert self.ack() is not None

    def ack(self) -> dict | None:
        p, data = self.recv()
        _, _, mtype, body, _ = self.sess.open(data, p)
        return body if mtype == M.ACK else None

    def report(self, temp: int, con: bool = True) -> bytes:
        _, data = self.sess.seal(M.REPORT, {1: temp, 2: 5000, M.DUE: 60}, con)
        self.sock.sendto(data, self.addr)
        return data


@pytest.fixture
def gw(tmp_path):
    g = GatewayThread(data=str(tmp_path / "gw"))
    yield g
    g.stop()


def _rows(g: GatewayThread, node: Node) -> list[dict]:
    return g.call(g.gw.history, node.id.hex(), "temperature")


def test_replayed_forged_and_malformed_frames_are_dropped_and_counted(gw):
    node = Node(gw)
    gw.call(gw.gw.adopt, node.id.hex(), node.key.hex(), "Probe")
    node.handshake()
    data = node.report(2150)
    first = node.ack()
    assert first is not None
    gw.wait(lambda: gw.gw.history("Probe", "temperature"), check=lambda h: len(h) == 1)

    # The same datagram again: the same acknowledgement, nothing applied twice.
    node.sock.sendto(data, node.addr)
    p, again = node.recv()
    assert node.sess.open(again, p)[3] == first
    # A forged copy (one bit of the ciphertext flipped) and garbage: dropped, counted.
    forged = bytearray(data)
    forged[-3] ^= 1
    node.sock.sendto(bytes(forged), node.addr)
    node.sock.sendto(b"\x00not a frame", node.addr)
    node.sock.sendto(b"", node.addr)
    m = gw.wait(lambda: gw.gw.metrics(), check=lambda m: m.get("dropped_auth") == 1
                and m.get("dropped_malformed") == 1 and m.get("dropped_version") == 1)  # fmt: skip
    assert m["dropped_duplicate"] == 1
    # A new report still goes in; the history holds each report once.
    node.report(2175)
    assert node.ack() is not None
    rows = gw.wait(lambda: gw.gw.history("Probe", "temperature"), check=lambda h: len(h) == 2)
    assert [r["value"] for r in rows] == [21.5, 21.75]
    assert gw.device("Probe")["state"]["temperature"]["value"] == 21.75


def test_a_frame_of_a_lost_session_gets_a_no_session_hint(gw, tmp_path):
    node = Node(gw)
    gw.call(gw.gw.adopt, node.id.hex(), node.key.hex(), "Probe")
    node.handshake()
    gw.call(gw.gw.sessions.end, gw.gw.devices_by_id[node.id])  # as after a gateway restart
    node.report(2000)
    p, data = node.recv()
    assert p[0] == frame.PLAIN
    mtype, body = M.decode(data[p[5] :])
    assert mtype == M.ERROR and body[M.CODE] == errors.NO_SESSION
    node.handshake()  # the node starts over, and is heard again
    node.report(2100)
    assert node.ack() is not None
    assert gw.wait(lambda: gw.gw.device("Probe")["online"])


def test_an_unknown_node_is_pending_and_told_so(gw):
    node = Node(gw)
    hello = {
        M.H_NODE: node.id, M.H_NONCE: os.urandom(8), M.H_PROTO: 1, M.H_MODEL: "kithnet-plug",
        M.H_FW: "0.1.0", M.H_CAPS: {1: model.SWITCH}, M.H_REBOOT: 0, M.H_NAME: "Garage",
    }  # fmt: skip
    node.sock.sendto(session.hello_frame(hello)[1], node.addr)
    p, data = node.recv()
    mtype, body = M.decode(data[p[5] :])
    assert mtype == M.ERROR and body[M.CODE] == errors.UNKNOWN_NODE
    pend = gw.call(gw.gw.pending)
    assert [(x["id"], x["name"], x["type"]) for x in pend] == [(node.id.hex(), "Garage", "plug")]
    time.sleep(0.1)
    assert any(e.kind == "pending" and e.node == node.id.hex() for e in gw.events)


def test_liveness_follows_the_promised_next_report(gw):
    node = Node(gw)
    gw.call(gw.gw.adopt, node.id.hex(), node.key.hex(), "Probe")
    node.handshake()
    _, data = node.sess.seal(M.REPORT, {1: 2000, M.DUE: 330}, True)  # a sleeper: 5.5 min
    node.sock.sendto(data, node.addr)
    assert node.ack() is not None
    dev = gw.gw.devices_by_id[node.id]
    # On schedule: still available however long it sleeps within its promise.
    assert gw.call(lambda: dev.due_at - time.monotonic()) > 330
    gw.call(gw.gw._liveness)
    assert gw.device("Probe")["online"]
    # Its promise runs out (as if 1.5 x 330 s + 10 s had passed): offline, with the reason.
    gw.call(lambda: setattr(dev, "due_at", time.monotonic() - 1))
    gw.call(gw.gw._liveness)
    d = gw.device("Probe")
    assert not d["online"] and d["reason"].startswith("no report for")
    assert [e.data for e in gw.events if e.kind == "availability"][-1]["online"] is False
    # Its next report brings it back.
    node.report(2100)
    assert node.ack() is not None
    assert gw.wait(lambda: gw.gw.device("Probe")["online"])


def test_a_node_adopted_without_a_name_takes_its_own_and_names_stay_unique(gw):
    a, b = Node(gw), Node(gw)
    gw.call(gw.gw.adopt, a.id.hex(), a.key.hex())  # no name: a placeholder until its hello
    gw.call(gw.gw.adopt, b.id.hex(), b.key.hex(), "Porch")
    a.handshake(name="Hall sensor")
    assert gw.device(a.id.hex())["name"] == "Hall sensor"
    with pytest.raises(ValueError, match="taken"):
        gw.call(gw.gw.update, "Porch", name="hall SENSOR")
    assert gw.call(gw.gw.update, "Porch", name="Porch light")["name"] == "Porch light"
