# Boot-only work: read config.json, start the hardware, build the drivers and what the node
# tells the gateway about itself, open the network side. The runtime drops this module, the
# config loader, the capability registry and the discovery constants once the node runs.

from protocol import discovery, model

from . import config, hal

DIAGNOSTICS = ((30, model.RSSI), (31, model.UPTIME))  # ids above those configs use

# Default dead-bands in wire units: 0.2 degC, 2 %RH, 5 W, 2 V, 50 mA, 10 Wh, 20 lx, 1 %.
_DEADBAND = {6: 20, 7: 200, 2: 50, 3: 20, 4: 50, 5: 10, 8: 20, 12: 1, 16: 1}


def load():
    cfg = config.load()
    hal.init(cfg, ".")
    store = hal.Store()
    for key in ("interval", "name"):  # what the gateway set with config-set survives reboots
        v = store.get("cfg." + key)
        if v is not None:
            if key == "name":
                cfg["node"]["name"] = v
            else:
                cfg["report"]["interval"] = v
    return cfg, store


def build(node, cfg):
    """Drivers, capability rules, dead-bands and the hello's capability map, into node."""
    bands = cfg["report"]["deadband"]
    hello = {}
    for dev in cfg["devices"]:
        try:
            mod = __import__("node.drivers." + dev["driver"], None, None, ["Driver"])
        except ImportError:
            raise config.ConfigError("no driver %r" % dev["driver"])
        drv = mod.Driver(hal, dev)
        node.devices[dev["name"]] = drv
        node.drivers.append(drv)
        own = dev.get("deadband", {})
        for kind in dev.get("caps", {}):
            cid = dev["caps"][kind]
            k = model.BY_NAME[kind]
            cap = model.Capability(cid, k, dev.get("options", {}).get(kind))
            node.rules[cid] = cap.rule
            node.owner[cid] = drv
            node.bands[cid] = bands.get(kind, own.get(kind, _DEADBAND.get(k, 0)))
            hello[cid] = cap.describe()
    for cid, k in DIAGNOSTICS:
        node.rules[cid] = model.Capability(cid, k).rule
        hello[cid] = k
    node.hello_caps = hello
    node.model = cfg.get("model", "kithnet-" + cfg.get("type", "node"))


def mdns(node, ip, mode):
    """Publish the node's DNS-SD service; None when the network has no room for it."""
    from . import mdns as m

    c = node.cfg
    txt = {
        discovery.TXT_ID: c["node"]["id"].lower(),
        discovery.TXT_MODEL: node.model,
        discovery.TXT_FIRMWARE: node.firmware,
        discovery.TXT_PROTOCOL: "1",
        discovery.TXT_SLEEPY: "1" if node.link.sleepy else "0",
        discovery.TXT_TYPE: c.get("type", "node"),
    }
    try:
        r = m.Responder(c["hostname"], ip, c["port"], txt, c["node"]["name"], mode == "full")
        r.open()
        r.announce()
    except OSError as e:
        node.log("mDNS unavailable: %s" % e)
        return None
    return r


def gateway(cfg, ip):
    """The gateway's address: configured, or found by DNS-SD; None if not (yet) found."""
    gw = cfg.get("gateway")
    if gw and gw.get("host"):
        return hal.addr(gw["host"], gw.get("port", discovery.GATEWAY_PORT))
    from . import mdns as m

    found = m.find_gateway(ip)
    return hal.addr(found[0], found[1]) if found else None
