"""The MQTT hub with gateways in this process (tests/gwrun.py) and emulated nodes
(tools/fleet.py), against a real mosquitto on the machine's loopback: two gateways on one
broker, each node published by one of them, and the outbox's bound.
"""

from __future__ import annotations

import json
import logging
import time

import pytest
from gwrun import GatewayThread
from kithnet.protocol import messages as M
from kithnet.tools import fleet as F
from mqtt_broker import Broker, Watcher, pki

WAIT = 30


def _metric(g: GatewayThread, name: str):
    """A metric, read on the gateway's loop (inside g.wait: g.gw.metrics() as it is)."""
    return g.call(lambda: g.gw.metrics()[name])


def _owner(w: Watcher, node: str) -> str | None:
    m = w.last(f"kithnet/{node}/owner")
    return m.text if m else None


def _via(w: Watcher, node: str) -> str | None:
    m = w.last(f"homeassistant/device/kithnet_{node}/config")
    return json.loads(m.payload)["dev"]["via_device"] if m and m.payload else None


def test_two_gateways_on_one_broker_publish_each_node_once(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="kithnet.gateway.mqtt")
    broker = Broker(tmp_path / "broker").start()
    w = Watcher(broker.port, ["kithnet/#", "homeassistant/#"])
    nodes = F.make_nodes(2, plugs=0.5)
    keys = tmp_path / "keys.jsonl"
    F.write_keys(keys, nodes)  # both gateways hold both nodes' keys
    a = b = None
    fleets: list[F.Fleet] = []
    try:
        a = GatewayThread(
            None, data=str(tmp_path / "a"), keys=str(keys), name="Floor 1", mqtt_url=broker.url
        )
        fa = F.Fleet(nodes, ("127.0.0.1", a.gw.udp_port))
        fleets.append(fa)
        assert fa.connect(WAIT) == 2
        fa.send(count=2, rate=100)
        ga = a.gw.mqtt.s.gateway_id
        w.wait(lambda: all(_owner(w, n.hex) == ga for n in nodes), WAIT, "A claimed nothing")
        b = GatewayThread(
            None, data=str(tmp_path / "b"), keys=str(keys), name="Floor 2", mqtt_url=broker.url
        )
        gb = b.gw.mqtt.s.gateway_id
        assert gb != ga and b.gw.mqtt.s.client_id != a.gw.mqtt.s.client_id
        w.wait(lambda: (m := w.last(f"kithnet/gateway/{gb}/availability")) and m.text == "online")
        b.wait(lambda: b.gw.mqtt.ready, WAIT)
        # B knows the nodes too, but A publishes them: B leaves them alone, and says so.
        assert b.call(lambda: sorted(b.gw.mqtt.views)) == []
        assert all(_owner(w, n.hex) == ga and _via(w, n.hex) == f"kithnet_gw_{ga}" for n in nodes)
        said = [
            r.getMessage() for r in caplog.records if "is published by gateway" in r.getMessage()
        ]
        assert len(said) == 2 and all(ga in s for s in said)
        # Each gateway is a device of its own in Home Assistant.
        for gid in (ga, gb):
            w.wait(lambda g=gid: w.last(f"homeassistant/device/kithnet_gw_{g}/config"), WAIT)
        # A stops (its "offline" on the broker); the nodes turn to B, which takes them over.
        a.stop()
        fa.close()
        fleets.clear()
        w.wait(lambda: w.last(f"kithnet/gateway/{ga}/availability").text == "offline", WAIT)
        fb = F.Fleet(nodes, ("127.0.0.1", b.gw.udp_port))
        fleets.append(fb)
        assert fb.connect(WAIT) == 2
        fb.send(count=2, rate=100)
        w.wait(lambda: all(_owner(w, n.hex) == gb for n in nodes), WAIT, "B did not take over")
        w.wait(lambda: all(_via(w, n.hex) == f"kithnet_gw_{gb}" for n in nodes), WAIT)
        assert all(w.last(f"kithnet/{n.hex}/availability").text == "online" for n in nodes)
    finally:
        for f in fleets:
            f.close()
        for g in (a, b):
            if g is not None:
                g.stop()
        w.close()
        broker.stop()


def test_the_outbox_keeps_the_newest_readings_within_its_bound(tmp_path):
    broker = Broker(tmp_path / "broker", persistence=True).start()
    w = Watcher(broker.port, ["kithnet/+/temperature"], client_id="bound-watch", clean=False)
    (node,) = F.make_nodes(1)
    keys = tmp_path / "keys.jsonl"
    F.write_keys(keys, [node])
    g = GatewayThread(
        None, data=str(tmp_path / "gw"), keys=str(keys), mqtt_url=broker.url, mqtt_queue_max=100
    )
    fleet = F.Fleet([node], ("127.0.0.1", g.gw.udp_port))
    try:
        assert fleet.connect(WAIT) == 1
        g.wait(lambda: g.gw.metrics()["mqtt_connected"], WAIT)
        broker.stop()  # with its database: the watcher's session waits for what comes
        g.wait(lambda: not g.gw.metrics()["mqtt_connected"], WAIT)
        fleet.send(count=300, rate=2000, bodies=lambda k, _s: {1: 1000 + k, M.DUE: F.DUE_S})
        g.wait(lambda: g.gw.metrics()["mqtt_dropped"] == 200, WAIT, "the bound did not hold")
        assert _metric(g, "mqtt_queued") == 100
        n = len(w.snapshot())
        broker.start()
        g.wait(lambda: (m := g.gw.metrics())["mqtt_connected"] and m["mqtt_queued"] == 0, WAIT)
        topic = f"kithnet/{node.hex}/temperature"
        want = [(1000 + k) / 100 for k in range(200, 300)]  # the newest 100, in order

        def newest() -> list | None:
            v = [json.loads(m.payload) for m in w.on(topic, n)]
            return v if v[: len(want)] == want else None

        got = w.wait(newest, WAIT, "not the newest 100 in order")
        assert set(got) <= set(want)  # then at most the same again (the current state)
        assert _metric(g, "mqtt_dropped") == 200  # counted, and kept across the reconnection
    finally:
        fleet.close()
        g.stop()
        w.close()
        broker.stop()


@pytest.fixture(autouse=True)
def _quiet_paho():
    logging.getLogger("paho").setLevel(logging.WARNING)


def test_a_node_removed_while_the_broker_is_away_leaves_it_when_it_returns(tmp_path):
    broker = Broker(tmp_path / "broker", persistence=True).start()
    nodes = F.make_nodes(2, plugs=0.5)
    keys = tmp_path / "keys.jsonl"
    F.write_keys(keys, nodes)
    g = GatewayThread(None, data=str(tmp_path / "gw"), keys=str(keys), mqtt_url=broker.url)
    fleet = F.Fleet(nodes, ("127.0.0.1", g.gw.udp_port))
    gone, kept = nodes[1].hex, nodes[0].hex  # the plug goes
    try:
        assert fleet.connect(WAIT) == 2
        fleet.send(count=2, rate=100)
        g.wait(lambda: g.gw.metrics()["mqtt_published"] >= 2 + 5 and not g.gw.mqtt.queued())

        def retained() -> set[str]:
            w = Watcher(broker.port, ["kithnet/#", "homeassistant/#"])
            try:
                time.sleep(0.3)  # retained messages come right after the subscription
                return {m.topic for m in w.snapshot() if m.retain and m.payload}
            finally:
                w.close()

        before = retained()
        assert f"homeassistant/device/kithnet_{gone}/config" in before
        assert {
            f"kithnet/{gone}/{c}" for c in ("power", "energy", "owner", "availability")
        } <= before
        broker.stop()
        g.call(g.gw.forget, gone)
        broker.start()
        g.wait(lambda: (m := g.gw.metrics())["mqtt_connected"] and m["mqtt_queued"] == 0, WAIT)
        after = retained()
        assert not [t for t in after if gone in t], sorted(t for t in after if gone in t)
        assert {t for t in before if kept in t} <= after
    finally:
        fleet.close()
        g.stop()
        broker.stop()


def test_mqtts_with_a_ca_and_a_client_certificate(tmp_path, caplog):
    """mqtts:// with mqtt_ca, mqtt_cert and mqtt_key against a broker that wants a client
    certificate; without the CA the broker's certificate is refused, clearly."""
    files = pki(tmp_path / "pki")
    broker = Broker(tmp_path / "broker", tls=files).start()
    good = bad = None
    try:
        good = GatewayThread(
            None,
            data=str(tmp_path / "good"),
            mqtt_url=broker.url,
            mqtt_ca=str(files["ca"]),
            mqtt_cert=str(files["client_cert"]),
            mqtt_key=str(files["client_key"]),
        )
        good.wait(lambda: good.gw.mqtt.ready, WAIT, "no TLS session with the broker")
        bad = GatewayThread(None, data=str(tmp_path / "bad"), mqtt_url=broker.url)
        bad.wait(lambda: bad.gw.mqtt.link.last_error, WAIT)
        assert not _metric(bad, "mqtt_connected")
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert any("certificate verify failed" in e and broker.url in e for e in errors), errors
    finally:
        for g in (good, bad):
            if g is not None:
                g.stop()
        broker.stop()


@pytest.mark.parametrize("road", ["live", "outbox"])
def test_what_a_dying_broker_acknowledged_last_is_sent_again(tmp_path, monkeypatch, road):
    """A broker killed outright (SIGKILL, no persistence) forgets what it acknowledged since
    its last save: the hub sends the data acknowledged just before a lost connection again
    after the next one (hub.RESEND_S; made long here so that no test depends on timing).
    Both roads: readings published live, and readings that waited in the outbox while the
    broker was away and were acknowledged from it (they go back to the outbox under their
    old numbers, and must leave it once acknowledged anew)."""
    from kithnet.gateway.mqtt import hub

    monkeypatch.setattr(hub, "RESEND_S", 600.0)
    broker = Broker(tmp_path / "broker").start()
    (node,) = F.make_nodes(1)
    keys = tmp_path / "keys.jsonl"
    F.write_keys(keys, [node])
    g = GatewayThread(None, data=str(tmp_path / "gw"), keys=str(keys), mqtt_url=broker.url)
    fleet = F.Fleet([node], ("127.0.0.1", g.gw.udp_port))
    topic = f"kithnet/{node.hex}/temperature"
    w = None
    try:
        assert fleet.connect(WAIT) == 1
        g.wait(lambda: g.gw.metrics()["mqtt_connected"], WAIT)
        if road == "outbox":
            broker.stop()
            g.wait(lambda: not g.gw.metrics()["mqtt_connected"], WAIT)
        fleet.send(count=5, rate=100, bodies=lambda k, _s: {1: 2000 + k, M.DUE: F.DUE_S})
        if road == "outbox":
            g.wait(lambda: g.gw.metrics()["mqtt_queued"] == 5, WAIT)  # on disk
            broker.start(persistence=False)
        g.wait(lambda: g.gw.metrics()["mqtt_published"] >= 5, WAIT)  # acknowledged
        broker.kill()  # everything it held is gone: nobody will ever hear these five
        g.wait(lambda: not g.gw.metrics()["mqtt_connected"], WAIT)
        assert _metric(g, "mqtt_queued") == 5  # kept on disk, to be sent again
        published = _metric(g, "mqtt_published")
        broker.start()
        w = Watcher(broker.port, [topic])
        g.wait(lambda: (m := g.gw.metrics())["mqtt_queued"] == 0 and m["mqtt_connected"], WAIT,
               "the readings sent again stay in the outbox (sent at every connection)")  # fmt: skip
        # The five data messages again (the state snapshot after them is not counted).
        g.wait(lambda: g.gw.metrics()["mqtt_published"] == published + 5, WAIT)
        assert json.loads(w.wait(lambda: w.last(topic), WAIT).payload) == 20.04
    finally:
        if w is not None:
            w.close()
        fleet.close()
        g.stop()
        broker.stop()
