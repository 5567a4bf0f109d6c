"""A gateway killed (SIGKILL) while connected to its broker loses nothing on MQTT: the
readings it had handed to the broker without an acknowledgement, or not handed yet, come
from history at its next start (gateway/mqtt/catchup.py).

The gateway runs as a process of its own so that it can be killed outright; its broker
connection passes through a TCP relay (tests/tcprelay.py) whose way to the broker is cut
first, so the broker surely never has the readings the gateway published last. A real
mosquitto, an emulated node (tools/fleet.py), all on the machine's loopback."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from kithnet.protocol import messages as M
from kithnet.tools import board as B
from kithnet.tools import fleet as F
from mqtt_broker import Broker, Watcher
from procs import free_port
from tcprelay import TcpRelay

WAIT = 30
TOKEN = "mqtt-crash-test"
KITHNET = str(Path(sys.executable).with_name("kithnet"))
BEFORE, CUT = 5, 20  # readings before the cut, and while it lasts


class Gateway:
    def __init__(self, data: Path, keys: Path, mqtt_port: int) -> None:
        self.data = data
        self.udp = free_port(socket.SOCK_DGRAM)
        self.http = free_port()
        argv = [KITHNET, "gateway", "--data", str(data), "--keys", str(keys),
                "--udp", f"127.0.0.1:{self.udp}", "--http", f"127.0.0.1:{self.http}",
                "--token", TOKEN, "--no-discovery",
                "--mqtt-url", f"mqtt://127.0.0.1:{mqtt_port}"]  # fmt: skip
        self.log = data.with_suffix(f".{self.http}.log")
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)

    def metrics(self) -> dict:
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.http}/api/metrics",
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return json.loads(r.read())
        except OSError:
            return {}

    def stored(self, cap: int) -> int:
        with sqlite3.connect(self.data / "kithnet.db") as db:
            return db.execute("SELECT count(*) FROM history WHERE cap = ?", (cap,)).fetchone()[0]


def _until(what, why: str, timeout: float = WAIT):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if r := what():
            return r
        time.sleep(0.05)
    raise AssertionError(why)


def test_a_gateway_killed_while_connected_sends_later_what_the_broker_never_had(tmp_path):
    broker = Broker(tmp_path / "broker").start()
    relay = TcpRelay(broker.port)
    (node,) = F.make_nodes(1)
    keys = tmp_path / "keys.jsonl"
    F.write_keys(keys, [node])
    topic = f"kithnet/{node.hex}/temperature"
    w = Watcher(broker.port, [topic])
    data = tmp_path / "gw"
    gws = [Gateway(data, keys, relay.port)]
    fleet = None
    try:
        fleet = F.Fleet([node], ("127.0.0.1", gws[0].udp))
        _until(lambda: gws[0].metrics().get("mqtt_connected"), "the gateway did not connect")
        assert fleet.connect(WAIT) == 1
        fleet.send(count=BEFORE, rate=50, bodies=lambda k, _n: {1: 2000 + k, M.DUE: F.DUE_S})
        w.wait(lambda: len(w.on(topic)) >= BEFORE, WAIT, "the first readings did not arrive")
        # The link to the broker goes silent; the gateway publishes on, unacknowledged.
        relay.cut = True
        fleet.send(count=CUT, rate=50, bodies=lambda k, _n: {1: 2000 + BEFORE + k, M.DUE: F.DUE_S})
        _until(lambda: gws[0].stored(1) == BEFORE + CUT, "the readings were not stored")
        _until(lambda: relay.dropped > 0, "the gateway published nothing into the cut link")
        m = gws[0].metrics()
        assert m["mqtt_connected"] and m["mqtt_queued"] > 0  # in memory, not on disk
        gws[0].proc.send_signal(signal.SIGKILL)
        gws[0].proc.wait(WAIT)
        relay.drop_connections()
        relay.cut = False
        heard = [json.loads(m.payload) for m in w.on(topic)]
        assert 20.0 + (BEFORE + CUT - 1) / 100 not in heard  # the broker never had the last

        gws.append(Gateway(data, keys, relay.port))
        want = [round(20 + k / 100, 2) for k in range(BEFORE + CUT)]

        def firsts() -> list[float]:
            seen: dict[float, None] = {}  # at least once: each value's first arrival
            for msg in w.on(topic):
                seen.setdefault(json.loads(msg.payload))
            return list(seen)

        try:
            w.wait(lambda: set(want) <= set(firsts()), WAIT)
        except TimeoutError:
            raise AssertionError(
                f"missing on MQTT: {sorted(set(want) - set(firsts()))}\n"
                + gws[1].log.read_text(errors="replace")[-3000:]
            ) from None
        assert firsts() == want  # in the order the node made them
        said = gws[1].log.read_text(errors="replace")
        assert "sent again, before new ones" in said
        # A clean stop leaves nothing to send again at the next start.
        _until(lambda: gws[1].metrics().get("mqtt_queued") == 0, "the gateway kept a backlog")
        B.stop_process(gws[1].proc, 20)
        gws.append(Gateway(data, keys, relay.port))
        _until(lambda: gws[2].metrics().get("mqtt_connected"), "the gateway did not reconnect")
        assert "sent again" not in gws[2].log.read_text(errors="replace")
    finally:
        if fleet is not None:
            fleet.close()
        for g in gws:
            B.stop_process(g.proc, 20)
        w.close()
        relay.close()
        broker.stop()
