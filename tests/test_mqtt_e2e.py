"""The MQTT hub end to end: real MicroPython nodes of every type, `kithnet gateway` and a real
mosquitto, all in a network namespace of this module's own, and a watching MQTT client.

One rig for the module (one broker, one gateway data directory, four boards), and the tests
run in file order, each leaving the rig as the next one expects it:

1. discovery for every node passes Home Assistant's rules; readings arrive on their topics;
2. commands on command topics reach the nodes and their new state comes back;
3. Home Assistant's birth message brings discovery again; bad commands are logged, ignored;
4. the broker is killed (SIGTERM) for 30 s (the issue's figure) while the nodes keep
   reporting, and the gateway is killed (SIGKILL) and restarted in the middle of it;
   meanwhile (it needs no broker of the rig) a gateway facing a broker that refuses its
   password is checked; when the broker is back every reading arrives, in order;
5. the gateway is killed while connected (its last will makes everything unavailable)
   and restarted: everything is available again;
6. the broker is killed (SIGKILL) and restarts without persistence: everything retained
   is there again.

Why SIGTERM for the 30 s outage: QoS 1 ends, for a publisher, when the broker acknowledges
a message. A broker killed with SIGKILL loses what it acknowledged since its last save of
its database (mosquitto saves every `autosave_interval`, here 1 s) and what the kernel had
not yet handed to a subscriber (its connection is reset): no client can get those back,
and a test that counted them would test mosquitto. SIGTERM lets mosquitto save what it
holds for the watcher's session, so every message the gateway had acknowledged reaches the
watcher. The gateway does not see the difference: its connection drops either way.

The gateway runs as a process (`ip netns exec NS kithnet gateway ...`), not a thread, so
that killing it is a real crash: SIGKILL, the broker sees the TCP connection drop and
publishes its last will.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from ha_rules import check_device
from kithnet.tools import board as B
from kithnet.tools.world import WorldServer
from mqtt_broker import Broker, Watcher
from netns import enter, namespace, setns_thread
from procs import free_port

WAIT = 45
OUTAGE_S = 30.0  # the issue: "the broker is killed for 30 s"
TOKEN = "mqtt-test-token"
BROKER_PORT = 1883  # on the namespace's own loopback
HTTP = 47880
KITHNET = str(Path(sys.executable).with_name("kithnet"))


class BusRecorder(threading.Thread):
    """The uptimes the gateway published on its bus (its API's WebSocket, reconnected across
    the gateway's restart): what MQTT must carry. A reading the gateway stored but did not
    publish (a late one, older than the state it already had: the README's limit) is not
    among them; one the hub lost would be."""

    def __init__(self, ns: str) -> None:
        super().__init__(name="bus-recorder", daemon=True)
        self.ns = ns
        self.uptimes: dict[str, list[int]] = {}
        self.done = threading.Event()

    def run(self) -> None:
        enter(self.ns)
        asyncio.run(self._listen())

    async def _listen(self) -> None:
        import aiohttp

        url = f"http://127.0.0.1:{HTTP}/api/ws?types=state&token={TOKEN}"
        async with aiohttp.ClientSession() as http:
            while not self.done.is_set():
                try:
                    async with http.ws_connect(url) as ws:
                        async for msg in ws:
                            ev = json.loads(msg.data)
                            up = ev.get("values", {}).get("uptime")
                            if up is not None:
                                self.uptimes.setdefault(ev["node"], []).append(up)
                            if self.done.is_set():
                                return
                except (aiohttp.ClientError, OSError, ValueError):
                    pass
                await asyncio.sleep(0.1)


class Rig:
    def __init__(self, ns: str, work: Path) -> None:
        self.ns = ns
        self.work = work
        self.data = work / "gw"
        self.keys = work / "keys.jsonl"
        self.boards: dict[str, B.Board] = {}
        self.gw: subprocess.Popen | None = None
        self.gw_log = work / "gateway.log"
        self.broker = Broker(work / "broker", BROKER_PORT, ns=ns, persistence=True)
        self.watcher: Watcher | None = None
        self.outage_at: float | None = None
        self.bus: BusRecorder | None = None
        self.gid = ""

    # -- the gateway process --

    def start_gateway(self) -> None:
        mark = self.gw_log.stat().st_size if self.gw_log.exists() else 0
        argv = [
            "ip",
            "netns",
            "exec",
            self.ns,
            KITHNET,
            "gateway",
            "--data",
            str(self.data),
            "--udp",
            "0.0.0.0:47800",
            "--http",
            f"127.0.0.1:{HTTP}",
            "--token",
            TOKEN,
            "--no-discovery",
            "--keys",
            str(self.keys),
            "--log-level",
            "info",
            "--mqtt-url",
            f"mqtt://127.0.0.1:{BROKER_PORT}",
        ]
        with open(self.gw_log, "ab") as log:
            self.gw = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        end = time.monotonic() + WAIT
        while time.monotonic() < end:
            if self.gw.poll() is not None:
                pytest.fail(f"the gateway exited:\n{self.log()[-3000:]}")
            if b"kithnet gateway " in self.gw_log.read_bytes()[mark:]:
                break
            time.sleep(0.05)
        self.gid = (self.data / "gateway_id").read_text().strip()

    def kill_gateway(self) -> None:
        assert self.gw is not None
        self.gw.send_signal(signal.SIGKILL)
        self.gw.wait(10)

    def stop_gateway(self) -> None:
        B.stop_process(self.gw, 20)

    def log(self) -> str:
        return self.gw_log.read_text(errors="replace")

    def api(self, path: str) -> object:
        def get() -> object:
            req = urllib.request.Request(
                f"http://127.0.0.1:{HTTP}{path}", headers={"Authorization": f"Bearer {TOKEN}"}
            )
            with urllib.request.urlopen(req, timeout=10) as r:
                return json.loads(r.read())

        return setns_thread(self.ns, get)

    def metrics(self) -> dict:
        return self.api("/api/metrics")  # type: ignore[return-value]

    def wait(self, what, timeout: float = WAIT, why: str = ""):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                r = what()
            except OSError:
                r = None
            if r:
                return r
            time.sleep(0.1)
        pytest.fail(f"{why or 'condition not met'}\n--- gateway log ---\n{self.log()[-3000:]}")

    def all_online(self) -> bool:
        devs = self.api("/api/devices")
        return len(devs) == len(self.boards) and all(d["online"] and d["state"] for d in devs)

    # -- MQTT --

    def node(self, kind: str) -> str:
        return self.boards[kind].node_id.hex()

    def values(self, topic: str, since: int = 0) -> list:
        assert self.watcher is not None
        return [json.loads(m.payload) for m in self.watcher.on(topic, since) if m.payload]

    def retained(self, watcher: Watcher) -> dict[str, bytes]:
        """topic -> payload of what a fresh subscriber got as retained."""
        return {m.topic: m.payload for m in watcher.snapshot() if m.retain}


def _boards(rig: Rig) -> None:
    """A board of every type, sharing one compiled lib/, the gateway's address configured."""
    lib = None
    lines = []
    for i, kind in enumerate(B.TYPES):
        node_id, key = os.urandom(8), os.urandom(16)
        path = rig.work / f"{kind}-{node_id.hex()}"
        over = {"mdns": "off", "sleep": {}, "report": {"interval": 2}}
        cfg = B.make_board(
            path,
            kind,
            f"MQTT {kind}",
            node_id=node_id,
            key=key,
            gateway=("127.0.0.1", 47800),
            port=47811 + i,
            mpy=lib is None,
            overrides=over,
            plan=False,
        )
        if lib is None:
            lib = path / "lib"
        else:
            shutil.rmtree(path / "lib")
            shutil.copytree(lib, path / "lib")
        B.plan_boot(path)
        b = B.Board(path, prefix=["ip", "netns", "exec", rig.ns])
        b.node_id, b.key, b.cfg, b.kind = node_id, key, cfg, kind
        b.server = setns_thread(rig.ns, lambda b=b: WorldServer(b.world))
        rig.boards[kind] = b
        lines.append(
            json.dumps(
                {
                    "id": node_id.hex(),
                    "key": key.hex(),
                    "name": f"MQTT {kind}",
                    "type": kind,
                    "room": "lab",
                }
            )
        )
    rig.keys.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    with namespace("kn-mqtt-", multicast=False) as ns:
        r = Rig(ns, tmp_path_factory.mktemp("mqtt"))
        try:
            r.broker.start()
            # A subscriber with a session the broker keeps (persistent, QoS 1): what is
            # published while it is away (the broker's restart) waits for it, as it would
            # for Home Assistant.
            r.watcher = Watcher(
                BROKER_PORT,
                ["kithnet/#", "homeassistant/#"],
                ns=ns,
                client_id="test-watcher",
                clean=False,
            )
            _boards(r)
            r.start_gateway()
            for b in r.boards.values():
                b.start()
            r.wait(r.all_online, why="the nodes never came online")
            yield r
        finally:
            r.stop_gateway()
            for b in r.boards.values():
                b.stop()
            if r.watcher is not None:
                r.watcher.close()
            r.broker.stop()


def _discovery(rig: Rig, w: Watcher) -> dict[str, dict]:
    out = {}
    for m in w.snapshot():
        if m.topic.startswith("homeassistant/device/") and m.payload:
            out[m.topic] = json.loads(m.payload)
    return out


def _expected_discovery(rig: Rig) -> set[str]:
    return {
        f"homeassistant/device/kithnet_{b.node_id.hex()}/config" for b in rig.boards.values()
    } | {f"homeassistant/device/kithnet_gw_{rig.gid}/config"}


# -- 1 ----------------------------------------------------------------------------------------


def test_discovery_of_every_node_passes_home_assistants_rules(rig):
    w = rig.watcher
    want = _expected_discovery(rig)
    found = w.wait(
        lambda: (d := _discovery(rig, w)).keys() >= want and d,
        WAIT,
        "discovery did not arrive for every node",
    )
    for topic in want:
        assert check_device(topic, found[topic]) == [], topic
    platforms = {
        kind: {
            c["p"]
            for c in found[f"homeassistant/device/kithnet_{rig.node(kind)}/config"]["cmps"].values()
        }
        for kind in rig.boards
    }
    assert {"light", "update"} <= platforms["light"]
    assert "climate" in platforms["climate"]
    assert {"switch", "event", "device_automation", "sensor"} <= platforms["plug"]
    assert {"binary_sensor", "sensor"} <= platforms["sensor"]


def test_readings_arrive_on_their_topics(rig):
    w = rig.watcher
    for kind, b in rig.boards.items():
        node = b.node_id.hex()
        dev = rig.api(f"/api/devices/{node}")
        caps = {c["name"]: c for c in dev["capabilities"] if c["kind"] != "button"}
        for name in caps:
            w.wait(
                lambda t=f"kithnet/{node}/{name}": rig.values(t),
                WAIT,
                f"no {name} from the {kind} on kithnet/{node}/{name}",
            )
        for name, c in caps.items():
            v = rig.values(f"kithnet/{node}/{name}")[-1]
            if c["kind"] in ("switch", "motion", "contact", "occupancy"):
                assert isinstance(v, bool), (name, v)
            elif c["options"]:
                assert v in c["options"], (name, v)
            else:
                assert isinstance(v, int | float) and c["min"] <= v <= c["max"], (name, v)
        avail = w.wait(lambda n=node: w.last(f"kithnet/{n}/availability"), 10)
        assert avail.text == "online"
        info = json.loads(w.last(f"kithnet/{node}/info").payload)
        assert info["name"] == f"MQTT {kind}" and info["firmware"] and info["type"] == kind
        assert w.last(f"kithnet/{node}/owner").text == rig.gid
    assert w.last(f"kithnet/gateway/{rig.gid}/availability").text == "online"
    light = json.loads(w.wait(lambda: w.last(f"kithnet/{rig.node('light')}/light")).payload)
    assert light["state"] in ("ON", "OFF") and "brightness" in light


# -- 2 ----------------------------------------------------------------------------------------


def _after(rig: Rig, topic: str, since: int, want, why: str):
    return rig.watcher.wait(lambda: [v for v in rig.values(topic, since) if want(v)], WAIT, why)


def test_commands_reach_the_nodes_and_their_state_comes_back(rig):
    w = rig.watcher
    plug, light, climate = rig.node("plug"), rig.node("light"), rig.node("climate")
    for payload, want in ((b"ON", True), (b"OFF", False), (b"true", True)):
        n = len(w.snapshot())
        w.publish(f"kithnet/{plug}/switch/set", payload)
        _after(
            rig,
            f"kithnet/{plug}/switch",
            n,
            lambda v, x=want: v is x,
            f"the plug's switch never reported {want} after {payload!r}",
        )
        assert rig.boards["plug"].world.relay_commanded is want
    n = len(w.snapshot())
    w.publish(
        f"kithnet/{light}/light/set",
        json.dumps({"state": "ON", "brightness": 128, "color_temp": 3000}),
    )
    got = _after(
        rig,
        f"kithnet/{light}/light",
        n,
        lambda v: v["state"] == "ON" and v.get("brightness") == 128 and v.get("color_temp") == 3000,
        "the light's JSON state never came back",
    )
    assert got[-1]["color_mode"] == "color_temp"
    n = len(w.snapshot())
    w.publish(f"kithnet/{climate}/hvac_mode/set", b"cool")  # as Home Assistant sends it
    w.publish(f"kithnet/{climate}/setpoint/set", b"21.5")
    _after(rig, f"kithnet/{climate}/hvac_mode", n, lambda v: v == "cool", "no hvac_mode cool")
    _after(rig, f"kithnet/{climate}/setpoint", n, lambda v: v == 21.5, "no setpoint 21.5")
    n = len(w.snapshot())
    w.publish(f"kithnet/{plug}/set", json.dumps({"switch": False}))  # several values at once
    _after(rig, f"kithnet/{plug}/switch", n, lambda v: v is False, "node-level set ignored")


# -- 3 ----------------------------------------------------------------------------------------


def test_home_assistant_coming_online_brings_discovery_again(rig):
    w = rig.watcher
    n = len(w.snapshot())
    w.publish("homeassistant/status", b"online")  # HA's birth: QoS 0..1, not retained
    want = _expected_discovery(rig)
    w.wait(
        lambda: {m.topic for m in w.snapshot()[n:]} >= want,
        15,
        "discovery was not sent again after homeassistant/status online",
    )
    again = [m for m in w.snapshot()[n:] if m.topic in want]
    assert all(check_device(m.topic, json.loads(m.payload)) == [] for m in again)


def test_bad_commands_and_unknown_topics_are_logged_and_ignored(rig):
    w = rig.watcher
    plug, sensor = rig.node("plug"), rig.node("sensor")
    before = rig.metrics()["mqtt_commands_invalid"]
    bad = [
        (f"kithnet/{plug}/switch/set", b"\xff\xfe", "not UTF-8"),
        (f"kithnet/{plug}/switch/set", b"maybe", "takes true or false"),
        (f"kithnet/{plug}/switch/set", b'{"on": 1}', "not dict"),
        (f"kithnet/{plug}/switch/set", b"", "empty"),
        (f"kithnet/{plug}/power/set", b"5", "cannot be set"),
        (f"kithnet/{plug}/nosuch/set", b"1", "has no capability 'nosuch'"),
        (f"kithnet/{plug}/set", b"switch=on", "not JSON"),
        (f"kithnet/{rig.node('light')}/light/set", b'{"state": "DIM"}', "ON or OFF"),
        (f"kithnet/{sensor}/temperature/set", b"25", "cannot be set"),
        ("kithnet/not-a-node/switch/set", b"ON", "not a topic this gateway reads"),
    ]
    for topic, payload, _ in bad:
        w.publish(topic, payload)
    total = len(bad)
    rig.wait(
        lambda: rig.metrics()["mqtt_commands_invalid"] - before >= total,
        20,
        "not every bad command was counted",
    )
    log = rig.log()
    for topic, _, words in bad:
        assert any(
            topic in line and words in line for line in log.splitlines() if "MQTT: ignored" in line
        ), (topic, words)
    # and the gateway goes on: a good command works
    n = len(w.snapshot())
    w.publish(f"kithnet/{plug}/switch/set", b"OFF")
    _after(rig, f"kithnet/{plug}/switch", n, lambda v: v is False, "no command after bad ones")


# -- 4 ----------------------------------------------------------------------------------------


def _stored_uptimes(rig: Rig, node: str) -> tuple[list[int], list[int]]:
    """The uptimes the gateway stored for a node, in history's order, and apart those that
    are plainly late. A report a node sent again after the gateway's restart can come after
    a newer one: the gateway stores it (history) but keeps the newer value as the state and
    publishes only state, so a retained value never goes back in time. History's order is
    not always the order of arrival (one batch's rows are sorted by time), so a late one
    can look in order here: what was published is what BusRecorder saw."""
    with sqlite3.connect(rig.data / "kithnet.db") as db:
        q = ("SELECT h.value FROM history h JOIN nodes n ON n.num = h.node "
             "WHERE n.id = ? AND h.cap = 31 ORDER BY h.rowid")  # fmt: skip
        rows = [v for (v,) in db.execute(q, (node,))]
    kept, late, top = [], [], -1
    for v in rows:
        (kept if v >= top else late).append(v)
        top = max(top, v)
    return kept, late


def _uptimes_by_mqtt(rig: Rig, node: str) -> list[int]:
    """Each uptime the first time MQTT carried it. Delivery is at least once: QoS 1 may
    repeat a message, and the hub sends again what the broker acknowledged in the last
    RESEND_S before it went away (it may have lost it), so [0, 2, 0, 2, 4] is [0, 2, 4].
    A new value out of order stays visible: [0, 4, 2] is [0, 4, 2]."""
    seen: dict[int, None] = {}
    for v in rig.values(f"kithnet/{node}/uptime"):
        seen.setdefault(v)
    return list(seen)


def test_the_broker_goes_away_while_the_nodes_report(rig):
    """Starts the outage (the next tests run while it lasts); the gateway is killed and
    restarted in the middle of it: what it had queued on disk survives."""
    rig.bus = BusRecorder(rig.ns)
    rig.bus.start()
    rig.wait(lambda: len(rig.bus.uptimes) == len(rig.boards), why="no state on the bus")
    rig.outage_at = time.monotonic()
    rig.broker.stop()  # SIGTERM: see the module's docstring
    rig.wait(
        lambda: rig.metrics()["mqtt_queued"] >= 2 * len(rig.boards),
        20,
        "readings were not queued while the broker was away",
    )
    queued = rig.metrics()["mqtt_queued"]
    rig.kill_gateway()
    rig.start_gateway()
    rig.wait(rig.all_online, why="the nodes did not come back to the restarted gateway")
    m = rig.metrics()
    assert m["mqtt_connected"] == 0 and m["mqtt_queued"] >= queued - 8, (m, queued)


def test_a_broker_refusing_the_password_stops_nothing(tmp_path):
    """A gateway whose broker refuses its credentials: one clear error at start-up, retries
    with backoff, and the API works all along. (Its own broker, on the machine's loopback.)"""
    broker = Broker(tmp_path / "auth", users={"kithnet": "right"}).start()
    http = free_port()
    log = tmp_path / "gw.log"
    argv = [
        KITHNET,
        "gateway",
        "--data",
        str(tmp_path / "gw"),
        "--udp",
        "127.0.0.1:0",
        "--http",
        f"127.0.0.1:{http}",
        "--token",
        TOKEN,
        "--no-discovery",
        "--mqtt-url",
        f"mqtt://kithnet:wrong@127.0.0.1:{broker.port}",
    ]
    with open(log, "wb") as out:
        gw = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        end = time.monotonic() + WAIT
        text = ""
        while time.monotonic() < end and text.count("not authorised") < 2:
            text = broker.log.read_text(errors="replace")
            time.sleep(0.1)
        assert text.count("not authorised") >= 2, "the gateway did not try again"
        req = urllib.request.Request(
            f"http://127.0.0.1:{http}/api/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            m = json.loads(r.read())
        assert m["mqtt_connected"] == 0 and m["mqtt_connects"] == 0
        lines = [ln for ln in log.read_text().splitlines() if "refused the connection" in ln]
        assert len(lines) == 1, lines  # once per cause, not once per try
        assert "ERROR" in lines[0] and "user and password" in lines[0]
        assert f"127.0.0.1:{broker.port}" in lines[0] and "gateway runs on" in lines[0]
    finally:
        B.stop_process(gw, 20)
        broker.stop()


def test_after_the_outage_every_reading_arrives_in_order(rig):
    if rig.outage_at is None:
        test_the_broker_goes_away_while_the_nodes_report(rig)
    left = OUTAGE_S - (time.monotonic() - rig.outage_at)
    if left > 0:
        time.sleep(left)  # the outage is the 30 s; the nodes report all along
    rig.broker.start()  # with its persistence: the watcher's session and what was retained
    rig.wait(
        lambda: (m := rig.metrics())["mqtt_connected"] and m["mqtt_queued"] == 0,
        WAIT,
        "the outbox was not drained",
    )
    w = rig.watcher
    assert rig.bus is not None
    for kind, b in rig.boards.items():
        node = b.node_id.hex()
        # Every reading the gateway published (on its bus, as its API shows it) reaches MQTT,
        # and in the order the node made them. Stored but not published: late ones only.
        history, late = _stored_uptimes(rig, node)
        published = list(rig.bus.uptimes.get(node, []))
        try:
            got = w.wait(
                lambda n=node, want=set(published): (
                    (u := _uptimes_by_mqtt(rig, n)) and want <= set(u) and u
                ),
                20,
            )
        except TimeoutError:
            got = _uptimes_by_mqtt(rig, node)
            times = [(round(m.t % 1000, 3), m.text) for m in w.on(f"kithnet/{node}/uptime")]
            errors = [ln for ln in rig.log().splitlines() if "ERROR" in ln or "WARNING" in ln]
            pytest.fail(
                f"{kind}: readings missing on MQTT: {sorted(set(published) - set(got))}\n"
                f"published: {published}\nstored: {history} (late: {late})\n"
                f"MQTT:   {got}\nreceived: {times}\n"
                f"--- gateway log: {rig.gw_log} ---\n" + "\n".join(errors[-40:])
            )
        assert got == sorted(got) and len(set(got)) == len(got), (kind, got)
        assert len(history) >= OUTAGE_S / 2 - 2, (kind, len(history))  # every 2 s, all along
        assert len(published) >= OUTAGE_S / 2 - 4, (kind, published)  # the recorder heard
    rig.bus.done.set()
    m = rig.metrics()
    assert m["mqtt_dropped"] == 0
    for b in rig.boards.values():
        assert w.last(f"kithnet/{b.node_id.hex()}/availability").text == "online"


# -- 5 ----------------------------------------------------------------------------------------


def test_a_gateway_crash_leaves_nothing_unavailable(rig):
    w = rig.watcher
    gw_avail = f"kithnet/gateway/{rig.gid}/availability"
    plug = f"kithnet/{rig.node('plug')}/switch"
    # A command retained by mistake runs now, and is ignored (with a log line) when the
    # broker hands it over again at the next connection: it would run at every one.
    n = len(w.snapshot())
    w.publish(plug + "/set", b"ON", retain=True)
    _after(rig, plug, n, lambda v: v is True, "the retained command did not run")
    n = len(w.snapshot())
    rig.kill_gateway()
    w.wait(
        lambda: [m for m in w.on(gw_avail, n) if m.text == "offline"],
        20,
        "the broker did not publish the gateway's last will",
    )
    n = len(w.snapshot())
    rig.start_gateway()
    w.wait(
        lambda: [m for m in w.on(gw_avail, n) if m.text == "online"],
        WAIT,
        "the restarted gateway did not say it is online",
    )
    rig.wait(rig.all_online, why="the nodes did not come back")
    rig.wait(
        lambda: "ignored " + plug + "/set: a retained command" in rig.log(),
        10,
        "the retained command was not refused at the reconnection",
    )
    w.publish(plug + "/set", b"", retain=True)  # cleared
    # Every entity needs the gateway and its node online (availability_mode all): both are.
    fresh = Watcher(BROKER_PORT, ["kithnet/#", "homeassistant/#"], ns=rig.ns)
    try:
        fresh.wait(lambda: rig.retained(fresh).keys() >= _expected_discovery(rig), 10)
        ret = rig.retained(fresh)
        assert ret[gw_avail] == b"online"
        for b in rig.boards.values():
            assert ret[f"kithnet/{b.node_id.hex()}/availability"] == b"online"
    finally:
        fresh.close()


# -- 6 ----------------------------------------------------------------------------------------


def test_a_broker_restarted_without_persistence_is_made_whole(rig):
    rig.broker.kill()  # SIGKILL, and no database: nothing retained, no sessions
    rig.broker.forget()
    rig.broker.start(persistence=False)  # nothing retained, no sessions
    rig.wait(lambda: rig.metrics()["mqtt_connected"], WAIT, "the gateway did not reconnect")
    fresh = Watcher(BROKER_PORT, ["kithnet/#", "homeassistant/#"], ns=rig.ns)
    try:
        want = _expected_discovery(rig)
        for b in rig.boards.values():
            node = b.node_id.hex()
            want |= {
                f"kithnet/{node}/{leaf}" for leaf in ("availability", "info", "update", "owner")
            }
            dev = rig.api(f"/api/devices/{node}")
            want |= {f"kithnet/{node}/{name}" for name in dev["state"] if name != "button"}
        fresh.wait(
            lambda: rig.retained(fresh).keys() >= want,
            WAIT,
            f"missing: {sorted(want - rig.retained(fresh).keys())}",
        )
        ret = rig.retained(fresh)
        assert ret[f"kithnet/gateway/{rig.gid}/availability"] == b"online"
        assert all(
            ret[f"kithnet/{b.node_id.hex()}/availability"] == b"online" for b in rig.boards.values()
        )
    finally:
        fresh.close()
