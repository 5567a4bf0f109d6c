# Boot-only work, done once per config.json: validate it, build the drivers and what the
# node tells the gateway about itself, and write the boot plan (plan()) that lets every
# later boot skip this module, the config loader, the capability registry and the
# discovery constants altogether (start.node).

from protocol import discovery, model

from . import config
from .runtime import RSSI_ID, UPTIME_ID, hal

DIAGNOSTICS = ((RSSI_ID, model.RSSI), (UPTIME_ID, model.UPTIME))

# Default dead-bands in wire units: 0.2 degC, 2 %RH, 5 W, 2 V, 50 mA, 10 Wh, 20 lx, 1 %.
_DEADBAND = {6: 20, 7: 200, 2: 50, 3: 20, 4: 50, 5: 10, 8: 20, 12: 1, 16: 1}


def load(cfg):
    """Validate config.json's contents (already parsed) and apply what config-set saved."""
    config.check(cfg)
    store = hal.Store()
    for key in ("interval", "name"):  # what the gateway set with config-set survives reboots
        v = store.get("cfg." + key)
        if v is not None:
            if key == "name":
                cfg["node"]["name"] = v
            else:
                cfg["report"]["interval"] = v
    return store


def plan(cfg, digest, firmware):
    """What every boot of this config needs, so that no boot imports the code above.

    A lean boot (start.node) skips config validation, the capability registry and this
    module: their code and, above all, their interned names would otherwise stay on the
    heap for good. The plan is tied to the exact bytes of config.json: any change makes
    the node plan again. No driver is started here; the lean boot starts them.
    """
    bands = cfg["report"]["deadband"]
    rules = {}
    hello = {}
    owners = {}
    deadbands = {}
    for index, dev in enumerate(cfg["devices"]):
        own = dev.get("deadband", {})
        for kind in dev.get("caps", {}):
            cid = dev["caps"][kind]
            k = model.BY_NAME[kind]
            cap = model.Capability(cid, k, dev.get("options", {}).get(kind))
            rules[cid] = list(cap.rule)
            owners[cid] = index
            deadbands[cid] = bands.get(kind, own.get(kind, _DEADBAND.get(k, 0)))
            hello[cid] = cap.describe()
    for cid, k in DIAGNOSTICS:
        rules[cid] = list(model.Capability(cid, k).rule)
        hello[cid] = k
    name = cfg.get("model", "kithnet-" + cfg.get("type", "node"))
    keep = ("node_id", "key", "hostname", "port", "report", "sleep")
    gw = cfg.get("gateway")
    return {
        "h": digest,
        "cfg": dict((k, cfg[k]) for k in keep),
        "rules": rules,
        "bands": deadbands,
        "owners": owners,
        "hello": hello,
        "model": name,
        "gw": [gw["host"], gw.get("port", discovery.GATEWAY_PORT)]
        if gw and gw.get("host")
        else None,
        "txt": {
            discovery.TXT_ID: cfg["node"]["id"].lower(),
            discovery.TXT_MODEL: name,
            discovery.TXT_FIRMWARE: firmware,
            discovery.TXT_PROTOCOL: "1",
            discovery.TXT_SLEEPY: "1" if cfg["sleep"].get("enabled") else "0",
            discovery.TXT_TYPE: cfg.get("type", "node"),
        },
    }
