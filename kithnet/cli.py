"""The `kithnet` command: the protocol demo, the gateway, and a client of its HTTP API."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import time
from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any

from kithnet import __version__

DEFAULT_URL = "http://127.0.0.1:47880"


# -- argument parsing ----------------------------------------------------------------------


def _host_port(text: str) -> tuple[str, int]:
    """HOST:PORT, [IPv6]:PORT or :PORT (all addresses)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def parse_value(text: str) -> bool | int | float | str:
    """A value as a person types it: on/off/true/false, 21, 21.5, or text (an enum label)."""
    low = text.lower()
    if low in ("on", "true"):
        return True
    if low in ("off", "false"):
        return False
    try:
        return int(text)
    except ValueError:
        pass
    try:
        v = float(text)
    except ValueError:
        return text
    return v if math.isfinite(v) else text


def _setting(text: str) -> tuple[str, bool | int | float | str]:
    key, eq, value = text.partition("=")
    if not eq or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value if key == "name" else parse_value(value)


def _since(text: str) -> float:
    """Unix time from SECONDS_AGO (a number) or an ISO date/time (local time if no zone)."""
    try:
        return time.time() - float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither seconds ago nor an ISO time like 2024-05-01T08:00"
        ) from None


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return int(text)


# MQTT hub: one flag per mqtt_* setting of GatewayConfig (--mqtt-url ...); the help texts
# are in kithnet.gateway.mqtt.settings.FLAGS.
def _mqtt_settings() -> list[str]:
    from dataclasses import fields

    from kithnet.gateway.config import GatewayConfig

    return [f.name for f in fields(GatewayConfig) if f.name.startswith("mqtt_")]


def _mqtt_flags(gw: argparse.ArgumentParser) -> None:
    from kithnet.gateway.mqtt.settings import FLAGS

    for name in _mqtt_settings():
        metavar, text = FLAGS[name]
        gw.add_argument("--" + name.replace("_", "-"), dest=name, metavar=metavar, help=text)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kithnet", description="Local-first AIoT: nodes, gateway, hubs."
    )
    parser.add_argument("--version", action="version", version=f"kithnet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo", help="run the gateway with a MicroPython node of every device type"
    )
    demo.add_argument(
        "--seconds", type=float, default=None, help="stop this long after the nodes start"
    )
    demo.add_argument("--data", metavar="DIR", help="keep everything here (default: a temp dir)")
    demo.add_argument(
        "--http", metavar="HOST:PORT", type=_host_port, help="API and dashboard address"
    )
    demo.add_argument(
        "--nodes-per-type", type=_positive, default=1, metavar="K", help="boards of each type (1)"
    )
    demo.add_argument(
        "--discovery",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="advertise the gateway by DNS-SD on 127.0.0.1 (the nodes need not)",
    )
    demo.add_argument(
        "--protocol", action="store_true", help="the protocol demo: one node and a CPython peer"
    )
    demo.add_argument(
        "--world", choices=("household", "idle"), default="household",
        help="what happens around the boards: a household's day at 60x (default), or idle",
    )  # fmt: skip

    gw = sub.add_parser("gateway", help="run the gateway until Ctrl-C or SIGTERM")
    gw.add_argument("--config", metavar="FILE", help="TOML settings (flags override them)")
    gw.add_argument("--data", metavar="DIR", help="registry, history and token (~/.kithnet)")
    gw.add_argument("--http", metavar="HOST:PORT", type=_host_port, help="API address")
    gw.add_argument("--udp", metavar="HOST:PORT", type=_host_port, help="protocol address")
    gw.add_argument("--token", metavar="T", help="API token (default: DATA/token, made once)")
    gw.add_argument(
        "--no-discovery", action="store_true", help="neither browse nor advertise DNS-SD"
    )
    gw.add_argument("--interfaces", metavar="A,B", help="addresses DNS-SD uses (default: all)")
    gw.add_argument("--keys", metavar="FILE", help="JSON lines of nodes to adopt at start")
    gw.add_argument("--log-level", metavar="L", help="debug, info, warning or error")
    _mqtt_flags(gw)
    gw.add_argument("--ble", metavar="B", help='BLE nodes: "bluez" or "virtual:HOST:PORT"')

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url", default=None, help=f"the gateway's API (env KITHNET_URL, else {DEFAULT_URL})"
    )
    common.add_argument(
        "--token", default=None, help="API token (env KITHNET_TOKEN, else the file DATA/token)"
    )
    common.add_argument(
        "--data", default=None, help="where to find the token file (env KITHNET_DATA, ~/.kithnet)"
    )
    common.add_argument("--json", action="store_true", help="print JSON for machines")

    def client(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], help=help)

    client("devices", "list the adopted devices")
    p = client("state", "show a device's capabilities and latest values")
    p.add_argument("name", help="device name or node id")
    p = client("set", "command a device: kithnet set 'Kitchen plug' switch on")
    p.add_argument("name", help="device name or node id")
    p.add_argument("capability")
    p.add_argument("value", type=parse_value, help="on/off/true/false, a number, or a label")
    p.add_argument("--fade", type=int, metavar="MS", help="transition time (lights)")
    p = client("history", "show a capability's recorded values, oldest first")
    p.add_argument("name", help="device name or node id")
    p.add_argument("capability")
    p.add_argument(
        "--since", type=_since, metavar="ISO|SECONDS_AGO", help="e.g. 3600 or 2024-05-01T08:00"
    )
    p.add_argument("--limit", type=_positive, metavar="N", help="at most N values (1000)")
    p = client("config", "a node's own settings: kithnet config 'Hall sensor' interval=60")
    p.add_argument("name", help="device name or node id")
    p.add_argument("settings", nargs="*", type=_setting, metavar="KEY=VALUE",
                   help="interval (5..86400 s between reports), name; none: show")  # fmt: skip
    p = client("wifi", "give a BLE node Wi-Fi credentials, sealed over BLE (from its next boot)")
    p.add_argument("name", help="device name or node id")
    p.add_argument("ssid")
    p.add_argument("--password", metavar="PASS|-", default="",
                   help="the network's password; - reads it from standard input")  # fmt: skip
    client("pending", "list nodes waiting to be adopted")
    p = client("adopt", "adopt a node by its id and key (also before it is seen)")
    p.add_argument("node_id", metavar="NODE_ID", nargs="?", help="16 hex digits")
    p.add_argument("--key", metavar="HEX", help="the node key, 32 hex digits")
    p.add_argument("--name")
    p.add_argument("--room")
    # BTHome: a BTHome v2 sensor of another make, by its MAC (gateway/ble/bthome.py)
    p.add_argument("--bthome", metavar="MAC", help="a BTHome v2 sensor: its Bluetooth address")
    p.add_argument("--bindkey", metavar="HEX", help="its BTHome bindkey, 32 hex digits")
    p.add_argument(
        "--insecure", action="store_true", help="unencrypted BTHome: no bindkey (spoofable)"
    )
    _provisioning_parsers(sub)  # flash, node create, emulate (below)
    _ota_parsers(sub, client)  # OTA: ota, bundle (below)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command == "adopt":
        _adopt_usage(parser, args)
    if args.command == "demo":
        from kithnet.tools import demo

        return demo.main(args)
    if args.command == "gateway":
        return _gateway(args)
    if args.command in ("flash", "node", "emulate"):
        return _provisioning(args)
    if args.command == "bundle":  # OTA
        from kithnet.tools import ota_bundle

        return ota_bundle.run(args)
    return _client(args)


# -- kithnet gateway -----------------------------------------------------------------------


def _gateway(args: argparse.Namespace) -> int:
    from kithnet.gateway import config

    overrides: dict[str, Any] = {
        "data": args.data,
        "token": args.token,
        "discovery": False if args.no_discovery else None,
        "interfaces": args.interfaces,
        "keys": args.keys,
        "log_level": args.log_level,
        "ble": args.ble,
    }
    overrides.update({k: getattr(args, k) for k in _mqtt_settings()})  # MQTT hub
    if args.http:
        overrides["http_host"], overrides["http_port"] = args.http
    if args.udp:
        overrides["udp_host"], overrides["udp_port"] = args.udp
    try:
        cfg = config.load(args.config, overrides)
    except config.ConfigError as e:
        print(f"kithnet: {e}", file=sys.stderr)
        return 2
    from kithnet.gateway import service

    try:
        asyncio.run(service.run(cfg))
    except KeyboardInterrupt:
        pass
    except OSError as e:  # e.g. a port already in use
        print(f"kithnet: {e}", file=sys.stderr)
        return 1
    return 0


# -- provisioning: kithnet flash, kithnet node create, kithnet emulate ---------------------


def _provisioning_parsers(sub: Any) -> None:
    gw = argparse.ArgumentParser(add_help=False)
    gw.add_argument(
        "--gateway-data", metavar="DIR",
        help="register in the gateway's data directory (env KITHNET_DATA, else ~/.kithnet); "
        "through its API when a gateway is running on it",
    )  # fmt: skip
    gw.add_argument("--gateway", metavar="URL", help="register through this gateway's API")
    gw.add_argument("--no-register", action="store_true", help="do not register the node")
    gw.add_argument("--token", help="API token (env KITHNET_TOKEN, else DATA/token)")
    gw.add_argument(
        "--gateway-udp", metavar="HOST:PORT", type=_host_port,
        help="the gateway's protocol address, written into config.json (default: DNS-SD)",
    )  # fmt: skip

    node = argparse.ArgumentParser(add_help=False)
    node.add_argument("--type", required=True, help="sensor, plug, light or climate")
    node.add_argument("--name", required=True, help='e.g. "Kitchen plug"')
    node.add_argument("--room")
    node.add_argument("--mpy", action="store_true", help="compile the firmware with mpy-cross")
    node.add_argument("--rotate-key", action="store_true", help="give the node a new key")
    node.add_argument("--mdns", choices=("full", "announce", "off"), help="DNS-SD mode")
    node.add_argument(  # BTHome: what a BLE node advertises (config "ble": {"adv": ...})
        "--ble-adv", choices=("kithnet", "bthome", "both"),
        help="a BLE node advertising kithnet frames, BTHome v2 (Home Assistant without a "
        "gateway; the bindkey is printed) or both",
    )  # fmt: skip

    f = sub.add_parser(
        "flash", parents=[node, gw], help="provision a MicroPython board on a serial port"
    )
    f.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0")
    f.add_argument("--wifi-ssid", metavar="S")
    f.add_argument("--wifi-password", metavar="P", help="kept on the board, never printed")
    f.add_argument("--micropython-image", metavar="FILE", help="erase and write MicroPython")
    f.add_argument("--chip", default="esp32", help="esp32 (default), esp32s2, esp32s3, ...")
    f.add_argument("--no-reset", action="store_true", help="leave the board in its REPL")

    nd = sub.add_parser("node", help="virtual nodes: kithnet node create DIR ...")
    nsub = nd.add_subparsers(dest="node_command", required=True)
    c = nsub.add_parser(
        "create", parents=[node, gw], help="a virtual board directory that micropython boots"
    )
    c.add_argument("dir", metavar="DIR")
    c.add_argument("--port", type=int, metavar="N", help="the node's UDP port (default: free)")
    # BTHome: the bindkey to type into Home Assistant's BTHome integration
    k = nsub.add_parser("bindkey", help="the BTHome bindkey of a board directory's node")
    k.add_argument("dir", metavar="DIR", help="a board directory, or its config.json")

    e = sub.add_parser(
        "emulate", parents=[gw], help="run N virtual boards provisioned into a gateway"
    )
    e.add_argument("--count", type=_positive, required=True, metavar="N")
    e.add_argument("--type", required=True, help="sensor, plug, light, climate, a list, or all")
    e.add_argument("--world", default="idle", help="scenario: idle (default) or household")
    e.add_argument("--speed", type=float, help="simulated seconds per second (household: 60)")
    e.add_argument("--hour", type=float, help="time of day at start (household: 6.5)")
    e.add_argument("--dir", metavar="DIR", help="where the boards live (DATA/emulated)")
    e.add_argument("--temp", action="store_true", help="boards in a temp dir, removed at exit")
    e.add_argument("--seconds", type=float, help="stop after this long")
    e.add_argument("--report-interval", type=_positive, default=10, metavar="S")
    e.add_argument("--sleep", action="store_true", help="let sleepy types deep-sleep")
    e.add_argument("--discovery", action="store_true", help="nodes find the gateway by DNS-SD")
    e.add_argument("--mpy", action=argparse.BooleanOptionalAction, default=True)


def _provisioning(args: argparse.Namespace) -> int:
    if getattr(args, "node_command", None) == "bindkey":  # BTHome
        return _node_bindkey(args)
    if args.no_register and (args.gateway or args.gateway_data):
        print(f"kithnet {args.command}: --no-register and --gateway/--gateway-data exclude "
              "each other", file=sys.stderr)  # fmt: skip
        return 2
    if args.command == "flash":
        from kithnet.tools import flash

        return flash.main(args)
    if args.command == "emulate":
        from kithnet.tools import emulate

        if args.world not in ("idle", "household"):
            print(f"kithnet emulate: unknown --world {args.world!r}: idle or household",
                  file=sys.stderr)  # fmt: skip
            return 2
        return emulate.run(args)
    return _node_create(args)


def _node_bindkey(args: argparse.Namespace) -> int:
    """`kithnet node bindkey DIR`: the key Home Assistant's BTHome integration asks for."""
    from kithnet.tools import provision as P

    path = Path(args.dir)
    path = path / P.CONFIG if path.is_dir() else path
    try:
        key, adv = P.bindkey(path.read_text())
    except OSError as e:
        print(f"kithnet node bindkey: cannot read {path}: {e.strerror}", file=sys.stderr)
        return 1
    except P.ProvisionError as e:
        print(f"kithnet node bindkey: {path}: {e}", file=sys.stderr)
        return 1
    print(key)
    if adv not in ("bthome", "both"):
        why = "it has no BLE section" if adv == "off" else f"its ble.adv is {adv!r}"
        print(
            f"kithnet node bindkey: note: this node does not advertise BTHome ({why}); "
            "flash or create it with --ble-adv bthome or both",
            file=sys.stderr,
        )
    return 0


def _print_bindkey(config: Path) -> None:
    """After flash / node create with BTHome on: the bindkey, once, with what to do."""
    from kithnet.tools import provision as P

    key, adv = P.bindkey(config.read_text())
    if adv in ("bthome", "both"):
        print(f"BTHome bindkey (Home Assistant, BTHome integration): {key}")


def _node_create(args: argparse.Namespace) -> int:
    from kithnet.tools import provision as P
    from kithnet.tools.emulate import udp_port
    from kithnet.tools.registry import RegistryError, open_registry

    opts = P.Options(
        kind=args.type, name=args.name, room=args.room, gateway_udp=args.gateway_udp,
        mdns=args.mdns, mpy=args.mpy, port=args.port or udp_port(), ble_adv=args.ble_adv,
    )  # fmt: skip
    try:
        opts.check()
        reg = None if args.no_register else open_registry(args.gateway_data, args.gateway,
                                                          args.token)  # fmt: skip
        ident = P.create(Path(args.dir), opts, reg)
    except (P.ProvisionError, RegistryError, RuntimeError) as e:
        print(f"kithnet node create: {e}", file=sys.stderr)
        return 1
    how = {"new": "a new id and key", "kept": "its id and key kept",
           "rotated": "its id kept, a new key"}[ident.origin]  # fmt: skip
    print(f"created {args.name!r} ({args.type}, node {ident.id}, {how}) in {args.dir}")
    print(f"registered in {reg.where}" if reg else "not registered (--no-register)")
    _print_bindkey(Path(args.dir) / P.CONFIG)  # BTHome
    print(f"boot it: cd {args.dir} && micropython main.py")
    return 0


# -- updates over the air: kithnet ota, kithnet bundle ------------------------------------


def _ota_parsers(sub: Any, client: Callable[[str, str], argparse.ArgumentParser]) -> None:
    p = client("ota", "update a node (or, with --all, every node of a type) over the air")
    p.add_argument("target", metavar="NAME", help="device name or node id; with --all a TYPE")
    p.add_argument("bundle", metavar="BUNDLE", help="a bundle file (kithnet bundle)")
    p.add_argument("--all", action="store_true", help="roll out to every node of type NAME")
    p.add_argument("--force", action="store_true", help="even a bundle it runs or rolled back")
    p.add_argument("--no-wait", action="store_true", help="start it and return")
    from kithnet.tools.ota_bundle import add_arguments

    add_arguments(sub.add_parser("bundle", help="build an update bundle from the firmware"))


async def _ota(c: Any, args: argparse.Namespace) -> Any:
    from kithnet.gateway.client import ClientError

    try:
        data = Path(args.bundle).read_bytes()
    except OSError as e:
        raise ClientError(f"cannot read {args.bundle}: {e.strerror}") from None
    if args.all:
        r = await c.rollout(data, type_=args.target, force=args.force)
    else:
        r = await c.ota(args.target, data, force=args.force)
    shown: dict[str, tuple] = {}
    while not args.no_wait and r["state"] in ("running", "waiting", "receiving", "installing",
                                              "trial"):  # fmt: skip
        await asyncio.sleep(0.5)
        if args.all:
            r = await c.rollout_status()
            if r.get("current"):
                _ota_progress(await c.ota_status(r["current"]), r["current"], shown, args.json)
        else:
            r = await c.ota_status(args.target)
            _ota_progress(r, args.target, shown, args.json)
    if r["state"] in ("failed", "cancelled"):
        raise ClientError(r.get("error") or r["state"])
    if args.json:
        return r
    if args.no_wait:
        return f"started: {args.target} to {r['version']}"
    if args.all:
        skipped = "".join(f"\n  skipped {k}: {v}" for k, v in r["skipped"].items())
        return f"rolled out {r['version']} to {len(r['results'])} nodes{skipped}"
    return f"{args.target} runs {r['version']} (confirmed)"


def _ota_progress(job: dict, who: str, shown: dict[str, tuple], quiet: bool) -> None:
    """One line per state, and per tenth of the transfer."""
    key = (job["state"], job["percent"] // 10)
    if quiet or shown.get(who) == key:
        return
    shown[who] = key
    what = job["state"]
    if what == "receiving":
        what += f" {job['percent']}% ({job['offset'] // 1024} of {job['size'] // 1024} KB)"
        if job.get("resumed_from"):
            what += f", resumed at {job['resumed_from']}"
    print(f"{who}: {what}", flush=True)


# -- client commands -----------------------------------------------------------------------


def _token(args: argparse.Namespace) -> tuple[str | None, str]:
    """(token, where it comes from) — the source goes into the message when it is refused."""
    if args.token:
        return args.token, "--token"
    if os.environ.get("KITHNET_TOKEN"):
        return os.environ["KITHNET_TOKEN"], "$KITHNET_TOKEN"
    data = args.data or os.environ.get("KITHNET_DATA") or str(Path.home() / ".kithnet")
    path = Path(data).expanduser() / "token"
    try:
        return path.read_text().strip() or None, str(path)
    except OSError:
        return None, f"--token, $KITHNET_TOKEN or {path} (missing)"


def _client(args: argparse.Namespace) -> int:
    from kithnet.gateway.client import ApiError, Client, ClientError

    url = args.url or os.environ.get("KITHNET_URL") or DEFAULT_URL
    token, source = _token(args)
    command = COMMANDS[args.command]

    async def run() -> Any:
        async with Client(url, token) as c:
            return await command(c, args)

    try:
        out = asyncio.run(run())
    except ApiError as e:
        if e.status == 401:
            where = f"read from {source}" if token else f"none found in {source}"
            msg = f"the gateway at {url} refused the API token ({where}): {e.reason}"
        else:
            msg = e.reason or str(e)
        print(f"kithnet: {msg}", file=sys.stderr)
        return 1
    except ClientError as e:
        print(f"kithnet: {e}", file=sys.stderr)
        return 1
    if out is not None:
        print(json.dumps(out, indent=2, ensure_ascii=False) if args.json else out)
    return 0


Command = Callable[[Any, argparse.Namespace], Coroutine[Any, Any, Any]]


async def _devices(c: Any, args: argparse.Namespace) -> Any:
    devs = await c.devices()
    if args.json:
        return devs
    if not devs:
        return "no devices adopted yet (see: kithnet pending)"
    rows = [
        [
            d["name"],
            d["id"],
            d.get("room") or "-",
            d.get("type", ""),
            "online" if d.get("online") else "offline",
            _ago(d.get("last_seen")),
        ]
        for d in sorted(devs, key=lambda d: (d.get("room") or "", d["name"]))
    ]
    return _table(["NAME", "ID", "ROOM", "TYPE", "STATUS", "LAST SEEN"], rows)


async def _state(c: Any, args: argparse.Namespace) -> Any:
    dev = await c.device(args.name)
    if args.json:
        return dev["state"]
    state = dev.get("state", {})
    rows = []
    for cap in dev.get("capabilities", []):
        reading = state.get(cap["name"])
        value = _show(reading["value"], cap.get("unit", "")) if reading else "-"
        rows.append(
            [
                cap["name"],
                value,
                "rw" if cap.get("writable") else "r",
                _ago(reading["ts"]) if reading else "-",
            ]
        )
    status = "online" if dev.get("online") else f"offline: {dev.get('reason', '')}".rstrip(": ")
    head = f"{dev['name']} ({dev['id']}, {dev.get('type', '?')}, {status})"
    return head + "\n" + _table(["CAPABILITY", "VALUE", "ACCESS", "UPDATED"], rows)


async def _set(c: Any, args: argparse.Namespace) -> Any:
    result = await c.set(args.name, {args.capability: args.value}, fade_ms=args.fade)
    if args.json:
        return result
    if result.get("status") == "queued":
        return f"queued: {args.name} gets it when it next wakes"
    state = result.get("state") or {args.capability: args.value}
    return "applied: " + ", ".join(f"{k} = {_show(v)}" for k, v in state.items())


async def _config(c: Any, args: argparse.Namespace) -> Any:
    values = await c.node_config(args.name, dict(args.settings) if args.settings else None)
    if args.json:
        return values
    if values.get("status") == "queued":
        return f"queued: {args.name} takes them when it next wakes"
    return _table(["SETTING", "VALUE"], [[k, _show(v)] for k, v in sorted(values.items())])


async def _wifi(c: Any, args: argparse.Namespace) -> Any:
    password = sys.stdin.readline().rstrip("\r\n") if args.password == "-" else args.password
    r = await c.node_config(args.name, {"wifi": {"ssid": args.ssid, "password": password}})
    if r.get("status") == "queued":
        return f"queued: {args.name} takes them when it next wakes, and joins {args.ssid!r} after"
    return f"{args.name} joins {args.ssid!r} from its next boot (the password is not read back)"


async def _history(c: Any, args: argparse.Namespace) -> Any:
    points = await c.history(args.name, args.capability, since=args.since, limit=args.limit)
    if args.json:
        return points
    if not points:
        return f"no values of {args.capability} recorded for {args.name} in that time"
    rows = [[_when(p["ts"]), _show(p["value"])] for p in points]
    return _table(["TIME", args.capability.upper()], rows)


async def _pending(c: Any, args: argparse.Namespace) -> Any:
    nodes = await c.pending()
    if args.json:
        return nodes
    if not nodes:
        return "no nodes waiting to be adopted"
    cols = [k for k in ("id", "name", "model", "type", "firmware", "address") if k in nodes[0]]
    rows = [[str(n.get(k) or "-") for k in cols] + [_ago(n.get("last_seen"))] for n in nodes]
    return _table([k.upper() for k in cols] + ["LAST SEEN"], rows)


def _adopt_usage(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """adopt NODE_ID --key HEX, or (BTHome) adopt --bthome MAC --bindkey HEX | --insecure."""
    if args.bthome:
        if args.node_id or args.key:
            parser.error("adopt --bthome takes a MAC and --bindkey, not a node id and --key")
        if bool(args.bindkey) == args.insecure:
            parser.error("adopt --bthome needs --bindkey HEX, or --insecure for an unencrypted one")
    elif args.bindkey or args.insecure:
        parser.error("--bindkey and --insecure go with --bthome MAC")
    elif not args.node_id or not args.key:
        parser.error("adopt needs NODE_ID and --key HEX (or --bthome MAC --bindkey HEX)")


async def _adopt(c: Any, args: argparse.Namespace) -> Any:
    if args.bthome:  # BTHome
        dev = await c.adopt_bthome(args.bthome, args.bindkey, args.insecure, name=args.name,
                                   room=args.room)  # fmt: skip
    else:
        dev = await c.adopt(args.node_id, args.key, name=args.name, room=args.room)
    if args.json:
        return dev
    return f"adopted {dev['name']} ({dev['id']})"


COMMANDS: dict[str, Command] = {
    "devices": _devices,
    "state": _state,
    "set": _set,
    "history": _history,
    "config": _config,
    "wifi": _wifi,
    "pending": _pending,
    "adopt": _adopt,
    "ota": _ota,  # OTA
}


# -- output for people ---------------------------------------------------------------------


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    head = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    return "\n".join(line.rstrip() for line in [head, *lines])


def _show(value: Any, unit: str = "") -> str:
    if isinstance(value, bool):
        text = "on" if value else "off"
    elif isinstance(value, float):
        text = f"{value:g}"
    else:
        text = str(value)
    return f"{text} {unit}".strip() if unit and not isinstance(value, bool) else text


def _ago(ts: float | None) -> str:
    if ts is None:
        return "never"
    s = max(0, int(time.time() - ts))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s // size} {unit} ago"
    return f"{s} s ago"


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts).isoformat(sep=" ", timespec="seconds")


if __name__ == "__main__":
    raise SystemExit(main())
