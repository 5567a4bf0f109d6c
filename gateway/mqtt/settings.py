"""The MQTT hub's settings, read from GatewayConfig: the broker URL and TLS files, the topic
prefixes, the client id and the outbox bound, and this gateway's own id on the broker.

The URL carries what a person types once (`mqtt://user:pass@host:port`, `mqtts://` for
TLS); a bad one is refused when the settings are loaded, with the setting's name, so the
gateway never starts with an MQTT configuration it cannot use.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ..config import ConfigError

_SLUG = re.compile(r"[^a-z0-9]+")
_TOPIC_LEVEL = re.compile(r"[^/+#\x00]+")
_ID_FILE = "gateway_id"  # in the data directory: this gateway's id on every broker

# `kithnet gateway` has one flag per mqtt_* setting of GatewayConfig (kithnet/cli.py): these
# are their metavars and help texts.
FLAGS = {
    "mqtt_url": ("URL", "MQTT broker: mqtt://user:pass@host:port or mqtts://... (none: no MQTT)"),
    "mqtt_ca": ("FILE", "CA bundle for mqtts:// (default: the system's)"),
    "mqtt_cert": ("FILE", "client certificate for mqtts://"),
    "mqtt_key": ("FILE", "the client certificate's key"),
    "mqtt_prefix": ("P", "plain topic tree P/<node>/<capability> (kithnet)"),
    "mqtt_discovery_prefix": ("P", "Home Assistant discovery prefix (homeassistant)"),
    "mqtt_client_id": ("ID", "MQTT client id (default: the gateway id, in DATA/gateway_id)"),
    "mqtt_queue_max": ("N", "readings kept on disk while the broker is away (100000)"),
}


@dataclass(frozen=True)
class MqttSettings:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None
    ca: str | None  # CA bundle for mqtts:// (None: the system's)
    cert: str | None  # client certificate and key for brokers that ask for one
    key: str | None
    client_id: str
    prefix: str  # the plain topic tree: PREFIX/<node>/<capability>
    discovery_prefix: str  # Home Assistant's discovery prefix
    queue_max: int  # readings and events kept on disk while the broker is away
    gateway_id: str  # unique per gateway on one broker (client id, topics, HA device)

    @property
    def where(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def parse_url(url: str) -> tuple[bool, str, int, str | None, str | None]:
    """(tls, host, port, user, password) of mqtt[s]://[user[:password]@]host[:port]."""
    try:
        u = urlsplit(url)
        port = u.port
    except ValueError as e:
        raise ConfigError(f"mqtt_url = {url!r}: {e}") from None
    if u.scheme not in ("mqtt", "mqtts"):
        raise ConfigError(f"mqtt_url = {url!r}: the scheme must be mqtt:// or mqtts://")
    if not u.hostname:
        raise ConfigError(f"mqtt_url = {url!r}: no broker host")
    if u.path not in ("", "/") or u.query or u.fragment:
        raise ConfigError(f"mqtt_url = {url!r}: only mqtt[s]://[user[:password]@]host[:port]")
    tls = u.scheme == "mqtts"
    user = unquote(u.username) if u.username else None
    password = unquote(u.password) if u.password is not None else None
    return tls, u.hostname, port or (8883 if tls else 1883), user, password


def _prefix(name: str, value: str) -> str:
    levels = value.split("/")
    if not value or not all(_TOPIC_LEVEL.fullmatch(lv) for lv in levels):
        raise ConfigError(
            f"{name} = {value!r}: topic levels without '+', '#' or empty levels "
            "(no leading or trailing '/')"
        )
    return value


def check(cfg: Any) -> None:
    """Refuse unusable MQTT settings at load time (config.load calls this)."""
    if not cfg.mqtt_url:
        return
    tls = parse_url(cfg.mqtt_url)[0]
    _prefix("mqtt_prefix", cfg.mqtt_prefix)
    _prefix("mqtt_discovery_prefix", cfg.mqtt_discovery_prefix)
    if cfg.mqtt_queue_max < 1:
        raise ConfigError("mqtt_queue_max must be at least 1")
    for name in ("mqtt_ca", "mqtt_cert", "mqtt_key"):
        path = getattr(cfg, name)
        if path and not tls:
            raise ConfigError(f"{name} is set but mqtt_url is not mqtts://")
        if path and not Path(path).expanduser().is_file():
            raise ConfigError(f"{name} = {path!r}: no such file")
    if cfg.mqtt_key and not cfg.mqtt_cert:
        raise ConfigError("mqtt_key needs mqtt_cert (the client certificate)")
    if cfg.mqtt_client_id is not None and not 0 < len(cfg.mqtt_client_id) <= 128:
        raise ConfigError("mqtt_client_id must be 1..128 characters")


def gateway_id(name: str, data: Path) -> str:
    """This gateway's id on a broker, kept in DATA/gateway_id: made once from its name and a
    random suffix, so it stays the same across restarts (and moves with the data directory,
    as the registry does) and two gateways called alike still differ."""
    path = data / _ID_FILE
    try:
        gid = path.read_text().strip()
        if re.fullmatch(r"[a-z0-9-]{3,64}", gid):
            return gid
    except OSError:
        pass
    slug = _SLUG.sub("-", name.lower()).strip("-")[:40] or "kithnet"
    gid = f"{slug}-{secrets.token_hex(3)}"
    data.mkdir(parents=True, exist_ok=True)
    path.write_text(gid + "\n")
    return gid


def from_config(cfg: Any) -> MqttSettings | None:
    """The hub's settings, or None when no broker is configured (no MQTT hub)."""
    if not cfg.mqtt_url:
        return None
    check(cfg)
    tls, host, port, user, password = parse_url(cfg.mqtt_url)
    gid = gateway_id(cfg.name, cfg.data_path)

    def path(p: str | None) -> str | None:
        return str(Path(p).expanduser()) if p else None

    return MqttSettings(
        host=host,
        port=port,
        tls=tls,
        username=user,
        password=password,
        ca=path(cfg.mqtt_ca),
        cert=path(cfg.mqtt_cert),
        key=path(cfg.mqtt_key),
        client_id=cfg.mqtt_client_id or gid,
        prefix=cfg.mqtt_prefix,
        discovery_prefix=cfg.mqtt_discovery_prefix,
        queue_max=cfg.mqtt_queue_max,
        gateway_id=gid,
    )
