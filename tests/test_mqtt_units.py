"""The MQTT hub's parts without a broker: Home Assistant discovery of every device type
checked against Home Assistant's rules (tests/ha_rules.py), the kind table against the
device model, payloads, topics, settings and the outbox's bound and order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ha_rules import SENSOR_CLASSES, check_device
from kithnet.gateway import config
from kithnet.gateway.devices import Device
from kithnet.gateway.mqtt import codec, discovery, settings
from kithnet.gateway.mqtt.discovery import KINDS, device_config, gateway_config
from kithnet.gateway.mqtt.nodeview import NodeView
from kithnet.gateway.mqtt.outbox import Outbox
from kithnet.gateway.mqtt.topics import Topics, cap_names
from kithnet.protocol import model
from kithnet.tools import fleet as F

TYPES = Path(__file__).resolve().parent.parent / "firmware" / "types"
T = Topics("kithnet", "homeassistant", "kithnet-abc123")


def device(kind: str, caps: dict, n: int, model_name: str | None = None) -> Device:
    dev = Device(
        num=n,
        node_id=bytes([0, 0, 0, 0, 0, 0, 0, n]),
        key=bytes(16),
        name=f"Test {kind}",
        room="lab",
        type=kind,
        model=model_name or f"kithnet-{kind}",
        firmware="0.1.0",
    )
    dev.set_caps(caps)
    return dev


def firmware_devices() -> list[Device]:
    """A device of every firmware type, with the capabilities its config.json gives it
    and the diagnostics every node reports (ids 30 and 31, as node/setup.py)."""
    out = []
    for i, path in enumerate(sorted(TYPES.glob("*.json")), 1):
        t = json.loads(path.read_text())
        caps: dict = {30: model.RSSI, 31: model.UPTIME}
        for d in t["devices"]:
            for name, cid in d.get("caps", {}).items():
                opts = d.get("options", {}).get(name)
                caps[cid] = [model.BY_NAME[name], opts] if opts else model.BY_NAME[name]
        out.append(device(t["type"], caps, i, t["model"]))
    return out


def payload(dev: Device) -> dict:
    return device_config(dev, NodeView.of(dev, T), T)


def comps(dev: Device) -> dict[str, dict]:
    return payload(dev)["cmps"]


def by_platform(dev: Device, platform: str) -> list[dict]:
    return [c for c in comps(dev).values() if c["p"] == platform]


def test_every_device_type_passes_home_assistants_rules():
    devs = firmware_devices()
    assert {d.type for d in devs} == {"sensor", "plug", "light", "climate"}
    vendor = device(
        "vendor",
        {
            1: [
                0x8001,
                {model.OPT_TYPE: model.INT, model.OPT_UNIT: "ppm", model.OPT_LABEL: "co2 level"},
            ],
            2: [0x8002, {model.OPT_TYPE: model.BOOL, model.OPT_WRITABLE: True}],
            3: model.OCCUPANCY,
            4: model.SETPOINT,
            5: model.BRIGHTNESS,
            6: model.FAN_MODE,
        },
        9,
    )
    fleet = [device(t, F.CAPS[t], 20 + i) for i, t in enumerate(F.CAPS)]
    uids: list[str] = []
    for dev in [*devs, vendor, *fleet]:
        doc = payload(dev)
        topic = T.discovery(discovery.node_object_id(dev.hex))
        assert check_device(topic, doc) == [], dev.type
        json.dumps(doc)  # plain JSON
        uids += [c["unique_id"] for c in doc["cmps"].values() if "unique_id" in c]
    gw = gateway_config(T, "kithnet")
    assert check_device(T.discovery(discovery.gateway_object_id(T.gateway_id)), gw) == []
    assert len(uids) == len(set(uids))
    # The checker is not blind: what Home Assistant refuses, it refuses.
    plug = devs[2]
    topic = T.discovery(discovery.node_object_id(plug.hex))
    for change, words in [
        (lambda d: d["cmps"][f"{plug.hex}_energy"].update(unit_of_measurement="W"), "unit 'W'"),
        (
            lambda d: d["cmps"][f"{plug.hex}_energy"].update(state_class="measurement"),
            "state_class",
        ),
        (lambda d: d["cmps"][f"{plug.hex}_switch"].pop("command_topic"), "needs ['command_topic']"),
        (lambda d: d["cmps"][f"{plug.hex}_power"].pop("unique_id"), "no unique_id"),
        (lambda d: d.update(extra=1), "root keys"),
        (lambda d: d["dev"].pop("identifiers"), "identifiers or connections"),
        (lambda d: d["o"].pop("name"), "origin: needs a name"),
    ]:
        doc = payload(plug)
        change(doc)
        assert any(words in e for e in check_device(topic, doc)), words


def test_what_each_capability_becomes():
    climate, light, plug, sensor = firmware_devices()
    c = {k.split("_", 1)[1]: v for k, v in comps(plug).items()}
    assert (
        c["energy"]
        | {
            "p": "sensor",
            "device_class": "energy",
            "state_class": "total_increasing",
            "unit_of_measurement": "Wh",
        }
        == c["energy"]
    )
    assert (
        c["power"]["device_class"],
        c["power"]["state_class"],
        c["power"]["unit_of_measurement"],
    ) == ("power", "measurement", "W")
    assert c["switch"]["p"] == "switch" and c["switch"]["device_class"] == "outlet"
    assert c["switch"]["command_topic"] == f"kithnet/{plug.hex}/switch/set"
    assert c["button"]["p"] == "event" and c["button"]["event_types"] == [
        "single",
        "double",
        "long",
    ]
    triggers = by_platform(plug, "device_automation")
    assert {t["type"] for t in triggers} == {
        "button_short_press",
        "button_double_press",
        "button_long_press",
    }
    assert (
        c["rssi"]["entity_category"] == "diagnostic" and c["rssi"]["unit_of_measurement"] == "dBm"
    )
    assert c["uptime"]["entity_category"] == "diagnostic"
    assert {x["name"] for x in c.values() if x.get("entity_category") == "diagnostic"} >= {
        "Firmware",
        "Last reboot",
    }
    assert len(by_platform(plug, "update")) == 1
    s = {k.split("_", 1)[1]: v for k, v in comps(sensor).items()}
    assert s["temperature"]["unit_of_measurement"] == "°C"
    assert s["humidity"]["unit_of_measurement"] == "%"
    assert s["motion"]["p"] == "binary_sensor" and s["motion"]["device_class"] == "motion"
    # contact true = closed; Home Assistant's opening is on when open
    assert (s["contact"]["payload_on"], s["contact"]["payload_off"]) == ("false", "true")
    (lt,) = by_platform(light, "light")
    assert lt["schema"] == "json" and lt["brightness"] is True
    assert lt["supported_color_modes"] == ["color_temp"] and lt["color_temp_kelvin"] is True
    assert not by_platform(light, "switch") and not by_platform(light, "number")
    (cl,) = by_platform(climate, "climate")
    assert set(cl["modes"]) == {"off", "heat", "cool", "auto", "dry", "fan_only"}
    assert cl["fan_modes"] == ["auto", "low", "medium", "high"]
    assert cl["temperature_command_topic"] == f"kithnet/{climate.hex}/setpoint/set"
    assert cl["current_temperature_topic"] == f"kithnet/{climate.hex}/temperature"
    doc = payload(plug)
    assert doc["availability_mode"] == "all"
    assert [a["topic"] for a in doc["availability"]] == [
        "kithnet/gateway/kithnet-abc123/availability",
        f"kithnet/{plug.hex}/availability",
    ]
    assert doc["dev"]["via_device"] == "kithnet_gw_kithnet-abc123"


def test_the_kind_table_covers_the_device_model_in_its_units():
    assert set(KINDS) == set(model.KINDS)
    for kind, e in KINDS.items():
        unit = model.KINDS[kind][2]
        if e.platform in ("sensor", "number") and e.unit is not None:
            assert e.unit == unit, model.KINDS[kind][0]
        if e.platform == "sensor" and e.device_class:
            units, classes = SENSOR_CLASSES[e.device_class]
            assert e.unit in units and (e.state_class is None or e.state_class in classes)


def test_values_out_and_commands_in():
    assert [codec.encode(v) for v in (True, False, 21.5, 3, "cool")] == [
        b"true",
        b"false",
        b"21.5",
        b"3",
        b'"cool"',
    ]
    assert codec.decode_value(b"ON") == "ON" and codec.decode_value(b" 21.5 ") == 21.5
    assert codec.decode_value(b"true") is True and codec.decode_value(b'"cool"') == "cool"
    for bad, why in [
        (b"", "empty"),
        (b"\xff\xfe", "UTF-8"),
        (b'{"a": 1}', "not dict"),
        (b"null", "not NoneType"),
        (b"NaN", "NaN"),
        (b"1e999", "out of range"),
        (b"x" * 5000, "too long"),
    ]:
        with pytest.raises(codec.BadPayload, match=why.split()[-1]):
            codec.decode_value(bad)
    assert codec.decode_object(b'{"switch": true}') == {"switch": True}
    with pytest.raises(codec.BadPayload, match="JSON"):
        codec.decode_object(b"switch=on")
    assert codec.fade_ms(0.5) == 500
    with pytest.raises(codec.BadPayload):
        codec.fade_ms(-1)


def test_topics():
    node = "0011223344556677"
    assert T.classify(f"kithnet/{node}/switch/set") == ("set", node, "switch")
    assert T.classify(f"kithnet/{node}/set") == ("set", node, "")
    assert T.classify(f"kithnet/{node}/owner") == ("owner", node)
    assert T.classify("kithnet/gateway/kithnet-x/availability") == ("gateway", "kithnet-x")
    assert T.classify("homeassistant/status") == ("ha_status",)
    for other in (
        "kithnet/NODE/switch/set",
        "kithnet/0011/switch/set",
        f"kithnet/{node}/a/b/set",
        "elsewhere/x",
    ):
        assert T.classify(other) == ("unknown",)
    caps = model.capabilities(
        {
            1: model.SWITCH,
            2: [model.POWER, {model.OPT_LABEL: "availability"}],
            3: [model.POWER, {model.OPT_LABEL: "a/b+#"}],
            4: [model.ENERGY, {model.OPT_LABEL: "switch"}],
        }
    )
    assert cap_names(caps) == {1: "switch", 2: "availability_2", 3: "a_b__", 4: "switch_4"}


def test_settings(tmp_path):
    assert settings.parse_url("mqtt://u%40x:p%3Aw@broker.lan") == (
        False,
        "broker.lan",
        1883,
        "u@x",
        "p:w",
    )
    assert settings.parse_url("mqtts://[::1]:8884")[:3] == (True, "::1", 8884)
    for url, words in [
        ("http://x", "scheme"),
        ("mqtt://", "no broker host"),
        ("mqtt://h:99999", "mqtt_url"),
        ("mqtt://h/path", "only"),
    ]:
        with pytest.raises(config.ConfigError, match=words):
            config.load(None, {"mqtt_url": url})
    with pytest.raises(config.ConfigError, match="mqtt_ca is set but"):
        config.load(None, {"mqtt_url": "mqtt://h", "mqtt_ca": str(tmp_path)})
    with pytest.raises(config.ConfigError, match="no such file"):
        config.load(None, {"mqtt_url": "mqtts://h", "mqtt_ca": str(tmp_path / "nope.pem")})
    with pytest.raises(config.ConfigError, match="mqtt_prefix"):
        config.load(None, {"mqtt_url": "mqtt://h", "mqtt_prefix": "kith/+/net"})
    cfg = config.load(None, {"mqtt_url": "mqtt://h", "data": str(tmp_path), "name": "Floor 1"})
    s = settings.from_config(cfg)
    assert s is not None and s.gateway_id.startswith("floor-1-") and s.client_id == s.gateway_id
    assert settings.from_config(cfg).gateway_id == s.gateway_id  # kept in DATA/gateway_id
    assert settings.from_config(config.load(None, {})) is None


def test_outbox_keeps_order_and_the_newest_within_its_bound(tmp_path):
    ob = Outbox(tmp_path / "o.db", 5)
    assert ob.append([(q, f"t/{q}", b"x", True) for q in (3, 4, 5)]) == 0
    assert ob.append([(1, "t/1", b"x", False), (2, "t/2", b"", True)]) == 0  # waited in memory
    assert [r[0] for r in ob.read(-1, 10)] == [1, 2, 3, 4, 5]
    assert ob.append([(q, f"t/{q}", b"x", True) for q in range(6, 10)]) == 4
    assert [r[0] for r in ob.read(-1, 10)] == [5, 6, 7, 8, 9] and ob.dropped == 4
    ob.remove_through(6)
    ob.close()
    ob = Outbox(tmp_path / "o.db", 5)  # a restart: what waits, and what was dropped
    assert [r[0] for r in ob.read(-1, 10)] == [7, 8, 9]
    assert ob.dropped == 4 and ob.last_seq == 9 and len(ob) == 3
    assert ob.read(7, 1) == [(8, "t/8", b"x", True)]
    ob.close()


def test_the_readme_mqtt_settings_load(tmp_path):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("<!-- mqtt:begin -->") : readme.index("<!-- mqtt:end -->")]
    text = section.split("```toml\n", 1)[1].split("```", 1)[0]
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked until a connection\n")
    (tmp_path / "gw.toml").write_text(text.replace("/etc/kithnet/ca.pem", str(ca)))
    cfg = config.load(tmp_path / "gw.toml")
    assert cfg.mqtt_url == "mqtts://kithnet:secret@broker.lan:8883" and cfg.mqtt_ca == str(ca)
    assert settings.parse_url(cfg.mqtt_url) == (True, "broker.lan", 8883, "kithnet", "secret")
    assert (cfg.mqtt_prefix, cfg.mqtt_queue_max) == ("kithnet", 100_000)
