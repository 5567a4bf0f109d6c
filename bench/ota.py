"""OTA update: time and bytes on the wire to update a node with a typical bundle, against
the bundle's own size.

    .venv/bin/python bench/ota.py [--quick] [--runs N]

A real `kithnet gateway` (subprocess) updates a real plug board (`micropython -X
heapsize=110k`, the firmware as .mpy) through its HTTP API, as `kithnet ota` does, with a
bundle of the board's own lib/ (every file a node runs, 67 KB of .mpy) under a new version
each run. Between the node and the gateway sits a UDP relay in this process that counts
every datagram and byte each way: the whole update (the node's restarts and handshakes,
its diagnostics reports, the chunks and their answers, the trial and the confirmation)
and, apart, the transfer (from the first chunk to the answer to the last one). Measured in
one run, against the bundle's size measured in the same run:

- overhead_ratio = wire_bytes / bundle_bytes: everything the update put on the wire.
- transfer_overhead_ratio: the transfer's bytes both ways / bundle_bytes (frame headers,
  AES-CCM tags, CBOR, answers; the node takes 480-byte chunks so that a frame fits its
  512-byte receive buffer).
- seconds: from the API call to the job confirmed (median of the runs); transfer_seconds
  the transfer alone. On loopback a chunk costs one round trip to a host micropython; an
  ESP32 on Wi-Fi is slower, and so are its flash writes.

--quick: one run (under a minute with the board's compile). Prints a table, then one JSON
object as the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from harness import Gateway, free_port, kithnet_command

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # tests/udprelay.py: the relay tests/test_ota.py uses

from kithnet.gateway.ota_bundle import pack  # noqa: E402
from kithnet.tools import board as B  # noqa: E402
from kithnet.tools.ota_bundle import read_lib  # noqa: E402
from udprelay import CHUNK_MIN, UdpRelay  # noqa: E402


class Relay(UdpRelay):
    """Counts datagrams and bytes each way, and the transfer's apart."""

    def __init__(self, gw: tuple[str, int]) -> None:
        self.lock = threading.Lock()
        self.reset()
        super().__init__(gw)

    def reset(self) -> None:
        with self.lock:
            self.up = self.down = self.up_n = self.down_n = 0
            self.chunks = 0
            self.first: float | None = None  # when the first chunk passed
            self.answered = 0.0  # when the answer to the latest chunk passed
            self.xfer = 0  # bytes both ways since the first chunk
            self.done = 0  # ... up to the answer to the latest chunk
            self.pending = False

    def to_gateway(self, data: bytes) -> bytes:
        with self.lock:
            self.up += len(data)
            self.up_n += 1
            if self.first is not None:
                self.xfer += len(data)
                if self.pending:  # the chunk's answer (a retransmission may come between)
                    self.pending = False
                    self.done = self.xfer
                    self.answered = time.monotonic()
        return data

    def to_node(self, data: bytes) -> bytes:
        with self.lock:
            self.down += len(data)
            self.down_n += 1
            if len(data) > CHUNK_MIN:
                self.chunks += 1
                self.pending = True
                if self.first is None:
                    self.first = time.monotonic()
            if self.first is not None:
                self.xfer += len(data)
        return data


def run(runs: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        node_id, key = os.urandom(8), os.urandom(16)
        keys = work / "keys.jsonl"
        keys.write_text(json.dumps({"id": node_id.hex(), "key": key.hex(), "name": "Bench plug"}))
        gw = Gateway(kithnet_command(), work, keys)
        relay = Relay(("127.0.0.1", gw.udp_port))
        path = work / "plug"
        over = {"mdns": "off", "sleep": {}, "report": {"interval": 30}}
        board = B.Board(path)
        ref = f"/devices/{node_id.hex()}"
        results = []

        def until(what, timeout: float, why: str):  # the API every 50 ms
            return gw.until(what, timeout, why, every=0.05)

        try:
            B.make_board(path, "plug", "Bench plug", node_id=node_id, key=key,
                         gateway=relay.addr, port=free_port(socket.SOCK_DGRAM),
                         overrides=over)  # fmt: skip
            until(lambda: gw.call("GET", "/health"), 60, "the gateway did not start")
            board.start()
            until(lambda: gw.call("GET", ref)["online"], 60, "the node never came online")
            files = read_lib(path / "lib")
            for i in range(runs):
                version = f"1.{i + 1}.0"
                bundle = pack(version, files)
                relay.reset()
                t0 = time.monotonic()
                gw.call("POST", ref + "/ota", bundle)
                job = until(lambda: _ended(gw.call("GET", ref + "/ota")), 120, "no end")
                seconds = time.monotonic() - t0
                if job["state"] != "confirmed":
                    raise RuntimeError(f"the update failed: {job['error']}")
                until(lambda v=version: gw.call("GET", ref)["firmware"] == v, 60, "no hello")
                with relay.lock:
                    results.append({
                        "bundle_bytes": len(bundle), "wire_bytes": relay.up + relay.down,
                        "datagrams": relay.up_n + relay.down_n, "chunks": relay.chunks,
                        "transfer_bytes": relay.done, "seconds": seconds,
                        "transfer_seconds": relay.answered - relay.first,
                    })  # fmt: skip
        finally:
            board.stop()
            gw.stop(10)
            relay.close()
    return _summary(results)


def _ended(job: dict) -> dict | None:
    return job if job["state"] in ("confirmed", "failed") else None


def _summary(results: list[dict]) -> dict:
    med = {k: statistics.median(r[k] for r in results) for k in results[0]}
    bundle = med["bundle_bytes"]
    return {
        "bundle_bytes": int(bundle),
        "wire_bytes": int(med["wire_bytes"]),
        "overhead_ratio": round(med["wire_bytes"] / bundle, 3),
        "transfer_bytes": int(med["transfer_bytes"]),
        "transfer_overhead_ratio": round(med["transfer_bytes"] / bundle, 3),
        "datagrams": int(med["datagrams"]),
        "chunks": int(med["chunks"]),
        "seconds": round(med["seconds"], 3),
        "transfer_seconds": round(med["transfer_seconds"], 3),
        "transfer_kb_per_s": round(bundle / 1024 / med["transfer_seconds"], 1),
        "runs": len(results),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="one run")
    ap.add_argument("--runs", type=int, default=5, help="updates in a full run (5)")
    args = ap.parse_args(argv)
    r = run(1 if args.quick else max(1, args.runs))
    print("kithnet OTA: one plug (micropython, 110k heap) updated by the gateway, on loopback")
    rows = [
        ("bundle (every lib file, .mpy)", f"{r['bundle_bytes']} B"),
        ("on the wire, the whole update", f"{r['wire_bytes']} B ({r['datagrams']} datagrams)"),
        ("  ratio to the bundle", f"{r['overhead_ratio']}"),
        ("on the wire, the transfer", f"{r['transfer_bytes']} B ({r['chunks']} chunks)"),
        ("  ratio to the bundle", f"{r['transfer_overhead_ratio']}"),
        ("API call to confirmed", f"{r['seconds']} s (median of {r['runs']})"),
        ("the transfer", f"{r['transfer_seconds']} s ({r['transfer_kb_per_s']} KB/s)"),
    ]
    for name, value in rows:
        print(f"  {name:32} {value}")
    print(json.dumps(r))


if __name__ == "__main__":
    main()
