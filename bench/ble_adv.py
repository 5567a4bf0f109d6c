"""BLE advertisements: bytes per advertisement against BTHome v2 encrypted, and how many
advertisements per second the gateway's scanner path processes.

    .venv/bin/python bench/ble_adv.py [--quick]

1. Bytes. What a scanner receives as advertising data (AdvData, at most 31 bytes in legacy
   advertising), for one, two and three readings (temperature 21.50 degC, humidity 48.00 %,
   battery 87 %):
   - kithnet (adv_bytes_N): SPEC 13 as the firmware sends it, made by the real codec
     (session.seal_broadcast, discovery.ble_advert) and opened back: one Manufacturer
     Specific Data structure (length 1, type 1, company id 2) around the broadcast frame
     (header 1, kid 2, sequence number 1..4, CBOR report, AES-CCM tag 8); no Flags. The
     JSON figures use a 3-byte sequence number (a counter past 65,535, the steady state of
     a sensor a few months old, as bench/wire_size.py); the table shows 1..4 bytes.
   - BTHome v2 encrypted (bthome_bytes_N), by its format (bthome.io/format, /encryption):
     the Flags AD structure (3 bytes: len, 0x01, 0x06) that BTHome devices send, then one
     Service Data AD structure: length 1, type 0x16 1, UUID 0xFCD2 2, device information
     byte 1 (0x41: encrypted, version 2), the encrypted objects (battery 0x01 + uint8,
     temperature 0x02 + sint16 x0.01, humidity 0x03 + uint16 x0.01), a 4-byte counter and
     a 4-byte MIC (AES-CCM, nonce = MAC + UUID + device info + counter). Built and
     encrypted for real and decrypted back by bench/wire_size.py's bthome_advert (the same
     readings). Without Flags it would be 3 bytes less.
   - Our node's BTHome v2 mode (adv_bytes_bthome_N, SPEC 13.2): firmware/node/bthome.py run
     by the real `micropython`: the same structure without Flags, with a packet id object
     (2 bytes) first.
2. Scanner path (scanner_adv_per_s). A real Gateway (this process, its own event loop;
   its store writer is its own process) with `ble = "virtual:HOST:PORT"` and N adopted
   nodes, each with its own key; a virtual radio (tools/radio.py) in a worker process; an
   injector in another worker process that sends pre-sealed advertisements (two readings,
   each node counting its own sequence numbers) as single advertising events, flat out.
   The gateway takes each through bleak's BleakScanner detection callback (the kithnet
   backend reading the radio), the replay window, AES-CCM, CBOR, the state, a history row
   and the bus. Rate = advertisements accepted / time from the first to the last, read
   from the gateway's own counters.
   Reference (reference_adv_per_s), same run, same advertisements: a plain loop that only
   takes the frame out of the advertising data and opens it (discovery.ble_frame,
   frame.parse, session.open_broadcast with each node's window). ratio = scanner /
   reference: what the radio link, bleak's objects and the state/history/bus path cost.

Prints tables, then one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kithnet.protocol import discovery, frame, keys, session  # noqa: E402
from kithnet.protocol import messages as M  # noqa: E402
from kithnet.protocol.replay import ReplayWindow  # noqa: E402
from wire_size import BATT, HUM, TEMP, bthome_advert  # noqa: E402  (the same content)

READINGS = {1: {1: TEMP}, 2: {1: TEMP, 2: HUM}, 3: {1: TEMP, 2: HUM, 3: BATT}}
SEQ = 70000  # a 3-byte sequence number
NODE_ID = bytes.fromhex("0102030405060708")
NODE_KEY = bytes(range(16))

# -- bytes ---------------------------------------------------------------------------


def kithnet_advert(n: int, seq: int = SEQ) -> bytes:
    bkey = keys.broadcast_key(NODE_KEY, NODE_ID)
    data = session.seal_broadcast(bkey, NODE_ID, seq, M.REPORT, READINGS[n])
    if len(data) > discovery.BLE_FRAME_MAX:  # does not fit: the size it would need
        return bytes(4) + data
    adv = discovery.ble_advert(data)
    # Read back as the gateway does.
    f = discovery.ble_frame(adv)
    got = session.open_broadcast(f, frame.parse(f), bkey, NODE_ID, ReplayWindow())
    assert got[1:3] == (M.REPORT, READINGS[n]) and len(adv) <= discovery.BLE_ADV_MAX
    return adv


# -- BTHome as our node sends it (firmware/node/bthome.py under the real micropython) -----

_NODE_BTHOME = """
import sys
from node import bthome
class O:
    pass
b = O()
b.rtc = False
b.value = %d
def nxt():
    b.value += 1
    return b.value - 1
b.next = nxt
b.radio = O()
b.radio.address = "C0:11:22:33:44:55"
b.node = O()
b.node.cfg = {"sleep": {}}
b.node.hello_caps = {1: 6, 2: 7, 3: 12}
b.bt = [bytes(16), False, 0]
for n, vals in %r:
    print("BTHOME", n, " ".join(str(len(a)) for a in bthome.advs(b, vals)))
"""


def node_bthome_sizes() -> dict[int, int]:
    """Bytes of the BTHome advertisement(s) our node makes for 1..3 readings (SPEC 13.2: no
    Flags, a packet id object): the firmware's own code under the real `micropython`."""
    import subprocess

    from kithnet.tools.board import micropython

    script = _NODE_BTHOME % (SEQ, sorted(READINGS.items()))
    env = dict(os.environ, MICROPYPATH=os.pathsep.join([str(ROOT), str(ROOT / "firmware"),
                                                        ".frozen"]))  # fmt: skip
    out = subprocess.run([micropython(), "-c", script], env=env, capture_output=True,
                         text=True, timeout=60, check=True).stdout  # fmt: skip
    sizes = {}
    for line in out.splitlines():
        _, n, *lens = line.split()
        assert len(lens) == 1, line  # one advertisement holds up to three readings
        sizes[int(n)] = int(lens[0])
    return sizes


# -- the scanner path ------------------------------------------------------------------


def _nodes(n: int) -> list[tuple[bytes, bytes]]:
    return [(i.to_bytes(2, "big") + os.urandom(6), os.urandom(16)) for i in range(n)]


def sealed_adverts(nodes: list[tuple[bytes, bytes]], count: int) -> list[tuple[str, bytes]]:
    bkeys = [keys.broadcast_key(k, nid) for nid, k in nodes]
    out = []
    for i in range(count):
        j = i % len(nodes)
        nid = nodes[j][0]
        body = {1: TEMP + i % 50, 2: HUM}
        data = session.seal_broadcast(bkeys[j], nid, i // len(nodes), M.REPORT, body)
        address = ":".join(f"{x:02X}" for x in bytes((nid[2] | 0xC0,)) + nid[3:])
        out.append((address, discovery.ble_advert(data)))
    return out


def reference(nodes: list[tuple[bytes, bytes]], advs: list[tuple[str, bytes]]) -> float:
    bkeys = {nid: keys.broadcast_key(k, nid) for nid, k in nodes}
    by_kid = {(nid[0] << 8) | nid[1]: nid for nid, _ in nodes}
    windows = {nid: ReplayWindow() for nid, _ in nodes}
    best = 0.0
    for _ in range(3):
        for w in windows.values():
            w.__init__()
        t0 = time.perf_counter()
        for _, adv in advs:
            f = discovery.ble_frame(adv)
            p = frame.parse(f)
            nid = by_kid[p[3]]
            session.open_broadcast(f, p, bkeys[nid], nid, windows[nid])
        best = max(best, len(advs) / (time.perf_counter() - t0))
    return best


def _radio(port_q: mp.Queue) -> None:
    from kithnet.tools.radio import RadioServer

    server = RadioServer().start()
    port_q.put(server.port)
    while True:
        time.sleep(3600)


def _inject(address: str, advs: list[tuple[str, bytes]], go: mp.Event) -> None:
    from kithnet.tools.radio import RadioClient

    c = RadioClient(address, "C0:FF:EE:00:00:01")
    go.wait()
    c.once(advs)
    time.sleep(2)
    c.close()


async def scanner_path(nodes, advs, radio: str, data: str) -> dict:
    from kithnet.gateway import config, service

    cfg = config.load(None, {"data": data, "udp_host": "127.0.0.1", "udp_port": 0,
                             "http_host": "127.0.0.1", "http_port": 0, "token": "bench",
                             "discovery": False, "ble": "virtual:" + radio,
                             "log_level": "warning"})  # fmt: skip
    gw = service.Gateway(cfg)
    await gw.start()
    try:
        for nid, k in nodes:
            await gw.adopt(nid.hex(), k.hex())
            dev = gw.devices_by_id[nid]
            dev.set_caps({1: 6, 2: 7})  # temperature, humidity: as its hello would say
            gw._save(dev)
        await gw.store.flush()
        ctx = mp.get_context("spawn")
        go = ctx.Event()
        inj = ctx.Process(target=_inject, args=(radio, advs, go))
        inj.start()
        await asyncio.sleep(1.0)  # the injector connected
        go.set()
        ble = gw.ble
        n = len(advs)
        t0 = t1 = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            c = ble.counts
            if t0 is None and c["adverts"] > 0:
                t0 = time.perf_counter()
            if c["accepted"] + sum(ble.dropped.values()) + c["duplicates"] >= n:
                t1 = time.perf_counter()
                break
            await asyncio.sleep(0.002)
        inj.join(10)
        ble._flush()
        await gw.store.flush()
        c = dict(ble.counts)
        rows = gw.store.rows_written
        return {"accepted": c["accepted"], "adverts": c["adverts"], "dropped": dict(ble.dropped),
                "seconds": (t1 or time.perf_counter()) - (t0 or 0), "rows_written": rows,
                "complete": t1 is not None}  # fmt: skip
    finally:
        await gw.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a short run (< 1 min)")
    args = ap.parse_args()
    n_nodes, n_adv = (200, 20000) if args.quick else (1000, 100000)

    print("Bytes of advertising data a scanner receives (legacy advertising: 31 at most)\n")
    print(f"{'readings':<10}{'kithnet, PIV 1/2/3/4 bytes':<30}{'BTHome v2 encrypted':>20}")
    ours = {n: len(kithnet_advert(n)) for n in (1, 2, 3)}
    theirs = {n: len(bthome_advert(n)) for n in (1, 2, 3)}
    node_bt = node_bthome_sizes()  # BTHome as our node sends it
    for n in (1, 2, 3):
        by_piv = [len(kithnet_advert(n, s)) for s in (200, 300, 70000, 1 << 24)]
        shown = " / ".join(str(b) if b <= 31 else f"{b}!" for b in by_piv)
        print(f"{n:<10}{shown:<30}{theirs[n]:>20}")
    print("(! does not fit; the JSON takes the 3-byte sequence number)")
    print("our node in BTHome mode (no Flags, a packet id): "
          + " / ".join(str(node_bt[n]) for n in (1, 2, 3)) + " bytes\n")  # fmt: skip

    nodes = _nodes(n_nodes)
    advs = sealed_adverts(nodes, n_adv)
    ref = reference(nodes, advs)
    print(f"reference: ble_frame + parse + open_broadcast: {ref:,.0f} advertisements/s")

    ctx = mp.get_context("spawn")
    q: mp.Queue = ctx.Queue()
    radio_proc = ctx.Process(target=_radio, args=(q,), daemon=True)
    radio_proc.start()
    port = q.get(timeout=30)
    try:
        with tempfile.TemporaryDirectory() as d:
            res = asyncio.run(scanner_path(nodes, advs, f"127.0.0.1:{port}", d))
    finally:
        radio_proc.terminate()
        radio_proc.join(5)
    rate = res["accepted"] / res["seconds"] if res["seconds"] > 0 else 0.0
    print(f"gateway scanner path: {res['accepted']:,} of {n_adv:,} accepted "
          f"in {res['seconds']:.2f} s: {rate:,.0f} advertisements/s "
          f"(ratio {rate / ref:.3f}); history rows written {res['rows_written']:,}")  # fmt: skip
    out = {
        "adv_bytes_1": ours[1], "adv_bytes_2": ours[2], "adv_bytes_3": ours[3],
        "bthome_bytes_1": theirs[1], "bthome_bytes_2": theirs[2], "bthome_bytes_3": theirs[3],
        "adv_bytes_bthome_1": node_bt[1], "adv_bytes_bthome_2": node_bt[2],
        "adv_bytes_bthome_3": node_bt[3],
        "adv_piv_bytes": len(frame.piv_bytes(SEQ)),
        "scanner_adv_per_s": round(rate, 1), "reference_adv_per_s": round(ref, 1),
        "ratio": round(rate / ref, 4) if ref else 0.0,
        "nodes": n_nodes, "advertisements": n_adv, "accepted": res["accepted"],
        "complete": res["complete"], "dropped": res["dropped"],
    }  # fmt: skip
    print(json.dumps(out))


if __name__ == "__main__":
    main()
