"""BTHome v2 from a kithnet node (SPEC 13.2), read by Home Assistant's own parser.

Real MicroPython boards on the virtual radio (tools/radio.py), no gateway: a battery sensor
with `"ble": {"adv": "both"}` (each burst carries the kithnet frames and BTHome; deep sleep
between bursts) and a plug with `"adv": "bthome"` (BTHome only, awake). A sniffer records
the air; every BTHome advertisement is decoded by bthome-ble (the library behind Home
Assistant's BTHome integration) with the bindkey `kithnet node bindkey` prints, through one
parser object per node, as Home Assistant keeps one: so its replay check (a counter lower
than the last is refused, with a warning) runs over the whole capture.

- The sensor's BTHome readings equal its kithnet frames' (opened with the broadcast key),
  which carry the same readings under the same counter: BTHome numbers and kithnet sequence
  numbers are one sequence, never repeated, and after a power cut it goes on above every
  number used before.
- The plug's BTHome advertisements carry its meter and its relay; a press of its button is
  one "press" event in Home Assistant (not one per advertising event), and the relay it
  toggles shows as the binary "power" sensor.
- protocol/vectors/ccm4.json (AES-CCM with BTHome's 4-byte tag) holds on both CPython paths
  and under MicroPython, and the node's bthome.py under MicroPython makes byte for byte the
  advertisement an independent CPython builder (struct, cryptography's AESCCM) makes.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import time
from pathlib import Path

import pytest
from bluetooth_sensor_state_data import BluetoothServiceInfoBleak
from bthome_ble import BTHomeBluetoothDeviceData
from conftest import MP_DIR, run_micropython
from cryptography.hazmat.primitives.ciphers.aead import AESCCM
from kithnet.protocol import ccm, discovery, frame, keys, session
from kithnet.protocol.errors import ProtocolError
from kithnet.protocol.replay import ReplayWindow
from kithnet.tools import board as B
from kithnet.tools.radio import RadioClient, RadioServer

WAIT = 30
ROOT = Path(__file__).resolve().parent.parent
UUID = "0000fcd2-0000-1000-8000-00805f9b34fb"
CCM4 = json.loads((ROOT / "protocol" / "vectors" / "ccm4.json").read_text())["vectors"]


def address(nid: bytes) -> str:
    """The host radio's address for a node (hal/host_radio.py)."""
    return ":".join(f"{x:02X}" for x in bytes((nid[2] | 0xC0,)) + nid[3:8])


def is_bthome(adv: bytes) -> bool:
    return adv[1:4] == b"\x16\xd2\xfc"


def counter(adv: bytes) -> int:
    return int.from_bytes(adv[-8:-4], "little")


def service_info(addr: str, adv: bytes, t: float) -> BluetoothServiceInfoBleak:
    """What Home Assistant hands its BTHome integration for one advertisement."""
    assert adv[0] == len(adv) - 1 and is_bthome(adv), adv.hex()
    return BluetoothServiceInfoBleak(
        name="kithnet node", address=addr, rssi=-60, manufacturer_data={},
        service_data={UUID: adv[4:]}, service_uuids=[], source="local", device=None,
        advertisement=None, connectable=False, time=t, tx_power=None,
    )  # fmt: skip


def values(update) -> dict:
    """Sensor and binary sensor values by Home Assistant's keys; the binary "power" (0x10,
    the plug's relay) as "relay", apart from the meter's "power" sensor."""
    out = {k.key: v.native_value for k, v in update.entity_values.items()}
    for k, v in update.binary_entity_values.items():
        out["relay" if k.key == "power" else k.key] = v.native_value
    out.pop("signal_strength", None)
    return out


class Lab:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.radio = RadioServer().start()
        self.sniffer = RadioClient(self.radio.address).sniff()
        self.boards: dict[str, B.Board] = {}
        self.lib: Path | None = None

    def board(self, kind: str, ble: dict, sleep: dict) -> B.Board:
        nid, key = os.urandom(8), os.urandom(16)
        path = self.root / kind
        B.make_board(path, kind, f"BTHome {kind}", node_id=nid, key=key, lib_from=self.lib,
                     overrides={"mdns": "off", "ble": ble, "sleep": sleep})  # fmt: skip
        self.lib = self.lib or path / "lib"
        b = B.Board(path, radio=self.radio.address)
        b.node_id, b.key = nid, key
        b.bindkey = keys.bthome_key(key, nid)
        b.address = address(nid)
        self.boards[kind] = b
        return b.start()

    def heard(self, b: B.Board) -> list[tuple[float, bytes]]:
        """Every advertising event of the board so far: (time, data)."""
        with self.sniffer._lock:
            return [(t, d) for t, a, d, _ in self.sniffer.heard if a == b.address]

    def wait(self, what, b: B.Board, timeout: float = WAIT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = what()
            if got:
                return got
            time.sleep(0.05)
        pytest.fail(f"timed out; console:\n{b.console()[-3000:]}")

    def close(self) -> None:
        for b in self.boards.values():
            b.stop()
        self.sniffer.close()
        self.radio.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("bthome"))
    lab.board(
        "sensor", {"interval_s": 1, "adv_ms": 30, "burst_ms": 600, "pair_s": 0, "adv": "both"},
        {"enabled": True, "awake_ms": 3000},
    )  # fmt: skip
    lab.board("plug", {"interval_s": 5, "adv_ms": 30, "adv": "bthome"}, {})
    yield lab
    lab.close()


def ha_decode(b: B.Board, heard: list[tuple[float, bytes]], caplog) -> list[tuple]:
    """Home Assistant's view: each BTHome advertisement that differs from the one before from
    the same device (HA's Bluetooth manager drops exact repeats) through one parser object.
    [(counter, values, events)] of each new counter; fails on any decryption failure or
    replay refusal, or on an event heard twice."""
    dev = BTHomeBluetoothDeviceData(bindkey=b.bindkey)
    out: list[tuple] = []
    seen: set[int] = set()
    prev = None
    with caplog.at_level(logging.DEBUG, logger="bthome_ble"):
        for t, adv in heard:
            if not is_bthome(adv) or adv == prev:
                prev = adv
                continue
            prev = adv
            update = dev.update(service_info(b.address, adv, t))
            assert dev.bindkey_verified, adv.hex()
            events = [(k.key, e.event_type) for k, e in update.events.items()]
            if out and out[-1][0] >= counter(adv):  # back on the air ("both" turns them):
                assert not events and counter(adv) in seen  # its packet id drops it
                continue
            seen.add(counter(adv))
            vals = values(update)
            assert vals.pop("packet_id") == counter(adv) & 255  # the counter's low byte
            out.append((counter(adv), vals, events))
    bad = [r.getMessage() for r in caplog.records
           if r.name.startswith("bthome_ble") and r.levelno >= logging.WARNING]  # fmt: skip
    assert not bad, bad
    return out


def kithnet_frames(b: B.Board, heard: list[tuple[float, bytes]]) -> list[tuple[int, dict]]:
    """(sequence number, body) of the board's kithnet advertisements, in the order sent."""
    bkey = keys.broadcast_key(b.key, b.node_id)
    out = {}
    for _, adv in heard:
        if is_bthome(adv):
            continue
        data = discovery.ble_frame(adv)
        seq, _, body, _ = session.open_broadcast(
            data, frame.parse(data), bkey, b.node_id, ReplayWindow()
        )
        out[seq] = body
    return sorted(out.items())


# The sensor type's capability ids (firmware/types/sensor.json) as Home Assistant names them.
SENSOR = {1: ("temperature", 0.01), 2: ("humidity", 0.01), 3: ("motion", None),
          4: ("opening", None), 5: ("illuminance", 1), 6: ("battery", 1)}  # fmt: skip


def as_ha(body: dict) -> dict:
    out = {}
    for cid, v in body.items():
        name, scale = SENSOR[cid]
        if cid == 4:
            out[name] = not v  # kithnet contact: closed; BTHome opening: open
        elif scale is None:
            out[name] = v
        else:
            out[name] = round(v * scale, 2)
    return out


def test_sensor_both_modes_carry_the_same_readings_under_one_counter(lab, caplog):
    s = lab.boards["sensor"]
    lab.wait(lambda: s.exits.count(B.EXIT_DEEPSLEEP) >= 3 and
             sum(map(is_bthome, {d for _, d in lab.heard(s)})) >= 3, s)  # fmt: skip
    heard = lab.heard(s)
    assert all(len(d) <= 31 for _, d in heard)
    decoded = ha_decode(s, heard, caplog)
    frames = kithnet_frames(s, heard)
    assert len(decoded) >= 3 and len(frames) >= 6
    # One counter: kithnet sequence numbers and BTHome counters never meet, and each grows.
    bt = [c for c, _, _ in decoded]
    assert bt == sorted(set(bt))
    seqs = [q for q, _ in frames]
    assert not set(bt) & set(seqs)
    # Each BTHome advertisement carries the node's latest readings: what its kithnet
    # frames, sealed right after it in the same burst, said (a sensor reports everything
    # at each wake).
    for i, (c, vals, events) in enumerate(decoded):
        nxt = bt[i + 1] if i + 1 < len(bt) else 1 << 32
        state: dict = {}
        for q, body in frames:
            if q < nxt:
                state.update({k: v for k, v in body.items() if k in SENSOR})
        assert vals == as_ha(state), (c, vals, state)
        assert not events
    last = decoded[-1][1]
    assert 15 < last["temperature"] < 30 and 0 < last["humidity"] < 100
    assert set(last) == {"temperature", "humidity", "motion", "opening", "illuminance", "battery"}


def test_counter_goes_on_above_every_number_after_a_power_cut(lab, caplog):
    s = lab.boards["sensor"]
    lab.wait(lambda: any(map(is_bthome, (d for _, d in lab.heard(s)))), s)
    s.power_cut()  # RAM and RTC memory lost: the counter resumes from its stored mark
    time.sleep(0.3)  # what was in flight on the radio has arrived
    before = lab.heard(s)
    used = {c for c, _, _ in ha_decode(s, before, caplog)} | {
        q for q, _ in kithnet_frames(s, before)
    }
    s.start()
    lab.wait(lambda: sum(map(is_bthome, (d for _, d in lab.heard(s)[len(before) :]))) >= 2, s)
    after = lab.heard(s)[len(before) :]
    new = [c for c, _, _ in ha_decode(s, before + after, caplog) if c not in used]
    assert new and min(new) > max(used), (sorted(used)[-3:], new[:3])  # skipped, never reused
    assert min(q for q, _ in kithnet_frames(s, after) if q not in used) > max(used)


def test_plug_bthome_only_meter_relay_and_one_event_per_press(lab, caplog):
    p = lab.boards["plug"]
    lab.wait(lambda: any(map(is_bthome, (d for _, d in lab.heard(p)))), p)
    relay = p.world.relay_commanded
    n = len(lab.heard(p))
    p.world.press()  # a single press: the button's event, and it toggles the relay
    lab.wait(lambda: p.world.relay_commanded != relay, p)
    lab.wait(lambda: [e for _, v, e in ha_decode(p, lab.heard(p)[n:], caplog)
                      if e or v.get("relay") is not relay], p)  # fmt: skip
    time.sleep(1.0)  # the event's advertisement has gone; the state goes on
    heard = lab.heard(p)
    assert all(is_bthome(d) and len(d) <= 31 for _, d in heard)  # "bthome": nothing else
    decoded = ha_decode(p, heard, caplog)
    events = [e for _, _, ev in decoded for e in ev]
    assert events == [("button", "press")], events  # once, not once per advertising event
    bt = [c for c, _, _ in decoded]
    assert bt == sorted(set(bt))
    last = decoded[-1][1]
    assert set(last) == {"power", "voltage", "current", "energy", "relay"}, last
    assert min(last[k] for k in ("power", "voltage", "current", "energy")) >= 0  # scales:
    # test_node_advertisements_read_in_bthome_ble; the meter's readings: test_node_drivers
    assert last["relay"] is p.world.relay_commanded is not relay


def test_the_gateway_adopts_a_bthome_only_node_by_its_bindkey(lab, tmp_path, caplog):
    """The two halves together: the plug in "bthome" mode sends no kithnet frame, so the
    gateway hears another make's BTHome sensor, lists it as pending and, adopted with the
    bindkey `kithnet node bindkey` prints, keeps its readings (gateway/ble/bthome.py)."""
    from gwrun import GatewayThread
    from kithnet.gateway.ble import bthome

    p = lab.boards["plug"]
    nid = bthome.node_id_of(p.address).hex()
    g = GatewayThread(data=str(tmp_path / "gw"), ble="virtual:" + lab.radio.address)
    try:
        g.wait(lambda: [x for x in g.gw.pending() if x["id"] == nid], WAIT, "not pending")
        dev = g.call(g.gw.adopt_bthome, p.address, p.bindkey.hex(), name="Hall plug")
        assert dev["id"] == nid and dev["type"] == "bthome"
        want = {"power": 0.05, "voltage": 0.05, "current": 0.0005, "energy": 0.5}  # its steps
        state = g.wait(lambda: g.gw.device(nid)["state"], WAIT, "no readings",
                       check=lambda st: set(want) <= set(st))  # fmt: skip
        # Each value is one Home Assistant's parser read from the same air (energy in Wh).
        heard: dict[str, list[float]] = {k: [] for k in want}
        for _, vals, _ in ha_decode(p, lab.heard(p), caplog):
            for k in want:
                if k in vals:
                    heard[k].append(vals[k] * (1000 if k == "energy" else 1))
        for k, step in want.items():
            got = state[k]["value"]
            assert any(abs(got - v) <= step for v in heard[k]), (k, got, heard[k][-5:])
    finally:
        g.stop()


# --- 4-byte-tag CCM vectors and the node's advertisement, CPython against MicroPython ----


@pytest.fixture(params=["portable", "fast"])
def ccm_path(request, monkeypatch):
    if request.param == "portable":
        monkeypatch.setattr(ccm, "seal", ccm.portable_seal)
        monkeypatch.setattr(ccm, "open", ccm.portable_open)
    else:
        assert ccm.FAST and ccm.seal is not ccm.portable_seal
    return request.param


@pytest.mark.parametrize("v", CCM4, ids=[v["name"] for v in CCM4])
def test_ccm4_vectors(ccm_path, v):
    key, nonce, aad, pt, sealed = (
        bytes.fromhex(v[k]) for k in ("key", "nonce", "aad", "plaintext", "sealed")
    )
    assert ccm.seal(key, nonce, pt, aad, 4) == sealed
    assert ccm.open(key, nonce, sealed, aad, 4) == pt
    assert AESCCM(key, tag_length=4).encrypt(nonce, pt, aad or None) == sealed
    bad = bytearray(sealed)
    bad[-1] ^= 1
    with pytest.raises(ProtocolError):
        ccm.open(key, nonce, bytes(bad), aad, 4)
    with pytest.raises(ProtocolError):  # the 8-byte path does not take these
        ccm.open(key, nonce, sealed, aad)
    with pytest.raises(ProtocolError):
        ccm.seal(key, nonce, pt, aad, 5)


def test_published_ccm4_vectors_decode_in_bthome_ble():
    """The published vectors are BTHome advertisements bthome-ble itself decodes."""
    for v in CCM4:
        if not v["source"].startswith("bthome-ble"):
            continue
        nonce, sealed = bytes.fromhex(v["nonce"]), bytes.fromhex(v["sealed"])
        mac = ":".join(f"{x:02X}" for x in nonce[:6])
        svc = nonce[8:9] + sealed[:-4] + nonce[9:] + sealed[-4:]
        dev = BTHomeBluetoothDeviceData(bindkey=bytes.fromhex(v["key"]))
        dev.update(service_info(mac, bytes((len(svc) + 3,)) + b"\x16\xd2\xfc" + svc, 0.0))
        assert dev.bindkey_verified, v["name"]


@pytest.fixture(scope="module")
def mp_bthome():
    proc = run_micropython(MP_DIR / "check_bthome.py")
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0 and lines, proc.stdout + proc.stderr
    return proc, lines


def test_micropython_runs_every_ccm4_vector(mp_bthome):
    proc, lines = mp_bthome
    assert lines[-1] == f"{len(CCM4)} passed, 0 failed", proc.stdout + proc.stderr
    assert {ln.split(" ", 1)[1] for ln in lines if ln.startswith("ok ")} >= {
        v["name"] for v in CCM4
    }


def _mp_advs(lines: list[str]) -> dict[str, bytes]:
    return {ln.split()[1]: bytes.fromhex(ln.split()[2]) for ln in lines if ln.startswith("ADV ")}


def test_bthome_key_is_the_same_on_micropython_and_not_the_node_or_broadcast_key(mp_bthome):
    _, lines = mp_bthome
    node_id, key = bytes.fromhex("0102030405060708"), bytes(range(16))
    got = bytes.fromhex(next(ln.split()[1] for ln in lines if ln.startswith("KEY ")))
    assert got == keys.bthome_key(key, node_id)
    assert got not in (key, keys.broadcast_key(key, node_id))


def test_node_advertisement_matches_an_independent_cpython_builder(mp_bthome):
    """The sensor case of tests/mp/check_bthome.py, built here from bthome.io's format."""
    _, lines = mp_bthome
    advs = _mp_advs(lines)
    key = keys.bthome_key(bytes(range(16)), bytes.fromhex("0102030405060708"))
    cnt = 0x00112233  # the first number the script's counter gives
    objs = (b"\x00" + bytes((cnt & 255,)) + b"\x01" + bytes((87,))  # packet id, battery 87 %
            + b"\x02" + struct.pack("<h", 2150) + b"\x03" + struct.pack("<H", 4800)
            + b"\x05" + (350 * 100).to_bytes(3, "little")  # illuminance 350.00 lx
            + b"\x11\x01" + b"\x21\x01")  # opening: open (contact false); motion  # fmt: skip
    info = b"\x45"  # v2, encrypted, sleepy (the script's node deep-sleeps)
    ctr = struct.pack("<I", cnt)
    nonce = bytes.fromhex("c01122334455") + b"\xd2\xfc" + info + ctr
    sealed = AESCCM(key, tag_length=4).encrypt(nonce, objs, None)
    svc = info + sealed[:-4] + ctr + sealed[-4:]
    assert advs["sensor-0"] == bytes((len(svc) + 3,)) + b"\x16\xd2\xfc" + svc


def test_node_advertisements_read_in_bthome_ble(mp_bthome):
    """Every case of the script as Home Assistant reads it: units, signs, the inverted
    contact, energy past 24 bits (0x4D), a long press, values BTHome cannot carry left out,
    and readings that do not fit one advertisement split over two."""
    _, lines = mp_bthome
    advs = _mp_advs(lines)
    key = keys.bthome_key(bytes(range(16)), bytes.fromhex("0102030405060708"))

    def read(*names):
        dev = BTHomeBluetoothDeviceData(bindkey=key)
        out, events = {}, []
        for n in names:
            assert len(advs[n]) <= 31
            u = dev.update(service_info("C0:11:22:33:44:55", advs[n], 0.0))
            assert dev.bindkey_verified and dev.sleepy_device, n
            vals = values(u)
            assert vals.pop("packet_id") == advs[n][-8]  # the counter's low byte
            out.update(vals)
            events += [(k.key, e.event_type) for k, e in u.events.items()]
        return out, events

    sensor = {"temperature": 21.5, "humidity": 48.0, "motion": True, "opening": True,
              "illuminance": 350.0, "battery": 87}  # fmt: skip
    assert read("sensor-0") == (sensor, [])
    assert read("cold-door-open-0") == (
        {"temperature": -5.12, "opening": False, "occupancy": False}, [])  # fmt: skip
    plug = {"power": 123.4, "voltage": 230.1, "current": 0.537, "energy": 20000.0}
    got, _ = read("plug-0", "plug-1")
    assert {k: got[k] for k in plug} == plug and "plug-2" not in advs
    assert read("button-long-0") == ({}, [("button", "long_press")])
    got, events = read("button-with-plug-0", "button-with-plug-1")  # the event first
    assert events == [("button", "press")] and "button-with-plug-2" not in advs
    assert {k: got[k] for k in plug} == {**plug, "energy": 4.321} and got["relay"] is True
    assert read("out-of-range-0") == ({}, [])  # 200,000 lx and 70 A: not in BTHome's range
    got, _ = read("everything-0", "everything-1")
    assert {**sensor, **plug, "energy": 4.321} == {k: got[k] for k in [*sensor, *plug]}


# --- kithnet node create --ble-adv, kithnet node bindkey ---------------------------------


def test_cli_creates_a_bthome_node_and_prints_its_bindkey(tmp_path, capsys):
    from kithnet import cli

    d = tmp_path / "shed"
    args = ["node", "create", str(d), "--type", "sensor", "--name", "Shed", "--no-register",
            "--mdns", "off", "--mpy"]  # fmt: skip
    assert cli.main([*args, "--ble-adv", "both"]) == 0
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["ble"] == {"adv": "both"}
    want = keys.bthome_key(bytes.fromhex(cfg["node"]["key"]), bytes.fromhex(cfg["node"]["id"]))
    out = capsys.readouterr().out
    assert f"BTHome bindkey (Home Assistant, BTHome integration): {want.hex()}" in out
    assert cfg["node"]["key"] not in out  # the node key itself is never printed
    assert cli.main(["node", "bindkey", str(d)]) == 0
    assert capsys.readouterr().out.strip() == want.hex()
    # Created again without the flag: the board keeps its BLE settings (and id and key).
    assert cli.main(args) == 0
    assert json.loads((d / "config.json").read_text())["ble"] == {"adv": "both"}
    capsys.readouterr()
    assert cli.main(["node", "bindkey", str(tmp_path / "none")]) == 1
    assert "cannot read" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text('{"node": {"id": "00", "key": "11"}}')
    assert cli.main(["node", "bindkey", str(tmp_path / "bad.json")]) == 1
    assert "no valid node id and key" in capsys.readouterr().err
