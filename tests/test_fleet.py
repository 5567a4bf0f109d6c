"""tools/fleet.py against tests/peer.py, the gateway's side of the wire in CPython.

The peer runs the real handshake and opens every frame with Session.open, so a report it
records was sealed under that node's own session with a sequence number its replay window
took as new.
"""

from __future__ import annotations

import json
import os
import threading
from collections import defaultdict

import pytest
from kithnet.protocol import errors, messages, model, session
from kithnet.tools import fleet as F
from peer import Peer

M = messages


@pytest.fixture
def peer_for():
    made: list[Peer] = []

    def make(nodes: list[F.NodeSpec]) -> Peer:
        p = Peer({n.node_id: n.key for n in nodes})
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def test_keys_file_is_json_lines_the_gateway_imports(tmp_path):
    nodes = F.make_nodes(50, seed=7, plugs=0.2)
    assert len({n.node_id for n in nodes}) == 50
    assert len({n.key for n in nodes}) == 50
    assert {n.type for n in nodes} == {F.SENSOR, F.PLUG}
    path = tmp_path / "keys.jsonl"
    F.write_keys(path, nodes)
    lines = path.read_text().splitlines()
    assert len(lines) == 50
    first = json.loads(lines[0])
    assert set(first) == {"id", "key", "name", "type"}
    assert len(first["id"]) == 16 and len(first["key"]) == 32
    assert first["name"] == "fleet-00001" and first["type"] == "sensor"
    assert F.read_keys(path) == nodes
    assert F.make_nodes(50, seed=7, plugs=0.2) == nodes  # a seed reproduces the fleet


@pytest.mark.parametrize("seq", [1, 255, 256, 70000, 0x1000000 + 5])
@pytest.mark.parametrize("con", [False, True])
def test_fast_seal_makes_the_bytes_session_seal_makes(seq, con):
    key, nid = os.urandom(16), os.urandom(8)
    hello = {M.H_NODE: nid, M.H_NONCE: os.urandom(8), M.H_PROTO: 1, M.H_MODEL: "m",
             M.H_FW: "1", M.H_CAPS: F.CAPS[F.SENSOR]}  # fmt: skip
    msg, _ = session.hello_frame(hello)
    chal, gw = session.challenge(key, msg, hello, 0x1234, os.urandom(8))
    node = session.answer(key, msg, hello, M.decode(chal[1:])[1])
    body = F.report_body(F.SENSOR, 3)
    node.send_seq = seq
    expected = node.seal(M.REPORT, body, confirmable=con)[1]
    node.send_seq = seq
    aead = F.AESCCM(node.send_key, tag_length=8)
    fast = F.seal_report(node, aead, M.encode(M.REPORT, body), con)
    assert fast == expected
    assert node.send_seq == seq + 1
    assert gw.open(fast)[:4] == (seq, con, M.REPORT, body)


def _by_node(reports) -> dict[bytes, list]:
    out = defaultdict(list)
    for r in reports:
        out[r.node_id].append(r)
    return out


def test_a_fleet_handshakes_and_its_reports_arrive_with_fresh_sequence_numbers(peer_for):
    nodes = F.make_nodes(40, plugs=0.25)
    peer = peer_for(nodes)
    with F.Fleet(nodes, peer.addr, sockets=3, handshakes=8) as fleet:
        assert fleet.connect(timeout=30) == 40
        assert {h[M.H_NODE] for h in peer.hellos} == {n.node_id for n in nodes}
        assert len(fleet.socks) == 3  # 40 nodes on 3 sockets
        first = fleet.send(rate=4000, count=400)
        assert first["sent"] == 400
        peer.wait(lambda: len(peer.reports) >= 400, timeout=20)
        fleet.send(rate=4000, count=200)  # a second round continues each node's sequence
        peer.wait(lambda: len(peer.reports) >= 600, timeout=20)
        fleet.poll(0.2)
        stats = fleet.stats()
    assert stats["handshakes"] == 40 and stats["online"] == 40
    assert peer.dropped == []
    # No (node, key, seq) twice: no nonce was ever reused.
    assert len(set(peer.nonces)) == len(peer.nonces)
    kinds = {n.node_id: n.type for n in nodes}
    per_node = _by_node(peer.reports)
    assert set(per_node) == set(kinds)  # round robin: every node reported
    for nid, seen in per_node.items():
        seqs = [r.seq for r in seen]
        assert seqs == list(range(1, len(seqs) + 1)), nid.hex()  # confirm was 0
        assert len(seqs) == 15  # 600 reports over 40 nodes
        for r in seen:
            assert r.con is False
            assert r.body == F.report_body(kinds[nid], r.seq % F.VARIANTS)
            caps = model.capabilities(F.CAPS[kinds[nid]])  # as the hello declared them
            for cid, v in M.states(r.body).items():
                caps[cid].check(v)  # every reading is valid for its capability


def test_confirmable_reports_are_acknowledged(peer_for):
    nodes = F.make_nodes(20)
    peer = peer_for(nodes)
    with F.Fleet(nodes, peer.addr) as fleet:
        assert fleet.connect(timeout=30) == 20
        out = fleet.send(rate=2000, count=100, confirmable=True)
        assert out["sent"] == 100
        for _ in range(100):
            fleet.poll(0.05)
            if fleet.in_flight() == 0:
                break
        stats = fleet.stats()
    assert fleet.in_flight() == 0
    assert stats["reports_acked"] == 100
    assert "reports_given_up" not in stats
    assert len(peer.reports) == 100 and all(r.con for r in peer.reports)
    for seen in _by_node(peer.reports).values():
        assert [r.seq for r in seen] == list(range(1, 6))


def test_the_fleet_answers_the_gateways_requests(peer_for):
    nodes = F.make_nodes(8, plugs=0.5)
    plug = next(n for n in nodes if n.type == F.PLUG)
    sensor = next(n for n in nodes if n.type == F.SENSOR)
    peer = peer_for(nodes)
    fleet = F.Fleet(nodes, peer.addr)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            fleet.poll(0.02)

    assert fleet.connect(timeout=30) == 8
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        assert peer.command(plug.node_id, {1: False}, timeout=10) == {
            M.REF: 2, M.CODE: 0, 1: False}  # fmt: skip
        res = peer.command(sensor.node_id, {1: 2500}, timeout=10)
        assert res[M.CODE] == errors.NOT_WRITABLE
        assert peer.ask(plug.node_id, M.PING, {}, timeout=10) == {M.REF: 3}
    finally:
        stop.set()
        t.join(5)
        fleet.close()
    assert fleet.counts["requests_answered"] == 3


def test_unanswered_hellos_are_sent_again(peer_for):
    nodes = F.make_nodes(10)
    peer = peer_for(nodes)
    peer.answer = False  # a gateway that is not there yet
    with F.Fleet(nodes, peer.addr) as fleet:
        assert fleet.connect(timeout=0.3) == 0
        assert fleet.counts["hellos"] == 10 and "hellos_resent" not in fleet.counts
        peer.answer = True
        assert fleet.connect(timeout=20) == 10  # the retransmissions (2-3 s) get through
        assert fleet.counts["hellos_resent"] >= 10
        assert fleet.counts["hellos"] == 10  # the same hello bytes, not new hellos
