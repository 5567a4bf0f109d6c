"""What the gateway benchmarks run and read: a `kithnet gateway` subprocess with its
figures (/api/metrics, /proc), a tools/fleet.py fleet in a worker process, percentiles,
and their command line (--quick, --nodes) and run (a work directory, then the JSON line).

Imported by the bench scripts (their folder is on sys.path when run as bench/x.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing as mp
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from kithnet.tools import fleet as F
from kithnet.tools.board import stop_process

TOKEN = "bench-token-not-a-secret"
_TICK = os.sysconf("SC_CLK_TCK")

# What a bench gives its fleet for each "send": bodies(kw, log) takes the bench's own
# keywords out of kw and returns fleet.Fleet.send's `bodies` (None: the pre-encoded ones).
Bodies = Callable[[dict[str, Any], bool], Callable[[int, F.NodeSpec], dict] | None]


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kithnet_command() -> list[str]:
    """The `kithnet` command beside this python (else the module)."""
    exe = Path(sys.executable).parent / "kithnet"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "kithnet.cli"]


def gateway_command() -> list[str] | None:
    """kithnet_command(), if it has the gateway subcommand."""
    cmd = kithnet_command()
    try:
        ok = subprocess.run([*cmd, "gateway", "--help"], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return cmd if ok.returncode == 0 else None


def cpu_s(pid: int) -> float:
    """utime + stime of all the process's threads; 0.0 once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def pct(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]


def latencies_ms(
    sent_at: list[tuple[int, int, int, float]],
    got: dict[tuple[str, int], float],
    nodes: list[F.NodeSpec],
    base: int,
) -> list[float]:
    """Send-to-receipt times of the markers that arrived: sent_at from the fleet's send
    (k, node index, seq, time.time()), got[(node hex, base + k)] = receipt time.time()."""
    lat = []
    for k, idx, _seq, t_sent in sent_at:
        t = got.get((nodes[idx].hex, base + k))
        if t is not None:
            lat.append((t - t_sent) * 1000)
    return lat


# -- the gateway ---------------------------------------------------------------------------


class Gateway:
    """`kithnet gateway` on loopback ports of its own, the fleet's keys imported."""

    def __init__(self, cmd: list[str], work: Path, keys: Path, *extra: str) -> None:
        self.udp_port = free_port(socket.SOCK_DGRAM)
        self.http_port = free_port(socket.SOCK_STREAM)
        self.log_path = work / "gateway.log"
        self._log = open(self.log_path, "wb")  # kept open for the process's life
        argv = [*cmd, "gateway", "--data", str(work / "data"),
                "--udp", f"127.0.0.1:{self.udp_port}", "--http", f"127.0.0.1:{self.http_port}",
                "--token", TOKEN, "--no-discovery", "--keys", str(keys),
                "--log-level", "warning", *extra]  # fmt: skip
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def call(self, method: str, path: str, data: bytes | None = None, timeout: float = 30) -> Any:
        """The JSON answer of the HTTP API at /api + path."""
        headers = {"Authorization": f"Bearer {TOKEN}"}
        if data is not None:
            headers["Content-Type"] = "application/octet-stream"
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}/api{path}", data=data, method=method,
            headers=headers,
        )  # fmt: skip
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())

    def metrics(self, timeout: float = 30) -> dict:
        return self.call("GET", "/metrics", timeout=timeout)

    def until(self, what: Callable[[], Any], timeout: float, why: str, every: float = 0.1) -> Any:
        """what()'s first true value, asked while the gateway runs (OSError: not yet)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"the gateway exited ({self.proc.returncode}):\n{self.log_tail()}"
                )
            try:
                v = what()
                if v:
                    return v
            except OSError:
                pass
            time.sleep(every)
        raise TimeoutError(f"{why}:\n{self.log_tail()}")

    def wait(self, what: Callable[[dict], bool], timeout: float, why: str) -> dict:
        """The first metrics for which what(metrics) holds."""

        def probe() -> dict | None:
            m = self.metrics(2)
            return m if what(m) else None

        return self.until(probe, timeout, why)

    def wait_ready(self, timeout: float) -> dict:
        return self.wait(lambda m: True, timeout, "the gateway did not answer /api/metrics")

    def rss(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def cpu_s(self) -> float:
        return cpu_s(self.pid)

    def writer_cpu_s(self) -> float:
        """CPU of the gateway's child processes (its history writer)."""
        kids = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        return sum(cpu_s(int(k)) for k in kids)

    def udp_drops(self) -> int:
        """Datagrams the kernel dropped at the gateway's UDP socket (its buffer was full)."""
        want = f"0100007F:{self.udp_port:04X}"
        for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
            f = line.split()
            if f[1] == want:
                return int(f[-1])
        return 0

    def threads(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/task"))

    def processed(self) -> int:
        return int(self.metrics()["reports_processed"])

    def drain(self, quiet: float = 0.6, timeout: float = 60) -> float:
        """Wait until reports_processed stops moving (the backlog is done); seconds waited."""
        t0 = time.monotonic()
        last = self.processed()
        still = time.monotonic()
        while time.monotonic() - t0 < timeout:
            time.sleep(0.2)
            now = self.processed()
            if now != last:
                last, still = now, time.monotonic()
            elif time.monotonic() - still >= quiet:
                break
        return time.monotonic() - t0

    def stop(self, grace: float = 20) -> None:
        stop_process(self.proc, grace)
        self._log.close()


# -- the fleet, in its own process ---------------------------------------------------------


def _worker(conn: Connection, keys: str, seed: int, bodies: Bodies) -> None:
    """The fleet process: commands over a pipe; between them it keeps answering the gateway.

    connect(gateway, timeout): every node's handshake. send(log=False, the bench's own
    keywords, then fleet.Fleet.send's): reports; the send log ("sent_at") only with log.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the bench ends it with "quit"
    nodes = F.read_keys(keys)
    fl: F.Fleet | None = None
    while True:
        if fl is not None and not conn.poll(0):
            fl.poll(0.02)
            continue
        cmd, kw = conn.recv()
        if cmd == "quit":
            break
        if cmd == "connect":
            if fl is not None:
                fl.close()
            fl = F.Fleet(nodes, tuple(kw["gateway"]), seed=seed)
            t = time.monotonic()
            online = fl.connect(kw["timeout"])
            conn.send({"online": online, "seconds": time.monotonic() - t, **fl.stats()})
        elif cmd == "send":
            assert fl is not None
            log = kw.pop("log", False)
            body = bodies(kw, log)
            c0 = sum(os.times()[:2])
            out = fl.send(bodies=body, **kw)
            out["cpu_s"] = sum(os.times()[:2]) - c0
            out["fleet"] = fl.stats()
            if not log:
                out.pop("sent_at", None)
            conn.send(out)
    if fl is not None:
        fl.close()


class FleetProcess:
    """The fleet of the keys file, in a process of its own (the bench's has one core)."""

    def __init__(self, keys: Path, seed: int, bodies: Bodies) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, str(keys), seed, bodies), daemon=True)
        self.proc.start()
        child.close()

    def start(self, cmd: str, **kw: Any) -> None:
        self.conn.send((cmd, kw))

    def result(self, timeout: float = 600) -> dict:
        if not self.conn.poll(timeout):
            raise TimeoutError("the fleet process did not answer")
        return self.conn.recv()

    def call(self, cmd: str, wait: float = 600, **kw: Any) -> dict:
        self.start(cmd, **kw)
        return self.result(wait)

    def close(self) -> None:
        try:
            self.conn.send(("quit", {}))
        except OSError:
            pass
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


# -- the command line and the run ----------------------------------------------------------


def plan_from_args(argv: list[str] | None, doc: str, quick_help: str, quick: Any, full: Any):
    """The plan (a dataclass with `nodes`) that --quick and --nodes pick; whether quick."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help=quick_help)
    ap.add_argument("--nodes", type=int, default=None, help="override the node count")
    args = ap.parse_args(argv)
    plan = quick if args.quick else full
    if args.nodes:
        plan = dataclasses.replace(plan, nodes=args.nodes)
    return plan, args.quick


def run(
    prefix: str,
    bench: Callable[[Path], dict],
    summary: Callable[[dict], dict],
    report: Callable[[dict, dict], None],
) -> None:
    """bench(work) in a temporary directory removed after (SIGTERM runs the finally blocks,
    which stop every process); summary(out) is the JSON document; report(doc, out) prints
    the tables, then come the elapsed time and, last, the JSON line."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        out = bench(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    doc = summary(out)
    doc["elapsed_s"] = round(time.monotonic() - started, 1)
    report(doc, out)
    print(f"elapsed {doc['elapsed_s']} s")
    print(json.dumps(doc, separators=(",", ":")))
