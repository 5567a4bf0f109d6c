"""The gateway and real MicroPython nodes of every type, end to end, in a network
namespace of the test's own: the nodes find the gateway by DNS-SD (python-zeroconf on the
gateway's side, the firmware's responder on theirs), run the handshake, report into its
state and history, obey a command, and survive a node reboot and a gateway restart. A node
with the wrong key never gets a session; an unknown node is pending until adopted.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import time
from pathlib import Path

import pytest
from gwrun import GatewayThread
from kithnet.tools import board as B
from kithnet.tools.world import WorldServer
from netns import setns_thread

WAIT = 45


class Fleet:
    """Boards in the namespace, sharing one compiled lib/ (mpy-cross once)."""

    def __init__(self, ns: str, root: Path, state: dict) -> None:
        self.ns = ns
        self.root = root
        self.state = state
        self.lib: Path | None = None
        self.port = 47811

    def board(self, kind: str, name: str, key: bytes, node_id: bytes | None = None,
              **over) -> B.Board:  # fmt: skip
        node_id = node_id or os.urandom(8)
        path = self.root / f"{kind}-{node_id.hex()}"
        overrides = {"mdns": "full", "sleep": {}, "report": {"interval": 2}}
        overrides.update(over)
        cfg = B.make_board(
            path, kind, name, node_id=node_id, key=key, gateway=None, port=self.port,
            overrides=overrides, lib_from=self.lib,
        )  # fmt: skip
        self.port += 1
        self.lib = self.lib or path / "lib"
        b = B.Board(path, prefix=["ip", "netns", "exec", self.ns])
        b.node_id, b.key, b.cfg, b.kind = node_id, key, cfg, kind
        b.server = setns_thread(self.ns, lambda b=b: WorldServer(b.world))
        self.state["boards"].append(b)
        return b


@pytest.fixture
def lan(netns, tmp_path):
    gws: list[GatewayThread] = []

    def gateway(**kw) -> GatewayThread:
        g = GatewayThread(netns["name"], data=str(tmp_path / "gw"), udp_host="0.0.0.0",
                          udp_port=47800, **kw)  # fmt: skip
        gws.append(g)
        return g

    yield Fleet(netns["name"], tmp_path, netns), gateway
    for g in gws:
        g.stop()


def _online(g: GatewayThread, b: B.Board, timeout: float = WAIT) -> dict:
    try:
        return g.wait(lambda: (d := g.gw.device(b.node_id.hex()))["online"] and d["state"] and d,
                      timeout)  # fmt: skip
    except TimeoutError:
        pytest.fail(f"{b.kind} never came online:\n{b.console()[-3000:]}")


def _uptimes(db: Path, num: int) -> list[tuple[float, int]]:
    """(ts, uptime) of every stored report of a node, in the order they were stored."""
    with sqlite3.connect(db) as c:
        q = "SELECT ts, value FROM history WHERE node = ? AND cap = 31 ORDER BY rowid"
        return list(c.execute(q, (num,)))


def test_every_type_end_to_end_with_reboots_and_a_gateway_restart(lan):
    fleet, gateway = lan
    g = gateway()
    boards = {}
    for kind in B.TYPES:
        key = os.urandom(16)
        b = fleet.board(kind, f"E2E {kind}", key)
        g.call(g.gw.adopt, b.node_id.hex(), key.hex(), f"E2E {kind}", "lab")
        boards[kind] = b.start()
    # Discovery (no gateway address in their configs), handshake, reports in the state.
    for kind, b in boards.items():
        d = _online(g, b)
        assert d["type"] == kind and d["model"] == f"kithnet-{kind}"
        names = {c["name"] for c in d["capabilities"]}
        assert {"rssi", "uptime"} <= names and set(d["state"]) <= names
    plug = boards["plug"]
    # History: readings are stored as they come.
    g.wait(lambda: g.gw.history("E2E sensor", "uptime"), WAIT, check=lambda h: len(h) >= 2)
    temps = g.call(g.gw.history, "E2E sensor", "temperature")
    assert temps and all(-40 < t["value"] < 85 for t in temps)

    # A command toggles the plug, and the new state comes back, on the bus too.
    seen = len(g.events)
    res = g.call(g.gw.set, "E2E plug", {"switch": True})
    assert res == {"status": "applied", "state": {"switch": True}}
    assert plug.world.relay_commanded
    assert any(e.kind == "state" and e.node == plug.node_id.hex()
               and e.data["values"].get("switch") is True for e in g.events[seen:])  # fmt: skip
    g.wait(lambda: g.gw.device("E2E plug")["state"]["power"]["value"] > 0, WAIT,
           "the plug's load never showed in its power reading")  # fmt: skip

    # A node reboot: a new session, and the node reports again.
    before = g.call(lambda: g.gw.metrics()["frames_handshakes"])
    plug.power_cut()
    plug.start()
    try:
        g.wait(lambda: g.gw.metrics()["frames_handshakes"] > before, WAIT)
    except TimeoutError:
        pytest.fail("no handshake after the reboot:\n" + plug.console()[-3000:])
    _online(g, plug)

    # A gateway restart: state restored from SQLite before any node speaks, sessions made
    # again, and no report stored twice.
    nums = {k: g.call(lambda b=b: g.gw.devices_by_id[b.node_id].num) for k, b in boards.items()}
    state = g.device("E2E climate")["state"]
    g.stop()
    g = gateway()
    restored = g.device("E2E climate")["state"]
    assert restored.keys() == state.keys()
    assert all(restored[k]["ts"] >= state[k]["ts"] for k in state)
    for b in boards.values():
        _online(g, b)
    g.wait(lambda: all(
        len(g.gw.devices_by_id[b.node_id].state) for b in boards.values()), WAIT)  # fmt: skip
    time.sleep(3)  # a few more reports after the restart
    assert g.call(g.gw.set, "E2E plug", {"switch": False})["state"] == {"switch": False}
    g.stop()
    db = Path(g.cfg.data) / "kithnet.db"
    for kind, num in nums.items():
        rows = _uptimes(db, num)
        ups = [v for _, v in rows]
        assert len(ups) >= 3, kind
        # Every full report carries the node's uptime. A report stored twice would be one
        # row twice, or (sent again after the restart) an older uptime after newer ones;
        # only the plug's reboot starts again from 0.
        assert len(set(rows)) == len(rows), (kind, rows)
        drops = sum(1 for a, b in itertools.pairwise(ups) if b < a)
        assert drops == (1 if kind == "plug" else 0), (kind, ups)


def test_wrong_key_is_refused_and_an_unknown_node_waits_for_adoption(lan):
    fleet, gateway = lan
    g = gateway()
    good, wrong = os.urandom(16), os.urandom(16)
    liar = fleet.board("plug", "Wrong key", wrong)
    g.call(g.gw.adopt, liar.node_id.hex(), good.hex(), "Wrong key")
    stranger = fleet.board("sensor", "Stranger", os.urandom(16))
    liar.start()
    stranger.start()
    # The stranger is listed as pending (by its hello, or its DNS-SD record first).
    me = stranger.node_id.hex()
    pend = g.wait(lambda: [p for p in g.gw.pending() if p["id"] == me and p.get("hellos")],
                  WAIT)  # fmt: skip
    assert pend[0]["model"] == "kithnet-sensor"
    with pytest.raises(KeyError):
        g.device(me)
    # The liar says hello again and again and never gets a session.
    g.wait(lambda: g.gw.devices_by_id[liar.node_id].unconfirmed >= 2, WAIT)
    assert not g.device("Wrong key")["online"]
    assert g.call(lambda: g.gw.devices_by_id[liar.node_id].session) is None
    # Adopted, the stranger comes online.
    g.call(g.gw.adopt, me, stranger.key.hex(), "Stranger")
    assert not any(p["id"] == me for p in g.call(g.gw.pending))
    _online(g, stranger)
    assert not g.device("Wrong key")["online"]
    assert "does the gateway hold this node's key" in liar.console()
