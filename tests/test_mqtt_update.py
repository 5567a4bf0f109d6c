"""Home Assistant's `update` entity, made real: the firmware shelf's newest bundle as the
latest version, and the install button starting the update.

The payloads first, against Home Assistant's rules (tests/ha_rules.py); then end to end: a
real MicroPython board (tools/board.py, test_ota's Fleet), the gateway in a thread with the
MQTT hub, a real mosquitto on the machine's loopback (no multicast: the board has the
gateway's address) and a watcher in the place of Home Assistant. One rig for the module;
the tests run in file order, each leaving the board as the next one expects it.
"""

from __future__ import annotations

import json
import logging
import urllib.request

import pytest
from gwrun import GatewayThread
from ha_rules import check_component, check_update_state
from kithnet.gateway.devices import Device
from kithnet.gateway.mqtt.discovery import device_config
from kithnet.gateway.mqtt.nodeview import PAYLOAD_INSTALL, NodeView
from kithnet.gateway.mqtt.topics import Topics
from kithnet.protocol import model
from mqtt_broker import Broker, Watcher
from test_ota import Fleet  # the boards and bundles of the OTA tests

from kithnet import cli

WAIT = 60
T = Topics("kithnet", "homeassistant", "kithnet-abc123")


# -- the payloads --------------------------------------------------------------------------


def _dev(firmware: str | None, ota: dict | None = None) -> Device:
    dev = Device(num=1, node_id=bytes(range(8)), key=bytes(16), name="Plug", firmware=firmware)
    dev.set_caps({1: model.SWITCH})
    dev.ota = ota
    return dev


def _job(state: str, percent: int = 0, error: str | None = None) -> dict:
    return {"state": state, "version": "0.2.0", "from_version": "0.1.0", "percent": percent,
            "offset": 0, "size": 100, "error": error}  # fmt: skip


def test_the_update_entity_and_its_state_pass_home_assistants_rules():
    dev = _dev("0.1.0")
    view = NodeView.of(dev, T)
    (c,) = [c for c in device_config(dev, view, T)["cmps"].values() if c["p"] == "update"]
    assert check_component("update", c) == []
    assert c["command_topic"] == f"kithnet/{dev.hex}/update/set"
    assert c["payload_install"] == PAYLOAD_INSTALL and c["state_topic"] == view.update
    assert check_component("update", {**c, "payload_install": None}) != []

    def state(d: Device, latest: str | None = None, summary: str = "") -> dict:
        out = json.loads(view.update_payload(d, latest, summary))
        assert check_update_state(out) == [], out
        return out

    assert state(dev) == {
        "title": "kithnet firmware", "release_summary": "", "installed_version": "0.1.0",
        "latest_version": "0.1.0", "in_progress": False, "update_percentage": None,
    }  # fmt: skip
    s = state(dev, "0.2.0", "fw.knb on the gateway's firmware shelf")
    assert s["latest_version"] == "0.2.0" and s["release_summary"].startswith("fw.knb")
    # A node not heard from: no installed version (HA refuses null), the offer stands.
    assert "installed_version" not in state(_dev(None), "0.2.0")
    assert state(_dev(None)).keys() >= {"in_progress", "update_percentage", "release_summary"}
    # While a job runs: the version it installs, and the transfer's percent while receiving.
    for st, pct, shown in [("waiting", 0, None), ("receiving", 45, 45), ("installing", 100, None),
                           ("trial", 100, None)]:  # fmt: skip
        s = state(_dev("0.1.0", _job(st, pct)))
        assert s["in_progress"] is True and s["update_percentage"] == shown
        assert s["latest_version"] == "0.2.0" and "Updating to 0.2.0" in s["release_summary"]
    s = state(_dev("0.1.0", _job("failed", 3, "refused: " + "x" * 300)), "0.2.0")
    assert s["in_progress"] is False and s["installed_version"] == "0.1.0"
    assert s["release_summary"].startswith("The update to 0.2.0 failed: refused")
    assert len(s["release_summary"]) == 255
    s = state(_dev("0.2.0", _job("confirmed", 100)))
    assert s["in_progress"] is False and s["installed_version"] == s["latest_version"] == "0.2.0"


# -- end to end ----------------------------------------------------------------------------


class Rig:
    def __init__(self, fleet: Fleet, watcher: Watcher) -> None:
        self.fleet = fleet
        self.g = fleet.g
        self.w = watcher
        self.plug = fleet.board("plug")
        self.node = self.plug.node_id.hex()
        self.topic = f"kithnet/{self.node}/update"

    def states(self, since: int = 0) -> list[dict]:
        return [json.loads(m.payload) for m in self.w.on(self.topic, since) if m.payload]

    def state(self, want, why: str, since: int = 0) -> dict:
        def found():
            hits = [s for s in self.states(since) if want(s)]
            return hits[-1] if hits else None

        try:
            return self.w.wait(found, WAIT, why)
        except TimeoutError:
            pytest.fail(f"{why}; update states: {self.states(since)[-5:]}\n"
                        f"{self.plug.console()[-2000:]}")  # fmt: skip

    def install(self, payload: str = PAYLOAD_INSTALL) -> int:
        mark = len(self.w.snapshot())
        self.w.publish(f"{self.topic}/set", payload)
        return mark

    def api(self, path: str) -> dict:
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.g.gw.http_port}{path}",
            headers={"Authorization": "Bearer test-token"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def metric(self, name: str) -> int:
        return self.g.call(lambda: self.g.gw.metrics()[name])


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    root = tmp_path_factory.mktemp("mqtt-update")
    broker = Broker(root / "broker").start()
    w = Watcher(broker.port, ["kithnet/#", "homeassistant/#"])
    g = fleet = None
    try:
        g = GatewayThread(None, data=str(root / "gw"), mqtt_url=broker.url)
        fleet = Fleet(root, g)
        yield Rig(fleet, w)
    finally:
        if fleet is not None:
            fleet.close()
        if g is not None:
            g.stop()
        w.close()
        broker.stop()


def test_a_bundle_on_the_shelf_is_offered_and_installed_from_home_assistant(rig, capsys):
    r, w = rig, rig.w
    disc = w.wait(
        lambda: (m := w.last(f"homeassistant/device/kithnet_{r.node}/config")) and m.payload,
        WAIT,
        "no discovery for the board",
    )
    (c,) = [c for c in json.loads(disc)["cmps"].values() if c["p"] == "update"]
    assert c["command_topic"] == f"{r.topic}/set" and check_component("update", c) == []
    s = r.state(lambda s: s.get("installed_version") == "0.1.0", "no update state")
    assert s["latest_version"] == "0.1.0" and s["in_progress"] is False  # an empty shelf
    # `kithnet bundle ... --out DATA/firmware/NAME`, as the README says: offered on its own.
    shelf = r.g.gw.firmware.path
    out = shelf / "fw-9.1.0.knb"
    assert cli.main(["bundle", str(out), "--lib", str(r.fleet.lib), "--version", "9.1.0"]) == 0
    assert "version 9.1.0" in capsys.readouterr().out
    offered = r.state(lambda s: s.get("latest_version") == "9.1.0", "the shelf's bundle unseen")
    assert offered["installed_version"] == "0.1.0" and offered["in_progress"] is False
    assert offered["release_summary"].startswith("fw-9.1.0.knb on the gateway's firmware shelf")
    listed = r.api("/api/firmware")
    assert listed["path"] == str(shelf) and listed["latest"]["version"] == "9.1.0"
    assert [b["name"] for b in listed["bundles"]] == ["fw-9.1.0.knb"]
    # Install, twice at once: one update runs, the other is refused with one log line.
    failed = r.metric("mqtt_commands_failed")
    events = len(r.g.events)
    mark = r.install()
    r.install()
    done = r.state(
        lambda s: s.get("installed_version") == "9.1.0" and s["in_progress"] is False,
        "the node never ran 9.1.0",
        mark,
    )
    assert done["latest_version"] == "9.1.0" and done["update_percentage"] is None
    states = r.states(mark)
    assert all(check_update_state(s) == [] for s in states)
    progress = [s for s in states if s["in_progress"]]
    assert progress and all(s["latest_version"] == "9.1.0" for s in progress)
    assert states.index(progress[0]) < states.index(done)  # in progress, then not
    info = json.loads(w.last(f"kithnet/{r.node}/info").payload)
    assert info["firmware"] == "9.1.0"
    assert r.g.device(r.node)["ota"]["state"] == "confirmed"
    assert r.metric("mqtt_commands_failed") == failed + 1  # the second install
    # Published at once on a state change or a 10 % step, else at most every second.
    # Progress: at once on a new job state or a step of UPDATE_STEP %, else at most every
    # UPDATE_EVERY_S; the job's own events come every 5 %, in a blink on loopback.
    shown = [s["update_percentage"] for s in progress if s["update_percentage"] is not None]
    jobs = [e.data for e in r.g.events[events:] if e.kind == "ota" and e.node == r.node]
    moved = [j["percent"] for j in jobs if j["state"] == "receiving" and j["version"] == "9.1.0"]
    assert shown == sorted(shown) and 0 < len(shown) < len(moved), (shown, moved)


def test_a_refused_install_or_nothing_newer_leaves_the_entity_truthful(rig, caplog):
    caplog.set_level(logging.INFO, logger="kithnet")
    r = rig
    # An ESP32 application image on the shelf: the newest, but not for this (host) board.
    head = bytearray(4096)
    head[0], head[32:36], head[48:54] = 0xE9, (0xABCD5432).to_bytes(4, "little"), b"v9.5.0"
    (r.g.gw.firmware.path / "micropython.bin").write_bytes(bytes(head))
    r.state(lambda s: s.get("latest_version") == "v9.5.0", "the image never offered")
    mark = r.install()
    s = r.state(lambda s: s["in_progress"] is False and "failed" in s["release_summary"],
                "the refusal never shown", mark)  # fmt: skip
    assert s["installed_version"] == "9.1.0" and s["latest_version"] == "v9.5.0"
    assert "need an ESP32 OTA build" in s["release_summary"]
    assert r.g.device(r.node)["firmware"] == "9.1.0"
    # Nothing newer than what the node runs: one log line; no update, no state change.
    (r.g.gw.firmware.path / "micropython.bin").unlink()
    s = r.state(lambda s: s.get("latest_version") == "9.1.0", "the image never left", mark)
    caplog.clear()
    failed = r.metric("mqtt_commands_failed")
    mark = r.install()
    r.g.wait(lambda: r.g.gw.metrics()["mqtt_commands_failed"] == failed + 1, WAIT)
    said = [x.getMessage() for x in caplog.records if "no update of" in x.getMessage()]
    assert len(said) == 1 and "nothing newer than 9.1.0" in said[0], said
    assert r.g.device(r.node)["ota"]["state"] == "failed"  # still the image's job
    # A payload other than the install command: ignored, with one log line.
    r.install("upgrade please")
    r.g.wait(lambda: any("upgrade please" in x.getMessage() for x in caplog.records), WAIT)
    assert all(x["in_progress"] is False for x in r.states(mark))
