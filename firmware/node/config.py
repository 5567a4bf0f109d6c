# config.json: everything that makes a board a particular node, as data (like an ESPHome
# YAML). Loaded once at boot; a missing or broken file stops the node with one clear line
# instead of a traceback, and the file is left untouched for the user to fix.

import json

from protocol import model

DEFAULT_PORT = 47801


class ConfigError(Exception):
    pass


def _hex(s, n, what):
    try:
        b = bytes.fromhex(s)
    except (TypeError, ValueError):
        b = b""
    if len(b) != n:
        raise ConfigError("%s must be %d hex digits" % (what, 2 * n))
    return b


def load(path="config.json"):
    try:
        with open(path) as f:
            cfg = json.load(f)
    except OSError:
        raise ConfigError("%s is missing: provision the board (kithnet flash / node create)" % path)
    except ValueError:
        raise ConfigError("%s is not valid JSON" % path)
    return check(cfg)


def check(cfg):
    """Validate and complete a config dict; ConfigError names the first problem."""
    if not isinstance(cfg, dict):
        raise ConfigError("config must be a JSON object")
    node = cfg.get("node")
    if not isinstance(node, dict):
        raise ConfigError("config lacks the node section (id, key, name)")
    cfg["node_id"] = _hex(node.get("id"), 8, "node.id")
    cfg["key"] = _hex(node.get("key"), 16, "node.key")
    if not isinstance(node.get("name"), str) or not node["name"]:
        raise ConfigError("node.name must be a non-empty string")
    cfg["hostname"] = "kn-" + node["id"].lower()
    devices = cfg.get("devices")
    if not isinstance(devices, list) or not devices:
        raise ConfigError("config lacks devices")
    seen = {}
    for i, dev in enumerate(devices):
        if not isinstance(dev, dict) or not isinstance(dev.get("driver"), str):
            raise ConfigError("devices[%d] needs a driver" % i)
        dev.setdefault("name", "%s%d" % (dev["driver"], i))
        caps = dev.get("caps", {})
        if not isinstance(caps, dict):
            raise ConfigError("devices[%d].caps must map kind names to ids" % i)
        for kind in caps:
            cid = caps[kind]
            if kind not in model.BY_NAME:
                raise ConfigError("devices[%d]: unknown capability kind %r" % (i, kind))
            if not isinstance(cid, int) or cid < 1 or cid > 0xFFFF or cid in seen:
                raise ConfigError("devices[%d]: capability id %r is not a new id" % (i, cid))
            seen[cid] = model.BY_NAME[kind]
    rep = cfg.setdefault("report", {})
    rep.setdefault("interval", 60)
    rep.setdefault("sample_ms", 1000)
    rep.setdefault("deadband", {})
    _ble(cfg.get("ble"))
    cfg.setdefault("port", DEFAULT_PORT)
    cfg.setdefault("sleep", {})
    return cfg


def _ble(b):
    """The "ble" section: {"interval_s", "wifi", "connectable", "pair_s", "adv_ms",
    "burst_ms", "adv"}, all optional (node/ble.py has the defaults; "adv": what the
    advertisements carry, "kithnet" frames, "bthome" (node/bthome.py) or "both")."""
    if b is None:
        return
    if not isinstance(b, dict):
        raise ConfigError("ble must be an object")
    for k in ("interval_s", "pair_s", "adv_ms", "burst_ms"):
        v = b.get(k, 1)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0 or v > 86400000:
            raise ConfigError("ble.%s must be a whole number >= 0" % k)
    if b.get("interval_s", 1) < 1 or b.get("adv_ms", 20) < 20:
        raise ConfigError("ble.interval_s must be >= 1 and ble.adv_ms >= 20")
    for k in ("wifi", "connectable"):
        if not isinstance(b.get(k, False), bool):
            raise ConfigError("ble.%s must be true or false" % k)
    if b.get("adv", "kithnet") not in ("kithnet", "bthome", "both"):  # SPEC 13.2
        raise ConfigError('ble.adv must be "kithnet", "bthome" or "both"')
