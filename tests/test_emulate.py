"""`kithnet emulate`: N virtual boards, real `micropython` processes, provisioned into a
running gateway through its API, driven by the household scenario, all stopped by one
Ctrl-C. The boards have DNS-SD off and the gateway's address in their config.json, so
nothing is multicast and the test runs in the machine's own namespace, all on loopback.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest
from gwrun import GatewayThread
from kithnet.tools import scenarios
from kithnet.tools.world import ManualClock, World
from procs import processes_under

WAIT = 45


def test_emulate_boots_a_fleet_into_a_gateway_and_stops_it_on_ctrl_c(tmp_path):
    g = GatewayThread(data=str(tmp_path / "gw"))
    root = tmp_path / "fleet"
    url = f"http://127.0.0.1:{g.gw.http_port}"
    cmd = [
        sys.executable, "-m", "kithnet.cli", "emulate", "--count", "3", "--type", "plug",
        "--world", "household", "--speed", "600", "--gateway", url, "--token", "test-token",
        "--gateway-udp", f"127.0.0.1:{g.gw.udp_port}", "--dir", str(root),
        "--report-interval", "2",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # Provisioned by their keys (through the API) and online: a handshake with each.
        devs = g.wait(
            lambda: [d for d in g.gw.devices() if d["online"]], WAIT,
            "the emulated nodes never came online", check=lambda ds: len(ds) == 3,
        )  # fmt: skip
        names = {d["name"]: d for d in devs}
        assert set(names) == {"Kettle plug", "TV plug", "Fridge plug"}
        assert names["TV plug"]["room"] == "living room"
        # The household switched the fridge on at its socket (a press of the plug's
        # button, which the firmware turns into its relay), and the gateway saw it run.
        g.wait(lambda: g.gw.device("Fridge plug")["state"].get("switch", {}).get("value"), WAIT,
               "the household never switched the fridge on")  # fmt: skip
        g.wait(lambda: g.gw.device("Fridge plug")["state"]["power"]["value"] > 1, WAIT,
               "the fridge never drew power")  # fmt: skip
        keys = {json.loads((p / "config.json").read_text())["node"]["key"]
                for p in root.iterdir()}  # fmt: skip
        assert len(keys) == 3
        assert len(processes_under(root)) >= 3
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            pytest.fail("kithnet emulate did not stop on Ctrl-C:\n" + out[-3000:])
        g.stop()
    assert proc.returncode == 0, out
    assert "Traceback" not in out, out
    assert "registered 3 nodes in the gateway at" in out
    assert "[06:" in out and "a household wakes up" in out
    assert "Fridge plug: online: session" in out
    assert "stopping 3 boards" in out and out.rstrip().endswith("stopped")
    for key in keys:
        assert key not in out
    assert not processes_under(root)


def test_emulate_reports_an_unreachable_gateway(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "kithnet.cli", "emulate", "--count", "1", "--type", "plug",
         "--gateway", "http://127.0.0.1:9", "--token", "t", "--dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 1
    assert "the gateway does not answer at http://127.0.0.1:9" in out.stderr
    assert list(tmp_path.iterdir()) == []


class _Board:
    def __init__(self, world: World) -> None:
        self.world = world


class _Node:
    def __init__(self, kind: str, name: str, room: str | None, world: World) -> None:
        self.kind, self.name, self.room, self.board = kind, name, room, _Board(world)


def test_household_programme_on_a_manual_clock(monkeypatch):
    """The household's day, stepped: the kettle at breakfast, the door at 08:30, nobody
    moving while the house is empty, the TV on at 19:00 and in standby from 22:30."""
    from kithnet.tools import board as B

    now = [1000.0]
    monkeypatch.setattr(scenarios.time, "monotonic", lambda: now[0])
    said: list[str] = []
    s = scenarios.make("household", speed=360, hour=6.5, say=said.append, seed=1)
    kinds = ["plug", "plug", "sensor"]
    named = s.names(kinds)
    assert named == [("Kettle plug", "kitchen"), ("TV plug", "living room"),
                     ("Hallway sensor", "hallway")]  # fmt: skip
    clock = ManualClock()
    nodes = [_Node(k, n, r, World(B.template(k), None, seed=1, clock=clock))
             for k, (n, r) in zip(kinds, named, strict=True)]  # fmt: skip
    kettle, tv, hall = (n.board.world for n in nodes)
    s.attach(nodes)
    assert kettle.params["load"] == "kettle" and not kettle.params["load_on"]
    assert tv.params["load"] == "tv" and not tv.params["load_on"]

    def at(hour: float) -> None:  # a wall second is 6 simulated minutes at 360x
        while s.hours < hour:
            now[0] += 0.25
            s.tick()

    at(7.01)
    assert kettle.params["load_on"] and any("kettle on" in x for x in said)
    at(8.52)
    assert any("leaves" in x for x in said)
    at(12)
    assert hall.params["motion"] is False  # nobody home, nothing moves
    at(19.01)
    assert tv.params["load_on"]
    at(22.51)
    assert not tv.params["load_on"] and any("standby" in x for x in said)
    assert all(x.startswith("[") for x in said)
