"""Gateway settings: defaults, then a TOML file, then command-line flags.

Every setting has one name, used alike as a TOML key and (with dashes) as a flag, so the
file and the flags cannot drift apart. A bad file is refused with the key it is about.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

DEFAULT_HTTP_PORT = 47880


class ConfigError(ValueError):
    """A setting that cannot be used, named with the file or flag it came from."""


def _default_data() -> str:
    return os.environ.get("KITHNET_DATA") or str(Path.home() / ".kithnet")


@dataclass
class GatewayConfig:
    data: str = field(default_factory=_default_data)  # registry, history, token
    udp_host: str = "0.0.0.0"
    udp_port: int = 47800  # protocol.discovery.GATEWAY_PORT
    http_host: str = "127.0.0.1"
    http_port: int = DEFAULT_HTTP_PORT
    token: str | None = None  # API token; None: read or make DATA/token
    discovery: bool = True  # browse and advertise DNS-SD (python-zeroconf)
    interfaces: list[str] | None = None  # addresses zeroconf uses; None: all
    name: str = "kithnet"  # the gateway's DNS-SD instance name
    keys: str | None = None  # JSON-lines file of nodes to adopt at start (provisioning)
    retention_days: float = 365.0  # history older than this is deleted
    downsample_after_days: float = 7.0  # history older than this is averaged...
    downsample_s: int = 300  # ...into buckets of this many seconds
    command_timeout_s: float = 45.0  # a command unanswered this long fails (504)
    log_level: str = "info"
    # -- BLE (gateway/ble/): off unless set --
    ble: str | None = None  # "bluez" (bleak's platform backend) or "virtual:HOST:PORT"
    # -- end BLE --
    # -- MQTT hub (gateway/mqtt/settings.py): none without mqtt_url; flags --mqtt-url etc. --
    mqtt_url: str | None = None  # mqtt://user:pass@host:port, or mqtts:// for TLS
    mqtt_ca: str | None = None  # CA bundle for mqtts:// (None: the system's)
    mqtt_cert: str | None = None  # client certificate for mqtts://
    mqtt_key: str | None = None  # its key
    mqtt_prefix: str = "kithnet"  # plain topic tree: PREFIX/<node>/<capability>
    mqtt_discovery_prefix: str = "homeassistant"
    mqtt_client_id: str | None = None  # None: the gateway id (DATA/gateway_id)
    mqtt_queue_max: int = 100_000  # readings and events kept on disk while the broker is away
    # -- end MQTT hub --

    @property
    def data_path(self) -> Path:
        return Path(self.data).expanduser()


_TYPES = {f.name: f for f in fields(GatewayConfig)}


def _coerce(name: str, value: Any, where: str) -> Any:
    f = _TYPES.get(name)
    if f is None:
        raise ConfigError(f"{where}: unknown setting {name!r}")
    t = str(f.type)
    try:
        if t.startswith("int"):
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise TypeError
            return int(value)
        if t.startswith("float"):
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise TypeError
            return float(value)
        if t.startswith("bool"):
            if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
                return True
            if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
                return False
            if not isinstance(value, bool):
                raise TypeError
            return value
        if t.startswith("list"):
            if value is None:
                return None
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise TypeError
            return value
        if value is None and "None" in t:
            return None
        if not isinstance(value, str):
            raise TypeError
        return value
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {name} = {value!r} is not a {t}") from None


def load(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> GatewayConfig:
    """Defaults, then the TOML file (its [gateway] table or its top level), then overrides
    (flags; None values are left out)."""
    cfg = GatewayConfig()
    if path is not None:
        p = Path(path)
        try:
            doc = tomllib.loads(p.read_text())
        except OSError as e:
            raise ConfigError(f"{p}: cannot read ({e.strerror})") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{p}: not valid TOML ({e})") from None
        table = doc.get("gateway", doc)
        if not isinstance(table, dict):
            raise ConfigError(f"{p}: [gateway] must be a table")
        for k, v in table.items():
            setattr(cfg, k.replace("-", "_"), _coerce(k.replace("-", "_"), v, str(p)))
    for k, v in (overrides or {}).items():
        if v is not None:
            setattr(cfg, k, _coerce(k, v, "--" + k.replace("_", "-")))
    for port in ("udp_port", "http_port"):
        if not 0 <= getattr(cfg, port) <= 65535:
            raise ConfigError(f"{port} must be 0..65535")
    if cfg.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"log_level must be debug, info, warning or error, not {cfg.log_level!r}")
    if cfg.ble and not (cfg.ble in ("bluez", "platform") or cfg.ble.startswith("virtual:")):
        raise ConfigError(f'ble = {cfg.ble!r}: use "bluez" or "virtual:HOST:PORT"')  # BLE
    if cfg.mqtt_url:  # MQTT hub: refuse a URL or file it could not use, by name
        from .mqtt.settings import check

        check(cfg)
    return cfg
