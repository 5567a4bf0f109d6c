"""Home Assistant's rules for an MQTT device discovery payload, as tables, and a checker.

Written from Home Assistant's own source and documentation (2025-2026), not from kithnet's
code, so a test that runs a payload through check_device() holds kithnet to what Home
Assistant accepts:

- root, device and origin keys, and that a device needs identifiers or connections:
  https://github.com/home-assistant/core/blob/dev/homeassistant/components/mqtt/schemas.py
  (DEVICE_DISCOVERY_SCHEMA, MQTT_ENTITY_DEVICE_INFO_SCHEMA, MQTT_ORIGIN_INFO_SCHEMA: no
  other keys allowed), https://www.home-assistant.io/integrations/mqtt/#device-discovery-payload
- abbreviations: https://github.com/home-assistant/core/blob/dev/homeassistant/components/mqtt/abbreviations.py
- required keys per platform: MQTT_RO_SCHEMA (state_topic) and MQTT_RW_SCHEMA
  (command_topic) in .../components/mqtt/config.py, and each platform's module
  (event.py: event_types; select.py: options; light/schema_json.py; device_trigger.py)
- device class -> units and state classes:
  https://github.com/home-assistant/core/blob/dev/homeassistant/components/sensor/const.py
  (DEVICE_CLASS_UNITS, DEVICE_CLASS_STATE_CLASSES); units are case-sensitive
- binary sensor, switch, number, event and update device classes: .../binary_sensor/__init__.py,
  .../switch/__init__.py, .../number/const.py, .../event/const.py, .../update/const.py
- HVAC modes: .../climate/const.py (HVACMode); colour modes: .../light/const.py (ColorMode)
- the discovery topic: <prefix>/device/<object_id>/config, ids in [a-zA-Z0-9_-]
  (discovery.py, TOPIC_MATCHER)
- the update platform (.../components/mqtt/update.py): installing publishes
  config[payload_install] on command_topic, so a command_topic needs a payload_install; its
  JSON state goes through MQTT_JSON_UPDATE_SCHEMA (no other keys; the versions, title and
  summary strings, never null; in_progress a boolean; update_percentage 0..100 or null),
  and a message that fails it is dropped whole; a key left out keeps its old value
  (check_update_state)
"""

from __future__ import annotations

import re
from typing import Any

ABBREVIATIONS = {
    "dev": "device",
    "o": "origin",
    "cmps": "components",
    "p": "platform",
    "avty": "availability",
    "avty_mode": "availability_mode",
    "avty_t": "availability_topic",
    "stat_t": "state_topic",
    "cmd_t": "command_topic",
    "uniq_id": "unique_id",
    "dev_cla": "device_class",
    "stat_cla": "state_class",
    "unit_of_meas": "unit_of_measurement",
    "ent_cat": "entity_category",
    "val_tpl": "value_template",
    "t": "topic",
    "pl_on": "payload_on",
    "pl_off": "payload_off",
    "stat_on": "state_on",
    "stat_off": "state_off",
    "ops": "options",
    "atype": "automation_type",
    "stype": "subtype",
    "pl": "payload",
    "sup_clrm": "supported_color_modes",
}
DEVICE_ABBREVIATIONS = {
    "ids": "identifiers",
    "cns": "connections",
    "mf": "manufacturer",
    "mdl": "model",
    "sw": "sw_version",
    "hw": "hw_version",
    "sn": "serial_number",
    "sa": "suggested_area",
    "cu": "configuration_url",
}
ORIGIN_ABBREVIATIONS = {"sw": "sw_version", "url": "support_url"}

ROOT_KEYS = {
    "device",
    "origin",
    "components",
    "availability",
    "availability_mode",
    "availability_topic",
    "availability_template",
    "payload_available",
    "payload_not_available",
    "state_topic",
    "command_topic",
    "qos",
    "encoding",
}
DEVICE_KEYS = {
    "identifiers",
    "connections",
    "manufacturer",
    "model",
    "model_id",
    "name",
    "hw_version",
    "serial_number",
    "sw_version",
    "via_device",
    "suggested_area",
    "configuration_url",
}
ORIGIN_KEYS = {"name", "sw_version", "support_url"}
AVAILABILITY_MODES = {"all", "any", "latest"}

# platform: keys it requires
REQUIRED = {
    "sensor": {"state_topic"},
    "binary_sensor": {"state_topic"},
    "switch": {"command_topic"},
    "number": {"command_topic"},
    "select": {"command_topic", "options"},
    "event": {"state_topic", "event_types"},
    "light": {"command_topic"},
    "climate": set(),
    "update": set(),
    "device_automation": {"automation_type", "topic", "type", "subtype"},
}
ENTITY_CATEGORIES = {"config", "diagnostic"}

# sensor device class: (units, state classes), from sensor/const.py; only the classes a
# gateway like this one could use, each complete.
SENSOR_CLASSES = {
    "temperature": ({"°C", "°F", "K"}, {"measurement"}),
    "humidity": ({"%"}, {"measurement"}),
    "illuminance": ({"lx"}, {"measurement"}),
    "battery": ({"%"}, {"measurement"}),
    "power": ({"W", "kW", "MW", "GW", "TW", "mW"}, {"measurement"}),
    "energy": (
        {
            "J",
            "kJ",
            "MJ",
            "GJ",
            "mWh",
            "Wh",
            "kWh",
            "MWh",
            "GWh",
            "TWh",
            "cal",
            "kcal",
            "Mcal",
            "Gcal",
        },
        {"total", "total_increasing"},
    ),
    "voltage": ({"µV", "mV", "V", "kV", "MV"}, {"measurement"}),
    "current": ({"mA", "A"}, {"measurement"}),
    "signal_strength": ({"dB", "dBm"}, {"measurement"}),
    "duration": ({"d", "h", "min", "s", "ms"}, {"measurement", "total", "total_increasing"}),
    # vendor kinds of BTHome sensors (mqtt/discovery.py VENDOR_SENSORS)
    "pressure": (
        {"Pa", "hPa", "kPa", "bar", "cbar", "mbar", "mmHg", "inHg", "psi"},
        {"measurement"},
    ),
    "carbon_dioxide": ({"ppm"}, {"measurement"}),
    "moisture": ({"%"}, {"measurement"}),
    "enum": ({None}, set()),
}
STATE_CLASSES = {"measurement", "measurement_angle", "total", "total_increasing"}
BINARY_SENSOR_CLASSES = {
    "battery",
    "battery_charging",
    "carbon_monoxide",
    "cold",
    "connectivity",
    "door",
    "garage_door",
    "gas",
    "heat",
    "light",
    "lock",
    "moisture",
    "motion",
    "moving",
    "occupancy",
    "opening",
    "plug",
    "power",
    "presence",
    "problem",
    "running",
    "safety",
    "smoke",
    "sound",
    "tamper",
    "update",
    "vibration",
    "window",
}
SWITCH_CLASSES = {"outlet", "switch"}
NUMBER_CLASSES = {"temperature": {"°C", "°F", "K"}}  # the one number class used here
EVENT_CLASSES = {"button", "doorbell", "motion"}
UPDATE_CLASSES = {"firmware"}
HVAC_MODES = {"off", "heat", "cool", "heat_cool", "auto", "dry", "fan_only"}
COLOR_MODES = {"onoff", "brightness", "color_temp", "hs", "xy", "rgb", "rgbw", "rgbww", "white"}
OBJECT_ID = re.compile(r"[a-zA-Z0-9_-]+")
TOPIC = re.compile(r"[^#+\x00]+")


def _expand(d: dict[str, Any], table: dict[str, str]) -> dict[str, Any]:
    return {table.get(k, k): v for k, v in d.items()}


def _topic(errors: list[str], where: str, value: Any) -> None:
    if not isinstance(value, str) or not TOPIC.fullmatch(value):
        errors.append(f"{where}: {value!r} is not a topic")


def check_component(cid: str, c: dict[str, Any]) -> list[str]:
    """What Home Assistant would refuse in one component (empty: accepted)."""
    c = _expand(c, ABBREVIATIONS)
    errors: list[str] = []
    p = c.get("platform")
    if p not in REQUIRED:
        return [f"{cid}: platform {p!r} is not one kithnet should use"]
    if p != "device_automation" and not c.get("unique_id"):
        errors.append(f"{cid}: no unique_id (device discovery needs one per entity)")
    missing = REQUIRED[p] - c.keys()
    if missing:
        errors.append(f"{cid}: {p} needs {sorted(missing)}")
    for k, v in c.items():
        if k.endswith("_topic") or k == "topic":
            _topic(errors, f"{cid}.{k}", v)
    cat = c.get("entity_category")
    if cat is not None and cat not in ENTITY_CATEGORIES:
        errors.append(f"{cid}: entity_category {cat!r}")
    if p == "sensor" and cat == "config":
        errors.append(f"{cid}: a sensor cannot be a config entity")
    dc, unit, sc = c.get("device_class"), c.get("unit_of_measurement"), c.get("state_class")
    if p == "sensor":
        if sc is not None and sc not in STATE_CLASSES:
            errors.append(f"{cid}: state_class {sc!r}")
        if dc is not None:
            if dc not in SENSOR_CLASSES:
                errors.append(f"{cid}: sensor device_class {dc!r} unknown here")
            else:
                units, classes = SENSOR_CLASSES[dc]
                if unit not in units:
                    errors.append(f"{cid}: unit {unit!r} is not valid with device_class {dc}")
                if sc is not None and sc not in classes:
                    errors.append(f"{cid}: state_class {sc} is not valid with device_class {dc}")
        if dc == "enum":
            if not c.get("options") or not all(isinstance(o, str) for o in c["options"]):
                errors.append(f"{cid}: an enum sensor needs options (strings)")
        elif "options" in c:
            errors.append(f"{cid}: options only go with device_class enum")
    elif p == "binary_sensor":
        if dc is not None and dc not in BINARY_SENSOR_CLASSES:
            errors.append(f"{cid}: binary_sensor device_class {dc!r}")
        if c.get("payload_on", "ON") == c.get("payload_off", "OFF"):
            errors.append(f"{cid}: payload_on equals payload_off")
    elif p == "switch":
        if dc is not None and dc not in SWITCH_CLASSES:
            errors.append(f"{cid}: switch device_class {dc!r}")
    elif p == "number":
        if dc is not None and (dc not in NUMBER_CLASSES or unit not in NUMBER_CLASSES[dc]):
            errors.append(f"{cid}: number device_class {dc!r} with unit {unit!r}")
        lo, hi, step = c.get("min", 1), c.get("max", 100), c.get("step", 1)
        if not lo < hi or not step > 0:
            errors.append(f"{cid}: number range {lo}..{hi} step {step}")
    elif p == "select":
        opts = c.get("options")
        if not isinstance(opts, list) or not opts or len(set(opts)) != len(opts):
            errors.append(f"{cid}: select options {opts!r}")
    elif p == "event":
        if dc is not None and dc not in EVENT_CLASSES:
            errors.append(f"{cid}: event device_class {dc!r}")
        types = c.get("event_types")
        if not isinstance(types, list) or not types or not all(isinstance(t, str) for t in types):
            errors.append(f"{cid}: event_types {types!r}")
    elif p == "update":
        if dc is not None and dc not in UPDATE_CLASSES:
            errors.append(f"{cid}: update device_class {dc!r}")
        if "command_topic" in c and not isinstance(c.get("payload_install"), str):
            errors.append(f"{cid}: an update with a command_topic needs a payload_install")
    elif p == "light":
        if c.get("schema", "basic") != "json":
            errors.append(f"{cid}: kithnet's lights use the JSON schema")
        modes = c.get("supported_color_modes")
        if modes is not None:
            ok = isinstance(modes, list) and modes and set(modes) <= COLOR_MODES
            alone = {"onoff", "brightness"}
            if not ok or (set(modes) & alone and len(modes) > 1):
                errors.append(f"{cid}: supported_color_modes {modes!r}")
        if "color_temp" in (modes or []) and c.get("color_temp_kelvin"):
            if not 0 < c.get("min_kelvin", 2000) < c.get("max_kelvin", 6535):
                errors.append(f"{cid}: kelvin range")
        if c.get("brightness_scale", 255) < 1:
            errors.append(f"{cid}: brightness_scale")
    elif p == "climate":
        modes = c.get("modes", [])
        if not set(modes) <= HVAC_MODES:
            errors.append(f"{cid}: climate modes {modes!r}")
        if c.get("temperature_unit", "C") not in ("C", "F"):
            errors.append(f"{cid}: temperature_unit")
        if not c.get("min_temp", 7) < c.get("max_temp", 35):
            errors.append(f"{cid}: min_temp >= max_temp")
        if c.get("precision", 0.1) not in (0.1, 0.5, 1.0):
            errors.append(f"{cid}: precision")
        for key in ("mode_command_topic", "temperature_command_topic", "fan_mode_command_topic"):
            if key in c:
                _topic(errors, f"{cid}.{key}", c[key])
    elif p == "device_automation":
        if c.get("automation_type") != "trigger":
            errors.append(f"{cid}: automation_type must be trigger")
    return errors


UPDATE_STATE_STRINGS = {"installed_version", "latest_version", "title", "release_summary"}
UPDATE_STATE_URLS = {"release_url", "entity_picture"}


def check_update_state(payload: dict[str, Any]) -> list[str]:
    """What Home Assistant's MQTT_JSON_UPDATE_SCHEMA refuses in an update entity's JSON
    state (one error and the whole message is ignored). Stricter on in_progress, which HA
    also takes as "on"/"off" or 1/0: kithnet sends a JSON boolean."""
    errors = []
    extra = set(payload) - UPDATE_STATE_STRINGS - UPDATE_STATE_URLS
    extra -= {"in_progress", "update_percentage"}
    if extra:
        errors.append(f"update state keys HA refuses: {sorted(extra)}")
    for k in UPDATE_STATE_STRINGS | UPDATE_STATE_URLS:
        if k in payload and not isinstance(payload[k], str):
            errors.append(f"update state {k} must be text, not {payload[k]!r}")
    if "in_progress" in payload and not isinstance(payload["in_progress"], bool):
        errors.append(f"update state in_progress must be true or false: {payload['in_progress']!r}")
    pct = payload.get("update_percentage")
    if pct is not None and (isinstance(pct, bool) or not isinstance(pct, int | float)
                            or not 0 <= pct <= 100):  # fmt: skip
        errors.append(f"update state update_percentage must be 0..100 or null: {pct!r}")
    return errors


def check_device(topic: str, payload: dict[str, Any], prefix: str = "homeassistant") -> list[str]:
    """Everything Home Assistant would refuse in a device discovery message."""
    errors: list[str] = []
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != prefix or parts[1] != "device" or parts[3] != "config":
        errors.append(f"{topic}: not {prefix}/device/<object_id>/config")
    elif not OBJECT_ID.fullmatch(parts[2]):
        errors.append(f"{topic}: object id {parts[2]!r} has characters HA refuses")
    root = _expand(payload, ABBREVIATIONS)
    extra = set(root) - ROOT_KEYS
    if extra:
        errors.append(f"root keys HA refuses: {sorted(extra)}")
    dev = _expand(root.get("device") or {}, DEVICE_ABBREVIATIONS)
    if not dev.get("identifiers") and not dev.get("connections"):
        errors.append("device: needs identifiers or connections")
    if set(dev) - DEVICE_KEYS:
        errors.append(f"device keys HA refuses: {sorted(set(dev) - DEVICE_KEYS)}")
    for k in ("name", "manufacturer", "model", "sw_version", "serial_number", "via_device"):
        if k in dev and not isinstance(dev[k], str):
            errors.append(f"device.{k} must be text")
    origin = _expand(root.get("origin") or {}, ORIGIN_ABBREVIATIONS)
    if not isinstance(origin.get("name"), str):
        errors.append("origin: needs a name")
    if set(origin) - ORIGIN_KEYS:
        errors.append(f"origin keys HA refuses: {sorted(set(origin) - ORIGIN_KEYS)}")
    mode = root.get("availability_mode", "latest")
    if mode not in AVAILABILITY_MODES:
        errors.append(f"availability_mode {mode!r}")
    for a in root.get("availability", []):
        a = _expand(a, ABBREVIATIONS)
        _topic(errors, "availability.topic", a.get("topic"))
    comps = root.get("components")
    if not isinstance(comps, dict) or not comps:
        return [*errors, "components: none"]
    uids = []
    for cid, c in comps.items():
        if not OBJECT_ID.fullmatch(cid):
            errors.append(f"component id {cid!r} has characters HA refuses")
        errors += check_component(cid, c)
        uid = _expand(c, ABBREVIATIONS).get("unique_id")
        if uid:
            uids.append(uid)
    if len(uids) != len(set(uids)):
        errors.append("unique_ids repeat within the device")
    return errors
