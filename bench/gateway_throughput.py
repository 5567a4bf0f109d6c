"""Gateway throughput: reports a kithnet gateway fully processes per second, against the
fastest plain receive loop on this machine, with latency to the WebSocket and memory per node.

    .venv/bin/python bench/gateway_throughput.py [--quick] [--nodes N]

Load comes from tools/fleet.py, run in a worker process: N emulated nodes (10,000 in a full
run, 1,000 with --quick) with their own ids and keys, each running the real handshake and
sealing every report under its own session with its own sequence numbers, over a few UDP
sockets on loopback. Everything stays on 127.0.0.1. Measured in one run, by the same fleet:

1. Reference ceiling (reference_per_s): a blocking `recv()` loop in this process that only
   receives, opens and decodes each report: frame.parse, then Session.open (replay window,
   AES-CCM, CBOR decode, field checks), nothing else. It first answers the fleet's
   handshakes itself (session.challenge), then the fleet sends NON reports flat out for a
   few seconds; rate = reports opened / time from the first to the last. raw_per_s is the
   same loop with the library's wrappers taken out (a kept AESCCM object and cbor2.loads,
   no subset or field checks): what those checks cost, for context, not the reference.
   If the loop took (almost) everything the fleet sent, the fleet was the limit and the
   figure is a lower bound (reference_fleet_bound). The loop's socket asks for a 4 MiB
   receive buffer (net.core.rmem_max here); the gateway keeps the buffer it sets itself,
   and the datagrams the kernel dropped at its socket are shown per step (/proc/net/udp).
2. Gateway (processed_per_s): `kithnet gateway --data DIR --udp ... --http ... --token T
   --no-discovery --keys KEYS` as a subprocess, the fleet's nodes adopted from the keys
   file (fleet.write_keys). The fleet connects every node, then sends at rising rates
   (fractions of the reference: a ramp that stops after the first step the gateway does
   not keep up with), then one step flat out, each for a few seconds. A step's rate is the
   growth of `reports_processed` (opened, applied to state, stored in history, published
   on the bus) in GET /api/metrics over its window after a warm-up; processed_per_s is the
   highest. A step is kept up with when, once the counter stops moving, >= 98% of the
   reports sent in it were processed and the backlog drained at once (lossless_per_s: the
   highest such offer). ratio = processed_per_s / reference_per_s. The gateway's CPU
   (utime + stime of all its threads, /proc/PID/stat) over each window says whether it
   was CPU-bound.
3. Latency (p50_ms, p99_ms) at 1,000 reports/s: the fleet sends reports whose temperature
   is a marker unique in the phase and logs time.time() just before each send; this process
   listens on ws://HOST:PORT/api/ws?token=T&types=state and stamps time.time() when each
   state message arrives; a marker is matched by (node, temperature). time.time() is the
   one clock the two processes share. Markers that never arrive are counted (latency_lost).
4. Memory per node (rss_bytes_per_node): the gateway's VmRSS (/proc/PID/status) after
   every node has a session and has sent one report, minus its VmRSS just after start with
   the keys imported and no node online, divided by the nodes online.

The machine has 2 vCPUs: the fleet takes one while it sends flat out, so a receiver (the
reference or the gateway) has the other; both are measured under the same condition.
Goals, reported and never asserted: >= 10,000 nodes on one gateway; processed >= half the
reference; p99 < 20 ms at 1,000 reports/s. Absolute rates drift between machines and with
whatever else runs; compare figures from one run.

Prints tables, then one JSON object as the last line.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import cbor2
from cryptography.hazmat.primitives.ciphers.aead import AESCCM
from harness import (
    TOKEN,
    FleetProcess,
    Gateway,
    gateway_command,
    latencies_ms,
    pct,
    plan_from_args,
    run,
)
from kithnet.protocol import frame, session
from kithnet.protocol import messages as M
from kithnet.protocol.errors import ProtocolError
from kithnet.tools import fleet as F

SEED = 20260101
STOP = b"STOP"  # not a frame (too short for its header): ends the reference loop
RCVBUF = 4 << 20
MARKER_BASE = 5000  # latency markers: temperature 50.00 degC and up (the fleet's own: < 25)
LATENCY_RATE = 1000
KEPT_UP = 0.98  # of the reports sent in a step, processed in the end
DRAIN_OK_S = 1.5  # the drain check alone takes 0.8 s


@dataclass(frozen=True)
class Plan:
    nodes: int
    ref_s: float  # each reference loop
    step_s: float  # each gateway step (warm-up included)
    warm_s: float
    ramp: tuple[float, ...]  # offered rates, as fractions of the reference, until one is lost
    latency_s: float
    connect_timeout_s: float


QUICK = Plan(1000, 2.0, 2.0, 0.7, (0.1, 0.2, 0.3, 0.45, 0.6), 3.0, 60.0)
FULL = Plan(10000, 5.0, 5.0, 1.5, (0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.65, 0.8, 1.0), 8.0, 180.0)


# -- the fleet's reports (the fleet runs in its own process: harness.FleetProcess) ---------


def _bodies(kw: dict[str, Any], log: bool):
    """With marker=BASE, the latency phase's reports: temperatures unique in the phase from
    BASE up; else the fleet's own pre-encoded ones."""
    base = kw.pop("marker", None)
    if base is None:
        return None

    def body(k: int, spec: F.NodeSpec) -> dict:
        return {1: base + k, 2: 5000, M.DUE: F.DUE_S}

    return body


# -- 1. the reference ceiling --------------------------------------------------------------


class Reference:
    """The gateway's part of the handshake, then nothing but receive, open and decode."""

    def __init__(self, nodes: list[F.NodeSpec]) -> None:
        self.keys = {n.node_id: n.key for n in nodes}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        self.sock.bind(("127.0.0.1", 0))
        self.addr = self.sock.getsockname()
        self.sessions: dict[int, session.Session] = {}

    def handshakes(self, fleet: FleetProcess, timeout: float) -> dict:
        """Answer hellos and confirms until the fleet says it is connected."""
        fleet.start("connect", gateway=self.addr, timeout=timeout)
        self.sock.settimeout(0.02)
        while not fleet.conn.poll(0):
            try:
                data, src = self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            p = frame.parse(data)
            if p[0] == frame.PLAIN:
                msg = data[1:]
                _, body = M.decode(msg)
                sid = random.randrange(1, 0x10000)
                while sid in self.sessions:
                    sid = random.randrange(1, 0x10000)
                key = self.keys[body[M.H_NODE]]
                reply, s = session.challenge(key, msg, body, sid, os.urandom(8), int(time.time()))
                self.sessions[sid] = s
                self.sock.sendto(reply, src)
            else:
                s = self.sessions[p[3]]
                seq, con, _, _, _ = s.open(data, p)
                if con:
                    ans = s.answer_for(seq)
                    if ans is None:
                        _, ans = s.seal(M.ACK, {M.REF: seq})
                        s.remember(seq, ans)
                    self.sock.sendto(ans, src)
        self.sock.settimeout(None)
        return fleet.result()

    def measure(self, fleet: FleetProcess, seconds: float, raw: bool = False) -> dict:
        """The fleet sends flat out; this loop takes what it can. Ends on a STOP datagram."""
        self._flush()  # STOPs of an earlier run
        fleet.start("send", seconds=seconds)
        done = threading.Event()
        box: dict[str, Any] = {}

        def stopper() -> None:
            box["fleet"] = fleet.result()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as w:
                while not done.is_set():  # again and again: a full queue may drop one
                    w.sendto(STOP, self.addr)
                    time.sleep(0.02)

        t = threading.Thread(target=stopper, daemon=True)
        t.start()
        c0 = time.process_time()
        try:
            n, bad, span = (_raw_loop if raw else _session_loop)(self.sock, self.sessions)
        finally:
            done.set()
            t.join(10)
        cpu = time.process_time() - c0
        sent = box["fleet"]
        return {
            "received": n,
            "bad": bad,
            "per_s": (n - 64) / span if span > 0 else 0.0,
            "sent": sent["sent"],
            "fleet_per_s": sent["rate"],
            "fleet_cpu_s": sent["cpu_s"],
            "cpu_s": cpu,
        }

    def _flush(self) -> None:
        self.sock.setblocking(False)
        try:
            while True:
                self.sock.recv(2048)
        except BlockingIOError:
            pass
        finally:
            self.sock.setblocking(True)

    def close(self) -> None:
        self.sock.close()


def _session_loop(sock: socket.socket, sessions: dict[int, session.Session]):
    """recv, parse, find the session, Session.open (window, AES-CCM, decode): that is all."""
    recv, parse, get, perf = sock.recv, frame.parse, sessions.get, time.perf_counter
    n = bad = 0
    t_first = t_last = 0.0
    while True:
        data = recv(2048)
        try:
            p = parse(data)
        except ProtocolError:
            if data == STOP:
                break
            bad += 1
            continue
        s = get(p[3])
        if s is None:
            bad += 1
            continue
        try:
            s.open(data, p)
        except ProtocolError:
            bad += 1
            continue
        n += 1
        if not n & 63:  # a clock read every 64 frames, measured from the 64th
            t_last = perf()
            if n == 64:
                t_first = t_last
    return n - (n & 63), bad, t_last - t_first


def _raw_loop(sock: socket.socket, sessions: dict[int, session.Session]):
    """The same without the library's wrappers: kept AESCCM, cbor2.loads, no checks."""
    table = {
        sid: (AESCCM(s.recv_key, tag_length=8), b"\x02" + s.node_id) for sid, s in sessions.items()
    }
    recv, get, loads, perf = sock.recv, table.get, cbor2.loads, time.perf_counter
    n = bad = 0
    t_first = t_last = 0.0
    while True:
        data = recv(2048)
        if data == STOP:
            break
        off = 4 + (data[0] & 3)
        entry = get((data[1] << 8) | data[2])
        if entry is None:
            bad += 1
            continue
        aead, prefix = entry
        try:
            seq = int.from_bytes(data[3:off], "big")
            msg = aead.decrypt(prefix + seq.to_bytes(4, "big"), data[off:], data[:off])
            loads(msg[1:])
        except Exception:
            bad += 1
            continue
        n += 1
        if not n & 63:
            t_last = perf()
            if n == 64:
                t_first = t_last
    return n - (n & 63), bad, t_last - t_first


# -- 2-4. the gateway ----------------------------------------------------------------------


def run_step(gw: Gateway, fleet: FleetProcess, rate: float | None, plan: Plan) -> dict:
    """One offered rate for plan.step_s; the gateway's rates over the window after warm-up.

    Kept up: what was sent was processed (>= 98%, counted after the backlog drained) and
    the backlog at the end was short (drained within DRAIN_OK_S).
    """
    before, drops = gw.processed(), gw.udp_drops()
    fleet.start("send", rate=rate, seconds=plan.step_s)
    time.sleep(plan.warm_s)
    m0, t0, c0, w0 = gw.metrics(), time.monotonic(), gw.cpu_s(), gw.writer_cpu_s()
    time.sleep(max(0.5, plan.step_s - plan.warm_s - 0.3))
    m1, t1, c1, w1 = gw.metrics(), time.monotonic(), gw.cpu_s(), gw.writer_cpu_s()
    sent = fleet.result()
    dt = t1 - t0
    out = {
        "offered_per_s": sent["rate"],
        "processed_per_s": (m1["reports_processed"] - m0["reports_processed"]) / dt,
        "received_per_s": (m1.get("reports_received", 0) - m0.get("reports_received", 0)) / dt,
        "gateway_cpu": (c1 - c0) / dt,
        "writer_cpu": (w1 - w0) / dt,
        "fleet_cpu": sent["cpu_s"] / sent["seconds"] if sent["seconds"] else 0.0,
        "sent": sent["sent"],
    }
    out["drain_s"] = gw.drain()
    out["udp_drops"] = gw.udp_drops() - drops
    out["delivered"] = (gw.processed() - before) / sent["sent"] if sent["sent"] else 0.0
    out["kept_up"] = out["delivered"] >= KEPT_UP and out["drain_s"] <= DRAIN_OK_S
    return out


async def _latency(gw: Gateway, fleet: FleetProcess, nodes: list[F.NodeSpec], seconds: float):
    url = f"ws://127.0.0.1:{gw.http_port}/api/ws?token={TOKEN}&types=state"
    got: dict[tuple[str, int], float] = {}
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as http, http.ws_connect(url, heartbeat=None) as ws:

        async def reader() -> None:
            async for msg in ws:
                t = time.time()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                d = json.loads(msg.data)
                temp = d.get("values", {}).get("temperature") if d.get("type") == "state" else None
                if isinstance(temp, int | float) and temp * 100 >= MARKER_BASE - 0.5:
                    got.setdefault((d.get("node"), round(temp * 100)), t)

        task = asyncio.create_task(reader())
        await asyncio.sleep(0.5)  # the subscription is live before the first marker
        res = await loop.run_in_executor(
            None,
            lambda: fleet.call(
                "send", rate=LATENCY_RATE, seconds=seconds, marker=MARKER_BASE, log=True, wait=120
            ),
        )
        n, still = len(got), time.monotonic()
        while len(got) < res["sent"] and time.monotonic() - still < 3:
            await asyncio.sleep(0.1)
            if len(got) != n:
                n, still = len(got), time.monotonic()
        task.cancel()
    return res, latencies_ms(res["sent_at"], got, nodes, MARKER_BASE)


# -- output --------------------------------------------------------------------------------


def _numeric(s: str) -> bool:
    try:
        float(s.replace(",", "").rstrip("%x"))
        return True
    except ValueError:
        return s in ("", "-")


def table(headers: list[str], rows: list[list[Any]]) -> str:
    cols = [[str(h)] + [str(r[i]) for r in rows] for i, h in enumerate(headers)]
    widths = [max(map(len, col)) for col in cols]
    right = [all(_numeric(c) for c in col[1:]) for col in cols]

    def line(cells: list[Any]) -> str:
        return "  ".join(
            c.rjust(w) if r else c.ljust(w)
            for c, w, r in zip(map(str, cells), widths, right, strict=True)
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def _k(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def _r(x: float | None, nd: int = 2) -> float | None:
    return None if x is None else round(x, nd)


# -- the run -------------------------------------------------------------------------------


def bench(plan: Plan, cmd: list[str], work: Path) -> dict:
    nodes = F.make_nodes(plan.nodes, seed=SEED)
    keys = work / "keys.jsonl"
    F.write_keys(keys, nodes)
    fleet = FleetProcess(keys, SEED, _bodies)
    out: dict[str, Any] = {"nodes_total": plan.nodes}
    try:
        ref = Reference(nodes)
        try:
            hs = ref.handshakes(fleet, plan.connect_timeout_s)
            out["reference_online"] = hs["online"]
            out["reference_handshake_s"] = hs["seconds"]
            out["ref"] = ref.measure(fleet, plan.ref_s)
            out["raw"] = ref.measure(fleet, plan.ref_s, raw=True)
        finally:
            ref.close()
        reference = out["ref"]["per_s"]

        gw = Gateway(cmd, work, keys)
        try:
            t = time.monotonic()
            gw.wait_ready(120)
            out["gateway_start_s"] = time.monotonic() - t
            time.sleep(1.0)
            out["rss_idle"] = gw.rss()
            m0 = gw.metrics()
            hs = fleet.call("connect", gateway=("127.0.0.1", gw.udp_port),
                            timeout=plan.connect_timeout_s)  # fmt: skip
            out["online"], out["handshake_s"] = hs["online"], hs["seconds"]
            out["handshake_fleet"] = hs
            if hs["online"]:
                # one report from every node: each has state, a history row, a session
                fleet.call("send", count=hs["online"], rate=min(20000.0, reference / 2))
                gw.drain()
                out["rss_online"] = gw.rss()
                out["first_reports_processed"] = gw.processed() - m0["reports_processed"]
                out["steps"] = steps = []
                for f in plan.ramp:
                    steps.append({"fraction": f, **run_step(gw, fleet, f * reference, plan)})
                    if not steps[-1]["kept_up"]:
                        break
                steps.append({"fraction": None, **run_step(gw, fleet, None, plan)})
                res, lat = asyncio.run(_latency(gw, fleet, nodes, plan.latency_s))
                out["latency"] = {"sent": res["sent"], "rate": res["rate"], "ms": lat}
            out["rss_end"] = gw.rss()
            out["gateway_threads"] = gw.threads()
            out["metrics"] = gw.metrics()
            if gw.proc.poll() is not None:
                raise RuntimeError(f"the gateway died:\n{gw.log_tail()}")
        finally:
            gw.stop()
            out["gateway_log_tail"] = gw.log_tail(1500)
    finally:
        fleet.close()
    return out


def summary(plan: Plan, quick: bool, out: dict) -> dict:
    ref, raw = out["ref"], out["raw"]
    reference = ref["per_s"]
    steps = out.get("steps", [])
    processed = max((s["processed_per_s"] for s in steps), default=0.0)
    kept = [s["offered_per_s"] for s in steps if s["kept_up"]]
    lat = out.get("latency", {}).get("ms", [])
    sent = out.get("latency", {}).get("sent", 0)
    online = out.get("online", 0)
    rss_per = (
        (out["rss_online"] - out["rss_idle"]) / online if online and "rss_online" in out else None
    )
    p50, p99 = pct(lat, 50), pct(lat, 99)
    ratio = processed / reference if reference else None
    m = out.get("metrics", {})
    return {
        "quick": quick,
        "nodes": online,
        "nodes_total": out["nodes_total"],
        "reference_per_s": round(reference),
        "reference_fleet_bound": ref["received"] >= 0.97 * ref["sent"],
        "reference_fleet_per_s": round(ref["fleet_per_s"]),
        "raw_per_s": round(raw["per_s"]),
        "raw_fleet_bound": raw["received"] >= 0.97 * raw["sent"],
        "processed_per_s": round(processed),
        "ratio": _r(ratio, 3),
        "lossless_per_s": round(max(kept)) if kept else None,
        "steps": [
            {k: (_r(v, 3) if isinstance(v, float) else v) for k, v in s.items()} for s in steps
        ],
        "p50_ms": _r(p50, 3),
        "p99_ms": _r(p99, 3),
        "max_ms": _r(max(lat), 3) if lat else None,
        "latency_rate_per_s": _r(out.get("latency", {}).get("rate"), 1),
        "latency_samples": len(lat),
        "latency_lost": sent - len(lat),
        "rss_bytes_per_node": round(rss_per) if rss_per is not None else None,
        "rss_idle_bytes": out.get("rss_idle"),
        "rss_online_bytes": out.get("rss_online"),
        "rss_end_bytes": out.get("rss_end"),
        "handshake_s": _r(out.get("handshake_s")),
        "handshakes_per_s": round(online / out["handshake_s"]) if online else None,
        "reference_handshake_s": _r(out.get("reference_handshake_s")),
        "gateway_start_s": _r(out.get("gateway_start_s")),
        "gateway_threads": out.get("gateway_threads"),
        "gateway_drops": {k: v for k, v in m.items() if k.startswith("dropped_") and v},
        "gateway_reports_processed": m.get("reports_processed"),
        "fleet_hellos_resent": out.get("handshake_fleet", {}).get("hellos_resent", 0),
        "cpus": os.cpu_count(),
        "goals": {
            "nodes_10000": online >= 10000,
            "half_the_reference": ratio is not None and ratio >= 0.5,
            "p99_under_20_ms": p99 is not None and p99 < 20,
        },
    }


def report(doc: dict, out: dict) -> None:
    print("kithnet gateway throughput (loopback, fleet in its own process)")
    print()
    ref, raw = out["ref"], out["raw"]
    rows = [
        ["reference: recv + Session.open", _k(ref["per_s"]), _k(ref["fleet_per_s"]),
         f"{ref['cpu_s'] / max(ref['received'], 1) * 1e6:.1f} us/report"],
        ["raw: recv + AESCCM + cbor2.loads", _k(raw["per_s"]), _k(raw["fleet_per_s"]),
         f"{raw['cpu_s'] / max(raw['received'], 1) * 1e6:.1f} us/report"],
    ]  # fmt: skip
    print(table(["receive loop (this process)", "reports/s", "fleet sent/s", "CPU"], rows))
    print()
    rows = [
        [_k(s["offered_per_s"]), _k(s["received_per_s"]), _k(s["processed_per_s"]),
         f"{s['gateway_cpu'] * 100:.0f}%", f"{s.get('writer_cpu', 0) * 100:.0f}%",
         f"{s['fleet_cpu'] * 100:.0f}%", f"{s['drain_s']:.1f}", _k(s["udp_drops"]),
         "yes" if s["kept_up"] else "no"]
        for s in doc["steps"]
    ]  # fmt: skip
    print(f"gateway, {doc['nodes']} nodes online (handshakes: {doc['handshake_s']} s)")
    heads = ["offered/s", "received/s", "processed/s", "gw CPU", "writer CPU", "fleet CPU",
             "drain s", "socket drops", "kept up"]  # fmt: skip
    print(table(heads, rows))
    print()
    ratio = doc["ratio"]
    rows = [
        ["nodes online", doc["nodes"], ">= 10,000", "yes" if doc["goals"]["nodes_10000"] else "NO"],
        ["processed / reference", "-" if ratio is None else f"{ratio:.3f}x", ">= 0.5x",
         "yes" if doc["goals"]["half_the_reference"] else "NO"],
        [f"p50 / p99 ms at {LATENCY_RATE}/s", f"{doc['p50_ms']} / {doc['p99_ms']}", "p99 < 20",
         "yes" if doc["goals"]["p99_under_20_ms"] else "NO"],
        ["gateway RSS per node", _k(doc["rss_bytes_per_node"]) + " B", "", ""],
    ]  # fmt: skip
    print(table(["figure", "measured", "goal", "met"], rows))
    print(
        f"latency: {doc['latency_samples']} markers matched, {doc['latency_lost']} lost, "
        f"max {doc['max_ms']} ms; RSS idle {doc['rss_idle_bytes']}, online "
        f"{doc['rss_online_bytes']}, at the end {doc['rss_end_bytes']} B"
    )


def main(argv: list[str] | None = None) -> None:
    plan, quick = plan_from_args(argv, __doc__, "1,000 nodes, short steps (< 1 min)", QUICK, FULL)
    cmd = gateway_command()
    if cmd is None:
        sys.exit("gateway_throughput: `kithnet gateway` is not available")
    run("kithnet-bench-gw-", lambda work: bench(plan, cmd, work),
        lambda out: summary(plan, quick, out), report)  # fmt: skip


if __name__ == "__main__":
    main()
