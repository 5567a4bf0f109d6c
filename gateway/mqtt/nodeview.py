"""How one node appears on MQTT: a topic per capability, and the node-level JSON topics
(info, update, a light's combined state). Made from the gateway's Device when the hub
starts publishing the node, and again when the node's description changes; discovery.py
and hub.py both read it, so a topic is named in exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kithnet.protocol import messages as M
from kithnet.protocol import model

from ..devices import Device, display
from . import codec
from .topics import Topics, cap_names

# Reboot reasons as Home Assistant enum options (the reboot diagnostic entity).
REBOOT = {
    M.REBOOT_POWER_ON: "power_on",
    M.REBOOT_HARD: "reset",
    M.REBOOT_WATCHDOG: "watchdog",
    M.REBOOT_DEEP_SLEEP: "deep_sleep",
    M.REBOOT_SOFT: "soft_reset",
    M.REBOOT_BROWNOUT: "brownout",
    M.REBOOT_OTA: "ota",
    M.REBOOT_UNKNOWN: "unknown",
}


# The update entity (Home Assistant's MQTT update): what its install button sends, and the
# update job states (gateway/ota.py) during which it shows an installation in progress.
PAYLOAD_INSTALL = "install"
UPDATING = frozenset({"waiting", "receiving", "installing", "trial"})
TITLE = "kithnet firmware"


def _first(dev: Device, kind: int) -> model.Capability | None:
    for cid in sorted(dev.caps):
        if dev.caps[cid].kind == kind:
            return dev.caps[cid]
    return None


@dataclass
class Light:
    """A switch with brightness (and colour temperature) on one node: one HA light."""

    switch: model.Capability
    brightness: model.Capability
    colour_temp: model.Capability | None


@dataclass
class Climate:
    """Setpoint, HVAC mode and fan mode on one node: one HA climate entity."""

    setpoint: model.Capability | None
    mode: model.Capability | None
    fan: model.Capability | None
    temperature: model.Capability | None  # the room's, shown as the current temperature
    humidity: model.Capability | None


@dataclass
class NodeView:
    node: str
    names: dict[int, str]  # capability id -> topic level
    state: dict[str, str]  # capability label (as the bus names it) -> state topic
    kinds: dict[str, int]  # capability label -> kind
    availability: str
    info: str
    update: str
    owner: str
    light_topic: str
    light: Light | None = None
    climate: Climate | None = None
    light_labels: frozenset[str] = field(default_factory=frozenset)
    reboot: int | None = -1  # the reboot reason last published in info

    @classmethod
    def of(cls, dev: Device, t: Topics) -> NodeView:
        node = dev.hex
        names = cap_names(dev.caps)
        state: dict[str, str] = {}
        kinds: dict[str, int] = {}
        for cid in sorted(dev.caps):
            cap = dev.caps[cid]
            state.setdefault(cap.label, t.node(node, names[cid]))
            kinds.setdefault(cap.label, cap.kind)
        view = cls(
            node=node,
            names=names,
            state=state,
            kinds=kinds,
            availability=t.node(node, "availability"),
            info=t.node(node, "info"),
            update=t.node(node, "update"),
            owner=t.node(node, "owner"),
            light_topic=t.node(node, "light"),
        )
        switch, bright = _first(dev, model.SWITCH), _first(dev, model.BRIGHTNESS)
        if switch is not None and bright is not None and bright.writable:
            view.light = Light(switch, bright, _first(dev, model.COLOUR_TEMP))
            view.light_labels = frozenset(
                c.label for c in (switch, bright, view.light.colour_temp) if c is not None
            )
        setpoint, mode = _first(dev, model.SETPOINT), _first(dev, model.HVAC_MODE)
        if (setpoint and setpoint.writable) or (mode and mode.writable):
            view.climate = Climate(
                setpoint, mode, _first(dev, model.FAN_MODE), _first(dev, model.TEMPERATURE),
                _first(dev, model.HUMIDITY),
            )  # fmt: skip
        return view

    def topic(self, cap: model.Capability) -> str:
        return self.state[cap.label]

    def command(self, cap: model.Capability) -> str:
        return self.state[cap.label] + "/set"

    def cid_of(self, name: str) -> int | None:
        """The capability behind a command topic's level (its topic name)."""
        for cid, n in self.names.items():
            if n == name:
                return cid
        return None

    # -- node-level JSON -------------------------------------------------------------------

    def light_state(self, dev: Device) -> bytes | None:
        """The light's state as Home Assistant's JSON light schema reads it."""
        lt = self.light
        if lt is None or lt.switch.cid not in dev.state:
            return None
        out: dict[str, Any] = {"state": "ON" if dev.state[lt.switch.cid][0] else "OFF"}
        b = dev.state.get(lt.brightness.cid)
        if b is not None:
            out["brightness"] = display(lt.brightness, b[0])
        if lt.colour_temp is not None:
            ct = dev.state.get(lt.colour_temp.cid)
            out["color_mode"] = "color_temp"
            if ct is not None:
                out["color_temp"] = display(lt.colour_temp, ct[0])
        elif b is not None:
            out["color_mode"] = "brightness"
        return codec.encode_json(out)

    def info_payload(self, dev: Device) -> bytes:
        return codec.encode_json(
            {
                "id": dev.hex,
                "name": dev.name,
                "room": dev.room,
                "type": dev.type,
                "model": dev.model,
                "firmware": dev.firmware,
                "reboot": REBOOT.get(dev.reboot, "unknown") if dev.reboot is not None else None,
                "sleepy": dev.sleepy,
            }
        )

    @property
    def update_command(self) -> str:
        """Where the update entity's install button publishes PAYLOAD_INSTALL."""
        return self.update + "/set"

    def update_payload(self, dev: Device, latest: str | None, summary: str = "") -> bytes:
        """Home Assistant's update entity state (its JSON state schema: strings never null,
        no other keys). latest is what the firmware shelf offers this node (None: nothing
        newer than what it runs); while an update runs, the version being installed. Every
        key but an unknown version is always there: Home Assistant keeps a key's old value
        when a message leaves it out."""
        installed = dev.firmware
        job = dev.ota
        running = job is not None and job.get("state") in UPDATING
        if running:
            latest = job.get("version") or latest
            summary = f"Updating to {latest} ({job.get('state')})"
        elif job is not None and job.get("state") == "failed":  # until the next update
            failed = f"The update to {job.get('version')} failed: {job.get('error')}."
            summary = f"{failed} {summary}" if summary else failed
        out: dict[str, Any] = {"title": TITLE, "release_summary": summary[:255]}
        if installed is not None:
            out["installed_version"] = installed
        if latest or installed:
            out["latest_version"] = latest or installed
        out["in_progress"] = running
        receiving = running and job.get("state") == "receiving"
        out["update_percentage"] = int(job.get("percent") or 0) if receiving else None
        return codec.encode_json(out)

    def snapshot(self, dev: Device) -> list[tuple[str, bytes]]:
        """Every retained state topic with the node's current value (after a broker lost
        its retained messages, this makes it whole again)."""
        out = []
        for cid, (wire, _ts) in dev.state.items():
            cap = dev.caps.get(cid)
            if cap is None or cap.vtype == model.EVENT:
                continue
            out.append((self.topic(cap), codec.encode(display(cap, wire))))
        light = self.light_state(dev)
        if light is not None:
            out.append((self.light_topic, light))
        return out

    def retained_topics(self) -> list[str]:
        """Every retained topic this node can have: cleared when the node is removed."""
        return [
            *self.state.values(),
            self.availability,
            self.info,
            self.update,
            self.light_topic,
            self.owner,
        ]
