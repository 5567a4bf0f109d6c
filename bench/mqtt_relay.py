"""MQTT relay: node reports relayed by a kithnet gateway to MQTT publishes per second, against
the publish ceiling of the same MQTT client alone, and the latency from node to subscriber.

    .venv/bin/python bench/mqtt_relay.py [--quick] [--nodes N]

Everything runs on 127.0.0.1, against a mosquitto this script starts itself (Debian's, with
`set_tcp_nodelay true`, no persistence) and stops at the end. Measured in one run:

1. Client ceiling (client_ceiling_per_s): the gateway's own MQTT client stack alone,
   kithnet.gateway.mqtt.link.Link (paho-mqtt on an asyncio loop, TCP_NODELAY), in this
   process, publishing QoS 1 retained messages as the relay does (topic
   kithnet/<node>/temperature, a 5-byte JSON number) as fast as it can, with the relay's
   window of unacknowledged messages (hub.WINDOW); rate = PUBACKs per second.
2. Relay (relay_per_s): `kithnet gateway --mqtt-url ...` as a subprocess, N nodes of
   tools/fleet.py (1,000 in a full run, 300 with --quick: CPython emulated nodes, each with
   its own key and session, every frame really sealed) in a worker process. Each report
   carries one reading (temperature), so one report is one MQTT publish. The fleet offers
   rising rates (fractions of the ceiling) for a few seconds each; a step's relay rate is
   the growth of the gateway's `mqtt_published` (publishes the broker acknowledged) per
   second over the step after a warm-up. relay_per_s is the highest; ratio = relay_per_s /
   client_ceiling_per_s. The gateway does all of its work meanwhile: opening,
   de-duplicating and acknowledging each frame, state, history (SQLite, in its writer
   process), the bus, then MQTT. Past the knee the gateway reads fewer reports than are
   offered (the kernel drops the rest at its socket), and the relay rate falls with what
   it reads: the highest step is the knee.
3. Latency (p50_ms, p99_ms) at 1,000 reports/s: the fleet sends reports whose temperature
   is a marker unique in the phase and logs time.time() just before each send; a paho-mqtt
   subscriber in this process (QoS 0, its own thread) stamps time.time() when each arrives
   on kithnet/<node>/temperature. Unmatched markers are counted (latency_lost).

The machine has 2 vCPUs. The ceiling's client has one core and mosquitto the other; in the
relay the gateway shares them with the fleet, its SQLite writer and mosquitto. Goals,
reported and never asserted: relay_per_s >= 0.5 x client_ceiling_per_s; p99 < 25 ms.

Prints tables, then one JSON object as the last line.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from harness import (
    FleetProcess,
    Gateway,
    cpu_s,
    free_port,
    kithnet_command,
    latencies_ms,
    pct,
    plan_from_args,
    run,
)
from kithnet.gateway.mqtt.hub import WINDOW
from kithnet.gateway.mqtt.link import Link
from kithnet.gateway.mqtt.settings import MqttSettings
from kithnet.protocol import messages as M
from kithnet.tools import fleet as F
from kithnet.tools.board import stop_process
from paho.mqtt.enums import CallbackAPIVersion

SEED = 20260105
MARKER_BASE = 5000  # latency markers: temperature 50.00 degC and up
LATENCY_RATE = 1000
PAYLOAD = b"21.55"  # what a temperature reading looks like on its topic


@dataclass(frozen=True)
class Plan:
    nodes: int
    ceiling_s: float
    ramp: tuple[float, ...]  # offered rates, as fractions of the ceiling
    step_s: float
    warm_s: float
    latency_s: float


# The knee (where the gateway stops keeping up) is near 0.6 of the ceiling on this machine:
# the steps are finer there.
QUICK = Plan(300, 2.0, (0.5, 0.65, 0.8), 2.5, 0.8, 2.5)
FULL = Plan(1000, 5.0, (0.3, 0.45, 0.55, 0.6, 0.65, 0.7, 0.8, 1.0), 5.0, 1.5, 8.0)


# -- the broker ----------------------------------------------------------------------------


class Mosquitto:
    def __init__(self, work: Path) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(exe).exists():
            sys.exit("mqtt_relay: mosquitto is not installed (apt-get install mosquitto)")
        self.port = free_port()
        conf = work / "mosquitto.conf"
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true",
                 "set_tcp_nodelay true", "persistence false", "max_queued_messages 0",
                 "log_dest stderr", "log_type error"]  # fmt: skip
        if os.geteuid() == 0:
            lines.append("user root")
        conf.write_text("\n".join(lines) + "\n")
        self.proc = subprocess.Popen([exe, "-c", str(conf)], stderr=subprocess.PIPE)
        end = time.monotonic() + 10
        while time.monotonic() < end:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    sys.exit(f"mqtt_relay: mosquitto exited: {self.proc.stderr.read()!r}")
                time.sleep(0.02)
        sys.exit("mqtt_relay: mosquitto did not start")

    def cpu_s(self) -> float:
        return cpu_s(self.proc.pid)

    def stop(self) -> None:
        stop_process(self.proc, 10)


# -- 1. the client alone -------------------------------------------------------------------


class _Counter:
    """The Link's handler: counts PUBACKs and keeps the window full."""

    def __init__(self) -> None:
        self.acked = 0
        self.sent = 0
        self.ready = asyncio.Event()
        self.link: Link | None = None
        self.topics = [f"kithnet/{i:016x}/temperature" for i in range(1000)]
        self.until = 0.0

    def on_connected(self) -> None:
        self.ready.set()

    def on_lost(self) -> None:
        pass

    def on_message(self, topic: str, payload: bytes, retain: bool) -> None:
        pass

    def on_ack(self, mid: int) -> None:
        self.acked += 1
        self.fill()

    def fill(self) -> None:
        link, topics = self.link, self.topics
        assert link is not None
        if time.perf_counter() >= self.until:
            return
        while self.sent - self.acked < WINDOW:
            if link.publish(topics[self.sent % 1000], PAYLOAD, True) is None:
                return
            self.sent += 1


async def _ceiling(port: int, seconds: float) -> dict:
    s = MqttSettings(host="127.0.0.1", port=port, tls=False, username=None, password=None,
                     ca=None, cert=None, key=None, client_id="bench-ceiling", prefix="kithnet",
                     discovery_prefix="homeassistant", queue_max=1, gateway_id="bench")  # fmt: skip
    h = _Counter()
    link = h.link = Link(s, ("kithnet/gateway/bench/availability", b"offline"), [], h)
    link.start()
    await asyncio.wait_for(h.ready.wait(), 10)
    c0 = time.process_time()
    t0 = time.perf_counter()
    h.until = t0 + seconds
    h.fill()
    while h.acked < h.sent or time.perf_counter() < h.until:
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0
    await link.stop([])
    return {"acked": h.acked, "seconds": elapsed, "per_s": h.acked / elapsed,
            "cpu_us_per_msg": cpu / max(h.acked, 1) * 1e6}  # fmt: skip


# -- 2. the relay (the fleet runs in its own process: harness.FleetProcess) ---------------


def _bodies(kw: dict[str, Any], log: bool):
    """The k-th report's body: one temperature reading from base=, in the kind's range
    (< 327.67). Readings differ from report to report (every one is a new value); the
    latency phase's (log=True: every send timed) are markers unique in the phase."""
    base = kw.pop("base")

    def body(k: int, spec: F.NodeSpec) -> dict:
        return {1: base + (k if log else k % 1000), M.DUE: F.DUE_S}

    return body


def _step(gw: Gateway, fleet: FleetProcess, rate: float, plan: Plan, base: int) -> dict:
    fleet.start("send", rate=rate, seconds=plan.step_s, base=base)
    time.sleep(plan.warm_s)
    m0, t0, c0 = gw.metrics(), time.monotonic(), gw.cpu_s()
    time.sleep(max(0.5, plan.step_s - plan.warm_s - 0.3))
    m1, t1, c1 = gw.metrics(), time.monotonic(), gw.cpu_s()
    sent = fleet.result()
    dt = t1 - t0
    t = time.monotonic()
    m2 = gw.wait(lambda m: m["mqtt_queued"] == 0, 120, "the relay did not drain")
    return {
        "offered_per_s": sent["rate"],
        "relay_per_s": (m1["mqtt_published"] - m0["mqtt_published"]) / dt,
        "processed_per_s": (m1["reports_processed"] - m0["reports_processed"]) / dt,
        "gateway_cpu": (c1 - c0) / dt,
        "queued_at_end": m1["mqtt_queued"],
        "drain_s": time.monotonic() - t,
        "sent": sent["sent"],
        "published": m2["mqtt_published"],
    }


class Subscriber:
    """Receipt times of the latency markers (paho-mqtt in its own thread, QoS 0)."""

    def __init__(self, port: int) -> None:
        self.got: dict[tuple[str, int], float] = {}
        self.ready = threading.Event()
        c = self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-latency")
        c.on_connect = lambda c, *_: (c.subscribe("kithnet/+/temperature", 0), self.ready.set())
        c.on_message = self._message
        c.on_socket_open = lambda _c, _u, s: s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.connect("127.0.0.1", port)
        c.loop_start()
        self.ready.wait(10)

    def _message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        t = time.time()
        if msg.retain:
            return
        try:
            v = round(float(msg.payload) * 100)
        except ValueError:
            return
        if v >= MARKER_BASE:
            self.got.setdefault((msg.topic.split("/")[1], v), t)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


# -- the run -------------------------------------------------------------------------------


def bench(plan: Plan, work: Path) -> dict:
    out: dict[str, Any] = {}
    broker = Mosquitto(work)
    try:
        b0 = broker.cpu_s()
        out["ceiling"] = asyncio.run(_ceiling(broker.port, plan.ceiling_s))
        out["ceiling"]["broker_cpu"] = (broker.cpu_s() - b0) / out["ceiling"]["seconds"]
        ceiling = out["ceiling"]["per_s"]
        nodes = F.make_nodes(plan.nodes, seed=SEED)
        keys = work / "keys.jsonl"
        F.write_keys(keys, nodes)
        fleet = FleetProcess(keys, SEED, _bodies)
        gw = Gateway(kithnet_command(), work, keys, "--mqtt-url", f"mqtt://127.0.0.1:{broker.port}")
        try:
            gw.wait(lambda m: m.get("mqtt_connected") == 1, 60, "the gateway did not connect")
            hs = fleet.call("connect", gateway=("127.0.0.1", gw.udp_port), timeout=60)
            out["online"] = hs["online"]
            fleet.call("send", count=hs["online"], rate=5000.0, base=0)  # every node has state
            gw.wait(lambda m: m["mqtt_queued"] == 0 and m["mqtt_nodes"] == plan.nodes, 60,
                    "the first reports were not relayed")  # fmt: skip
            out["steps"] = steps = []
            for i, f in enumerate(plan.ramp):
                b0 = broker.cpu_s()
                st = _step(gw, fleet, f * ceiling, plan, 100 * (i + 1))
                st["broker_cpu"] = (broker.cpu_s() - b0) / (plan.step_s + st["drain_s"])
                steps.append({"fraction": f, **st})
            sub = Subscriber(broker.port)
            try:
                time.sleep(0.3)
                res = fleet.call("send", rate=LATENCY_RATE, seconds=plan.latency_s,
                                 base=MARKER_BASE, log=True)  # fmt: skip
                n, still = len(sub.got), time.monotonic()
                while len(sub.got) < res["sent"] and time.monotonic() - still < 3:
                    time.sleep(0.05)
                    if len(sub.got) != n:
                        n, still = len(sub.got), time.monotonic()
            finally:
                sub.close()
            lat = latencies_ms(res["sent_at"], sub.got, nodes, MARKER_BASE)
            out["latency"] = {"sent": res["sent"], "rate": res["rate"], "ms": lat}
            out["metrics"] = gw.metrics()
        finally:
            gw.stop(30)
            fleet.close()
            out["gateway_log_tail"] = gw.log_tail(1500)
    finally:
        broker.stop()
    return out


def summary(plan: Plan, quick: bool, out: dict) -> dict:
    ceiling = out["ceiling"]["per_s"]
    steps = out.get("steps", [])
    relay = max((s["relay_per_s"] for s in steps), default=0.0)
    lat = out.get("latency", {}).get("ms", [])
    p50, p99 = pct(lat, 50), pct(lat, 99)
    ratio = relay / ceiling if ceiling else None
    m = out.get("metrics", {})

    def r(x: float | None, nd: int = 3) -> float | None:
        return None if x is None else round(x, nd)

    return {
        "quick": quick,
        "nodes": out.get("online", 0),
        "client_ceiling_per_s": round(ceiling),
        "client_cpu_us_per_msg": r(out["ceiling"]["cpu_us_per_msg"], 1),
        "relay_per_s": round(relay),
        "ratio": r(ratio),
        "p50_ms": r(p50),
        "p99_ms": r(p99),
        "max_ms": r(max(lat)) if lat else None,
        "latency_rate_per_s": r(out.get("latency", {}).get("rate"), 1),
        "latency_samples": len(lat),
        "latency_lost": out.get("latency", {}).get("sent", 0) - len(lat),
        "steps": [{k: (r(v) if isinstance(v, float) else v) for k, v in s.items()} for s in steps],
        "mqtt_dropped": m.get("mqtt_dropped"),
        "mqtt_published": m.get("mqtt_published"),
        "cpus": os.cpu_count(),
        "goals": {
            "half_the_ceiling": ratio is not None and ratio >= 0.5,
            "p99_under_25_ms": p99 is not None and p99 < 25,
        },
    }


def report(doc: dict, out: dict) -> None:
    c = out["ceiling"]
    print("kithnet MQTT relay (loopback, mosquitto with TCP_NODELAY, QoS 1)")
    print()
    print(
        f"client alone (paho-mqtt on asyncio, window {WINDOW}): {c['per_s']:,.0f} publishes/s,",
        f"{c['cpu_us_per_msg']:.1f} us CPU each, mosquitto {c['broker_cpu'] * 100:.0f}% CPU",
    )
    print()
    print(f"gateway relay, {doc['nodes']} fleet nodes, one reading per report:")
    print(f"{'offered/s':>10} {'relayed/s':>10} {'processed/s':>12} {'gw CPU':>7} "
          f"{'broker CPU':>11} {'queued':>7} {'drain s':>8}")  # fmt: skip
    for s in doc["steps"]:
        cpu, broker = s["gateway_cpu"] * 100, s["broker_cpu"] * 100
        print(
            f"{s['offered_per_s']:>10,.0f} {s['relay_per_s']:>10,.0f}",
            f"{s['processed_per_s']:>12,.0f} {cpu:>6.0f}% {broker:>10.0f}%",
            f"{s['queued_at_end']:>7} {s['drain_s']:>8.1f}",
        )
    print()
    print(f"relay / client ceiling: {doc['ratio']}  (goal >= 0.5: "
          f"{'met' if doc['goals']['half_the_ceiling'] else 'NOT met'})")  # fmt: skip
    print(f"latency node -> subscriber at {LATENCY_RATE}/s: p50 {doc['p50_ms']} ms, "
          f"p99 {doc['p99_ms']} ms, max {doc['max_ms']} ms ({doc['latency_samples']} matched, "
          f"{doc['latency_lost']} lost; goal p99 < 25 ms: "
          f"{'met' if doc['goals']['p99_under_25_ms'] else 'NOT met'})")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    plan, quick = plan_from_args(argv, __doc__, "300 nodes, short steps (< 1 min)", QUICK, FULL)
    run("kithnet-bench-mqtt-", lambda work: bench(plan, work),
        lambda out: summary(plan, quick, out), report)  # fmt: skip


if __name__ == "__main__":
    main()
