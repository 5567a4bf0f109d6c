"""Home Assistant MQTT discovery, device-based: one retained message per node at
`DISCOVERY/device/kithnet_<node>/config` with the device (`dev`), the origin (`o`) and a
component per entity (`cmps`), and one for the gateway itself, which every node names as
its `via_device`.

What each capability kind becomes is the declarative table KINDS below, checked against
Home Assistant's own rules (device class -> units and state classes, required keys per
platform) in tests/test_mqtt_units.py. Three kinds of composition go beyond one capability,
one entity: a switch with brightness (and colour temperature) is one JSON-schema `light`;
setpoint, HVAC mode and fan mode are one `climate` (the room temperature as its current
temperature); a button is an `event` entity plus one device trigger per press type.
Every node also gets diagnostics (signal strength and uptime from its reports, firmware
and the last reboot's reason from the info topic) and an `update` entity.

unique_ids are `kithnet_<node>_<topic level>`: the node id and the capability's name, both
stable for as long as the node is. Every entity is available only while both the gateway
(its last will) and the node are online (`availability_mode: all`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from kithnet.protocol import model

from kithnet import __version__

from ..devices import Device, display
from .nodeview import PAYLOAD_INSTALL, REBOOT, NodeView
from .topics import Topics

ORIGIN = {"name": "kithnet", "sw_version": __version__}
MANUFACTURER = "kithnet"
ON, OFF = "true", "false"  # how a bool state reads on a state topic (JSON)
VALUE = "{{ value_json }}"  # a JSON string state ("cool") as the text HA compares


@dataclass(frozen=True)
class Entity:
    """How a capability kind appears in Home Assistant when it stands alone."""

    platform: str
    device_class: str | None = None
    state_class: str | None = None
    unit: str | None = None  # HA's unit text (case-sensitive); the kind's unit must match
    category: str | None = None  # "diagnostic" for the node's own health
    name: str | None = None  # the entity's name (None: from the capability's label)
    inverted: bool = False  # a binary sensor whose true means HA's "off"


KINDS: dict[int, Entity] = {
    model.SWITCH: Entity("switch", "switch"),  # "outlet" on a plug
    model.POWER: Entity("sensor", "power", "measurement", "W"),
    model.VOLTAGE: Entity("sensor", "voltage", "measurement", "V"),
    model.CURRENT: Entity("sensor", "current", "measurement", "A"),
    # total_increasing in Wh: the energy dashboard takes it; a drop is a new meter cycle.
    model.ENERGY: Entity("sensor", "energy", "total_increasing", "Wh"),
    model.TEMPERATURE: Entity("sensor", "temperature", "measurement", "°C"),
    model.HUMIDITY: Entity("sensor", "humidity", "measurement", "%"),
    model.ILLUMINANCE: Entity("sensor", "illuminance", "measurement", "lx"),
    model.MOTION: Entity("binary_sensor", "motion"),
    model.OCCUPANCY: Entity("binary_sensor", "occupancy"),
    # contact true = closed (the device model); HA's opening is "on" when open.
    model.CONTACT: Entity("binary_sensor", "opening", inverted=True),
    model.BATTERY: Entity("sensor", "battery", "measurement", "%", "diagnostic"),
    model.BUTTON: Entity("event", "button"),
    model.BRIGHTNESS: Entity("number"),  # alone; with a switch it is part of a light
    model.COLOUR_TEMP: Entity("number", None, None, "K", name="Colour temperature"),
    model.SETPOINT: Entity("number", "temperature", None, "°C"),  # alone; else climate
    model.HVAC_MODE: Entity("select", name="HVAC mode"),
    model.FAN_MODE: Entity("select"),
    model.RSSI: Entity(
        "sensor", "signal_strength", "measurement", "dBm", "diagnostic", "Signal strength"
    ),
    model.UPTIME: Entity("sensor", "duration", None, "s", "diagnostic"),
}

# Button events as Home Assistant device trigger types.
TRIGGERS = {"single": "button_short_press", "double": "button_double_press",
            "long": "button_long_press"}  # fmt: skip
HVAC = ("off", "heat", "cool", "heat_cool", "auto", "dry", "fan_only")  # HA's HVAC modes


def node_object_id(node: str) -> str:
    return f"kithnet_{node}"


def gateway_object_id(gateway_id: str) -> str:
    return f"kithnet_gw_{gateway_id}"


# Vendor kinds that are a quantity Home Assistant knows (BTHome sensors' pressure, CO2, soil
# moisture): by the capability's label (less a _2 of a second one), when its unit is one
# that Home Assistant takes with that device class.
VENDOR_SENSORS = {"pressure": {"hPa", "mbar", "Pa", "kPa", "bar"}, "carbon_dioxide": {"ppm"},
                  "moisture": {"%"}}  # fmt: skip
_NTH = re.compile(r"_\d+$")


def _vendor(cap: model.Capability) -> Entity:
    """A kind this table does not list (a vendor kind): by its value type."""
    base = _NTH.sub("", cap.label)
    if cap.vtype == model.INT and not cap.writable and cap.unit in VENDOR_SENSORS.get(base, ()):
        return Entity("sensor", base, "measurement", cap.unit)
    if cap.vtype == model.BOOL:
        return Entity("switch" if cap.writable else "binary_sensor")
    if cap.vtype == model.EVENT:
        return Entity("event")
    if cap.vtype == model.ENUM:
        return Entity("select" if cap.writable else "sensor", None if cap.writable else "enum")
    return Entity("number" if cap.writable else "sensor", unit=cap.unit or None)


def entity_of(cap: model.Capability) -> Entity:
    return KINDS.get(cap.kind) or _vendor(cap)


def _name(cap: model.Capability, e: Entity) -> str:
    if e.name and cap.label == cap.name:
        return e.name
    return cap.label.replace("_", " ").capitalize()


def _precision(cap: model.Capability) -> int:
    return max(0, min(3, -cap.scale - 1))


def _options(cap: model.Capability) -> list[str]:
    return [v for k, v in sorted((cap.choices or {}).items()) if cap.min <= k <= cap.max]


def _component(dev: Device, view: NodeView, cap: model.Capability) -> dict[str, Any]:
    e = entity_of(cap)
    uid = f"kithnet_{view.node}_{view.names[cap.cid]}"
    c: dict[str, Any] = {"p": e.platform, "unique_id": uid, "name": _name(cap, e)}
    device_class = e.device_class
    if cap.kind == model.SWITCH and dev.type == "plug":
        device_class = "outlet"
    if device_class:
        c["device_class"] = device_class
    if e.category:
        c["entity_category"] = e.category
    if e.platform != "event":
        c["state_topic"] = view.topic(cap)
    p = e.platform
    if p == "sensor":
        if e.state_class:
            c["state_class"] = e.state_class
        if e.unit:
            c["unit_of_measurement"] = e.unit
        if cap.vtype == model.INT and cap.scale < 0:
            c["suggested_display_precision"] = _precision(cap)
        if device_class == "enum":
            c["options"] = _options(cap)
            c["value_template"] = VALUE
    elif p == "binary_sensor":
        c["payload_on"], c["payload_off"] = (OFF, ON) if e.inverted else (ON, OFF)
    elif p == "switch":
        c["command_topic"] = view.command(cap)
        c["payload_on"], c["payload_off"] = "ON", "OFF"
        c["state_on"], c["state_off"] = ON, OFF
    elif p == "number":
        c["command_topic"] = view.command(cap)
        lo, hi = display(cap, cap.min), display(cap, cap.max)
        c["min"], c["max"] = lo, hi
        c["step"] = display(cap, 1) if cap.scale < 0 else 10**cap.scale
        if e.unit:
            c["unit_of_measurement"] = e.unit
        c["mode"] = "slider" if cap.kind == model.BRIGHTNESS else "box"
    elif p == "select":
        c["command_topic"] = view.command(cap)
        c["options"] = _options(cap)
        c["value_template"] = VALUE
    elif p == "event":
        c["state_topic"] = view.topic(cap)
        c["event_types"] = _options(cap) if cap.choices else ["event"]
    return c


def _light(view: NodeView) -> dict[str, Any]:
    lt = view.light
    assert lt is not None
    c: dict[str, Any] = {
        "p": "light",
        "schema": "json",
        "unique_id": f"kithnet_{view.node}_light",
        "name": None,  # the node's main feature: the entity takes the device's name
        "state_topic": view.light_topic,
        "command_topic": view.light_topic + "/set",
        "brightness": True,
        "brightness_scale": lt.brightness.max,
    }
    if lt.colour_temp is not None:
        c["supported_color_modes"] = ["color_temp"]
        c["color_temp_kelvin"] = True
        c["min_kelvin"] = lt.colour_temp.min
        c["max_kelvin"] = lt.colour_temp.max
    else:
        c["supported_color_modes"] = ["brightness"]
    return c


def _climate(view: NodeView) -> dict[str, Any]:
    cl = view.climate
    assert cl is not None
    c: dict[str, Any] = {
        "p": "climate",
        "unique_id": f"kithnet_{view.node}_climate",
        "name": None,
        "temperature_unit": "C",
        "precision": 0.1,
    }
    if cl.mode is not None:
        c["mode_command_topic"] = view.command(cl.mode)
        c["mode_state_topic"] = view.topic(cl.mode)
        c["mode_state_template"] = VALUE
        c["modes"] = [m for m in _options(cl.mode) if m in HVAC]
    if cl.setpoint is not None:
        c["temperature_command_topic"] = view.command(cl.setpoint)
        c["temperature_state_topic"] = view.topic(cl.setpoint)
        c["min_temp"] = display(cl.setpoint, cl.setpoint.min)
        c["max_temp"] = display(cl.setpoint, cl.setpoint.max)
        c["temp_step"] = 0.5
    if cl.fan is not None:
        c["fan_mode_command_topic"] = view.command(cl.fan)
        c["fan_mode_state_topic"] = view.topic(cl.fan)
        c["fan_mode_state_template"] = VALUE
        c["fan_modes"] = _options(cl.fan)
    if cl.temperature is not None:
        c["current_temperature_topic"] = view.topic(cl.temperature)
    if cl.humidity is not None:
        c["current_humidity_topic"] = view.topic(cl.humidity)
    return c


def _diagnostics(view: NodeView) -> dict[str, dict[str, Any]]:
    n = view.node
    return {
        f"{n}_firmware": {
            "p": "sensor",
            "unique_id": f"kithnet_{n}_firmware",
            "name": "Firmware",
            "entity_category": "diagnostic",
            "state_topic": view.info,
            "value_template": "{{ value_json.firmware }}",
        },
        f"{n}_reboot": {
            "p": "sensor",
            "unique_id": f"kithnet_{n}_reboot",
            "name": "Last reboot",
            "device_class": "enum",
            "options": sorted(set(REBOOT.values())),
            "entity_category": "diagnostic",
            "state_topic": view.info,
            "value_template": "{{ value_json.reboot or 'unknown' }}",
        },
        # The installed firmware, the firmware shelf's newest bundle as the latest version
        # (hub.latest_firmware), the progress of an update; install starts one (hub.py).
        f"{n}_update": {
            "p": "update",
            "unique_id": f"kithnet_{n}_update",
            "name": "Firmware update",
            "device_class": "firmware",
            "entity_category": "config",
            "state_topic": view.update,
            "command_topic": view.update_command,
            "payload_install": PAYLOAD_INSTALL,
        },
    }


def _triggers(view: NodeView, cap: model.Capability) -> dict[str, dict[str, Any]]:
    out = {}
    name = view.names[cap.cid]
    for ev in _options(cap):
        out[f"{view.node}_{name}_{ev}"] = {
            "p": "device_automation",
            "automation_type": "trigger",
            "topic": view.topic(cap),
            "type": TRIGGERS.get(ev, ev),
            "subtype": name,
            "value_template": "{{ value_json.event_type }}",
            "payload": ev,
        }
    return out


def device_config(dev: Device, view: NodeView, t: Topics) -> dict[str, Any]:
    """The device discovery payload of one node (a pure function of what the gateway knows)."""
    consumed: set[int] = set()
    cmps: dict[str, dict[str, Any]] = {}
    if view.light is not None:
        cmps[f"{view.node}_light"] = _light(view)
        consumed |= {c.cid for c in (view.light.switch, view.light.brightness,
                                     view.light.colour_temp) if c is not None}  # fmt: skip
    if view.climate is not None:
        cmps[f"{view.node}_climate"] = _climate(view)
        cl = view.climate
        consumed |= {c.cid for c in (cl.setpoint, cl.mode, cl.fan) if c is not None}
    for cid in sorted(dev.caps):
        cap = dev.caps[cid]
        if cid in consumed:
            continue
        cmps[f"{view.node}_{view.names[cid]}"] = _component(dev, view, cap)
        if cap.vtype == model.EVENT and cap.choices:
            cmps.update(_triggers(view, cap))
    cmps.update(_diagnostics(view))
    device: dict[str, Any] = {
        "identifiers": [node_object_id(dev.hex)],
        "name": dev.name,
        "manufacturer": MANUFACTURER,
        "serial_number": dev.hex,
        "via_device": gateway_object_id(t.gateway_id),
    }
    if dev.model:
        device["model"] = dev.model
    if dev.firmware:
        device["sw_version"] = dev.firmware
    if dev.room:
        device["suggested_area"] = dev.room
    return {
        "dev": device,
        "o": dict(ORIGIN),  # a copy: a caller that edits its payload leaves ORIGIN alone
        "availability": [{"topic": t.gateway_availability}, {"topic": view.availability}],
        "availability_mode": "all",
        "qos": 1,
        "cmps": cmps,
    }


def gateway_config(t: Topics, name: str) -> dict[str, Any]:
    """The gateway as a device of its own: its connection and what it holds back."""
    g = t.gateway_id
    uid = f"kithnet_gw_{g}"

    def stat(key: str, label: str, **extra: Any) -> dict[str, Any]:
        return {"p": "sensor", "unique_id": f"{uid}_{key}", "name": label,
                "state_topic": t.gateway_state, "value_template": f"{{{{ value_json.{key} }}}}",
                "availability": [{"topic": t.gateway_availability}], **extra}  # fmt: skip

    return {
        "dev": {
            "identifiers": [gateway_object_id(g)],
            "name": f"kithnet gateway {name}",
            "manufacturer": MANUFACTURER,
            "model": "kithnet gateway",
            "sw_version": __version__,
            "serial_number": g,
        },
        "o": ORIGIN,
        "qos": 1,
        "cmps": {
            f"{uid}_status": {
                "p": "binary_sensor",
                "unique_id": f"{uid}_status",
                "name": "Status",
                "device_class": "connectivity",
                "entity_category": "diagnostic",
                "state_topic": t.gateway_availability,
                "payload_on": "online",
                "payload_off": "offline",
            },
            f"{uid}_online": stat("online", "Nodes online", state_class="measurement"),
            f"{uid}_queued": stat(
                "queued", "Queued for MQTT", state_class="measurement", entity_category="diagnostic"
            ),
            f"{uid}_dropped": stat(
                "dropped",
                "Dropped for MQTT",
                state_class="total_increasing",
                entity_category="diagnostic",
            ),
        },
    }
